//! The Courier chat server: an embeddable library that routes sealed frames
//! between authenticated devices over TLS 1.3.
//!
//! [`ServerBuilder`] configures a server (address, TLS, data directory,
//! [`Limits`], durability, hooks) and [`ServerBuilder::start`] runs it on the
//! caller's tokio runtime, returning a [`ServerHandle`].
//!
//! # Process tree
//!
//! The server is a tree of `supervisors` processes:
//!
//! ```text
//! courier (rest_for_one)
//! ├── store       the store's group-commit writer
//! ├── mailboxes   dynamic supervisor: one offline mailbox per device with parked frames
//! ├── media       blob janitor (expires uploads after their TTL)
//! ├── notifier    push-gateway retry queue
//! ├── listener    accept loop
//! └── sessions    dynamic supervisor: one session per connection
//!     └── session owns the TLS stream and supervises its `logic` process
//! ```
//!
//! A session owns the socket and the authentication state; its frame logic
//! runs in a linked process that the session restarts when it panics, so the
//! connection survives (the client gets an `InternalError` frame for the
//! frame that crashed, and nothing else changes). The session plays the
//! supervisor for its logic (restart intensity from [`Limits`]) instead of
//! running a supervisor process per connection, and an idle logic stops
//! after [`Limits::logic_hibernate_after`] and is started again by the next
//! frame, which keeps an idle session near 12 KiB.
//!
//! # Delivery
//!
//! A send is parked durably in the store (group commit), then forwarded to
//! the recipient's session if it is online, then answered with `Accepted`.
//! A device that connects drains its parked frames in order before live
//! ones. A `DeliveryAck` deletes the frame and sends a `Delivered` receipt
//! to the sender, parking the receipt when the sender is offline; a session
//! keeps the receipts and group notices it wrote until a ping after them is
//! answered, and hands unconfirmed ones on when it ends, however it ends.
//! The store work of up to 32 sends and acks of one connection is in flight
//! at once; their completions run in frame order, so per-sender order
//! holds. A connection replaced by a newer
//! one of the same device forwards nothing more; the client resends on the
//! new one, and a resend of a frame still parked is forwarded again in its
//! place. Any other frame waits for the sends before it.
//!
//! # Limitations
//!
//! - One node: there is no cross-node routing yet.
//! - Receipts and group notices a session could not confirm are lost only
//!   when its process was ended from outside its task with them still in
//!   its mailbox (a session that never yields past its shutdown timeout).
//! - A user name is bound to its first device's identity; the default
//!   [`Authenticator`] lets further devices register only with the same
//!   identity, so multi-device needs an embedder's authenticator.
//! - The server writes to sockets whose peer may have gone; a program whose
//!   `main` is not Rust's (which ignores `SIGPIPE`) must ignore `SIGPIPE`
//!   itself.
//! - The mailbox quota is checked before parking, so up to 32 pipelined
//!   sends of one connection may overshoot it.
//! - Media blobs have a size limit and a time to live but no quota per user.
//! - Group owners and creating request ids are stored as pseudo-members of
//!   the store's member set (the store has no column for them).

mod auth;
mod config;
mod directory;
mod hooks;
mod listener;
mod logic;
mod mailbox;
mod media;
mod metrics;
mod notifier;
mod presence;
mod router;
mod session;
mod shared;
mod tree;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use supervisors::{SupervisorRef, TreeSnapshot};

pub use config::{Limits, TlsSource};
pub use hooks::{
    Authenticator, FirstClaimAuthenticator, NoPushGateway, PushError, PushGateway, RateLimiter,
    Registration,
};

use crate::store::{Durability, FaultInjector, StoreError};
use crate::tls::{CertFingerprint, TlsError};

use self::shared::Shared;

/// The address a server listens on when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7443";

/// A cap on tokio's blocking threads that suits a server: store reads and
/// commits run there, a few at a time. Tokio's default (512) lets a burst
/// of logins start dozens of threads, each holding allocator caches for
/// as long as it lives. Pass it to `Builder::max_blocking_threads` of the
/// runtime the server runs on.
pub const BLOCKING_THREADS: usize = 8;

/// The data directory a server uses when none is given.
pub const DEFAULT_DATA_DIR: &str = "courier-data";

/// The name of the store file inside the data directory.
pub const STORE_FILE: &str = "courier.redb";

/// Why a server could not start or stop cleanly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The TLS configuration is unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's message.
        message: String,
    },
    /// The data directory could not be created.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The process tree did not start.
    #[error("process tree: {0}")]
    Tree(String),
}

/// Configures and starts a server.
pub struct ServerBuilder {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: TlsSource,
    pub(crate) data_dir: PathBuf,
    pub(crate) limits: Limits,
    pub(crate) durability: Durability,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) push: Arc<dyn PushGateway>,
    pub(crate) faults: FaultInjector,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("limits", &self.limits)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    /// A server on [`DEFAULT_ADDR`] with data in [`DEFAULT_DATA_DIR`], a
    /// self-signed certificate kept there, default [`Limits`], fsync
    /// durability and the [`FirstClaimAuthenticator`].
    pub fn new() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 7443)),
            tls: TlsSource::SelfSigned,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            limits: Limits::default(),
            durability: Durability::Fsync,
            authenticator: Arc::new(FirstClaimAuthenticator),
            rate_limiter: None,
            push: Arc::new(NoPushGateway),
            faults: FaultInjector::default(),
        }
    }

    /// Sets the listening address (port 0 picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Sets where the certificate comes from.
    pub fn tls(mut self, tls: TlsSource) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the data directory (store, self-signed certificate, media).
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the durability: [`Durability::Fsync`] (default) or the lossy
    /// [`Durability::Memory`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the hook deciding which devices may register.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Arc::new(authenticator);
        self
    }

    /// Adds a rate limiter consulted for every send, on top of the
    /// per-connection token bucket.
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.rate_limiter = Some(Arc::new(limiter));
        self
    }

    /// Sets the push gateway told about messages for offline devices.
    pub fn push_gateway(mut self, gateway: impl PushGateway) -> Self {
        self.push = Arc::new(gateway);
        self
    }

    /// Shares a disk-fault switch with the store (for fault tests).
    pub fn store_faults(mut self, faults: FaultInjector) -> Self {
        self.faults = faults;
        self
    }

    /// Opens the store, binds the address and starts the process tree.
    ///
    /// # Errors
    ///
    /// [`ServerError`] when the data directory, TLS material, store or
    /// address is unusable.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped start may leave the store open until the
    /// runtime ends.
    pub async fn start(self) -> Result<ServerHandle, ServerError> {
        tree::start(self).await
    }
}

/// A running server.
#[derive(Clone)]
pub struct ServerHandle {
    /// Weak so that the store closes once the tree has stopped.
    shared: Weak<Shared>,
    root: SupervisorRef,
    local_addr: SocketAddr,
    fingerprint: Option<CertFingerprint>,
    timeouts: (Duration, Duration),
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SHA-256 fingerprint of the server's certificate, when known
    /// (not for a rustls configuration given as is).
    pub fn fingerprint(&self) -> Option<CertFingerprint> {
        self.fingerprint
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.upgrade().map_or(0, |s| s.connections())
    }

    /// Number of authenticated devices online.
    pub fn online_count(&self) -> usize {
        self.shared.upgrade().map_or(0, |s| s.router.len())
    }

    /// A snapshot of the process tree.
    ///
    /// # Errors
    ///
    /// [`ServerError::Tree`] when the tree has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a query).
    pub async fn snapshot(&self) -> Result<TreeSnapshot, ServerError> {
        self.root
            .snapshot()
            .await
            .map_err(|e| ServerError::Tree(e.to_string()))
    }

    /// Stops accepting, closes every session with a `ShuttingDown` error
    /// frame, lets the store writer finish its batch, and waits for the
    /// tree to stop.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the shutdown.
    pub async fn shutdown(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.begin_shutdown();
        }
        let reason = self.root.shutdown().await;
        // Processes are gone; tasks they started (store reads, mailbox
        // starts) end within moments and release the store with them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.shared.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.shared.strong_count() > 0 {
            tracing::warn!("server state still referenced after shutdown");
        }
        tracing::info!(reason = %reason, "server stopped");
    }

    /// Resolves when the server's tree has stopped (after [`shutdown`]
    /// or a failure it could not recover from).
    ///
    /// [`shutdown`]: ServerHandle::shutdown
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn stopped(&self) {
        let _ = self.root.watch().await;
    }

    /// Makes the frame logic of `device`'s session panic on its next frame
    /// (fault injection). Returns whether the device is online.
    #[cfg(feature = "chaos")]
    pub fn panic_on_next_frame(&self, device: &crate::protocol::DeviceId) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|s| s.router.arm_panic(&router::key_of(device)))
    }

    /// The node the server's processes run on, while it runs (fault
    /// injection through `supervisors::fault`).
    #[cfg(feature = "chaos")]
    pub fn node(&self) -> Option<supervisors::Node> {
        self.shared.upgrade().map(|s| s.node.clone())
    }

    /// The pid of the session process serving `device`, if it is online
    /// (fault injection).
    #[cfg(feature = "chaos")]
    pub fn session_pid(&self, device: &crate::protocol::DeviceId) -> Option<supervisors::Pid> {
        let shared = self.shared.upgrade()?;
        shared
            .router
            .get(&router::key_of(device))
            .map(|link| link.addr.pid())
    }

    /// The root supervisor of the server's tree (fault injection).
    #[cfg(feature = "chaos")]
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// The pids of the frame-logic processes of the online sessions, in pid
    /// order (fault injection; they are not in the tree snapshot because
    /// each session supervises its own).
    #[cfg(feature = "chaos")]
    pub fn logic_pids(&self) -> Vec<supervisors::Pid> {
        self.shared
            .upgrade()
            .map_or_else(Vec::new, |s| s.router.logic_pids())
    }

    /// The ids of the frames parked for `device`, in seq order (fault
    /// injection: tells a lost message from one still waiting).
    ///
    /// # Errors
    ///
    /// [`ServerError::Tree`] when the server has stopped,
    /// [`ServerError::Store`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (a read).
    #[cfg(feature = "chaos")]
    pub async fn parked_ids(
        &self,
        device: &crate::protocol::DeviceId,
    ) -> Result<Vec<crate::protocol::MessageId>, ServerError> {
        use crate::store::Store as _;
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| ServerError::Tree("server stopped".into()))?;
        let frames = shared
            .store
            .pending(&router::key_of(device), 0, usize::MAX)
            .await?;
        Ok(frames
            .into_iter()
            .map(|f| crate::protocol::MessageId(f.frame.id.0))
            .collect())
    }

    /// The handshake and idle timeouts in force, for tests and tools.
    pub fn timeouts(&self) -> (Duration, Duration) {
        self.timeouts
    }
}
