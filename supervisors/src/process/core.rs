//! The untyped part of a process record, guarded by the process lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;

use tokio::sync::oneshot;

use super::Envelope;
use crate::exit::ExitReason;
use crate::pid::{IdBuild, MonitorRef, Pid, PidSet};

/// A system notification waiting to be received.
#[derive(Debug)]
pub(crate) enum Signal {
    Exit {
        from: Pid,
        reason: ExitReason,
    },
    Down {
        reference: MonitorRef,
        pid: Pid,
        reason: ExitReason,
    },
}

impl Signal {
    pub(crate) fn into_envelope<M>(self) -> Envelope<M> {
        match self {
            Self::Exit { from, reason } => Envelope::Exit { from, reason },
            Self::Down {
                reference,
                pid,
                reason,
            } => Envelope::Down {
                reference,
                pid,
                reason,
            },
        }
    }
}

/// Who is told when a monitored process exits.
#[derive(Debug)]
pub(crate) enum Watcher {
    /// A process, which receives a `Down` notification.
    Process(Pid),
    /// Code outside processes, waiting on a channel.
    Channel(oneshot::Sender<ExitReason>),
    /// Code waiting for many processes to exit.
    Counter(Arc<ExitCounter>),
}

/// Counts down exits of many processes (a parallel shutdown).
#[derive(Debug, Default)]
pub(crate) struct ExitCounter {
    remaining: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

impl ExitCounter {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            remaining: std::sync::atomic::AtomicUsize::new(n),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// One watched process exited.
    pub(crate) fn done(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.notify.notify_one();
        }
    }

    /// Waits until every watched process has exited.
    pub(crate) async fn wait(&self) {
        while self.remaining.load(std::sync::atomic::Ordering::Acquire) > 0 {
            self.notify.notified().await;
        }
    }
}

/// The link set: most processes have exactly one link (their supervisor),
/// so that case needs no allocation.
#[derive(Debug, Default)]
enum Links {
    #[default]
    None,
    One(Pid),
    Many(Box<PidSet>),
}

impl Links {
    fn insert(&mut self, pid: Pid) {
        match self {
            Self::None => *self = Self::One(pid),
            Self::One(p) if *p == pid => {}
            Self::One(p) => {
                let mut set = PidSet::default();
                set.insert(*p);
                set.insert(pid);
                *self = Self::Many(Box::new(set));
            }
            Self::Many(set) => {
                set.insert(pid);
            }
        }
    }

    fn remove(&mut self, pid: Pid) -> bool {
        match self {
            Self::One(p) if *p == pid => {
                *self = Self::None;
                true
            }
            Self::Many(set) => set.remove(&pid),
            _ => false,
        }
    }

    fn contains(&self, pid: Pid) -> bool {
        match self {
            Self::None => false,
            Self::One(p) => *p == pid,
            Self::Many(set) => set.contains(&pid),
        }
    }

    fn take(&mut self) -> Vec<Pid> {
        match std::mem::take(self) {
            Self::None => Vec::new(),
            Self::One(p) => vec![p],
            Self::Many(set) => set.into_iter().collect(),
        }
    }
}

/// Parts of a process that are used by few processes.
#[derive(Default)]
struct Extra {
    signals: VecDeque<Signal>,
    watchers: HashMap<MonitorRef, Watcher, IdBuild>,
    monitors: HashMap<MonitorRef, Pid, IdBuild>,
    names: Vec<Arc<str>>,
    groups: Vec<Arc<str>>,
    senders: VecDeque<(u64, Waker)>,
    next_sender: u64,
}

impl Extra {
    /// Whether dropping it loses nothing. A process that ever parked a
    /// sender keeps it: sender ids must not restart while a waiter may
    /// still hold an old one.
    fn is_unused(&self) -> bool {
        self.signals.is_empty()
            && self.watchers.is_empty()
            && self.monitors.is_empty()
            && self.names.is_empty()
            && self.groups.is_empty()
            && self.senders.is_empty()
            && self.next_sender == 0
    }
}

/// What an exiting process must notify, taken out of its record.
#[derive(Default)]
pub(crate) struct ExitParts {
    pub(crate) links: Vec<Pid>,
    pub(crate) watchers: Vec<(MonitorRef, Watcher)>,
    pub(crate) monitors: Vec<(MonitorRef, Pid)>,
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) groups: Vec<Arc<str>>,
    pub(crate) senders: Vec<Waker>,
    pub(crate) wakers: Vec<Waker>,
}

/// The untyped state of a process.
#[derive(Default)]
pub(crate) struct Core {
    pub(crate) trap_exits: bool,
    pub(crate) panic_next: bool,
    /// Links from children are recorded on the child's side only: the
    /// process (a dynamic supervisor) tracks its children itself and
    /// signals them when it dies.
    pub(crate) untracked_children: bool,
    /// With `untracked_children`: the raw pid of the child linked last, so
    /// that the supervisor can confirm the link without a table lookup.
    pub(crate) recent_child: u64,
    /// The reason a signal has decided the process must exit with.
    pub(crate) fatal: Option<ExitReason>,
    /// The exit reason, once exited.
    pub(crate) exit: Option<ExitReason>,
    /// Who waits for the next message, when it is not the task itself.
    recv_waker: Option<Waker>,
    /// The process's own task, woken by fatal signals.
    pub(crate) task_waker: Option<Waker>,
    /// The task itself waits for the next message: the common case needs
    /// no second copy of its waker (one reference count less per spawn).
    recv_on_task: bool,
    links: Links,
    extra: Option<Box<Extra>>,
    /// Whether `extra` holds queued signals: lets a receive skip reading
    /// the box, which for a process in a group or with a name is allocated
    /// but rarely in cache.
    has_signals: bool,
    /// Whether `extra` holds parked senders, for the same reason.
    has_senders: bool,
    wake: bool,
}

impl Core {
    pub(crate) fn new(trap_exits: bool) -> Self {
        Self {
            trap_exits,
            ..Self::default()
        }
    }

    /// Registers `waker` to be woken by the next message.
    pub(crate) fn register_recv(&mut self, waker: &Waker) {
        if self.task_waker.as_ref().is_some_and(|t| t.will_wake(waker)) {
            self.recv_on_task = true;
            self.recv_waker = None;
        } else if !self.recv_waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.recv_on_task = false;
            self.recv_waker = Some(waker.clone());
        }
    }

    /// Takes the waker registered by the last receive, if any.
    pub(crate) fn take_recv_waker(&mut self) -> Option<Waker> {
        if std::mem::take(&mut self.recv_on_task) {
            return self.task_waker.clone();
        }
        self.recv_waker.take()
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub(crate) fn is_exited(&self) -> bool {
        self.exit.is_some()
    }

    pub(crate) fn pop_signal(&mut self) -> Option<Signal> {
        if !self.has_signals {
            return None;
        }
        let extra = self.extra.as_mut()?;
        let signal = extra.signals.pop_front();
        self.has_signals = !extra.signals.is_empty();
        // An idle process that once handled a signal (a session whose
        // frame logic stopped) should not keep the queue's memory.
        self.trim_extra();
        signal
    }

    /// Frees the rarely used parts once nothing is left in them.
    fn trim_extra(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_unused()) {
            self.extra = None;
        }
    }

    /// Parks a sender waiting for mailbox space, or refreshes its waker.
    pub(crate) fn park_sender(&mut self, waiter: &mut Option<u64>, waker: &Waker) {
        let extra = self.extra();
        if let Some(id) = *waiter
            && let Some(slot) = extra.senders.iter_mut().find(|(i, _)| *i == id)
        {
            if !slot.1.will_wake(waker) {
                slot.1 = waker.clone();
            }
            return;
        }
        extra.next_sender += 1;
        let id = extra.next_sender;
        extra.senders.push_back((id, waker.clone()));
        *waiter = Some(id);
        self.has_senders = true;
    }

    /// Removes a parked sender; false if it was already woken.
    pub(crate) fn remove_sender(&mut self, id: u64) -> bool {
        if !self.has_senders {
            return false;
        }
        let Some(extra) = self.extra.as_mut() else {
            return false;
        };
        match extra.senders.iter().position(|(i, _)| *i == id) {
            Some(at) => {
                extra.senders.remove(at);
                self.has_senders = !extra.senders.is_empty();
                true
            }
            None => false,
        }
    }

    pub(crate) fn pop_sender(&mut self) -> Option<Waker> {
        if !self.has_senders {
            return None;
        }
        let extra = self.extra.as_mut()?;
        let next = extra.senders.pop_front().map(|(_, w)| w);
        self.has_senders = !extra.senders.is_empty();
        next
    }

    /// Takes the wake-ups that the last operation asked for.
    pub(crate) fn take_wakeups(&mut self) -> [Option<Waker>; 2] {
        if !std::mem::take(&mut self.wake) {
            return [None, None];
        }
        let task = if self.fatal.is_some() {
            self.task_waker.clone()
        } else {
            None
        };
        [self.take_recv_waker(), task]
    }

    fn set_fatal(&mut self, reason: ExitReason) {
        if self.fatal.is_none() {
            self.fatal = Some(reason);
        }
        self.wake = true;
    }

    fn push_signal(&mut self, signal: Signal) {
        self.extra().signals.push_back(signal);
        self.has_signals = true;
        self.wake = true;
    }

    /// Adds a link; false if the process has exited.
    pub(crate) fn add_link(&mut self, pid: Pid) -> bool {
        if self.is_exited() {
            return false;
        }
        self.links.insert(pid);
        true
    }

    /// Adds the link from a child spawned under this process.
    pub(crate) fn add_child_link(&mut self, pid: Pid) -> bool {
        if self.untracked_children {
            self.recent_child = pid.raw();
            return !self.is_exited();
        }
        self.add_link(pid)
    }

    pub(crate) fn remove_link(&mut self, pid: Pid) -> bool {
        self.links.remove(pid)
    }

    pub(crate) fn is_linked(&self, pid: Pid) -> bool {
        self.links.contains(pid)
    }

    /// Applies an exit signal from `from` to the process `me`.
    ///
    /// A signal sent because of a link only acts while the link exists.
    pub(crate) fn signal_exit(&mut self, me: Pid, from: Pid, reason: ExitReason, via_link: bool) {
        if self.is_exited() || (via_link && !self.links.remove(from) && !self.untracked_children) {
            return;
        }
        if self.trap_exits {
            self.push_signal(Signal::Exit { from, reason });
        } else if !reason.is_normal() || (!via_link && from == me) {
            self.set_fatal(reason);
        }
    }

    /// The untrappable kill.
    pub(crate) fn kill(&mut self) {
        if !self.is_exited() {
            self.set_fatal(ExitReason::Killed);
        }
    }

    /// Adds a monitor on this process; gives the watcher back if the process
    /// has exited.
    pub(crate) fn add_watcher(&mut self, reference: MonitorRef, w: Watcher) -> Result<(), Watcher> {
        if self.is_exited() {
            return Err(w);
        }
        self.extra().watchers.insert(reference, w);
        Ok(())
    }

    pub(crate) fn remove_watcher(&mut self, reference: MonitorRef) {
        if let Some(extra) = self.extra.as_mut() {
            extra.watchers.remove(&reference);
            self.trim_extra();
        }
    }

    /// Records a monitor this process holds on `target`.
    pub(crate) fn add_monitor(&mut self, reference: MonitorRef, target: Pid) {
        self.extra().monitors.insert(reference, target);
    }

    /// Forgets a monitor this process holds; returns its target.
    pub(crate) fn remove_monitor(&mut self, reference: MonitorRef) -> Option<Pid> {
        let target = self.extra.as_mut()?.monitors.remove(&reference);
        self.trim_extra();
        target
    }

    /// Drops a queued `Down` for `reference`.
    pub(crate) fn flush_down(&mut self, reference: MonitorRef) {
        if let Some(extra) = self.extra.as_mut() {
            extra
                .signals
                .retain(|s| !matches!(s, Signal::Down { reference: r, .. } if *r == reference));
            self.has_signals = !extra.signals.is_empty();
            self.trim_extra();
        }
    }

    /// Delivers a `Down` for a monitor this process holds.
    pub(crate) fn push_down(&mut self, reference: MonitorRef, pid: Pid, reason: ExitReason) {
        if self.is_exited() {
            return;
        }
        if let Some(extra) = self.extra.as_mut() {
            extra.monitors.remove(&reference);
        }
        self.push_signal(Signal::Down {
            reference,
            pid,
            reason,
        });
    }

    /// Records a registered name; false if the process has exited.
    pub(crate) fn attach_name(&mut self, name: Arc<str>) -> bool {
        if self.is_exited() {
            return false;
        }
        self.extra().names.push(name);
        true
    }

    pub(crate) fn detach_name(&mut self, name: &str) {
        if let Some(extra) = self.extra.as_mut() {
            extra.names.retain(|n| &**n != name);
            self.trim_extra();
        }
    }

    /// Records a group membership; false if already a member or exited.
    pub(crate) fn attach_group(&mut self, group: &Arc<str>) -> Option<bool> {
        if self.is_exited() {
            return None;
        }
        let extra = self.extra();
        if extra.groups.iter().any(|g| g == group) {
            return Some(false);
        }
        extra.groups.push(group.clone());
        Some(true)
    }

    pub(crate) fn detach_group(&mut self, group: &str) -> bool {
        let Some(extra) = self.extra.as_mut() else {
            return false;
        };
        let before = extra.groups.len();
        extra.groups.retain(|g| &**g != group);
        let left = before != extra.groups.len();
        self.trim_extra();
        left
    }

    /// Empties the record for the exit notifications.
    pub(crate) fn take_for_exit(&mut self) -> ExitParts {
        let mut parts = ExitParts {
            links: self.links.take(),
            ..ExitParts::default()
        };
        parts.wakers.extend(self.take_recv_waker());
        parts.wakers.extend(self.task_waker.take());
        self.has_signals = false;
        self.has_senders = false;
        if let Some(extra) = self.extra.take() {
            let extra = *extra;
            parts.watchers = extra.watchers.into_iter().collect();
            parts.monitors = extra.monitors.into_iter().collect();
            parts.names = extra.names;
            parts.groups = extra.groups;
            parts.senders = extra.senders.into_iter().map(|(_, w)| w).collect();
        }
        parts
    }
}
