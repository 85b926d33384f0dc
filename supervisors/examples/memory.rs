//! Resident memory per idle process: 100,000 idle processes under a
//! dynamic supervisor, next to 100,000 bare tokio tasks with a channel.
//!
//! Run one side per process so that neither reuses the other's memory:
//! `cargo run --release -p supervisors --example memory -- supervisors`
//! and `... -- floor`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use supervisors::{ChildCtx, Ctx, DynamicSpec, DynamicSupervisor, Node, Start};
use tokio::sync::mpsc;

const N: usize = 100_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let side = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "supervisors".to_owned());
    // Warm the runtime and allocator a little before the baseline.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = rss_bytes();
    let keep = match side.as_str() {
        "floor" => {
            let mut senders = Vec::with_capacity(N);
            for _ in 0..N {
                let (tx, mut rx) = mpsc::channel::<u64>(1024);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                senders.push(tx);
            }
            Box::new(senders) as Box<dyn std::any::Any>
        }
        _ => {
            let node = Node::new();
            let spec = DynamicSpec::new(|_: (), ctx: ChildCtx| async move {
                let addr = ctx.spawn(|mut c: Ctx<u64>| async move {
                    loop {
                        c.recv().await;
                    }
                });
                Ok(Start::from(addr))
            });
            let sup = DynamicSupervisor::start(&node, spec).unwrap();
            for _ in 0..N {
                sup.start_child(()).await.unwrap();
            }
            Box::new((node, sup)) as Box<dyn std::any::Any>
        }
    };
    // Let every task run once, so that each sits idle in its receive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes();
    let per = (after - before) as f64 / N as f64;
    println!(
        "{side}: {N} idle processes, {:.0} bytes ({:.2} KiB) each",
        per,
        per / 1024.0
    );
    drop(keep);
}
