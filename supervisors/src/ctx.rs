//! The context a process body works with.

use std::future::poll_fn;
use std::sync::Arc;

use crate::addr::Addr;
use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::{MonitorRef, Pid};
use crate::process::{Cell, Envelope, Process};

/// A process's handle on itself: its mailbox, links, monitors and flags.
///
/// Owned by the process body; not cloneable (one receiver per mailbox).
pub struct Ctx<M> {
    proc: Arc<Process<M>>,
    parent: Option<Pid>,
    stop: Option<ExitReason>,
}

impl<M: Send + 'static> std::fmt::Debug for Ctx<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("pid", &self.proc.pid())
            .finish()
    }
}

impl<M: Send + 'static> Ctx<M> {
    pub(crate) fn new(proc: Arc<Process<M>>, parent: Option<Pid>) -> Self {
        Self {
            proc,
            parent,
            stop: None,
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        self.proc.node()
    }

    /// This process's own address.
    pub fn addr(&self) -> Addr<M> {
        Addr::from_process(self.proc.clone())
    }

    /// The process this one was spawned linked to, if any.
    pub fn parent(&self) -> Option<Pid> {
        self.parent
    }

    /// Receives the next envelope: queued system notifications (exit
    /// signals turned into messages, `Down`) first, then ordinary messages
    /// in arrival order.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is taken from the mailbox unless it is returned.
    pub async fn recv(&mut self) -> Envelope<M> {
        poll_fn(|cx| self.proc.poll_recv(cx)).await
    }

    /// Receives the next ordinary message, discarding system notifications
    /// received on the way (for processes that neither trap nor monitor).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`recv`](Self::recv).
    pub async fn recv_msg(&mut self) -> M {
        loop {
            if let Envelope::Message(m) = self.recv().await {
                return m;
            }
        }
    }

    /// Receives an envelope if one is queued; never waits.
    pub fn try_recv(&mut self) -> Option<Envelope<M>> {
        self.proc.try_recv()
    }

    /// Sets whether exit signals are turned into [`Envelope::Exit`]
    /// messages. Returns the previous setting.
    pub fn trap_exits(&mut self, trap: bool) -> bool {
        let mut old = false;
        self.cell().with_core(&mut |c| {
            old = c.trap_exits;
            c.trap_exits = trap;
        });
        old
    }

    /// Links this process to `pid` (bidirectional). If `pid` is not alive,
    /// this process receives an exit signal with reason `NoProc`.
    pub fn link(&mut self, pid: Pid) {
        self.node().link_cells(&self.cell(), pid);
    }

    /// Removes the link to `pid`, if any.
    pub fn unlink(&mut self, pid: Pid) {
        self.node().unlink(self.pid(), pid);
    }

    /// Monitors `pid`: when it exits this process receives
    /// [`Envelope::Down`] (with `NoProc` at once if it is not alive).
    pub fn monitor(&mut self, pid: Pid) -> MonitorRef {
        self.node().monitor_from(&self.cell(), pid)
    }

    /// Removes a monitor and drops its `Down` if one is already queued.
    pub fn demonitor(&mut self, reference: MonitorRef) {
        self.node().demonitor_from(&self.cell(), reference);
    }

    /// Sends an exit signal from this process to `pid` (to itself: exits
    /// with `reason`, even `Normal`, unless trapping).
    pub fn exit(&self, pid: Pid, reason: ExitReason) -> bool {
        self.node().exit_from(self.pid(), pid, reason)
    }

    /// Asks an actor to stop with `reason` after the current callback.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }

    pub(crate) fn take_stop(&mut self) -> Option<ExitReason> {
        self.stop.take()
    }

    pub(crate) fn cell(&self) -> Arc<dyn Cell> {
        self.proc.clone()
    }
}
