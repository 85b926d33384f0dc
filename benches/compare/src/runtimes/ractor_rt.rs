//! ractor: actors linked to a supervisor actor, process groups via `pg`.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, pg};
use tokio::sync::mpsc;

use crate::measure::{
    BATCH, Batches, Countdown, HANG, SPAWN_BATCH, cpu_ns, drive, median, per_op_ns, restart_sample,
    rss_bytes, spawn_batches, tokio_runtime,
};
use crate::workload::{Params, Sample, Workload};

/// Runs one workload on ractor.
pub(crate) fn run(workload: Workload, p: Params) -> anyhow::Result<Sample> {
    let rt = tokio_runtime()?;
    match workload {
        Workload::Memory => drive(rt, memory(p)),
        Workload::Spawn => drive(rt, spawn(p)),
        Workload::Message => drive(rt, message(p)),
        Workload::Call => drive(rt, call(p, None)),
        Workload::TimedCall => drive(rt, call(p, Some(CALL_TIMEOUT))),
        Workload::Restart => drive(rt, restart(p)),
        Workload::Broadcast => drive(rt, broadcast(p)),
    }
}

/// What the server actor receives.
enum Msg {
    Inc,
    Ping(RpcReplyPort<u64>),
    Panic,
}

/// The server actor: counts, answers pings, panics on request.
struct Server;

/// How a server starts.
struct ServerArgs {
    generation: u64,
    ready: Option<Countdown>,
    done: Option<(u64, Countdown)>,
}

struct ServerState {
    generation: u64,
    seen: u64,
    done: Option<(u64, Countdown)>,
}

impl Actor for Server {
    type Msg = Msg;
    type State = ServerState;
    type Arguments = ServerArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Msg>,
        args: ServerArgs,
    ) -> Result<ServerState, ActorProcessingErr> {
        if let Some(ready) = args.ready {
            ready.hit();
        }
        Ok(ServerState {
            generation: args.generation,
            seen: 0,
            done: args.done,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Msg>,
        msg: Msg,
        state: &mut ServerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Inc => {
                state.seen += 1;
                if let Some((want, countdown)) = &state.done
                    && state.seen == *want
                {
                    countdown.hit();
                }
            }
            Msg::Ping(reply) => {
                let _ = reply.send(state.generation);
            }
            Msg::Panic => panic!("injected panic"),
        }
        Ok(())
    }
}

/// A supervisor that keeps its children and ignores their events (the
/// children of the spawn workload never exit).
struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<()>,
        _event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn idle_args(ready: &Countdown) -> ServerArgs {
    ServerArgs {
        generation: 0,
        ready: Some(ready.clone()),
        done: None,
    }
}

async fn memory(p: Params) -> anyhow::Result<Sample> {
    let (parent, _) = Actor::spawn(None, Parent, ()).await?;
    let ready = Countdown::new(p.processes);
    let mut held = Vec::with_capacity(p.processes);
    let before = rss_bytes()?;
    for _ in 0..p.processes {
        let (child, _) =
            Actor::spawn_linked(None, Server, idle_args(&ready), parent.get_cell()).await?;
        held.push(child);
    }
    ready.done_within(HANG).await?;
    let after = rss_bytes()?;
    Ok(Sample::single((after - before) as f64 / p.processes as f64))
}

async fn spawn(p: Params) -> anyhow::Result<Sample> {
    let (parent, _) = Actor::spawn(None, Parent, ()).await?;
    let mut held = Vec::with_capacity(p.processes);
    let mut per_op = Vec::new();
    let cpu_start = cpu_ns()?;
    for _ in 0..spawn_batches(p.processes) {
        let ready = Countdown::new(SPAWN_BATCH);
        let start = Instant::now();
        for _ in 0..SPAWN_BATCH {
            let (child, _) =
                Actor::spawn_linked(None, Server, idle_args(&ready), parent.get_cell()).await?;
            held.push(child);
        }
        ready.done_within(HANG).await?;
        per_op.push(per_op_ns(start, SPAWN_BATCH));
    }
    let cpu = (cpu_ns()? - cpu_start) as f64 / p.processes as f64;
    Ok(Sample::with_cpu(median(&mut per_op), cpu))
}

async fn message(p: Params) -> anyhow::Result<Sample> {
    let done = Countdown::new(1);
    let args = ServerArgs {
        generation: 0,
        ready: None,
        done: Some((p.messages, done.clone())),
    };
    let (server, _) = Actor::spawn(None, Server, args).await?;
    let start = Instant::now();
    for _ in 0..p.messages {
        // ractor mailboxes are unbounded: a cast never waits.
        server
            .cast(Msg::Inc)
            .map_err(|_| anyhow::anyhow!("receiver gone"))?;
    }
    done.done_within(HANG).await?;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / p.messages as f64,
    ))
}

/// The timeout of every call; only a hang reaches it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

async fn ping(server: &ActorRef<Msg>, timeout: Option<Duration>) -> anyhow::Result<u64> {
    match server.call(Msg::Ping, timeout).await {
        Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
        Ok(_) => anyhow::bail!("call timed out or dropped"),
        Err(_) => anyhow::bail!("server gone"),
    }
}

async fn call(p: Params, timeout: Option<Duration>) -> anyhow::Result<Sample> {
    let args = ServerArgs {
        generation: 0,
        ready: None,
        done: None,
    };
    let (server, _) = Actor::spawn(None, Server, args).await?;
    let mut batches = Batches::new(BATCH);
    for _ in 0..p.calls {
        ping(&server, timeout).await?;
        batches.tick();
    }
    Ok(batches.sample())
}

/// A supervisor that restarts its one child whenever it fails and hands
/// each new child to the driver.
struct Restarter;

struct RestarterState {
    generation: u64,
    addrs: mpsc::UnboundedSender<ActorRef<Msg>>,
}

impl Restarter {
    async fn start_child(
        me: &ActorRef<mpsc::UnboundedSender<ActorRef<Msg>>>,
        state: &mut RestarterState,
    ) -> Result<(), ActorProcessingErr> {
        state.generation += 1;
        let args = ServerArgs {
            generation: state.generation,
            ready: None,
            done: None,
        };
        let (child, _) = Actor::spawn_linked(None, Server, args, me.get_cell()).await?;
        let _ = state.addrs.send(child);
        Ok(())
    }
}

impl Actor for Restarter {
    // The message type is unused; the arguments are the driver's channel.
    type Msg = mpsc::UnboundedSender<ActorRef<Msg>>;
    type State = RestarterState;
    type Arguments = mpsc::UnboundedSender<ActorRef<Msg>>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        addrs: Self::Arguments,
    ) -> Result<RestarterState, ActorProcessingErr> {
        let mut state = RestarterState {
            generation: 0,
            addrs,
        };
        Self::start_child(&me, &mut state).await?;
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut RestarterState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(..) = event {
            Self::start_child(&me, state).await?;
        }
        Ok(())
    }
}

async fn restart(p: Params) -> anyhow::Result<Sample> {
    let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
    let (_restarter, _) = Actor::spawn(None, Restarter, addr_tx).await?;
    let mut child = addr_rx
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no child"))?;
    let mut generation = ping(&child, Some(CALL_TIMEOUT)).await?;
    let mut durations = Vec::with_capacity(p.restarts);
    for _ in 0..p.restarts {
        let start = Instant::now();
        child
            .cast(Msg::Panic)
            .map_err(|_| anyhow::anyhow!("child gone before panic"))?;
        child = addr_rx
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("no restart"))?;
        let answered = ping(&child, Some(CALL_TIMEOUT)).await?;
        durations.push(start.elapsed());
        anyhow::ensure!(answered > generation, "answer from an old child");
        generation = answered;
    }
    Ok(restart_sample(&durations, p.restart_slice))
}

/// A group member: counts broadcasts.
struct Member;

impl Actor for Member {
    type Msg = u64;
    type State = (u64, u64, Countdown);
    type Arguments = (u64, Countdown, Countdown);

    async fn pre_start(
        &self,
        _me: ActorRef<u64>,
        (want, ready, received): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        ready.hit();
        Ok((0, want, received))
    }

    async fn handle(
        &self,
        _me: ActorRef<u64>,
        _msg: u64,
        (seen, want, received): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        *seen += 1;
        if *seen == *want {
            received.hit();
        }
        Ok(())
    }
}

async fn broadcast(p: Params) -> anyhow::Result<Sample> {
    let group = "members".to_owned();
    let ready = Countdown::new(p.members);
    let received = Countdown::new(p.members);
    let mut held = Vec::with_capacity(p.members);
    for _ in 0..p.members {
        let args = (p.broadcasts, ready.clone(), received.clone());
        let (member, _) = Actor::spawn(None, Member, args).await?;
        pg::join(group.clone(), vec![member.get_cell()]);
        held.push(member);
    }
    ready.done_within(HANG).await?;
    let start = Instant::now();
    for i in 0..p.broadcasts {
        for member in pg::get_members(&group) {
            member
                .send_message(i)
                .map_err(|_| anyhow::anyhow!("member gone"))?;
        }
    }
    received.done_within(HANG).await?;
    let deliveries = p.members as f64 * p.broadcasts as f64;
    Ok(Sample::single(
        start.elapsed().as_nanos() as f64 / deliveries,
    ))
}
