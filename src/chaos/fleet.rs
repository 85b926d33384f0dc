//! The clients of a scenario: real `courier::client` instances sending
//! sealed messages to each other at a rate, and the tasks that feed what
//! they report into the ledger.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ChaosError;
use super::ledger::Ledger;
use super::schedule::SplitMix;
use crate::client::{Client, ClientConfig, Content, Event, Events, Trust};
use crate::protocol::{MessageId, UserName};
use crate::tls::CertFingerprint;

/// Events a client may hold before it stops reading from the server: small,
/// so that a paused consumer backs up into the server quickly.
const EVENT_CAPACITY: usize = 16;

/// State every client task shares.
pub(crate) struct FleetShared {
    pub(crate) ledger: Mutex<Ledger>,
    /// Bumped on every ledger change.
    pub(crate) changed: watch::Sender<u64>,
    /// Odd while the disk is failing; bumped at each change.
    pub(crate) disk_epoch: AtomicU64,
    /// Messages intended while the disk failed, by id, with that epoch.
    pub(crate) disk_window: Mutex<std::collections::HashMap<MessageId, u64>>,
    pub(crate) accepted_while_disk_full: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) stopped: Mutex<Vec<String>>,
    pub(crate) stop_traffic: AtomicBool,
}

impl FleetShared {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn with_ledger(&self, f: impl FnOnce(&mut Ledger)) {
        f(&mut self.ledger.lock());
        self.bump();
    }
}

/// One client slot.
pub(crate) struct Member {
    pub(crate) index: usize,
    config: ClientConfig,
    client: Mutex<Option<Client>>,
    events_task: Mutex<Option<JoinHandle<()>>>,
    /// True while the client's events are not taken (a slow consumer).
    paused: watch::Sender<bool>,
    /// A lasting client fault is on this member.
    pub(crate) busy: AtomicBool,
    peers: Vec<usize>,
    /// Duplicates dropped by earlier clients of this slot.
    dups: AtomicU64,
}

/// The clients of a run.
pub(crate) struct Fleet {
    pub(crate) members: Vec<Arc<Member>>,
    pub(crate) shared: Arc<FleetShared>,
    traffic: Vec<JoinHandle<()>>,
}

/// The user name of client `i`.
pub(crate) fn user_of(i: usize) -> String {
    format!("c{i}")
}

fn index_of(user: &UserName) -> Option<usize> {
    user.as_str().strip_prefix('c')?.parse().ok()
}

impl Fleet {
    /// Connects `count` clients through `addr`, each with its own state
    /// directory under `dir`.
    pub(crate) async fn connect(
        count: usize,
        addr: SocketAddr,
        pin: CertFingerprint,
        dir: &Path,
        seed: u64,
    ) -> Result<Self, ChaosError> {
        let shared = Arc::new(FleetShared {
            ledger: Mutex::new(Ledger::default()),
            changed: watch::Sender::new(0),
            disk_epoch: AtomicU64::new(0),
            disk_window: Mutex::new(Default::default()),
            accepted_while_disk_full: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stopped: Mutex::new(Vec::new()),
            stop_traffic: AtomicBool::new(false),
        });
        let mut rng = SplitMix::new(seed ^ 0x00C1_1E17);
        let mut members = Vec::with_capacity(count);
        for index in 0..count {
            let user =
                UserName::new(user_of(index)).map_err(|e| ChaosError::Client(e.to_string()))?;
            let mut config = ClientConfig::new(
                addr.to_string(),
                Trust::Pinned(pin),
                user,
                1,
                dir.join(user_of(index)),
            )
            .with_reconnect(Duration::from_millis(50), Duration::from_millis(500))
            .with_connect_timeout(Duration::from_secs(5))
            .with_prekeys(8, 2)
            .with_send_window(1)
            .with_sync_own_devices(false);
            config.event_capacity = EVENT_CAPACITY;
            members.push(Arc::new(Member {
                index,
                config,
                client: Mutex::new(None),
                events_task: Mutex::new(None),
                paused: watch::Sender::new(false),
                busy: AtomicBool::new(false),
                peers: pick_peers(index, count, &mut rng),
                dups: AtomicU64::new(0),
            }));
        }
        // Connect a few at a time: each first connection uploads prekeys.
        let fleet = Self {
            members,
            shared,
            traffic: Vec::new(),
        };
        for chunk in fleet.members.chunks(16) {
            let mut joins = Vec::new();
            for member in chunk {
                let member = Arc::clone(member);
                let shared = Arc::clone(&fleet.shared);
                joins.push(tokio::spawn(async move { member.start(&shared).await }));
            }
            for join in joins {
                join.await
                    .map_err(|e| ChaosError::Client(e.to_string()))??;
            }
        }
        Ok(fleet)
    }

    /// Starts every client's traffic: `rate` messages a second each.
    pub(crate) fn start_traffic(&mut self, rate: f64, seed: u64) {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        for member in &self.members {
            let member = Arc::clone(member);
            let shared = Arc::clone(&self.shared);
            let seed = seed ^ (member.index as u64).wrapping_mul(0x9E37_79B9);
            self.traffic
                .push(tokio::spawn(traffic(member, shared, period, seed)));
        }
    }

    /// Stops the traffic and waits for every send in progress.
    pub(crate) async fn stop_traffic(&mut self) {
        self.shared.stop_traffic.store(true, Ordering::SeqCst);
        for task in self.traffic.drain(..) {
            let _ = task.await;
        }
    }

    /// Lets every paused client read again and reconnects every client that
    /// was taken offline.
    pub(crate) async fn heal(&self) -> Result<(), ChaosError> {
        for member in &self.members {
            member.resume();
            if member.client.lock().is_none() {
                member.start(&self.shared).await?;
            }
        }
        Ok(())
    }

    /// Duplicate deliveries the clients dropped.
    pub(crate) fn duplicates_dropped(&self) -> u64 {
        self.members
            .iter()
            .map(|m| {
                let now = m
                    .client
                    .lock()
                    .as_ref()
                    .map_or(0, |c| c.stats().duplicates_dropped);
                m.dups.load(Ordering::Relaxed) + now
            })
            .sum()
    }

    /// Whether client `at` has message `id` from client `from` in its
    /// history (stored, whether or not it was reported).
    pub(crate) fn stored(&self, at: usize, from: usize, id: MessageId) -> bool {
        let Some(member) = self.members.get(at) else {
            return false;
        };
        let Some(client) = member.client.lock().clone() else {
            return false;
        };
        let Ok(user) = UserName::new(user_of(from)) else {
            return false;
        };
        client
            .history(&crate::protocol::Conversation::Direct(user))
            .is_ok_and(|h| h.iter().any(|m| m.id == id))
    }

    /// Closes every client and waits for their event tasks.
    pub(crate) async fn close(&self) {
        for member in &self.members {
            member.stop().await;
        }
    }
}

impl Member {
    /// Connects the client and starts taking its events.
    pub(crate) async fn start(
        self: &Arc<Self>,
        shared: &Arc<FleetShared>,
    ) -> Result<(), ChaosError> {
        let mut last = String::new();
        // The server may be restarting: try for a while.
        for _ in 0..200 {
            match Client::connect(self.config.clone()).await {
                Ok((client, events)) => {
                    let task =
                        tokio::spawn(take_events(Arc::clone(self), Arc::clone(shared), events));
                    *self.client.lock() = Some(client);
                    *self.events_task.lock() = Some(task);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ChaosError::Client(format!(
            "client {} cannot connect: {last}",
            self.index
        )))
    }

    /// Closes the client (its outbox stays in its store) and waits for its
    /// event task.
    pub(crate) async fn stop(&self) {
        self.resume();
        let client = self.client.lock().take();
        if let Some(client) = client {
            self.dups
                .fetch_add(client.stats().duplicates_dropped, Ordering::Relaxed);
            client.close().await;
        }
        let task = self.events_task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops taking events: the client backs up and stops reading.
    pub(crate) fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Takes events again.
    pub(crate) fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Whether a client is connected in this slot.
    pub(crate) fn is_up(&self) -> bool {
        self.client.lock().is_some()
    }
}

/// Picks up to three distinct peers other than `me`.
fn pick_peers(me: usize, count: usize, rng: &mut SplitMix) -> Vec<usize> {
    let mut others: Vec<usize> = (0..count).filter(|&i| i != me).collect();
    for i in (1..others.len()).rev() {
        let j = rng.below(i + 1);
        others.swap(i, j);
    }
    others.truncate(3);
    others
}

/// Sends to the member's peers every `period` until told to stop.
async fn traffic(member: Arc<Member>, shared: Arc<FleetShared>, period: Duration, seed: u64) {
    if member.peers.is_empty() {
        return;
    }
    let mut rng = SplitMix::new(seed);
    // Spread the clients' first sends over one period.
    let start = Instant::now() + period.mul_f64(rng.next_f64());
    let mut ticker = tokio::time::interval_at(start, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    let mut ids = SplitMix::new(seed ^ 0x1D5);
    loop {
        ticker.tick().await;
        if shared.stop_traffic.load(Ordering::SeqCst) {
            return;
        }
        let client = member.client.lock().clone();
        let Some(client) = client else {
            continue; // offline for now
        };
        let peer = member.peers[rng.below(member.peers.len())];
        let Ok(to) = UserName::new(user_of(peer)) else {
            continue;
        };
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&ids.next_u64().to_be_bytes());
        raw[8..].copy_from_slice(&ids.next_u64().to_be_bytes());
        let id = MessageId(raw);
        let epoch = shared.disk_epoch.load(Ordering::SeqCst);
        shared.with_ledger(|l| l.intend(id, member.index, peer, n));
        if epoch % 2 == 1 {
            shared.disk_window.lock().insert(id, epoch);
        }
        let text = format!("chaos {} {n}", member.index);
        let ok = client
            .send_with_id(&to, id, Content::text(text))
            .await
            .is_ok();
        shared.with_ledger(|l| l.queued(id, ok));
        n += 1;
    }
}

/// Feeds a client's events into the ledger.
async fn take_events(member: Arc<Member>, shared: Arc<FleetShared>, mut events: Events) {
    let mut paused = member.paused.subscribe();
    loop {
        // A paused member takes nothing: its client backs up.
        let _ = paused.wait_for(|p| !*p).await;
        let Some(event) = events.next().await else {
            return;
        };
        on_event(&member, &shared, event);
    }
}

fn on_event(member: &Member, shared: &FleetShared, event: Event) {
    match event {
        Event::Connected => {
            shared.connections.fetch_add(1, Ordering::Relaxed);
        }
        Event::Accepted { id } => {
            let window = shared.disk_window.lock().get(&id).copied();
            if let Some(epoch) = window
                && shared.disk_epoch.load(Ordering::SeqCst) == epoch
            {
                shared
                    .accepted_while_disk_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            shared.with_ledger(|l| l.accepted(id));
        }
        Event::SendFailed { id, error } => {
            tracing::debug!(%id, %error, "chaos send refused");
            shared.with_ledger(|l| l.refused(id));
        }
        Event::Delivered { id, .. } => shared.with_ledger(|l| l.receipt(id)),
        Event::Message {
            from, id, content, ..
        } => {
            let sender = index_of(&from.user);
            let n = match &content {
                Content::Text(t) => t
                    .strip_prefix("chaos ")
                    .and_then(|rest| rest.split_once(' '))
                    .and_then(|(_, n)| n.parse().ok()),
                _ => None,
            };
            match sender {
                Some(sender) => {
                    shared.with_ledger(|l| l.delivered(id, sender, member.index, n));
                }
                None => shared.with_ledger(|l| l.delivered(id, usize::MAX, member.index, n)),
            }
        }
        Event::Undecryptable { from, id, error } => {
            shared.stopped.lock().push(format!(
                "client {} could not open {id} from {from}: {error}",
                member.index
            ));
            shared.bump();
        }
        Event::Stopped { error } => {
            shared
                .stopped
                .lock()
                .push(format!("client {} stopped: {error}", member.index));
            shared.bump();
        }
        _ => {}
    }
}
