//! The router: which session serves each online device.
//!
//! A `DashMap` from device to the session's address. Routing itself (park
//! durably, accept, forward) is done by the sender's logic; the router only
//! answers "where is this device" and hands frames to sessions without ever
//! waiting: a session whose mailbox is full is a slow consumer and is
//! closed (its frames are parked, so it gets them again on reconnect).

use std::sync::Arc;

use dashmap::DashMap;
use supervisors::{Addr, ExitReason, Node, TrySendError};

use super::session::{SessionMsg, SessionState};
use crate::protocol::DeviceId;
use crate::store::DeviceKey;

/// An online device's session.
#[derive(Clone)]
pub(crate) struct SessionLink {
    pub(crate) addr: Addr<SessionMsg>,
    pub(crate) state: Arc<SessionState>,
}

/// What happened to a frame handed to a device's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// Queued for the session.
    Queued,
    /// The device has no session.
    Offline,
}

/// Online devices and their sessions.
pub(crate) struct Router {
    node: Node,
    online: DashMap<DeviceKey, SessionLink>,
}

impl Router {
    pub(crate) fn new(node: Node) -> Self {
        Self {
            node,
            online: DashMap::new(),
        }
    }

    /// Number of online devices.
    pub(crate) fn len(&self) -> usize {
        self.online.len()
    }

    /// Makes `link` the session of `device`; returns the one it replaces.
    pub(crate) fn register(&self, device: DeviceKey, link: SessionLink) -> Option<SessionLink> {
        let old = self.online.insert(device, link);
        if old.is_none() {
            metrics::gauge!(super::metrics::ONLINE).increment(1.0);
        }
        old
    }

    /// Removes `device` if connection `conn` still serves it; returns
    /// whether it did.
    pub(crate) fn unregister(&self, device: &DeviceKey, conn: u64) -> bool {
        let removed = self
            .online
            .remove_if(device, |_, link| link.state.conn == conn)
            .is_some();
        if removed {
            metrics::gauge!(super::metrics::ONLINE).decrement(1.0);
        }
        removed
    }

    /// The session of `device`, if it is online.
    pub(crate) fn get(&self, device: &DeviceKey) -> Option<SessionLink> {
        self.online.get(device).map(|l| l.value().clone())
    }

    /// The connection that serves `device`, if it is online.
    pub(crate) fn conn_of(&self, device: &DeviceKey) -> Option<u64> {
        self.online.get(device).map(|l| l.state.conn)
    }

    /// Whether `device` is online.
    pub(crate) fn is_online(&self, device: &DeviceKey) -> bool {
        self.online.contains_key(device)
    }

    /// Hands `msg` to `device`'s session without waiting. A session that
    /// cannot keep up is closed; the frame stays wherever the caller keeps
    /// it (parked frames are drained on reconnect).
    pub(crate) fn hand_off(&self, device: &DeviceKey, msg: SessionMsg) -> Handoff {
        let Some(link) = self.get(device) else {
            return Handoff::Offline;
        };
        match link.addr.try_send(msg) {
            Ok(()) => Handoff::Queued,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(device = %device, "slow consumer closed");
                self.unregister(device, link.state.conn);
                self.node.exit(
                    link.addr.pid(),
                    ExitReason::ShutdownWith("slow consumer".into()),
                );
                Handoff::Offline
            }
            Err(_) => {
                self.unregister(device, link.state.conn);
                Handoff::Offline
            }
        }
    }

    /// Arms the panic hook of `device`'s logic (fault injection).
    #[cfg(feature = "chaos")]
    pub(crate) fn arm_panic(&self, device: &DeviceKey) -> bool {
        match self.get(device) {
            Some(link) => {
                link.state
                    .panic_next
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

#[cfg(feature = "chaos")]
impl Router {
    /// The logic processes of the online sessions (fault injection).
    pub(crate) fn logic_pids(&self) -> Vec<supervisors::Pid> {
        let mut pids: Vec<_> = self
            .online
            .iter()
            .filter_map(|link| *link.state.logic_pid.lock())
            .collect();
        pids.sort_unstable();
        pids
    }
}

/// The store key of a device.
pub(crate) fn key_of(device: &DeviceId) -> DeviceKey {
    DeviceKey::new(device.user.as_str(), device.device)
}
