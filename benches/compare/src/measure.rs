//! Helpers shared by every runtime: resident memory, a countdown that
//! tells the driver when all processes reached a point, medians.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("short /proc/self/statm"))?
        .parse()?;
    Ok(pages * page_size())
}

/// The page size, from the auxiliary vector (`AT_PAGESZ`), 4 KiB if
/// it cannot be read.
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 4096;
    };
    auxv.chunks_exact(16)
        .map(|pair| {
            let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
            (word(&pair[..8]), word(&pair[8..]))
        })
        .find(|(key, _)| *key == AT_PAGESZ)
        .map_or(4096, |(_, value)| value)
}

/// Counts down from `n`; the driver awaits zero. Works on any executor.
#[derive(Clone)]
pub(crate) struct Countdown {
    inner: Arc<CountdownInner>,
}

struct CountdownInner {
    left: AtomicUsize,
    zero: Notify,
}

impl Countdown {
    /// A countdown that reaches zero after `n` hits.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            inner: Arc::new(CountdownInner {
                left: AtomicUsize::new(n),
                zero: Notify::new(),
            }),
        }
    }

    /// Counts one; the last hit wakes the driver.
    pub(crate) fn hit(&self) {
        if self.inner.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.zero.notify_one();
        }
    }

    /// Resolves once the count has reached zero.
    pub(crate) async fn done(&self) {
        while self.inner.left.load(Ordering::Acquire) != 0 {
            self.inner.zero.notified().await;
        }
    }

    /// Like [`done`](Self::done), failing after `limit` (a hang, not a
    /// measurement).
    pub(crate) async fn done_within(&self, limit: Duration) -> anyhow::Result<()> {
        tokio::time::timeout(limit, self.done())
            .await
            .map_err(|_| anyhow::anyhow!("processes did not all report within {limit:?}"))
    }
}

/// The median of `values` (sorted in place); NaN when empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// CPU time all threads of this process have used, in nanoseconds, from
/// `/proc/self/task/*/schedstat` (threads that already exited are not
/// counted; none of the runtimes here ends a thread mid-run).
pub(crate) fn cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path().join("schedstat");
        // A thread may end between listing and reading.
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue;
        };
        let ns: u64 = stat.split_whitespace().next().unwrap_or("0").parse()?;
        total += ns;
    }
    Ok(total)
}

/// Restart samples: the median of all, of the first and of the last
/// `slice` durations, in nanoseconds.
pub(crate) fn restart_sample(durations: &[Duration], slice: usize) -> crate::workload::Sample {
    let ns = |d: &[Duration]| d.iter().map(|d| d.as_nanos() as f64).collect::<Vec<_>>();
    let slice = slice.min(durations.len());
    crate::workload::Sample {
        value: median(&mut ns(durations)),
        first: Some(median(&mut ns(&durations[..slice]))),
        last: Some(median(&mut ns(&durations[durations.len() - slice..]))),
        cpu: None,
    }
}

/// A tokio runtime with one worker per core, as every tokio-based runtime
/// here uses.
pub(crate) fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `fut` as a task on a worker thread of `rt` (not on the calling
/// thread), so the driver competes for the same cores as the processes.
///
/// The runtime is leaked: shutting down 100,000 processes is no part of
/// any measurement, and the child process exits right after.
pub(crate) fn drive<F>(
    rt: tokio::runtime::Runtime,
    fut: F,
) -> anyhow::Result<crate::workload::Sample>
where
    F: std::future::Future<Output = anyhow::Result<crate::workload::Sample>> + Send + 'static,
{
    let result = rt.block_on(rt.spawn(fut));
    std::mem::forget(rt);
    result?
}

/// Generous bound on any wait of the harness: catches hangs only.
pub(crate) const HANG: Duration = Duration::from_secs(120);

/// Times a long loop in batches and reports the median batch, per
/// operation: a batch during which another program held the core counts
/// once, not in proportion to how long it stalled the loop.
pub(crate) struct Batches {
    size: u64,
    done: u64,
    started: std::time::Instant,
    per_op: Vec<f64>,
}

impl Batches {
    /// Batches of `size` operations, starting now.
    pub(crate) fn new(size: u64) -> Self {
        Self {
            size: size.max(1),
            done: 0,
            started: std::time::Instant::now(),
            per_op: Vec::new(),
        }
    }

    /// Counts one operation.
    pub(crate) fn tick(&mut self) {
        self.done += 1;
        if self.done == self.size {
            let ns = self.started.elapsed().as_nanos() as f64;
            self.per_op.push(ns / self.size as f64);
            self.done = 0;
            self.started = std::time::Instant::now();
        }
    }

    /// The median batch, in nanoseconds per operation.
    pub(crate) fn sample(mut self) -> crate::workload::Sample {
        crate::workload::Sample::single(median(&mut self.per_op))
    }
}

/// Operations per batch in [`Batches`].
pub(crate) const BATCH: u64 = 1000;

/// Processes per timed batch of the spawn workload.
pub(crate) const SPAWN_BATCH: usize = 1000;

/// How many batches of [`SPAWN_BATCH`] make up `total` processes.
pub(crate) fn spawn_batches(total: usize) -> usize {
    (total / SPAWN_BATCH).max(1)
}

/// Nanoseconds per operation for `n` operations since `start`.
pub(crate) fn per_op_ns(start: std::time::Instant, n: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}
