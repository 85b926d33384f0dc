//! State shared by every process of one server.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use supervisors::Node;
use tokio::sync::watch;

use super::config::Limits;
use super::directory::Directory;
use super::hooks::{Authenticator, PushGateway, RateLimiter};
use super::mailbox::Depths;
use super::media::MediaStore;
use super::presence::Presence;
use super::router::Router;
use crate::protocol;
use crate::store::AnyStore;
use crate::tls::ServerTls;

/// Registry name of the sessions dynamic supervisor.
pub(crate) const SESSIONS: &str = "courier.sessions";
/// Registry name of the mailboxes dynamic supervisor.
pub(crate) const MAILBOXES: &str = "courier.mailboxes";
/// Registry name of the notifier process.
pub(crate) const NOTIFIER: &str = "courier.notifier";

/// Everything the server's processes share.
pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) store: AnyStore,
    pub(crate) tls: ServerTls,
    pub(crate) limits: Limits,
    pub(crate) wire_limits: protocol::Limits,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) push: Arc<dyn PushGateway>,
    pub(crate) router: Router,
    pub(crate) directory: Directory,
    pub(crate) depths: Depths,
    pub(crate) media: MediaStore,
    pub(crate) presence: Presence,
    shutting_down: AtomicBool,
    stop: watch::Sender<bool>,
    connections: AtomicUsize,
    next_conn: AtomicU64,
    unauthenticated: DashMap<IpAddr, u32>,
}

/// The parts [`Shared::new`] needs.
pub(crate) struct SharedParts {
    pub(crate) node: Node,
    pub(crate) store: AnyStore,
    pub(crate) tls: ServerTls,
    pub(crate) limits: Limits,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) push: Arc<dyn PushGateway>,
    pub(crate) media: MediaStore,
}

impl Shared {
    pub(crate) fn new(parts: SharedParts) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            wire_limits: parts.limits.to_wire(),
            router: Router::new(parts.node.clone()),
            directory: Directory::new(parts.store.clone()),
            depths: Depths::new(parts.store.clone()),
            node: parts.node,
            store: parts.store,
            tls: parts.tls,
            limits: parts.limits,
            authenticator: parts.authenticator,
            rate_limiter: parts.rate_limiter,
            push: parts.push,
            media: parts.media,
            presence: Presence::default(),
            shutting_down: AtomicBool::new(false),
            stop,
            connections: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            unauthenticated: DashMap::new(),
        }
    }

    /// Marks the server as stopping: the listener stops accepting.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// A receiver that turns `true` when shutdown begins.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Open connections.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `ip`, unless `ip` has too many
    /// unauthenticated connections already; returns its connection number.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let max = self.limits.max_unauthenticated_per_address;
        let mut entry = self.unauthenticated.entry(ip).or_insert(0);
        if *entry >= max {
            return None;
        }
        *entry += 1;
        drop(entry);
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(super::metrics::CONNECTIONS).increment(1.0);
        Some(ConnGuard {
            shared: Arc::clone(self),
            ip,
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            unauthenticated: true,
        })
    }

    fn release_unauthenticated(&self, ip: IpAddr) {
        if let dashmap::Entry::Occupied(mut e) = self.unauthenticated.entry(ip) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// One admitted connection; releases its counts when dropped.
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    id: u64,
    unauthenticated: bool,
}

impl ConnGuard {
    /// The connection number (unique per server run).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The connection authenticated: it no longer counts against the
    /// per-address cap.
    pub(crate) fn authenticated(&mut self) {
        if std::mem::take(&mut self.unauthenticated) {
            self.shared.release_unauthenticated(self.ip);
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.authenticated();
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(super::metrics::CONNECTIONS).decrement(1.0);
    }
}
