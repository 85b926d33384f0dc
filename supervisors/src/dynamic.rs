//! Dynamic supervisors (OTP's `simple_one_for_one`): many children from
//! one template, started on demand with arguments.
//!
//! Children are kept in a hash map shared by the supervisor process and its
//! handles, so starting and removing a child costs O(1) and
//! [`DynamicSupervisorRef::start_child`] runs in the caller's task, without
//! a round trip through the supervisor's mailbox. The supervisor process
//! only reacts to exits (restarts, intensity) and to shutdown, which stops
//! all children in parallel.
//!
//! # Limitations
//!
//! No restart backoff (restarts are immediate; failed restarts are retried
//! through the mailbox and count toward the intensity). Restarting a child
//! keeps a clone of its arguments, so permanent and transient children cost
//! the size of their arguments on top of the process itself.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::addr::{Addr, ExitWatch};
use crate::ctx::Ctx;
use crate::exit::{ExitReason, panic_message};
use crate::node::Node;
use crate::pid::{Pid, PidMap};
use crate::process::{Cell, Envelope};
use crate::snapshot::TreeSnapshot;
use crate::spawn::SpawnOptions;
use crate::supervisor::shutdown::{stop_all, stop_child};
use crate::supervisor::spec::{ChildCtx, ChildKind, DEFAULT_SHUTDOWN, Restart, Shutdown, Start};
use crate::supervisor::{
    ChildCounts, ChildInfo, ChildStatus, Description, RestartWindow, SupMsg, SupervisorError,
    SupervisorRef,
};

type DynStartFn<A> = Arc<
    dyn Fn(A, ChildCtx) -> Pin<Box<dyn Future<Output = Result<Start, ExitReason>> + Send>>
        + Send
        + Sync,
>;

/// The template and limits of a dynamic supervisor.
#[non_exhaustive]
pub struct DynamicSpec<A> {
    start: DynStartFn<A>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    intensity: u32,
    period: Duration,
    max_children: Option<usize>,
    name: Option<Arc<str>>,
    kill_grace: Duration,
}

impl<A> Clone for DynamicSpec<A> {
    fn clone(&self) -> Self {
        Self {
            start: self.start.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            intensity: self.intensity,
            period: self.period,
            max_children: self.max_children,
            name: self.name.clone(),
            kill_grace: self.kill_grace,
        }
    }
}

impl<A> std::fmt::Debug for DynamicSpec<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSpec")
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("max_children", &self.max_children)
            .finish()
    }
}

impl<A: Clone + Send + 'static> DynamicSpec<A> {
    /// A template whose children are started by `start(args, ctx)`, which
    /// must spawn the child linked to the supervisor (see
    /// [`ChildCtx::spawn`]). Defaults: temporary workers (as for connection
    /// processes), shutdown timeout 5 s, intensity 1 in 5 s, no limit.
    pub fn new<F, Fut>(start: F) -> Self
    where
        F: Fn(A, ChildCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Start, ExitReason>> + Send + 'static,
    {
        Self {
            start: Arc::new(move |args, ctx| Box::pin(start(args, ctx))),
            restart: Restart::Temporary,
            shutdown: Shutdown::Timeout(DEFAULT_SHUTDOWN),
            kind: ChildKind::Worker,
            intensity: 1,
            period: Duration::from_secs(5),
            max_children: None,
            name: None,
            kill_grace: Duration::from_secs(1),
        }
    }

    /// Sets the restart type of every child.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how children are stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind of every child.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// At most `intensity` restarts within any `period`.
    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Refuses `start_child` beyond this many children.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Registers the supervisor under `name`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long to wait for killed children before declaring them dead.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }
}

/// Why [`DynamicSupervisorRef::start_child`] did not start a child.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartChildError {
    /// `max_children` children are running.
    #[error("max children reached")]
    MaxChildren,
    /// The supervisor is shutting down or gone.
    #[error("supervisor is shutting down")]
    ShuttingDown,
    /// The start function returned ignore.
    #[error("start ignored")]
    Ignored,
    /// The start function failed.
    #[error("start failed: {0}")]
    Failed(ExitReason),
}

/// Starts dynamic supervisors.
#[derive(Debug)]
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// Starts a top-level dynamic supervisor with no children.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NameTaken`] when the name is registered.
    pub fn start<A: Clone + Send + 'static>(
        node: &Node,
        spec: DynamicSpec<A>,
    ) -> Result<DynamicSupervisorRef<A>, SupervisorError> {
        Self::spawn(node, None, spec)
    }

    /// Starts a dynamic supervisor linked to `parent`.
    ///
    /// # Errors
    ///
    /// As [`DynamicSupervisor::start`].
    pub fn start_linked<A: Clone + Send + 'static>(
        node: &Node,
        parent: Pid,
        spec: DynamicSpec<A>,
    ) -> Result<DynamicSupervisorRef<A>, SupervisorError> {
        Self::spawn(node, Some(parent), spec)
    }

    fn spawn<A: Clone + Send + 'static>(
        node: &Node,
        parent: Option<Pid>,
        spec: DynamicSpec<A>,
    ) -> Result<DynamicSupervisorRef<A>, SupervisorError> {
        let mut opts = SpawnOptions::new().trap_exits(true).capacity(1 << 16);
        if let Some(p) = parent {
            opts = opts.link(p);
        }
        if let Some(name) = &spec.name {
            opts = opts.name(name.clone());
        }
        let reserved = node.reserve::<SupMsg>(opts).map_err(|e| match e {
            crate::spawn::SpawnError::NameTaken(n) => SupervisorError::NameTaken(n),
            crate::spawn::SpawnError::Init(r) => SupervisorError::Exited(r),
        })?;
        reserved
            .cell()
            .with_core(&mut |c| c.untracked_children = true);
        let shared = Arc::new(Shared::new(node, reserved.cell(), spec));
        let any: Arc<dyn std::any::Any + Send + Sync> = shared.clone();
        node.inner.dynamics.insert(reserved.pid(), any);
        let body_shared = shared.clone();
        // Built outside the body so that it runs even if the body is
        // dropped before its first poll.
        let entry = Registered {
            shared: shared.clone(),
        };
        let addr = node.launch(reserved, move |ctx| run(ctx, body_shared, entry));
        Ok(DynamicSupervisorRef { shared, addr })
    }
}

/// A handle to a dynamic supervisor. Cheap to clone.
pub struct DynamicSupervisorRef<A> {
    shared: Arc<Shared<A>>,
    addr: Addr<SupMsg>,
}

impl<A> Clone for DynamicSupervisorRef<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            addr: self.addr.clone(),
        }
    }
}

impl<A> std::fmt::Debug for DynamicSupervisorRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DynamicSupervisorRef")
            .field(&self.shared.me)
            .finish()
    }
}

impl<A: Clone + Send + 'static> DynamicSupervisorRef<A> {
    /// The handle of the running dynamic supervisor `pid`, if it is one
    /// whose children take arguments of type `A`.
    pub fn from_pid(node: &Node, pid: Pid) -> Option<Self> {
        let any = node.inner.dynamics.get(&pid)?.value().clone();
        let shared = any.downcast::<Shared<A>>().ok()?;
        let addr = node.addr::<SupMsg>(pid)?;
        Some(Self { shared, addr })
    }

    /// The handle of the dynamic supervisor registered as `name`.
    pub fn whereis(node: &Node, name: &str) -> Option<Self> {
        Self::from_pid(node, node.whereis_pid(name)?)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.shared.me
    }

    /// Whether the supervisor is running.
    pub fn is_alive(&self) -> bool {
        self.addr.is_alive()
    }

    /// Resolves with the supervisor's exit reason.
    pub fn watch(&self) -> ExitWatch {
        self.addr.watch()
    }

    /// Starts a child from the template with `args`, in the caller's task.
    ///
    /// # Errors
    ///
    /// See [`StartChildError`].
    ///
    /// # Cancel safety
    ///
    /// If dropped while the start function runs, a child it spawned is not
    /// supervised (it still dies with the supervisor through its link).
    pub async fn start_child(&self, args: A) -> Result<Pid, StartChildError> {
        let shared = &*self.shared;
        {
            let mut st = shared.state.lock();
            if st.stopping {
                return Err(StartChildError::ShuttingDown);
            }
            if shared
                .max_children
                .is_some_and(|max| st.children.len() + st.in_flight >= max)
            {
                return Err(StartChildError::MaxChildren);
            }
            st.in_flight += 1;
        }
        let mut guard = InFlight {
            shared,
            done: false,
        };
        let saved = (shared.restart != Restart::Temporary).then(|| args.clone());
        let result = shared.run_start(args).await;
        let mut st = shared.state.lock();
        st.in_flight -= 1;
        guard.done = true;
        let outcome = match result {
            Ok(Start::Started(pid)) if st.stopping => {
                drop(st);
                shared.node.kill(pid);
                return Err(StartChildError::ShuttingDown);
            }
            Ok(Start::Started(pid)) => {
                st.children.insert(
                    pid,
                    Entry {
                        args: saved,
                        restarts: 0,
                    },
                );
                if let Some(reason) = st.early.remove(&pid) {
                    shared.post(&self.addr, SupMsg::ChildExited(pid, reason));
                }
                Ok(pid)
            }
            Ok(Start::Ignore) => Err(StartChildError::Ignored),
            Err(reason) => Err(StartChildError::Failed(reason)),
        };
        if st.in_flight == 0 {
            st.early.clear();
        }
        outcome
    }

    /// Stops child `pid` per the shutdown spec; it is not restarted.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`] when `pid` is not a child.
    ///
    /// # Cancel safety
    ///
    /// Once started, the child is removed even if the future is dropped; it
    /// may then stay alive (it is no longer supervised).
    pub async fn terminate_child(&self, pid: Pid) -> Result<(), SupervisorError> {
        let shared = &*self.shared;
        if shared.state.lock().children.remove(&pid).is_none() {
            return Err(SupervisorError::NotFound);
        }
        stop_child(&shared.node, shared.me, pid, shared.shutdown, shared.grace).await;
        Ok(())
    }

    /// Number of running children.
    pub fn child_count(&self) -> usize {
        self.shared.state.lock().children.len()
    }

    /// Counts in the shape of `supervisor:count_children`.
    pub fn count_children(&self) -> ChildCounts {
        self.shared.counts()
    }

    /// Pids of the running children, in no particular order.
    pub fn children(&self) -> Vec<Pid> {
        self.shared.state.lock().children.keys().copied().collect()
    }

    /// The `max_children` limit.
    pub fn max_children(&self) -> Option<usize> {
        self.shared.max_children
    }

    /// This supervisor as a [`SupervisorRef`] (for snapshots).
    pub fn as_supervisor(&self) -> SupervisorRef {
        SupervisorRef::from_addr(self.addr.clone())
    }

    /// A serializable snapshot of the supervisor and its children.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Exited`] when the supervisor is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a query).
    pub async fn snapshot(&self) -> Result<TreeSnapshot, SupervisorError> {
        self.as_supervisor().snapshot().await
    }

    /// Stops all children in parallel and the supervisor, and waits.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the shutdown.
    pub async fn shutdown(&self) -> ExitReason {
        let watch = self.watch();
        self.shared.node.exit(self.pid(), ExitReason::Shutdown);
        watch.await
    }
}

struct Entry<A> {
    args: Option<A>,
    restarts: u32,
}

struct DynState<A> {
    children: PidMap<Entry<A>>,
    in_flight: usize,
    early: PidMap<ExitReason>,
    stopping: bool,
    restarts: u64,
    window: RestartWindow,
    pending: std::collections::HashMap<u64, Entry<A>>,
    next_retry: u64,
}

struct Shared<A> {
    node: Node,
    me: Pid,
    cell: Arc<dyn Cell>,
    start: DynStartFn<A>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    max_children: Option<usize>,
    grace: Duration,
    intensity: u32,
    period: Duration,
    state: Mutex<DynState<A>>,
}

/// Keeps the in-flight count right when `start_child` is dropped.
struct InFlight<'a, A> {
    shared: &'a Shared<A>,
    done: bool,
}

impl<A> Drop for InFlight<'_, A> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.shared.state.lock();
            st.in_flight -= 1;
            if st.in_flight == 0 {
                st.early.clear();
            }
        }
    }
}

impl<A: Clone + Send + 'static> Shared<A> {
    fn new(node: &Node, cell: Arc<dyn Cell>, spec: DynamicSpec<A>) -> Self {
        Self {
            node: node.clone(),
            me: cell.pid(),
            cell,
            start: spec.start,
            restart: spec.restart,
            shutdown: spec.shutdown,
            kind: spec.kind,
            max_children: spec.max_children,
            grace: spec.kill_grace,
            intensity: spec.intensity,
            period: spec.period,
            state: Mutex::new(DynState {
                children: PidMap::default(),
                in_flight: 0,
                early: PidMap::default(),
                stopping: false,
                restarts: 0,
                window: RestartWindow::new(spec.intensity, spec.period),
                pending: std::collections::HashMap::new(),
                next_retry: 0,
            }),
        }
    }

    async fn run_start(&self, args: A) -> Result<Start, ExitReason> {
        let fut = (self.start)(args, ChildCtx::new(self.node.clone(), self.cell.clone()));
        let result = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(payload) => Err(ExitReason::Panic(panic_message(&*payload))),
        };
        if let Ok(Start::Started(pid)) = result {
            self.node.ensure_link_from(&self.cell, pid);
        }
        result
    }

    fn post(&self, addr: &Addr<SupMsg>, msg: SupMsg) {
        if let Err(e) = addr.try_send(msg) {
            let addr = addr.clone();
            let msg = e.into_inner();
            tokio::spawn(async move {
                let _ = addr.send(msg).await;
            });
        }
    }

    fn counts(&self) -> ChildCounts {
        let n = self.state.lock().children.len();
        let (supervisors, workers) = match self.kind {
            ChildKind::Supervisor => (n, 0),
            ChildKind::Worker => (0, n),
        };
        ChildCounts {
            specs: n,
            active: n,
            supervisors,
            workers,
        }
    }

    fn describe(&self) -> Description {
        let st = self.state.lock();
        let mut children: Vec<ChildInfo> = st
            .children
            .iter()
            .map(|(pid, e)| ChildInfo {
                id: pid.to_string(),
                pid: Some(*pid),
                status: ChildStatus::Running,
                kind: self.kind,
                restarts: u64::from(e.restarts),
            })
            .collect();
        children.sort_by_key(|c| c.pid);
        Description {
            strategy: "dynamic".to_owned(),
            restarts: st.restarts,
            children,
        }
    }

    /// Reacts to a child's exit; returns the supervisor's exit reason when
    /// the intensity is exceeded.
    async fn child_exited(
        &self,
        addr: &Addr<SupMsg>,
        pid: Pid,
        reason: ExitReason,
    ) -> Option<ExitReason> {
        let entry = {
            let mut st = self.state.lock();
            match st.children.remove(&pid) {
                Some(entry) => entry,
                None => {
                    if st.in_flight > 0 {
                        st.early.insert(pid, reason);
                    }
                    return None;
                }
            }
        };
        if !reason.is_clean() {
            tracing::warn!(supervisor = %self.me, child = %pid, reason = %reason, "child terminated");
        }
        let restart = match self.restart {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            Restart::Temporary => false,
        };
        if !restart {
            return None;
        }
        self.restart_entry(addr, entry).await
    }

    async fn restart_entry(&self, addr: &Addr<SupMsg>, entry: Entry<A>) -> Option<ExitReason> {
        let allowed = {
            let mut st = self.state.lock();
            let ok = st.window.add(Instant::now());
            if ok {
                st.restarts += 1;
            }
            ok
        };
        if !allowed {
            tracing::error!(
                supervisor = %self.me,
                intensity = self.intensity,
                period_ms = self.period.as_millis() as u64,
                "restart intensity exceeded"
            );
            return Some(ExitReason::Shutdown);
        }
        let args = entry.args?;
        match self.run_start(args.clone()).await {
            Ok(Start::Started(new)) => {
                tracing::info!(supervisor = %self.me, pid = %new, "child restarted");
                self.state.lock().children.insert(
                    new,
                    Entry {
                        args: Some(args),
                        restarts: entry.restarts.saturating_add(1),
                    },
                );
            }
            Ok(Start::Ignore) => {}
            Err(reason) => {
                tracing::warn!(supervisor = %self.me, reason = %reason, "child failed to restart, retrying");
                let mut st = self.state.lock();
                st.next_retry += 1;
                let key = st.next_retry;
                st.pending.insert(
                    key,
                    Entry {
                        args: Some(args),
                        restarts: entry.restarts,
                    },
                );
                drop(st);
                self.post(addr, SupMsg::RetryDynamic(key));
            }
        }
        None
    }

    /// Stops every child in parallel.
    async fn stop_children(&self) {
        let pids: Vec<Pid> = {
            let mut st = self.state.lock();
            st.stopping = true;
            st.pending.clear();
            st.children.drain().map(|(pid, _)| pid).collect()
        };
        stop_all(&self.node, self.me, pids, self.shutdown, self.grace).await;
    }
}

/// The dynamic supervisor process body.
async fn run<A: Clone + Send + 'static>(
    mut ctx: Ctx<SupMsg>,
    shared: Arc<Shared<A>>,
    _entry: Registered<A>,
) -> ExitReason {
    let addr = ctx.addr();
    let parent = ctx.parent();
    let me = ctx.pid();
    loop {
        let stop = match ctx.recv().await {
            Envelope::Exit { from, reason }
                if Some(from) == parent || (from.is_external() && from.node() == me.node()) =>
            {
                Some(reason)
            }
            Envelope::Exit { from, reason } => shared.child_exited(&addr, from, reason).await,
            Envelope::Message(msg) => handle(&shared, &addr, msg).await,
            Envelope::Down { .. } => None,
        };
        if let Some(reason) = stop {
            shared.node.inner.dynamics.remove(&me);
            shared.stop_children().await;
            tracing::debug!(supervisor = %me, reason = %reason, "dynamic supervisor stopped");
            return reason;
        }
    }
}

/// However the supervisor ends (even killed): removes the typed-lookup
/// entry and sends its exit signal to the children it still has, which do
/// not appear in its link set.
struct Registered<A: Clone + Send + 'static> {
    shared: Arc<Shared<A>>,
}

impl<A: Clone + Send + 'static> Drop for Registered<A> {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.node.inner.dynamics.remove(&shared.me);
        let children: Vec<Pid> = {
            let mut st = shared.state.lock();
            st.stopping = true;
            st.children.drain().map(|(pid, _)| pid).collect()
        };
        if children.is_empty() {
            return;
        }
        let mut reason = ExitReason::Killed;
        shared.cell.with_core(&mut |c| {
            if let Some(fatal) = &c.fatal {
                reason = fatal.clone();
            }
        });
        for pid in children {
            if let Some(child) = shared.node.cell(pid) {
                child.with_core(&mut |c| c.signal_exit(pid, shared.me, reason.clone(), true));
            }
        }
    }
}

async fn handle<A: Clone + Send + 'static>(
    shared: &Shared<A>,
    addr: &Addr<SupMsg>,
    msg: SupMsg,
) -> Option<ExitReason> {
    match msg {
        SupMsg::ChildExited(pid, reason) => return shared.child_exited(addr, pid, reason).await,
        SupMsg::RetryDynamic(key) => {
            let entry = shared.state.lock().pending.remove(&key);
            if let Some(entry) = entry {
                return shared.restart_entry(addr, entry).await;
            }
        }
        SupMsg::Describe(reply) => {
            let _ = reply.send(shared.describe());
        }
        SupMsg::WhichChildren(reply) => {
            let _ = reply.send(shared.describe().children);
        }
        SupMsg::CountChildren(reply) => {
            let _ = reply.send(shared.counts());
        }
        SupMsg::TerminateChild(_, reply) | SupMsg::DeleteChild(_, reply) => {
            let _ = reply.send(Err(SupervisorError::NotFound));
        }
        SupMsg::RestartChild(_, reply) | SupMsg::StartChild(_, reply) => {
            let _ = reply.send(Err(SupervisorError::NotFound));
        }
        SupMsg::TryAgain(_) | SupMsg::RestartDue(_) => {}
    }
    None
}
