//! A scenario: a real server, clients sending through the fault proxy, a
//! seeded fault schedule, and the invariant check at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ChaosError;
use super::fleet::Fleet;
use super::inject::{Injector, child_tree, total_restarts};
use super::proxy::FaultProxy;
use super::report::{Latency, Report, ServerFigures};
use super::schedule::{FaultKind, Schedule};
use super::target::{ServerMode, Target, rss_kib};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Clients are connecting.
    Connecting,
    /// Traffic and faults.
    Traffic,
    /// Faults stopped; waiting for every message to settle.
    Settling,
    /// Clients left; checking the server.
    Checking,
}

/// A progress sample, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Time in the traffic phase so far.
    pub elapsed: Duration,
    /// Length of the traffic phase.
    pub duration: Duration,
    /// Messages handed to clients.
    pub sent: u64,
    /// Messages queued but neither acknowledged nor refused yet.
    pub open: u64,
    /// Acknowledged messages not delivered yet.
    pub undelivered: u64,
    /// Faults injected so far.
    pub faults: u64,
}

/// A chaos scenario; build it, then [`run`](Scenario::run) it.
#[derive(Debug, Clone)]
pub struct Scenario {
    name: String,
    seed: u64,
    clients: usize,
    duration: Duration,
    rate: f64,
    faults: Vec<FaultKind>,
    fault_rate: f64,
    monkey: Option<(f64, u64)>,
    server: ServerMode,
    settle_timeout: Duration,
    data_dir: Option<PathBuf>,
}

impl Scenario {
    /// A scenario with 4 in-process clients sending 2 messages a second
    /// each for 5 seconds, no faults, settling within 60 seconds.
    pub fn new(name: impl Into<String>, seed: u64) -> Self {
        Self {
            name: name.into(),
            seed,
            clients: 4,
            duration: Duration::from_secs(5),
            rate: 2.0,
            faults: Vec::new(),
            fault_rate: 1.0,
            monkey: None,
            server: ServerMode::InProcess,
            settle_timeout: Duration::from_secs(60),
            data_dir: None,
        }
    }

    /// Sets the number of clients (at least 2).
    pub fn clients(mut self, clients: usize) -> Self {
        self.clients = clients.max(2);
        self
    }

    /// Sets the length of the traffic and fault phase.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Sets the messages per second each client sends.
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = per_second;
        self
    }

    /// Sets the fault kinds the schedule draws from, and their rate (faults
    /// per second over the whole run).
    pub fn faults(mut self, kinds: &[FaultKind], per_second: f64) -> Self {
        self.faults = kinds.to_vec();
        self.fault_rate = per_second;
        self
    }

    /// Adds a chaos monkey killing session processes at `per_second`, at
    /// most `max_strikes` times.
    pub fn monkey(mut self, per_second: f64, max_strikes: u64) -> Self {
        self.monkey = Some((per_second, max_strikes));
        self
    }

    /// Sets where the server runs.
    pub fn server(mut self, mode: ServerMode) -> Self {
        self.server = mode;
        self
    }

    /// Sets how long the run waits for every message to settle after the
    /// faults stop before it reports the rest as lost (this only catches
    /// hangs: settling is awaited, not timed).
    pub fn settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// Keeps the server's and clients' data under `dir` instead of a
    /// temporary directory removed at the end.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The fault schedule this scenario runs (a function of its seed).
    pub fn schedule(&self) -> Schedule {
        Schedule::generate(self.seed, &self.faults, self.duration, self.fault_rate)
    }

    /// Runs the scenario and checks the delivery contract.
    ///
    /// # Errors
    ///
    /// [`ChaosError`] when the run could not be set up (the server, the
    /// proxy or a client did not start). Broken invariants are not errors:
    /// they are in [`Report::violations`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled run leaves its server and clients to
    /// the runtime.
    pub async fn run(self) -> Result<Report, ChaosError> {
        self.run_with(|_| {}).await
    }

    /// Runs the scenario, calling `progress` a few times a second.
    ///
    /// # Errors
    ///
    /// As [`run`](Scenario::run).
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Scenario::run).
    pub async fn run_with(
        self,
        mut progress: impl FnMut(&Progress) + Send,
    ) -> Result<Report, ChaosError> {
        let (root, temporary) = match &self.data_dir {
            Some(dir) => (dir.clone(), false),
            None => (temp_root(&self.name, self.seed), true),
        };
        let result = self.run_in(&root, &mut progress).await;
        if temporary {
            let _ = std::fs::remove_dir_all(&root);
        }
        result
    }

    async fn run_in(
        &self,
        root: &std::path::Path,
        progress: &mut (impl FnMut(&Progress) + Send),
    ) -> Result<Report, ChaosError> {
        let io = |e: std::io::Error| ChaosError::Io(e.to_string());
        std::fs::create_dir_all(root.join("server")).map_err(io)?;
        std::fs::create_dir_all(root.join("clients")).map_err(io)?;
        let (target, server_addr, pin) = Target::start(&self.server, &root.join("server")).await?;
        let in_process = target.handle().is_some();
        let mut figures = ServerFigures {
            processes_baseline: target.snapshot().await.map_or(0, |t| t.process_count()),
            rss_baseline_kib: rss_kib(target.os_pid()).unwrap_or(0),
            in_process,
            ..ServerFigures::default()
        };
        let proxy = FaultProxy::start(server_addr)
            .await
            .map_err(|e| ChaosError::Proxy(e.to_string()))?;
        progress(&self.progress(Phase::Connecting, Duration::ZERO, None, 0));
        let mut fleet = Fleet::connect(
            self.clients,
            proxy.local_addr(),
            pin,
            &root.join("clients"),
            self.seed,
        )
        .await?;
        let injector = Arc::new(Injector::new(target, proxy, server_addr, &fleet));
        let schedule = self.schedule();
        injector.plan(schedule.faults());
        let undo = Arc::new(AsyncMutex::new(JoinSet::new()));

        // Traffic and faults.
        let start = Instant::now();
        fleet.start_traffic(self.rate, self.seed);
        let faults = tokio::spawn(Arc::clone(&injector).run(
            schedule.faults().to_vec(),
            start,
            Arc::clone(&undo),
        ));
        let monkey = self.start_monkey(&injector).await;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while start.elapsed() < self.duration {
            tick.tick().await;
            injector.sample().await;
            let injected = injector.faults_injected();
            let p = self.progress(Phase::Traffic, start.elapsed(), Some(&fleet), injected);
            progress(&p);
        }

        // Stop the faults and undo the lasting ones.
        faults.abort();
        let _ = faults.await;
        let strikes = match monkey {
            Some(task) => {
                task.abort();
                task.await.unwrap_or(0)
            }
            None => injector.monkey_strikes(),
        };
        {
            let mut set = undo.lock().await;
            while set.join_next().await.is_some() {}
        }
        self.heal(&injector, &fleet).await?;
        fleet.stop_traffic().await;

        // Wait until every message settled.
        let settle_start = Instant::now();
        let deadline = settle_start + self.settle_timeout;
        let mut changed = fleet.shared.changed.subscribe();
        loop {
            let p = self.progress(Phase::Settling, self.duration, Some(&fleet), 0);
            progress(&p);
            let stopped = !fleet.shared.stopped.lock().is_empty();
            if fleet.shared.ledger.lock().settled() || stopped {
                break;
            }
            let wait = tokio::time::timeout_at(deadline, changed.changed()).await;
            if wait.is_err() {
                break;
            }
        }
        let settle = settle_start.elapsed();
        let mut verdict = fleet.shared.ledger.lock().verdict();
        let undelivered = fleet.shared.ledger.lock().undelivered_ids();
        for (id, from, at) in undelivered.into_iter().take(10) {
            let stored = fleet.stored(at, from, id);
            let parked = injector.parked(at, id).await;
            verdict.examples.push(format!(
                "c{from}->c{at} {id}: {parked}; {}",
                if stored {
                    "stored by the recipient but never reported"
                } else {
                    "not in the recipient's store"
                }
            ));
        }

        // Clients leave; the server must let go of them.
        progress(&self.progress(Phase::Checking, self.duration, Some(&fleet), 0));
        let duplicates_dropped = fleet.duplicates_dropped();
        fleet.close().await;
        self.check_server(&injector, &mut figures).await;

        let mut violations = verdict.violations();
        let tally = std::mem::take(&mut *injector.tally.lock());
        violations.extend(tally.violations.iter().cloned());
        violations.extend(fleet.shared.stopped.lock().iter().cloned());
        let accepted_while_disk_full = fleet
            .shared
            .accepted_while_disk_full
            .load(Ordering::Relaxed);
        if accepted_while_disk_full > 0 {
            violations.push(format!(
                "{accepted_while_disk_full} messages acknowledged while the disk was failing"
            ));
        }
        violations.extend(self.memory_violations(&figures));
        let alive = {
            let target = injector.target.lock().await;
            match target.handle() {
                Some(h) => h.snapshot().await.ok().map(|t| total_restarts(&t)),
                None => Some(0),
            }
        };
        if alive.is_none() {
            violations.push("the server's root supervisor gave up within its intensity".into());
        }
        let mut restarts = tally.restarts;
        restarts.supervisor = tally.earlier_supervisor_restarts + alive.unwrap_or(0);
        restarts.monkey_strikes = strikes;
        let connections = fleet.shared.connections.load(Ordering::Relaxed);
        restarts.client_reconnects = connections.saturating_sub(self.clients as u64);
        figures.max_session_mailbox = tally.max_session_mailbox;

        if let Ok(injector) = Arc::try_unwrap(injector) {
            injector.target.into_inner().stop().await;
        }
        Ok(Report {
            scenario: self.name.clone(),
            seed: self.seed,
            clients: self.clients,
            duration: self.duration,
            settle,
            faults: tally.faults,
            restarts,
            latency: Latency::of_sorted(&verdict.latencies),
            messages: verdict,
            duplicates_dropped,
            accepted_while_disk_full,
            server: figures,
            violations,
        })
    }

    fn progress(
        &self,
        phase: Phase,
        elapsed: Duration,
        fleet: Option<&Fleet>,
        faults: u64,
    ) -> Progress {
        let (sent, open, undelivered) = match fleet {
            Some(f) => {
                let ledger = f.shared.ledger.lock();
                let (open, undelivered) = ledger.outstanding();
                (ledger.queued_count(), open, undelivered)
            }
            None => (0, 0, 0),
        };
        Progress {
            phase,
            elapsed: elapsed.min(self.duration),
            duration: self.duration,
            sent,
            open,
            undelivered,
            faults,
        }
    }

    /// Starts the chaos monkey on the sessions supervisor, restarting it
    /// when that supervisor is replaced; resolves to its strikes.
    async fn start_monkey(&self, injector: &Arc<Injector>) -> Option<tokio::task::JoinHandle<u64>> {
        let (per_second, max) = self.monkey?;
        let node = injector.target.lock().await.node()?;
        let injector = Arc::clone(injector);
        let seed = self.seed;
        Some(tokio::spawn(async move {
            let mut strikes = 0;
            let mut round = 0u64;
            while strikes < max {
                let tree = injector.target.lock().await.snapshot().await;
                let sessions = tree.as_ref().and_then(|t| {
                    t.children
                        .iter()
                        .find(|c| c.id == "sessions")
                        .and_then(|c| c.pid)
                });
                let Some(sup) =
                    sessions.and_then(|p| supervisors::SupervisorRef::from_pid(&node, p))
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let config = supervisors::fault::ChaosConfig::new(seed ^ round, per_second)
                    .max_strikes(max - strikes);
                let monkey = supervisors::fault::chaos(&node, &sup, config);
                // The monkey stops by itself when its supervisor goes away
                // or its strikes are used up; look now and then.
                let guard = MonkeyCount(&injector, &monkey);
                while !monkey.is_finished() {
                    guard.publish(strikes);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                strikes += monkey.stop().strikes;
                injector.set_monkey_strikes(strikes);
                round += 1;
            }
            strikes
        }))
    }

    /// Undoes every fault: network, disk, paused and offline clients.
    async fn heal(&self, injector: &Injector, fleet: &Fleet) -> Result<(), ChaosError> {
        injector.heal_network();
        {
            let target = injector.target.lock().await;
            if let Some(disk) = target.disk()
                && disk.is_disk_full()
            {
                fleet.shared.disk_epoch.fetch_add(1, Ordering::SeqCst);
                disk.set_disk_full(false);
            }
        }
        fleet.heal().await
    }

    /// After the clients left: connections closed, tree back to its size.
    async fn check_server(&self, injector: &Injector, figures: &mut ServerFigures) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = injector.proxy.stats().open;
            let target = injector.target.lock().await;
            let connections = target.handle().map_or(0, |h| h.connection_count());
            let sessions = match target.snapshot().await {
                Some(tree) => child_tree(&tree, "sessions").map_or(0, |s| s.children.len()),
                None => 0,
            };
            figures.connections_end = connections.max(sessions);
            if (open == 0 && connections == 0 && sessions == 0) || Instant::now() >= deadline {
                figures.processes_end = target.snapshot().await.map_or(0, |t| t.process_count());
                figures.rss_end_kib = rss_kib(target.os_pid()).unwrap_or(0);
                return;
            }
            drop(target);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn memory_violations(&self, f: &ServerFigures) -> Vec<String> {
        let mut out = Vec::new();
        if f.connections_end > 0 {
            out.push(format!(
                "{} connections still open after the clients left",
                f.connections_end
            ));
        }
        // One offline mailbox per device may remain (parked receipts).
        if f.in_process && f.processes_end > f.processes_baseline + self.clients {
            out.push(format!(
                "server processes grew from {} to {}",
                f.processes_baseline, f.processes_end
            ));
        }
        let bound = (f.rss_baseline_kib * 2).max(f.rss_baseline_kib + 256 * 1024);
        if !f.in_process && f.rss_end_kib > bound {
            out.push(format!(
                "server memory grew from {} KiB to {} KiB",
                f.rss_baseline_kib, f.rss_end_kib
            ));
        }
        out
    }
}

/// Publishes a running monkey's strikes to the injector.
struct MonkeyCount<'a>(&'a Injector, &'a supervisors::fault::ChaosMonkey);

impl MonkeyCount<'_> {
    fn publish(&self, before: u64) {
        self.0.set_monkey_strikes(before + self.1.strikes());
    }
}

fn temp_root(name: &str, seed: u64) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::env::temp_dir().join(format!(
        "courier-chaos-{safe}-{seed}-{}-{nanos}",
        std::process::id()
    ))
}
