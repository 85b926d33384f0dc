//! Plain data types of the store, free of any storage engine.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::FaultInjector;

/// One device of one user: the address of every frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// The user name.
    pub user: String,
    /// The device number within the user.
    pub device: u32,
}

impl DeviceKey {
    /// Builds a device key.
    pub fn new(user: impl Into<String>, device: u32) -> Self {
        Self {
            user: user.into(),
            device,
        }
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

/// A client-made message id, unique per sender device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

/// A sealed frame to park for one recipient device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedFrame {
    /// The device the frame is for.
    pub recipient: DeviceKey,
    /// The authenticated device that sent it.
    pub sender: DeviceKey,
    /// The sender's message id.
    pub id: MessageId,
    /// The group the frame was sent to, if any.
    pub group: Option<String>,
    /// The sealed bytes; the store never looks inside.
    pub body: Bytes,
    /// When the server accepted the frame, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

/// A parked frame with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFrame {
    /// Increases strictly in arrival order for each recipient.
    pub seq: u64,
    /// The frame as it was parked.
    pub frame: ParkedFrame,
}

/// What [`Store::park`](super::Store::park) did with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParkOutcome {
    /// The frame is durable under this sequence number.
    Stored {
        /// Its sequence number.
        seq: u64,
    },
    /// The (sender, id) was seen before and its copy for this recipient is
    /// gone (delivered, or never parked for it); nothing was stored.
    Duplicate,
    /// The (sender, id) was seen before and its copy for this recipient
    /// still waits under this sequence number; nothing new was stored. A
    /// router forwards it again: the first forward may have been lost with
    /// the connection that parked it.
    AlreadyParked {
        /// The sequence number of the copy that waits.
        seq: u64,
    },
}

impl ParkOutcome {
    /// Whether the frame was recognised as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate | Self::AlreadyParked { .. })
    }
}

/// What a delivery ack removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The removed frame's sequence number.
    pub seq: u64,
    /// The device that sent it (to address the delivered receipt).
    pub sender: DeviceKey,
    /// When the server accepted it.
    pub sent_at_ms: u64,
}

/// The identity a user name is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The Ed25519 public signing key.
    pub signing_key: [u8; 32],
    /// The X25519 public key.
    pub dh_key: [u8; 32],
    /// A signature binding the two, as the client made it.
    pub signature: Vec<u8>,
}

/// A device's signed prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPrekey {
    /// The prekey id.
    pub id: u32,
    /// The X25519 public key.
    pub public: [u8; 32],
    /// The identity key's signature over the public key.
    pub signature: Vec<u8>,
}

/// A device's one-time prekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneTimePrekey {
    /// The prekey id.
    pub id: u32,
    /// The X25519 public key.
    pub public: [u8; 32],
}

/// A group's members and membership version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Member user names, sorted.
    pub members: Vec<String>,
    /// Starts at 1 and grows by one with every change of membership.
    pub version: u64,
}

/// How durable an acknowledged change is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// On disk, fsynced, before it is acknowledged ([`RedbStore`](super::RedbStore)).
    #[default]
    Fsync,
    /// In memory only: acknowledged when applied, lost when the process ends
    /// ([`MemoryStore`](super::MemoryStore)). Lossy.
    Memory,
}

/// Configuration of a store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The database file (unused in memory mode).
    pub path: PathBuf,
    /// Durability mode.
    pub durability: Durability,
    /// Most requests one write transaction gathers.
    pub max_batch: usize,
    /// Requests that may wait for the writer before callers wait too.
    pub queue_capacity: usize,
    /// How many recent (sender, message id) pairs are remembered, store-wide.
    pub dedup_window: usize,
    /// The switch that simulates a full disk.
    pub faults: FaultInjector,
}

impl StoreConfig {
    /// A configuration with defaults for the database file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            durability: Durability::Fsync,
            max_batch: 4096,
            queue_capacity: 65_536,
            dedup_window: 1 << 20,
            faults: FaultInjector::default(),
        }
    }

    /// A configuration for the lossy in-memory store.
    pub fn memory() -> Self {
        Self::new("").durability(Durability::Memory)
    }

    /// Sets the durability mode.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the most requests one write transaction gathers (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Sets how many requests may queue for the writer (at least 1).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Sets how many recent (sender, id) pairs are remembered (at least 1).
    pub fn dedup_window(mut self, window: usize) -> Self {
        self.dedup_window = window.max(1);
        self
    }

    /// Shares a fault switch with the store.
    pub fn faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }
}
