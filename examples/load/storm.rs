//! `storm`: N clients connect at once; each sends messages to the next
//! client in a ring and gets them accepted, nobody acks; then every client
//! drops its connection at the same moment and all reconnect at once. The
//! storm has settled when every client is back, has received every message
//! meant for it (drained from its offline mailbox), acked it, and holds the
//! delivered receipt of every message it sent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use courier::protocol::{DeliveryAck, DeviceId, MessageId, SendDirect, ServerFrame};
use courier::tls::ClientTls;

use crate::Target;
use crate::conn::{self, Conn, Identity};
use crate::report;

/// Arguments of `storm`.
#[derive(Debug, clap::Args)]
pub(crate) struct StormArgs {
    /// Clients in the storm.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Messages each client sends to the next before the storm.
    #[arg(long, default_value_t = 2)]
    messages: usize,
    /// Handshakes in flight at once (default: every client at once).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Reconnect with full handshakes instead of resuming TLS sessions.
    #[arg(long)]
    no_resume: bool,
    /// Seconds the reconnect may take before it counts as not settled.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// What one client saw after reconnecting.
struct Back {
    authenticated: Duration,
    settled: Option<Duration>,
    missing: usize,
    receipts_missing: usize,
    duplicates: usize,
    resumed: bool,
    _conn: Conn,
}

/// Runs `storm`.
pub(crate) async fn run(target: &Target, args: StormArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients >= 2, "--clients must be at least 2");
    let n = args.clients;
    let concurrency = args.concurrency.unwrap_or(n);
    println!(
        "storm: {n} clients, {} messages each to the next in a ring, {concurrency} handshakes \
         at once, reconnect {}",
        args.messages,
        if args.no_resume {
            "with full handshakes"
        } else {
            "resuming TLS sessions (each client keeps its own ticket)"
        }
    );
    let ids = conn::identities("c", n)?;
    let tls: Arc<Vec<ClientTls>> = Arc::new(
        (0..n)
            .map(|_| conn::client_tls(target.pin, !args.no_resume))
            .collect(),
    );

    let bar = report::bar(n as u64, "connect");
    let started = Instant::now();
    let conns = conn::open_all(
        target.addr,
        |i| tls[i].clone(),
        &ids,
        concurrency,
        || bar.inc(1),
    )
    .await
    .context("first connect")?;
    let first = started.elapsed();
    bar.finish_and_clear();
    println!(
        "connect: {n} sessions authenticated in {:.2} s = {:.0} sessions/s",
        first.as_secs_f64(),
        n as f64 / first.as_secs_f64()
    );

    let bar = report::bar(n as u64, "send");
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let to = ids[(i + 1) % n].device.clone();
        set.spawn(send_all(c, i, to, args.messages));
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        conns.push(joined.context("send task")??);
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "sent and accepted: {} messages, none acked",
        n * args.messages
    );

    // Everyone drops at once, and comes straight back.
    drop(conns);
    let bar = report::bar(n as u64, "reconnect");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let ctx = Return {
            addr: target.addr,
            tls: tls[i].clone(),
            id: Arc::clone(&ids[i]),
            from: ids[(i + n - 1) % n].device.clone(),
            messages: args.messages,
            started,
            deadline,
            permits: Arc::clone(&permits),
        };
        set.spawn(ctx.run());
    }
    let mut back = Vec::with_capacity(n);
    let mut failed = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.context("reconnect task")? {
            Ok(b) => back.push(b),
            Err(e) => failed.push(e.to_string()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    report_storm(n, args.messages, &back, &failed);
    Ok(())
}

fn report_storm(n: usize, messages: usize, back: &[Back], failed: &[String]) {
    let authenticated = back
        .iter()
        .map(|b| b.authenticated)
        .max()
        .unwrap_or_default();
    let settled: Vec<Duration> = back.iter().filter_map(|b| b.settled).collect();
    let all_settled = settled.len() == n;
    let settle = settled.iter().max().copied().unwrap_or_default();
    let missing: usize = back.iter().map(|b| b.missing).sum();
    let receipts_missing: usize = back.iter().map(|b| b.receipts_missing).sum();
    let duplicates: usize = back.iter().map(|b| b.duplicates).sum();
    let resumed = back.iter().filter(|b| b.resumed).count();
    println!(
        "reconnect: {} of {n} authenticated again within {:.2} s ({:.0} sessions/s), {resumed} \
         resumed TLS sessions",
        back.len(),
        authenticated.as_secs_f64(),
        back.len() as f64 / authenticated.as_secs_f64().max(1e-9)
    );
    if all_settled {
        println!(
            "settled: every client back with every message and receipt after {:.2} s",
            settle.as_secs_f64()
        );
    } else {
        println!(
            "NOT settled: {} of {n} clients complete (last at {:.2} s)",
            settled.len(),
            settle.as_secs_f64()
        );
    }
    println!(
        "lost: {missing} of {} messages not delivered, {receipts_missing} receipts missing; \
         {duplicates} duplicate deliveries; {} clients failed",
        n * messages,
        failed.len()
    );
    if let Some(first) = failed.first() {
        println!("first failure: {first}");
    }
    println!("load average now {}", report::load_average());
}

/// The id of message `k` of client `i`.
fn storm_id(i: usize, k: usize) -> MessageId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id[8..].copy_from_slice(&(k as u64).to_be_bytes());
    MessageId(id)
}

/// Sends `messages` to `to` and waits until all are accepted.
async fn send_all(mut c: Conn, i: usize, to: DeviceId, messages: usize) -> anyhow::Result<Conn> {
    let body = bytes::Bytes::from(vec![0x5a; report::sealed_len()]);
    for k in 0..messages {
        let frame = SendDirect {
            id: storm_id(i, k),
            to: to.clone(),
            body: body.clone(),
        };
        c.queue(&frame.into())?;
    }
    c.flush().await?;
    let mut accepted = 0;
    while accepted < messages {
        match tokio::time::timeout(conn::CONNECT_TIMEOUT, c.recv())
            .await
            .context("waiting for Accepted")??
        {
            ServerFrame::Accepted(_) => accepted += 1,
            ServerFrame::Error(e) => anyhow::bail!("send refused: {} {}", e.code, e.text),
            _ => {}
        }
    }
    Ok(c)
}

/// One client coming back after the drop.
struct Return {
    addr: std::net::SocketAddr,
    tls: ClientTls,
    id: Arc<Identity>,
    from: DeviceId,
    messages: usize,
    started: Instant,
    deadline: Instant,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Return {
    async fn run(self) -> anyhow::Result<Back> {
        let permit = self.permits.acquire().await.context("permits")?;
        let mut c = Conn::connect(self.addr, &self.tls, &self.id).await?;
        drop(permit);
        let authenticated = self.started.elapsed();
        let mut got = HashSet::new();
        let mut receipts = HashSet::new();
        let mut duplicates = 0;
        let deadline = tokio::time::Instant::from_std(self.deadline);
        while got.len() < self.messages || receipts.len() < self.messages {
            let frame = match tokio::time::timeout_at(deadline, c.recv()).await {
                Ok(f) => f?,
                Err(_) => break,
            };
            match frame {
                ServerFrame::Deliver(d) => {
                    if d.from == self.from && !got.insert(d.id) {
                        duplicates += 1;
                    }
                    c.queue(
                        &DeliveryAck {
                            from: d.from,
                            id: d.id,
                        }
                        .into(),
                    )?;
                    c.flush().await?;
                }
                ServerFrame::Delivered(r) => {
                    receipts.insert(r.id);
                }
                ServerFrame::Error(e) => anyhow::bail!("error frame: {} {}", e.code, e.text),
                _ => {}
            }
        }
        let complete = got.len() == self.messages && receipts.len() == self.messages;
        let settled = complete.then(|| self.started.elapsed());
        Ok(Back {
            authenticated,
            settled,
            missing: self.messages - got.len().min(self.messages),
            receipts_missing: self.messages - receipts.len().min(self.messages),
            duplicates,
            resumed: c.resumed,
            _conn: c,
        })
    }
}
