//! `supervisors`: processes on a node, children of supervisors.

use std::time::{Duration, Instant};

use supervisors::{
    Addr, ChildCtx, ChildSpec, Ctx, DynamicSpec, DynamicSupervisor, DynamicSupervisorRef,
    ExitReason, Node, ReplyTo, Restart, Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::sync::mpsc;

use crate::measure::{
    BATCH, Batches, Countdown, HANG, SPAWN_BATCH, cpu_ns, drive, median, per_op_ns, restart_sample,
    rss_bytes, spawn_batches, tokio_runtime,
};
use crate::workload::{Params, Sample, Workload};

/// What the processes receive.
enum Msg {
    Inc,
    Ping(ReplyTo<u64>),
    Panic,
}

/// Runs one workload on `supervisors`.
pub(crate) fn run(workload: Workload, p: Params) -> anyhow::Result<Sample> {
    let rt = tokio_runtime()?;
    match workload {
        Workload::Memory => drive(rt, memory(p)),
        Workload::Spawn => drive(rt, spawn(p)),
        Workload::Message => drive(rt, message(p)),
        // `Addr::call` always arms a timeout: both rows run the same code.
        Workload::Call | Workload::TimedCall => drive(rt, call(p)),
        Workload::Restart => drive(rt, restart(p)),
        Workload::Broadcast => drive(rt, broadcast(p)),
    }
}

/// A process body: serves the mailbox forever.
async fn serve(mut ctx: Ctx<Msg>, generation: u64, done: Option<(u64, Countdown)>) -> ExitReason {
    let mut seen = 0;
    loop {
        match ctx.recv_msg().await {
            Msg::Inc => {
                seen += 1;
                if let Some((want, countdown)) = &done
                    && seen == *want
                {
                    countdown.hit();
                }
            }
            Msg::Ping(reply) => {
                let _ = reply.send(generation);
            }
            Msg::Panic => panic!("injected panic"),
        }
    }
}

/// A dynamic supervisor whose temporary children report to `ready` once
/// running, then idle.
fn idle_supervisor(
    node: &Node,
    capacity: usize,
) -> anyhow::Result<DynamicSupervisorRef<Countdown>> {
    let spec = DynamicSpec::new(move |ready: Countdown, ctx: ChildCtx| async move {
        let opts = ctx.options().capacity(capacity);
        let addr = ctx
            .spawn_with(opts, move |ctx| async move {
                ready.hit();
                serve(ctx, 0, None).await
            })
            .map_err(ExitReason::error)?;
        Ok(Start::from(addr))
    })
    .restart(Restart::Temporary);
    Ok(DynamicSupervisor::start(node, spec)?)
}

async fn memory(p: Params) -> anyhow::Result<Sample> {
    let node = Node::new();
    let sup = idle_supervisor(&node, p.capacity)?;
    let ready = Countdown::new(p.processes);
    let mut held = Vec::with_capacity(p.processes);
    let before = rss_bytes()?;
    for _ in 0..p.processes {
        held.push(sup.start_child(ready.clone()).await?);
    }
    ready.done_within(HANG).await?;
    let after = rss_bytes()?;
    Ok(Sample::single((after - before) as f64 / p.processes as f64))
}

async fn spawn(p: Params) -> anyhow::Result<Sample> {
    let node = Node::new();
    let sup = idle_supervisor(&node, p.capacity)?;
    let mut held = Vec::with_capacity(p.processes);
    let mut per_op = Vec::new();
    let cpu_start = cpu_ns()?;
    for _ in 0..spawn_batches(p.processes) {
        let ready = Countdown::new(SPAWN_BATCH);
        let start = Instant::now();
        for _ in 0..SPAWN_BATCH {
            held.push(sup.start_child(ready.clone()).await?);
        }
        ready.done_within(HANG).await?;
        per_op.push(per_op_ns(start, SPAWN_BATCH));
    }
    let cpu = (cpu_ns()? - cpu_start) as f64 / p.processes as f64;
    Ok(Sample::with_cpu(median(&mut per_op), cpu))
}

fn spawn_server(
    node: &Node,
    p: Params,
    done: Option<(u64, Countdown)>,
) -> anyhow::Result<Addr<Msg>> {
    let opts = supervisors::SpawnOptions::new().capacity(p.capacity);
    Ok(node.spawn_with(opts, move |ctx| serve(ctx, 0, done))?)
}

async fn message(p: Params) -> anyhow::Result<Sample> {
    let node = Node::new();
    let done = Countdown::new(1);
    let addr = spawn_server(&node, p, Some((p.messages, done.clone())))?;
    let start = Instant::now();
    for _ in 0..p.messages {
        addr.send(Msg::Inc)
            .await
            .map_err(|_| anyhow::anyhow!("receiver gone"))?;
    }
    done.done_within(HANG).await?;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / p.messages as f64,
    ))
}

async fn call(p: Params) -> anyhow::Result<Sample> {
    let node = Node::new();
    let addr = spawn_server(&node, p, None)?;
    let mut batches = Batches::new(BATCH);
    for _ in 0..p.calls {
        addr.call(Msg::Ping, CALL_TIMEOUT).await?;
        batches.tick();
    }
    Ok(batches.sample())
}

/// The timeout of every call; only a hang reaches it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

async fn restart(p: Params) -> anyhow::Result<Sample> {
    let node = Node::new();
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel::<Addr<Msg>>();
    let generations = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let capacity = p.capacity;
    let child = ChildSpec::new("worker", move |ctx: ChildCtx| {
        let addr_tx = addr_tx.clone();
        let generation = generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        async move {
            let opts = ctx.options().capacity(capacity);
            let addr = ctx
                .spawn_with(opts, move |ctx| serve(ctx, generation, None))
                .map_err(ExitReason::error)?;
            let _ = addr_tx.send(addr.clone());
            Ok(Start::from(addr))
        }
    });
    let intensity = u32::try_from(p.restarts * 2).unwrap_or(u32::MAX);
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(intensity, Duration::from_secs(3600))
        .child(child);
    let _sup = Supervisor::start(&node, spec).await?;
    let mut child = addr_rx
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no child"))?;
    let mut generation = child.call(Msg::Ping, CALL_TIMEOUT).await?;
    let mut durations = Vec::with_capacity(p.restarts);
    for _ in 0..p.restarts {
        let start = Instant::now();
        child
            .send(Msg::Panic)
            .await
            .map_err(|_| anyhow::anyhow!("child gone before panic"))?;
        child = addr_rx
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("no restart"))?;
        let answered = child.call(Msg::Ping, CALL_TIMEOUT).await?;
        durations.push(start.elapsed());
        anyhow::ensure!(answered > generation, "answer from an old child");
        generation = answered;
    }
    Ok(restart_sample(&durations, p.restart_slice))
}

async fn broadcast(p: Params) -> anyhow::Result<Sample> {
    const GROUP: &str = "members";
    let node = Node::new();
    let ready = Countdown::new(p.members);
    let received = Countdown::new(p.members);
    for _ in 0..p.members {
        let (ready, received) = (ready.clone(), received.clone());
        let opts = supervisors::SpawnOptions::new().capacity(p.capacity);
        let addr = node.spawn_with(opts, move |mut ctx: Ctx<u64>| async move {
            ready.hit();
            let mut seen = 0;
            loop {
                ctx.recv_msg().await;
                seen += 1;
                if seen == p.broadcasts {
                    received.hit();
                }
            }
        })?;
        node.join(GROUP, addr.pid())?;
    }
    ready.done_within(HANG).await?;
    let start = Instant::now();
    for i in 0..p.broadcasts {
        let delivered = node.try_broadcast(GROUP, &i);
        anyhow::ensure!(
            delivered == p.members,
            "broadcast reached {delivered} members"
        );
    }
    received.done_within(HANG).await?;
    let deliveries = p.members as f64 * p.broadcasts as f64;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / deliveries,
    ))
}
