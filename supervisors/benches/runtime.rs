//! Costs of the runtime next to a bare tokio task and channel (the floor).
//!
//! Each group measures `supervisors` and the floor side by side, so only
//! the ratio within one run matters. Memory per process and the restart
//! storm are examples (`memory`, `restart_storm`), not benches.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use supervisors::{
    ChildCtx, ChildSpec, Ctx, DynamicSpec, DynamicSupervisor, ExitReason, Node, ReplyTo, Restart,
    SpawnOptions, Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc, oneshot};

const CAPACITY: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Spawning idle processes under a dynamic supervisor.
fn spawn(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("spawn_idle");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("floor", "tokio_task_and_channel"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut senders = Vec::with_capacity(iters as usize);
                let mut tasks = Vec::with_capacity(iters as usize);
                let t0 = Instant::now();
                for _ in 0..iters {
                    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
                    tasks.push(tokio::spawn(
                        async move { while rx.recv().await.is_some() {} },
                    ));
                    senders.push(tx);
                }
                let took = t0.elapsed();
                drop(senders);
                for task in tasks {
                    task.await.unwrap();
                }
                took
            })
        });
    });
    g.bench_function(BenchmarkId::new("supervisors", "dynamic_supervisor"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
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
                let t0 = Instant::now();
                for _ in 0..iters {
                    sup.start_child(()).await.unwrap();
                }
                let took = t0.elapsed();
                sup.shutdown().await;
                took
            })
        });
    });
    g.finish();
}

/// One-way messages into one receiver.
fn one_way(c: &mut Criterion) {
    const N: u64 = 100_000;
    let rt = runtime();
    let mut g = c.benchmark_group("one_way_message");
    g.throughput(Throughput::Elements(N));
    g.bench_function(BenchmarkId::new("floor", "tokio_mpsc"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
                    let (done_tx, done_rx) = oneshot::channel();
                    tokio::spawn(async move {
                        let mut sum = 0u64;
                        for _ in 0..N {
                            sum += rx.recv().await.unwrap();
                        }
                        done_tx.send(sum).unwrap();
                    });
                    let t0 = Instant::now();
                    for i in 0..N {
                        tx.send(i).await.unwrap();
                    }
                    done_rx.await.unwrap();
                    total += t0.elapsed();
                }
                total
            })
        });
    });
    g.bench_function(BenchmarkId::new("supervisors", "addr_send"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let node = Node::new();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (done_tx, done_rx) = oneshot::channel();
                    let addr = node.spawn(move |mut ctx: Ctx<u64>| async move {
                        let mut sum = 0u64;
                        for _ in 0..N {
                            sum += ctx.recv_msg().await;
                        }
                        done_tx.send(sum).unwrap();
                        ExitReason::Normal
                    });
                    let t0 = Instant::now();
                    for i in 0..N {
                        addr.send(i).await.unwrap();
                    }
                    done_rx.await.unwrap();
                    total += t0.elapsed();
                }
                total
            })
        });
    });
    g.finish();
}

enum Echo {
    Ask(u64, ReplyTo<u64>),
}

/// Request and reply.
fn call(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("call_round_trip");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("floor", "mpsc_and_oneshot"), |b| {
        let tx = rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
            tokio::spawn(async move {
                while let Some((n, reply)) = rx.recv().await {
                    let _ = reply.send(n);
                }
            });
            tx
        });
        // The caller is a task: calls from the `block_on` thread measure
        // how that thread and the workers wake each other, which varies
        // fivefold between runs.
        b.iter_custom(|iters| {
            let tx = tx.clone();
            rt.block_on(async {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..iters {
                        let (rtx, rrx) = oneshot::channel();
                        tx.send((i, rtx)).await.unwrap();
                        rrx.await.unwrap();
                    }
                    t0.elapsed()
                })
                .await
                .unwrap()
            })
        });
    });
    g.bench_function(BenchmarkId::new("supervisors", "addr_call"), |b| {
        let node = rt.block_on(async { Node::new() });
        let addr = rt.block_on(async {
            node.spawn(|mut ctx: Ctx<Echo>| async move {
                loop {
                    let Echo::Ask(n, reply) = ctx.recv_msg().await;
                    let _ = reply.send(n);
                }
            })
        });
        b.iter_custom(|iters| {
            let addr = addr.clone();
            rt.block_on(async {
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..iters {
                        addr.call(|r| Echo::Ask(i, r), TIMEOUT).await.unwrap();
                    }
                    t0.elapsed()
                })
                .await
                .unwrap()
            })
        });
    });
    g.finish();
}

enum Job {
    Crash,
    Ask(ReplyTo<()>),
}

/// Panic to restarted child answering.
fn restart(c: &mut Criterion) {
    // Panics are the workload here; printing each one would be the cost.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime();
    let mut g = c.benchmark_group("restart_latency");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("floor", "tokio_respawn"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
                let keeper = tokio::spawn(floor_keeper(ready_tx));
                let mut current: mpsc::Sender<FloorJob> = ready_rx.recv().await.unwrap();
                let t0 = Instant::now();
                for _ in 0..iters {
                    current.send(FloorJob::Crash).await.unwrap();
                    current = ready_rx.recv().await.unwrap();
                    let (tx, rx) = oneshot::channel();
                    current.send(FloorJob::Ask(tx)).await.unwrap();
                    rx.await.unwrap();
                }
                let took = t0.elapsed();
                keeper.abort();
                took
            })
        });
    });
    g.bench_function(BenchmarkId::new("supervisors", "one_for_one"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
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
                })
                .restart(Restart::Permanent);
                let spec = SupervisorSpec::new(Strategy::OneForOne)
                    .intensity(u32::MAX, Duration::from_secs(1))
                    .child(child);
                let sup = Supervisor::start(&node, spec).await.unwrap();
                let mut current = ready_rx.recv().await.unwrap();
                let t0 = Instant::now();
                for _ in 0..iters {
                    current.send(Job::Crash).await.unwrap();
                    current = ready_rx.recv().await.unwrap();
                    current.call(Job::Ask, TIMEOUT).await.unwrap();
                }
                let took = t0.elapsed();
                sup.shutdown().await;
                took
            })
        });
    });
    g.finish();
}

enum FloorJob {
    Crash,
    Ask(oneshot::Sender<()>),
}

/// A bare supervisor loop: await the task, respawn it on panic.
async fn floor_keeper(ready: mpsc::UnboundedSender<mpsc::Sender<FloorJob>>) {
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
        if ready.send(tx).is_err() {
            return;
        }
        let _ = task.await;
    }
}

/// A broadcast to every member of a group of 10,000.
fn broadcast(c: &mut Criterion) {
    const MEMBERS: usize = 10_000;
    let rt = runtime();
    let mut g = c.benchmark_group("broadcast_10k");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    g.bench_function(BenchmarkId::new("floor", "vec_of_senders"), |b| {
        let seen = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let senders: Vec<mpsc::Sender<Arc<u64>>> = rt.block_on(async {
            (0..MEMBERS)
                .map(|_| {
                    let (tx, mut rx) = mpsc::channel::<Arc<u64>>(CAPACITY);
                    let seen = seen.clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        while rx.recv().await.is_some() {
                            if seen.fetch_add(1, Ordering::AcqRel) + 1 == MEMBERS {
                                done.notify_one();
                            }
                        }
                    });
                    tx
                })
                .collect()
        });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    seen.store(0, Ordering::Release);
                    let msg = Arc::new(1u64);
                    for tx in &senders {
                        let _ = tx.try_send(msg.clone());
                    }
                    done.notified().await;
                }
                t0.elapsed()
            })
        });
    });
    g.bench_function(BenchmarkId::new("supervisors", "try_broadcast"), |b| {
        let seen = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let node = rt.block_on(async {
            let node = Node::new();
            for _ in 0..MEMBERS {
                let seen = seen.clone();
                let done = done.clone();
                let opts = SpawnOptions::new().capacity(CAPACITY);
                let addr = node
                    .spawn_with(opts, move |mut ctx: Ctx<Arc<u64>>| async move {
                        loop {
                            ctx.recv_msg().await;
                            if seen.fetch_add(1, Ordering::AcqRel) + 1 == MEMBERS {
                                done.notify_one();
                            }
                        }
                    })
                    .unwrap();
                node.join("room", addr.pid()).unwrap();
            }
            node
        });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    seen.store(0, Ordering::Release);
                    let delivered = node.try_broadcast("room", &Arc::new(1u64));
                    assert_eq!(delivered, MEMBERS);
                    done.notified().await;
                }
                t0.elapsed()
            })
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn, one_way, call, restart, broadcast
}
criterion_main!(benches);
