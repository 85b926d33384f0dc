//! Presence and typing: ephemeral, in memory only, delivered to online
//! devices and dropped for offline ones.

use std::collections::HashSet;

use dashmap::DashMap;

use super::router::Handoff;
use super::session::SessionMsg;
use super::shared::Shared;
use crate::protocol::{self, DeviceId, PresenceState, ServerFrame, UserName};
use crate::store::DeviceKey;

/// Users followed by one subscription request, at most.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 1024;

/// A user's devices and their states (a short list: users have few).
#[derive(Default)]
struct UserPresence {
    devices: Vec<(u32, PresenceState)>,
    last_seen_ms: Option<u64>,
}

/// Who is online, away or offline, and who follows whom.
#[derive(Default)]
pub(crate) struct Presence {
    users: DashMap<UserName, UserPresence>,
    followers: DashMap<UserName, HashSet<DeviceKey>>,
}

impl Presence {
    /// A device authenticated.
    pub(crate) fn came_online(&self, shared: &Shared, device: &DeviceId) {
        self.transition(
            shared,
            device,
            PresenceState::Offline,
            PresenceState::Online,
        );
    }

    /// A device's session ended.
    pub(crate) fn went_offline(&self, shared: &Shared, device: &DeviceId) {
        let was = self.device_state(device);
        self.transition(shared, device, was, PresenceState::Offline);
    }

    /// An online device set its state (`Online` or `Away`).
    pub(crate) fn update(&self, shared: &Shared, device: &DeviceId, state: PresenceState) {
        let was = self.device_state(device);
        self.transition(shared, device, was, state);
    }

    /// Records a device's change and tells followers when the user's state
    /// changes. Only `Away` devices and the last-seen time of followed
    /// users are recorded; who is online comes from the router, so an idle
    /// session nobody follows costs nothing here.
    fn transition(
        &self,
        shared: &Shared,
        device: &DeviceId,
        was: PresenceState,
        now: PresenceState,
    ) {
        let followed = self.followers.contains_key(&device.user);
        {
            let mut entry = self.users.entry(device.user.clone()).or_default();
            entry.devices.retain(|(d, _)| *d != device.device);
            if now == PresenceState::Away {
                entry.devices.push((device.device, now));
            }
            if now == PresenceState::Offline && followed {
                entry.last_seen_ms = Some(super::logic::now_ms());
            }
        }
        self.users.remove_if(&device.user, |_, e| {
            e.devices.is_empty() && e.last_seen_ms.is_none()
        });
        if !followed {
            return;
        }
        let others = self.online_state(shared, &device.user, Some(device.device));
        if combine(others, was) != combine(others, now) {
            self.publish(shared, self.current(shared, &device.user));
        }
    }

    /// A device's recorded state, `Online` unless it said it is away.
    fn device_state(&self, device: &DeviceId) -> PresenceState {
        let away = self
            .users
            .get(&device.user)
            .is_some_and(|e| e.devices.contains(&(device.device, PresenceState::Away)));
        if away {
            PresenceState::Away
        } else {
            PresenceState::Online
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
            let frame = ServerFrame::Presence(self.current(shared, user));
            let _ = shared.router.hand_off(&me_key, SessionMsg::out(frame));
        }
    }

    /// The user's state now, with the last-seen time when not online.
    fn current(&self, shared: &Shared, user: &UserName) -> protocol::Presence {
        let state = self.online_state(shared, user, None);
        let last_seen_ms = match state {
            PresenceState::Online => None,
            _ => self.users.get(user).and_then(|e| e.last_seen_ms),
        };
        protocol::Presence {
            user: user.clone(),
            state,
            last_seen_ms,
        }
    }

    /// The most present state of the user's online devices (but `skip`).
    fn online_state(&self, shared: &Shared, user: &UserName, skip: Option<u32>) -> PresenceState {
        let mut state = PresenceState::Offline;
        let Some(devices) = shared.directory.cached_devices(user.as_str()) else {
            return state;
        };
        for d in devices.iter().copied() {
            if Some(d) == skip || !shared.router.is_online(&DeviceKey::new(user.as_str(), d)) {
                continue;
            }
            let device = DeviceId::new(user.clone(), d);
            state = combine(state, self.device_state(&device));
        }
        state
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

/// The more present of two states.
fn combine(a: PresenceState, b: PresenceState) -> PresenceState {
    use PresenceState::{Away, Offline, Online};
    match (a, b) {
        (Online, _) | (_, Online) => Online,
        (Away, _) | (_, Away) => Away,
        _ => Offline,
    }
}
