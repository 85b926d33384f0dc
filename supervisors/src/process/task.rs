//! The future that runs a process body and turns its end into an exit.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Process;
use crate::exit::{ExitReason, panic_message};

pin_project_lite::pin_project! {
    /// Runs a process body: catches its panics, stops it when a fatal signal
    /// arrives, and reports the exit once the body is dropped.
    ///
    /// The body is a field declared before the guard, so when the task ends
    /// (or is aborted, or its runtime shuts down) the body's resources are
    /// released before links and monitors hear about the exit.
    pub(crate) struct ProcessTask<M, F>
    where
        M: Send,
        M: 'static,
    {
        #[pin]
        body: F,
        done: bool,
        registered: bool,
        guard: ExitGuard<M>,
    }
}

impl<M: Send + 'static, F> ProcessTask<M, F> {
    pub(crate) fn new(proc: Arc<Process<M>>, body: F) -> Self {
        Self {
            body,
            done: false,
            registered: false,
            guard: ExitGuard { proc, reason: None },
        }
    }
}

impl<M, F> Future for ProcessTask<M, F>
where
    M: Send + 'static,
    F: Future<Output = ExitReason>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(());
        }
        if !*this.registered {
            this.guard.proc.set_task_waker(cx.waker());
            *this.registered = true;
        }
        if this.guard.proc.fatal_pending() {
            this.guard.reason = Some(this.guard.proc.take_fatal());
            *this.done = true;
            return Poll::Ready(());
        }
        let body = this.body;
        let reason = match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(reason)) => reason,
            Err(payload) => ExitReason::Panic(panic_message(&*payload)),
        };
        this.guard.reason = Some(reason);
        *this.done = true;
        Poll::Ready(())
    }
}

/// Reports the exit when dropped, after the body.
pub(crate) struct ExitGuard<M: Send + 'static> {
    proc: Arc<Process<M>>,
    reason: Option<ExitReason>,
}

impl<M: Send + 'static> Drop for ExitGuard<M> {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or(ExitReason::Killed);
        self.proc.finish(reason);
    }
}
