//! The redb store: group commit, writer restarts, reopening, disk faults.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use courier::store::{
    AnyStore, DeviceKey, Durability, FaultInjector, MemoryStore, MessageId, ParkOutcome,
    ParkedFrame, RedbStore, Store, StoreConfig, StoreError, StoreWriter,
};

const HANG: Duration = Duration::from_secs(10);

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, future)
        .await
        .expect("store call hung")
}

/// Waits until `n` requests are queued for the writer.
async fn queued(store: &RedbStore, n: usize) {
    bounded(async {
        while store.queue_len() < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn frame(sender: u32, n: u32) -> ParkedFrame {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    ParkedFrame {
        recipient: DeviceKey::new("bob", 1),
        sender: DeviceKey::new("alice", sender),
        id: MessageId(id),
        group: None,
        body: Bytes::from(n.to_le_bytes().to_vec()),
        sent_at_ms: u64::from(n),
    }
}

#[test]
fn public_handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<RedbStore>();
    check::<StoreWriter>();
    check::<MemoryStore>();
    check::<AnyStore>();
    check::<FaultInjector>();
    check::<StoreError>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_gathers_queued_parks_into_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = RedbStore::open(&StoreConfig::new(dir.path().join("db"))).unwrap();

    let parks: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.park(vec![frame(n % 8, n)]).await })
        })
        .collect();
    queued(&store, 200).await;

    let writer = tokio::spawn(writer.run());
    for park in parks {
        let outcome = bounded(park).await.unwrap().unwrap();
        assert!(matches!(outcome[0], ParkOutcome::Stored { .. }));
    }
    assert_eq!(store.commit_count(), 1, "200 queued parks, one fsync");

    let all = bounded(store.pending(&DeviceKey::new("bob", 1), 0, 1_000))
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    drop(store);
    bounded(writer).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_parks_need_fewer_commits_than_parks() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path().join("db")).max_batch(64);
    let (store, writer) = RedbStore::open(&config).unwrap();

    let parks: Vec<_> = (0..256)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.park(vec![frame(n % 8, n)]).await })
        })
        .collect();
    queued(&store, 256).await;
    tokio::spawn(writer.run());
    for park in parks {
        bounded(park).await.unwrap().unwrap();
    }
    // The batch limit splits 256 queued parks into exactly four commits.
    assert_eq!(store.commit_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_writer_serves_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = RedbStore::open(&StoreConfig::new(dir.path().join("db"))).unwrap();

    let first = tokio::spawn(writer.clone().run());
    bounded(store.park(vec![frame(1, 1)])).await.unwrap();
    first.abort();
    assert!(bounded(first).await.unwrap_err().is_cancelled());

    // Queued while no writer runs: waits, is not lost.
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.park(vec![frame(1, 2)]).await })
    };
    queued(&store, 1).await;
    assert!(!waiting.is_finished());

    tokio::spawn(writer.run());
    bounded(waiting).await.unwrap().unwrap();
    let all = bounded(store.pending(&DeviceKey::new("bob", 1), 0, 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopened_store_keeps_acknowledged_frames_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path().join("db"));
    let bob = DeviceKey::new("bob", 1);

    let (store, writer) = RedbStore::open(&config).unwrap();
    let writer = tokio::spawn(writer.run());
    let mut acked = Vec::new();
    for n in 0..20 {
        let outcome = bounded(store.park(vec![frame(n % 3, n)])).await.unwrap();
        acked.push(outcome[0]);
    }
    bounded(store.remove(&bob, &DeviceKey::new("alice", 0), frame(0, 0).id))
        .await
        .unwrap()
        .unwrap();
    drop(store);
    bounded(writer).await.unwrap().unwrap();

    let reopened = RedbStore::open_spawned(&config).unwrap();
    let all = bounded(reopened.pending(&bob, 0, 100)).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|f| f.seq).collect();
    let expected: Vec<u64> = acked[1..]
        .iter()
        .map(|o| match o {
            ParkOutcome::Stored { seq } => *seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(seqs, expected);
    assert_eq!(all[4].frame, frame(5 % 3, 5));

    // Ids are still known, also the delivered one; new frames sort after.
    for n in 0..20 {
        let again = bounded(reopened.park(vec![frame(n % 3, n)])).await.unwrap();
        assert!(again[0].is_duplicate());
    }
    let next = bounded(reopened.park(vec![frame(0, 100)])).await.unwrap();
    let ParkOutcome::Stored { seq } = next[0] else {
        panic!("a new id is stored");
    };
    assert!(seq > *expected.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_during_commit_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let config = StoreConfig::new(dir.path().join("db")).faults(faults.clone());
    let bob = DeviceKey::new("bob", 1);

    let (store, writer) = RedbStore::open(&config).unwrap();
    let writer = tokio::spawn(writer.run());
    bounded(store.park(vec![frame(1, 1)])).await.unwrap();

    faults.set_disk_full(true);
    for n in 2..5 {
        let refused = bounded(store.park(vec![frame(1, n)])).await;
        assert_eq!(refused, Err(StoreError::DiskFull));
    }
    let removal = bounded(store.remove(&bob, &DeviceKey::new("alice", 1), frame(1, 1).id)).await;
    assert!(removal.unwrap_err().is_retryable());

    // Shut down while the disk is still full: no panic, nothing acknowledged lost.
    drop(store);
    bounded(writer).await.unwrap().unwrap();
    // A database closed while its disk was full needs repair, which writes.
    let still_full = RedbStore::open(&config).map(|_| ()).unwrap_err();
    assert!(still_full.is_retryable(), "{still_full:?}");
    faults.set_disk_full(false);

    let reopened = RedbStore::open_spawned(&config).unwrap();
    let all = bounded(reopened.pending(&bob, 0, 10)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].frame, frame(1, 1));
    let retried = bounded(reopened.park(vec![frame(1, 2)])).await.unwrap();
    assert!(!retried[0].is_duplicate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_leaves_mailboxes_as_last_committed() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let config = StoreConfig::new(dir.path().join("db")).faults(faults.clone());
    let store = RedbStore::open_spawned(&config).unwrap();
    let bob = DeviceKey::new("bob", 1);
    let alice = DeviceKey::new("alice", 1);
    bounded(store.park(vec![frame(1, 1), frame(1, 2)]))
        .await
        .unwrap();

    // A batch that parks one frame and removes another fails as a whole.
    faults.set_disk_full(true);
    let mut to_carol = frame(1, 3);
    to_carol.recipient = DeviceKey::new("carol", 1);
    let park = store.park(vec![frame(1, 4), to_carol]);
    let remove = store.remove(&bob, &alice, frame(1, 1).id);
    let (parked, removed) = bounded(async { tokio::join!(park, remove) }).await;
    assert_eq!(parked, Err(StoreError::DiskFull));
    assert!(removed.unwrap_err().is_retryable());
    faults.set_disk_full(false);

    // The same handle, without reopening by hand, lists what was committed.
    let pending = bounded(store.pending(&bob, 0, 10)).await.unwrap();
    let frames: Vec<_> = pending.into_iter().map(|f| f.frame).collect();
    assert_eq!(frames, vec![frame(1, 1), frame(1, 2)]);
    assert_eq!(bounded(store.pending_count(&bob)).await.unwrap(), 2);
    assert_eq!(
        bounded(store.recipients()).await.unwrap(),
        vec![bob.clone()]
    );

    let removed = bounded(store.remove(&bob, &alice, frame(1, 1).id))
        .await
        .unwrap();
    assert_eq!(removed.map(|r| r.sender), Some(alice));
    assert_eq!(bounded(store.pending_count(&bob)).await.unwrap(), 1);
    let retried = bounded(store.park(vec![frame(1, 4)])).await.unwrap();
    assert!(matches!(retried[0], ParkOutcome::Stored { .. }));
}

/// A database written when frames were keyed by (recipient, seq) opens with
/// every parked frame in the log, under its old sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_the_per_recipient_layout_move_into_the_log() {
    type OldK = (&'static str, u32, u64);
    type OldV = (
        &'static str,
        u32,
        [u8; 16],
        Option<&'static str>,
        &'static [u8],
        u64,
    );
    const OLD_FRAMES: redb::TableDefinition<OldK, OldV> = redb::TableDefinition::new("frames");
    const OLD_MAILBOXES: redb::TableDefinition<(&str, u32), u64> =
        redb::TableDefinition::new("mailboxes");
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut frames = txn.open_table(OLD_FRAMES).unwrap();
            let mut mailboxes = txn.open_table(OLD_MAILBOXES).unwrap();
            for (seq, n) in [(3u64, 1u32), (7, 2), (9, 3)] {
                let f = frame(1, n);
                let value = ("alice", 1, f.id.0, None, &f.body[..], f.sent_at_ms);
                frames.insert(("bob", 1, seq), value).unwrap();
            }
            mailboxes.insert(("bob", 1), 3).unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("next_seq", 10)
                .unwrap();
        }
        txn.commit().unwrap();
    }

    let (store, writer) = RedbStore::open(&StoreConfig::new(&path)).unwrap();
    let writer = tokio::spawn(writer.run());
    let bob = DeviceKey::new("bob", 1);
    let pending = bounded(store.pending(&bob, 0, 10)).await.unwrap();
    let seqs: Vec<u64> = pending.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, vec![3, 7, 9]);
    assert_eq!(pending[1].frame, frame(1, 2));
    assert_eq!(bounded(store.pending_count(&bob)).await.unwrap(), 3);
    let next = bounded(store.park(vec![frame(1, 4)])).await.unwrap();
    assert_eq!(next[0], ParkOutcome::Stored { seq: 10 });
    let removed = bounded(store.remove(&bob, &DeviceKey::new("alice", 1), frame(1, 2).id))
        .await
        .unwrap();
    assert_eq!(removed.map(|r| r.seq), Some(7));
    drop(store);

    bounded(writer).await.unwrap().unwrap();

    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "frames" || n == "mailboxes"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_store_opens_the_configured_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (durable, writer) = AnyStore::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    assert_eq!(durable.durability(), Durability::Fsync);
    tokio::spawn(writer.unwrap().run());
    bounded(durable.park(vec![frame(1, 1)])).await.unwrap();
    assert_eq!(bounded(durable.recipients()).await.unwrap().len(), 1);

    let (lossy, writer) = AnyStore::open(&StoreConfig::memory()).unwrap();
    assert_eq!(lossy.durability(), Durability::Memory);
    assert!(writer.is_none());
    bounded(lossy.park(vec![frame(1, 1)])).await.unwrap();
    assert_eq!(
        bounded(lossy.pending_count(&DeviceKey::new("bob", 1)))
            .await
            .unwrap(),
        1
    );
}

/// Fills a real, small file system until it reports ENOSPC. Run it with a
/// directory on one, for example a 2 MiB tmpfs:
/// `COURIER_SMALL_FS=/mnt/tiny cargo test --test store_redb`. `.ci/run`
/// mounts such a file system when it may; without one the test says it
/// was skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_full_disk_is_reported_as_disk_full() {
    let Ok(root) = std::env::var("COURIER_SMALL_FS") else {
        eprintln!("skipped: set COURIER_SMALL_FS to a directory on a small file system");
        return;
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![0; 512 * 1024]).unwrap();
    let config = StoreConfig::new(dir.path().join("db"));
    let bob = DeviceKey::new("bob", 1);

    let (store, writer) = RedbStore::open(&config).unwrap();
    let writer = tokio::spawn(writer.run());
    let mut acked = 0;
    let error = loop {
        let mut big = frame(1, acked);
        big.body = Bytes::from(vec![7; 16 * 1024]);
        match bounded(store.park(vec![big])).await {
            Ok(_) => acked += 1,
            Err(error) => break error,
        }
        assert!(acked < 100_000, "the file system never filled up");
    };
    assert_eq!(error, StoreError::DiskFull);
    // A small frame may still fit; if not, the error is again retryable.
    let small = bounded(store.park(vec![frame(2, 0)])).await;
    if let Err(error) = &small {
        assert!(error.is_retryable(), "{error:?}");
    }
    drop(store);
    bounded(writer).await.unwrap().unwrap();

    // Free room, as an operator would, and every acknowledged frame is there.
    std::fs::remove_file(&filler).unwrap();
    let store = RedbStore::open_spawned(&config).unwrap();
    let all = bounded(store.pending(&bob, 0, usize::MAX)).await.unwrap();
    let expected = acked as usize + usize::from(small.is_ok());
    assert_eq!(all.len(), expected);
    bounded(store.park(vec![frame(2, 1)])).await.unwrap();
}
