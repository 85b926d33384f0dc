//! Shutdown order, shutdown timeouts, kill, stuck children, and the child
//! management calls.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use supervisors::{
    ChildCtx, ChildSpec, ChildStatus, ExitReason, Node, Restart, Shutdown, Start, Strategy,
    Supervisor, SupervisorError, SupervisorSpec,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use workers::{Event, HANG, OnShutdown, next, pid_of, started, worker};

#[tokio::test]
async fn shutdown_stops_children_in_reverse_start_order() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &tx, OnShutdown::Report))
        .child(worker("b", &tx, OnShutdown::Report))
        .child(worker("c", &tx, OnShutdown::Report));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let pids: Vec<_> = vec![
        started(&mut rx).await.1,
        started(&mut rx).await.1,
        started(&mut rx).await.1,
    ];
    assert_eq!(sup.shutdown().await, ExitReason::Shutdown);
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("c".to_owned(), pids[2])
    );
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("b".to_owned(), pids[1])
    );
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("a".to_owned(), pids[0])
    );
    assert_eq!(node.process_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_child_ignoring_shutdown_is_killed_after_its_timeout() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(
        worker("stubborn", &tx, OnShutdown::Ignore)
            .shutdown(Shutdown::Timeout(Duration::from_secs(2))),
    );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, pid) = started(&mut rx).await;
    let watch = node.watch(pid);
    let t0 = Instant::now();
    sup.terminate_child("stubborn").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        next(&mut rx).await,
        Event::Stopping("stubborn".to_owned(), pid)
    );
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Killed);
    assert_eq!(
        sup.which_children().await.unwrap()[0].status,
        ChildStatus::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_in_time_exits_with_shutdown() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(
        worker("polite", &tx, OnShutdown::Report)
            .shutdown(Shutdown::Timeout(Duration::from_secs(2))),
    );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, pid) = started(&mut rx).await;
    let watch = node.watch(pid);
    let t0 = Instant::now();
    sup.terminate_child("polite").await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test]
async fn brutal_kill_kills_without_a_shutdown_signal() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &tx, OnShutdown::Report).shutdown(Shutdown::BrutalKill));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, pid) = started(&mut rx).await;
    let watch = node.watch(pid);
    sup.terminate_child("w").await.unwrap();
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Killed);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn infinity_waits_for_the_child() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &tx, OnShutdown::Report).shutdown(Shutdown::Infinity));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, pid) = started(&mut rx).await;
    let watch = node.watch(pid);
    sup.terminate_child("w").await.unwrap();
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_never_yields_is_declared_dead_and_the_supervisor_carries_on() {
    let node = Node::new();
    let release = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let spin = {
        let release = release.clone();
        ChildSpec::new("spinner", move |ctx: ChildCtx| {
            let release = release.clone();
            let started_tx = started_tx.clone();
            async move {
                let addr = ctx.spawn(move |_ctx: supervisors::Ctx<()>| async move {
                    started_tx.send(()).unwrap();
                    while !release.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                    ExitReason::Normal
                });
                Ok(Start::from(addr))
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_millis(50)))
    };
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .kill_grace(Duration::from_millis(50))
        .child(spin);
    let sup = Supervisor::start(&node, spec).await.unwrap();
    timeout(HANG, started_rx.recv()).await.unwrap().unwrap();
    let pid = pid_of(&sup, "spinner").await.unwrap();
    let watch = node.watch(pid);
    timeout(HANG, sup.terminate_child("spinner"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Killed);
    assert!(!node.is_alive(pid));
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    release.store(true, Ordering::Relaxed);
}

#[tokio::test]
async fn terminate_restart_and_delete_child() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, first) = started(&mut rx).await;
    assert_eq!(sup.restart_child("w").await, Err(SupervisorError::Running));
    assert_eq!(sup.delete_child("w").await, Err(SupervisorError::Running));
    sup.terminate_child("w").await.unwrap();
    assert!(!node.is_alive(first));
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    let again = sup.restart_child("w").await.unwrap().unwrap();
    assert_eq!(started(&mut rx).await.1, again);
    sup.terminate_child("w").await.unwrap();
    sup.delete_child("w").await.unwrap();
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(
        sup.terminate_child("w").await,
        Err(SupervisorError::NotFound)
    );
    assert_eq!(sup.restart_child("w").await, Err(SupervisorError::NotFound));
    assert_eq!(sup.delete_child("w").await, Err(SupervisorError::NotFound));
}

#[tokio::test]
async fn terminating_a_temporary_child_removes_its_spec() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("t", &tx, OnShutdown::Die).restart(Restart::Temporary));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    started(&mut rx).await;
    sup.terminate_child("t").await.unwrap();
    assert!(sup.which_children().await.unwrap().is_empty());
}

#[tokio::test]
async fn start_child_appends_and_rejects_duplicates() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sup = Supervisor::start(&node, SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    let pid = sup
        .start_child(worker("x", &tx, OnShutdown::Die))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started(&mut rx).await.1, pid);
    assert_eq!(
        sup.start_child(worker("x", &tx, OnShutdown::Die)).await,
        Err(SupervisorError::AlreadyStarted(pid))
    );
    sup.terminate_child("x").await.unwrap();
    assert_eq!(
        sup.start_child(worker("x", &tx, OnShutdown::Die)).await,
        Err(SupervisorError::AlreadyPresent)
    );
    let failing = ChildSpec::new("bad", |_ctx: ChildCtx| async {
        Err(ExitReason::error("nope"))
    });
    assert_eq!(
        sup.start_child(failing).await,
        Err(SupervisorError::StartFailed {
            id: "bad".to_owned(),
            reason: ExitReason::error("nope"),
        })
    );
    assert_eq!(sup.which_children().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_fails_to_start_is_retried_and_counts() {
    let node = Node::new();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let flaky = {
        let attempts = attempts.clone();
        let tx = tx.clone();
        ChildSpec::new("flaky", move |ctx: ChildCtx| {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                if n == 1 || n == 2 {
                    return Err(ExitReason::error("not yet"));
                }
                let addr = ctx.spawn(move |mut c: supervisors::Ctx<workers::Cmd>| async move {
                    tx.send(Event::Started("flaky".to_owned(), c.pid()))
                        .unwrap();
                    match c.recv_msg().await {
                        workers::Cmd::Exit(r) => r,
                        workers::Cmd::Panic => panic!("flaky"),
                    }
                });
                Ok(Start::from(addr))
            }
        })
    };
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(flaky);
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, pid) = started(&mut rx).await;
    workers::make_exit(&node, pid, ExitReason::error("x")).await;
    let (_, pid2) = started(&mut rx).await;
    assert_ne!(pid, pid2);
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    assert_eq!(sup.snapshot().await.unwrap().restarts, 3);
}
