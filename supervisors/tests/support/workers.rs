//! Test workers that report what happens to them.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{
    ChildCtx, ChildSpec, Ctx, Envelope, ExitReason, Node, Pid, SpawnOptions, Start, SupervisorRef,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

pub const HANG: Duration = Duration::from_secs(10);

/// What a test worker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The worker with this id started as this pid.
    Started(String, Pid),
    /// The worker received its shutdown signal (only trapping workers).
    Stopping(String, Pid),
}

/// Commands a test worker obeys.
#[derive(Debug)]
pub enum Cmd {
    /// Exit with this reason.
    Exit(ExitReason),
    /// Panic.
    Panic,
}

/// How a test worker behaves on shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnShutdown {
    /// Does not trap: dies of the signal.
    Die,
    /// Traps, reports `Stopping`, exits with the signal's reason.
    Report,
    /// Traps, reports `Stopping`, and ignores it.
    Ignore,
}

pub type Events = mpsc::UnboundedSender<Event>;

/// A worker child spec reporting to `events`.
pub fn worker(id: &str, events: &Events, on_shutdown: OnShutdown) -> ChildSpec {
    let events = events.clone();
    let name = id.to_owned();
    ChildSpec::new(id, move |ctx: ChildCtx| {
        let events = events.clone();
        let name = name.clone();
        async move {
            let opts = SpawnOptions::new().trap_exits(on_shutdown != OnShutdown::Die);
            let addr = ctx.spawn_with(opts, move |c| body(c, name, events, on_shutdown));
            Ok(Start::from(addr.map_err(ExitReason::error)?))
        }
    })
}

async fn body(
    mut ctx: Ctx<Cmd>,
    name: String,
    events: Events,
    on_shutdown: OnShutdown,
) -> ExitReason {
    let _ = events.send(Event::Started(name.clone(), ctx.pid()));
    loop {
        match ctx.recv().await {
            Envelope::Message(Cmd::Exit(reason)) => return reason,
            Envelope::Message(Cmd::Panic) => panic!("worker {name} panics"),
            Envelope::Exit { from, reason } if Some(from) == ctx.parent() => {
                let _ = events.send(Event::Stopping(name.clone(), ctx.pid()));
                if on_shutdown == OnShutdown::Report {
                    return reason;
                }
            }
            _ => {}
        }
    }
}

/// Receives the next event.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    timeout(HANG, rx.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

/// Receives the next `Started` event and returns its id and pid.
pub async fn started(rx: &mut mpsc::UnboundedReceiver<Event>) -> (String, Pid) {
    match next(rx).await {
        Event::Started(id, pid) => (id, pid),
        other => panic!("expected a start, got {other:?}"),
    }
}

/// The pid of child `id`.
pub async fn pid_of(sup: &SupervisorRef, id: &str) -> Option<Pid> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
}

/// Makes the worker `pid` exit with `reason` and waits until it has.
pub async fn make_exit(node: &Node, pid: Pid, reason: ExitReason) {
    let watch = node.watch(pid);
    node.addr::<Cmd>(pid)
        .unwrap()
        .send(Cmd::Exit(reason))
        .await
        .unwrap();
    timeout(HANG, watch).await.unwrap();
}

/// Nothing else arrives: flushes by asking the supervisor a question (its
/// mailbox is handled in order, so the exits it has seen are processed).
pub async fn settle(sup: &SupervisorRef) {
    let _ = sup.count_children().await;
}
