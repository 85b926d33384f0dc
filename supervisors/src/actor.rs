//! The gen_server-style actor trait and its run loop.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::ctx::Ctx;
use crate::exit::{ExitReason, panic_message};
use crate::pid::{MonitorRef, Pid};
use crate::process::Envelope;

/// A process written as callbacks, like an OTP `gen_server`.
///
/// A callback returning `Err(reason)` stops the actor with that reason
/// (`Err(ExitReason::Normal)` stops it normally); so does
/// [`Ctx::stop`]. `terminate` runs after such a stop, after a panic in
/// `handle`, `handle_exit` or `handle_down`, and when the parent's exit
/// signal arrives while the actor traps exits; it does not run when the
/// process is killed or dies of an exit signal it does not trap.
pub trait Actor: Sized + Send + 'static {
    /// The message type of the mailbox.
    type Msg: Send + 'static;
    /// What `init` receives.
    type Args: Send + 'static;

    /// Builds the state. An error stops the process with that reason and
    /// makes the spawn fail.
    fn init(
        args: Self::Args,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<Self, ExitReason>> + Send;

    /// Handles one message.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send;

    /// Handles an exit signal received as a message (the actor traps exits)
    /// from a process other than its parent. Ignores it by default.
    fn handle_exit(
        &mut self,
        from: Pid,
        reason: ExitReason,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = (from, reason, ctx);
        async { Ok(()) }
    }

    /// Handles the exit of a monitored process. Ignores it by default.
    fn handle_down(
        &mut self,
        reference: MonitorRef,
        pid: Pid,
        reason: ExitReason,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = (reference, pid, reason, ctx);
        async { Ok(()) }
    }

    /// Cleans up before the actor exits with `reason`.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// Runs an actor: `init`, then one callback per envelope.
pub(crate) async fn run_actor<A: Actor>(
    args: A::Args,
    mut ctx: Ctx<A::Msg>,
    started: Option<oneshot::Sender<Result<(), ExitReason>>>,
) -> ExitReason {
    let mut state = match A::init(args, &mut ctx).await {
        Ok(state) => state,
        Err(reason) => {
            if let Some(tx) = started {
                let _ = tx.send(Err(reason.clone()));
            }
            return reason;
        }
    };
    if let Some(tx) = started {
        let _ = tx.send(Ok(()));
    }
    loop {
        let envelope = ctx.recv().await;
        let outcome = match envelope {
            Envelope::Exit { from, reason } if Some(from) == ctx.parent() => Err(reason),
            envelope => {
                let step = dispatch(&mut state, envelope, &mut ctx);
                match AssertUnwindSafe(step).catch_unwind().await {
                    Ok(result) => result,
                    Err(payload) => Err(ExitReason::Panic(panic_message(&*payload))),
                }
            }
        };
        let reason = match outcome {
            Err(reason) => reason,
            Ok(()) => match ctx.take_stop() {
                Some(reason) => reason,
                None => continue,
            },
        };
        state.terminate(&reason, &mut ctx).await;
        return reason;
    }
}

async fn dispatch<A: Actor>(
    state: &mut A,
    envelope: Envelope<A::Msg>,
    ctx: &mut Ctx<A::Msg>,
) -> Result<(), ExitReason> {
    match envelope {
        Envelope::Message(msg) => state.handle(msg, ctx).await,
        Envelope::Exit { from, reason } => state.handle_exit(from, reason, ctx).await,
        Envelope::Down {
            reference,
            pid,
            reason,
        } => state.handle_down(reference, pid, reason, ctx).await,
    }
}
