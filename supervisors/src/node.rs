//! The node: a handle owning a process table, a registry and groups.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::runtime::Handle;
use tracing::Instrument;

use crate::actor::{Actor, run_actor};
use crate::addr::{Addr, ExitWatch};
use crate::ctx::Ctx;
use crate::deadline::{Deadlines, TICK};
use crate::exit::ExitReason;
use crate::pid::{IdBuild, MonitorRef, Pid};
use crate::process::{Cell, ExitCounter, Process, ProcessTask, Watcher};
use crate::spawn::{SpawnError, SpawnOptions};

/// Hands out node ids so that pids of different nodes never compare equal.
static NEXT_NODE: AtomicU16 = AtomicU16::new(0);

/// A handle to one independent runtime of processes: its process table,
/// registry and process groups. Cheap to clone; all clones are the same node.
///
/// Processes run as tasks on the tokio runtime the node was created on.
/// Several nodes can live in one program; their pids never collide.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    id: u16,
    handle: Handle,
    next_serial: AtomicU64,
    next_ref: AtomicU64,
    pub(crate) procs: DashMap<Pid, Arc<dyn Cell>, IdBuild>,
    pub(crate) names: DashMap<Arc<str>, Pid>,
    pub(crate) groups: DashMap<Arc<str>, crate::group::Members>,
    /// Shared state of running dynamic supervisors, for typed lookups.
    pub(crate) dynamics: DashMap<Pid, Arc<dyn std::any::Any + Send + Sync>, IdBuild>,
    /// Calls waiting for a reply whose deadline is still far away.
    pub(crate) deadlines: Deadlines,
}

impl Node {
    /// Creates a node on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime; use
    /// [`Node::with_handle`] there.
    pub fn new() -> Self {
        Self::with_handle(Handle::current())
    }

    /// Creates a node whose processes run on the runtime behind `handle`.
    ///
    /// The node runs one task of its own besides its processes: a timer
    /// that ticks every 500 ms while the node lives and wakes calls whose
    /// deadline comes near (see `anchor_timers`). The runtime needs its
    /// time driver enabled, as for any timeout.
    pub fn with_handle(handle: Handle) -> Self {
        let id = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(NodeInner {
            id,
            handle: handle.clone(),
            next_serial: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            procs: DashMap::default(),
            names: DashMap::new(),
            groups: DashMap::new(),
            dynamics: DashMap::default(),
            deadlines: Deadlines::default(),
        });
        drop(handle.spawn(anchor_timers(Arc::downgrade(&inner))));
        Self { inner }
    }

    /// This node's id, the first number of its pids.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// The pid standing for code outside any process of this node.
    pub fn external_pid(&self) -> Pid {
        Pid::new(self.inner.id, 0)
    }

    /// Spawns a process running `body` with default options.
    ///
    /// The body receives the process's [`Ctx`]; the [`ExitReason`] it
    /// returns is the process's exit reason.
    pub fn spawn<M, F, Fut>(&self, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let proc = self.create::<M>(&SpawnOptions::new());
        self.start(proc, None, body)
    }

    /// Spawns a process with options (mailbox capacity, link, name, trap).
    ///
    /// # Errors
    ///
    /// [`SpawnError::NameTaken`] when the requested name is registered.
    pub fn spawn_with<M, F, Fut>(&self, opts: SpawnOptions, body: F) -> Result<Addr<M>, SpawnError>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let proc = self.create::<M>(&opts);
        self.prepare(&proc, &opts)?;
        Ok(self.start(proc, opts.link, body))
    }

    /// Spawns an [`Actor`] and waits until its `init` has finished, like
    /// OTP's `gen_server:start_link`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Init`] with the reason when `init` fails or the process
    /// dies before finishing it; [`SpawnError::NameTaken`] as for
    /// [`Node::spawn_with`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the actor once it is spawned.
    pub async fn spawn_actor<A: Actor>(
        &self,
        opts: SpawnOptions,
        args: A::Args,
    ) -> Result<Addr<A::Msg>, SpawnError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let addr = self.spawn_with(opts, move |ctx| run_actor::<A>(args, ctx, Some(tx)))?;
        match rx.await {
            Ok(Ok(())) => Ok(addr),
            Ok(Err(reason)) => Err(SpawnError::Init(reason)),
            Err(_) => Err(SpawnError::Init(addr.watch().await)),
        }
    }

    /// Sends an exit signal with `reason` to `pid`, as from outside any
    /// process. Returns false when no such process is alive.
    ///
    /// As in OTP: a process that traps exits receives it as a message;
    /// otherwise a `Normal` signal is ignored and any other reason kills it
    /// with that reason.
    pub fn exit(&self, pid: Pid, reason: ExitReason) -> bool {
        self.exit_from(self.external_pid(), pid, reason)
    }

    /// Sends an exit signal with `reason` to `pid` as if process `from` had
    /// called `exit`. For fault injection and for code acting on behalf of
    /// a process. Returns false when `pid` is not alive.
    pub fn exit_as(&self, from: Pid, pid: Pid, reason: ExitReason) -> bool {
        self.exit_from(from, pid, reason)
    }

    /// Kills `pid` with the untrappable kill; it exits with
    /// [`ExitReason::Killed`]. Returns false when no such process is alive.
    pub fn kill(&self, pid: Pid) -> bool {
        let Some(cell) = self.cell(pid) else {
            return false;
        };
        cell.with_core(&mut |c| c.kill());
        true
    }

    /// Links two processes, as if `a` had called `link(b)`.
    ///
    /// When `b` does not exist, `a` receives an exit signal with reason
    /// `NoProc` (and dies of it unless it traps exits). Returns false when
    /// `a` itself does not exist.
    pub fn link(&self, a: Pid, b: Pid) -> bool {
        let Some(cell_a) = self.cell(a) else {
            return false;
        };
        self.link_cells(&cell_a, b);
        true
    }

    /// Links `a` and `b` unless `a` already holds the link (the common
    /// case of a child spawned linked to its supervisor), checked on `a`'s
    /// own record without a table lookup.
    pub(crate) fn ensure_link_from(&self, a: &Arc<dyn Cell>, b: Pid) {
        let mut linked = false;
        let mut untracked = false;
        a.with_core(&mut |c| {
            linked = c.is_linked(b) || (c.untracked_children && c.recent_child == b.raw());
            untracked = c.untracked_children;
        });
        if linked {
            return;
        }
        if !untracked {
            self.link(a.pid(), b);
            return;
        }
        // Only the child's side records the link: look there.
        match self.cell(b) {
            Some(child) => {
                child.with_core(&mut |c| linked = c.is_linked(a.pid()));
                if !linked {
                    self.link_pair(&child, a.pid(), Some(a));
                }
            }
            None => a.with_core(&mut |c| c.signal_exit(a.pid(), b, ExitReason::NoProc, true)),
        }
    }

    /// Removes the link between `a` and `b`, if any.
    pub fn unlink(&self, a: Pid, b: Pid) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(cell) = self.cell(x) {
                cell.with_core(&mut |c| {
                    c.remove_link(y);
                });
            }
        }
    }

    /// A future that resolves with the exit reason of `pid` (`NoProc` if it
    /// is not alive now). A one-way monitor for code outside processes.
    pub fn watch(&self, pid: Pid) -> ExitWatch {
        match self.cell(pid) {
            Some(cell) => self.watch_cell(cell),
            None => ExitWatch::ready(ExitReason::NoProc),
        }
    }

    /// Whether `pid` is a live process of this node.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.cell(pid).is_some_and(|c| c.is_alive())
    }

    /// The typed address of `pid`, if it is alive and its messages have
    /// type `M`.
    pub fn addr<M: Send + 'static>(&self, pid: Pid) -> Option<Addr<M>> {
        let any = self.cell(pid)?.into_any();
        any.downcast::<Process<M>>().ok().map(Addr::from_process)
    }

    /// Number of live processes.
    pub fn process_count(&self) -> usize {
        self.inner.procs.len()
    }

    /// Pids of all live processes, in no particular order.
    pub fn pids(&self) -> Vec<Pid> {
        self.inner.procs.iter().map(|e| *e.key()).collect()
    }

    /// Number of ordinary messages queued for `pid`.
    pub fn mailbox_len(&self, pid: Pid) -> Option<usize> {
        self.cell(pid).map(|c| c.mailbox_len())
    }

    /// Ends `pid` from outside its task and notifies links and monitors
    /// now, for a task that does not stop; the task itself ends when it
    /// next yields.
    pub(crate) fn force_exit(&self, pid: Pid, reason: ExitReason) {
        if let Some(cell) = self.cell(pid) {
            cell.force_exit(reason);
        }
    }

    /// Creates a process record (and registers its name) without starting
    /// it, so that its pid is known before its body is built.
    pub(crate) fn reserve<M: Send + 'static>(
        &self,
        opts: SpawnOptions,
    ) -> Result<Reserved<M>, SpawnError> {
        let proc = self.create::<M>(&opts);
        self.prepare(&proc, &opts)?;
        Ok(Reserved {
            proc,
            link: opts.link,
        })
    }

    /// Starts a reserved process.
    pub(crate) fn launch<M, F, Fut>(&self, reserved: Reserved<M>, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.start(reserved.proc, reserved.link, body)
    }

    /// Spawns an unnamed process linked to `parent` (cannot fail).
    pub(crate) fn spawn_under_plain<M, F, Fut>(&self, parent: &Arc<dyn Cell>, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let opts = SpawnOptions::new().link(parent.pid());
        let proc = self.create::<M>(&opts);
        self.start_with(proc, Some(parent), opts.link, body)
    }

    /// Spawns a process linked to `parent`, whose record the caller holds.
    pub(crate) fn spawn_under<M, F, Fut>(
        &self,
        parent: &Arc<dyn Cell>,
        opts: SpawnOptions,
        body: F,
    ) -> Result<Addr<M>, SpawnError>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let opts = opts.link(parent.pid());
        let proc = self.create::<M>(&opts);
        self.prepare(&proc, &opts)?;
        Ok(self.start_with(proc, Some(parent), opts.link, body))
    }

    pub(crate) fn cell(&self, pid: Pid) -> Option<Arc<dyn Cell>> {
        self.inner.procs.get(&pid).map(|e| e.value().clone())
    }

    pub(crate) fn next_ref(&self) -> MonitorRef {
        MonitorRef(self.inner.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn exit_from(&self, from: Pid, pid: Pid, reason: ExitReason) -> bool {
        let Some(cell) = self.cell(pid) else {
            return false;
        };
        cell.with_core(&mut |c| c.signal_exit(pid, from, reason.clone(), false));
        true
    }

    /// Links `a` to `b`: `a`'s side first, so that if `b` exits meanwhile it
    /// already sees the link and signals `a`.
    pub(crate) fn link_cells(&self, a: &Arc<dyn Cell>, b: Pid) {
        self.link_pair(a, b, None);
    }

    /// Links `a` to `b`, using `b_cell` when the caller already holds it;
    /// with `b_cell`, `a` is a child spawned under `b`.
    fn link_pair(&self, a: &Arc<dyn Cell>, b: Pid, b_cell: Option<&Arc<dyn Cell>>) {
        let a_pid = a.pid();
        if a_pid == b {
            return;
        }
        let mut ok = false;
        a.with_core(&mut |c| ok = c.add_link(b));
        if !ok {
            return;
        }
        let mut linked = false;
        match b_cell {
            Some(cell_b) => cell_b.with_core(&mut |c| linked = c.add_child_link(a_pid)),
            None => {
                if let Some(cell_b) = self.cell(b) {
                    cell_b.with_core(&mut |c| linked = c.add_link(a_pid));
                }
            }
        }
        if !linked {
            a.with_core(&mut |c| c.signal_exit(a_pid, b, ExitReason::NoProc, true));
        }
    }

    /// Monitors `target` on behalf of the process `watcher`.
    pub(crate) fn monitor_from(&self, watcher: &Arc<dyn Cell>, target: Pid) -> MonitorRef {
        let reference = self.next_ref();
        let me = watcher.pid();
        watcher.with_core(&mut |c| c.add_monitor(reference, target));
        let mut added = false;
        if let Some(cell) = self.cell(target) {
            cell.with_core(&mut |c| added = c.add_watcher(reference, Watcher::Process(me)).is_ok());
        }
        if !added {
            watcher.with_core(&mut |c| c.push_down(reference, target, ExitReason::NoProc));
        }
        reference
    }

    /// Removes a monitor held by `watcher` and any `Down` it queued.
    pub(crate) fn demonitor_from(&self, watcher: &Arc<dyn Cell>, reference: MonitorRef) {
        let mut target = None;
        watcher.with_core(&mut |c| {
            target = c.remove_monitor(reference);
            c.flush_down(reference);
        });
        if let Some(cell) = target.and_then(|t| self.cell(t)) {
            cell.with_core(&mut |c| c.remove_watcher(reference));
        }
    }

    /// Unlinks `pids` from `from` and counts their exits down.
    pub(crate) fn unlink_and_watch_all(&self, from: Pid, pids: &[Pid]) -> Arc<ExitCounter> {
        let counter = Arc::new(ExitCounter::new(pids.len()));
        for &pid in pids {
            let Some(cell) = self.cell(pid) else {
                counter.done();
                continue;
            };
            let reference = self.next_ref();
            let mut added = false;
            cell.with_core(&mut |c| {
                c.remove_link(from);
                added = c
                    .add_watcher(reference, Watcher::Counter(counter.clone()))
                    .is_ok();
            });
            if !added {
                counter.done();
            }
        }
        if let Some(cell) = self.cell(from) {
            cell.with_core(&mut |c| {
                for &pid in pids {
                    c.remove_link(pid);
                }
            });
        }
        counter
    }

    pub(crate) fn watch_cell(&self, cell: Arc<dyn Cell>) -> ExitWatch {
        let reference = self.next_ref();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut tx = Some(tx);
        let mut done = None;
        cell.with_core(&mut |c| {
            if let Some(tx) = tx.take()
                && c.add_watcher(reference, Watcher::Channel(tx)).is_err()
            {
                done = Some(c.exit.clone().unwrap_or(ExitReason::NoProc));
            }
        });
        match done {
            Some(reason) => ExitWatch::ready(reason),
            None => ExitWatch::waiting(rx, Arc::downgrade(&cell), reference),
        }
    }

    /// Allocates the record of a new process (not yet in the table).
    fn create<M: Send + 'static>(&self, opts: &SpawnOptions) -> Arc<Process<M>> {
        let serial = self.inner.next_serial.fetch_add(1, Ordering::Relaxed);
        let pid = Pid::new(self.inner.id, serial);
        Arc::new(Process::new(
            pid,
            self.clone(),
            opts.capacity,
            opts.trap_exits,
        ))
    }

    /// Registers the requested name before the process is visible.
    fn prepare<M: Send + 'static>(
        &self,
        proc: &Arc<Process<M>>,
        opts: &SpawnOptions,
    ) -> Result<(), SpawnError> {
        if let Some(name) = &opts.name {
            let cell: Arc<dyn Cell> = proc.clone();
            if self.register_cell(name, &cell).is_err() {
                return Err(SpawnError::NameTaken(name.to_string()));
            }
        }
        Ok(())
    }

    /// Puts the process in the table, links it and starts its task.
    fn start<M, F, Fut>(&self, proc: Arc<Process<M>>, link: Option<Pid>, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.start_with(proc, None, link, body)
    }

    /// Starts a process, linking it to `link` (whose record may be given).
    fn start_with<M, F, Fut>(
        &self,
        proc: Arc<Process<M>>,
        parent_cell: Option<&Arc<dyn Cell>>,
        link: Option<Pid>,
        body: F,
    ) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        let pid = proc.pid();
        let cell: Arc<dyn Cell> = proc.clone();
        self.inner.procs.insert(pid, cell.clone());
        if let Some(parent) = link {
            self.link_pair(&cell, parent, parent_cell);
        }
        let ctx = Ctx::new(proc.clone(), link);
        let task = ProcessTask::new(proc.clone(), body(ctx));
        let span = tracing::debug_span!("process", pid = %pid);
        drop(self.inner.handle.spawn(task.instrument(span)));
        tracing::trace!(pid = %pid, "process spawned");
        Addr::from_process(proc)
    }

    /// Notifies everything that depends on `pid` that it exited.
    pub(crate) fn after_exit(
        &self,
        pid: Pid,
        reason: ExitReason,
        parts: crate::process::ExitParts,
    ) {
        self.inner.procs.remove(&pid);
        for name in &parts.names {
            self.inner.names.remove_if(name, |_, v| *v == pid);
        }
        for group in &parts.groups {
            self.remove_member(group, pid);
        }
        for link in parts.links {
            if let Some(cell) = self.cell(link) {
                cell.with_core(&mut |c| c.signal_exit(link, pid, reason.clone(), true));
            }
        }
        for (reference, watcher) in parts.watchers {
            match watcher {
                Watcher::Process(w) => {
                    if let Some(cell) = self.cell(w) {
                        cell.with_core(&mut |c| c.push_down(reference, pid, reason.clone()));
                    }
                }
                Watcher::Channel(tx) => {
                    let _ = tx.send(reason.clone());
                }
                Watcher::Counter(counter) => counter.done(),
            }
        }
        for (reference, target) in parts.monitors {
            if let Some(cell) = self.cell(target) {
                cell.with_core(&mut |c| c.remove_watcher(reference));
            }
        }
        for waker in parts.senders {
            waker.wake();
        }
        drop(parts.wakers);
        tracing::trace!(pid = %pid, reason = %reason, "process exited");
    }
}

/// A process created by [`Node::reserve`], not yet running.
pub(crate) struct Reserved<M> {
    proc: Arc<Process<M>>,
    link: Option<Pid>,
}

impl<M: Send + 'static> Reserved<M> {
    pub(crate) fn pid(&self) -> Pid {
        self.proc.pid()
    }

    pub(crate) fn cell(&self) -> Arc<dyn Cell> {
        self.proc.clone()
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("processes", &self.inner.procs.len())
            .finish()
    }
}

/// Ticks while the node lives: wakes calls whose deadline comes near (see
/// [`crate::deadline`]), and keeps a timer of the runtime pending.
///
/// The pending timer matters on its own. When a worker of an otherwise
/// idle runtime parks, the time driver sleeps until its earliest timer;
/// with no timer at all, every new timer (a short call timeout, a
/// `tokio::time::sleep` in a process) is earlier than that and has to
/// wake the parked driver, a system call and a context switch each.
async fn anchor_timers(node: std::sync::Weak<NodeInner>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(inner) = node.upgrade() else {
            return;
        };
        inner.deadlines.tick(tokio::time::Instant::now());
    }
}
