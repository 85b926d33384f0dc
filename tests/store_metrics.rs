//! The writer reports each batch's size as `courier_store_batch_frames`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier::store::{DeviceKey, MessageId, ParkedFrame, RedbStore, Store, StoreConfig};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::Mutex;

/// Keeps every value recorded into `courier_store_batch_frames`.
#[derive(Default)]
struct BatchSizes(Mutex<Vec<f64>>);

impl HistogramFn for BatchSizes {
    fn record(&self, value: f64) {
        self.0.lock().push(value);
    }
}

struct Capture(Arc<BatchSizes>);

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == "courier_store_batch_frames" {
            Histogram::from_arc(Arc::clone(&self.0))
        } else {
            Histogram::noop()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_sizes_are_reported_per_commit() {
    let sizes = Arc::new(BatchSizes::default());
    metrics::set_global_recorder(Capture(Arc::clone(&sizes))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = RedbStore::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let parks: Vec<_> = (0..10u8)
        .map(|n| {
            let store = store.clone();
            let frames = (0..3)
                .map(|device| ParkedFrame {
                    recipient: DeviceKey::new("bob", device),
                    sender: DeviceKey::new("alice", 1),
                    id: MessageId([n; 16]),
                    group: None,
                    body: Bytes::from_static(b"sealed"),
                    sent_at_ms: 0,
                })
                .collect();
            tokio::spawn(async move { store.park(frames).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.queue_len() < 10 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();

    tokio::spawn(writer.run());
    for park in parks {
        park.await.unwrap().unwrap();
    }
    assert_eq!(*sizes.0.lock(), vec![30.0]);
}
