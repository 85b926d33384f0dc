//! Each strategy against each restart type and exit reason, as OTP's
//! supervisor suite does.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::collections::HashMap;

use supervisors::{
    ChildStatus, ExitReason, Node, Pid, Restart, Strategy, Supervisor, SupervisorRef,
    SupervisorSpec,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use workers::{Cmd, Event, HANG, OnShutdown, next, settle, started, worker};

/// How the middle child ends.
#[derive(Clone, Debug)]
enum Ending {
    Exit(ExitReason),
    Panic,
    Kill,
}

fn endings() -> Vec<Ending> {
    vec![
        Ending::Exit(ExitReason::Normal),
        Ending::Exit(ExitReason::Shutdown),
        Ending::Exit(ExitReason::ShutdownWith("done".to_owned())),
        Ending::Exit(ExitReason::error("failed")),
        Ending::Panic,
        Ending::Kill,
    ]
}

fn is_clean(ending: &Ending) -> bool {
    matches!(ending, Ending::Exit(r) if r.is_clean())
}

async fn pids(sup: &SupervisorRef) -> HashMap<String, Option<Pid>> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.pid))
        .collect()
}

/// Children a and c are permanent; b has restart type `restart` and ends
/// with `ending`. Checks which children were stopped, in which order, and
/// which were restarted.
async fn check(strategy: Strategy, restart: Restart, ending: Ending) {
    let case = format!("{strategy:?} {restart:?} {ending:?}");
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(strategy)
        .intensity(10, std::time::Duration::from_secs(60))
        .child(worker("a", &tx, OnShutdown::Report))
        .child(worker("b", &tx, OnShutdown::Report).restart(restart))
        .child(worker("c", &tx, OnShutdown::Report));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    for _ in 0..3 {
        started(&mut rx).await;
    }
    let before = pids(&sup).await;
    let b = before["b"].unwrap();
    let watch = node.watch(b);
    match &ending {
        Ending::Exit(reason) => node
            .addr::<Cmd>(b)
            .unwrap()
            .send(Cmd::Exit(reason.clone()))
            .await
            .unwrap(),
        Ending::Panic => node.addr::<Cmd>(b).unwrap().send(Cmd::Panic).await.unwrap(),
        Ending::Kill => {
            node.kill(b);
        }
    }
    timeout(HANG, watch).await.unwrap();
    settle(&sup).await;

    let restarts =
        restart == Restart::Permanent || (restart == Restart::Transient && !is_clean(&ending));
    let restarted: &[&str] = match (restarts, strategy) {
        (false, _) => &[],
        (true, Strategy::OneForOne) => &["b"],
        (true, Strategy::OneForAll) => &["a", "b", "c"],
        (true, Strategy::RestForOne) => &["b", "c"],
        (true, _) => unreachable!(),
    };
    let stopped: Vec<&str> = restarted
        .iter()
        .rev()
        .copied()
        .filter(|id| *id != "b")
        .collect();
    for id in &stopped {
        match next(&mut rx).await {
            Event::Stopping(got, pid) => {
                assert_eq!(&got, id, "{case}: stop order");
                assert_eq!(Some(pid), before[*id], "{case}");
            }
            other => panic!("{case}: expected stop of {id}, got {other:?}"),
        }
    }
    for id in restarted {
        assert_eq!(&started(&mut rx).await.0, id, "{case}: restart order");
    }
    assert!(rx.try_recv().is_err(), "{case}: nothing else happens");

    let after = pids(&sup).await;
    for id in ["a", "b", "c"] {
        if restarted.contains(&id) {
            assert!(
                after[id].is_some() && after[id] != before[id],
                "{case}: {id} restarted"
            );
        } else if id != "b" {
            assert_eq!(after[id], before[id], "{case}: {id} untouched");
        }
    }
    if !restarts {
        let children = sup.which_children().await.unwrap();
        match restart {
            Restart::Temporary => {
                assert!(!after.contains_key("b"), "{case}: temporary spec removed")
            }
            _ => {
                let b = children.iter().find(|c| c.id == "b").unwrap();
                assert_eq!(b.status, ChildStatus::Stopped, "{case}");
            }
        }
    }
    assert!(sup.is_alive(), "{case}");
    assert_eq!(sup.shutdown().await, ExitReason::Shutdown);
}

macro_rules! matrix {
    ($($name:ident: $strategy:expr, $restart:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            for ending in endings() {
                check($strategy, $restart, ending).await;
            }
        }
    )*};
}

matrix! {
    one_for_one_permanent: Strategy::OneForOne, Restart::Permanent;
    one_for_one_transient: Strategy::OneForOne, Restart::Transient;
    one_for_one_temporary: Strategy::OneForOne, Restart::Temporary;
    one_for_all_permanent: Strategy::OneForAll, Restart::Permanent;
    one_for_all_transient: Strategy::OneForAll, Restart::Transient;
    one_for_all_temporary: Strategy::OneForAll, Restart::Temporary;
    rest_for_one_permanent: Strategy::RestForOne, Restart::Permanent;
    rest_for_one_transient: Strategy::RestForOne, Restart::Transient;
    rest_for_one_temporary: Strategy::RestForOne, Restart::Temporary;
}

#[tokio::test]
async fn one_for_all_drops_temporary_siblings_it_stops() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .child(worker("temp", &tx, OnShutdown::Report).restart(Restart::Temporary))
        .child(worker("perm", &tx, OnShutdown::Report));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    started(&mut rx).await;
    let (_, perm) = started(&mut rx).await;
    workers::make_exit(&node, perm, ExitReason::error("x")).await;
    settle(&sup).await;
    let ids: Vec<String> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["perm"]);
}

#[tokio::test]
async fn restarted_child_gets_a_new_pid_and_the_old_address_is_dead() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(worker("w", &tx, OnShutdown::Die));
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let (_, old) = started(&mut rx).await;
    let old_addr = node.addr::<Cmd>(old).unwrap();
    workers::make_exit(&node, old, ExitReason::error("x")).await;
    let (_, new) = started(&mut rx).await;
    assert_ne!(old, new);
    assert!(old_addr.send(Cmd::Panic).await.is_err());
    assert_eq!(workers::pid_of(&sup, "w").await, Some(new));
    let info = &sup.which_children().await.unwrap()[0];
    assert_eq!(info.restarts, 1);
}
