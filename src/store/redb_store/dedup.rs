//! De-duplication: a durable append-only log of recent (sender, id) pairs
//! with an in-memory index over it.
//!
//! Each commit appends one log entry holding every pair the batch recorded,
//! keyed by a sequence number, so recording ids costs one insert per commit,
//! however many messages the batch carried, and pruning deletes whole entries
//! at the front of the log. The index holds a 128-bit keyed hash of each pair
//! (about 32 bytes per id in memory) and is rebuilt from the log whenever the
//! database is opened.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::store::{DeviceKey, MessageId, StoreError};

/// Sequence number to the pairs one commit recorded ([`encode`]).
pub(super) const DEDUP_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("dedup_batches");

/// Before batched entries: one pair per sequence number. Read once into the
/// batched log, then deleted.
const OLD_DEDUP_LOG: TableDefinition<u64, (&str, u32, [u8; 16])> =
    TableDefinition::new("dedup_log");

/// The ids in the log, by fingerprint.
#[derive(Debug)]
pub(super) struct DedupIndex {
    keys: (RandomState, RandomState),
    /// Fingerprint to the key of the log entry that holds it.
    ids: HashMap<u128, u64>,
}

/// What a committed batch changed in the log.
#[derive(Debug, Default)]
pub(super) struct DedupDelta {
    added: Vec<u128>,
    /// The key of the entry the batch appended.
    entry: u64,
    pruned: Vec<(u128, u64)>,
}

impl DedupIndex {
    /// Builds the index from the log as last committed.
    pub(super) fn load(txn: &ReadTransaction) -> Result<Self, StoreError> {
        let mut index = Self {
            keys: (RandomState::new(), RandomState::new()),
            ids: HashMap::new(),
        };
        let log = txn.open_table(DEDUP_LOG)?;
        for entry in log.range(..)? {
            let (key, pairs) = entry?;
            for (user, device, id) in decode(pairs.value())? {
                let print = index.fingerprint(user, device, &id);
                index.ids.insert(print, key.value());
            }
        }
        Ok(index)
    }

    /// How many ids are remembered.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Applies the changes of a committed batch.
    pub(super) fn apply(&mut self, delta: DedupDelta) {
        for print in delta.added {
            self.ids.insert(print, delta.entry);
        }
        for (print, entry) in delta.pruned {
            if self.ids.get(&print) == Some(&entry) {
                self.ids.remove(&print);
            }
        }
    }

    /// The keyed fingerprint of a (sender, id) pair.
    pub(super) fn fingerprint(&self, user: &str, device: u32, id: &[u8; 16]) -> u128 {
        let high = self.keys.0.hash_one((user, device, id));
        let low = self.keys.1.hash_one((user, device, id));
        (u128::from(high) << 64) | u128::from(low)
    }
}

/// Moves a log of one pair per entry into batched entries.
pub(super) fn migrate(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut log = txn.open_table(DEDUP_LOG)?;
    let has_old = txn
        .list_tables()?
        .any(|table| redb::TableHandle::name(&table) == "dedup_log");
    if !has_old {
        return Ok(());
    }
    let old = txn.open_table(OLD_DEDUP_LOG)?;
    let mut pairs = Vec::new();
    let mut last = None;
    for entry in old.range(..)? {
        let (seq, value) = entry?;
        let (user, device, id) = value.value();
        pairs.push((DeviceKey::new(user, device), MessageId(id)));
        last = Some(seq.value());
    }
    if let Some(last) = last {
        log.insert(last, encode(&pairs).as_slice())?;
    }
    drop(old);
    txn.delete_table(OLD_DEDUP_LOG)?;
    tracing::info!(
        ids = pairs.len(),
        "de-duplication records moved into the batched log"
    );
    Ok(())
}

/// Records and checks ids inside one write transaction.
pub(super) struct DedupWrites<'t> {
    log: Table<'t, u64, &'static [u8]>,
    index: &'t DedupIndex,
    window: usize,
    in_batch: HashSet<u128>,
    recorded: Vec<(DeviceKey, MessageId)>,
    delta: DedupDelta,
}

impl<'t> DedupWrites<'t> {
    pub(super) fn new(
        log: Table<'t, u64, &'static [u8]>,
        index: &'t DedupIndex,
        window: usize,
    ) -> Self {
        Self {
            log,
            index,
            window,
            in_batch: HashSet::new(),
            recorded: Vec::new(),
            delta: DedupDelta::default(),
        }
    }

    /// The fingerprint of (sender, id), for [`Self::seen`] and [`Self::record`].
    pub(super) fn fingerprint(&self, sender: &DeviceKey, id: MessageId) -> u128 {
        self.index.fingerprint(&sender.user, sender.device, &id.0)
    }

    /// Whether the pair was recorded by a commit or earlier in this batch.
    pub(super) fn seen(&self, print: u128) -> bool {
        self.in_batch.contains(&print) || self.index.ids.contains_key(&print)
    }

    /// Records (sender, id), whose fingerprint is `print`, in this batch.
    pub(super) fn record(&mut self, sender: &DeviceKey, id: MessageId, print: u128) {
        if self.in_batch.insert(print) {
            self.recorded.push((sender.clone(), id));
            self.delta.added.push(print);
        }
    }

    /// Appends this batch's pairs under `entry` and deletes the oldest
    /// entries beyond the window; returns what changed.
    ///
    /// Whole entries are pruned, and only while the rest still holds the
    /// window, so the log remembers at least `window` pairs.
    pub(super) fn finish(mut self, entry: u64) -> Result<DedupDelta, StoreError> {
        if self.recorded.is_empty() {
            return Ok(self.delta);
        }
        self.log.insert(entry, encode(&self.recorded).as_slice())?;
        self.delta.entry = entry;

        let mut excess = (self.index.len() + self.delta.added.len()).saturating_sub(self.window);
        let mut last = None;
        for stored in self.log.range(..)? {
            let (key, pairs) = stored?;
            let key = key.value();
            if key == entry {
                break;
            }
            let pairs = decode(pairs.value())?;
            if pairs.len() > excess {
                break;
            }
            excess -= pairs.len();
            for (user, device, id) in pairs {
                let print = self.index.fingerprint(user, device, &id);
                self.delta.pruned.push((print, key));
            }
            last = Some(key);
        }
        if let Some(last) = last {
            self.log.retain_in(..=last, |_, _| false)?;
        }
        Ok(self.delta)
    }
}

/// Packs pairs as: user length (4 bytes), user, device (4 bytes), id (16
/// bytes), one after another; integers little endian.
fn encode(pairs: &[(DeviceKey, MessageId)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(pairs.len() * 40);
    for (sender, id) in pairs {
        let user = sender.user.as_bytes();
        // A user name longer than 4 GiB cannot reach the store.
        bytes.extend_from_slice(&(user.len() as u32).to_le_bytes());
        bytes.extend_from_slice(user);
        bytes.extend_from_slice(&sender.device.to_le_bytes());
        bytes.extend_from_slice(&id.0);
    }
    bytes
}

/// A (sender user, sender device, message id) pair as the log holds it.
type Pair<'a> = (&'a str, u32, [u8; 16]);

/// Unpacks what [`encode`] packed.
fn decode(mut bytes: &[u8]) -> Result<Vec<Pair<'_>>, StoreError> {
    let corrupt = || StoreError::Corrupted("malformed de-duplication log entry".to_owned());
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4).ok_or_else(corrupt)?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| corrupt())?);
        let len = usize::try_from(len).map_err(|_| corrupt())?;
        if rest.len() < len.saturating_add(20) {
            return Err(corrupt());
        }
        let (user, rest) = rest.split_at(len);
        let (device, rest) = rest.split_at(4);
        let (id, rest) = rest.split_at(16);
        let user = std::str::from_utf8(user).map_err(|_| corrupt())?;
        let device = u32::from_le_bytes(device.try_into().map_err(|_| corrupt())?);
        let id: [u8; 16] = id.try_into().map_err(|_| corrupt())?;
        pairs.push((user, device, id));
        bytes = rest;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_pairs_read_back() {
        let pairs = vec![
            (DeviceKey::new("alice", 1), MessageId([1; 16])),
            (DeviceKey::new("", u32::MAX), MessageId([0; 16])),
            (DeviceKey::new("bob", 7), MessageId([9; 16])),
        ];
        let bytes = encode(&pairs);
        let back = decode(&bytes).unwrap();
        let expected: Vec<_> = pairs
            .iter()
            .map(|(k, id)| (k.user.as_str(), k.device, id.0))
            .collect();
        assert_eq!(back, expected);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[]).unwrap().is_empty());
    }
}
