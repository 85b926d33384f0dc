//! Restart intensity and escalation through nested supervisors.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::time::Duration;

use supervisors::{
    ChildSpec, ExitReason, Node, Strategy, Supervisor, SupervisorRef, SupervisorSpec,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use workers::{Event, HANG, OnShutdown, make_exit, next, settle, started, worker};

async fn crash(node: &Node, rx: &mut mpsc::UnboundedReceiver<Event>, pid: supervisors::Pid) {
    make_exit(node, pid, ExitReason::error("crash")).await;
    let _ = rx;
}

#[tokio::test(start_paused = true)]
async fn intensity_is_exceeded_at_exactly_one_restart_too_many() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(10))
        .child(worker("first", &tx, OnShutdown::Report))
        .child(worker("crashy", &tx, OnShutdown::Die))
        .child(worker("last", &tx, OnShutdown::Report));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, first) = started(&mut rx).await;
    let (_, mut crashy) = started(&mut rx).await;
    let (_, last) = started(&mut rx).await;
    for _ in 0..3 {
        crash(&node, &mut rx, crashy).await;
        crashy = started(&mut rx).await.1;
        assert!(sup.is_alive());
    }
    let watch = sup.watch();
    crash(&node, &mut rx, crashy).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("last".to_owned(), last)
    );
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("first".to_owned(), first)
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_older_than_the_period_do_not_count() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(10))
        .child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, mut w) = started(&mut rx).await;
    for _ in 0..2 {
        crash(&node, &mut rx, w).await;
        w = started(&mut rx).await.1;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..2 {
        crash(&node, &mut rx, w).await;
        w = started(&mut rx).await.1;
    }
    assert!(sup.is_alive());
    let watch = sup.watch();
    crash(&node, &mut rx, w).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test]
async fn intensity_zero_stops_at_the_first_crash() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(1))
        .child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, w) = started(&mut rx).await;
    let watch = sup.watch();
    crash(&node, &mut rx, w).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_long_restart_storm_within_the_intensity_is_survived() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2000, Duration::from_secs(3600))
        .child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, mut w) = started(&mut rx).await;
    for _ in 0..2000 {
        node.kill(w);
        w = started(&mut rx).await.1;
    }
    assert!(sup.is_alive());
    let watch = sup.watch();
    node.kill(w);
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

fn mid(tx: &workers::Events) -> ChildSpec {
    let tx = tx.clone();
    ChildSpec::supervisor("mid", move || {
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, Duration::from_secs(10))
            .child(worker("w", &tx, OnShutdown::Die))
    })
}

async fn mid_ref(node: &Node, root: &SupervisorRef) -> SupervisorRef {
    let pid = workers::pid_of(root, "mid").await.unwrap();
    SupervisorRef::from_pid(node, pid).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_crash_storm_escalates_one_level_only() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(mid(&tx));
    let root = Supervisor::start(&node, spec).await.unwrap();
    let (_, w) = started(&mut rx).await;
    let first_mid = mid_ref(&node, &root).await;
    crash(&node, &mut rx, w).await;
    let (_, w) = started(&mut rx).await;
    let mid_gone = first_mid.watch();
    crash(&node, &mut rx, w).await;
    assert_eq!(timeout(HANG, mid_gone).await.unwrap(), ExitReason::Shutdown);
    let (_, w2) = started(&mut rx).await;
    assert!(node.is_alive(w2));
    settle(&root).await;
    assert!(root.is_alive());
    let second_mid = mid_ref(&node, &root).await;
    assert_ne!(second_mid.pid(), first_mid.pid());
    let snap = root.snapshot().await.unwrap();
    assert_eq!(snap.restarts, 1);
    assert_eq!(snap.children[0].restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn escalation_reaches_a_parent_without_intensity_left() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(10))
        .child(mid(&tx));
    let root = Supervisor::start(&node, spec).await.unwrap();
    let root_gone = root.watch();
    let (_, w) = started(&mut rx).await;
    crash(&node, &mut rx, w).await;
    let (_, w) = started(&mut rx).await;
    crash(&node, &mut rx, w).await;
    assert_eq!(
        timeout(HANG, root_gone).await.unwrap(),
        ExitReason::Shutdown
    );
    assert_eq!(node.process_count(), 0);
}
