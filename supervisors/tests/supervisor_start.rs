//! Supervisor start-up: order, failures, ignore, invalid specs.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use supervisors::{
    AutoShutdown, ChildCtx, ChildSpec, ChildStatus, ExitReason, Node, Restart, Start, Strategy,
    Supervisor, SupervisorError, SupervisorSpec,
};
use tokio::sync::mpsc;
use workers::{Event, OnShutdown, next, started, worker};

#[tokio::test]
async fn starts_children_in_order() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &tx, OnShutdown::Die))
        .child(worker("b", &tx, OnShutdown::Die))
        .child(worker("c", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let order: Vec<String> = vec![
        started(&mut rx).await.0,
        started(&mut rx).await.0,
        started(&mut rx).await.0,
    ];
    assert_eq!(order, ["a", "b", "c"]);
    let ids: Vec<String> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let counts = sup.count_children().await.unwrap();
    assert_eq!(
        (
            counts.specs,
            counts.active,
            counts.workers,
            counts.supervisors
        ),
        (3, 3, 3, 0)
    );
}

#[tokio::test]
async fn failed_child_start_stops_started_children_in_reverse_and_fails() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let failing = ChildSpec::new("bad", |_ctx: ChildCtx| async {
        Err(ExitReason::error("no"))
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &tx, OnShutdown::Report))
        .child(worker("b", &tx, OnShutdown::Report))
        .child(failing)
        .child(worker("never", &tx, OnShutdown::Report));
    let err = Supervisor::start(&node, spec).await.unwrap_err();
    assert_eq!(
        err,
        SupervisorError::StartFailed {
            id: "bad".to_owned(),
            reason: ExitReason::error("no"),
        }
    );
    let (_, a) = started(&mut rx).await;
    let (_, b) = started(&mut rx).await;
    assert_eq!(next(&mut rx).await, Event::Stopping("b".to_owned(), b));
    assert_eq!(next(&mut rx).await, Event::Stopping("a".to_owned(), a));
    assert!(!node.is_alive(a) && !node.is_alive(b));
}

#[tokio::test]
async fn panicking_start_is_a_failed_start() {
    let node = Node::new();
    let failing = ChildSpec::new("bad", |_ctx: ChildCtx| async { panic!("start exploded") });
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(failing);
    let err = Supervisor::start(&node, spec).await.unwrap_err();
    assert_eq!(
        err,
        SupervisorError::StartFailed {
            id: "bad".to_owned(),
            reason: ExitReason::Panic("start exploded".to_owned()),
        }
    );
}

#[tokio::test]
async fn ignore_keeps_the_spec_unless_temporary() {
    let node = Node::new();
    let ignore = |id: &str| ChildSpec::new(id, |_ctx: ChildCtx| async { Ok(Start::Ignore) });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ignore("kept"))
        .child(ignore("dropped").restart(Restart::Temporary));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let children = sup.which_children().await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].id, "kept");
    assert_eq!(children[0].status, ChildStatus::Stopped);
    assert_eq!(children[0].pid, None);
}

#[tokio::test]
async fn invalid_specs_are_rejected() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let dup = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("a", &tx, OnShutdown::Die))
        .child(worker("a", &tx, OnShutdown::Die));
    assert!(matches!(
        Supervisor::start(&node, dup).await,
        Err(SupervisorError::InvalidSpec(_))
    ));
    let permanent = SupervisorSpec::new(Strategy::OneForOne)
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(worker("a", &tx, OnShutdown::Die).significant(true));
    assert!(matches!(
        Supervisor::start(&node, permanent).await,
        Err(SupervisorError::InvalidSpec(_))
    ));
    let never = SupervisorSpec::new(Strategy::OneForOne).child(
        worker("a", &tx, OnShutdown::Die)
            .restart(Restart::Transient)
            .significant(true),
    );
    assert!(matches!(
        Supervisor::start(&node, never).await,
        Err(SupervisorError::InvalidSpec(_))
    ));
}

#[tokio::test]
async fn registered_name_finds_the_supervisor() {
    let node = Node::new();
    let spec = SupervisorSpec::new(Strategy::OneForOne).name("root");
    let sup = Supervisor::start(&node, spec.clone()).await.unwrap();
    assert_eq!(node.whereis_pid("root"), Some(sup.pid()));
    assert_eq!(
        Supervisor::start(&node, spec).await.unwrap_err(),
        SupervisorError::NameTaken("root".to_owned())
    );
    assert_eq!(sup.shutdown().await, ExitReason::Shutdown);
    assert_eq!(node.whereis_pid("root"), None);
}
