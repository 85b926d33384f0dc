//! Turns scheduled faults into actions on the server, the proxy, the disk
//! and the clients, and checks that supervisors restart what they should.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use supervisors::{Pid, TreeSnapshot, fault};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fleet::{Fleet, FleetShared, Member};
use super::proxy::{Direction, Fault, FaultProxy};
use super::report::{FaultCount, Restarts};
use super::schedule::{FaultKind, ScheduledFault};
use super::target::Target;

/// Root-level restarts allowed per minute by the server's root supervisor.
const ROOT_INTENSITY: usize = 10;
/// Root-level kills the injector allows itself per minute: fewer than the
/// intensity, so that the server never gives up because of the schedule.
const ROOT_BUDGET: usize = ROOT_INTENSITY - 3;
/// Longest wait for a supervisor to restart a killed child.
const RESTART_WAIT: Duration = Duration::from_secs(10);
/// How long a mailbox fault waits for an absent client's mailbox to start.
const MAILBOX_WAIT: Duration = Duration::from_secs(10);

/// What the injector counted.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) faults: BTreeMap<FaultKind, FaultCount>,
    pub(crate) restarts: Restarts,
    pub(crate) violations: Vec<String>,
    pub(crate) max_session_mailbox: usize,
    /// Supervisor restarts of server runs that ended (crashed).
    pub(crate) earlier_supervisor_restarts: u64,
}

/// Injects faults; shared by the scheduled loop and its undo tasks.
pub(crate) struct Injector {
    pub(crate) target: tokio::sync::Mutex<Target>,
    pub(crate) proxy: FaultProxy,
    pub(crate) server_addr: SocketAddr,
    pub(crate) members: Vec<Arc<Member>>,
    pub(crate) fleet: Arc<FleetShared>,
    pub(crate) tally: Mutex<Tally>,
    root_kills: Mutex<VecDeque<Instant>>,
    monkey_strikes: AtomicU64,
}

impl Injector {
    pub(crate) fn new(
        target: Target,
        proxy: FaultProxy,
        server_addr: SocketAddr,
        fleet: &Fleet,
    ) -> Self {
        Self {
            target: tokio::sync::Mutex::new(target),
            proxy,
            server_addr,
            members: fleet.members.clone(),
            fleet: Arc::clone(&fleet.shared),
            tally: Mutex::new(Tally::default()),
            root_kills: Mutex::new(VecDeque::new()),
            monkey_strikes: AtomicU64::new(0),
        }
    }

    /// Faults injected so far.
    pub(crate) fn faults_injected(&self) -> u64 {
        self.tally.lock().faults.values().map(|c| c.injected).sum()
    }

    /// Chaos-monkey strikes so far.
    pub(crate) fn monkey_strikes(&self) -> u64 {
        self.monkey_strikes.load(Ordering::Relaxed)
    }

    /// Records the chaos monkey's strikes so far.
    pub(crate) fn set_monkey_strikes(&self, strikes: u64) {
        self.monkey_strikes.store(strikes, Ordering::Relaxed);
    }

    /// Counts the scheduled faults.
    pub(crate) fn plan(&self, faults: &[ScheduledFault]) {
        let mut tally = self.tally.lock();
        for f in faults {
            tally.faults.entry(f.kind).or_default().scheduled += 1;
        }
    }

    /// Runs the schedule from `start`; lasting faults are undone by tasks
    /// left in `undo`.
    pub(crate) async fn run(
        self: Arc<Self>,
        faults: Vec<ScheduledFault>,
        start: Instant,
        undo: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) {
        for f in faults {
            tokio::time::sleep_until(start + f.at).await;
            let injected = self.inject(&f, &undo).await;
            let mut tally = self.tally.lock();
            let count = tally.faults.entry(f.kind).or_default();
            if injected {
                count.injected += 1;
            } else {
                count.skipped += 1;
            }
        }
    }

    /// Injects one fault; false when it was skipped.
    async fn inject(
        self: &Arc<Self>,
        f: &ScheduledFault,
        undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) -> bool {
        tracing::info!(kind = %f.kind, at_ms = f.at.as_millis() as u64, "chaos fault");
        match f.kind {
            FaultKind::KillLogic | FaultKind::PanicLogic => self.logic_fault(f, undo).await,
            FaultKind::KillSession => self.kill_child_of("sessions", f.target).await,
            FaultKind::KillMailbox => self.kill_mailbox(f, undo).await,
            FaultKind::KillStore => self.kill_root_child(&["store"], f.target).await,
            FaultKind::KillSubtree => {
                self.kill_root_child(&["sessions", "mailboxes"], f.target)
                    .await
            }
            FaultKind::NetDrop => self.net(f.target, |_| vec![Fault::Drop]),
            FaultKind::NetCut => self.net(f.target, |p| {
                vec![Fault::Cut {
                    direction: direction(p),
                    bytes: p % 300,
                }]
            }),
            FaultKind::NetFlip => self.net(f.target, |p| {
                vec![Fault::FlipBit {
                    direction: direction(p),
                    offset: (p >> 8) % 64,
                    bit: (p % 8) as u8,
                }]
            }),
            FaultKind::NetStall => {
                let fault = Fault::Stall {
                    direction: direction(f.param),
                };
                self.net_lasting(f, undo, fault).await
            }
            FaultKind::NetDelay => {
                let fault = Fault::Delay {
                    direction: direction(f.param),
                    per_chunk: Duration::from_millis(5 + f.param % 50),
                };
                self.net_lasting(f, undo, fault).await
            }
            FaultKind::ServerCrash => self.crash().await,
            FaultKind::DiskFull => self.disk_full(f.hold, undo).await,
            FaultKind::SlowConsumer | FaultKind::ClientOffline => self.client_fault(f, undo).await,
        }
    }

    async fn logic_fault(
        self: &Arc<Self>,
        f: &ScheduledFault,
        undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) -> bool {
        let target = self.target.lock().await;
        let (Some(handle), Some(node)) = (target.handle(), target.node()) else {
            return false;
        };
        let before = handle.logic_pids();
        let Some(victim) = pick(&before, f.target) else {
            return false;
        };
        let struck = if f.kind == FaultKind::KillLogic {
            fault::kill(&node, victim)
        } else {
            fault::panic_on_next_message(&node, victim)
        };
        if !struck {
            return false;
        }
        // The session restarts its logic: a new pid appears where the
        // victim was (unless the session itself went away meanwhile).
        let handle = handle.clone();
        let me = Arc::clone(self);
        undo.lock().await.spawn(async move {
            let deadline = Instant::now() + RESTART_WAIT;
            while Instant::now() < deadline {
                let now = handle.logic_pids();
                if !now.contains(&victim) {
                    if now.iter().any(|p| !before.contains(p)) {
                        me.tally.lock().restarts.logic += 1;
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        true
    }

    /// Kills a worker under the root's child `sup` (a dynamic supervisor).
    async fn kill_child_of(&self, sup: &str, pick_at: u64) -> bool {
        let target = self.target.lock().await;
        let (Some(tree), Some(node)) = (target.snapshot().await, target.node()) else {
            return false;
        };
        self.sample_mailboxes(&tree);
        let Some(sub) = child_tree(&tree, sup) else {
            return false;
        };
        let pids = sub.worker_pids();
        match pick(&pids, pick_at) {
            Some(victim) => fault::kill(&node, victim),
            None => false,
        }
    }

    /// Kills one of the root's children named in `ids` and waits until the
    /// root has restarted it.
    async fn kill_root_child(&self, ids: &[&str], pick_at: u64) -> bool {
        let target = self.target.lock().await;
        let (Some(handle), Some(node)) = (target.handle(), target.node()) else {
            return false;
        };
        {
            let mut kills = self.root_kills.lock();
            while kills
                .front()
                .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
            {
                kills.pop_front();
            }
            if kills.len() >= ROOT_BUDGET {
                return false;
            }
        }
        let Ok(tree) = handle.snapshot().await else {
            return false;
        };
        let id = ids[(pick_at % ids.len() as u64) as usize];
        let Some(victim) = tree
            .children
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.pid)
        else {
            return false;
        };
        if !fault::kill(&node, victim) {
            return false;
        }
        self.root_kills.lock().push_back(Instant::now());
        // The root must restart it: a new pid under the same id.
        let deadline = Instant::now() + RESTART_WAIT;
        loop {
            if let Ok(now) = handle.snapshot().await
                && now.restarts > tree.restarts
                && now
                    .children
                    .iter()
                    .any(|c| c.id == id && c.pid.is_some_and(|p| p != victim))
            {
                return true;
            }
            if Instant::now() >= deadline {
                self.tally
                    .lock()
                    .violations
                    .push(format!("{id} was not restarted after a kill"));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Applies faults to one proxied connection.
    fn net(&self, pick_at: u64, faults: impl FnOnce(u64) -> Vec<Fault>) -> bool {
        let connections = self.proxy.connections();
        if connections.is_empty() {
            return false;
        }
        let c = &connections[(pick_at % connections.len() as u64) as usize];
        for fault in faults(pick_at >> 16) {
            c.apply(fault);
        }
        true
    }

    /// Applies a fault to one connection and undoes it after `hold`.
    async fn net_lasting(
        &self,
        f: &ScheduledFault,
        undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
        fault: Fault,
    ) -> bool {
        let connections = self.proxy.connections();
        if connections.is_empty() {
            return false;
        }
        let c = connections[(f.target % connections.len() as u64) as usize].clone();
        let heal = match &fault {
            Fault::Stall { direction } => Fault::Resume {
                direction: *direction,
            },
            Fault::Delay { direction, .. } => Fault::Delay {
                direction: *direction,
                per_chunk: Duration::ZERO,
            },
            other => other.clone(),
        };
        c.apply(fault);
        let hold = f.hold;
        undo.lock().await.spawn(async move {
            tokio::time::sleep(hold).await;
            c.apply(heal);
        });
        true
    }

    /// Kill -9 and restart a child server.
    async fn crash(&self) -> bool {
        let mut target = self.target.lock().await;
        let supervisor = match target.snapshot().await {
            Some(tree) => total_restarts(&tree),
            None => 0,
        };
        match target.crash_and_restart(self.server_addr).await {
            Ok(true) => {
                let mut tally = self.tally.lock();
                tally.restarts.server += 1;
                tally.earlier_supervisor_restarts += supervisor;
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.tally
                    .lock()
                    .violations
                    .push(format!("server did not restart: {e}"));
                true
            }
        }
    }

    /// Fails every store write for `hold`.
    async fn disk_full(&self, hold: Duration, undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>) -> bool {
        let target = self.target.lock().await;
        let Some(disk) = target.disk().cloned() else {
            return false;
        };
        if disk.is_disk_full() {
            return false;
        }
        // Odd epoch: messages intended from now on must not be accepted
        // until the disk works again.
        self.fleet.disk_epoch.fetch_add(1, Ordering::SeqCst);
        disk.set_disk_full(true);
        let fleet = Arc::clone(&self.fleet);
        undo.lock().await.spawn(async move {
            tokio::time::sleep(hold).await;
            fleet.disk_epoch.fetch_add(1, Ordering::SeqCst);
            disk.set_disk_full(false);
        });
        true
    }

    /// Pauses a client's reading, or takes it offline, for `hold`.
    async fn client_fault(
        &self,
        f: &ScheduledFault,
        undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) -> bool {
        let Some(member) = self.claim_member(f.target) else {
            return false;
        };
        let hold = f.hold;
        let fleet = Arc::clone(&self.fleet);
        if f.kind == FaultKind::SlowConsumer {
            member.pause();
            undo.lock().await.spawn(async move {
                tokio::time::sleep(hold).await;
                member.resume();
                member.busy.store(false, Ordering::SeqCst);
            });
        } else {
            undo.lock().await.spawn(async move {
                member.stop().await;
                come_back(member, fleet, hold).await;
            });
        }
        true
    }

    /// Picks a connected client no other fault is using (`pick_at` modulo
    /// their number) and marks it busy.
    fn claim_member(&self, pick_at: u64) -> Option<Arc<Member>> {
        let candidates: Vec<&Arc<Member>> = self
            .members
            .iter()
            .filter(|m| m.is_up() && !m.busy.load(Ordering::SeqCst))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let member = Arc::clone(candidates[(pick_at % candidates.len() as u64) as usize]);
        member.busy.store(true, Ordering::SeqCst);
        Some(member)
    }

    /// Kills an offline mailbox process. A mailbox lives only while its
    /// device is away with frames parked, so when none exists one client is
    /// taken offline until the traffic of the others starts its mailbox;
    /// the client comes back a second later.
    async fn kill_mailbox(
        &self,
        f: &ScheduledFault,
        undo: &Arc<tokio::sync::Mutex<JoinSet<()>>>,
    ) -> bool {
        if self.kill_child_of("mailboxes", f.target).await {
            return true;
        }
        let Some(member) = self.claim_member(f.target) else {
            return false;
        };
        member.stop().await;
        // Frames for the absent client arrive at the traffic's pace; look
        // for its mailbox until a bound that only catches a silent run.
        let deadline = Instant::now() + MAILBOX_WAIT;
        let mut killed = false;
        while Instant::now() < deadline {
            if self.kill_child_of("mailboxes", f.target).await {
                killed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let fleet = Arc::clone(&self.fleet);
        undo.lock()
            .await
            .spawn(come_back(member, fleet, Duration::from_secs(1)));
        killed
    }

    /// Notes the longest session mailbox in `tree`.
    fn sample_mailboxes(&self, tree: &TreeSnapshot) {
        if let Some(sessions) = child_tree(tree, "sessions") {
            let longest = sessions
                .children
                .iter()
                .filter_map(|c| c.mailbox_len)
                .max()
                .unwrap_or(0);
            let mut tally = self.tally.lock();
            tally.max_session_mailbox = tally.max_session_mailbox.max(longest);
        }
    }

    /// Samples the server's session mailboxes (for the memory bound).
    pub(crate) async fn sample(&self) {
        let target = self.target.lock().await;
        if let Some(tree) = target.snapshot().await {
            self.sample_mailboxes(&tree);
        }
    }

    /// Whether message `id` is still parked for client `at`, in words.
    pub(crate) async fn parked(&self, at: usize, id: crate::protocol::MessageId) -> String {
        let target = self.target.lock().await;
        let Some(handle) = target.handle() else {
            return "parking unknown (child server)".into();
        };
        let Ok(user) = crate::protocol::UserName::new(super::fleet::user_of(at)) else {
            return "parking unknown".into();
        };
        let device = crate::protocol::DeviceId::new(user, 1);
        match handle.parked_ids(&device).await {
            Ok(ids) => match ids.iter().position(|p| *p == id) {
                Some(i) => format!("still parked on the server ({} of {})", i + 1, ids.len()),
                None => format!("not parked on the server ({} others are)", ids.len()),
            },
            Err(e) => format!("parking unknown ({e})"),
        }
    }

    /// Undoes every network fault on open and future connections.
    pub(crate) fn heal_network(&self) {
        self.proxy.clear_new_faults();
        for direction in Direction::BOTH {
            self.proxy.apply_to_open(&Fault::Resume { direction });
            self.proxy.apply_to_open(&Fault::Delay {
                direction,
                per_chunk: Duration::ZERO,
            });
        }
    }
}

/// The tree of the root's child `id`.
pub(crate) fn child_tree<'a>(tree: &'a TreeSnapshot, id: &str) -> Option<&'a TreeSnapshot> {
    tree.children
        .iter()
        .find(|c| c.id == id)
        .and_then(|c| c.tree.as_deref())
}

/// Restarts made by every supervisor of `tree`.
pub(crate) fn total_restarts(tree: &TreeSnapshot) -> u64 {
    tree.restarts
        + tree
            .children
            .iter()
            .filter_map(|c| c.tree.as_deref())
            .map(total_restarts)
            .sum::<u64>()
}

fn pick(pids: &[Pid], at: u64) -> Option<Pid> {
    if pids.is_empty() {
        return None;
    }
    let mut sorted = pids.to_vec();
    sorted.sort_unstable();
    Some(sorted[(at % sorted.len() as u64) as usize])
}

/// Brings a stopped client back after `after` and frees it for other
/// faults.
async fn come_back(member: Arc<Member>, fleet: Arc<FleetShared>, after: Duration) {
    tokio::time::sleep(after).await;
    if let Err(e) = member.start(&fleet).await {
        fleet.stopped.lock().push(e.to_string());
    }
    member.busy.store(false, Ordering::SeqCst);
}

fn direction(param: u64) -> Direction {
    if param.is_multiple_of(2) {
        Direction::ToClient
    } else {
        Direction::ToServer
    }
}
