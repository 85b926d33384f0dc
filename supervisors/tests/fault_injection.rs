//! Fault injection and the chaos monkey.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::time::Duration;

use supervisors::fault::{self, ChaosConfig, Strike};
use supervisors::{Ctx, ExitReason, Node, Strategy, Supervisor, SupervisorSpec};
use tokio::sync::mpsc;
use tokio::time::timeout;
use workers::{HANG, OnShutdown, settle, started, worker};

#[tokio::test]
async fn panic_on_next_message_crashes_the_process() {
    let node = Node::new();
    let addr = node.spawn(|mut ctx: Ctx<u32>| async move {
        loop {
            ctx.recv_msg().await;
        }
    });
    assert!(fault::panic_on_next_message(&node, addr.pid()));
    addr.send(1).await.unwrap();
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::Panic("injected fault".to_owned())
    );
    assert!(!fault::panic_on_next_message(&node, addr.pid()));
}

#[tokio::test]
async fn exit_and_kill_reach_any_process() {
    let node = Node::new();
    let spawn = || {
        node.spawn(|mut ctx: Ctx<()>| async move {
            loop {
                ctx.recv().await;
            }
        })
    };
    let a = spawn();
    let b = spawn();
    assert!(fault::exit(&node, a.pid(), ExitReason::error("injected")));
    assert!(fault::kill(&node, b.pid()));
    assert_eq!(
        timeout(HANG, a.watch()).await.unwrap(),
        ExitReason::error("injected")
    );
    assert_eq!(timeout(HANG, b.watch()).await.unwrap(), ExitReason::Killed);
}

#[tokio::test(start_paused = true)]
async fn chaos_monkey_kills_workers_and_the_tree_recovers() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(100, Duration::from_secs(1))
        .child(worker("a", &tx, OnShutdown::Die))
        .child(worker("b", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    started(&mut rx).await;
    started(&mut rx).await;
    let monkey = fault::chaos(&node, &sup, ChaosConfig::new(42, 10.0).max_strikes(5));
    for _ in 0..5 {
        started(&mut rx).await;
    }
    let report = monkey.stop();
    assert_eq!(report.strikes, 5);
    assert_eq!(report.victims.len(), 5);
    settle(&sup).await;
    assert!(sup.is_alive());
    assert_eq!(sup.count_children().await.unwrap().active, 2);
}

#[tokio::test(start_paused = true)]
async fn chaos_monkey_is_reproducible_from_its_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let node = Node::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut spec =
            SupervisorSpec::new(Strategy::OneForOne).intensity(100, Duration::from_secs(1));
        for id in ["a", "b", "c", "d"] {
            spec = spec.child(worker(id, &tx, OnShutdown::Die));
        }
        let sup = Supervisor::start(&node, spec).await.unwrap();
        for _ in 0..4 {
            started(&mut rx).await;
        }
        let monkey = fault::chaos(
            &node,
            &sup,
            ChaosConfig::new(7, 5.0).max_strikes(6).strike(Strike::Kill),
        );
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(started(&mut rx).await.0);
        }
        monkey.stop();
        runs.push(order);
    }
    assert_eq!(runs[0], runs[1]);
}
