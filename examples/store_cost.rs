//! CPU time per message of the durable store's online path.
//!
//! ```text
//! cargo run --release --example store_cost -- --messages 400000 --callers 1024
//! ```
//!
//! Each caller parks a frame for its own recipient and then removes it, as
//! a delivery ack would, until the messages are used up. The tool prints the
//! wall-clock rate and the CPU time of the whole process per message, which
//! moves much less than the rate when other work shares the machine.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use courier::store::{DeviceKey, MessageId, ParkedFrame, RedbStore, Store, StoreConfig};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Measures the redb store's park-then-remove path.
#[derive(Debug, Parser)]
struct Args {
    /// Messages in all.
    #[arg(long, default_value_t = 400_000)]
    messages: u64,
    /// Concurrent callers, each with its own recipient.
    #[arg(long, default_value_t = 1024)]
    callers: u64,
    /// Sealed body size in bytes.
    #[arg(long, default_value_t = 158)]
    body: usize,
}

/// User plus system CPU time of this process, in seconds (Linux).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse()?)
    };
    // utime and stime, in clock ticks of 1/100 s.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(courier::server::BLOCKING_THREADS)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(RedbStore::open_spawned(&StoreConfig::new(
            dir.path().join("store.redb"),
        ))?);
        let body = Bytes::from(vec![0xA5; args.body]);
        let per_caller = args.messages / args.callers.max(1);
        let (started, cpu_before) = (Instant::now(), cpu_seconds()?);
        let callers: Vec<_> = (0..args.callers)
            .map(|caller| {
                let store = Arc::clone(&store);
                let body = body.clone();
                let recipient = DeviceKey::new(format!("user{caller}"), 1);
                let sender = DeviceKey::new(format!("user{}", (caller + 1) % args.callers), 1);
                tokio::spawn(async move {
                    for n in 0..per_caller {
                        let mut id = [0; 16];
                        id[..8].copy_from_slice(&caller.to_be_bytes());
                        id[8..].copy_from_slice(&n.to_be_bytes());
                        let frame = ParkedFrame {
                            recipient: recipient.clone(),
                            sender: sender.clone(),
                            id: MessageId(id),
                            group: None,
                            body: body.clone(),
                            sent_at_ms: n,
                        };
                        store.park(vec![frame]).await?;
                        store.remove(&recipient, &sender, MessageId(id)).await?;
                    }
                    Ok::<_, courier::store::StoreError>(())
                })
            })
            .collect();
        for caller in callers {
            caller.await??;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds()? - cpu_before;
        let messages = per_caller * args.callers;
        println!(
            "{messages} messages from {} callers: {:.0} messages/s, {:.2} us of CPU per message, {} commits",
            args.callers,
            messages as f64 / wall,
            cpu * 1e6 / messages as f64,
            store.commit_count()
        );
        Ok(())
    })
}
