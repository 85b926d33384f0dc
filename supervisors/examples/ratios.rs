//! The bench workloads as five interleaved rounds, floor and `supervisors`
//! side by side, printing medians and ratios (only ratios within one run
//! mean anything on a shared machine).
//!
//! `cargo run --release -p supervisors --example ratios`

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

/// Nanoseconds per operation: wall clock and process CPU time.
#[derive(Clone, Copy)]
struct Ns {
    wall: f64,
    cpu: f64,
}

/// CPU time of the whole process (all threads), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Starts a measurement.
struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn per(&self, n: usize) -> Ns {
        Ns {
            wall: self.wall.elapsed().as_nanos() as f64 / n as f64,
            cpu: (cpu_time() - self.cpu).as_nanos() as f64 / n as f64,
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
    let t0 = Clock::start();
    for i in 0..CALLS as u64 {
        let (rtx, rrx) = oneshot::channel();
        tx.send((i, rtx)).await.unwrap();
        rrx.await.unwrap();
    }
    t0.per(CALLS)
}

async fn call_sup() -> Ns {
    let node = Node::new();
    let addr = node.spawn(|mut ctx: Ctx<(u64, ReplyTo<u64>)>| async move {
        loop {
            let (n, reply) = ctx.recv_msg().await;
            let _ = reply.send(n);
        }
    });
    let t0 = Clock::start();
    for i in 0..CALLS as u64 {
        addr.call(|r| (i, r), Duration::from_secs(10))
            .await
            .unwrap();
    }
    let took = t0.per(CALLS);
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
    let cpu = all.per(RESTARTS).cpu;
    keeper.abort();
    Ns {
        wall: median(lat),
        cpu,
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
    let cpu = all.per(RESTARTS).cpu;
    sup.shutdown().await;
    Ns {
        wall: median(lat),
        cpu,
    }
}

const MEMBERS: usize = 10_000;
const BROADCASTS: usize = 100;

async fn broadcast_floor() -> Ns {
    let seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let senders: Vec<mpsc::Sender<Arc<u64>>> = (0..MEMBERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Arc<u64>>(CAPACITY);
            let (seen, done) = (seen.clone(), done.clone());
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    if seen.fetch_add(1, Ordering::AcqRel) + 1 == MEMBERS {
                        done.notify_one();
                    }
                }
            });
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
    drop(senders);
    tokio::task::yield_now().await;
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut rows: Vec<(&str, Vec<Ns>, Vec<Ns>)> = vec![
        (
            "spawn under a dynamic supervisor, per process",
            vec![],
            vec![],
        ),
        ("one-way message, one receiver", vec![], vec![]),
        ("call round trip", vec![], vec![]),
        (
            "restart: panic to restarted child answering (median)",
            vec![],
            vec![],
        ),
        (
            "broadcast to a group of 10,000, per delivery",
            vec![],
            vec![],
        ),
    ];
    for _ in 0..ROUNDS {
        rows[0].1.push(spawn_floor().await);
        rows[0].2.push(spawn_sup().await);
        rows[1].1.push(one_way_floor().await);
        rows[1].2.push(one_way_sup().await);
        rows[2].1.push(call_floor().await);
        rows[2].2.push(call_sup().await);
        rows[3].1.push(restart_floor().await);
        rows[3].2.push(restart_sup().await);
        rows[4].1.push(broadcast_floor().await);
        rows[4].2.push(broadcast_sup().await);
    }
    println!(
        "| workload | floor wall | supervisors wall | ratio | floor CPU | supervisors CPU | CPU ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, floor, sup) in rows {
        let med = |xs: &[Ns], f: fn(&Ns) -> f64| median(xs.iter().map(f).collect());
        let (fw, sw) = (med(&floor, |n| n.wall), med(&sup, |n| n.wall));
        let (fc, sc) = (med(&floor, |n| n.cpu), med(&sup, |n| n.cpu));
        println!(
            "| {name} | {fw:.0} ns | {sw:.0} ns | {:.2}x | {fc:.0} ns | {sc:.0} ns | {:.2}x |",
            sw / fw,
            sc / fc
        );
    }
}
