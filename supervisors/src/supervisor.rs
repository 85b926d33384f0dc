//! Supervisors: start children in order, restart them by strategy within
//! a restart intensity, stop them in reverse order.
//!
//! The behaviour follows OTP's `supervisor` module; `SEMANTICS.md` lists
//! every rule. A supervisor is itself a process that traps exits, so it can
//! be the child of another supervisor.
//!
//! # Limitations
//!
//! Requests to a supervisor (`which_children`, `start_child`, ...) wait as
//! long as the supervisor is busy, for example while it stops a child that
//! takes its whole shutdown timeout; there is no request timeout, as with
//! OTP's `infinity` calls.

mod intensity;
mod server;
pub(crate) mod shutdown;
pub(crate) mod spec;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::addr::{Addr, CallError, ExitWatch, ReplyTo};
use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;
use crate::snapshot::{ChildSnapshot, TreeSnapshot};
use crate::spawn::SpawnOptions;

pub(crate) use self::intensity::{BackoffState, RestartWindow};
use self::spec::{ChildKind, ChildSpec, Strategy, SupervisorSpec};

/// Starts supervisors.
#[derive(Debug)]
pub struct Supervisor;

impl Supervisor {
    /// Starts a top-level supervisor: spawns it, starts its children in
    /// order and returns once all have started.
    ///
    /// Any supervisor treats an exit signal sent from outside processes
    /// ([`Node::exit`]) like one from its parent: it stops its children and
    /// exits with that reason.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::StartFailed`] when a child fails to start (the
    /// children already started are stopped in reverse order first),
    /// [`SupervisorError::InvalidSpec`] for a bad spec,
    /// [`SupervisorError::NameTaken`] when the name is registered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the supervisor once spawned.
    pub async fn start(
        node: &Node,
        spec: SupervisorSpec,
    ) -> Result<SupervisorRef, SupervisorError> {
        Self::spawn(node, None, spec).await
    }

    /// Starts a supervisor linked to `parent` (its parent supervisor).
    ///
    /// # Errors
    ///
    /// As [`Supervisor::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`Supervisor::start`].
    pub async fn start_linked(
        node: &Node,
        parent: Pid,
        spec: SupervisorSpec,
    ) -> Result<SupervisorRef, SupervisorError> {
        Self::spawn(node, Some(parent), spec).await
    }

    async fn spawn(
        node: &Node,
        parent: Option<Pid>,
        spec: SupervisorSpec,
    ) -> Result<SupervisorRef, SupervisorError> {
        server::validate(&spec)?;
        let mut opts = SpawnOptions::new()
            .trap_exits(true)
            .capacity(SUPERVISOR_CAPACITY);
        if let Some(p) = parent {
            opts = opts.link(p);
        }
        if let Some(name) = &spec.name {
            opts = opts.name(name.clone());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let addr = node
            .spawn_with(opts, move |ctx| server::run(ctx, spec, tx))
            .map_err(|e| match e {
                crate::spawn::SpawnError::NameTaken(n) => SupervisorError::NameTaken(n),
                crate::spawn::SpawnError::Init(r) => SupervisorError::Exited(r),
            })?;
        match rx.await {
            Ok(Ok(())) => Ok(SupervisorRef { addr }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SupervisorError::Exited(addr.watch().await)),
        }
    }
}

/// Mailbox capacity of supervisors (requests and self-messages).
const SUPERVISOR_CAPACITY: usize = 1 << 16;

/// A handle to a running supervisor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SupervisorRef {
    addr: Addr<SupMsg>,
}

impl SupervisorRef {
    /// The handle of a supervisor or dynamic supervisor process, if `pid`
    /// is one.
    pub fn from_pid(node: &Node, pid: Pid) -> Option<Self> {
        node.addr::<SupMsg>(pid).map(|addr| Self { addr })
    }

    pub(crate) fn from_addr(addr: Addr<SupMsg>) -> Self {
        Self { addr }
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.addr.pid()
    }

    /// Whether the supervisor is running.
    pub fn is_alive(&self) -> bool {
        self.addr.is_alive()
    }

    /// Resolves with the supervisor's exit reason.
    pub fn watch(&self) -> ExitWatch {
        self.addr.watch()
    }

    /// The children in start order, like `supervisor:which_children`.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Exited`] when the supervisor is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a query).
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.request(SupMsg::WhichChildren).await
    }

    /// Counts of specs, running children, supervisors and workers.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Exited`] when the supervisor is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a query).
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.request(SupMsg::CountChildren).await
    }

    /// Stops a child per its shutdown spec. A temporary child's spec is
    /// removed; others stay and can be restarted with `restart_child`.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`], [`SupervisorError::Exited`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id: Arc<str> = Arc::from(id);
        self.request(|r| SupMsg::TerminateChild(id, r)).await?
    }

    /// Starts a stopped child again; `None` when its start returned ignore.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`], [`SupervisorError::Running`],
    /// [`SupervisorError::StartFailed`], [`SupervisorError::Exited`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request.
    pub async fn restart_child(&self, id: &str) -> Result<Option<Pid>, SupervisorError> {
        let id: Arc<str> = Arc::from(id);
        self.request(|r| SupMsg::RestartChild(id, r)).await?
    }

    /// Removes the spec of a stopped child.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`], [`SupervisorError::Running`],
    /// [`SupervisorError::Exited`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id: Arc<str> = Arc::from(id);
        self.request(|r| SupMsg::DeleteChild(id, r)).await?
    }

    /// Adds a child at the end and starts it; `None` when it returned
    /// ignore (the spec is kept unless temporary).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::AlreadyStarted`], [`SupervisorError::AlreadyPresent`],
    /// [`SupervisorError::InvalidSpec`], [`SupervisorError::StartFailed`],
    /// [`SupervisorError::Exited`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the request.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<Pid>, SupervisorError> {
        self.request(|r| SupMsg::StartChild(spec, r)).await?
    }

    /// Stops the supervisor like its parent would (exit signal `Shutdown`)
    /// and waits for it to exit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the shutdown.
    pub async fn shutdown(&self) -> ExitReason {
        let watch = self.watch();
        self.addr
            .process_node()
            .exit(self.pid(), ExitReason::Shutdown);
        watch.await
    }

    /// A serializable snapshot of this supervisor's whole tree.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Exited`] when this supervisor is gone (gone
    /// subtrees show as children without a tree).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a query).
    pub fn snapshot(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<TreeSnapshot, SupervisorError>> + Send + '_>> {
        Box::pin(async move {
            let node = self.addr.process_node();
            let desc = self.request(SupMsg::Describe).await?;
            let mut children = Vec::with_capacity(desc.children.len());
            for c in desc.children {
                let tree = match (c.kind, c.pid) {
                    (ChildKind::Supervisor, Some(pid)) => match Self::from_pid(&node, pid) {
                        Some(sub) => sub.snapshot().await.ok().map(Box::new),
                        None => None,
                    },
                    _ => None,
                };
                children.push(ChildSnapshot {
                    id: c.id,
                    pid: c.pid,
                    kind: c.kind,
                    status: c.status,
                    restarts: c.restarts,
                    mailbox_len: c.pid.and_then(|p| node.mailbox_len(p)),
                    tree,
                });
            }
            Ok(TreeSnapshot {
                pid: self.pid(),
                strategy: desc.strategy,
                restarts: desc.restarts,
                mailbox_len: self.addr.mailbox_len(),
                children,
            })
        })
    }

    async fn request<R>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> SupMsg,
    ) -> Result<R, SupervisorError> {
        self.addr.request(make).await.map_err(|e| match e {
            CallError::Exited(r) => SupervisorError::Exited(r),
            other => SupervisorError::Exited(ExitReason::error(other)),
        })
    }
}

/// A child as listed by `which_children`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// Its pid while running.
    pub pid: Option<Pid>,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// How many times the supervisor restarted it.
    pub restarts: u64,
}

/// Whether a child runs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildStatus {
    /// Running.
    Running,
    /// Waiting for a restart (a retry after a failed start, or a backoff).
    Restarting,
    /// Not running (terminated, ignored, or a transient child that ended).
    Stopped,
}

/// Counts returned by `count_children`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    /// Child specs held, running or not.
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Specs of kind supervisor.
    pub supervisors: usize,
    /// Specs of kind worker.
    pub workers: usize,
}

/// Why a supervisor operation failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No child with this id.
    #[error("no child with this id")]
    NotFound,
    /// The child is running (or restarting).
    #[error("child is running")]
    Running,
    /// A child with this id is running.
    #[error("child already started as {0}")]
    AlreadyStarted(Pid),
    /// A stopped child with this id exists.
    #[error("child spec already present")]
    AlreadyPresent,
    /// A child failed to start.
    #[error("child {id} failed to start: {reason}")]
    StartFailed {
        /// The child's id.
        id: String,
        /// What its start returned or died of.
        reason: ExitReason,
    },
    /// The spec is invalid (duplicate id, significant permanent child, ...).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The supervisor's name is registered.
    #[error("name {0} is already registered")]
    NameTaken(String),
    /// The supervisor has exited with this reason.
    #[error("supervisor exited: {0}")]
    Exited(ExitReason),
}

/// Requests a supervisor process serves; shared by both kinds.
pub(crate) enum SupMsg {
    WhichChildren(ReplyTo<Vec<ChildInfo>>),
    CountChildren(ReplyTo<ChildCounts>),
    TerminateChild(Arc<str>, ReplyTo<Result<(), SupervisorError>>),
    RestartChild(Arc<str>, ReplyTo<Result<Option<Pid>, SupervisorError>>),
    DeleteChild(Arc<str>, ReplyTo<Result<(), SupervisorError>>),
    StartChild(ChildSpec, ReplyTo<Result<Option<Pid>, SupervisorError>>),
    Describe(ReplyTo<Description>),
    /// Retry a restart that failed to start (counts as a restart).
    TryAgain(Arc<str>),
    /// A backoff delay ended.
    RestartDue(Arc<str>),
    /// Dynamic supervisors: a child exit seen before its start finished.
    ChildExited(Pid, ExitReason),
    /// Dynamic supervisors: retry a restart that failed to start.
    RetryDynamic(u64),
}

/// What a supervisor reports for a snapshot.
pub(crate) struct Description {
    pub(crate) strategy: String,
    pub(crate) restarts: u64,
    pub(crate) children: Vec<ChildInfo>,
}

impl Strategy {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::OneForOne => "one_for_one",
            Self::OneForAll => "one_for_all",
            Self::RestForOne => "rest_for_one",
        }
    }
}
