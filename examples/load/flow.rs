//! `throughput` and `latency`: sender/receiver pairs exchanging messages.
//!
//! One message is the whole exchange: `SendDirect` from the sender,
//! `Accepted` back to it, `Deliver` to the receiver, `DeliveryAck` from the
//! receiver, `Delivered` receipt back to the sender. A message is complete
//! when its receipt arrives. The message id carries the pair and the send
//! time, so latencies need no table: send -> deliver is measured at the
//! receiver, send -> receipt at the sender (one clock, one process). At a
//! fixed rate the send time is the scheduled one, so a client that falls
//! behind shows up in the latency instead of hiding it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use courier::protocol::{DeliveryAck, DeviceId, MessageId, Pong, SendDirect, ServerFrame};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::Target;
use crate::conn::{self, Conn};
use crate::report::{self, Latency, now_ns};

/// Which figure a run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Completed messages per second.
    Throughput,
    /// Latency percentiles at a fixed rate.
    Latency,
}

/// Arguments of `throughput` and `latency`.
#[derive(Debug, clap::Args)]
pub(crate) struct FlowArgs {
    /// Sender/receiver pairs (two connections each).
    #[arg(long, default_value_t = 1_000)]
    pairs: usize,
    /// Total messages per second, spread evenly over the senders
    /// (`latency` default: 20,000; `throughput` default: as fast as the
    /// window allows).
    #[arg(long)]
    rate: Option<u64>,
    /// Messages a sender may have unfinished (no receipt yet); at a fixed
    /// rate a send beyond it is skipped and counted (default: 32 for
    /// `throughput`, 1,000 at a fixed rate).
    #[arg(long)]
    window: Option<usize>,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds allowed for unfinished messages after sending stops.
    #[arg(long, default_value_t = 30)]
    drain: u64,
}

/// Counters and histograms shared by every task.
struct Stats {
    sent: AtomicU64,
    accepted: AtomicU64,
    delivered: AtomicU64,
    receipts: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    /// Send times (ns) in this range are measured.
    from_ns: AtomicU64,
    to_ns: AtomicU64,
    /// Senders stop sending.
    stop: AtomicBool,
    to_receipt: Latency,
    to_deliver: Latency,
}

impl Stats {
    fn measured(&self, sent_ns: u64) -> bool {
        sent_ns >= self.from_ns.load(Ordering::Relaxed)
            && sent_ns < self.to_ns.load(Ordering::Relaxed)
    }

    fn error(&self, text: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(text);
        }
    }
}

/// How a sender paces itself.
#[derive(Clone, Copy)]
struct Plan {
    window: usize,
    /// Time between two sends of one sender, at a fixed rate.
    period: Option<Duration>,
    start: Instant,
    pairs: usize,
}

/// Runs `throughput` or `latency`.
pub(crate) async fn run(target: &Target, args: FlowArgs, kind: Kind) -> anyhow::Result<()> {
    anyhow::ensure!(args.pairs > 0, "--pairs must be positive");
    let rate = match kind {
        Kind::Latency => Some(args.rate.unwrap_or(20_000)),
        Kind::Throughput => args.rate,
    }
    .filter(|r| *r > 0);
    let window = args
        .window
        .unwrap_or(if rate.is_some() { 1_000 } else { 32 })
        .max(1);
    match rate {
        Some(r) => println!(
            "{kind:?}: {} pairs at {r} msg/s in total ({:.1} msg/s per sender), window {window}, \
             {} s measured after {} s warm-up",
            args.pairs,
            r as f64 / args.pairs as f64,
            args.duration,
            args.warmup
        ),
        None => println!(
            "{kind:?}: {} pairs as fast as a window of {window} unfinished messages per sender \
             allows, {} s measured after {} s warm-up",
            args.pairs, args.duration, args.warmup
        ),
    }

    let receivers = conn::identities("r", args.pairs)?;
    let senders = conn::identities("t", args.pairs)?;
    let pin = target.pin;
    let bar = report::bar(2 * args.pairs as u64, "connecting");
    let rconns = conn::open_all(
        target.addr,
        |_| conn::client_tls(pin, false),
        &receivers,
        args.concurrency,
        || bar.inc(1),
    )
    .await
    .context("receivers")?;
    let sconns = conn::open_all(
        target.addr,
        |_| conn::client_tls(pin, false),
        &senders,
        args.concurrency,
        || bar.inc(1),
    )
    .await
    .context("senders")?;
    bar.finish_and_clear();

    let stats = Arc::new(Stats {
        sent: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        receipts: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
        from_ns: AtomicU64::new(u64::MAX),
        to_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        to_receipt: Latency::new(),
        to_deliver: Latency::new(),
    });
    let (done_tx, done_rx) = watch::channel(false);
    let mut rtasks = tokio::task::JoinSet::new();
    for c in rconns {
        rtasks.spawn(receiver(c, Arc::clone(&stats), done_rx.clone()));
    }
    let plan = Plan {
        window,
        period: rate.map(|r| Duration::from_secs_f64(args.pairs as f64 / r as f64)),
        start: Instant::now(),
        pairs: args.pairs,
    };
    let body = body_pool();
    let hard_stop = plan.start + Duration::from_secs(args.warmup + args.duration + args.drain);
    let mut stasks = tokio::task::JoinSet::new();
    for (i, c) in sconns.into_iter().enumerate() {
        let to = receivers[i].device.clone();
        let s = Sender {
            conn: c,
            pair: i as u64,
            to,
            stats: Arc::clone(&stats),
            plan,
            body: Arc::clone(&body),
            hard_stop: hard_stop.into(),
        };
        stasks.spawn(s.run());
    }

    let measured = measure(&stats, &args, target).await;
    stats.stop.store(true, Ordering::Relaxed);

    let bar = report::bar(0, "finishing");
    bar.set_length(stats.sent.load(Ordering::Relaxed));
    let mut failed = 0usize;
    while let Some(joined) = stasks.join_next().await {
        bar.set_position(stats.receipts.load(Ordering::Relaxed));
        if !matches!(joined, Ok(Ok(()))) {
            failed += 1;
        }
    }
    bar.finish_and_clear();
    let _ = done_tx.send(true);
    while rtasks.join_next().await.is_some() {}

    print_result(&stats, &measured, failed);
    Ok(())
}

/// What the measured window saw.
struct Measured {
    seconds: f64,
    receipts: u64,
    accepted: u64,
    delivered: u64,
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    server_rss: Option<u64>,
    load: String,
}

/// Waits out the warm-up, then measures for the duration with a progress
/// bar showing the current rate.
async fn measure(stats: &Stats, args: &FlowArgs, target: &Target) -> Measured {
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let t0 = Instant::now();
    stats.from_ns.store(now_ns(), Ordering::Relaxed);
    let r0 = stats.receipts.load(Ordering::Relaxed);
    let a0 = stats.accepted.load(Ordering::Relaxed);
    let d0 = stats.delivered.load(Ordering::Relaxed);
    let server0 = target.pid.and_then(report::cpu_ticks);
    let own0 = report::cpu_ticks(std::process::id());

    let bar = report::bar(args.duration, "seconds");
    let end = t0 + Duration::from_secs(args.duration);
    let mut last = (Instant::now(), r0);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end - Instant::now())).await;
        let now = Instant::now();
        let r = stats.receipts.load(Ordering::Relaxed);
        let rate = (r - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, r);
        bar.set_position(now.duration_since(t0).as_secs());
        bar.set_message(format!(
            "{rate:.0} msg/s, errors {}",
            stats.errors.load(Ordering::Relaxed)
        ));
    }
    let seconds = t0.elapsed().as_secs_f64();
    stats.to_ns.store(now_ns(), Ordering::Relaxed);
    let receipts = stats.receipts.load(Ordering::Relaxed) - r0;
    let accepted = stats.accepted.load(Ordering::Relaxed) - a0;
    let delivered = stats.delivered.load(Ordering::Relaxed) - d0;
    let cpu = |before: Option<u64>, pid: Option<u32>| {
        let after = report::cpu_ticks(pid?)?;
        Some((after - before?) as f64 / report::ticks_per_second() / seconds * 100.0)
    };
    let server_cpu = cpu(server0, target.pid);
    let own_cpu = cpu(own0, Some(std::process::id()));
    bar.finish_and_clear();
    Measured {
        seconds,
        receipts,
        accepted,
        delivered,
        server_cpu,
        own_cpu,
        server_rss: target.pid.and_then(report::rss_kib),
        load: report::load_average(),
    }
}

fn print_result(stats: &Stats, m: &Measured, failed: usize) {
    let per_s = |n: u64| n as f64 / m.seconds;
    println!(
        "end to end (send, accepted, deliver, delivery ack, delivered receipt): {:.0} msg/s \
         completed over {:.1} s",
        per_s(m.receipts),
        m.seconds
    );
    println!(
        "in the window: accepted {:.0}/s, delivered {:.0}/s, receipts {:.0}/s",
        per_s(m.accepted),
        per_s(m.delivered),
        per_s(m.receipts)
    );
    println!("send -> deliver:           {}", stats.to_deliver.summary());
    println!("send -> delivered receipt: {}", stats.to_receipt.summary());
    let sent = stats.sent.load(Ordering::Relaxed);
    let receipts = stats.receipts.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    println!(
        "totals: sent {sent}, accepted {}, delivered {}, receipts {receipts}, error frames \
         {errors}, skipped sends {}, unfinished {}, failed connections {failed}",
        stats.accepted.load(Ordering::Relaxed),
        stats.delivered.load(Ordering::Relaxed),
        stats.skipped.load(Ordering::Relaxed),
        sent.saturating_sub(receipts + errors)
    );
    if let Ok(first) = stats.first_error.lock()
        && let Some(first) = first.as_ref()
    {
        println!("first error: {first}");
    }
    let pct = |v: Option<f64>| v.map_or_else(|| "unknown".to_owned(), |v| format!("{v:.0}%"));
    println!(
        "cpu in the window: server {}, load tool {} (of {} cores); load average {}",
        pct(m.server_cpu),
        pct(m.own_cpu),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        m.load
    );
    if let Some(rss) = m.server_rss {
        println!("server rss at the end of the window: {rss} KiB");
    }
}

/// Random payloads the size of a sealed message; senders cycle through
/// them.
fn body_pool() -> Arc<Vec<Bytes>> {
    let len = report::sealed_len();
    Arc::new(
        (0..64)
            .map(|_| {
                let mut b = vec![0u8; len];
                rand::Rng::fill_bytes(&mut rand::rng(), &mut b);
                Bytes::from(b)
            })
            .collect(),
    )
}

/// The id of a message: the pair, then the send time in nanoseconds.
fn message_id(pair: u64, sent_ns: u64) -> MessageId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&pair.to_be_bytes());
    id[8..].copy_from_slice(&sent_ns.to_be_bytes());
    MessageId(id)
}

/// The send time a message id carries.
fn sent_ns(id: &MessageId) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&id.0[8..]);
    u64::from_be_bytes(t)
}

struct Sender {
    conn: Conn,
    pair: u64,
    to: DeviceId,
    stats: Arc<Stats>,
    plan: Plan,
    body: Arc<Vec<Bytes>>,
    hard_stop: tokio::time::Instant,
}

impl Sender {
    async fn run(mut self) -> anyhow::Result<()> {
        let mut ticker = self.plan.period.map(|p| {
            let offset = p.mul_f64(self.pair as f64 / self.plan.pairs as f64);
            let mut i = tokio::time::interval_at((self.plan.start + offset).into(), p);
            i.set_missed_tick_behavior(MissedTickBehavior::Burst);
            i
        });
        let mut outstanding = 0usize;
        let mut last_ns = 0u64;
        let mut sent = 0usize;
        let mut samples = Vec::with_capacity(256);
        let result = loop {
            let stopping = self.stats.stop.load(Ordering::Relaxed);
            if !stopping && ticker.is_none() {
                while outstanding < self.plan.window {
                    last_ns = now_ns().max(last_ns + 1);
                    self.send(last_ns, sent)?;
                    sent += 1;
                    outstanding += 1;
                }
            }
            if stopping && outstanding == 0 {
                break Ok(());
            }
            if let Err(e) = self.conn.flush().await {
                break Err(e.into());
            }
            tokio::select! {
                read = self.conn.read() => match read {
                    Ok(0) => break Err(anyhow::anyhow!("server closed a sender")),
                    Ok(_) => {
                        let done = self.on_frames(&mut samples)?;
                        outstanding = outstanding.saturating_sub(done);
                    }
                    Err(e) => break Err(e.into()),
                },
                at = tick(&mut ticker), if ticker.is_some() && !stopping => {
                    if self.stats.stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    if outstanding < self.plan.window {
                        last_ns = report::ns_of(at).max(last_ns + 1);
                        self.send(last_ns, sent)?;
                        sent += 1;
                        outstanding += 1;
                    } else {
                        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                () = tokio::time::sleep_until(self.hard_stop) => {
                    break Err(anyhow::anyhow!("{outstanding} messages unfinished at the deadline"));
                }
            }
        };
        self.stats.to_receipt.record(&mut samples);
        result
    }

    fn send(&mut self, at_ns: u64, n: usize) -> anyhow::Result<()> {
        let frame = SendDirect {
            id: message_id(self.pair, at_ns),
            to: self.to.clone(),
            body: self.body[n % self.body.len()].clone(),
        };
        self.conn.queue(&frame.into())?;
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Handles the frames read; returns how many messages finished.
    fn on_frames(&mut self, samples: &mut Vec<u64>) -> anyhow::Result<usize> {
        let mut done = 0;
        while let Some(frame) = self.conn.next_frame()? {
            match frame {
                ServerFrame::Accepted(_) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                }
                ServerFrame::Delivered(d) => {
                    self.stats.receipts.fetch_add(1, Ordering::Relaxed);
                    done += 1;
                    let at = sent_ns(&d.id);
                    if self.stats.measured(at) {
                        samples.push(now_ns().saturating_sub(at) / 1000);
                        if samples.len() >= 256 {
                            self.stats.to_receipt.record(samples);
                        }
                    }
                }
                ServerFrame::Error(e) => {
                    if e.id.is_some() {
                        done += 1;
                    }
                    self.stats.error(format!("sender: {} {}", e.code, e.text));
                }
                // As every client must: the server pings to learn that the
                // receipts before the ping were read.
                ServerFrame::Ping(p) => self.conn.queue(&Pong { nonce: p.nonce }.into())?,
                _ => {}
            }
        }
        Ok(done)
    }
}

async fn tick(ticker: &mut Option<Interval>) -> Instant {
    match ticker {
        Some(t) => t.tick().await.into_std(),
        None => std::future::pending().await,
    }
}

/// A receiver: acks every delivery, measuring send -> deliver.
async fn receiver(
    mut conn: Conn,
    stats: Arc<Stats>,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(256);
    let result = loop {
        if let Err(e) = conn.flush().await {
            break Err(e.into());
        }
        tokio::select! {
            read = conn.read() => match read {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    while let Some(frame) = conn.next_frame()? {
                        match frame {
                            ServerFrame::Deliver(d) => {
                                stats.delivered.fetch_add(1, Ordering::Relaxed);
                                let at = sent_ns(&d.id);
                                if stats.measured(at) {
                                    samples.push(now_ns().saturating_sub(at) / 1000);
                                    if samples.len() >= 256 {
                                        stats.to_deliver.record(&mut samples);
                                    }
                                }
                                conn.queue(&DeliveryAck { from: d.from, id: d.id }.into())?;
                            }
                            ServerFrame::Error(e) => {
                                stats.error(format!("receiver: {} {}", e.code, e.text));
                            }
                            ServerFrame::Ping(p) => {
                                conn.queue(&Pong { nonce: p.nonce }.into())?;
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) => break Err(e.into()),
            },
            _ = done.changed() => break Ok(()),
        }
    };
    stats.to_deliver.record(&mut samples);
    result
}
