//! End-to-end message throughput through a server on loopback TLS: each
//! message is sent, accepted, delivered, acknowledged by the receiver and
//! receipted to the sender. Clients and server share the machine's cores.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub, dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use courier::protocol::{ClientFrame, DeliveryAck, SendDirect, ServerFrame};
use courier::server::Limits;
use courier::store::Durability;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use support::{TestClient, TestServer};

const PAIRS: usize = 100;
const PER_PAIR: usize = 100;
const BODY: usize = 200;

struct Pair {
    sender: TestClient,
    receiver: TestClient,
}

async fn setup(durability: Durability) -> (TestServer, Vec<Pair>) {
    let mut limits = Limits::default();
    limits.messages_per_second = 1_000_000;
    limits.burst = 1_000_000;
    limits.max_unauthenticated_per_address = 100_000;
    let server = TestServer::with(limits, durability).await;
    let mut pairs = Vec::with_capacity(PAIRS);
    for p in 0..PAIRS {
        let sender = server.client(&format!("s{p}"), 0).await;
        let receiver = server.client(&format!("r{p}"), 0).await;
        pairs.push(Pair { sender, receiver });
    }
    (server, pairs)
}

/// Runs one round: every pair moves `PER_PAIR` messages end to end.
async fn round(pairs: Vec<Pair>, round: u64) -> Vec<Pair> {
    let mut tasks = Vec::with_capacity(pairs.len());
    for pair in pairs {
        tasks.push(tokio::spawn(run_pair(pair, round)));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn run_pair(pair: Pair, round: u64) -> Pair {
    let Pair {
        mut sender,
        mut receiver,
    } = pair;
    let to = receiver.device();
    let recv_task = tokio::spawn(async move {
        let framed = &mut receiver.conn.framed;
        let mut got = 0;
        while got < PER_PAIR {
            let frame = framed.next().await.unwrap().unwrap();
            if let ServerFrame::Deliver(d) = frame {
                got += 1;
                let ack = ClientFrame::from(DeliveryAck {
                    from: d.from,
                    id: d.id,
                });
                if got % 16 == 0 || got == PER_PAIR {
                    framed.send(ack).await.unwrap();
                } else {
                    framed.feed(ack).await.unwrap();
                }
            }
        }
        receiver
    });
    let framed = &mut sender.conn.framed;
    for n in 0..PER_PAIR {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&round.to_be_bytes());
        id[8..16].copy_from_slice(&(n as u64).to_be_bytes());
        let frame = ClientFrame::from(SendDirect {
            id: courier::protocol::MessageId(id),
            to: to.clone(),
            body: Bytes::from(vec![0xab; BODY]),
        });
        framed.feed(frame).await.unwrap();
    }
    SinkExt::<ClientFrame>::flush(framed).await.unwrap();
    let (mut accepted, mut delivered) = (0, 0);
    while accepted < PER_PAIR || delivered < PER_PAIR {
        match framed.next().await.unwrap().unwrap() {
            ServerFrame::Accepted(_) => accepted += 1,
            ServerFrame::Delivered(_) => delivered += 1,
            ServerFrame::Error(e) => panic!("{e:?}"),
            _ => {}
        }
    }
    let receiver = recv_task.await.unwrap();
    Pair { sender, receiver }
}

fn bench(c: &mut Criterion, name: &str, durability: Durability) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, pairs) = rt.block_on(setup(durability));
    let mut pairs = Some(pairs);
    let mut counter = 0u64;
    let mut group = c.benchmark_group("server");
    group.throughput(Throughput::Elements((PAIRS * PER_PAIR) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                counter += 1;
                let start = Instant::now();
                let p = pairs.take().unwrap();
                pairs = Some(rt.block_on(round(p, counter)));
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
    rt.block_on(server.handle.shutdown());
}

fn end_to_end(c: &mut Criterion) {
    bench(c, "e2e_100_pairs_memory", Durability::Memory);
    bench(c, "e2e_100_pairs_fsync", Durability::Fsync);
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
