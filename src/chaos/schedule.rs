//! Seeded fault schedules: the same seed gives the same list of faults.

use std::fmt;
use std::time::Duration;

pub(crate) use supervisors::fault::SplitMix;

/// A kind of fault a scenario injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// Kill one session's frame-logic process (its session restarts it).
    KillLogic,
    /// Make one session's frame logic panic on its next frame.
    PanicLogic,
    /// Kill one session process (the connection drops; the client
    /// reconnects).
    KillSession,
    /// Kill one offline-mailbox process.
    KillMailbox,
    /// Kill the store's group-commit writer (rest-for-one restarts every
    /// process started after it).
    KillStore,
    /// Kill a whole subtree: the sessions or the mailboxes supervisor.
    KillSubtree,
    /// Close one client connection at the proxy.
    NetDrop,
    /// Let a few bytes through, then close one connection (a frame cut in
    /// the middle).
    NetCut,
    /// Stop forwarding one connection's client-bound bytes for a while.
    NetStall,
    /// Add latency to one connection for a while.
    NetDelay,
    /// Flip one bit in one connection's stream (TLS must reject it).
    NetFlip,
    /// Kill -9 the server process and restart it on the same data
    /// directory (child-process servers only).
    ServerCrash,
    /// Make every store write fail for a while (a full disk).
    DiskFull,
    /// One client stops reading for a while (its session must not buffer
    /// without bound).
    SlowConsumer,
    /// One client goes away for a while (its messages are parked).
    ClientOffline,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 15] = [
        FaultKind::KillLogic,
        FaultKind::PanicLogic,
        FaultKind::KillSession,
        FaultKind::KillMailbox,
        FaultKind::KillStore,
        FaultKind::KillSubtree,
        FaultKind::NetDrop,
        FaultKind::NetCut,
        FaultKind::NetStall,
        FaultKind::NetDelay,
        FaultKind::NetFlip,
        FaultKind::ServerCrash,
        FaultKind::DiskFull,
        FaultKind::SlowConsumer,
        FaultKind::ClientOffline,
    ];

    /// The process faults (through `supervisors::fault`).
    pub const PROCESS: [FaultKind; 6] = [
        FaultKind::KillLogic,
        FaultKind::PanicLogic,
        FaultKind::KillSession,
        FaultKind::KillMailbox,
        FaultKind::KillStore,
        FaultKind::KillSubtree,
    ];

    /// The network faults (through the fault proxy).
    pub const NETWORK: [FaultKind; 5] = [
        FaultKind::NetDrop,
        FaultKind::NetCut,
        FaultKind::NetStall,
        FaultKind::NetDelay,
        FaultKind::NetFlip,
    ];

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLogic => "kill-logic",
            FaultKind::PanicLogic => "panic-logic",
            FaultKind::KillSession => "kill-session",
            FaultKind::KillMailbox => "kill-mailbox",
            FaultKind::KillStore => "kill-store",
            FaultKind::KillSubtree => "kill-subtree",
            FaultKind::NetDrop => "net-drop",
            FaultKind::NetCut => "net-cut",
            FaultKind::NetStall => "net-stall",
            FaultKind::NetDelay => "net-delay",
            FaultKind::NetFlip => "net-flip",
            FaultKind::ServerCrash => "server-crash",
            FaultKind::DiskFull => "disk-full",
            FaultKind::SlowConsumer => "slow-consumer",
            FaultKind::ClientOffline => "client-offline",
        }
    }

    /// Whether the fault lasts a while and is then undone.
    pub fn has_duration(self) -> bool {
        matches!(
            self,
            FaultKind::NetStall
                | FaultKind::NetDelay
                | FaultKind::DiskFull
                | FaultKind::SlowConsumer
                | FaultKind::ClientOffline
        )
    }

    /// Whether a fault of this kind is restarted by a supervisor of the
    /// server's root (and so counts against the root's intensity).
    pub fn restarts_root_child(self) -> bool {
        matches!(self, FaultKind::KillStore | FaultKind::KillSubtree)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown fault kind {s:?}"))
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduledFault {
    /// When, from the start of the traffic.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// Picks the victim among the candidates present at injection time
    /// (taken modulo their number, candidates sorted).
    pub target: u64,
    /// A kind-specific parameter: bytes before a cut, byte offset of a
    /// flip, and so on.
    pub param: u64,
    /// How long a lasting fault lasts.
    pub hold: Duration,
}

/// A seeded list of faults, sorted by time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seed: u64,
    faults: Vec<ScheduledFault>,
}

impl Schedule {
    /// Plans faults of `kinds` over `duration` at `per_second` on average,
    /// cycling through the kinds so that each appears (when the duration
    /// leaves room for as many faults as kinds). The same arguments always
    /// give the same schedule.
    pub fn generate(seed: u64, kinds: &[FaultKind], duration: Duration, per_second: f64) -> Self {
        let mut rng = SplitMix::new(seed);
        let mut faults = Vec::new();
        if kinds.is_empty() || per_second <= 0.0 {
            return Self { seed, faults };
        }
        let total = duration.as_secs_f64();
        // Leave the last tenth free so lasting faults end inside the run.
        let end = total * 0.9;
        let count = ((total * per_second).round() as usize).max(kinds.len());
        let step = end / count as f64;
        let mut order: Vec<FaultKind> = kinds.to_vec();
        for i in 0..count {
            if i % order.len() == 0 {
                shuffle(&mut order, &mut rng);
            }
            let kind = order[i % order.len()];
            let jitter = rng.next_f64() * step * 0.5;
            let at = Duration::from_secs_f64(step * i as f64 + step * 0.25 + jitter);
            let hold = if kind.has_duration() {
                Duration::from_secs_f64((step * (0.3 + rng.next_f64() * 0.4)).clamp(0.05, 3.0))
            } else {
                Duration::ZERO
            };
            faults.push(ScheduledFault {
                at,
                kind,
                target: rng.next_u64(),
                param: rng.next_u64(),
                hold,
            });
        }
        Self { seed, faults }
    }

    /// The seed it was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The faults, sorted by time.
    pub fn faults(&self) -> &[ScheduledFault] {
        &self.faults
    }

    /// How many faults of `kind` it holds.
    pub fn count(&self, kind: FaultKind) -> usize {
        self.faults.iter().filter(|f| f.kind == kind).count()
    }
}

fn shuffle(items: &mut [FaultKind], rng: &mut SplitMix) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_schedule() {
        let a = Schedule::generate(7, &FaultKind::ALL, Duration::from_secs(60), 2.0);
        let b = Schedule::generate(7, &FaultKind::ALL, Duration::from_secs(60), 2.0);
        let c = Schedule::generate(8, &FaultKind::ALL, Duration::from_secs(60), 2.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_kind_appears_and_times_are_sorted() {
        let s = Schedule::generate(1, &FaultKind::ALL, Duration::from_secs(3), 1.0);
        for kind in FaultKind::ALL {
            assert!(s.count(kind) >= 1, "{kind} missing");
        }
        assert!(s.faults().windows(2).all(|w| w[0].at <= w[1].at));
        assert!(s.faults().iter().all(|f| f.at < Duration::from_secs(3)));
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
    }
}
