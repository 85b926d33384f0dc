//! The Courier example server.
//!
//! ```text
//! cargo run --release --example server
//! ```
//!
//! starts a server on 127.0.0.1:7443 with its data in `./courier-data`. With
//! no certificate given it creates a self-signed one there and prints its
//! SHA-256 fingerprint, which clients pin. Every flag has a `COURIER_*`
//! environment variable; `--help` lists them. Ctrl-C shuts down cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use courier::server::{DEFAULT_ADDR, DEFAULT_DATA_DIR, Limits, ServerBuilder, TlsSource};
use courier::store::Durability;

/// jemalloc, as in the load tool: glibc's allocator makes the store writer
/// and the sessions slow when blocks are freed on another thread than the
/// one that allocated them (see docs/benchmarks.md). Built with its
/// background threads, which return freed pages to the system while the
/// server is idle; without them an idle server keeps what its sessions
/// freed when their frame logic stopped.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs a Courier chat server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "COURIER_ADDR", default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Data directory (store, self-signed certificate, media).
    #[arg(long, env = "COURIER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// PEM certificate chain; without it a self-signed one is kept in the
    /// data directory.
    #[arg(long, env = "COURIER_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for `--cert`.
    #[arg(long, env = "COURIER_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// `fsync` (nothing acknowledged is lost) or `memory` (lossy, faster).
    #[arg(long, env = "COURIER_DURABILITY", value_enum, default_value_t = Mode::Fsync)]
    durability: Mode,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9090).
    #[arg(long, env = "COURIER_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `courier=debug`.
    #[arg(long, env = "COURIER_LOG", default_value = "info")]
    log: String,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Limits; each defaults to the library's safe default.
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Largest frame payload in bytes.
    #[arg(long, env = "COURIER_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<u32>,
    /// Sends per second per connection.
    #[arg(long, env = "COURIER_MESSAGES_PER_SECOND")]
    messages_per_second: Option<u32>,
    /// Sends a connection may burst above the rate.
    #[arg(long, env = "COURIER_BURST")]
    burst: Option<u32>,
    /// Unauthenticated connections per IP address.
    #[arg(long, env = "COURIER_MAX_UNAUTHENTICATED_PER_ADDRESS")]
    max_unauthenticated_per_address: Option<u32>,
    /// Open connections in total.
    #[arg(long, env = "COURIER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Milliseconds from accept to authentication.
    #[arg(long, env = "COURIER_HANDSHAKE_TIMEOUT_MS")]
    handshake_timeout_ms: Option<u64>,
    /// Milliseconds of silence before a connection is closed.
    #[arg(long, env = "COURIER_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// Milliseconds of silence before the server pings.
    #[arg(long, env = "COURIER_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Frames parked per device.
    #[arg(long, env = "COURIER_MAILBOX_QUOTA")]
    mailbox_quota: Option<u64>,
    /// Members per group.
    #[arg(long, env = "COURIER_MAX_GROUP_SIZE")]
    max_group_size: Option<u32>,
    /// Bytes per media blob.
    #[arg(long, env = "COURIER_MAX_MEDIA_BYTES")]
    max_media_bytes: Option<u64>,
    /// Seconds a media blob is kept.
    #[arg(long, env = "COURIER_MEDIA_TTL_SECS")]
    media_ttl_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Fsync,
    Memory,
}

impl LimitArgs {
    fn apply(&self, mut l: Limits) -> Limits {
        let ms = Duration::from_millis;
        if let Some(v) = self.max_frame_bytes {
            l.max_frame_bytes = v;
        }
        if let Some(v) = self.messages_per_second {
            l.messages_per_second = v;
        }
        if let Some(v) = self.burst {
            l.burst = v;
        }
        if let Some(v) = self.max_unauthenticated_per_address {
            l.max_unauthenticated_per_address = v;
        }
        if let Some(v) = self.max_connections {
            l.max_connections = v;
        }
        if let Some(v) = self.handshake_timeout_ms {
            l.handshake_timeout = ms(v);
        }
        if let Some(v) = self.idle_timeout_ms {
            l.idle_timeout = ms(v);
        }
        if let Some(v) = self.heartbeat_ms {
            l.heartbeat_interval = ms(v);
        }
        if let Some(v) = self.mailbox_quota {
            l.mailbox_quota = v;
        }
        if let Some(v) = self.max_group_size {
            l.max_group_size = v;
        }
        if let Some(v) = self.max_media_bytes {
            l.max_media_bytes = v;
        }
        if let Some(v) = self.media_ttl_secs {
            l.media_ttl = Duration::from_secs(v);
        }
        l
    }
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(courier::server::BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("building the runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .with_target(false)
        .init();

    if let Some(admin) = args.admin_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(admin)
            .install()
            .context("starting the metrics exporter")?;
        tracing::info!(addr = %admin, "metrics at http://{admin}/metrics");
    }

    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => TlsSource::PemFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::SelfSigned,
    };
    let durability = match args.durability {
        Mode::Fsync => Durability::Fsync,
        Mode::Memory => {
            tracing::warn!("memory durability: a crash loses messages that were acknowledged");
            Durability::Memory
        }
    };
    let server = ServerBuilder::new()
        .bind(args.addr)
        .data_dir(&args.data_dir)
        .tls(tls)
        .durability(durability)
        .limits(args.limits.apply(Limits::default()))
        .start()
        .await
        .context("starting the server")?;

    println!("courier listening on {}", server.local_addr());
    if let Some(pin) = server.fingerprint() {
        println!("certificate fingerprint (sha-256): {}", pin.to_plain_hex());
    }

    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.context("waiting for ctrl-c")?;
            tracing::info!("ctrl-c: shutting down");
            server.shutdown().await;
        }
        () = server.stopped() => {
            anyhow::bail!("the server stopped on its own");
        }
    }
    Ok(())
}
