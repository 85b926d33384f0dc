//! Process groups, like OTP's `pg`: join, leave, members, broadcast.
//!
//! A group keeps its members in join order in a shared list that a
//! broadcast borrows as a whole (one reference count, not one per member)
//! and walks without holding the group lock. A join or leave while a
//! broadcast holds the list copies it first; otherwise the list is changed
//! in place. Walking in join order visits the records in the order they
//! were usually allocated, which costs fewer cache and TLB misses than the
//! hash order of a map.
//!
//! # Limitations
//!
//! Groups are local to a node (no scopes spanning nodes). A broadcast walks
//! the members once per call; it works on the member list as it was when
//! the broadcast began, so a process joining during a broadcast may miss it.

use std::sync::Arc;

use crate::addr::Addr;
use crate::node::Node;
use crate::pid::{Pid, PidMap};
use crate::process::{Cell, Process};

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
            .map(|m| m.index.keys().copied().collect())
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
        let Some(list) = self.member_list(group) else {
            return 0;
        };
        let mut delivered = 0;
        for cell in list.iter() {
            let Some(proc) = cell.as_any().downcast_ref::<Process<M>>() else {
                continue;
            };
            if proc.try_push(msg.clone()).is_ok() {
                delivered += 1;
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

    /// The member list of `group` as it is now, shared rather than copied,
    /// so that sending does not hold the group lock.
    fn member_list(&self, group: &str) -> Option<Arc<Vec<Arc<dyn Cell>>>> {
        self.inner.groups.get(group).map(|m| m.list.clone())
    }

    /// Addresses of the members whose messages have type `M`, for a
    /// broadcast that may wait (and so must own them).
    fn typed_members<M: Send + 'static>(&self, group: &str) -> Vec<Addr<M>> {
        let Some(list) = self.member_list(group) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|cell| cell.clone().into_any().downcast::<Process<M>>().ok())
            .map(Addr::from_process)
            .collect()
    }

    pub(crate) fn remove_member(&self, group: &str, pid: Pid) {
        let empty = match self.inner.groups.get_mut(group) {
            Some(mut members) => {
                members.remove(pid);
                members.is_empty()
            }
            None => false,
        };
        if empty {
            self.inner.groups.remove_if(group, |_, m| m.is_empty());
        }
    }
}

/// The members of one group: a list in join order, shared with running
/// broadcasts, and the position of each member in it.
#[derive(Default)]
pub(crate) struct Members {
    list: Arc<Vec<Arc<dyn Cell>>>,
    index: PidMap<usize>,
}

impl Members {
    /// Adds a member; false if it already is one.
    fn insert(&mut self, pid: Pid, cell: Arc<dyn Cell>) -> bool {
        if self.index.contains_key(&pid) {
            return false;
        }
        let list = Arc::make_mut(&mut self.list);
        self.index.insert(pid, list.len());
        list.push(cell);
        true
    }

    /// Removes a member; the last one takes its place in the list.
    fn remove(&mut self, pid: Pid) -> bool {
        let Some(at) = self.index.remove(&pid) else {
            return false;
        };
        let list = Arc::make_mut(&mut self.list);
        list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            self.index.insert(moved.pid(), at);
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}
