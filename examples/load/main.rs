//! The Courier load generator.
//!
//! ```text
//! cargo run --release --example load -- --spawn-server idle --sessions 15000
//! cargo run --release --example load -- --spawn-server --durability memory throughput --pairs 1000
//! cargo run --release --example load -- --spawn-server latency --pairs 1000 --rate 20000
//! cargo run --release --example load -- --spawn-server storm --clients 10000
//! ```
//!
//! Every client is a real TLS 1.3 connection on loopback that authenticates
//! with an Ed25519 signature over the server's challenge and the TLS
//! exporter, exactly as the library client does. The clients are raw and
//! light: they speak frames directly (`courier::protocol` codec over
//! `tokio-rustls`) and send pre-sealed payloads, random bytes of the size
//! of a sealed 100-byte message, so the server is measured alone (it cannot
//! tell them from real ciphertext). The output says so.
//!
//! With `--spawn-server` the tool starts the server itself, in a separate
//! process (this binary re-executed with the hidden `serve` subcommand) on
//! a temporary data directory, so that the server's memory is measured
//! without the clients' and each process stays under its open-files limit.
//! Without it, `--addr` and `--fingerprint` name a running server (and
//! `--server-pid` lets the tool read its memory); that server's limits must
//! allow the load (`--messages-per-second`, `--burst`,
//! `--max-unauthenticated-per-address` of the example server).

/// jemalloc: with glibc's allocator, blocks freed on another thread than
/// the one that allocated them cost the store writer and the sessions a
/// third of their time (see docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod conn;
mod flow;
mod idle;
mod report;
mod serve;
mod storm;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use courier::tls::CertFingerprint;

/// Load generator for a Courier server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Start a server in a child process on a temporary data directory.
    #[arg(long, global = true)]
    spawn_server: bool,
    /// Durability of a spawned server.
    #[arg(long, global = true, value_enum, default_value_t = Mode::Fsync)]
    durability: Mode,
    /// Address of a running server (loopback only).
    #[arg(long, global = true, default_value = courier::server::DEFAULT_ADDR)]
    addr: SocketAddr,
    /// SHA-256 fingerprint of a running server's certificate.
    #[arg(long, global = true)]
    fingerprint: Option<CertFingerprint>,
    /// Process id of a running server, to read its memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Data directory of a spawned server (default: a temporary one).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log filter of a spawned server.
    #[arg(long, global = true, default_value = "warn")]
    server_log: String,
    /// Worker threads of this tool's runtime (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open N authenticated sessions and hold them: handshake rate and the
    /// server's memory per idle session.
    Idle(idle::IdleArgs),
    /// P sender/receiver pairs as fast as a window allows (or at `--rate`):
    /// completed messages per second end to end.
    Throughput(flow::FlowArgs),
    /// P pairs at a fixed total rate: latency percentiles.
    Latency(flow::FlowArgs),
    /// N clients connect at once, exchange messages, all drop and
    /// reconnect at once: time to settle and that nothing was lost.
    Storm(storm::StormArgs),
    /// Runs the server (used by `--spawn-server`).
    #[command(hide = true)]
    Serve(serve::ServeArgs),
}

/// Durability of a spawned server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Group commit with fsync: nothing acknowledged is lost.
    Fsync,
    /// In memory: lossy, faster.
    Memory,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Fsync => "fsync",
            Mode::Memory => "memory",
        }
    }
}

/// The server under load: where it is and, when known, its process.
struct Target {
    addr: SocketAddr,
    pin: CertFingerprint,
    pid: Option<u32>,
    /// The spawned server, killed on drop.
    _child: Option<serve::ServerChild>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Command::Serve(serve_args) = &args.command {
        return serve::run(serve_args);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = rt.build().context("building the runtime")?;
    let result = rt.block_on(run(args));
    // Thousands of sockets may still be closing; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = target(&args).await?;
    report::header(&args, &target);
    match args.command {
        Command::Idle(a) => idle::run(&target, a).await,
        Command::Throughput(a) => flow::run(&target, a, flow::Kind::Throughput).await,
        Command::Latency(a) => flow::run(&target, a, flow::Kind::Latency).await,
        Command::Storm(a) => storm::run(&target, a).await,
        Command::Serve(_) => Ok(()),
    }
}

async fn target(args: &Args) -> anyhow::Result<Target> {
    if args.spawn_server {
        let child = serve::spawn(args.durability, args.data_dir.clone(), &args.server_log)?;
        return Ok(Target {
            addr: child.addr,
            pin: child.pin,
            pid: Some(child.pid()),
            _child: Some(child),
        });
    }
    anyhow::ensure!(
        args.addr.ip().is_loopback(),
        "the load generator only targets loopback addresses"
    );
    let pin = args
        .fingerprint
        .context("--fingerprint is required without --spawn-server")?;
    Ok(Target {
        addr: args.addr,
        pin,
        pid: args.server_pid,
        _child: None,
    })
}
