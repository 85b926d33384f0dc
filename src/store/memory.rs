//! The lossy in-memory store ([`Durability::Memory`](super::Durability::Memory)).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{
    DeviceKey, FaultInjector, Group, Identity, MessageId, OneTimePrekey, ParkOutcome, ParkedFrame,
    Removed, SignedPrekey, Store, StoreConfig, StoreError, StoredFrame,
};

/// A store that keeps everything in memory and loses it when the process ends.
///
/// It acknowledges a change as soon as it is applied, which makes it fast and
/// lossy: use it for tests, or where throughput matters more than surviving a
/// crash. It honours the [`FaultInjector`] so fault scenarios run in both
/// modes. Clones share the same contents.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    faults: FaultInjector,
    dedup_window: usize,
}

impl MemoryStore {
    /// An empty store configured by `config` (its path is ignored).
    pub fn new(config: &StoreConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            faults: config.faults.clone(),
            dedup_window: config.dedup_window,
        }
    }

    fn write<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.faults.is_disk_full() {
            return Err(StoreError::DiskFull);
        }
        change(&mut self.state.lock())
    }

    fn read<T>(&self, look: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        Ok(look(&self.state.lock()))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(&StoreConfig::memory())
    }
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    mailboxes: HashMap<DeviceKey, BTreeMap<u64, ParkedFrame>>,
    /// Keyed hashes of recently seen (sender, id) pairs, oldest first in `seen_order`.
    seen: HashSet<u128>,
    seen_order: VecDeque<u128>,
    hash_keys: (RandomState, RandomState),
    identities: HashMap<String, Identity>,
    devices: HashMap<String, BTreeSet<u32>>,
    signed: HashMap<DeviceKey, SignedPrekey>,
    one_time: HashMap<DeviceKey, BTreeMap<u32, [u8; 32]>>,
    groups: HashMap<String, Group>,
}

impl State {
    fn fingerprint(&self, sender: &DeviceKey, id: MessageId) -> u128 {
        let key = (sender.user.as_str(), sender.device, &id.0);
        let high = self.hash_keys.0.hash_one(key);
        let low = self.hash_keys.1.hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    fn park(&mut self, frames: Vec<ParkedFrame>, window: usize) -> Vec<ParkOutcome> {
        let mut checked: Vec<(u128, bool)> = Vec::new();
        let mut stored: HashSet<(DeviceKey, u128)> = HashSet::new();
        let mut outcomes = Vec::with_capacity(frames.len());

        for frame in frames {
            let print = self.fingerprint(&frame.sender, frame.id);
            let duplicate = match checked.iter().find(|(key, _)| *key == print) {
                Some((_, duplicate)) => *duplicate,
                None => {
                    let seen = self.seen.contains(&print);
                    checked.push((print, seen));
                    seen
                }
            };
            if !stored.insert((frame.recipient.clone(), print)) {
                outcomes.push(ParkOutcome::Duplicate);
                continue;
            }
            if duplicate {
                let waiting = self.find(&frame.recipient, &frame.sender, frame.id);
                outcomes.push(match waiting {
                    Some(seq) => ParkOutcome::AlreadyParked { seq },
                    None => ParkOutcome::Duplicate,
                });
                continue;
            }

            self.next_seq += 1;
            let seq = self.next_seq;
            let mailbox = match self.mailboxes.get_mut(&frame.recipient) {
                Some(mailbox) => mailbox,
                None => self.mailboxes.entry(frame.recipient.clone()).or_default(),
            };
            mailbox.insert(seq, frame);
            outcomes.push(ParkOutcome::Stored { seq });
        }

        for (print, duplicate) in checked {
            if !duplicate && self.seen.insert(print) {
                self.seen_order.push_back(print);
            }
        }
        while self.seen_order.len() > window {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        outcomes
    }

    /// The seq of `recipient`'s parked copy of (`sender`, `id`).
    fn find(&self, recipient: &DeviceKey, sender: &DeviceKey, id: MessageId) -> Option<u64> {
        // Acks come in delivery order, so the frame is near the oldest end.
        self.mailboxes
            .get(recipient)?
            .iter()
            .find(|(_, f)| f.id == id && f.sender == *sender)
            .map(|(seq, _)| *seq)
    }

    fn remove(
        &mut self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Option<Removed> {
        let seq = self.find(recipient, sender, id)?;
        let mailbox = self.mailboxes.get_mut(recipient)?;
        let frame = mailbox.remove(&seq)?;
        if mailbox.is_empty() {
            self.mailboxes.remove(recipient);
        }
        Some(Removed {
            seq,
            sender: frame.sender,
            sent_at_ms: frame.sent_at_ms,
        })
    }

    fn group_change(
        &mut self,
        group: &str,
        change: impl FnOnce(&mut BTreeSet<String>) -> bool,
    ) -> Result<u64, StoreError> {
        let entry = self.groups.get_mut(group).ok_or(StoreError::UnknownGroup)?;
        let mut members: BTreeSet<String> =
            std::mem::take(&mut entry.members).into_iter().collect();
        if change(&mut members) {
            entry.version += 1;
        }
        entry.members = members.into_iter().collect();
        Ok(entry.version)
    }
}

impl Store for MemoryStore {
    async fn park(&self, frames: Vec<ParkedFrame>) -> Result<Vec<ParkOutcome>, StoreError> {
        let window = self.dedup_window;
        self.write(|state| Ok(state.park(frames, window)))
    }

    async fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        self.read(|state| {
            let Some(mailbox) = state.mailboxes.get(recipient) else {
                return Vec::new();
            };
            let Some(from) = after_seq.checked_add(1) else {
                return Vec::new();
            };
            mailbox
                .range(from..)
                .take(limit)
                .map(|(seq, frame)| StoredFrame {
                    seq: *seq,
                    frame: frame.clone(),
                })
                .collect()
        })
    }

    async fn remove(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<Removed>, StoreError> {
        self.write(|state| Ok(state.remove(recipient, sender, id)))
    }

    async fn pending_count(&self, recipient: &DeviceKey) -> Result<u64, StoreError> {
        self.read(|state| state.mailboxes.get(recipient).map_or(0, |m| m.len() as u64))
    }

    async fn recipients(&self) -> Result<Vec<DeviceKey>, StoreError> {
        self.read(|state| {
            let mut all: Vec<DeviceKey> = state.mailboxes.keys().cloned().collect();
            all.sort();
            all
        })
    }

    async fn bind_identity(&self, user: &str, identity: Identity) -> Result<(), StoreError> {
        self.write(|state| match state.identities.get(user) {
            Some(bound) if *bound == identity => Ok(()),
            Some(_) => Err(StoreError::IdentityConflict),
            None => {
                state.identities.insert(user.to_owned(), identity);
                Ok(())
            }
        })
    }

    async fn identity(&self, user: &str) -> Result<Option<Identity>, StoreError> {
        self.read(|state| state.identities.get(user).cloned())
    }

    async fn add_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        self.write(|state| {
            Ok(state
                .devices
                .entry(device.user.clone())
                .or_default()
                .insert(device.device))
        })
    }

    async fn remove_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        self.write(|state| {
            state.signed.remove(device);
            state.one_time.remove(device);
            let Some(devices) = state.devices.get_mut(&device.user) else {
                return Ok(false);
            };
            let existed = devices.remove(&device.device);
            if devices.is_empty() {
                state.devices.remove(&device.user);
            }
            Ok(existed)
        })
    }

    async fn devices(&self, user: &str) -> Result<Vec<u32>, StoreError> {
        self.read(|state| {
            state
                .devices
                .get(user)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default()
        })
    }

    async fn set_signed_prekey(
        &self,
        device: &DeviceKey,
        prekey: SignedPrekey,
    ) -> Result<(), StoreError> {
        self.write(|state| {
            state.signed.insert(device.clone(), prekey);
            Ok(())
        })
    }

    async fn signed_prekey(&self, device: &DeviceKey) -> Result<Option<SignedPrekey>, StoreError> {
        self.read(|state| state.signed.get(device).cloned())
    }

    async fn add_one_time_prekeys(
        &self,
        device: &DeviceKey,
        prekeys: Vec<OneTimePrekey>,
    ) -> Result<u64, StoreError> {
        self.write(|state| {
            let keys = state.one_time.entry(device.clone()).or_default();
            for prekey in prekeys {
                keys.insert(prekey.id, prekey.public);
            }
            Ok(keys.len() as u64)
        })
    }

    async fn take_one_time_prekey(
        &self,
        device: &DeviceKey,
    ) -> Result<Option<OneTimePrekey>, StoreError> {
        self.write(|state| {
            let Some(keys) = state.one_time.get_mut(device) else {
                return Ok(None);
            };
            let taken = keys
                .pop_first()
                .map(|(id, public)| OneTimePrekey { id, public });
            if keys.is_empty() {
                state.one_time.remove(device);
            }
            Ok(taken)
        })
    }

    async fn one_time_prekey_count(&self, device: &DeviceKey) -> Result<u64, StoreError> {
        self.read(|state| state.one_time.get(device).map_or(0, |k| k.len() as u64))
    }

    async fn create_group(&self, group: &str, members: Vec<String>) -> Result<u64, StoreError> {
        self.write(|state| {
            if state.groups.contains_key(group) {
                return Err(StoreError::GroupExists);
            }
            let members: BTreeSet<String> = members.into_iter().collect();
            let created = Group {
                members: members.into_iter().collect(),
                version: 1,
            };
            state.groups.insert(group.to_owned(), created);
            Ok(1)
        })
    }

    async fn change_group_members(
        &self,
        group: &str,
        remove: Vec<String>,
        add: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.write(|state| {
            state.group_change(group, |set| {
                let removed = remove
                    .iter()
                    .fold(false, |changed, m| set.remove(m) | changed);
                add.into_iter()
                    .fold(removed, |changed, m| set.insert(m) | changed)
            })
        })
    }

    async fn group(&self, group: &str) -> Result<Option<Group>, StoreError> {
        self.read(|state| state.groups.get(group).cloned())
    }
}
