//! De-duplication: a durable append-only log of recent (sender, id) pairs
//! with an in-memory index over it.
//!
//! The log is keyed by sequence number, so a batch appends to the same few
//! pages and pruning deletes a contiguous range at its front: recording an id
//! costs almost no extra pages per commit, where a table keyed by the random
//! id would dirty one page per frame. The index holds a 128-bit keyed hash of
//! each pair (about 32 bytes per id in memory) and is rebuilt from the log
//! whenever the database is opened.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};

use crate::store::{DeviceKey, MessageId, StoreError};

type LogV = (&'static str, u32, [u8; 16]);

/// Sequence number to the (sender user, sender device, id) recorded under it.
pub(super) const DEDUP_LOG: TableDefinition<u64, LogV> = TableDefinition::new("dedup_log");

/// The ids in the log, by fingerprint.
#[derive(Debug)]
pub(super) struct DedupIndex {
    keys: (RandomState, RandomState),
    ids: HashMap<u128, u64>,
}

/// What a committed batch changed in the log.
#[derive(Debug, Default)]
pub(super) struct DedupDelta {
    added: Vec<(u128, u64)>,
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
            let (seq, value) = entry?;
            let (user, device, id) = value.value();
            let print = index.fingerprint(user, device, &id);
            index.ids.insert(print, seq.value());
        }
        Ok(index)
    }

    /// How many ids are remembered.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Applies the changes of a committed batch.
    pub(super) fn apply(&mut self, delta: DedupDelta) {
        for (print, seq) in delta.added {
            self.ids.insert(print, seq);
        }
        for (print, seq) in delta.pruned {
            if self.ids.get(&print) == Some(&seq) {
                self.ids.remove(&print);
            }
        }
    }

    fn fingerprint(&self, user: &str, device: u32, id: &[u8; 16]) -> u128 {
        let high = self.keys.0.hash_one((user, device, id));
        let low = self.keys.1.hash_one((user, device, id));
        (u128::from(high) << 64) | u128::from(low)
    }
}

/// Records and checks ids inside one write transaction.
pub(super) struct DedupWrites<'t> {
    log: Table<'t, u64, LogV>,
    index: &'t DedupIndex,
    window: usize,
    in_batch: HashSet<u128>,
    delta: DedupDelta,
}

impl<'t> DedupWrites<'t> {
    pub(super) fn new(log: Table<'t, u64, LogV>, index: &'t DedupIndex, window: usize) -> Self {
        Self {
            log,
            index,
            window,
            in_batch: HashSet::new(),
            delta: DedupDelta::default(),
        }
    }

    /// Whether (sender, id) was recorded by a commit or earlier in this batch.
    pub(super) fn seen(&self, sender: &DeviceKey, id: MessageId) -> bool {
        let print = self.index.fingerprint(&sender.user, sender.device, &id.0);
        self.in_batch.contains(&print) || self.index.ids.contains_key(&print)
    }

    /// Appends (sender, id) to the log under `seq`.
    pub(super) fn record(
        &mut self,
        sender: &DeviceKey,
        id: MessageId,
        seq: u64,
    ) -> Result<(), StoreError> {
        let print = self.index.fingerprint(&sender.user, sender.device, &id.0);
        self.log
            .insert(seq, (sender.user.as_str(), sender.device, id.0))?;
        self.in_batch.insert(print);
        self.delta.added.push((print, seq));
        Ok(())
    }

    /// Deletes the oldest entries beyond the window; returns what changed.
    pub(super) fn finish(mut self) -> Result<DedupDelta, StoreError> {
        let live = self.index.len() + self.delta.added.len();
        let excess = live.saturating_sub(self.window);
        if excess == 0 {
            return Ok(self.delta);
        }

        let mut last = None;
        for entry in self.log.range(..)?.take(excess) {
            let (seq, value) = entry?;
            let (user, device, id) = value.value();
            let print = self.index.fingerprint(user, device, &id);
            self.delta.pruned.push((print, seq.value()));
            last = Some(seq.value());
        }
        if let Some(last) = last {
            self.log.retain_in(..=last, |_, _| false)?;
        }
        Ok(self.delta)
    }
}
