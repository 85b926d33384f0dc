//! Spawn options and errors.

use std::sync::Arc;

use crate::exit::ExitReason;
use crate::pid::Pid;

/// Default mailbox capacity of a process.
pub const DEFAULT_CAPACITY: usize = 1024;

/// How to spawn a process: mailbox capacity, link, name and trap flag.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    pub(crate) capacity: usize,
    pub(crate) link: Option<Pid>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) trap_exits: bool,
}

impl SpawnOptions {
    /// Default options: capacity [`DEFAULT_CAPACITY`], no link, no name,
    /// not trapping exits.
    pub fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            link: None,
            name: None,
            trap_exits: false,
        }
    }

    /// Sets the mailbox capacity (at least 1). Senders wait while the
    /// mailbox holds this many messages. Memory grows only with use.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Links the new process to `parent` before it runs, like
    /// `spawn_link`. The parent is also what an actor treats as its parent.
    pub fn link(mut self, parent: Pid) -> Self {
        self.link = Some(parent);
        self
    }

    /// Registers the new process under `name` before it runs.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts the process trapping exits.
    pub fn trap_exits(mut self, trap: bool) -> Self {
        self.trap_exits = trap;
        self
    }
}

impl Default for SpawnOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a spawn failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The requested name is registered to another live process.
    #[error("name {0} is already registered")]
    NameTaken(String),
    /// The actor's `init` failed, or the process died during `init`.
    #[error("init failed: {0}")]
    Init(ExitReason),
}
