//! 10,000 restarts of one child within one restart window: median latency
//! from panic to the restarted child answering, for the first 1,000 and
//! the last 1,000 restarts, next to a bare tokio respawn loop.
//!
//! `cargo run --release -p supervisors --example restart_storm`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use supervisors::{
    ChildCtx, ChildSpec, Ctx, Node, ReplyTo, Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::sync::{mpsc, oneshot};

const RESTARTS: usize = 10_000;

enum Job {
    Crash,
    Ask(ReplyTo<()>),
}

enum FloorJob {
    Crash,
    Ask(oneshot::Sender<()>),
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn report(side: &str, lat: Vec<Duration>) {
    let first = median(lat[..1000].to_vec());
    let last = median(lat[lat.len() - 1000..].to_vec());
    println!(
        "{side}: median first 1000 = {:.1} us, last 1000 = {:.1} us, all = {:.1} us",
        first.as_secs_f64() * 1e6,
        last.as_secs_f64() * 1e6,
        median(lat).as_secs_f64() * 1e6
    );
}

async fn supervisors_side() -> Vec<Duration> {
    let node = Node::new();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let child = ChildSpec::new("w", move |ctx: ChildCtx| {
        let ready_tx = ready_tx.clone();
        async move {
            let addr = ctx.spawn(|mut c: Ctx<Job>| async move {
                loop {
                    match c.recv_msg().await {
                        Job::Crash => panic!("crash"),
                        Job::Ask(r) => {
                            let _ = r.send(());
                        }
                    }
                }
            });
            let _ = ready_tx.send(addr.clone());
            Ok(Start::from(addr))
        }
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(RESTARTS as u32 + 1, Duration::from_secs(3600))
        .child(child);
    let sup = Supervisor::start(&node, spec).await.unwrap();
    let mut current = ready_rx.recv().await.unwrap();
    let mut lat = Vec::with_capacity(RESTARTS);
    for _ in 0..RESTARTS {
        let t0 = Instant::now();
        current.send(Job::Crash).await.unwrap();
        current = ready_rx.recv().await.unwrap();
        current
            .call(Job::Ask, Duration::from_secs(10))
            .await
            .unwrap();
        lat.push(t0.elapsed());
    }
    assert!(sup.is_alive());
    sup.shutdown().await;
    lat
}

async fn floor_side() -> Vec<Duration> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let keeper = tokio::spawn(async move {
        loop {
            let (tx, mut rx) = mpsc::channel::<FloorJob>(1024);
            let task = tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    match job {
                        FloorJob::Crash => panic!("crash"),
                        FloorJob::Ask(r) => {
                            let _ = r.send(());
                        }
                    }
                }
            });
            if ready_tx.send(tx).is_err() {
                return;
            }
            let _ = task.await;
        }
    });
    let mut current: mpsc::Sender<FloorJob> = ready_rx.recv().await.unwrap();
    let mut lat = Vec::with_capacity(RESTARTS);
    for _ in 0..RESTARTS {
        let t0 = Instant::now();
        current.send(FloorJob::Crash).await.unwrap();
        current = ready_rx.recv().await.unwrap();
        let (tx, rx) = oneshot::channel();
        current.send(FloorJob::Ask(tx)).await.unwrap();
        rx.await.unwrap();
        lat.push(t0.elapsed());
    }
    keeper.abort();
    lat
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    for round in 0..3 {
        println!("round {round}");
        report("floor", floor_side().await);
        report("supervisors", supervisors_side().await);
    }
}
