//! Parked frames: a durable log keyed by sequence number, with an in-memory
//! index of each recipient's sequence numbers over it.
//!
//! Sequence numbers come from one store-wide counter, so every batch appends
//! its frames to the last pages of the log, and delivery acks, which arrive
//! in roughly the order frames were parked, delete from a few pages near its
//! front. A log keyed by (recipient, seq) would instead dirty one page per
//! recipient in every commit, and redb copies and checksums each dirty page
//! when it commits: with a thousand active recipients that was the whole cost
//! of a commit (see `docs/benchmarks.md`).
//!
//! The index maps each recipient with parked frames to its sequence numbers in
//! order, each with a keyed hash of the frame's (sender, id) to find the frame
//! an ack names without reading the log. It costs about 40 bytes per parked
//! frame and is rebuilt from the log whenever the database is opened, so
//! opening takes longer the more frames are parked.
//!
//! The writer changes the index while it applies a batch, before the commit:
//! a reader may see a frame that is not committed yet (its read transaction
//! does not hold it, so it is skipped) or miss one whose removal is not
//! committed yet (it was acknowledged by its recipient). If the commit fails,
//! the index is marked stale and rebuilt from the last commit before anyone
//! uses it again.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use crate::store::{DeviceKey, StoreError};

/// The value of one parked frame: recipient user and device, sender user and
/// device, message id, group, sealed body, and acceptance time.
pub(super) type FrameV = (
    &'static str,
    u32,
    &'static str,
    u32,
    [u8; 16],
    Option<&'static str>,
    &'static [u8],
    u64,
);

/// Sequence number to the frame parked under it.
pub(super) const FRAME_LOG: TableDefinition<u64, FrameV> = TableDefinition::new("frame_log");

/// One parked frame in a recipient's list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    /// Keyed hash of (sender, id).
    print: u64,
}

/// Each recipient's parked sequence numbers, in order.
#[derive(Debug)]
pub(super) struct FrameIndex {
    key: RandomState,
    mailboxes: HashMap<DeviceKey, VecDeque<Entry>>,
    /// Set when a batch that changed the index failed to commit.
    stale: bool,
}

impl FrameIndex {
    /// Builds the index from the log as last committed.
    pub(super) fn load(txn: &ReadTransaction) -> Result<Self, StoreError> {
        let mut index = Self {
            key: RandomState::new(),
            mailboxes: HashMap::new(),
            stale: false,
        };
        index.reload(txn)?;
        Ok(index)
    }

    /// Whether a failed commit left changes in the index that are not on disk.
    pub(super) fn is_stale(&self) -> bool {
        self.stale
    }

    /// Marks the index as holding changes of a batch that did not commit.
    pub(super) fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Replaces the index with the log as `txn` sees it.
    pub(super) fn reload(&mut self, txn: &ReadTransaction) -> Result<(), StoreError> {
        let log = txn.open_table(FRAME_LOG)?;
        let mut mailboxes: HashMap<DeviceKey, VecDeque<Entry>> = HashMap::new();
        for entry in log.range(..)? {
            let (seq, value) = entry?;
            let (user, device, sender, sender_device, id, ..) = value.value();
            let print = self.print(sender, sender_device, &id);
            let entry = Entry {
                seq: seq.value(),
                print,
            };
            mailboxes
                .entry(DeviceKey::new(user, device))
                .or_default()
                .push_back(entry);
        }
        self.mailboxes = mailboxes;
        self.stale = false;
        Ok(())
    }

    /// The keyed hash the index files (sender, id) under.
    pub(super) fn print(&self, user: &str, device: u32, id: &[u8; 16]) -> u64 {
        self.key.hash_one((user, device, id))
    }

    /// Appends `seq` to `recipient`'s list; `seq` exceeds every seq indexed.
    pub(super) fn push(&mut self, recipient: &DeviceKey, seq: u64, print: u64) {
        let entry = Entry { seq, print };
        match self.mailboxes.get_mut(recipient) {
            Some(list) => list.push_back(entry),
            None => {
                self.mailboxes
                    .insert(recipient.clone(), VecDeque::from([entry]));
            }
        }
    }

    /// The seqs of `recipient`'s frames filed under `print`, oldest first.
    ///
    /// Acks come in delivery order, so the match is usually the first, and
    /// the walk stops there: draining a long mailbox does not scan all of
    /// it for every ack.
    pub(super) fn candidates(
        &self,
        recipient: &DeviceKey,
        print: u64,
    ) -> impl Iterator<Item = u64> + '_ {
        self.mailboxes
            .get(recipient)
            .into_iter()
            .flatten()
            .filter(move |entry| entry.print == print)
            .map(|entry| entry.seq)
    }

    /// Files `recipient`'s frame `seq` under `print` instead of its own
    /// hash, so that tests can make two frames collide.
    #[cfg(test)]
    pub(super) fn refile(&mut self, recipient: &DeviceKey, seq: u64, print: u64) {
        let entry = self
            .mailboxes
            .get_mut(recipient)
            .and_then(|list| list.iter_mut().find(|entry| entry.seq == seq));
        if let Some(entry) = entry {
            entry.print = print;
        }
    }

    /// Takes `seq` out of `recipient`'s list.
    pub(super) fn remove(&mut self, recipient: &DeviceKey, seq: u64) {
        let Some(list) = self.mailboxes.get_mut(recipient) else {
            return;
        };
        if let Ok(at) = list.binary_search_by_key(&seq, |entry| entry.seq) {
            list.remove(at);
        }
        if list.is_empty() {
            self.mailboxes.remove(recipient);
        } else if list.capacity() > 64 && list.len() < list.capacity() / 4 {
            // A drained mailbox gives its memory back.
            list.shrink_to(list.len() * 2);
        }
    }

    /// Up to `limit` of `recipient`'s seqs after `after_seq`, in order.
    pub(super) fn after(&self, recipient: &DeviceKey, after_seq: u64, limit: usize) -> Vec<u64> {
        self.mailboxes.get(recipient).map_or_else(Vec::new, |list| {
            let from = list.partition_point(|entry| entry.seq <= after_seq);
            list.range(from..)
                .take(limit)
                .map(|entry| entry.seq)
                .collect()
        })
    }

    /// How many frames wait for `recipient`.
    pub(super) fn count(&self, recipient: &DeviceKey) -> u64 {
        self.mailboxes
            .get(recipient)
            .map_or(0, |list| list.len() as u64)
    }

    /// Every recipient with frames waiting.
    pub(super) fn recipients(&self) -> Vec<DeviceKey> {
        self.mailboxes.keys().cloned().collect()
    }
}
