//! The durable store: parked frames, de-duplication records and the directory.
//!
//! One trait, [`Store`], covers everything the server keeps across restarts:
//!
//! - **messages**: sealed frames parked per recipient device, listed in arrival
//!   order with a sequence number, removed physically on delivery ack;
//! - **de-duplication**: a sender's message id is recorded in the same
//!   transaction as its frames, so a resend after a crash is recognised;
//! - **directory**: user identities, devices, signed and one-time prekeys, and
//!   groups with a membership version.
//!
//! Two implementations pass the same conformance suite:
//!
//! - [`RedbStore`] ([`Durability::Fsync`], the default): a redb file. Every
//!   mutation goes through one writer task ([`StoreWriter::run`]) that gathers
//!   the requests queued while the previous commit was on disk into a single
//!   write transaction, commits it with an fsync and only then answers each
//!   caller (group commit). Nothing is acknowledged before it is durable.
//! - [`MemoryStore`] ([`Durability::Memory`]): plain maps behind a mutex.
//!   It acknowledges as soon as a change is applied in memory and loses
//!   everything when the process ends. Lossy by design; for tests and for
//!   deployments that trade durability for throughput.
//!
//! The store only ever sees sealed bytes: it never holds plaintext. A frame's
//! body is deleted from the tables in the transaction that handles its
//! delivery ack; there are no tombstones.
//!
//! # Example
//!
//! ```
//! use courier::store::{DeviceKey, MemoryStore, MessageId, ParkedFrame, Store, StoreConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), courier::store::StoreError> {
//! // `RedbStore::open_spawned(&StoreConfig::new(path))` gives the durable store.
//! let store = MemoryStore::new(&StoreConfig::memory());
//! let bob = DeviceKey::new("bob", 1);
//! let frame = ParkedFrame {
//!     recipient: bob.clone(),
//!     sender: DeviceKey::new("alice", 1),
//!     id: MessageId([7; 16]),
//!     group: None,
//!     body: bytes::Bytes::from_static(b"sealed bytes"),
//!     sent_at_ms: 0,
//! };
//! store.park(vec![frame.clone()]).await?;
//! assert!(store.park(vec![frame.clone()]).await?[0].is_duplicate());
//!
//! let pending = store.pending(&bob, 0, 64).await?;
//! assert_eq!(pending[0].frame, frame);
//! let removed = store.remove(&bob, &frame.sender, frame.id).await?;
//! assert_eq!(removed.map(|r| r.sender), Some(frame.sender));
//! # Ok(())
//! # }
//! ```
//!
//! # De-duplication bound
//!
//! The store remembers the last [`StoreConfig::dedup_window`] (sender, id)
//! pairs it recorded, store-wide (1,048,576 by default; the redb store
//! forgets the pairs of one commit together, so it may remember up to one
//! batch more). A resend is
//! recognised as long as fewer than that many messages were parked since the
//! original: at 10,000 messages a second that is about 100 seconds, at 1,000
//! a second about 17 minutes. Receivers drop duplicates too, so a resend
//! after the window costs a second delivery, not a second message.
//!
//! In the redb store the pairs live in an append-only log with one entry per
//! commit, so recording them costs one insert per batch and the oldest are
//! deleted as whole entries; an in-memory index of 128-bit keyed hashes (about
//! 32 bytes a pair, some 32 MiB at the default window) answers the lookups
//! and is rebuilt from the log when the database opens. The memory store
//! keeps the same hashes. Two different pairs share a hash with a probability
//! near 2^-128 per lookup; such a pair would be taken for a duplicate.
//!
//! # Parked frames in the redb store
//!
//! Frames live in a log keyed by their sequence number alone, so a commit
//! appends to the last pages of the log and delivery acks delete near its
//! front, whatever the number of recipients. Which frames wait for which
//! device is kept in memory (about 40 bytes a parked frame) and rebuilt from
//! the log when the database opens. Keyed by (recipient, seq), as in the
//! first layout, a commit dirtied one page per recipient and cost about
//! twice the CPU per message; a database in that layout is converted when
//! it is opened.
//!
//! # Disk faults
//!
//! A failed write (a full disk, `ENOSPC` or a quota, is
//! [`StoreError::DiskFull`]; any other I/O error is
//! [`StoreError::Unavailable`]) fails every request of its batch and
//! acknowledges none of them; nothing panics. The redb store then reopens its
//! file (redb refuses further work on a handle after an I/O error) and writes
//! succeed again once the disk has room. A [`FaultInjector`] shared through
//! [`StoreConfig::faults`] simulates a full disk under redb's own error path.
//! The `real_full_disk_is_reported_as_disk_full` test (in `tests/store_redb.rs`,
//! ignored by default) fills a real small file system, for example a 2 MiB
//! tmpfs: `COURIER_SMALL_FS=/mnt/tiny cargo test --test store_redb -- --ignored`.
//!
//! # Sequence numbers
//!
//! Sequence numbers come from one counter for the whole store: they increase
//! strictly in arrival order for every recipient, but are not dense per
//! recipient. They are never reused, also not after a restart.
//!
//! # Limitations
//!
//! - The de-duplication window is a count of messages, not an age: under a
//!   heavy load it covers a shorter time. A per-sender guarantee would need a
//!   per-sender index, which costs pages in every commit (see the benchmark
//!   notes in `docs/benchmarks.md`).
//! - Removal has no (sender, id) index: it walks the recipient's list of
//!   parked frames in memory from the oldest, comparing 64-bit hashes, which
//!   finds an ack within the first few frames; an ack for an id that is not
//!   parked walks the whole list (bounded by the mailbox quota).
//! - Opening the redb store reads every parked frame and every remembered
//!   (sender, id) pair to rebuild the in-memory indexes, so it takes longer
//!   the more frames wait.
//! - The mailbox quota is checked by the caller ([`Store::pending_count`]
//!   then [`Store::park`]), so concurrent parks may overshoot it slightly.
//! - The memory store serialises every operation behind one mutex.
//! - After a crash, opening the redb file repairs it by walking the whole
//!   file, so a restart takes longer as the file grows. redb's quick repair
//!   would make it fast at the price of a second fsync in every commit.
//! - redb latches an I/O error: after a failed commit the handle refuses
//!   reads too, and reopening it repairs the file, which needs to write. So
//!   while the disk stays full, reads of the redb store fail as well; they
//!   work again as soon as a write can succeed.

mod any;
mod error;
mod memory;
mod redb_store;
mod types;

use std::future::Future;

pub use any::AnyStore;
pub use error::{FaultInjector, StoreError};
pub use memory::MemoryStore;
pub use redb_store::{RedbStore, StoreWriter};
pub use types::{
    DeviceKey, Durability, Group, Identity, MessageId, OneTimePrekey, ParkOutcome, ParkedFrame,
    Removed, SignedPrekey, StoreConfig, StoredFrame,
};

/// The durable store of a server: parked frames, de-duplication and directory.
///
/// Every method takes `&self`; implementations are cheap to share behind an
/// `Arc` or to clone. Methods that change state return only once the change is
/// as durable as the store's [`Durability`] promises.
pub trait Store: Send + Sync + 'static {
    /// Parks a batch of sealed frames and returns once they are durable.
    ///
    /// Returns one outcome per frame, in input order. A frame whose
    /// (sender, id) was recorded by an earlier call (within the
    /// de-duplication window) is reported [`ParkOutcome::Duplicate`] and not
    /// stored again. Frames of one call that share a (sender, id), such as the
    /// copies of one message for each device of a recipient, are all stored,
    /// except a second copy for the same recipient, which is a duplicate.
    ///
    /// # Errors
    ///
    /// [`StoreError::DiskFull`] or [`StoreError::Unavailable`] when the write
    /// failed; then nothing of the batch is acknowledged and the caller must
    /// not acknowledge it either. [`StoreError::Closed`] after shutdown.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the request: the frames may still
    /// be stored. A retry is harmless because it is recognised as a duplicate.
    fn park(
        &self,
        frames: Vec<ParkedFrame>,
    ) -> impl Future<Output = Result<Vec<ParkOutcome>, StoreError>> + Send;

    /// Lists up to `limit` frames parked for `recipient` with a sequence number
    /// greater than `after_seq`, in arrival order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredFrame>, StoreError>> + Send;

    /// Deletes the frame `id` from `sender` parked for `recipient` (delivery ack).
    ///
    /// The frame is looked for from the oldest end of the mailbox, where acks
    /// land since they come in delivery order; if the same (sender, id) is
    /// parked twice (a resend after the de-duplication window), the older copy
    /// goes first.
    ///
    /// Returns what was removed, or `None` when nothing was parked under that
    /// key (already removed: the call is idempotent).
    ///
    /// # Errors
    ///
    /// As [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the removal.
    fn remove(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> impl Future<Output = Result<Option<Removed>, StoreError>> + Send;

    /// Counts the frames parked for `recipient` (for the mailbox quota).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn pending_count(
        &self,
        recipient: &DeviceKey,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Lists every device that has parked frames (for recovery after a restart).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn recipients(&self) -> impl Future<Output = Result<Vec<DeviceKey>, StoreError>> + Send;

    /// Binds `user` to `identity`; succeeds if the user was unbound or is
    /// already bound to an equal identity.
    ///
    /// # Errors
    ///
    /// [`StoreError::IdentityConflict`] when the user is bound to another
    /// identity; write errors as [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the binding.
    fn bind_identity(
        &self,
        user: &str,
        identity: Identity,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns the identity bound to `user`, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn identity(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<Identity>, StoreError>> + Send;

    /// Registers a device of a user; returns `true` if it was new.
    ///
    /// # Errors
    ///
    /// Write errors as [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the registration.
    fn add_device(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Unregisters a device and drops its prekeys; returns `true` if it existed.
    ///
    /// Frames parked for the device stay until they are removed.
    ///
    /// # Errors
    ///
    /// Write errors as [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the removal.
    fn remove_device(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Lists the device numbers of `user`, ascending.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn devices(&self, user: &str) -> impl Future<Output = Result<Vec<u32>, StoreError>> + Send;

    /// Sets (or replaces) the signed prekey of a device.
    ///
    /// # Errors
    ///
    /// Write errors as [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the change.
    fn set_signed_prekey(
        &self,
        device: &DeviceKey,
        prekey: SignedPrekey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns the signed prekey of a device, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn signed_prekey(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<Option<SignedPrekey>, StoreError>> + Send;

    /// Adds one-time prekeys to a device (an existing id is replaced); returns
    /// how many the device has afterwards.
    ///
    /// # Errors
    ///
    /// Write errors as [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the upload.
    fn add_one_time_prekeys(
        &self,
        device: &DeviceKey,
        prekeys: Vec<OneTimePrekey>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Removes and returns one one-time prekey of a device (the lowest id).
    ///
    /// Each prekey is handed out exactly once, also under concurrent calls.
    ///
    /// # Errors
    ///
    /// Write errors as [`Store::park`]; on an error no prekey was consumed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may consume a prekey that nobody receives, which
    /// costs one prekey and nothing else.
    fn take_one_time_prekey(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<Option<OneTimePrekey>, StoreError>> + Send;

    /// Counts the one-time prekeys a device has left.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn one_time_prekey_count(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Creates a group with its first members; returns its version (1).
    ///
    /// # Errors
    ///
    /// [`StoreError::GroupExists`] if the id is taken; write errors as
    /// [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the creation.
    fn create_group(
        &self,
        group: &str,
        members: Vec<String>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Changes a group's members in one transaction: takes `remove` out,
    /// then puts `add` in (so a name in both ends up a member). Returns the
    /// version, bumped once if a member was taken out or put in.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownGroup`] if there is no such group; write errors as
    /// [`Store::park`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the change.
    fn change_group_members(
        &self,
        group: &str,
        remove: Vec<String>,
        add: Vec<String>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Returns a group's members (sorted) and version, if it exists.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the store cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn group(&self, group: &str) -> impl Future<Output = Result<Option<Group>, StoreError>> + Send;
}
