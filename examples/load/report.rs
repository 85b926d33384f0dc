//! What the tool prints: the set-up, memory readings, latency percentiles,
//! and the progress bar.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use courier::crypto::{IdentityKeyPair, PrekeySecrets, Session};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{Args, Target};

/// Size of the plaintext whose sealed size the payloads imitate.
const PLAINTEXT_BYTES: usize = 100;

/// Prints what is measured and under which conditions.
pub(crate) fn header(args: &Args, target: &Target) {
    let server = if args.spawn_server {
        format!(
            "spawned in process {} ({} durability, load limits)",
            target.pid.unwrap_or(0),
            args.durability.name()
        )
    } else {
        format!("running at {}", target.addr)
    };
    println!("courier load: server {server}");
    println!(
        "clients: raw frame clients (courier::protocol codec over tokio-rustls, TLS 1.3, \
         Ed25519 challenge + exporter authentication), no end-to-end crypto"
    );
    println!(
        "payloads: pre-sealed, {} random bytes each (the size of a sealed {PLAINTEXT_BYTES}-byte \
         message); the server cannot tell them from real ciphertext",
        sealed_len()
    );
    println!(
        "machine: {} cores, load average before start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
}

/// The length of a ratchet message sealing [`PLAINTEXT_BYTES`] bytes, as
/// an established session produces it.
pub(crate) fn sealed_len() -> usize {
    static LEN: OnceLock<usize> = OnceLock::new();
    *LEN.get_or_init(|| {
        let mut rng = rand::rng();
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let mut prekeys = PrekeySecrets::new();
        prekeys.rotate_signed_prekey(&mut rng, &bob);
        prekeys.generate_one_time_prekeys(&mut rng, 1);
        let Some(bundle) = prekeys.bundle(&bob.public()) else {
            return 200;
        };
        let Ok((mut to_bob, first)) = Session::initiate(&mut rng, &alice, &bundle, b"hi") else {
            return 200;
        };
        let Ok((mut to_alice, _)) = Session::accept(&mut rng, &bob, &mut prekeys, &first) else {
            return 200;
        };
        // After a reply the sender's messages are plain ratchet messages.
        let Ok(reply) = to_alice.seal(b"ok") else {
            return 200;
        };
        let _ = to_bob.open(&reply);
        to_bob
            .seal(&[0u8; PLAINTEXT_BYTES])
            .map_or(200, |sealed| sealed.len())
    })
}

/// The one-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Resident memory of process `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Threads of process `pid`.
pub(crate) fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory of this process in KiB.
pub(crate) fn own_rss_kib() -> Option<u64> {
    rss_kib(std::process::id())
}

/// A latency histogram in microseconds, shared by tasks that record in
/// batches.
pub(crate) struct Latency {
    hist: Mutex<Histogram<u64>>,
}

impl Latency {
    pub(crate) fn new() -> Self {
        let hist =
            Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid");
        Self {
            hist: Mutex::new(hist),
        }
    }

    /// Records a batch of samples in microseconds and empties it.
    pub(crate) fn record(&self, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        if let Ok(mut h) = self.hist.lock() {
            for s in samples.iter() {
                h.saturating_record((*s).max(1));
            }
        }
        samples.clear();
    }

    /// `p50 … p99.9 max` in milliseconds, with the sample count.
    pub(crate) fn summary(&self) -> String {
        let Ok(h) = self.hist.lock() else {
            return "unavailable".to_owned();
        };
        if h.is_empty() {
            return "no samples".to_owned();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        )
    }
}

/// A progress bar for `len` steps.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{what} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Nanoseconds since a fixed moment of this process (monotonic).
pub(crate) fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Converts a monotonic [`Instant`] to [`now_ns`]'s scale.
pub(crate) fn ns_of(at: Instant) -> u64 {
    let now = Instant::now();
    let now_ns = now_ns();
    if at >= now {
        now_ns + u64::try_from((at - now).as_nanos()).unwrap_or(0)
    } else {
        now_ns.saturating_sub(u64::try_from((now - at).as_nanos()).unwrap_or(u64::MAX))
    }
}

/// CPU time of process `pid` (user + system) in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of `/proc/<pid>/stat` (Linux's `USER_HZ`, 100
/// on every mainstream configuration).
pub(crate) fn ticks_per_second() -> f64 {
    100.0
}
