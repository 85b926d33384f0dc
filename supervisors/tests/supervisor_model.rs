//! Property test: random crash sequences leave a supervisor in the state
//! OTP's rules predict, checked against a small model of those rules.

#![allow(clippy::unwrap_used)]

#[path = "support/workers.rs"]
mod workers;

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use supervisors::{
    ChildStatus, ExitReason, Node, Restart, Strategy, Supervisor, SupervisorError, SupervisorRef,
    SupervisorSpec,
};
use tokio::sync::mpsc;
use workers::{Cmd, OnShutdown, settle, worker};

const PERIOD: u64 = 10;

#[derive(Clone, Debug)]
enum Op {
    Crash(usize, u8),
    Terminate(usize),
    Restart(usize),
    Delete(usize),
    Advance,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..4u8).prop_map(|(i, r)| Op::Crash(i, r)),
        1 => (0..4usize).prop_map(Op::Terminate),
        1 => (0..4usize).prop_map(Op::Restart),
        1 => (0..4usize).prop_map(Op::Delete),
        1 => Just(Op::Advance),
    ]
}

fn reason(code: u8) -> ExitReason {
    match code {
        0 => ExitReason::Normal,
        1 => ExitReason::Shutdown,
        2 => ExitReason::error("crash"),
        _ => ExitReason::Killed,
    }
}

#[derive(Clone, Debug)]
struct MChild {
    id: String,
    restart: Restart,
    running: bool,
    restarts: u64,
}

/// OTP's rules, written as plainly as possible.
#[derive(Debug)]
struct Model {
    strategy: Strategy,
    intensity: usize,
    now: u64,
    stamps: Vec<u64>,
    children: Vec<MChild>,
    alive: bool,
    restarts: u64,
}

impl Model {
    fn index(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.id == id)
    }

    fn crash(&mut self, id: &str, reason: &ExitReason) {
        let Some(i) = self.index(id) else { return };
        if !self.children[i].running {
            return;
        }
        self.children[i].running = false;
        let restart = match self.children[i].restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            _ => false,
        };
        if !restart {
            if self.children[i].restart == Restart::Temporary {
                self.children.remove(i);
            }
            return;
        }
        let now = self.now;
        let recent = self.stamps.iter().filter(|&&t| t + PERIOD >= now).count();
        if recent + 1 > self.intensity {
            self.alive = false;
            return;
        }
        self.stamps.push(now);
        self.restarts += 1;
        let last = self.children.len() - 1;
        let range = match self.strategy {
            Strategy::OneForOne => i..=i,
            Strategy::OneForAll => 0..=last,
            _ => i..=last,
        };
        let ids: Vec<String> = self.children[range].iter().map(|c| c.id.clone()).collect();
        self.children
            .retain(|c| c.restart != Restart::Temporary || !ids.contains(&c.id));
        for c in &mut self.children {
            if ids.contains(&c.id) {
                c.running = true;
                c.restarts += 1;
            }
        }
    }
}

fn run_case(strategy: Strategy, intensity: u32, restarts: Vec<Restart>, ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let node = Node::new();
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut spec =
            SupervisorSpec::new(strategy).intensity(intensity, Duration::from_secs(PERIOD));
        let mut model = Model {
            strategy,
            intensity: intensity as usize,
            now: 0,
            stamps: Vec::new(),
            children: Vec::new(),
            alive: true,
            restarts: 0,
        };
        for (n, restart) in restarts.iter().enumerate() {
            let id = format!("c{n}");
            spec = spec.child(worker(&id, &tx, OnShutdown::Die).restart(*restart));
            model.children.push(MChild {
                id,
                restart: *restart,
                running: true,
                restarts: 0,
            });
        }
        let sup = Supervisor::start(&node, spec).await.unwrap();
        for op in ops {
            apply(&node, &sup, &mut model, op).await;
            if !model.alive {
                let got = tokio::time::timeout(workers::HANG, sup.watch())
                    .await
                    .unwrap();
                assert_eq!(got, ExitReason::Shutdown);
                assert_eq!(
                    node.process_count(),
                    0,
                    "children stopped with the supervisor"
                );
                return;
            }
            check(&sup, &model).await;
        }
    });
}

async fn apply(node: &Node, sup: &SupervisorRef, model: &mut Model, op: Op) {
    let ids: Vec<String> = model.children.iter().map(|c| c.id.clone()).collect();
    let pick = |i: usize| ids.get(i % ids.len().max(1)).cloned();
    match op {
        Op::Crash(i, code) => {
            let Some(id) = pick(i) else { return };
            let Some(pid) = workers::pid_of(sup, &id).await else {
                return;
            };
            let r = reason(code);
            let watch = node.watch(pid);
            if r == ExitReason::Killed {
                node.kill(pid);
            } else {
                node.addr::<Cmd>(pid)
                    .unwrap()
                    .send(Cmd::Exit(r.clone()))
                    .await
                    .unwrap();
            }
            watch.await;
            model.crash(&id, &r);
            if model.alive {
                settle(sup).await;
            }
        }
        Op::Terminate(i) => {
            let Some(id) = pick(i) else { return };
            sup.terminate_child(&id).await.unwrap();
            let j = model.index(&id).unwrap();
            model.children[j].running = false;
            if model.children[j].restart == Restart::Temporary {
                model.children.remove(j);
            }
        }
        Op::Restart(i) => {
            let Some(id) = pick(i) else { return };
            let j = model.index(&id).unwrap();
            let got = sup.restart_child(&id).await;
            if model.children[j].running {
                assert_eq!(got, Err(SupervisorError::Running));
            } else {
                assert!(got.unwrap().is_some());
                model.children[j].running = true;
            }
        }
        Op::Delete(i) => {
            let Some(id) = pick(i) else { return };
            let j = model.index(&id).unwrap();
            let got = sup.delete_child(&id).await;
            if model.children[j].running {
                assert_eq!(got, Err(SupervisorError::Running));
            } else {
                got.unwrap();
                model.children.remove(j);
            }
        }
        Op::Advance => {
            tokio::time::advance(Duration::from_secs(PERIOD + 1)).await;
            model.now += PERIOD + 1;
        }
    }
}

async fn check(sup: &SupervisorRef, model: &Model) {
    assert!(sup.is_alive());
    let got = sup.which_children().await.unwrap();
    let got: Vec<(String, bool, u64)> = got
        .into_iter()
        .map(|c| (c.id, c.status == ChildStatus::Running, c.restarts))
        .collect();
    let want: Vec<(String, bool, u64)> = model
        .children
        .iter()
        .map(|c| (c.id.clone(), c.running, c.restarts))
        .collect();
    assert_eq!(got, want, "children: {model:?}");
    assert_eq!(sup.snapshot().await.unwrap().restarts, model.restarts);
}

fn restart_type() -> impl proptest::strategy::Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary)
    ]
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::OneForOne),
        Just(Strategy::OneForAll),
        Just(Strategy::RestForOne)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_crash_sequences_match_the_otp_model(
        strategy in strategy(),
        intensity in 0u32..5,
        restarts in proptest::collection::vec(restart_type(), 1..5),
        ops in proptest::collection::vec(op(), 1..25),
    ) {
        run_case(strategy, intensity, restarts, ops);
    }
}
