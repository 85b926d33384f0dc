//! Fault injection for tests and the chaos runner (feature `chaos`).
//!
//! [`FaultProxy`] sits between clients and a server on loopback and breaks
//! connections on explicit command: drop, cut mid-stream, stall, delay and
//! bit flips. Choosing when to inject what (a seeded schedule) is the
//! caller's business, so the same commands always give the same faults.

mod proxy;

pub use proxy::{
    ConnectionId, ConnectionStats, Direction, DirectionStats, Fault, FaultProxy, ProxiedConnection,
    ProxyError, ProxyStats,
};
