//! Fault injection: exit, kill or crash any process, and a seeded chaos
//! monkey that kills random processes under a supervisor.
//!
//! Meant for tests and chaos runs; everything here is also reachable
//! through [`Node`], gathered in one place for fault-injection harnesses.
//!
//! # Limitations
//!
//! The chaos monkey takes a snapshot of the tree on every strike, which
//! costs time proportional to the tree (and asks each supervisor in it); it
//! is meant for rates of a few hundred strikes a second at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;
pub use crate::rng::SplitMix;
use crate::supervisor::SupervisorRef;

/// Sends an exit signal with `reason` to `pid`; false if it is not alive.
pub fn exit(node: &Node, pid: Pid, reason: ExitReason) -> bool {
    node.exit(pid, reason)
}

/// Kills `pid` (untrappable); false if it is not alive.
pub fn kill(node: &Node, pid: Pid) -> bool {
    node.kill(pid)
}

/// Makes `pid` panic when it next takes an ordinary message from its
/// mailbox; false if it is not alive.
pub fn panic_on_next_message(node: &Node, pid: Pid) -> bool {
    let Some(cell) = node.cell(pid) else {
        return false;
    };
    let mut alive = false;
    cell.with_core(&mut |c| {
        alive = !c.is_exited();
        c.panic_next = true;
    });
    alive
}

/// How the chaos monkey strikes.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strike {
    /// The untrappable kill.
    Kill,
    /// An exit signal with this reason.
    Exit(ExitReason),
    /// A panic on the victim's next message.
    PanicOnNextMessage,
}

/// Chaos monkey settings.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    seed: u64,
    interval: Duration,
    strike: Strike,
    include_supervisors: bool,
    max_strikes: Option<u64>,
}

impl ChaosConfig {
    /// Strikes `per_second` times a second (at least once an hour), with
    /// victims chosen by a generator seeded with `seed`; kills workers only.
    pub fn new(seed: u64, per_second: f64) -> Self {
        let interval = if per_second > 0.0 {
            Duration::from_secs_f64((1.0 / per_second).min(3600.0))
        } else {
            Duration::from_secs(3600)
        };
        Self {
            seed,
            interval,
            strike: Strike::Kill,
            include_supervisors: false,
            max_strikes: None,
        }
    }

    /// Sets how victims are struck.
    pub fn strike(mut self, strike: Strike) -> Self {
        self.strike = strike;
        self
    }

    /// Also picks supervisors below the root as victims.
    pub fn include_supervisors(mut self, include: bool) -> Self {
        self.include_supervisors = include;
        self
    }

    /// Stops after this many strikes.
    pub fn max_strikes(mut self, max: u64) -> Self {
        self.max_strikes = Some(max);
        self
    }
}

/// A running chaos monkey; stops when told or when dropped.
#[derive(Debug)]
pub struct ChaosMonkey {
    task: JoinHandle<()>,
    strikes: Arc<AtomicU64>,
    victims: Arc<Mutex<Vec<Pid>>>,
}

/// What a chaos monkey did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaosReport {
    /// Number of strikes.
    pub strikes: u64,
    /// The victims, in order.
    pub victims: Vec<Pid>,
}

/// Starts a chaos monkey striking random processes in the tree under
/// `root` (never `root` itself), one per interval. Ticks with nothing to
/// strike are skipped. The same seed and the same tree give the same
/// choices.
pub fn chaos(node: &Node, root: &SupervisorRef, config: ChaosConfig) -> ChaosMonkey {
    let strikes = Arc::new(AtomicU64::new(0));
    let victims = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(monkey(
        node.clone(),
        root.clone(),
        config,
        strikes.clone(),
        victims.clone(),
    ));
    ChaosMonkey {
        task,
        strikes,
        victims,
    }
}

impl ChaosMonkey {
    /// Strikes so far.
    pub fn strikes(&self) -> u64 {
        self.strikes.load(Ordering::Relaxed)
    }

    /// Whether it has stopped by itself (root gone or `max_strikes` hit).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the monkey and reports what it did.
    pub fn stop(self) -> ChaosReport {
        self.task.abort();
        ChaosReport {
            strikes: self.strikes.load(Ordering::Relaxed),
            victims: self.victims.lock().clone(),
        }
    }
}

impl Drop for ChaosMonkey {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn monkey(
    node: Node,
    root: SupervisorRef,
    config: ChaosConfig,
    strikes: Arc<AtomicU64>,
    victims: Arc<Mutex<Vec<Pid>>>,
) {
    let mut rng = SplitMix::new(config.seed);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        if config
            .max_strikes
            .is_some_and(|max| strikes.load(Ordering::Relaxed) >= max)
        {
            return;
        }
        ticker.tick().await;
        let Ok(tree) = root.snapshot().await else {
            return;
        };
        let mut candidates = tree.worker_pids();
        if config.include_supervisors {
            collect_supervisors(&tree, &mut candidates);
        }
        candidates.sort_unstable();
        if candidates.is_empty() {
            continue;
        }
        let victim = candidates[rng.below(candidates.len())];
        let struck = match &config.strike {
            Strike::Kill => node.kill(victim),
            Strike::Exit(reason) => node.exit(victim, reason.clone()),
            Strike::PanicOnNextMessage => panic_on_next_message(&node, victim),
        };
        if struck {
            strikes.fetch_add(1, Ordering::Relaxed);
            victims.lock().push(victim);
            tracing::info!(victim = %victim, "chaos monkey struck");
        }
    }
}

fn collect_supervisors(tree: &crate::snapshot::TreeSnapshot, out: &mut Vec<Pid>) {
    for child in &tree.children {
        if let Some(sub) = &child.tree {
            out.push(sub.pid);
            collect_supervisors(sub, out);
        }
    }
}
