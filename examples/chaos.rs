//! Runs a seeded chaos scenario against a real server and prints its report.
//!
//! ```text
//! cargo run --release --example chaos -- --clients 200 --duration 60s --seed 7
//! cargo run --release --example chaos -- --server child --clients 50 --duration 30s --seed 7
//! ```
//!
//! The default server runs in this process, where every process, network,
//! disk and client fault reaches it; `--server child` runs it as a child
//! process (this binary re-executed) so that `server-crash` can kill it with
//! SIGKILL and restart it on the same data directory, while the faults that
//! need the server's process tree are skipped. The same seed gives the same
//! fault schedule. The exit status is non-zero when an invariant broke.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use courier::chaos::{FaultKind, Phase, Progress, Scenario, ServerMode, child_server_from_env};
use indicatif::{ProgressBar, ProgressStyle};

/// Chaos scenario runner for a Courier server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Clients, each a real library client over TLS through the fault proxy.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Length of the traffic and fault phase (`90s`, `2m`, `500ms`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and of the traffic.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Messages per second each client sends.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Faults per second over the whole run.
    #[arg(long, default_value_t = 2.0)]
    fault_rate: f64,
    /// Fault kinds, comma separated (default: all that reach the server).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Also run a chaos monkey killing sessions at this rate per second.
    #[arg(long)]
    monkey: Option<f64>,
    /// Where the server runs.
    #[arg(long, value_enum, default_value_t = Where::InProcess)]
    server: Where,
    /// How long to wait for messages to settle after the faults stop.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    settle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Where {
    /// In this process.
    InProcess,
    /// A child process that can be killed with SIGKILL.
    Child,
}

fn main() -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<ExitCode> {
    // Re-executed as the child server of `--server child`.
    if child_server_from_env().await {
        return Ok(ExitCode::SUCCESS);
    }
    let args = Args::parse();
    // Injected panics are part of the run: one line each, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        tracing::warn!(%info, "process panicked (injected faults panic on purpose)");
    }));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COURIER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();

    let (mode, default_kinds): (ServerMode, Vec<FaultKind>) = match args.server {
        Where::InProcess => (
            ServerMode::InProcess,
            FaultKind::ALL
                .into_iter()
                .filter(|k| *k != FaultKind::ServerCrash)
                .collect(),
        ),
        Where::Child => (
            ServerMode::Child {
                program: std::env::current_exe().context("finding this program")?,
                args: Vec::new(),
            },
            [
                FaultKind::ServerCrash,
                FaultKind::SlowConsumer,
                FaultKind::ClientOffline,
            ]
            .into_iter()
            .chain(FaultKind::NETWORK)
            .collect(),
        ),
    };
    let kinds = if args.faults.is_empty() {
        default_kinds
    } else {
        args.faults.clone()
    };
    let mut scenario = Scenario::new("chaos", args.seed)
        .clients(args.clients)
        .duration(args.duration)
        .rate(args.rate)
        .faults(&kinds, args.fault_rate)
        .settle_timeout(args.settle_timeout)
        .server(mode);
    if let Some(rate) = args.monkey {
        scenario = scenario.monkey(rate, u64::MAX);
    }

    println!(
        "chaos: seed {}, {} clients at {} msg/s each, {:?} of traffic, {} faults/s of {}",
        args.seed,
        args.clients,
        args.rate,
        args.duration,
        args.fault_rate,
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bar = ProgressBar::new(args.duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .context("progress bar template")?,
    );
    let report = scenario
        .run_with(|p: &Progress| show(&bar, p))
        .await
        .context("running the scenario")?;
    bar.finish_and_clear();
    println!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(bar: &ProgressBar, p: &Progress) {
    bar.set_position(p.elapsed.as_millis() as u64);
    let phase = match p.phase {
        Phase::Connecting => "connecting",
        Phase::Traffic => "traffic",
        Phase::Settling => "settling",
        Phase::Checking => "checking",
        _ => "running",
    };
    bar.set_message(format!(
        "{phase}: sent {}, awaiting ack {}, undelivered {}, faults {}",
        p.sent, p.open, p.undelivered, p.faults
    ));
}

/// Parses `60s`, `2m`, `1h`, `500ms` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 60s"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}
