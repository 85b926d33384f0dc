//! Fault injection for tests and the chaos runner (feature `chaos`).
//!
//! A [`Scenario`] runs a real server (in this process, or as a child
//! process that can be killed with SIGKILL) and N real
//! [`Client`](crate::client::Client)s that seal messages end to end and
//! send them to each other over TLS on loopback, through a [`FaultProxy`].
//! Meanwhile a seeded [`Schedule`] injects [`FaultKind`]s: process faults
//! through `supervisors::fault` (session logic, sessions, offline
//! mailboxes, the store writer, whole subtrees, and a chaos monkey),
//! network faults through the proxy (drop, cut mid-frame, stall, delay, bit
//! flips), kill -9 and restart of the server, a failing disk, clients that
//! stop reading and clients that go away. The same seed always gives the
//! same schedule.
//!
//! At the end the invariant checker compares what every client reported
//! with the delivery contract: every acknowledged message delivered exactly
//! once (after the client's de-duplication) in per-pair order, nothing
//! unacknowledged delivered, nothing acknowledged while the disk failed,
//! supervisors restarting what they should without giving up, and the
//! server back to its baseline once the clients left. The [`Report`] holds
//! the figures and every breach.
//!
//! ```no_run
//! # async fn demo() -> Result<(), courier::chaos::ChaosError> {
//! use std::time::Duration;
//! use courier::chaos::{FaultKind, Scenario};
//!
//! let report = Scenario::new("network", 7)
//!     .clients(6)
//!     .duration(Duration::from_secs(5))
//!     .faults(&FaultKind::NETWORK, 2.0)
//!     .run()
//!     .await?;
//! // The report prints as the table the chaos example shows.
//! assert!(report.passed(), "{report}");
//! # Ok(())
//! # }
//! ```
//!
//! Settling is awaited, not timed: a run waits for the clients' events
//! until every message is accounted for, and its timeouts only catch hangs.
//! What a run checks does not depend on the machine's speed; how many
//! messages it sends does.
//!
//! # Limitations
//!
//! - Process and disk faults need an in-process server; a child-process
//!   server takes network faults and kill -9 only (the others are counted
//!   as skipped).
//! - Victims are chosen by the schedule's numbers among the candidates
//!   present at injection time, so the same seed gives the same schedule
//!   but not always the same victims (which processes exist depends on
//!   timing).
//! - Clients send with a window of one message so that a retried send
//!   (after a refusal such as a failing disk) cannot overtake a later one;
//!   the client library reorders such retries with larger windows.
//! - The slow-consumer fault only builds up the pressure the scenario's
//!   traffic makes; the session mailbox bound it checks is the one the
//!   server's mailboxes have by construction.
//! - On the in-process server, memory is judged by the number of server
//!   processes and connections, since the clients share the process's
//!   resident memory; the child-process server is judged by its own.

mod fleet;
mod inject;
mod ledger;
mod proxy;
mod report;
mod scenario;
mod schedule;
mod target;

pub use ledger::Verdict;
pub use proxy::{
    ConnectionId, ConnectionStats, Direction, DirectionStats, Fault, FaultProxy, ProxiedConnection,
    ProxyError, ProxyStats,
};
pub use report::{FaultCount, Latency, Report, Restarts, ServerFigures};
pub use scenario::{Phase, Progress, Scenario};
pub use schedule::{FaultKind, Schedule, ScheduledFault};
pub use target::{CHILD_ADDR_ENV, CHILD_DIR_ENV, ServerMode, chaos_limits, child_server_from_env};

/// Why a scenario could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// The server did not start or restart.
    #[error("server: {0}")]
    Server(String),
    /// The fault proxy did not start.
    #[error("proxy: {0}")]
    Proxy(String),
    /// A client could not connect.
    #[error("client: {0}")]
    Client(String),
    /// The run's directories could not be made.
    #[error("i/o: {0}")]
    Io(String),
}
