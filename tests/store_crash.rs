//! A writer process killed with SIGKILL loses nothing it acknowledged.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier::store::{
    DeviceKey, MessageId, ParkOutcome, ParkedFrame, RedbStore, Store, StoreConfig,
};

const CHILD_ENV: &str = "COURIER_STORE_CRASH_CHILD";
const ACKS_BEFORE_KILL: usize = 300;
const SENDERS: u32 = 16;

fn frame(sender: u32, n: u32) -> ParkedFrame {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&sender.to_be_bytes());
    id[4..8].copy_from_slice(&n.to_be_bytes());
    ParkedFrame {
        recipient: DeviceKey::new("bob", sender % 2),
        sender: DeviceKey::new("alice", sender),
        id: MessageId(id),
        group: None,
        body: Bytes::from(format!("sealed {sender} {n}")),
        sent_at_ms: u64::from(n),
    }
}

/// The child: parks from many concurrent senders forever, printing each ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_parks_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only does something when started by the test below.
    };
    let store = Arc::new(RedbStore::open_spawned(&StoreConfig::new(path)).unwrap());
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for n in 0.. {
                    let outcome = store.park(vec![frame(sender, n)]).await.unwrap();
                    let ParkOutcome::Stored { seq } = outcome[0] else {
                        panic!("fresh ids are stored");
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {sender} {n} {seq}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_frames_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");

    let args = [
        "--exact",
        "crash_child_parks_until_killed",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut guard = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(args)
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;

    // Read acknowledgements on a thread so a hung child cannot hang the test.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("child stopped acking");
        if let Some(ack) = parse_ack(&line) {
            acked.insert((ack.0, ack.1), ack.2);
        }
    }
    child.kill().unwrap(); // SIGKILL: no clean shutdown of anything.
    child.wait().unwrap();
    // Acks printed before the kill landed are acknowledged too.
    while let Ok(line) = rx.try_recv() {
        if let Some(ack) = parse_ack(&line) {
            acked.insert((ack.0, ack.1), ack.2);
        }
    }

    let store = RedbStore::open_spawned(&StoreConfig::new(&path)).unwrap();
    let mut found: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for device in 0..2 {
        let recipient = DeviceKey::new("bob", device);
        let frames = store.pending(&recipient, 0, usize::MAX).await.unwrap();
        assert!(frames.windows(2).all(|w| w[0].seq < w[1].seq));
        for stored in frames {
            let sender = stored.frame.sender.device;
            let n = u32::from_be_bytes(stored.frame.id.0[4..8].try_into().unwrap());
            assert_eq!(stored.frame, frame(sender, n));
            found.insert((sender, n), stored.seq);
        }
    }
    for (key, seq) in &acked {
        assert_eq!(found.get(key), Some(seq), "acknowledged frame {key:?} lost");
    }
    // Per sender, what survived is a prefix in send order.
    for sender in 0..SENDERS {
        let ns: Vec<u32> = found
            .keys()
            .filter(|k| k.0 == sender)
            .map(|k| k.1)
            .collect();
        assert!(
            ns.iter().enumerate().all(|(i, n)| *n == i as u32),
            "gap for sender {sender}"
        );
    }
    // The dedup records came back with the frames.
    for (sender, n) in acked.keys().take(50) {
        let again = store.park(vec![frame(*sender, *n)]).await.unwrap();
        assert!(again[0].is_duplicate());
    }
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_ack(line: &str) -> Option<(u32, u32, u64)> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}
