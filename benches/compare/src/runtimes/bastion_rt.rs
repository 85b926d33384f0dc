//! bastion: children groups under its system supervisor, on bastion's
//! own executor.
//!
//! Every process is a children group of one element. A group of many
//! elements gives each element a list of all its siblings (bastion 0.4.5,
//! `Children::as_ref` in `launch_child`), which costs quadratic time and
//! memory: 10,000 elements took 2.4 MB and 10 ms per element here.
//!
//! bastion has no tokio timers on its threads, so the driver waits
//! without a timeout here; the parent process kills a hung child.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bastion::prelude::{Bastion, BastionContext, ChildRef, ChildrenRef, Msg};
use tokio::sync::mpsc;

use crate::measure::{
    BATCH, Batches, Countdown, SPAWN_BATCH, cpu_ns, median, per_op_ns, restart_sample, rss_bytes,
    spawn_batches,
};
use crate::workload::{Params, Sample, Workload};

/// Runs one workload on bastion.
pub(crate) fn run(workload: Workload, p: Params) -> anyhow::Result<Sample> {
    Bastion::init();
    Bastion::start();
    let driver = bastion::executor::spawn(async move {
        match workload {
            Workload::Memory => memory(p).await,
            Workload::Spawn => spawn(p).await,
            Workload::Message => message(p).await,
            Workload::Call => call(p).await,
            Workload::TimedCall => Err(anyhow::anyhow!(
                "{}: an answer has no timeout of its own",
                crate::report::NOT_MEASURED
            )),
            Workload::Restart => restart(p).await,
            Workload::Broadcast => broadcast(p).await,
        }
    });
    bastion::executor::run(driver).ok_or_else(|| anyhow::anyhow!("driver panicked"))?
}

#[derive(Debug)]
struct Inc;
#[derive(Debug)]
struct Ping;
#[derive(Debug)]
struct Panic;

/// What one element of a children group does with its messages.
#[derive(Clone)]
struct Behaviour {
    generations: Arc<AtomicU64>,
    ready: Option<Countdown>,
    done: Option<(u64, Countdown)>,
    addrs: Option<mpsc::UnboundedSender<ChildRef>>,
}

impl Behaviour {
    fn new() -> Self {
        Self {
            generations: Arc::default(),
            ready: None,
            done: None,
            addrs: None,
        }
    }

    /// The body of one element: runs until its mailbox closes.
    async fn serve(self, ctx: BastionContext) -> Result<(), ()> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(ready) = &self.ready {
            ready.hit();
        }
        if let Some(addrs) = &self.addrs {
            let _ = addrs.send(ctx.current().clone());
        }
        let mut seen = 0;
        loop {
            let (mut msg, _) = ctx.recv().await?.extract();
            if msg.is::<Inc>() || msg.is_broadcast() {
                seen += 1;
                if let Some((want, countdown)) = &self.done
                    && seen == *want
                {
                    countdown.hit();
                }
            } else if msg.is::<Ping>() {
                if let Some(sender) = msg.take_sender() {
                    let _ = sender.reply(generation);
                }
            } else if msg.is::<Panic>() {
                panic!("injected panic");
            }
        }
    }
}

/// Starts a children group of `n` elements running `behaviour`.
fn group(n: usize, behaviour: Behaviour) -> anyhow::Result<ChildrenRef> {
    Bastion::children(move |children| {
        let behaviour = behaviour.clone();
        children
            .with_redundancy(n)
            .with_exec(move |ctx| behaviour.clone().serve(ctx))
    })
    .map_err(|()| anyhow::anyhow!("could not start a children group"))
}

fn idle(ready: &Countdown) -> Behaviour {
    Behaviour {
        ready: Some(ready.clone()),
        ..Behaviour::new()
    }
}

/// Starts `n` groups of one element each.
fn groups(n: usize, behaviour: &Behaviour) -> anyhow::Result<Vec<ChildrenRef>> {
    (0..n).map(|_| group(1, behaviour.clone())).collect()
}

async fn memory(p: Params) -> anyhow::Result<Sample> {
    let ready = Countdown::new(p.processes);
    let before = rss_bytes()?;
    let _groups = groups(p.processes, &idle(&ready))?;
    ready.done().await;
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
        held.extend(groups(SPAWN_BATCH, &idle(&ready))?);
        ready.done().await;
        per_op.push(per_op_ns(start, SPAWN_BATCH));
    }
    let cpu = (cpu_ns()? - cpu_start) as f64 / p.processes as f64;
    Ok(Sample::with_cpu(median(&mut per_op), cpu))
}

/// A group of one element, and that element once it runs.
async fn single(behaviour: Behaviour) -> anyhow::Result<(ChildrenRef, ChildRef)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let group = group(
        1,
        Behaviour {
            addrs: Some(tx),
            ..behaviour
        },
    )?;
    let child = rx.recv().await.ok_or_else(|| anyhow::anyhow!("no child"))?;
    Ok((group, child))
}

async fn message(p: Params) -> anyhow::Result<Sample> {
    let done = Countdown::new(1);
    let behaviour = Behaviour {
        done: Some((p.messages, done.clone())),
        ..Behaviour::new()
    };
    let (_group, child) = single(behaviour).await?;
    let start = Instant::now();
    for _ in 0..p.messages {
        // bastion mailboxes are unbounded: a tell never waits.
        child
            .tell_anonymously(Inc)
            .map_err(|_| anyhow::anyhow!("receiver gone"))?;
    }
    done.done().await;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / p.messages as f64,
    ))
}

async fn ping(child: &ChildRef) -> anyhow::Result<u64> {
    let answer = child
        .ask_anonymously(Ping)
        .map_err(|_| anyhow::anyhow!("child gone"))?;
    let (msg, _): (Msg, _) = answer
        .await
        .map_err(|()| anyhow::anyhow!("no answer"))?
        .extract();
    msg.downcast::<u64>()
        .map_err(|_| anyhow::anyhow!("answer of another type"))
}

async fn call(p: Params) -> anyhow::Result<Sample> {
    let (_group, child) = single(Behaviour::new()).await?;
    let mut batches = Batches::new(BATCH);
    for _ in 0..p.calls {
        ping(&child).await?;
        batches.tick();
    }
    Ok(batches.sample())
}

async fn restart(p: Params) -> anyhow::Result<Sample> {
    // The default restart strategy restarts a failed group at once and
    // without limit.
    let (tx, mut addrs) = mpsc::unbounded_channel();
    let _group = group(
        1,
        Behaviour {
            addrs: Some(tx),
            ..Behaviour::new()
        },
    )?;
    let mut child = addrs
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no child"))?;
    let mut generation = ping(&child).await?;
    let mut durations = Vec::with_capacity(p.restarts);
    for _ in 0..p.restarts {
        let start = Instant::now();
        child
            .tell_anonymously(Panic)
            .map_err(|_| anyhow::anyhow!("child gone before panic"))?;
        child = addrs
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
    let behaviour = Behaviour {
        ready: Some(ready.clone()),
        done: Some((p.broadcasts, received.clone())),
        ..Behaviour::new()
    };
    let _members = groups(p.members, &behaviour)?;
    ready.done().await;
    let start = Instant::now();
    for i in 0..p.broadcasts {
        // To every element of every group of the system: only the members.
        Bastion::broadcast(i).map_err(|_| anyhow::anyhow!("system gone"))?;
    }
    received.done().await;
    let deliveries = p.members as f64 * p.broadcasts as f64;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / deliveries,
    ))
}
