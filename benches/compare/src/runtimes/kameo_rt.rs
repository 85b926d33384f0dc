//! kameo: actors supervised by a parent actor (`supervise`); a broadcast
//! is a loop over actor refs (kameo's core has no process groups).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::supervision::RestartPolicy;

use crate::measure::{
    BATCH, Batches, Countdown, HANG, SPAWN_BATCH, cpu_ns, drive, median, per_op_ns, restart_sample,
    rss_bytes, spawn_batches, tokio_runtime,
};
use crate::workload::{Params, Sample, Workload};

/// Runs one workload on kameo.
pub(crate) fn run(workload: Workload, p: Params) -> anyhow::Result<Sample> {
    let rt = tokio_runtime()?;
    match workload {
        Workload::Memory => drive(rt, memory(p)),
        Workload::Spawn => drive(rt, spawn(p)),
        Workload::Message => drive(rt, message(p)),
        Workload::Call => drive(rt, call(p, false)),
        Workload::TimedCall => drive(rt, call(p, true)),
        Workload::Restart => drive(rt, restart(p)),
        Workload::Broadcast => drive(rt, broadcast(p)),
    }
}

/// The server actor: counts, answers pings, panics on request.
struct Server {
    generation: u64,
    seen: u64,
    done: Option<(u64, Countdown)>,
}

/// How a server starts; cloned by the supervisor for each restart.
#[derive(Clone)]
struct ServerArgs {
    generations: Arc<AtomicU64>,
    ready: Option<Countdown>,
    done: Option<(u64, Countdown)>,
}

impl ServerArgs {
    fn new(ready: Option<Countdown>, done: Option<(u64, Countdown)>) -> Self {
        Self {
            generations: Arc::default(),
            ready,
            done,
        }
    }
}

impl Actor for Server {
    type Args = ServerArgs;
    type Error = Infallible;

    async fn on_start(args: ServerArgs, _me: ActorRef<Self>) -> Result<Self, Infallible> {
        if let Some(ready) = &args.ready {
            ready.hit();
        }
        Ok(Server {
            generation: args.generations.fetch_add(1, Ordering::Relaxed) + 1,
            seen: 0,
            done: args.done,
        })
    }
}

struct Inc;
struct Ping;
struct Panic;

impl Message<Inc> for Server {
    type Reply = ();

    async fn handle(&mut self, _: Inc, _: &mut Context<Self, ()>) {
        self.seen += 1;
        if let Some((want, countdown)) = &self.done
            && self.seen == *want
        {
            countdown.hit();
        }
    }
}

impl Message<Ping> for Server {
    type Reply = u64;

    async fn handle(&mut self, _: Ping, _: &mut Context<Self, u64>) -> u64 {
        self.generation
    }
}

impl Message<Panic> for Server {
    type Reply = ();

    async fn handle(&mut self, _: Panic, _: &mut Context<Self, ()>) {
        panic!("injected panic");
    }
}

/// The supervising parent; kameo restarts its children by their spec.
struct Parent;

impl Actor for Parent {
    type Args = ();
    type Error = Infallible;

    async fn on_start(_: (), _me: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Parent)
    }
}

async fn parent() -> anyhow::Result<ActorRef<Parent>> {
    let parent = Parent::spawn(());
    parent.wait_for_startup().await;
    Ok(parent)
}

async fn spawn_idle(parent: &ActorRef<Parent>, ready: &Countdown, cap: usize) -> ActorRef<Server> {
    Server::supervise(parent, ServerArgs::new(Some(ready.clone()), None))
        .restart_policy(RestartPolicy::Never)
        .spawn_with_mailbox(mailbox::bounded(cap))
        .await
}

async fn memory(p: Params) -> anyhow::Result<Sample> {
    let parent = parent().await?;
    let ready = Countdown::new(p.processes);
    let mut held = Vec::with_capacity(p.processes);
    let before = rss_bytes()?;
    for _ in 0..p.processes {
        held.push(spawn_idle(&parent, &ready, p.capacity).await);
    }
    ready.done_within(HANG).await?;
    let after = rss_bytes()?;
    Ok(Sample::single((after - before) as f64 / p.processes as f64))
}

async fn spawn(p: Params) -> anyhow::Result<Sample> {
    let parent = parent().await?;
    let mut held = Vec::with_capacity(p.processes);
    let mut per_op = Vec::new();
    let cpu_start = cpu_ns()?;
    for _ in 0..spawn_batches(p.processes) {
        let ready = Countdown::new(SPAWN_BATCH);
        let start = Instant::now();
        for _ in 0..SPAWN_BATCH {
            held.push(spawn_idle(&parent, &ready, p.capacity).await);
        }
        ready.done_within(HANG).await?;
        per_op.push(per_op_ns(start, SPAWN_BATCH));
    }
    let cpu = (cpu_ns()? - cpu_start) as f64 / p.processes as f64;
    Ok(Sample::with_cpu(median(&mut per_op), cpu))
}

fn server(p: Params, done: Option<(u64, Countdown)>) -> ActorRef<Server> {
    Server::spawn_with_mailbox(ServerArgs::new(None, done), mailbox::bounded(p.capacity))
}

async fn message(p: Params) -> anyhow::Result<Sample> {
    let done = Countdown::new(1);
    let server = server(p, Some((p.messages, done.clone())));
    server.wait_for_startup().await;
    let start = Instant::now();
    for _ in 0..p.messages {
        server
            .tell(Inc)
            .send()
            .await
            .map_err(|_| anyhow::anyhow!("receiver gone"))?;
    }
    done.done_within(HANG).await?;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / p.messages as f64,
    ))
}

/// The timeout of every call; only a hang reaches it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

async fn ping(server: &ActorRef<Server>) -> anyhow::Result<u64> {
    server
        .ask(Ping)
        .reply_timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("ask failed: {e}"))
}

async fn call(p: Params, timed: bool) -> anyhow::Result<Sample> {
    let server = server(p, None);
    server.wait_for_startup().await;
    let mut batches = Batches::new(BATCH);
    for _ in 0..p.calls {
        if timed {
            ping(&server).await?;
        } else {
            server
                .ask(Ping)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("ask failed: {e}"))?;
        }
        batches.tick();
    }
    Ok(batches.sample())
}

async fn restart(p: Params) -> anyhow::Result<Sample> {
    let parent = parent().await?;
    let intensity = u32::try_from(p.restarts * 2).unwrap_or(u32::MAX);
    // A supervised kameo child keeps its ref and mailbox across restarts:
    // the ping queued behind the panic is answered by the new instance.
    let child = Server::supervise(&parent, ServerArgs::new(None, None))
        .restart_policy(RestartPolicy::Permanent)
        .restart_limit(intensity, Duration::from_secs(3600))
        .spawn_with_mailbox(mailbox::bounded(p.capacity))
        .await;
    let mut generation = ping(&child).await?;
    let mut durations = Vec::with_capacity(p.restarts);
    for _ in 0..p.restarts {
        let start = Instant::now();
        child
            .tell(Panic)
            .send()
            .await
            .map_err(|_| anyhow::anyhow!("child gone before panic"))?;
        let answered = ping(&child).await?;
        durations.push(start.elapsed());
        anyhow::ensure!(answered > generation, "answer from an old child");
        generation = answered;
    }
    Ok(restart_sample(&durations, p.restart_slice))
}

/// A group member: counts broadcasts.
struct Member {
    seen: u64,
    want: u64,
    received: Countdown,
}

impl Actor for Member {
    type Args = (u64, Countdown, Countdown);
    type Error = Infallible;

    async fn on_start(
        (want, ready, received): Self::Args,
        _me: ActorRef<Self>,
    ) -> Result<Self, Infallible> {
        ready.hit();
        Ok(Member {
            seen: 0,
            want,
            received,
        })
    }
}

impl Message<u64> for Member {
    type Reply = ();

    async fn handle(&mut self, _: u64, _: &mut Context<Self, ()>) {
        self.seen += 1;
        if self.seen == self.want {
            self.received.hit();
        }
    }
}

async fn broadcast(p: Params) -> anyhow::Result<Sample> {
    let ready = Countdown::new(p.members);
    let received = Countdown::new(p.members);
    let members: Vec<ActorRef<Member>> = (0..p.members)
        .map(|_| {
            let args = (p.broadcasts, ready.clone(), received.clone());
            Member::spawn_with_mailbox(args, mailbox::bounded(p.capacity))
        })
        .collect();
    ready.done_within(HANG).await?;
    let start = Instant::now();
    for i in 0..p.broadcasts {
        for member in &members {
            member
                .tell(i)
                .try_send()
                .map_err(|_| anyhow::anyhow!("member mailbox full or gone"))?;
        }
    }
    received.done_within(HANG).await?;
    let deliveries = p.members as f64 * p.broadcasts as f64;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / deliveries,
    ))
}
