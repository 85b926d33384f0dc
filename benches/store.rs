//! Store throughput: parks with fsync durability (group commit at several
//! concurrencies), park then remove (an online recipient), parks in memory
//! mode, and draining a mailbox (pending + remove).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::store::{
    DeviceKey, MemoryStore, MessageId, ParkedFrame, RedbStore, Store, StoreConfig,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const BODY: usize = 256;

/// Writes (parks and removes) issued by the current case, for writes per commit.
static WRITES: AtomicU64 = AtomicU64::new(0);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Frames with ids that never repeat within one process.
fn frame(sender: u32, recipient: u32) -> ParkedFrame {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = [0; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    ParkedFrame {
        recipient: DeviceKey::new(format!("user{recipient}"), 1),
        sender: DeviceKey::new(format!("user{sender}"), 1),
        id: MessageId(id),
        group: None,
        body: Bytes::from(vec![0xA5; BODY]),
        sent_at_ms: u64::from(n),
    }
}

/// Parks `total` single-frame batches from `concurrency` tasks; returns the time taken.
async fn park_concurrently<S: Store>(store: &Arc<S>, concurrency: u64, total: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let store = Arc::clone(store);
            let share = total / concurrency + u64::from(task < total % concurrency);
            tokio::spawn(async move {
                for i in 0..share {
                    let sender = (task % 1024) as u32;
                    let recipient = ((task + i) % 1024) as u32;
                    store.park(vec![frame(sender, recipient)]).await.unwrap();
                    WRITES.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Bytes this process has caused to be written to disk (Linux), if known.
fn disk_writes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Prints commits, writes per commit and disk bytes per commit since `before`.
fn report(name: &str, store: &RedbStore, before: Option<u64>) {
    let commits = store.commit_count().max(1);
    let writes = WRITES.swap(0, Ordering::Relaxed);
    let per_commit = match (before, disk_writes()) {
        (Some(before), Some(after)) => format!("{} KiB", (after - before) / 1024 / commits),
        _ => "unknown".to_owned(),
    };
    eprintln!(
        "{name}: {commits} commits, {:.1} writes and {per_commit} written per commit",
        writes as f64 / commits as f64
    );
}

fn fresh_redb(rt: &Runtime, dir: &tempfile::TempDir, name: &str) -> Arc<RedbStore> {
    let config = StoreConfig::new(dir.path().join(name));
    rt.block_on(async { Arc::new(RedbStore::open_spawned(&config).unwrap()) })
}

fn park_fsync(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    let mut group = c.benchmark_group("store_park_fsync");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for concurrency in [1u64, 16, 256, 1024] {
        let store = fresh_redb(&rt, &dir, &format!("park{concurrency}.redb"));
        WRITES.store(0, Ordering::Relaxed);
        let before = disk_writes();
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| rt.block_on(park_concurrently(&store, concurrency, iters)));
            },
        );
        report(&format!("store_park_fsync/{concurrency}"), &store, before);
    }
    group.finish();
}

/// Parks and then removes `total` frames from `concurrency` tasks, as an
/// online recipient's ack follows each message; returns the time taken.
async fn park_remove_concurrently<S: Store>(
    store: &Arc<S>,
    concurrency: u64,
    total: u64,
) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let store = Arc::clone(store);
            let share = total / concurrency + u64::from(task < total % concurrency);
            tokio::spawn(async move {
                for i in 0..share {
                    let f = frame((task % 1024) as u32, ((task + i) % 1024) as u32);
                    store.park(vec![f.clone()]).await.unwrap();
                    store.remove(&f.recipient, &f.sender, f.id).await.unwrap();
                    WRITES.fetch_add(2, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn park_remove_fsync(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    let mut group = c.benchmark_group("store_park_remove_fsync");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for concurrency in [256u64, 1024] {
        let store = fresh_redb(&rt, &dir, &format!("online{concurrency}.redb"));
        WRITES.store(0, Ordering::Relaxed);
        let before = disk_writes();
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| {
                    rt.block_on(park_remove_concurrently(&store, concurrency, iters))
                });
            },
        );
        report(
            &format!("store_park_remove_fsync/{concurrency}"),
            &store,
            before,
        );
    }
    group.finish();
}

fn park_memory(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new(&StoreConfig::memory()));

    let mut group = c.benchmark_group("store_park_memory");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(2));
    for concurrency in [1u64, 256] {
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| rt.block_on(park_concurrently(&store, concurrency, iters)));
            },
        );
    }
    group.finish();
}

/// Parks `total` frames for one recipient outside the measurement, then
/// times listing them in pages of 64 and removing each (delivery acks, the 64
/// of a page in flight at once as a pipelining client sends them).
async fn drain<S: Store>(store: &Arc<S>, total: u64) -> Duration {
    let recipient = DeviceKey::new("drain", 1);
    let mut parked = Vec::new();
    for _ in 0..total {
        let mut f = frame(7, 0);
        f.recipient = recipient.clone();
        parked.push(f);
        if parked.len() == 512 {
            store.park(std::mem::take(&mut parked)).await.unwrap();
        }
    }
    store.park(parked).await.unwrap();

    let started = Instant::now();
    let mut after = 0;
    loop {
        let page = store.pending(&recipient, after, 64).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut acks = tokio::task::JoinSet::new();
        for stored in page {
            let store = Arc::clone(store);
            let recipient = recipient.clone();
            acks.spawn(async move {
                let frame = stored.frame;
                store
                    .remove(&recipient, &frame.sender, frame.id)
                    .await
                    .unwrap();
            });
        }
        while let Some(ack) = acks.join_next().await {
            ack.unwrap();
        }
    }
    started.elapsed()
}

fn pending_remove(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let redb = fresh_redb(&rt, &dir, "drain.redb");
    let memory = Arc::new(MemoryStore::new(&StoreConfig::memory()));

    let mut group = c.benchmark_group("store_pending_remove");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("fsync", |b| {
        b.iter_custom(|iters| rt.block_on(drain(&redb, iters)))
    });
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| rt.block_on(drain(&memory, iters)))
    });
    group.finish();
}

criterion_group!(
    benches,
    park_fsync,
    park_remove_fsync,
    park_memory,
    pending_remove
);
criterion_main!(benches);
