//! The floor: a bare tokio task reading a bounded mpsc channel.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::measure::{
    BATCH, Batches, Countdown, HANG, SPAWN_BATCH, cpu_ns, drive, median, per_op_ns, restart_sample,
    rss_bytes, spawn_batches, tokio_runtime,
};
use crate::workload::{Params, Sample, Workload};

/// What the floor's processes receive.
enum Msg {
    Inc,
    Ping(oneshot::Sender<u64>),
    Panic,
}

/// Runs one workload on bare tokio tasks.
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

/// A process: serves the mailbox until every sender is gone.
async fn serve(mut rx: mpsc::Receiver<Msg>, generation: u64, done: Option<(u64, Countdown)>) {
    let mut seen = 0;
    while let Some(msg) = rx.recv().await {
        match msg {
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

/// "Spawning under a supervisor" for the floor: a task and its channel.
fn spawn_idle(ready: &Countdown, capacity: usize) -> mpsc::Sender<Msg> {
    let (tx, rx) = mpsc::channel(capacity);
    let ready = ready.clone();
    tokio::spawn(async move {
        ready.hit();
        serve(rx, 0, None).await;
    });
    tx
}

async fn memory(p: Params) -> anyhow::Result<Sample> {
    let ready = Countdown::new(p.processes);
    let mut held = Vec::with_capacity(p.processes);
    let before = rss_bytes()?;
    for _ in 0..p.processes {
        held.push(spawn_idle(&ready, p.capacity));
    }
    ready.done_within(HANG).await?;
    let after = rss_bytes()?;
    Ok(Sample::single((after - before) as f64 / p.processes as f64))
}

async fn spawn(p: Params) -> anyhow::Result<Sample> {
    let mut held = Vec::with_capacity(p.processes);
    let mut per_op = Vec::new();
    let cpu_start = cpu_ns()?;
    for _ in 0..spawn_batches(p.processes) {
        let ready = Countdown::new(SPAWN_BATCH);
        let start = Instant::now();
        for _ in 0..SPAWN_BATCH {
            held.push(spawn_idle(&ready, p.capacity));
        }
        ready.done_within(HANG).await?;
        per_op.push(per_op_ns(start, SPAWN_BATCH));
    }
    let cpu = (cpu_ns()? - cpu_start) as f64 / p.processes as f64;
    Ok(Sample::with_cpu(median(&mut per_op), cpu))
}

async fn message(p: Params) -> anyhow::Result<Sample> {
    let done = Countdown::new(1);
    let (tx, rx) = mpsc::channel(p.capacity);
    tokio::spawn(serve(rx, 0, Some((p.messages, done.clone()))));
    let start = Instant::now();
    for _ in 0..p.messages {
        tx.send(Msg::Inc)
            .await
            .map_err(|_| anyhow::anyhow!("receiver gone"))?;
    }
    done.done_within(HANG).await?;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / p.messages as f64,
    ))
}

async fn call(p: Params, timed: bool) -> anyhow::Result<Sample> {
    let (tx, rx) = mpsc::channel(p.capacity);
    tokio::spawn(serve(rx, 0, None));
    let mut batches = Batches::new(BATCH);
    for _ in 0..p.calls {
        if timed {
            tokio::time::timeout(CALL_TIMEOUT, ping(&tx)).await??;
        } else {
            ping(&tx).await?;
        }
        batches.tick();
    }
    Ok(batches.sample())
}

/// The timeout of a timed call; only a hang reaches it.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn ping(tx: &mpsc::Sender<Msg>) -> anyhow::Result<u64> {
    let (reply, answer) = oneshot::channel();
    tx.send(Msg::Ping(reply))
        .await
        .map_err(|_| anyhow::anyhow!("process gone"))?;
    Ok(answer.await?)
}

/// The floor's supervisor: a loop that respawns the task when it panics
/// and hands each new channel to the driver.
async fn respawner(capacity: usize, addrs: mpsc::UnboundedSender<mpsc::Sender<Msg>>) {
    let mut generation = 0;
    loop {
        generation += 1;
        let (tx, rx) = mpsc::channel(capacity);
        let task = tokio::spawn(serve(rx, generation, None));
        if addrs.send(tx).is_err() {
            return;
        }
        match task.await {
            Err(e) if e.is_panic() => continue,
            _ => return,
        }
    }
}

async fn restart(p: Params) -> anyhow::Result<Sample> {
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
    tokio::spawn(respawner(p.capacity, addr_tx));
    let mut child = addr_rx
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no child"))?;
    let mut generation = ping(&child).await?;
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
        let answered = ping(&child).await?;
        durations.push(start.elapsed());
        anyhow::ensure!(answered > generation, "answer from an old child");
        generation = answered;
    }
    Ok(restart_sample(&durations, p.restart_slice))
}

async fn broadcast(p: Params) -> anyhow::Result<Sample> {
    let ready = Countdown::new(p.members);
    let received = Countdown::new(p.members);
    let mut members = Vec::with_capacity(p.members);
    for _ in 0..p.members {
        let (tx, rx) = mpsc::channel(p.capacity);
        let (ready, received) = (ready.clone(), received.clone());
        tokio::spawn(async move {
            ready.hit();
            serve(rx, 0, Some((p.broadcasts, received))).await;
        });
        members.push(tx);
    }
    ready.done_within(HANG).await?;
    let start = Instant::now();
    for _ in 0..p.broadcasts {
        for member in &members {
            member
                .try_send(Msg::Inc)
                .map_err(|_| anyhow::anyhow!("member mailbox full or gone"))?;
        }
    }
    received.done_within(HANG).await?;
    let deliveries = p.members as f64 * p.broadcasts as f64;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / deliveries,
    ))
}
