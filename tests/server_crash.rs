//! kill -9 of a server process mid-stream, then a restart on the same data
//! directory: nothing that was acknowledged (`Accepted`) is lost.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use courier::crypto::IdentityKeyPair;
use courier::protocol::{DeviceId, MessageId, SendDirect, ServerFrame, UserName};
use courier::server::Limits;
use courier::store::Durability;
use courier::tls::CertFingerprint;
use support::{Identity, TestClient};

const CHILD_ENV: &str = "COURIER_SERVER_CRASH_CHILD";
const SENDS: u32 = 3000;
const ACCEPTED_BEFORE_KILL: usize = 300;

/// The child: runs a server on the data directory in the environment until
/// it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_serves_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when started by the test below.
    };
    let mut limits = Limits::default();
    limits.messages_per_second = 1_000_000;
    limits.burst = 1_000_000;
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

/// Kills the child when dropped, so a failing test leaves no server behind.
struct ChildGuard(Child);

impl ChildGuard {
    fn kill_9(&mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &std::path::Path) -> (ChildGuard, SocketAddr, CertFingerprint) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_serves_until_killed", "--exact", "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(ChildGuard)
        .unwrap();
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("child prints ready").unwrap();
        if let Some(rest) = line.strip_prefix("ready ") {
            let mut parts = rest.split(' ');
            let addr = parts.next().unwrap().parse().unwrap();
            let pin = parts.next().unwrap().parse().unwrap();
            // Keep draining stdout so the child never blocks on it.
            std::thread::spawn(move || for _ in lines {});
            return (child, addr, pin);
        }
    }
}

fn fixed_identity(user: &str, seed: u8) -> Identity {
    Identity {
        device: DeviceId::new(UserName::new(user).unwrap(), 0),
        keys: Arc::new(IdentityKeyPair::from_secret_bytes(
            &[seed; 32],
            &[seed + 1; 32],
        )),
    }
}

fn id_of(n: u32) -> MessageId {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    MessageId(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_accepted() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alice_id = fixed_identity("alice", 1);
    let bob_id = fixed_identity("bob", 3);

    let (mut child, addr, pin) = spawn_child(dir.path());
    let bob = TestClient::connect_to(addr, pin, bob_id.clone()).await;
    drop(bob);
    let mut alice = TestClient::connect_to(addr, pin, alice_id).await;
    // Pipeline every send, then count acknowledgements until the kill.
    for n in 0..SENDS {
        alice
            .send(SendDirect {
                id: id_of(n),
                to: bob_id.device.clone(),
                body: Bytes::from(format!("sealed {n}")),
            })
            .await;
    }
    let mut accepted = BTreeSet::new();
    while accepted.len() < ACCEPTED_BEFORE_KILL {
        match alice.recv().await {
            ServerFrame::Accepted(a) => {
                accepted.insert(a.id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    child.kill_9();
    // Whatever else was accepted before the socket died counts too.
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(
        support::WAIT,
        futures_util::StreamExt::next(&mut alice.conn.framed),
    )
    .await
    {
        if let ServerFrame::Accepted(a) = frame {
            accepted.insert(a.id);
        }
    }

    let (mut child, addr, pin) = spawn_child(dir.path());
    let mut bob = TestClient::connect_to(addr, pin, bob_id).await;
    let mut delivered = BTreeSet::new();
    let mut last = None;
    while !accepted.is_subset(&delivered) {
        let d = bob.expect_deliver().await;
        assert!(last < Some(d.id), "order kept: {:?} after {:?}", d.id, last);
        last = Some(d.id);
        delivered.insert(d.id);
    }
    child.kill_9();
}
