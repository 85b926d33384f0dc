//! The server under load, in a process of its own: `serve` runs it, and
//! [`spawn`] re-executes this binary with `serve` and waits for its address.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use courier::server::{Limits, ServerBuilder};
use courier::store::Durability;
use courier::tls::CertFingerprint;

use crate::Mode;

/// Arguments of the hidden `serve` subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Data directory.
    #[arg(long)]
    dir: PathBuf,
    /// `fsync` or `memory`.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Log filter.
    #[arg(long, default_value = "warn")]
    log: String,
}

/// A spawned server process, killed when dropped.
pub(crate) struct ServerChild {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) pin: CertFingerprint,
    /// Kept so the directory lives as long as the server.
    _dir: Option<tempfile::TempDir>,
}

impl ServerChild {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Limits for a server under load: the per-connection send rate, the
/// unauthenticated-connections cap per address (every client comes from
/// 127.0.0.1) and the timeouts are lifted; the rest are the defaults.
pub(crate) fn load_limits() -> Limits {
    let mut l = Limits::default();
    l.messages_per_second = 1_000_000;
    l.burst = 1_000_000;
    l.max_unauthenticated_per_address = 1_000_000;
    l.handshake_timeout = Duration::from_secs(60);
    l.idle_timeout = Duration::from_secs(3600);
    l.heartbeat_interval = Duration::from_secs(1800);
    l.mailbox_quota = 1_000_000;
    // How long an idle session keeps its frame-logic process (the library's
    // default unless set), so idle memory can be read in either shape.
    if let Some(ms) = std::env::var("COURIER_LOGIC_HIBERNATE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        l.logic_hibernate_after = Duration::from_millis(ms);
    }
    l
}

/// Starts this binary as `serve` in a child process and waits until it
/// listens.
pub(crate) fn spawn(mode: Mode, dir: Option<PathBuf>, log: &str) -> anyhow::Result<ServerChild> {
    let (path, temp) = match dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::tempdir().context("creating a temporary data directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--dir")
        .arg(&path)
        .args(["--mode", mode.name(), "--log", log])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the server process")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            anyhow::bail!("the server process ended before listening");
        };
        let line = line.context("reading the server's output")?;
        if let Some(rest) = line.strip_prefix("ready ") {
            break rest.to_owned();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let mut parts = ready.split(' ');
    let addr = parts
        .next()
        .context("address in the ready line")?
        .parse()
        .context("parsing the server address")?;
    let pin = parts
        .next()
        .context("fingerprint in the ready line")?
        .parse()
        .context("parsing the fingerprint")?;
    Ok(ServerChild {
        child,
        addr,
        pin,
        _dir: temp,
    })
}

/// Runs the server until killed.
pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(courier::server::BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("building the server runtime")?;
    rt.block_on(async {
        let durability = match args.mode {
            Mode::Fsync => Durability::Fsync,
            Mode::Memory => Durability::Memory,
        };
        let server = ServerBuilder::new()
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .data_dir(&args.dir)
            .durability(durability)
            .limits(load_limits())
            .start()
            .await
            .context("starting the server")?;
        let pin = server
            .fingerprint()
            .context("a self-signed server has a fingerprint")?;
        println!("ready {} {}", server.local_addr(), pin.to_plain_hex());
        server.stopped().await;
        anyhow::Ok(())
    })
}
