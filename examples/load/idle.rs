//! `idle`: open N authenticated sessions and hold them; report the
//! handshake rate and the server's memory per idle session.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Target;
use crate::conn;
use crate::report;

/// Arguments of `idle`.
#[derive(Debug, clap::Args)]
pub(crate) struct IdleArgs {
    /// Sessions to open and hold.
    #[arg(long, default_value_t = 15_000)]
    sessions: usize,
    /// Sessions opened first, before the "before" reading, to warm the
    /// server's allocator, store and runtime.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Resume TLS sessions (each client keeps its own ticket); by default
    /// every handshake is a full one.
    #[arg(long)]
    resume: bool,
    /// Seconds the sessions stay silent before the "after" reading: past
    /// the server's default 15 s after which an idle session's frame-logic
    /// process stops, plus the 10 s in which the example server's allocator
    /// hands the pages so freed back to the system, so the reading is of
    /// sessions in their idle shape.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Seconds to hold the sessions after measuring.
    #[arg(long, default_value_t = 0)]
    hold: u64,
}

/// Runs `idle`.
pub(crate) async fn run(target: &Target, args: IdleArgs) -> anyhow::Result<()> {
    let pin = target.pin;
    let resume = args.resume;
    println!(
        "idle: {} sessions after {} warm-up sessions, {} handshakes at once, {} handshakes, \
         memory read after {} s of silence",
        args.sessions,
        args.warmup,
        args.concurrency,
        if resume { "resumed" } else { "full" },
        args.idle_secs
    );
    let warm_ids = conn::identities("w", args.warmup)?;
    let ids = conn::identities("s", args.sessions)?;

    let warm = conn::open_all(
        target.addr,
        |_| conn::client_tls(pin, resume),
        &warm_ids,
        args.concurrency,
        || {},
    )
    .await
    .context("warm-up sessions")?;
    let before = target.pid.and_then(report::rss_kib);

    let bar = report::bar(args.sessions as u64, "sessions");
    let started = Instant::now();
    let mut conns = conn::open_all(
        target.addr,
        |_| conn::client_tls(pin, resume),
        &ids,
        args.concurrency,
        || bar.inc(1),
    )
    .await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    // A ping round trip on a sample proves the server handled everything
    // sent so far; the sessions are idle from here on.
    for c in conns.iter_mut().step_by(97) {
        c.sync().await.context("sync")?;
    }
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let after = target.pid.and_then(report::rss_kib);

    let rate = args.sessions as f64 / elapsed.as_secs_f64();
    println!(
        "handshake + authentication: {} sessions in {:.2} s = {rate:.0} sessions/s",
        args.sessions,
        elapsed.as_secs_f64()
    );
    let resumed = conns.iter().filter(|c| c.resumed).count();
    println!("resumed handshakes: {resumed} of {}", conns.len());
    match (before, after, target.pid) {
        (Some(b), Some(a), Some(pid)) => {
            let per = a.saturating_sub(b) as f64 * 1024.0 / args.sessions as f64;
            println!(
                "server memory: rss {b} KiB before, {a} KiB after ({} threads) => \
                 {per:.0} bytes = {:.2} KiB per idle authenticated session",
                report::threads(pid).unwrap_or(0),
                per / 1024.0
            );
        }
        _ => println!("server memory: unknown (give --server-pid or use --spawn-server)"),
    }
    println!(
        "load tool memory: rss {} KiB; load average now {}",
        report::own_rss_kib().unwrap_or(0),
        report::load_average()
    );
    if args.hold > 0 {
        println!("holding {} sessions for {} s", conns.len(), args.hold);
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    drop(warm);
    drop(conns);
    Ok(())
}
