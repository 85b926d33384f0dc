//! Process groups, like OTP's `pg`: join, leave, members, broadcast.
//!
//! # Limitations
//!
//! Groups are local to a node (no scopes spanning nodes). A broadcast walks
//! the members once per call; it takes a snapshot of the member list, so a
//! process joining during a broadcast may miss it.

use std::sync::Arc;

use crate::addr::{Addr, TrySendError};
use crate::node::Node;
use crate::pid::Pid;
use crate::process::Process;

/// Why a group operation failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The process is not alive.
    #[error("process is not alive")]
    NoProc,
}

impl Node {
    /// Adds `pid` to `group`; a process leaves all its groups when it exits.
    /// Joining twice is a no-op (unlike `pg`, membership is a set).
    ///
    /// # Errors
    ///
    /// [`GroupError::NoProc`] when the process is not alive.
    pub fn join(&self, group: &str, pid: Pid) -> Result<(), GroupError> {
        let cell = self.cell(pid).ok_or(GroupError::NoProc)?;
        let group: Arc<str> = Arc::from(group);
        let mut joined = None;
        cell.with_core(&mut |c| {
            joined = c.attach_group(&group);
            if joined == Some(true) {
                self.inner
                    .groups
                    .entry(group.clone())
                    .or_default()
                    .insert(pid, cell.clone());
            }
        });
        joined.map(|_| ()).ok_or(GroupError::NoProc)
    }

    /// Removes `pid` from `group`; false if it was not a member.
    pub fn leave(&self, group: &str, pid: Pid) -> bool {
        let Some(cell) = self.cell(pid) else {
            return false;
        };
        let mut left = false;
        cell.with_core(&mut |c| left = c.detach_group(group));
        if left {
            self.remove_member(group, pid);
        }
        left
    }

    /// Members of `group`, sorted by pid.
    pub fn members(&self, group: &str) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self
            .inner
            .groups
            .get(group)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        pids.sort_unstable();
        pids
    }

    /// Names of all non-empty groups.
    pub fn groups(&self) -> Vec<String> {
        self.inner
            .groups
            .iter()
            .map(|e| e.key().to_string())
            .collect()
    }

    /// Sends a clone of `msg` to every member whose messages have type `M`,
    /// without waiting: members with a full mailbox miss it. Returns how
    /// many members received it.
    pub fn try_broadcast<M: Clone + Send + 'static>(&self, group: &str, msg: &M) -> usize {
        let targets = self.typed_members::<M>(group);
        let mut delivered = 0;
        for addr in targets {
            match addr.try_send(msg.clone()) {
                Ok(()) => delivered += 1,
                Err(TrySendError::Full(_) | TrySendError::Exited(_)) => {}
            }
        }
        delivered
    }

    /// Sends a clone of `msg` to every member whose messages have type `M`,
    /// waiting for room in each mailbox in turn. Returns how many members
    /// received it.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped broadcast reached only some members.
    pub async fn broadcast<M: Clone + Send + 'static>(&self, group: &str, msg: M) -> usize {
        let targets = self.typed_members::<M>(group);
        let mut delivered = 0;
        for addr in targets {
            if addr.send(msg.clone()).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Snapshot of the typed members, taken without holding the group lock
    /// while sending.
    fn typed_members<M: Send + 'static>(&self, group: &str) -> Vec<Addr<M>> {
        let Some(members) = self.inner.groups.get(group) else {
            return Vec::new();
        };
        members
            .values()
            .filter_map(|cell| cell.clone().into_any().downcast::<Process<M>>().ok())
            .map(Addr::from_process)
            .collect()
    }

    pub(crate) fn remove_member(&self, group: &str, pid: Pid) {
        let empty = match self.inner.groups.get_mut(group) {
            Some(mut members) => {
                members.remove(&pid);
                members.is_empty()
            }
            None => false,
        };
        if empty {
            self.inner.groups.remove_if(group, |_, m| m.is_empty());
        }
    }
}
