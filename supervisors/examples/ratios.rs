//! The bench workloads as five interleaved rounds, floor and `supervisors`
//! side by side, printing medians and ratios (only ratios within one run
//! mean anything on a shared machine).
//!
//! `cargo run --release -p supervisors --example ratios [-- WORKLOAD..]`
//!
//! Every measurement runs in a fresh child process of this binary, which
//! runs the workload once untimed and then once timed. Both sides thus
//! start from the same state: a runtime and an allocator that have just
//! done and undone the same work, and nothing left over from the other
//! side. Measured in one process one after the other, each side ran on
//! the heap the previous measurement left behind (the floor's 200,000
//! freed tasks and channels under the spawn of `supervisors`), and which
//! side went first changed the spawn ratio from 2.3x to 1.2x.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use supervisors::{
    ChildCtx, ChildSpec, Ctx, DynamicSpec, DynamicSupervisor, ExitReason, Node, ReplyTo,
    SpawnOptions, Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::sync::{Notify, mpsc, oneshot};

const CAPACITY: usize = 1024;
const ROUNDS: usize = 5;

/// Nanoseconds per operation: wall clock and process CPU time; and the
/// minor page faults per operation.
#[derive(Clone, Copy)]
struct Ns {
    wall: f64,
    cpu: f64,
    faults: f64,
}

/// Minor page faults of the process so far, from `/proc/self/stat`.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// CPU time of the whole process (all threads, in nanoseconds), from
/// `/proc/self/task/*/schedstat`; `/proc/self/stat` counts 10 ms ticks.
fn cpu_time() -> Duration {
    let mut ns = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("schedstat");
        // A thread that ended meanwhile has no file any more.
        if let Ok(stat) = std::fs::read_to_string(path) {
            ns += stat
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    Duration::from_nanos(ns)
}

/// Starts a measurement.
struct Clock {
    wall: Instant,
    cpu: Duration,
    faults: u64,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
            faults: minor_faults(),
        }
    }

    fn per(&self, n: usize) -> Ns {
        Ns {
            wall: self.wall.elapsed().as_nanos() as f64 / n as f64,
            cpu: (cpu_time() - self.cpu).as_nanos() as f64 / n as f64,
            faults: (minor_faults() - self.faults) as f64 / n as f64,
        }
    }
}

async fn spawn_floor() -> Ns {
    const N: usize = 200_000;
    let mut senders = Vec::with_capacity(N);
    let mut tasks = Vec::with_capacity(N);
    let t0 = Clock::start();
    for _ in 0..N {
        let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
        tasks.push(tokio::spawn(
            async move { while rx.recv().await.is_some() {} },
        ));
        senders.push(tx);
    }
    let took = t0.per(N);
    // Tear down before the next measurement, as the other side does.
    drop(senders);
    for task in tasks {
        task.await.unwrap();
    }
    took
}

async fn spawn_sup() -> Ns {
    const N: usize = 200_000;
    let node = Node::new();
    let spec = DynamicSpec::new(|_: (), ctx: ChildCtx| async move {
        let addr = ctx.spawn(|mut c: Ctx<u64>| async move {
            loop {
                c.recv().await;
            }
        });
        Ok(Start::from(addr))
    });
    let sup = DynamicSupervisor::start(&node, spec).unwrap();
    let t0 = Clock::start();
    for _ in 0..N {
        sup.start_child(()).await.unwrap();
    }
    let took = t0.per(N);
    sup.shutdown().await;
    took
}

const MESSAGES: usize = 1_000_000;

async fn one_way_floor() -> Ns {
    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        for _ in 0..MESSAGES {
            rx.recv().await.unwrap();
        }
        done_tx.send(()).unwrap();
    });
    let t0 = Clock::start();
    for i in 0..MESSAGES as u64 {
        tx.send(i).await.unwrap();
    }
    done_rx.await.unwrap();
    t0.per(MESSAGES)
}

async fn one_way_sup() -> Ns {
    let node = Node::new();
    let (done_tx, done_rx) = oneshot::channel();
    let addr = node.spawn(move |mut ctx: Ctx<u64>| async move {
        for _ in 0..MESSAGES {
            ctx.recv_msg().await;
        }
        done_tx.send(()).unwrap();
        ExitReason::Normal
    });
    let t0 = Clock::start();
    for i in 0..MESSAGES as u64 {
        addr.send(i).await.unwrap();
    }
    done_rx.await.unwrap();
    t0.per(MESSAGES)
}

const CALLS: usize = 200_000;

async fn call_floor() -> Ns {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
    tokio::spawn(async move {
        while let Some((n, reply)) = rx.recv().await {
            let _ = reply.send(n);
        }
    });
    // The caller is a task, as in a program whose processes call each
    // other: calls from the `block_on` thread measure how that thread and
    // the workers wake each other, which varies threefold between runs.
    tokio::spawn(async move {
        let t0 = Clock::start();
        for i in 0..CALLS as u64 {
            let (rtx, rrx) = oneshot::channel();
            tx.send((i, rtx)).await.unwrap();
            rrx.await.unwrap();
        }
        t0.per(CALLS)
    })
    .await
    .unwrap()
}

async fn call_sup() -> Ns {
    let node = Node::new();
    let addr = node.spawn(|mut ctx: Ctx<(u64, ReplyTo<u64>)>| async move {
        loop {
            let (n, reply) = ctx.recv_msg().await;
            let _ = reply.send(n);
        }
    });
    let caller = addr.clone();
    let took = tokio::spawn(async move {
        let t0 = Clock::start();
        for i in 0..CALLS as u64 {
            caller
                .call(|r| (i, r), Duration::from_secs(10))
                .await
                .unwrap();
        }
        t0.per(CALLS)
    })
    .await
    .unwrap();
    node.kill(addr.pid());
    took
}

const RESTARTS: usize = 20_000;

enum Job {
    Crash,
    Ask(ReplyTo<()>),
}

enum FloorJob {
    Crash,
    Ask(oneshot::Sender<()>),
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn restart_floor() -> Ns {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let keeper = tokio::spawn(async move {
        loop {
            let (tx, mut rx) = mpsc::channel::<FloorJob>(CAPACITY);
            let task = tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    match job {
                        FloorJob::Crash => panic!("crash"),
                        FloorJob::Ask(r) => {
                            let _ = r.send(());
                        }
                    }
                }
            });
            if ready_tx.send(tx).is_err() {
                return;
            }
            let _ = task.await;
        }
    });
    let mut current: mpsc::Sender<FloorJob> = ready_rx.recv().await.unwrap();
    let mut lat = Vec::with_capacity(RESTARTS);
    let all = Clock::start();
    for _ in 0..RESTARTS {
        let t0 = Instant::now();
        current.send(FloorJob::Crash).await.unwrap();
        current = ready_rx.recv().await.unwrap();
        let (tx, rx) = oneshot::channel();
        current.send(FloorJob::Ask(tx)).await.unwrap();
        rx.await.unwrap();
        lat.push(t0.elapsed().as_nanos() as f64);
    }
    keeper.abort();
    Ns {
        wall: median(lat),
        ..all.per(RESTARTS)
    }
}

async fn restart_sup() -> Ns {
    let node = Node::new();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let child = ChildSpec::new("w", move |ctx: ChildCtx| {
        let ready_tx = ready_tx.clone();
        async move {
            let addr = ctx.spawn(|mut c: Ctx<Job>| async move {
                loop {
                    match c.recv_msg().await {
                        Job::Crash => panic!("crash"),
                        Job::Ask(r) => {
                            let _ = r.send(());
                        }
                    }
                }
            });
            let _ = ready_tx.send(addr.clone());
            Ok(Start::from(addr))
        }
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(3600))
        .child(child);
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let mut current = ready_rx.recv().await.unwrap();
    let mut lat = Vec::with_capacity(RESTARTS);
    let all = Clock::start();
    for _ in 0..RESTARTS {
        let t0 = Instant::now();
        current.send(Job::Crash).await.unwrap();
        current = ready_rx.recv().await.unwrap();
        current
            .call(Job::Ask, Duration::from_secs(10))
            .await
            .unwrap();
        lat.push(t0.elapsed().as_nanos() as f64);
    }
    let took = Ns {
        wall: median(lat),
        ..all.per(RESTARTS)
    };
    sup.shutdown().await;
    took
}

const MEMBERS: usize = 10_000;
const BROADCASTS: usize = 100;

async fn broadcast_floor() -> Ns {
    let seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(MEMBERS);
    let senders: Vec<mpsc::Sender<Arc<u64>>> = (0..MEMBERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Arc<u64>>(CAPACITY);
            let (seen, done) = (seen.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    if seen.fetch_add(1, Ordering::AcqRel) + 1 == MEMBERS {
                        done.notify_one();
                    }
                }
            }));
            tx
        })
        .collect();
    let t0 = Clock::start();
    for _ in 0..BROADCASTS {
        seen.store(0, Ordering::Release);
        let msg = Arc::new(1u64);
        for tx in &senders {
            let _ = tx.try_send(msg.clone());
        }
        done.notified().await;
    }
    let took = t0.per(MEMBERS * BROADCASTS);
    // Tear down completely, as the other side does.
    drop(senders);
    for task in tasks {
        task.await.unwrap();
    }
    took
}

async fn broadcast_sup() -> Ns {
    let seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let node = Node::new();
    for _ in 0..MEMBERS {
        let (seen, done) = (seen.clone(), done.clone());
        let addr = node
            .spawn_with(
                SpawnOptions::new(),
                move |mut ctx: Ctx<Arc<u64>>| async move {
                    loop {
                        ctx.recv_msg().await;
                        if seen.fetch_add(1, Ordering::AcqRel) + 1 == MEMBERS {
                            done.notify_one();
                        }
                    }
                },
            )
            .unwrap();
        node.join("room", addr.pid()).unwrap();
    }
    let t0 = Clock::start();
    for _ in 0..BROADCASTS {
        seen.store(0, Ordering::Release);
        assert_eq!(node.try_broadcast("room", &Arc::new(1u64)), MEMBERS);
        done.notified().await;
    }
    let took = t0.per(MEMBERS * BROADCASTS);
    let watches: Vec<_> = node.pids().into_iter().map(|pid| node.watch(pid)).collect();
    for pid in node.pids() {
        node.kill(pid);
    }
    for w in watches {
        w.await;
    }
    took
}

const WORKLOADS: [(&str, &str); 5] = [
    ("spawn", "spawn under a dynamic supervisor, per process"),
    ("one_way", "one-way message, one receiver"),
    ("call", "call round trip"),
    (
        "restart",
        "restart: panic to restarted child answering (median)",
    ),
    ("broadcast", "broadcast to a group of 10,000, per delivery"),
];

/// Runs one workload on one side in this process: once untimed, once
/// timed.
async fn measure(workload: &str, side: &str) -> Ns {
    let mut last = None;
    for _ in 0..2 {
        last = Some(match (workload, side) {
            ("spawn", "floor") => spawn_floor().await,
            ("spawn", _) => spawn_sup().await,
            ("one_way", "floor") => one_way_floor().await,
            ("one_way", _) => one_way_sup().await,
            ("call", "floor") => call_floor().await,
            ("call", _) => call_sup().await,
            ("restart", "floor") => restart_floor().await,
            ("restart", _) => restart_sup().await,
            ("broadcast", "floor") => broadcast_floor().await,
            (_, _) => broadcast_sup().await,
        });
    }
    last.unwrap()
}

/// One measurement in a fresh child process of this binary.
fn measure_in_child(workload: &str, side: &str) -> Ns {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--one", workload, side])
        .output()
        .unwrap();
    assert!(out.status.success(), "{workload} on {side} failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut figures = text.split_whitespace().map(|x| x.parse::<f64>().unwrap());
    Ns {
        wall: figures.next().unwrap(),
        cpu: figures.next().unwrap(),
        faults: figures.next().unwrap(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, workload, side] = args.as_slice()
        && flag == "--one"
    {
        std::panic::set_hook(Box::new(|_| {}));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let ns = rt.block_on(measure(workload, side));
        println!("{} {} {}", ns.wall, ns.cpu, ns.faults);
        return;
    }
    // Optional arguments pick workloads by key (spawn, one_way, call,
    // restart, broadcast); none runs them all.
    let picked: Vec<(&str, &str)> = WORKLOADS
        .into_iter()
        .filter(|(key, _)| args.is_empty() || args.iter().any(|a| a == key))
        .collect();
    let mut rows: Vec<(&str, Vec<Ns>, Vec<Ns>)> = picked
        .iter()
        .map(|(_, name)| (*name, vec![], vec![]))
        .collect();
    for round in 0..ROUNDS {
        for (row, (key, _)) in rows.iter_mut().zip(&picked) {
            // Alternate which side goes first, so that neither always
            // follows the other.
            if round % 2 == 0 {
                row.1.push(measure_in_child(key, "floor"));
                row.2.push(measure_in_child(key, "supervisors"));
            } else {
                row.2.push(measure_in_child(key, "supervisors"));
                row.1.push(measure_in_child(key, "floor"));
            }
        }
    }
    println!(
        "| workload | floor wall | supervisors wall | ratio | floor CPU | supervisors CPU | CPU ratio | page faults per op (floor / supervisors) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, floor, sup) in rows {
        let med = |xs: &[Ns], f: fn(&Ns) -> f64| median(xs.iter().map(f).collect());
        let (fw, sw) = (med(&floor, |n| n.wall), med(&sup, |n| n.wall));
        let (fc, sc) = (med(&floor, |n| n.cpu), med(&sup, |n| n.cpu));
        let (ff, sf) = (med(&floor, |n| n.faults), med(&sup, |n| n.faults));
        println!(
            "| {name} | {fw:.0} ns | {sw:.0} ns | {:.2}x | {fc:.0} ns | {sc:.0} ns | {:.2}x | {ff:.3} / {sf:.3} |",
            sw / fw,
            sc / fc
        );
    }
}
