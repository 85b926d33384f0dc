//! Serializable snapshots of supervision trees.

use serde::{Deserialize, Serialize};

use crate::pid::Pid;
use crate::supervisor::ChildStatus;
use crate::supervisor::spec::ChildKind;

/// A supervisor and its children, recursively, at one moment.
///
/// Taken by [`SupervisorRef::snapshot`](crate::SupervisorRef::snapshot);
/// each supervisor answers for itself, so a tree that changes while the
/// snapshot is taken may show different moments at different levels.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSnapshot {
    /// The supervisor's pid.
    pub pid: Pid,
    /// `one_for_one`, `one_for_all`, `rest_for_one` or `dynamic`.
    pub strategy: String,
    /// Restarts this supervisor has made.
    pub restarts: u64,
    /// Messages waiting in the supervisor's mailbox.
    pub mailbox_len: usize,
    /// The children in start order.
    pub children: Vec<ChildSnapshot>,
}

/// One child in a [`TreeSnapshot`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSnapshot {
    /// The child's id (its pid for children of a dynamic supervisor).
    pub id: String,
    /// Its pid while running.
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
    /// How many times it was restarted.
    pub restarts: u64,
    /// Messages waiting in its mailbox, while running.
    pub mailbox_len: Option<usize>,
    /// Its own tree, for a running supervisor child.
    pub tree: Option<Box<TreeSnapshot>>,
}

impl TreeSnapshot {
    /// Number of processes in the tree, supervisors included.
    pub fn process_count(&self) -> usize {
        1 + self
            .children
            .iter()
            .map(|c| match &c.tree {
                Some(t) => t.process_count(),
                None => usize::from(c.pid.is_some()),
            })
            .sum::<usize>()
    }

    /// Pids of all running workers in the tree (supervisors excluded).
    pub fn worker_pids(&self) -> Vec<Pid> {
        let mut out = Vec::new();
        self.collect_workers(&mut out);
        out
    }

    fn collect_workers(&self, out: &mut Vec<Pid>) {
        for c in &self.children {
            match (&c.tree, c.pid) {
                (Some(t), _) => t.collect_workers(out),
                (None, Some(pid)) if c.kind == ChildKind::Worker => out.push(pid),
                _ => {}
            }
        }
    }
}
