//! The workloads, their sizes and what one run of a workload reports.

use std::fmt;
use std::str::FromStr;

/// One workload of the comparison, in the order of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Resident memory per idle process.
    Memory,
    /// Time to spawn one process under a supervisor.
    Spawn,
    /// One-way messages into one receiver.
    Message,
    /// Request/reply round trip, each runtime's cheapest form.
    Call,
    /// Request/reply round trip with a timeout on every call.
    TimedCall,
    /// Panic in a child to the restarted child answering.
    Restart,
    /// A broadcast to a group, per delivery.
    Broadcast,
}

impl Workload {
    /// All workloads, in table order.
    pub(crate) const ALL: [Workload; 7] = [
        Workload::Memory,
        Workload::Spawn,
        Workload::Message,
        Workload::Call,
        Workload::TimedCall,
        Workload::Restart,
        Workload::Broadcast,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Memory => "memory",
            Workload::Spawn => "spawn",
            Workload::Message => "message",
            Workload::Call => "call",
            Workload::TimedCall => "call-timed",
            Workload::Restart => "restart",
            Workload::Broadcast => "broadcast",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown workload {s:?}; one of {}", names()))
    }
}

/// The workload names, comma separated, for messages.
pub(crate) fn names() -> String {
    Workload::ALL.map(Workload::name).join(", ")
}

/// How big each workload is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// Idle processes spawned for the memory and spawn workloads.
    pub(crate) processes: usize,
    /// One-way messages sent to the receiver.
    pub(crate) messages: u64,
    /// Sequential calls.
    pub(crate) calls: u64,
    /// Restarts in one intensity window.
    pub(crate) restarts: usize,
    /// How many restarts the "first" and "last" medians cover.
    pub(crate) restart_slice: usize,
    /// Members of the broadcast group.
    pub(crate) members: usize,
    /// Broadcasts sent to the group.
    pub(crate) broadcasts: u64,
    /// Mailbox capacity wherever a runtime lets us choose one.
    pub(crate) capacity: usize,
}

impl Params {
    /// The full sizes, matching the goals' table.
    pub(crate) fn full() -> Self {
        Self {
            processes: 100_000,
            messages: 1_000_000,
            calls: 100_000,
            restarts: 10_000,
            restart_slice: 1_000,
            members: 10_000,
            broadcasts: 20,
            capacity: 1024,
        }
    }

    /// Smaller sizes for a quick look.
    pub(crate) fn quick() -> Self {
        Self {
            processes: 10_000,
            messages: 100_000,
            calls: 10_000,
            restarts: 1_000,
            restart_slice: 100,
            members: 10_000,
            broadcasts: 4,
            capacity: 1024,
        }
    }
}

/// What one run of one workload on one runtime measured.
///
/// `value` is bytes per process for memory and nanoseconds per operation
/// otherwise. Restart runs also report the medians of the first and the
/// last `restart_slice` restarts; spawn runs the CPU time all threads of
/// the process spent per spawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) value: f64,
    pub(crate) first: Option<f64>,
    pub(crate) last: Option<f64>,
    pub(crate) cpu: Option<f64>,
}

impl Sample {
    /// A sample with one figure.
    pub(crate) fn single(value: f64) -> Self {
        Self {
            value,
            first: None,
            last: None,
            cpu: None,
        }
    }

    /// A sample with its CPU time per operation.
    pub(crate) fn with_cpu(value: f64, cpu: f64) -> Self {
        Self {
            cpu: Some(cpu),
            ..Self::single(value)
        }
    }

    /// The line a child process prints for its parent.
    pub(crate) fn encode(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        format!(
            "sample {} {} {} {}",
            self.value,
            opt(self.first),
            opt(self.last),
            opt(self.cpu)
        )
    }

    /// Parses the line printed by [`Sample::encode`].
    pub(crate) fn decode(line: &str) -> Option<Self> {
        let mut parts = line.strip_prefix("sample ")?.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        let opt = |s: Option<&str>| s.and_then(|s| s.parse().ok());
        Some(Self {
            value,
            first: opt(parts.next()),
            last: opt(parts.next()),
            cpu: opt(parts.next()),
        })
    }
}
