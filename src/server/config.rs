//! Server configuration: limits with safe defaults and the TLS source.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol;

/// What the server enforces. Every limit has a safe default and an error
/// frame that tells the client which one it hit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame payload in either direction (`FrameTooLarge`, closes).
    pub max_frame_bytes: u32,
    /// Sends per second per connection, refilled continuously
    /// (`RateLimited`).
    pub messages_per_second: u32,
    /// Sends a connection may burst above the steady rate.
    pub burst: u32,
    /// Connections from one IP address that have not authenticated yet
    /// (`RateLimited`, closes).
    pub max_unauthenticated_per_address: u32,
    /// Open connections in total (refused with `ShuttingDown`-free
    /// `RateLimited`, closes).
    pub max_connections: usize,
    /// Time from TCP accept to a verified `ClientHello` (TLS included).
    pub handshake_timeout: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Silence after which the server sends a `Ping`.
    pub heartbeat_interval: Duration,
    /// Frames parked per device before sends to it fail (`MailboxFull`).
    pub mailbox_quota: u64,
    /// Members per group (`GroupTooLarge`).
    pub max_group_size: u32,
    /// Bytes per media blob (`MediaTooLarge`).
    pub max_media_bytes: u64,
    /// Bytes of `data` per media chunk (`MalformedFrame` beyond it).
    pub max_media_chunk_bytes: u32,
    /// How long an uploaded blob is kept.
    pub media_ttl: Duration,
    /// One-time prekeys held per device (`TooManyPrekeys`).
    pub max_one_time_prekeys: u32,
    /// One-time prekeys left below which the owner gets `PrekeysLow`.
    pub prekeys_low_threshold: u32,
    /// Devices per user.
    pub max_devices_per_user: u32,
    /// Restarts of a session's logic allowed within `logic_restart_period`
    /// before the connection is closed.
    pub logic_restart_limit: u32,
    /// The window of `logic_restart_limit`.
    pub logic_restart_period: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: protocol::DEFAULT_MAX_FRAME_BYTES,
            messages_per_second: 50,
            burst: 100,
            max_unauthenticated_per_address: 64,
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            heartbeat_interval: Duration::from_secs(30),
            mailbox_quota: 10_000,
            max_group_size: 256,
            max_media_bytes: 100 * 1024 * 1024,
            max_media_chunk_bytes: 64 * 1024,
            media_ttl: Duration::from_secs(30 * 24 * 3600),
            max_one_time_prekeys: 100,
            prekeys_low_threshold: 10,
            max_devices_per_user: 8,
            logic_restart_limit: 5,
            logic_restart_period: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The limits as announced to clients in `ServerHello`.
    pub(crate) fn to_wire(&self) -> protocol::Limits {
        protocol::Limits {
            max_frame_bytes: self.max_frame_bytes,
            messages_per_second: self.messages_per_second,
            max_group_size: self.max_group_size,
            max_media_bytes: self.max_media_bytes,
            max_media_chunk_bytes: self.max_media_chunk_bytes,
            max_one_time_prekeys: self.max_one_time_prekeys,
            max_devices_per_user: self.max_devices_per_user,
            handshake_timeout_ms: millis_u32(self.handshake_timeout),
            idle_timeout_ms: millis_u32(self.idle_timeout),
        }
    }
}

/// Where the server's certificate comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum TlsSource {
    /// A self-signed certificate kept in the data directory, created on
    /// first start.
    SelfSigned,
    /// A PEM certificate chain and a PEM private key.
    PemFiles {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// A rustls configuration used as it is.
    Config(Arc<rustls::ServerConfig>),
}

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SelfSigned => f.write_str("SelfSigned"),
            Self::PemFiles { cert, key } => f
                .debug_struct("PemFiles")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            Self::Config(_) => f.write_str("Config(..)"),
        }
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
