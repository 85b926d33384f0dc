//! Measures the server's resident memory per idle authenticated session.
//!
//! Ignored by default (it opens thousands of connections); run it with
//!
//! ```text
//! cargo test --release --test server_memory -- --ignored --nocapture
//! ```
//!
//! `COURIER_MEM_SESSIONS` sets the number of sessions (default 15,000). The
//! server runs in a child process so that the figure holds only its memory;
//! the parent opens the sessions and reads the child's `VmRSS`.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use courier::server::Limits;
use courier::store::Durability;
use courier::tls::CertFingerprint;
use support::{Identity, TestClient};

const CHILD_ENV: &str = "COURIER_SERVER_MEMORY_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_child_serves_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut limits = Limits::default();
    limits.max_unauthenticated_per_address = 1_000_000;
    limits.handshake_timeout = Duration::from_secs(120);
    limits.idle_timeout = Duration::from_secs(3600);
    limits.heartbeat_interval = Duration::from_secs(1800);
    let handle = support::builder(dir.as_ref(), limits, Durability::Fsync)
        .start()
        .await
        .unwrap();
    println!(
        "ready {} {}",
        handle.local_addr(),
        handle.fingerprint().unwrap().to_plain_hex()
    );
    handle.stopped().await;
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn open_sessions(
    addr: SocketAddr,
    pin: CertFingerprint,
    from: usize,
    count: usize,
) -> Vec<TestClient> {
    let mut out = Vec::with_capacity(count);
    let mut batch = tokio::task::JoinSet::new();
    for i in from..from + count {
        batch.spawn(async move {
            TestClient::connect_to(addr, pin, Identity::new(&format!("u{i}"), 0)).await
        });
        if batch.len() >= 64 {
            out.push(batch.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(c) = batch.join_next().await {
        out.push(c.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens thousands of connections; run by hand, see the module docs"]
async fn memory_per_idle_authenticated_session() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let sessions: usize = std::env::var("COURIER_MEM_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["memory_child_serves_until_killed", "--exact", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(ChildGuard)
        .unwrap();
    let pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let (addr, pin) = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("ready ") {
            let mut parts = rest.split(' ');
            break (
                parts.next().unwrap().parse::<SocketAddr>().unwrap(),
                parts.next().unwrap().parse::<CertFingerprint>().unwrap(),
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});

    // Warm up allocator pools, the store and the runtime with a first batch.
    let warm = open_sessions(addr, pin, 0, 500).await;
    let before = rss_kib(pid);
    let clients = open_sessions(addr, pin, 500, sessions).await;
    // Let every session settle into its idle state: a ping round trip on a
    // sample proves the server has handled everything sent so far.
    let mut clients = clients;
    for c in clients.iter_mut().step_by(97) {
        c.sync().await;
    }
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / sessions as f64;
    println!(
        "sessions={sessions} rss_before_kib={before} rss_after_kib={after} per_session_bytes={per:.0} ({:.2} KiB)",
        per / 1024.0
    );
    drop(warm);
    drop(clients);
}
