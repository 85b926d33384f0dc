//! What a scenario did and found, printable as a plain-text report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::ledger::Verdict;
use super::schedule::FaultKind;

/// Faults of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCount {
    /// In the schedule.
    pub scheduled: u64,
    /// Injected.
    pub injected: u64,
    /// Skipped: no victim at that moment, or the server mode cannot take
    /// the fault, or it would have exceeded the root's restart intensity.
    pub skipped: u64,
}

/// Restarts observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restarts {
    /// Restarts made by supervisors of the server's tree (summed over the
    /// tree, over every server run).
    pub supervisor: u64,
    /// Frame-logic processes seen replaced after a kill or a panic.
    pub logic: u64,
    /// Server process restarts after kill -9.
    pub server: u64,
    /// Chaos-monkey strikes.
    pub monkey_strikes: u64,
    /// Client reconnections beyond the first connection.
    pub client_reconnects: u64,
}

/// Latency from send to delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Latency {
    /// Percentiles of sorted durations.
    pub(crate) fn of_sorted(sorted: &[Duration]) -> Self {
        let at = |q: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            sorted[i.min(sorted.len() - 1)]
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// The server's resources before the clients came and after they left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerFigures {
    /// Processes in the server's tree before the clients connected.
    pub processes_baseline: usize,
    /// Processes in the tree after every client left.
    pub processes_end: usize,
    /// Open connections after every client left.
    pub connections_end: usize,
    /// The longest session mailbox seen while sampling.
    pub max_session_mailbox: usize,
    /// Resident memory of the server's process before the clients (KiB).
    pub rss_baseline_kib: u64,
    /// Resident memory after the clients left (KiB).
    pub rss_end_kib: u64,
    /// Whether the server's process is shared with the clients (then the
    /// memory figures include them).
    pub in_process: bool,
}

/// Everything a scenario run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Clients.
    pub clients: usize,
    /// Traffic and fault phase.
    pub duration: Duration,
    /// Time until everything settled after the faults stopped.
    pub settle: Duration,
    /// Faults by kind.
    pub faults: BTreeMap<FaultKind, FaultCount>,
    /// Restarts.
    pub restarts: Restarts,
    /// Message figures and contract checks.
    pub messages: Verdict,
    /// Duplicates the clients dropped (server resends after faults).
    pub duplicates_dropped: u64,
    /// Messages acknowledged while the disk was failing (must be 0).
    pub accepted_while_disk_full: u64,
    /// Latency percentiles.
    pub latency: Latency,
    /// Server resources.
    pub server: ServerFigures,
    /// Every breach found; empty when the run passed.
    pub violations: Vec<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Faults injected over all kinds.
    pub fn faults_injected(&self) -> u64 {
        self.faults.values().map(|c| c.injected).sum()
    }

    /// Faults of `kind` injected.
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.faults.get(&kind).map_or(0, |c| c.injected)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.messages;
        writeln!(
            f,
            "scenario {}: seed {}, {} clients, {:.1} s of traffic, settled in {:.1} s",
            self.scenario,
            self.seed,
            self.clients,
            self.duration.as_secs_f64(),
            self.settle.as_secs_f64()
        )?;
        writeln!(f, "faults ({} injected)", self.faults_injected())?;
        writeln!(
            f,
            "  {:<16} {:>9} {:>9} {:>8}",
            "kind", "scheduled", "injected", "skipped"
        )?;
        for (kind, c) in &self.faults {
            writeln!(
                f,
                "  {:<16} {:>9} {:>9} {:>8}",
                kind.name(),
                c.scheduled,
                c.injected,
                c.skipped
            )?;
        }
        let r = &self.restarts;
        writeln!(
            f,
            "restarts: supervisor {}, logic {}, server {}, monkey strikes {}, client reconnects {}",
            r.supervisor, r.logic, r.server, r.monkey_strikes, r.client_reconnects
        )?;
        writeln!(
            f,
            "messages: sent {}, acknowledged {}, refused {}, delivered {}, duplicates dropped {}, lost {}",
            m.sent, m.accepted, m.refused, m.delivered, self.duplicates_dropped, m.lost
        )?;
        writeln!(
            f,
            "checks: duplicates after de-dup {}, unacknowledged delivered {}, order violations {}, unsettled {}, stray {}, acknowledged while disk full {}",
            m.duplicates_after_dedup,
            m.unacknowledged_delivered,
            m.order_violations,
            m.unsettled,
            m.stray,
            self.accepted_while_disk_full
        )?;
        writeln!(
            f,
            "receipts: {} ({} delivered messages without one)",
            m.receipts, m.unreceipted
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            l.p50.as_millis(),
            l.p90.as_millis(),
            l.p99.as_millis(),
            l.max.as_millis()
        )?;
        let s = &self.server;
        writeln!(
            f,
            "server: processes {} -> {}, connections after clients left {}, longest session mailbox {}, rss {} KiB -> {} KiB{}",
            s.processes_baseline,
            s.processes_end,
            s.connections_end,
            s.max_session_mailbox,
            s.rss_baseline_kib,
            s.rss_end_kib,
            if s.in_process {
                " (shared with the clients)"
            } else {
                ""
            }
        )?;
        for example in &m.examples {
            writeln!(f, "  {example}")?;
        }
        if self.violations.is_empty() {
            write!(f, "result: PASS")
        } else {
            write!(f, "result: FAIL: {}", self.violations.join("; "))
        }
    }
}
