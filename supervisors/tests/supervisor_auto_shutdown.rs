//! auto_shutdown with significant children, and restart backoff.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::time::Duration;

use supervisors::{
    AutoShutdown, Backoff, ChildStatus, ExitReason, Node, Restart, Strategy, Supervisor,
    SupervisorSpec,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use workers::{HANG, OnShutdown, make_exit, settle, started, worker};

#[tokio::test]
async fn any_significant_stops_the_supervisor_when_one_ends() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(worker("plain", &tx, OnShutdown::Report))
        .child(
            worker("sig", &tx, OnShutdown::Die)
                .restart(Restart::Transient)
                .significant(true),
        );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    started(&mut rx).await;
    let (_, sig) = started(&mut rx).await;
    let watch = sup.watch();
    make_exit(&node, sig, ExitReason::Normal).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test]
async fn a_significant_transient_child_restarted_after_a_crash_does_not_shut_down() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(
            worker("sig", &tx, OnShutdown::Die)
                .restart(Restart::Transient)
                .significant(true),
        );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, sig) = started(&mut rx).await;
    make_exit(&node, sig, ExitReason::error("x")).await;
    started(&mut rx).await;
    settle(&sup).await;
    assert!(sup.is_alive());
}

#[tokio::test]
async fn all_significant_waits_for_the_last_one() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .auto_shutdown(AutoShutdown::AllSignificant)
        .child(
            worker("s1", &tx, OnShutdown::Die)
                .restart(Restart::Temporary)
                .significant(true),
        )
        .child(
            worker("s2", &tx, OnShutdown::Die)
                .restart(Restart::Transient)
                .significant(true),
        );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, s1) = started(&mut rx).await;
    let (_, s2) = started(&mut rx).await;
    make_exit(&node, s1, ExitReason::error("gone")).await;
    settle(&sup).await;
    assert!(sup.is_alive());
    let watch = sup.watch();
    make_exit(&node, s2, ExitReason::Shutdown).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
}

#[tokio::test]
async fn terminate_child_of_a_significant_child_does_not_shut_down() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(
            worker("sig", &tx, OnShutdown::Die)
                .restart(Restart::Transient)
                .significant(true),
        );
    let sup = Supervisor::start(&node, spec).await.unwrap();
    started(&mut rx).await;
    sup.terminate_child("sig").await.unwrap();
    settle(&sup).await;
    assert!(sup.is_alive());
}

#[tokio::test]
async fn never_ignores_non_significant_exits() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("t", &tx, OnShutdown::Die).restart(Restart::Transient));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, t) = started(&mut rx).await;
    make_exit(&node, t, ExitReason::Normal).await;
    settle(&sup).await;
    assert!(sup.is_alive());
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts_and_grows() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).jitter(0.0);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(600))
        .backoff(backoff)
        .child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, mut w) = started(&mut rx).await;
    for expected in [1u64, 2, 4] {
        let t0 = tokio::time::Instant::now();
        make_exit(&node, w, ExitReason::error("x")).await;
        settle(&sup).await;
        assert_eq!(
            sup.which_children().await.unwrap()[0].status,
            ChildStatus::Restarting
        );
        w = started(&mut rx).await.1;
        assert_eq!(t0.elapsed().as_secs(), expected);
    }
}
