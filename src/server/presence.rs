//! Presence and typing: ephemeral, in memory only, delivered to online
//! devices and dropped for offline ones.

use std::collections::{HashMap, HashSet};

use dashmap::DashMap;

use super::router::Handoff;
use super::session::SessionMsg;
use super::shared::Shared;
use crate::protocol::{self, DeviceId, PresenceState, ServerFrame, UserName};
use crate::store::DeviceKey;

/// Users followed by one subscription request, at most.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 1024;

#[derive(Default)]
struct UserPresence {
    devices: HashMap<u32, PresenceState>,
    last_seen_ms: Option<u64>,
}

/// Who is online, away or offline, and who follows whom.
#[derive(Default)]
pub(crate) struct Presence {
    users: DashMap<UserName, UserPresence>,
    followers: DashMap<UserName, HashSet<DeviceKey>>,
}

impl Presence {
    /// Sets a device's state (`Offline` forgets it) and tells followers
    /// when the user's state changes.
    pub(crate) fn set(&self, shared: &Shared, device: &DeviceId, state: PresenceState) {
        let before = self.current(&device.user);
        {
            let mut entry = self.users.entry(device.user.clone()).or_default();
            if state == PresenceState::Offline {
                entry.devices.remove(&device.device);
                if entry.devices.is_empty() {
                    entry.last_seen_ms = Some(super::logic::now_ms());
                }
            } else {
                entry.devices.insert(device.device, state);
            }
        }
        let after = self.current(&device.user);
        if before.state != after.state {
            self.publish(shared, after);
        }
    }

    /// Follows `users` for `me` and sends their current presence.
    pub(crate) fn subscribe(&self, shared: &Shared, me: &DeviceId, users: &[UserName]) {
        let me_key = super::router::key_of(me);
        for user in users.iter().take(MAX_SUBSCRIPTIONS) {
            self.followers
                .entry(user.clone())
                .or_default()
                .insert(me_key.clone());
            let frame = ServerFrame::Presence(self.current(user));
            let _ = shared.router.hand_off(&me_key, SessionMsg::out(frame));
        }
    }

    /// The user's state: the most present state of its devices.
    fn current(&self, user: &UserName) -> protocol::Presence {
        let (state, last_seen_ms) = match self.users.get(user) {
            Some(p) => {
                let state = if p.devices.values().any(|s| *s == PresenceState::Online) {
                    PresenceState::Online
                } else if p.devices.is_empty() {
                    PresenceState::Offline
                } else {
                    PresenceState::Away
                };
                (state, p.last_seen_ms)
            }
            None => (PresenceState::Offline, None),
        };
        protocol::Presence {
            user: user.clone(),
            state,
            last_seen_ms: if state == PresenceState::Online {
                None
            } else {
                last_seen_ms
            },
        }
    }

    fn publish(&self, shared: &Shared, presence: protocol::Presence) {
        let Some(mut followers) = self.followers.get_mut(&presence.user) else {
            return;
        };
        let frame = ServerFrame::Presence(presence);
        followers.retain(|key| {
            shared.router.hand_off(key, SessionMsg::out(frame.clone())) == Handoff::Queued
        });
    }
}
