//! The server under test: in this process, or a child process that can be
//! killed with SIGKILL and restarted on the same data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use supervisors::{Node, TreeSnapshot};

use super::ChaosError;
use crate::server::{Limits, ServerBuilder, ServerHandle};
use crate::store::{Durability, FaultInjector};
use crate::tls::CertFingerprint;

/// The environment variable that tells a child process which data
/// directory to serve (see [`child_server_from_env`]).
pub const CHILD_DIR_ENV: &str = "COURIER_CHAOS_CHILD_DIR";
/// The environment variable with the address a child server binds.
pub const CHILD_ADDR_ENV: &str = "COURIER_CHAOS_CHILD_ADDR";

/// Where a scenario's server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMode {
    /// In this process: process faults and disk faults reach it.
    InProcess,
    /// A child process started as `program args..`, which must call
    /// [`child_server_from_env`] first thing: it can be killed with
    /// SIGKILL and restarted.
    Child {
        /// The program (usually `std::env::current_exe()`).
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// The limits a chaos server runs with: the defaults, with heartbeats
/// short enough that stalled connections are noticed within a run and
/// rates high enough for the traffic of a run.
pub fn chaos_limits() -> Limits {
    Limits {
        heartbeat_interval: Duration::from_millis(1000),
        idle_timeout: Duration::from_millis(4000),
        max_unauthenticated_per_address: 10_000,
        messages_per_second: 1000,
        burst: 1000,
        logic_restart_limit: 1000,
        ..Limits::default()
    }
}

/// In a child process started by a [`ServerMode::Child`] scenario: runs the
/// server the environment describes, prints `ready <addr> <pin>` on stdout
/// and serves until killed. Returns `false` at once when the environment
/// names no data directory (the process is not such a child).
///
/// # Cancel safety
///
/// Not cancel safe: the server keeps running.
pub async fn child_server_from_env() -> bool {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return false;
    };
    let addr = std::env::var(CHILD_ADDR_ENV)
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let started = ServerBuilder::new()
        .bind(addr)
        .data_dir(dir)
        .limits(chaos_limits())
        .durability(Durability::Fsync)
        .start()
        .await;
    let handle = match started {
        Ok(handle) => handle,
        Err(err) => {
            tracing::error!(error = %err, "chaos child server did not start");
            return true;
        }
    };
    let pin = handle
        .fingerprint()
        .map(|p| p.to_plain_hex())
        .unwrap_or_default();
    // The parent reads this line; it is the child's only output.
    let line = format!("ready {} {pin}\n", handle.local_addr());
    let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    handle.stopped().await;
    true
}

/// A running server under test.
pub(crate) enum Target {
    InProcess {
        handle: ServerHandle,
        faults: FaultInjector,
    },
    Child {
        child: Child,
        program: PathBuf,
        args: Vec<String>,
        dir: PathBuf,
    },
}

impl Target {
    /// Starts the server; returns it with its address and pin.
    pub(crate) async fn start(
        mode: &ServerMode,
        dir: &Path,
    ) -> Result<(Self, SocketAddr, CertFingerprint), ChaosError> {
        match mode {
            ServerMode::InProcess => {
                let faults = FaultInjector::new();
                let handle = ServerBuilder::new()
                    .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .data_dir(dir)
                    .limits(chaos_limits())
                    .durability(Durability::Fsync)
                    .store_faults(faults.clone())
                    .start()
                    .await
                    .map_err(|e| ChaosError::Server(e.to_string()))?;
                let addr = handle.local_addr();
                let pin = handle
                    .fingerprint()
                    .ok_or_else(|| ChaosError::Server("no certificate fingerprint".into()))?;
                Ok((Self::InProcess { handle, faults }, addr, pin))
            }
            ServerMode::Child { program, args } => {
                let any = SocketAddr::from(([127, 0, 0, 1], 0));
                let (child, addr, pin) = spawn_child(program, args, dir, any).await?;
                let target = Self::Child {
                    child,
                    program: program.clone(),
                    args: args.clone(),
                    dir: dir.to_path_buf(),
                };
                Ok((target, addr, pin))
            }
        }
    }

    /// The server handle, for an in-process server.
    pub(crate) fn handle(&self) -> Option<&ServerHandle> {
        match self {
            Self::InProcess { handle, .. } => Some(handle),
            Self::Child { .. } => None,
        }
    }

    /// The node of an in-process server that is still running.
    pub(crate) fn node(&self) -> Option<Node> {
        self.handle().and_then(ServerHandle::node)
    }

    /// The disk-fault switch of an in-process server.
    pub(crate) fn disk(&self) -> Option<&FaultInjector> {
        match self {
            Self::InProcess { faults, .. } => Some(faults),
            Self::Child { .. } => None,
        }
    }

    /// A snapshot of an in-process server's tree.
    pub(crate) async fn snapshot(&self) -> Option<TreeSnapshot> {
        match self.handle() {
            Some(h) => h.snapshot().await.ok(),
            None => None,
        }
    }

    /// The operating-system pid of the process the server runs in.
    pub(crate) fn os_pid(&self) -> u32 {
        match self {
            Self::InProcess { .. } => std::process::id(),
            Self::Child { child, .. } => child.id(),
        }
    }

    /// Kills a child server with SIGKILL and starts it again on the same
    /// data directory and address. `false` for an in-process server.
    pub(crate) async fn crash_and_restart(&mut self, addr: SocketAddr) -> Result<bool, ChaosError> {
        let Self::Child {
            child,
            program,
            args,
            dir,
        } = self
        else {
            return Ok(false);
        };
        let _ = child.kill();
        let _ = child.wait();
        let (next, _, _) = spawn_child(program, args, dir, addr).await?;
        *child = next;
        Ok(true)
    }

    /// Stops the server.
    pub(crate) async fn stop(self) {
        match self {
            Self::InProcess { handle, .. } => handle.shutdown().await,
            Self::Child { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts a child server and reads its `ready` line.
async fn spawn_child(
    program: &Path,
    args: &[String],
    dir: &Path,
    addr: SocketAddr,
) -> Result<(Child, SocketAddr, CertFingerprint), ChaosError> {
    let program = program.to_path_buf();
    let args = args.to_vec();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        // A restart may find the port still held for a moment by the
        // killed process's sockets; try again a few times.
        let mut last = String::new();
        for _ in 0..50 {
            match spawn_child_blocking(&program, &args, &dir, addr) {
                Ok(found) => return Ok(found),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(ChaosError::Server(last))
    })
    .await
    .map_err(|e| ChaosError::Server(e.to_string()))?
}

fn spawn_child_blocking(
    program: &Path,
    args: &[String],
    dir: &Path,
    addr: SocketAddr,
) -> Result<(Child, SocketAddr, CertFingerprint), String> {
    let mut child = Command::new(program)
        .args(args)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_ADDR_ENV, addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err("no stdout from the server process".into());
    };
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.by_ref().map_while(Result::ok).find_map(|line| {
        let rest = line.strip_prefix("ready ")?.to_owned();
        let (addr, pin) = rest.split_once(' ')?;
        Some((addr.parse().ok()?, pin.parse().ok()?))
    });
    let Some((addr, pin)) = ready else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the server process ended before it was ready".into());
    };
    // Keep draining its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, addr, pin))
}

/// Resident memory of process `pid` in KiB (Linux), when readable.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
