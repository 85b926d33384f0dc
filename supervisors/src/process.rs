//! The process record: mailbox, signal queue, links and monitors.
//!
//! One `Arc<Process<M>>` per process holds everything: a single mutex guards
//! the typed message queue and the untyped [`Core`] (signals, links, monitors,
//! names, groups), and a single waker slot serves both messages and signals.
//! Rarely used parts of the core live in a lazily allocated box so that an
//! idle process linked to its supervisor costs a few hundred bytes.
//!
//! # Limitations
//!
//! There is no selective receive: a process takes envelopes in order
//! (system notifications first). A process that must wait for one specific
//! reply uses `call` (a separate reply channel) instead. Processes live on
//! one node; pids of another node are not reachable.

mod core;
mod task;

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::{MonitorRef, Pid};

pub(crate) use self::core::{Core, ExitCounter, ExitParts, Watcher};
pub(crate) use self::task::ProcessTask;

/// What a process receives: an ordinary message or a system notification.
///
/// System notifications (`Exit`, `Down`) are always received before any
/// ordinary message that is queued at the same time.
#[non_exhaustive]
#[derive(Debug)]
pub enum Envelope<M> {
    /// An ordinary message sent to the process's address.
    Message(M),
    /// An exit signal turned into a message because the process traps exits.
    Exit {
        /// The process that sent the signal (the linked process that exited,
        /// or the caller of `exit`; serial 0 for code outside processes).
        from: Pid,
        /// The reason carried by the signal.
        reason: ExitReason,
    },
    /// A monitored process exited (or did not exist: reason `NoProc`).
    Down {
        /// The reference returned by `monitor`.
        reference: MonitorRef,
        /// The process that exited.
        pid: Pid,
        /// Its exit reason.
        reason: ExitReason,
    },
}

/// The type-erased view of a process used by the node's table, the
/// registry, groups and supervisors.
pub(crate) trait Cell: Send + Sync + 'static {
    /// The process id.
    fn pid(&self) -> Pid;

    /// Whether the process has not exited yet.
    fn is_alive(&self) -> bool;

    /// Runs `f` on the core under the process lock.
    fn with_core(&self, f: &mut dyn FnMut(&mut Core));

    /// Number of ordinary messages waiting in the mailbox.
    fn mailbox_len(&self) -> usize;

    /// Ends the process from outside its task (a task that does not stop).
    fn force_exit(&self, reason: ExitReason);

    /// The same record as `Any`, for typed lookups.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The same record as `Any`, borrowed, for typed use without a clone.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// The shared record of one process whose messages have type `M`.
pub(crate) struct Process<M> {
    pid: Pid,
    node: Node,
    capacity: usize,
    /// Set when a signal has decided that the process must exit; the task
    /// checks it on every poll without taking the lock.
    fatal: AtomicBool,
    /// Cleared once the process has exited.
    alive: AtomicBool,
    state: Mutex<State<M>>,
}

struct State<M> {
    queue: VecDeque<M>,
    core: Core,
}

impl<M: Send + 'static> Process<M> {
    pub(crate) fn new(pid: Pid, node: Node, capacity: usize, trap_exits: bool) -> Self {
        Self {
            pid,
            node,
            capacity: capacity.max(1),
            fatal: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                core: Core::new(trap_exits),
            }),
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The exit reason once the process has exited.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        self.state.lock().core.exit.clone()
    }

    /// Queues `msg` unless the mailbox is full or the process has exited.
    pub(crate) fn try_push(&self, msg: M) -> Result<(), (M, bool)> {
        let mut st = self.state.lock();
        if st.core.exit.is_some() {
            return Err((msg, true));
        }
        if st.queue.len() >= self.capacity {
            return Err((msg, false));
        }
        st.queue.push_back(msg);
        let waker = st.core.take_recv_waker();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Like [`try_push`](Self::try_push) but registers `waiter` to be woken
    /// when space frees up.
    pub(crate) fn poll_push(
        &self,
        msg: M,
        waiter: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Result<(), (M, bool)> {
        let mut st = self.state.lock();
        if st.core.exit.is_some() {
            return Err((msg, true));
        }
        if st.queue.len() < self.capacity {
            st.queue.push_back(msg);
            if let Some(id) = waiter.take() {
                st.core.remove_sender(id);
            }
            let waker = st.core.take_recv_waker();
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            return Ok(());
        }
        st.core.park_sender(waiter, cx.waker());
        Err((msg, false))
    }

    /// Forgets a parked sender that gave up; passes a wake-up it may have
    /// consumed on to the next parked sender.
    pub(crate) fn cancel_push(&self, id: u64) {
        let mut st = self.state.lock();
        if st.core.remove_sender(id) {
            return;
        }
        if st.queue.len() < self.capacity {
            let next = st.core.pop_sender();
            drop(st);
            if let Some(w) = next {
                w.wake();
            }
        }
    }

    /// Receives the next signal or message, or registers the waker.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Envelope<M>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut st = self.state.lock();
        if let Some(sig) = st.core.pop_signal() {
            coop.made_progress();
            return Poll::Ready(sig.into_envelope());
        }
        let Some(msg) = st.queue.pop_front() else {
            st.core.register_recv(cx.waker());
            return Poll::Pending;
        };
        let inject = std::mem::take(&mut st.core.panic_next);
        let sender = st.core.pop_sender();
        drop(st);
        coop.made_progress();
        if let Some(w) = sender {
            w.wake();
        }
        if inject {
            panic!("injected fault");
        }
        Poll::Ready(Envelope::Message(msg))
    }

    /// Receives the next signal or message if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Envelope<M>> {
        let mut st = self.state.lock();
        if let Some(sig) = st.core.pop_signal() {
            return Some(sig.into_envelope());
        }
        let msg = st.queue.pop_front()?;
        let inject = std::mem::take(&mut st.core.panic_next);
        let sender = st.core.pop_sender();
        drop(st);
        if let Some(w) = sender {
            w.wake();
        }
        if inject {
            panic!("injected fault");
        }
        Some(Envelope::Message(msg))
    }

    /// Registers the task's own waker so that fatal signals can wake it even
    /// when it waits on something other than its mailbox.
    pub(crate) fn set_task_waker(&self, waker: &Waker) {
        self.state.lock().core.task_waker = Some(waker.clone());
    }

    pub(crate) fn fatal_pending(&self) -> bool {
        self.fatal.load(Ordering::Acquire)
    }

    pub(crate) fn take_fatal(&self) -> ExitReason {
        self.state
            .lock()
            .core
            .fatal
            .clone()
            .unwrap_or(ExitReason::Killed)
    }

    /// Runs `f` under the lock and applies the wake-ups it asked for.
    fn core_op<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        let mut st = self.state.lock();
        let out = f(&mut st.core);
        let fatal = st.core.fatal.is_some();
        let wakers = st.core.take_wakeups();
        drop(st);
        if fatal {
            self.fatal.store(true, Ordering::Release);
        }
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
        out
    }

    /// Ends the process with `reason`: marks it exited, drops its queued
    /// messages, and notifies names, groups, links and monitors.
    ///
    /// Idempotent: only the first call acts.
    pub(crate) fn finish(&self, reason: ExitReason) {
        let mut st = self.state.lock();
        if st.core.exit.is_some() {
            return;
        }
        st.core.exit = Some(reason.clone());
        self.alive.store(false, Ordering::Release);
        let queue = std::mem::take(&mut st.queue);
        let parts = st.core.take_for_exit();
        drop(st);
        drop(queue);
        self.node.after_exit(self.pid, reason, parts);
    }
}

impl<M: Send + 'static> Cell for Process<M> {
    fn pid(&self) -> Pid {
        self.pid
    }

    fn is_alive(&self) -> bool {
        Process::is_alive(self)
    }

    fn with_core(&self, f: &mut dyn FnMut(&mut Core)) {
        self.core_op(f);
    }

    fn mailbox_len(&self) -> usize {
        self.state.lock().queue.len()
    }

    fn force_exit(&self, reason: ExitReason) {
        // The fatal flag makes the task end at its next poll, if it ever
        // yields; everyone else learns of the exit now.
        self.core_op(|c| c.kill());
        self.finish(reason);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
