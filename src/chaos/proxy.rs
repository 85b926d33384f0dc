//! An in-process TCP proxy that breaks connections on command.
//!
//! [`FaultProxy::start`] listens on an ephemeral port of 127.0.0.1 and
//! forwards every accepted connection to a target address. Each connection
//! is a [`ProxiedConnection`] with a sequential [`ConnectionId`]; faults are
//! explicit [`Fault`] commands sent to one connection, to every open one, or
//! queued for every connection accepted later. There is no randomness
//! inside: a seeded schedule decides which commands to send.
//!
//! Byte positions are counted per [`Direction`] from the moment the forwarder
//! takes a command: "cut after 5" delivers exactly five more bytes in that
//! direction, however the stream happens to be split into reads.
//!
//! # Limitations
//!
//! - Closing is graceful (FIN). If the proxy still holds unread bytes from a
//!   peer when it closes, the operating system may send a reset instead, and
//!   that peer may then see a reset rather than end of file.
//! - Only IPv4 loopback is listened on.
//! - A stalled direction holds at most one read chunk (16 KiB) inside the
//!   proxy; beyond that the sender is held back by TCP flow control, so a
//!   sender blocked on a stalled direction is part of the fault.

mod pump;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use pump::{DirectionControl, Pump};

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// Bytes the client sends to the server.
    ToServer,
    /// Bytes the server sends to the client.
    ToClient,
}

impl Direction {
    /// Both directions, client to server first.
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A network fault to inject into a proxied connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close both sides of the connection now.
    Drop,
    /// Deliver `bytes` more bytes in `direction`, then close both sides (a
    /// connection lost in the middle of a frame).
    Cut {
        /// The direction whose bytes are counted.
        direction: Direction,
        /// How many more bytes get through.
        bytes: u64,
    },
    /// Stop delivering in `direction` until [`Fault::Resume`].
    Stall {
        /// The direction to hold.
        direction: Direction,
    },
    /// Deliver again in `direction` after a [`Fault::Stall`].
    Resume {
        /// The direction to release.
        direction: Direction,
    },
    /// Hold every chunk in `direction` for `per_chunk` before delivering it;
    /// `Duration::ZERO` removes the delay. Chunks wait one after another, so
    /// a delay also caps the direction's throughput.
    Delay {
        /// The direction to slow down.
        direction: Direction,
        /// Added latency per chunk.
        per_chunk: Duration,
    },
    /// Flip bit `bit` (0 to 7, taken modulo 8) of the byte `offset` bytes
    /// ahead in `direction` (offset 0 is the next byte to be delivered).
    FlipBit {
        /// The direction to corrupt.
        direction: Direction,
        /// How many bytes to let through unchanged first.
        offset: u64,
        /// Which bit of that byte to flip.
        bit: u8,
    },
}

/// The sequential number of a connection accepted by a [`FaultProxy`],
/// starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Byte counts of one direction of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    /// Bytes read from the sending side.
    pub received: u64,
    /// Bytes written to the receiving side.
    pub delivered: u64,
}

impl DirectionStats {
    /// Bytes read but not delivered: held by a stall or a delay, or dropped
    /// by a cut.
    pub fn held(&self) -> u64 {
        self.received.saturating_sub(self.delivered)
    }
}

/// Byte counts and state of one proxied connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Client to server.
    pub to_server: DirectionStats,
    /// Server to client.
    pub to_client: DirectionStats,
    /// Whether both sides have been closed.
    pub closed: bool,
}

impl ConnectionStats {
    /// The counts of `direction`.
    pub fn direction(&self, direction: Direction) -> DirectionStats {
        match direction {
            Direction::ToServer => self.to_server,
            Direction::ToClient => self.to_client,
        }
    }

    fn direction_mut(&mut self, direction: Direction) -> &mut DirectionStats {
        match direction {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// Totals over every connection a [`FaultProxy`] has handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Accepted connections whose target could not be reached.
    pub target_unreachable: u64,
    /// Connections currently forwarding.
    pub open: u64,
    /// Bytes delivered to the server, over all connections.
    pub bytes_to_server: u64,
    /// Bytes delivered to clients, over all connections.
    pub bytes_to_client: u64,
}

/// An error starting a [`FaultProxy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The listening socket could not be bound.
    #[error("fault proxy cannot listen ({kind:?}): {message}")]
    Bind {
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// The underlying error's message.
        message: String,
    },
}

/// A TCP proxy on 127.0.0.1 that forwards to one target and injects faults
/// on command. Dropping it stops accepting and closes every connection.
pub struct FaultProxy {
    shared: Arc<ProxyShared>,
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on an ephemeral port of 127.0.0.1 forwarding to
    /// `target`.
    ///
    /// # Errors
    ///
    /// [`ProxyError::Bind`] if the listening socket cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing runs until the returned proxy exists.
    pub async fn start(target: SocketAddr) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|err| ProxyError::Bind {
                kind: err.kind(),
                message: err.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|err| ProxyError::Bind {
            kind: err.kind(),
            message: err.to_string(),
        })?;

        let shared = Arc::new(ProxyShared {
            target,
            stats: watch::Sender::new(ProxyStats::default()),
            registry: Mutex::new(Registry::default()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(%local_addr, %target, "fault proxy listening");

        Ok(Self {
            shared,
            local_addr,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Totals over every connection so far.
    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.borrow()
    }

    /// The connections currently forwarding, in accept order.
    pub fn connections(&self) -> Vec<ProxiedConnection> {
        self.shared.lock().open.values().cloned().collect()
    }

    /// The connection `id`, if it is still open.
    pub fn connection(&self, id: ConnectionId) -> Option<ProxiedConnection> {
        self.shared.lock().open.get(&id).cloned()
    }

    /// Waits until connection `id` has been accepted and its target reached,
    /// and returns it; `None` if it closed (or never reached the target)
    /// before this call looked.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_connection(&self, id: ConnectionId) -> Option<ProxiedConnection> {
        let mut stats = self.shared.stats.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close here.
        let _ = stats
            .wait_for(|s| s.accepted > id.0 && self.shared.lock().settled > id.0)
            .await;
        self.connection(id)
    }

    /// Applies `fault` to every open connection.
    pub fn apply_to_open(&self, fault: &Fault) {
        for connection in self.connections() {
            connection.apply(fault.clone());
        }
    }

    /// Applies `fault` to every connection accepted from now on, before it
    /// forwards its first byte, until [`FaultProxy::clear_new_faults`].
    pub fn apply_to_new(&self, fault: Fault) {
        self.shared.lock().for_new.push(fault);
    }

    /// Forgets the faults queued by [`FaultProxy::apply_to_new`].
    pub fn clear_new_faults(&self) {
        self.shared.lock().for_new.clear();
    }

    /// Closes every open connection now.
    pub fn drop_all(&self) {
        self.apply_to_open(&Fault::Drop);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.drop_all();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("local_addr", &self.local_addr)
            .field("target", &self.shared.target)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A handle to one proxied connection; clones control the same connection.
#[derive(Clone)]
pub struct ProxiedConnection {
    shared: Arc<ConnectionShared>,
}

impl ProxiedConnection {
    /// The connection's sequential number.
    pub fn id(&self) -> ConnectionId {
        self.shared.id
    }

    /// The client's address as the proxy sees it.
    pub fn client_addr(&self) -> SocketAddr {
        self.shared.client_addr
    }

    /// Current byte counts and state.
    pub fn stats(&self) -> ConnectionStats {
        *self.shared.stats.borrow()
    }

    /// Injects `fault`; it takes effect at the forwarder's next step, even
    /// while it waits for bytes. Faults sent to a closed connection are
    /// ignored.
    pub fn apply(&self, fault: Fault) {
        tracing::debug!(connection = %self.shared.id, ?fault, "fault proxy applying fault");
        match fault {
            Fault::Drop => self.shared.close(),
            Fault::Cut { direction, bytes } => {
                self.control(direction, |c| c.pending_cut = Some(bytes));
            }
            Fault::Stall { direction } => self.control(direction, |c| c.stalled = true),
            Fault::Resume { direction } => self.control(direction, |c| c.stalled = false),
            Fault::Delay {
                direction,
                per_chunk,
            } => self.control(direction, |c| c.delay = per_chunk),
            Fault::FlipBit {
                direction,
                offset,
                bit,
            } => self.control(direction, |c| {
                c.pending_flips.push((offset, 1 << (bit % 8)))
            }),
        }
    }

    /// Closes both sides now.
    pub fn drop_now(&self) {
        self.apply(Fault::Drop);
    }

    /// Delivers `bytes` more bytes in `direction`, then closes both sides.
    pub fn cut_after(&self, direction: Direction, bytes: u64) {
        self.apply(Fault::Cut { direction, bytes });
    }

    /// Stops delivering in `direction` until [`ProxiedConnection::resume`].
    pub fn stall(&self, direction: Direction) {
        self.apply(Fault::Stall { direction });
    }

    /// Delivers again in `direction`.
    pub fn resume(&self, direction: Direction) {
        self.apply(Fault::Resume { direction });
    }

    /// Adds `per_chunk` latency to every chunk in `direction`.
    pub fn delay(&self, direction: Direction, per_chunk: Duration) {
        self.apply(Fault::Delay {
            direction,
            per_chunk,
        });
    }

    /// Flips bit `bit` of the byte `offset` bytes ahead in `direction`.
    pub fn flip_bit(&self, direction: Direction, offset: u64, bit: u8) {
        self.apply(Fault::FlipBit {
            direction,
            offset,
            bit,
        });
    }

    /// Waits until the stats satisfy `condition` and returns them.
    ///
    /// Returns the final stats once the connection has closed, whether or
    /// not they satisfy `condition`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for(
        &self,
        mut condition: impl FnMut(&ConnectionStats) -> bool,
    ) -> ConnectionStats {
        let mut rx = self.shared.stats.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close here.
        let _ = rx.wait_for(|s| s.closed || condition(s)).await;
        *rx.borrow()
    }

    /// Waits until both sides are closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) -> ConnectionStats {
        self.wait_for(|s| s.closed).await
    }

    fn control(&self, direction: Direction, change: impl FnOnce(&mut DirectionControl)) {
        self.shared.controls[direction.index()].send_modify(change);
    }
}

impl fmt::Debug for ProxiedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxiedConnection")
            .field("id", &self.shared.id)
            .field("client_addr", &self.shared.client_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

/// State shared by the proxy handle and its tasks.
struct ProxyShared {
    target: SocketAddr,
    stats: watch::Sender<ProxyStats>,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    open: BTreeMap<ConnectionId, ProxiedConnection>,
    for_new: Vec<Fault>,
    /// Connections whose target connect has finished, either way.
    settled: u64,
}

impl ProxyShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry holds plain data, so a panic elsewhere leaves it usable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// State shared by a connection's handles and its forwarders.
struct ConnectionShared {
    id: ConnectionId,
    client_addr: SocketAddr,
    controls: [watch::Sender<DirectionControl>; 2],
    close: watch::Sender<bool>,
    stats: watch::Sender<ConnectionStats>,
}

impl ConnectionShared {
    fn close(&self) {
        self.close.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    let mut next_id = 0u64;
    loop {
        let (client, client_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually a transient lack of file descriptors.
                tracing::warn!(error = %err, "fault proxy accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let id = ConnectionId(next_id);
        next_id += 1;
        shared.stats.send_modify(|s| s.accepted += 1);
        tokio::spawn(run_connection(Arc::clone(&shared), id, client, client_addr));
    }
}

async fn run_connection(
    proxy: Arc<ProxyShared>,
    id: ConnectionId,
    client: TcpStream,
    client_addr: SocketAddr,
) {
    let server = match TcpStream::connect(proxy.target).await {
        Ok(server) => server,
        Err(err) => {
            tracing::warn!(connection = %id, error = %err, "fault proxy cannot reach target");
            proxy.lock().settled += 1;
            proxy.stats.send_modify(|s| s.target_unreachable += 1);
            return;
        }
    };
    // Latency faults are the proxy's to add; do not let Nagle add its own.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let shared = Arc::new(ConnectionShared {
        id,
        client_addr,
        controls: [
            watch::Sender::new(DirectionControl::default()),
            watch::Sender::new(DirectionControl::default()),
        ],
        close: watch::Sender::new(false),
        stats: watch::Sender::new(ConnectionStats::default()),
    });
    let handle = ProxiedConnection {
        shared: Arc::clone(&shared),
    };
    {
        let mut registry = proxy.lock();
        for fault in &registry.for_new {
            handle.apply(fault.clone());
        }
        registry.open.insert(id, handle);
        registry.settled += 1;
    }
    proxy.stats.send_modify(|s| s.open += 1);

    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let to_server = Pump::new(
        Direction::ToServer,
        &shared,
        &proxy,
        client_read,
        server_write,
    );
    let to_client = Pump::new(
        Direction::ToClient,
        &shared,
        &proxy,
        server_read,
        client_write,
    );
    tokio::join!(to_server.run(), to_client.run());

    // Both forwarders have returned and dropped their halves: both sockets
    // are closed.
    proxy.lock().open.remove(&id);
    proxy
        .stats
        .send_modify(|s| s.open = s.open.saturating_sub(1));
    shared.close();
    shared.stats.send_modify(|s| s.closed = true);
    tracing::debug!(connection = %id, "fault proxy connection closed");
}
