//! The behaviour every store must have, run against each durability mode.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier::store::{
    DeviceKey, FaultInjector, Group, Identity, MemoryStore, MessageId, OneTimePrekey, ParkOutcome,
    ParkedFrame, RedbStore, SignedPrekey, Store, StoreConfig, StoreError,
};
use tempfile::TempDir;

const HANG: Duration = Duration::from_secs(10);

/// A store under test plus whatever keeps it alive.
struct Fixture<S> {
    store: Arc<S>,
    faults: FaultInjector,
    _dir: Option<TempDir>,
}

fn memory(config: impl FnOnce(StoreConfig) -> StoreConfig) -> Fixture<MemoryStore> {
    let faults = FaultInjector::new();
    let config = config(StoreConfig::memory().faults(faults.clone()));
    Fixture {
        store: Arc::new(MemoryStore::new(&config)),
        faults,
        _dir: None,
    }
}

fn redb(config: impl FnOnce(StoreConfig) -> StoreConfig) -> Fixture<RedbStore> {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let config = config(StoreConfig::new(dir.path().join("store.redb")).faults(faults.clone()));
    Fixture {
        store: Arc::new(RedbStore::open_spawned(&config).unwrap()),
        faults,
        _dir: Some(dir),
    }
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, future)
        .await
        .expect("store call hung")
}

fn alice() -> DeviceKey {
    DeviceKey::new("alice", 1)
}

fn bob(device: u32) -> DeviceKey {
    DeviceKey::new("bob", device)
}

fn id(n: u8) -> MessageId {
    MessageId([n; 16])
}

fn frame(sender: &DeviceKey, recipient: &DeviceKey, n: u8) -> ParkedFrame {
    ParkedFrame {
        recipient: recipient.clone(),
        sender: sender.clone(),
        id: id(n),
        group: None,
        body: Bytes::from(vec![n; 3]),
        sent_at_ms: 1_000 + u64::from(n),
    }
}

fn stored(outcomes: &[ParkOutcome]) -> Vec<u64> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            ParkOutcome::Stored { seq } => Some(*seq),
            _ => None,
        })
        .collect()
}

async fn lists_parked_frames_in_arrival_order<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    for n in 1..=5 {
        bounded(s.park(vec![frame(&alice(), &bob(1), n)]))
            .await
            .unwrap();
    }
    let mut grouped = frame(&alice(), &bob(1), 6);
    grouped.group = Some("friends".to_owned());
    bounded(s.park(vec![grouped.clone()])).await.unwrap();

    let all = bounded(s.pending(&bob(1), 0, 100)).await.unwrap();
    let ids: Vec<u8> = all.iter().map(|f| f.frame.id.0[0]).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all[0].frame, frame(&alice(), &bob(1), 1));
    assert_eq!(all[5].frame, grouped);

    let page = bounded(s.pending(&bob(1), all[1].seq, 2)).await.unwrap();
    let ids: Vec<u8> = page.iter().map(|f| f.frame.id.0[0]).collect();
    assert_eq!(ids, vec![3, 4]);
    assert!(
        bounded(s.pending(&bob(1), u64::MAX, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(bounded(s.pending(&bob(2), 0, 10)).await.unwrap().is_empty());
}

async fn remove_is_idempotent_and_names_the_sender<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let outcomes = bounded(s.park(vec![
        frame(&alice(), &bob(1), 1),
        frame(&alice(), &bob(1), 2),
    ]))
    .await
    .unwrap();
    let seqs = stored(&outcomes);
    assert_eq!(seqs.len(), 2);

    let removed = bounded(s.remove(&bob(1), &alice(), id(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.sender, alice());
    assert_eq!(removed.seq, seqs[0]);
    assert_eq!(removed.sent_at_ms, 1_001);
    assert_eq!(
        bounded(s.remove(&bob(1), &alice(), id(1))).await.unwrap(),
        None
    );
    assert_eq!(
        bounded(s.remove(&bob(2), &alice(), id(2))).await.unwrap(),
        None
    );
    assert_eq!(
        bounded(s.remove(&bob(1), &bob(2), id(2))).await.unwrap(),
        None
    );

    let left = bounded(s.pending(&bob(1), 0, 10)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].frame.id, id(2));
    assert_eq!(bounded(s.pending_count(&bob(1))).await.unwrap(), 1);
}

async fn counts_frames_and_lists_recipients<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let batch = vec![
        frame(&alice(), &bob(1), 1),
        frame(&alice(), &bob(2), 1),
        frame(&alice(), &bob(1), 2),
    ];
    bounded(s.park(batch)).await.unwrap();
    assert_eq!(bounded(s.pending_count(&bob(1))).await.unwrap(), 2);
    assert_eq!(bounded(s.pending_count(&bob(2))).await.unwrap(), 1);
    assert_eq!(bounded(s.pending_count(&alice())).await.unwrap(), 0);
    assert_eq!(bounded(s.recipients()).await.unwrap(), vec![bob(1), bob(2)]);

    bounded(s.remove(&bob(2), &alice(), id(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounded(s.pending_count(&bob(2))).await.unwrap(), 0);
    assert_eq!(bounded(s.recipients()).await.unwrap(), vec![bob(1)]);
}

async fn resend_is_reported_as_duplicate<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let first = bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
        .await
        .unwrap();
    assert!(!first[0].is_duplicate());

    let again = bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
        .await
        .unwrap();
    let ParkOutcome::Stored { seq } = first[0] else {
        panic!("stored: {first:?}");
    };
    // The copy still waits: the resend names it, so a router can forward it
    // again; nothing new is stored.
    assert_eq!(again, vec![ParkOutcome::AlreadyParked { seq }]);
    assert_eq!(bounded(s.pending_count(&bob(1))).await.unwrap(), 1);

    // Still recognised after the original was delivered and removed.
    bounded(s.remove(&bob(1), &alice(), id(1)))
        .await
        .unwrap()
        .unwrap();
    let after_ack = bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
        .await
        .unwrap();
    assert_eq!(after_ack, vec![ParkOutcome::Duplicate]);
    assert_eq!(bounded(s.pending_count(&bob(1))).await.unwrap(), 0);

    // The same id from another sender is another message.
    let other = bounded(s.park(vec![frame(&bob(2), &bob(1), 1)]))
        .await
        .unwrap();
    assert!(!other[0].is_duplicate());
}

async fn one_call_stores_every_copy_of_a_message<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let copies = vec![frame(&alice(), &bob(1), 7), frame(&alice(), &bob(2), 7)];
    let outcomes = bounded(s.park(copies.clone())).await.unwrap();
    assert_eq!(stored(&outcomes).len(), 2);
    // A repeated copy inside one call is stored once.
    let twice = vec![frame(&alice(), &bob(3), 8), frame(&alice(), &bob(3), 8)];
    let outcomes = bounded(s.park(twice)).await.unwrap();
    assert_eq!(stored(&outcomes).len(), 1);
    assert!(outcomes[1].is_duplicate());

    let resent = bounded(s.park(copies)).await.unwrap();
    assert!(resent.iter().all(ParkOutcome::is_duplicate));
}

async fn dedup_window_forgets_the_oldest_ids<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    // Two senders share the store-wide window.
    let sender = |n: u8| if n % 2 == 1 { alice() } else { bob(2) };
    for n in 1..=6 {
        bounded(s.park(vec![frame(&sender(n), &bob(1), n)]))
            .await
            .unwrap();
        bounded(s.remove(&bob(1), &sender(n), id(n)))
            .await
            .unwrap()
            .unwrap();
    }
    // Window of 4: ids 3..=6 are remembered, 1 and 2 are forgotten.
    for n in 3..=6 {
        let again = bounded(s.park(vec![frame(&sender(n), &bob(1), n)]))
            .await
            .unwrap();
        assert!(again[0].is_duplicate(), "id {n} should be remembered");
    }
    for n in 1..=2 {
        let old = bounded(s.park(vec![frame(&sender(n), &bob(1), n)]))
            .await
            .unwrap();
        assert!(!old[0].is_duplicate(), "id {n} should be forgotten");
    }
}

async fn resend_after_the_window_is_parked_again_and_removed_oldest_first<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let first = stored(
        &bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
            .await
            .unwrap(),
    );
    bounded(s.park(vec![frame(&alice(), &bob(1), 2)]))
        .await
        .unwrap();
    // A window of 1 has forgotten id 1 by now.
    let again = stored(
        &bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
            .await
            .unwrap(),
    );
    assert_eq!(again.len(), 1);
    assert_eq!(bounded(s.pending_count(&bob(1))).await.unwrap(), 3);

    let removed = bounded(s.remove(&bob(1), &alice(), id(1))).await.unwrap();
    assert_eq!(removed.map(|r| r.seq), Some(first[0]));
    let removed = bounded(s.remove(&bob(1), &alice(), id(1))).await.unwrap();
    assert_eq!(removed.map(|r| r.seq), Some(again[0]));
    assert_eq!(
        bounded(s.remove(&bob(1), &alice(), id(1))).await.unwrap(),
        None
    );
}

async fn identity_binds_once<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let first = Identity {
        signing_key: [1; 32],
        dh_key: [2; 32],
        signature: vec![3; 64],
    };
    let other = Identity {
        signing_key: [9; 32],
        ..first.clone()
    };
    assert_eq!(bounded(s.identity("alice")).await.unwrap(), None);
    bounded(s.bind_identity("alice", first.clone()))
        .await
        .unwrap();
    bounded(s.bind_identity("alice", first.clone()))
        .await
        .unwrap();
    assert_eq!(
        bounded(s.bind_identity("alice", other.clone())).await,
        Err(StoreError::IdentityConflict)
    );
    assert_eq!(bounded(s.identity("alice")).await.unwrap(), Some(first));
    bounded(s.bind_identity("bob", other.clone()))
        .await
        .unwrap();
    assert_eq!(bounded(s.identity("bob")).await.unwrap(), Some(other));
}

async fn devices_and_prekeys_are_kept_per_device<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    assert!(bounded(s.add_device(&bob(2))).await.unwrap());
    assert!(bounded(s.add_device(&bob(1))).await.unwrap());
    assert!(!bounded(s.add_device(&bob(1))).await.unwrap());
    bounded(s.add_device(&alice())).await.unwrap();
    assert_eq!(bounded(s.devices("bob")).await.unwrap(), vec![1, 2]);

    let signed = SignedPrekey {
        id: 4,
        public: [4; 32],
        signature: vec![5; 64],
    };
    bounded(s.set_signed_prekey(&bob(1), signed.clone()))
        .await
        .unwrap();
    assert_eq!(
        bounded(s.signed_prekey(&bob(1))).await.unwrap(),
        Some(signed)
    );
    assert_eq!(bounded(s.signed_prekey(&bob(2))).await.unwrap(), None);

    let keys = (1..=3)
        .map(|i| OneTimePrekey {
            id: i,
            public: [i as u8; 32],
        })
        .collect();
    assert_eq!(
        bounded(s.add_one_time_prekeys(&bob(1), keys))
            .await
            .unwrap(),
        3
    );
    assert_eq!(bounded(s.one_time_prekey_count(&bob(1))).await.unwrap(), 3);
    assert_eq!(bounded(s.one_time_prekey_count(&bob(2))).await.unwrap(), 0);
    let taken = bounded(s.take_one_time_prekey(&bob(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        taken,
        OneTimePrekey {
            id: 1,
            public: [1; 32]
        }
    );
    assert_eq!(bounded(s.one_time_prekey_count(&bob(1))).await.unwrap(), 2);
    assert_eq!(
        bounded(s.take_one_time_prekey(&bob(2))).await.unwrap(),
        None
    );

    assert!(bounded(s.remove_device(&bob(1))).await.unwrap());
    assert!(!bounded(s.remove_device(&bob(1))).await.unwrap());
    assert_eq!(bounded(s.devices("bob")).await.unwrap(), vec![2]);
    assert_eq!(bounded(s.one_time_prekey_count(&bob(1))).await.unwrap(), 0);
    assert_eq!(bounded(s.signed_prekey(&bob(1))).await.unwrap(), None);
    assert_eq!(bounded(s.devices("alice")).await.unwrap(), vec![1]);
}

async fn one_time_prekey_is_handed_out_exactly_once<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let keys: Vec<OneTimePrekey> = (0..50)
        .map(|i| OneTimePrekey {
            id: i,
            public: [0; 32],
        })
        .collect();
    bounded(s.add_one_time_prekeys(&bob(1), keys))
        .await
        .unwrap();

    let tasks: Vec<_> = (0..80)
        .map(|_| {
            let store = Arc::clone(s);
            tokio::spawn(async move { store.take_one_time_prekey(&bob(1)).await })
        })
        .collect();
    let mut handed = Vec::new();
    for task in tasks {
        if let Some(key) = bounded(task).await.unwrap().unwrap() {
            handed.push(key.id);
        }
    }
    let distinct: HashSet<u32> = handed.iter().copied().collect();
    assert_eq!(handed.len(), 50);
    assert_eq!(distinct.len(), 50);
    assert_eq!(bounded(s.one_time_prekey_count(&bob(1))).await.unwrap(), 0);
}

async fn groups_track_members_and_version<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    let members = vec!["carol".to_owned(), "alice".to_owned()];
    assert_eq!(
        bounded(s.create_group("g", members.clone())).await.unwrap(),
        1
    );
    assert_eq!(
        bounded(s.create_group("g", members)).await,
        Err(StoreError::GroupExists)
    );
    assert_eq!(
        bounded(s.group("g")).await.unwrap(),
        Some(Group {
            members: vec!["alice".to_owned(), "carol".to_owned()],
            version: 1
        })
    );

    assert_eq!(
        bounded(s.change_group_members("g", vec![], vec!["bob".to_owned()]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        bounded(s.change_group_members("g", vec![], vec!["bob".to_owned()]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        bounded(s.change_group_members("g", vec!["carol".to_owned()], vec![]))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        bounded(s.change_group_members("g", vec!["zed".to_owned()], vec![]))
            .await
            .unwrap(),
        3
    );
    let group = bounded(s.group("g")).await.unwrap().unwrap();
    assert_eq!(group.members, vec!["alice".to_owned(), "bob".to_owned()]);
    assert_eq!(group.version, 3);

    // Out and in with one call: one commit, one version.
    assert_eq!(
        bounded(s.change_group_members(
            "g",
            vec!["alice".to_owned()],
            vec!["dave".to_owned(), "erin".to_owned()]
        ))
        .await
        .unwrap(),
        4
    );
    let group = bounded(s.group("g")).await.unwrap().unwrap();
    assert_eq!(
        group.members,
        vec!["bob".to_owned(), "dave".to_owned(), "erin".to_owned()]
    );
    assert_eq!(group.version, 4);

    assert_eq!(
        bounded(s.change_group_members("h", vec![], vec!["bob".to_owned()])).await,
        Err(StoreError::UnknownGroup)
    );
    assert_eq!(
        bounded(s.change_group_members("h", vec!["bob".to_owned()], vec![])).await,
        Err(StoreError::UnknownGroup)
    );
    assert_eq!(bounded(s.group("h")).await.unwrap(), None);
    // A group whose id is a prefix of another's does not see its members.
    bounded(s.create_group("g2", vec!["zoe".to_owned()]))
        .await
        .unwrap();
    assert_eq!(
        bounded(s.group("g")).await.unwrap().unwrap().members.len(),
        3
    );
}

async fn full_disk_refuses_writes_until_it_clears<S: Store>(f: Fixture<S>) {
    let s = &f.store;
    bounded(s.park(vec![frame(&alice(), &bob(1), 1)]))
        .await
        .unwrap();

    f.faults.set_disk_full(true);
    let refused = bounded(s.park(vec![frame(&alice(), &bob(1), 2)])).await;
    assert_eq!(refused, Err(StoreError::DiskFull));
    assert!(refused.unwrap_err().is_retryable());
    let refused = bounded(s.take_one_time_prekey(&bob(1))).await;
    assert_eq!(refused, Err(StoreError::DiskFull));

    f.faults.set_disk_full(false);
    let parked = bounded(s.park(vec![frame(&alice(), &bob(1), 2)]))
        .await
        .unwrap();
    assert!(
        !parked[0].is_duplicate(),
        "a refused frame must not count as seen"
    );
    let all = bounded(s.pending(&bob(1), 0, 10)).await.unwrap();
    let ids: Vec<u8> = all.iter().map(|f| f.frame.id.0[0]).collect();
    assert_eq!(ids, vec![1, 2]);
}

macro_rules! conformance {
    ($($name:ident $(($config:expr))?),* $(,)?) => {
        mod memory_mode {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(memory(|c| c $(.dedup_window($config))?)).await;
                }
            )*
        }
        mod fsync_mode {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(redb(|c| c $(.dedup_window($config))?)).await;
                }
            )*
        }
    };
}

conformance!(
    lists_parked_frames_in_arrival_order,
    remove_is_idempotent_and_names_the_sender,
    counts_frames_and_lists_recipients,
    resend_is_reported_as_duplicate,
    one_call_stores_every_copy_of_a_message,
    dedup_window_forgets_the_oldest_ids(4),
    resend_after_the_window_is_parked_again_and_removed_oldest_first(1),
    identity_binds_once,
    devices_and_prekeys_are_kept_per_device,
    one_time_prekey_is_handed_out_exactly_once,
    groups_track_members_and_version,
    full_disk_refuses_writes_until_it_clears,
);
