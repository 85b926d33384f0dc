//! Random sequences of parks, removes and listings give the same answers from
//! the redb store and the memory store (sequence numbers aside: they only
//! have to grow).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use courier::store::{
    DeviceKey, MemoryStore, MessageId, ParkOutcome, ParkedFrame, RedbStore, Store, StoreConfig,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Park copies of message `id` from `sender` to each recipient device.
    Park {
        sender: u32,
        id: u8,
        recipients: Vec<u32>,
    },
    Remove {
        recipient: u32,
        sender: u32,
        id: u8,
    },
    Pending {
        recipient: u32,
        limit: usize,
    },
    Recipients,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u32, 0..6u8, prop::collection::vec(0..3u32, 1..4))
            .prop_map(|(sender, id, recipients)| Op::Park { sender, id, recipients }),
        3 => (0..3u32, 0..3u32, 0..6u8)
            .prop_map(|(recipient, sender, id)| Op::Remove { recipient, sender, id }),
        2 => (0..3u32, 1..5usize).prop_map(|(recipient, limit)| Op::Pending { recipient, limit }),
        1 => Just(Op::Recipients),
    ]
}

fn device(user: &str, n: u32) -> DeviceKey {
    DeviceKey::new(user, n)
}

/// An answer with the sequence numbers taken out.
#[derive(Debug, PartialEq)]
enum Answer {
    Parked(Vec<bool>),
    Removed(Option<DeviceKey>),
    Pending(Vec<ParkedFrame>),
    Recipients(Vec<DeviceKey>),
}

async fn run<S: Store>(store: &S, op: &Op) -> Answer {
    match op {
        Op::Park {
            sender,
            id,
            recipients,
        } => {
            let frames = recipients
                .iter()
                .map(|r| ParkedFrame {
                    recipient: device("bob", *r),
                    sender: device("alice", *sender),
                    id: MessageId([*id; 16]),
                    group: None,
                    body: Bytes::from(vec![*id, *sender as u8]),
                    sent_at_ms: u64::from(*id),
                })
                .collect();
            let outcomes = store.park(frames).await.unwrap();
            Answer::Parked(outcomes.iter().map(ParkOutcome::is_duplicate).collect())
        }
        Op::Remove {
            recipient,
            sender,
            id,
        } => {
            let removed = store
                .remove(
                    &device("bob", *recipient),
                    &device("alice", *sender),
                    MessageId([*id; 16]),
                )
                .await
                .unwrap();
            Answer::Removed(removed.map(|r| r.sender))
        }
        Op::Pending { recipient, limit } => {
            let frames = store
                .pending(&device("bob", *recipient), 0, *limit)
                .await
                .unwrap();
            assert!(frames.windows(2).all(|w| w[0].seq < w[1].seq));
            Answer::Pending(frames.into_iter().map(|f| f.frame).collect())
        }
        Op::Recipients => Answer::Recipients(store.recipients().await.unwrap()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn redb_store_answers_as_the_memory_store(
        ops in prop::collection::vec(op(), 1..40),
        window in 2..8usize,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let durable_config = StoreConfig::new(dir.path().join("db")).dedup_window(window);
        let memory = MemoryStore::new(&StoreConfig::memory().dedup_window(window));

        rt.block_on(async {
            let durable = RedbStore::open_spawned(&durable_config).unwrap();
            for (step, op) in ops.iter().enumerate() {
                let expected = run(&memory, op).await;
                let actual = run(&durable, op).await;
                prop_assert_eq!(actual, expected, "step {} ({:?})", step, op);
            }
            Ok(())
        })?;
    }
}
