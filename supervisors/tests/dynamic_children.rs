//! Dynamic supervisors: start_child, max_children, restarts, parallel
//! shutdown, many children.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use supervisors::{
    ChildCtx, ChildSpec, Ctx, DynamicSpec, DynamicSupervisor, DynamicSupervisorRef, Envelope,
    ExitReason, Node, Restart, Shutdown, SpawnOptions, Start, StartChildError, Strategy,
    Supervisor, SupervisorSpec,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use workers::HANG;

/// Children report `(tag, pid)` when they start and exit on a message.
fn template(events: mpsc::UnboundedSender<(u32, supervisors::Pid)>) -> DynamicSpec<u32> {
    DynamicSpec::new(move |tag: u32, ctx: ChildCtx| {
        let events = events.clone();
        async move {
            let addr = ctx.spawn(move |mut c: Ctx<ExitReason>| async move {
                let _ = events.send((tag, c.pid()));
                c.recv_msg().await
            });
            Ok(Start::from(addr))
        }
    })
}

#[tokio::test]
async fn start_child_passes_its_arguments() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sup = DynamicSupervisor::start(&node, template(tx)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    let b = sup.start_child(2).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), (1, a));
    assert_eq!(rx.recv().await.unwrap(), (2, b));
    assert_eq!(sup.child_count(), 2);
    let mut children = sup.children();
    children.sort();
    assert_eq!(children, vec![a, b]);
    assert_eq!(sup.count_children().active, 2);
}

#[tokio::test]
async fn temporary_children_are_forgotten_when_they_exit() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = DynamicSupervisor::start(&node, template(tx)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    workers_exit(&node, a, ExitReason::error("x")).await;
    sup.as_supervisor().count_children().await.unwrap();
    assert_eq!(sup.child_count(), 0);
    assert!(sup.is_alive());
}

async fn workers_exit(node: &Node, pid: supervisors::Pid, reason: ExitReason) {
    let watch = node.watch(pid);
    node.addr::<ExitReason>(pid)
        .unwrap()
        .send(reason)
        .await
        .unwrap();
    timeout(HANG, watch).await.unwrap();
}

#[tokio::test]
async fn permanent_children_restart_with_the_same_arguments() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = template(tx)
        .restart(Restart::Permanent)
        .intensity(5, Duration::from_secs(10));
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    let a = sup.start_child(7).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), (7, a));
    workers_exit(&node, a, ExitReason::Normal).await;
    let (tag, again) = timeout(HANG, rx.recv()).await.unwrap().unwrap();
    assert_eq!(tag, 7);
    assert_ne!(again, a);
    assert_eq!(sup.children(), vec![again]);
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.strategy, "dynamic");
    assert_eq!(snap.children[0].restarts, 1);
}

#[tokio::test]
async fn max_children_is_enforced() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = DynamicSupervisor::start(&node, template(tx).max_children(2)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    sup.start_child(2).await.unwrap();
    assert_eq!(sup.start_child(3).await, Err(StartChildError::MaxChildren));
    sup.terminate_child(a).await.unwrap();
    sup.start_child(4).await.unwrap();
    assert_eq!(sup.max_children(), Some(2));
}

#[tokio::test]
async fn failed_and_ignored_starts_are_reported() {
    let node = Node::new();
    let spec = DynamicSpec::new(|n: u32, _ctx: ChildCtx| async move {
        match n {
            0 => Ok(Start::Ignore),
            _ => Err(ExitReason::error("bad args")),
        }
    });
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    assert_eq!(sup.start_child(0).await, Err(StartChildError::Ignored));
    assert_eq!(
        sup.start_child(1).await,
        Err(StartChildError::Failed(ExitReason::error("bad args")))
    );
    assert_eq!(sup.child_count(), 0);
}

#[tokio::test]
async fn terminate_child_stops_without_restart() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = DynamicSupervisor::start(&node, template(tx).restart(Restart::Permanent)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    let watch = node.watch(a);
    sup.terminate_child(a).await.unwrap();
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
    assert_eq!(sup.child_count(), 0);
    assert_eq!(
        sup.terminate_child(a).await,
        Err(supervisors::SupervisorError::NotFound)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_all_children_in_parallel_within_their_timeout() {
    let node = Node::new();
    let spec = DynamicSpec::new(|_: (), ctx: ChildCtx| async move {
        let opts = SpawnOptions::new().trap_exits(true);
        let addr = ctx
            .spawn_with(opts, |mut c: Ctx<()>| async move {
                loop {
                    c.recv().await;
                }
            })
            .map_err(ExitReason::error)?;
        Ok(Start::from(addr))
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(3)));
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    let mut watches = Vec::new();
    for _ in 0..100 {
        let pid = sup.start_child(()).await.unwrap();
        watches.push(node.watch(pid));
    }
    let t0 = Instant::now();
    assert_eq!(sup.shutdown().await, ExitReason::Shutdown);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    for w in watches {
        assert_eq!(timeout(HANG, w).await.unwrap(), ExitReason::Killed);
    }
    assert_eq!(node.process_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_and_stops_a_hundred_thousand_children() {
    let node = Node::new();
    let spec = DynamicSpec::new(|_: (), ctx: ChildCtx| async move {
        let addr = ctx.spawn(|mut c: Ctx<()>| async move {
            loop {
                c.recv().await;
            }
        });
        Ok(Start::from(addr))
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)));
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    for _ in 0..100_000 {
        sup.start_child(()).await.unwrap();
    }
    assert_eq!(sup.child_count(), 100_000);
    assert_eq!(node.process_count(), 100_001);
    assert_eq!(
        timeout(HANG, sup.shutdown()).await.unwrap(),
        ExitReason::Shutdown
    );
    assert_eq!(node.process_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_dies_during_its_start_is_still_restarted() {
    let node = Node::new();
    let starts = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = {
        let starts = starts.clone();
        DynamicSpec::new(move |_: (), ctx: ChildCtx| {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            async move {
                let addr = ctx.spawn(move |mut c: Ctx<()>| async move {
                    if n == 0 {
                        return ExitReason::error("died at once");
                    }
                    tx.send(c.pid()).unwrap();
                    loop {
                        c.recv().await;
                    }
                });
                if n == 0 {
                    addr.watch().await;
                }
                Ok(Start::from(addr))
            }
        })
        .restart(Restart::Permanent)
        .intensity(3, Duration::from_secs(10))
    };
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    let first = sup.start_child(()).await.unwrap();
    let second = timeout(HANG, rx.recv()).await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    sup.as_supervisor().count_children().await.unwrap();
    assert_eq!(sup.children(), vec![second]);
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_intensity_stops_everything() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let spec = template(tx)
        .restart(Restart::Permanent)
        .intensity(1, Duration::from_secs(10));
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    let a = sup.start_child(1).await.unwrap();
    let b = sup.start_child(2).await.unwrap();
    let b_gone = node.watch(b);
    workers_exit(&node, a, ExitReason::error("x")).await;
    sup.as_supervisor().count_children().await.unwrap();
    let a2 = sup.children().into_iter().find(|p| *p != b).unwrap();
    let watch = sup.watch();
    workers_exit(&node, a2, ExitReason::error("x")).await;
    assert_eq!(timeout(HANG, watch).await.unwrap(), ExitReason::Shutdown);
    assert_eq!(timeout(HANG, b_gone).await.unwrap(), ExitReason::Shutdown);
    assert_eq!(sup.start_child(3).await, Err(StartChildError::ShuttingDown));
}

#[tokio::test]
async fn a_dynamic_supervisor_under_a_supervisor_is_found_by_name() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::dynamic("sessions", move || {
            template(tx.clone()).name("sessions")
        }));
    let root = Supervisor::start(&node, spec).await.unwrap();
    let sessions = DynamicSupervisorRef::<u32>::whereis(&node, "sessions").unwrap();
    assert!(DynamicSupervisorRef::<String>::whereis(&node, "sessions").is_none());
    sessions.start_child(1).await.unwrap();
    let snap = root.snapshot().await.unwrap();
    assert_eq!(snap.children[0].id, "sessions");
    assert_eq!(snap.children[0].tree.as_ref().unwrap().children.len(), 1);
    assert_eq!(snap.process_count(), 3);
    let json = serde_json::to_string(&snap).unwrap();
    let back: supervisors::TreeSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    assert_eq!(root.shutdown().await, ExitReason::Shutdown);
    assert_eq!(node.process_count(), 0);
    let _ = Envelope::<()>::Message(());
}

#[tokio::test]
async fn killing_a_dynamic_supervisor_takes_its_children_down() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = DynamicSupervisor::start(&node, template(tx)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    let b = sup.start_child(2).await.unwrap();
    let (wa, wb) = (node.watch(a), node.watch(b));
    node.kill(sup.pid());
    assert_eq!(
        timeout(HANG, sup.watch()).await.unwrap(),
        ExitReason::Killed
    );
    assert_eq!(timeout(HANG, wa).await.unwrap(), ExitReason::Killed);
    assert_eq!(timeout(HANG, wb).await.unwrap(), ExitReason::Killed);
    assert_eq!(node.process_count(), 0);
}

#[tokio::test]
async fn a_dynamic_supervisor_hears_its_parents_exit() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let parent = node.spawn(|mut ctx: Ctx<()>| async move {
        ctx.recv().await;
        ExitReason::error("parent failed")
    });
    let sup = DynamicSupervisor::start_linked(&node, parent.pid(), template(tx)).unwrap();
    let a = sup.start_child(1).await.unwrap();
    let wa = node.watch(a);
    parent.send(()).await.unwrap();
    assert_eq!(
        timeout(HANG, sup.watch()).await.unwrap(),
        ExitReason::error("parent failed")
    );
    assert_eq!(timeout(HANG, wa).await.unwrap(), ExitReason::Shutdown);
}
