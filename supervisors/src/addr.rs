//! Typed addresses: send, try_send, call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::deadline::CallDeadline;
use crate::exit::ExitReason;
use crate::pid::{MonitorRef, Pid};
use crate::process::{Cell, Process};

/// The typed address of one process incarnation.
///
/// Like an Erlang pid, an address never points to a restarted child: once
/// the process exits, sends fail and give the message back. Cheap to clone.
pub struct Addr<M> {
    proc: Arc<Process<M>>,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            proc: self.proc.clone(),
        }
    }
}

impl<M: Send + 'static> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Addr").field(&self.proc.pid()).finish()
    }
}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.proc, &other.proc)
    }
}

impl<M> Eq for Addr<M> {}

impl<M: Send + 'static> Addr<M> {
    pub(crate) fn from_process(proc: Arc<Process<M>>) -> Self {
        Self { proc }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// Whether the process has not exited yet.
    pub fn is_alive(&self) -> bool {
        self.proc.is_alive()
    }

    /// The exit reason, once the process has exited.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.proc.exit_reason()
    }

    /// Number of ordinary messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        Cell::mailbox_len(&*self.proc)
    }

    /// The mailbox capacity.
    pub fn capacity(&self) -> usize {
        self.proc.capacity()
    }

    /// Sends `msg`, waiting while the mailbox is full (backpressure).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message when the process has exited.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before completing, the message
    /// was not queued (and is dropped with the future).
    pub async fn send(&self, msg: M) -> Result<(), SendError<M>> {
        match self.proc.try_push(msg) {
            Ok(()) => Ok(()),
            Err((msg, true)) => Err(SendError(msg)),
            Err((msg, false)) => {
                SendFuture {
                    proc: &self.proc,
                    msg: Some(msg),
                    waiter: None,
                }
                .await
            }
        }
    }

    /// Queues `msg` if there is room; never waits.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Exited`], with the message.
    pub fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.proc.try_push(msg).map_err(|(msg, exited)| {
            if exited {
                TrySendError::Exited(msg)
            } else {
                TrySendError::Full(msg)
            }
        })
    }

    /// Sends a request built by `make` around a [`ReplyTo`] and waits for the
    /// reply, like `gen_server:call`.
    ///
    /// The timeout covers waiting for mailbox room and for the reply, and
    /// fires when due. A timeout longer than 1.5 s arms no runtime timer
    /// until its deadline is near (the node's ticks watch it), so a call
    /// answered in time costs no timer.
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`]; [`CallError::Exited`] with the exit reason
    /// when the process is gone or exits before replying;
    /// [`CallError::NoReply`] when it dropped the [`ReplyTo`] unanswered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; a reply sent later is dropped.
    pub async fn call<R, F>(&self, make: F, timeout: Duration) -> Result<R, CallError>
    where
        F: FnOnce(ReplyTo<R>) -> M,
    {
        let (tx, rx) = oneshot::channel();
        let msg = make(ReplyTo { tx });
        let exchange = async {
            if self.send(msg).await.is_err() {
                return Err(self.gone());
            }
            match rx.await {
                Ok(value) => Ok(value),
                Err(_) => {
                    if self.proc.is_alive() {
                        Err(CallError::NoReply)
                    } else {
                        Err(self.gone())
                    }
                }
            }
        };
        // The exchange first, then the deadline, as `tokio::time::timeout`
        // does; the deadline rarely needs a runtime timer (`deadline.rs`).
        let mut exchange = std::pin::pin!(exchange);
        let mut deadline = std::pin::pin!(CallDeadline::new(
            &self.proc.node().inner.deadlines,
            timeout
        ));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            deadline
                .as_mut()
                .poll_expired(cx)
                .map(|()| Err(CallError::Timeout))
        })
        .await
    }

    /// A future resolving with this process's exit reason (immediately if
    /// it has already exited).
    pub fn watch(&self) -> ExitWatch {
        let cell: Arc<dyn Cell> = self.proc.clone();
        self.proc.node().watch_cell(cell)
    }

    /// Like [`call`](Self::call) without a timeout.
    pub(crate) async fn request<R, F>(&self, make: F) -> Result<R, CallError>
    where
        F: FnOnce(ReplyTo<R>) -> M,
    {
        let (tx, rx) = oneshot::channel();
        if self.send(make(ReplyTo { tx })).await.is_err() {
            return Err(self.gone());
        }
        match rx.await {
            Ok(value) => Ok(value),
            Err(_) if self.proc.is_alive() => Err(CallError::NoReply),
            Err(_) => Err(self.gone()),
        }
    }

    /// The node the process runs on.
    pub(crate) fn process_node(&self) -> crate::node::Node {
        self.proc.node().clone()
    }

    fn gone(&self) -> CallError {
        CallError::Exited(self.proc.exit_reason().unwrap_or(ExitReason::NoProc))
    }
}

/// The reply half of a [`call`](Addr::call).
pub struct ReplyTo<R> {
    tx: oneshot::Sender<R>,
}

impl<R> ReplyTo<R> {
    /// Sends the reply.
    ///
    /// # Errors
    ///
    /// Gives the value back when the caller has stopped waiting.
    pub fn send(self, value: R) -> Result<(), R> {
        self.tx.send(value)
    }

    /// Whether the caller has stopped waiting (timed out or cancelled).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo")
    }
}

/// A send to an exited process; holds the message.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("process has exited")]
pub struct SendError<M>(pub M);

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

/// A [`try_send`](Addr::try_send) that could not queue; holds the message.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<M> {
    /// The mailbox is full.
    #[error("mailbox is full")]
    Full(M),
    /// The process has exited.
    #[error("process has exited")]
    Exited(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(m) | Self::Exited(m) => m,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Exited(_) => f.write_str("Exited(..)"),
        }
    }
}

/// Why a [`call`](Addr::call) got no reply.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No reply within the timeout.
    #[error("call timed out")]
    Timeout,
    /// The process exited (or had exited) with this reason.
    #[error("process exited: {0}")]
    Exited(ExitReason),
    /// The process dropped the reply handle without answering.
    #[error("request dropped without a reply")]
    NoReply,
}

/// Waits for mailbox room; forgets its parked slot when dropped.
struct SendFuture<'a, M: Send + 'static> {
    proc: &'a Process<M>,
    msg: Option<M>,
    waiter: Option<u64>,
}

impl<M: Send + 'static> Unpin for SendFuture<'_, M> {}

impl<M: Send + 'static> Future for SendFuture<'_, M> {
    type Output = Result<(), SendError<M>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(msg) = this.msg.take() else {
            return Poll::Ready(Ok(()));
        };
        match this.proc.poll_push(msg, &mut this.waiter, cx) {
            Ok(()) => Poll::Ready(Ok(())),
            Err((msg, true)) => {
                this.waiter = None;
                Poll::Ready(Err(SendError(msg)))
            }
            Err((msg, false)) => {
                this.msg = Some(msg);
                Poll::Pending
            }
        }
    }
}

impl<M: Send + 'static> Drop for SendFuture<'_, M> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.proc.cancel_push(id);
        }
    }
}

/// Resolves with the exit reason of a watched process.
///
/// Dropping it removes the watch.
pub struct ExitWatch {
    state: WatchState,
}

enum WatchState {
    Ready(Option<ExitReason>),
    Waiting {
        rx: oneshot::Receiver<ExitReason>,
        cell: Weak<dyn Cell>,
        reference: MonitorRef,
    },
}

impl ExitWatch {
    pub(crate) fn ready(reason: ExitReason) -> Self {
        Self {
            state: WatchState::Ready(Some(reason)),
        }
    }

    pub(crate) fn waiting(
        rx: oneshot::Receiver<ExitReason>,
        cell: Weak<dyn Cell>,
        reference: MonitorRef,
    ) -> Self {
        Self {
            state: WatchState::Waiting {
                rx,
                cell,
                reference,
            },
        }
    }
}

impl fmt::Debug for ExitWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExitWatch")
    }
}

impl Future for ExitWatch {
    type Output = ExitReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        match &mut self.state {
            WatchState::Ready(reason) => Poll::Ready(reason.take().unwrap_or(ExitReason::NoProc)),
            WatchState::Waiting { rx, .. } => {
                let out = std::task::ready!(Pin::new(rx).poll(cx));
                let reason = out.unwrap_or(ExitReason::NoProc);
                self.state = WatchState::Ready(None);
                Poll::Ready(reason)
            }
        }
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        if let WatchState::Waiting {
            cell, reference, ..
        } = &self.state
            && let Some(cell) = cell.upgrade()
        {
            let reference = *reference;
            cell.with_core(&mut |c| c.remove_watcher(reference));
        }
    }
}
