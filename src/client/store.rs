//! The client's local store: one redb file in the state directory.
//!
//! redb rather than files written by rename: every change the client makes
//! touches several records at once (a ratchet session, the consumed prekey,
//! the seen id and the stored message when a message arrives; a session and
//! the sealed outbox entry when one is sent), and a redb write transaction
//! commits them together with one fsync, so a crash leaves either all or
//! none of them. The crate already depends on redb for the server store.
//!
//! Tables (values are MessagePack records):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `"device"`, `"identity"`, `"prekeys"` | the device id, its identity key pair, its prekey secrets |
//! | `counters` | name | `u64` (next sequence number) |
//! | `sessions` | (user, device) | current ratchet session and older ones still accepted |
//! | `devices` | user | the user's device numbers as last seen |
//! | `outbox` | sequence | a message not yet accepted by the server |
//! | `seen` | (user, device, message id) | when it was stored (de-duplication) |
//! | `history` | sequence | a message sent or received |
//! | `sent_index` | message id | sequence of the outgoing history record |
//! | `groups` | group id | members, version and this device's sender key |
//! | `group_receivers` | (group id, user, device) | a member device's sender key |

use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::CryptoRng;
use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{GroupReceiver, GroupSender, IdentityKeyPair, PrekeySecrets, Session};
use crate::protocol::{Conversation, DeviceId, GroupId, MessageId, UserName};

use super::{ClientError, Content};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const SESSIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("sessions");
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const SEEN: TableDefinition<(&str, u32, [u8; 16]), u64> = TableDefinition::new("seen");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const SENT_INDEX: TableDefinition<[u8; 16], u64> = TableDefinition::new("sent_index");
const GROUPS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("groups");
const GROUP_RECEIVERS: TableDefinition<([u8; 16], &str, u32), &[u8]> =
    TableDefinition::new("group_receivers");

const DEVICE_KEY: &str = "device";
const IDENTITY_KEY: &str = "identity";
const PREKEYS_KEY: &str = "prekeys";
const SEQ_KEY: &str = "seq";
const KEY_CHECK: &str = "key_check";
const KEY_CHECK_TEXT: &str = "courier client store";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// The name of the store file inside the state directory.
pub(crate) const STORE_FILE: &str = "client.redb";

/// Older sessions with one peer device kept besides the current one (two
/// devices that start sessions with each other at the same time each end
/// up with two; a message opens with whichever matches).
const MAX_PREVIOUS_SESSIONS: usize = 4;

/// The local store of one device.
#[derive(Debug)]
pub(crate) struct LocalStore {
    db: Database,
    codec: Codec,
}

/// The ratchet sessions with one peer device.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) current: Session,
    pub(crate) previous: Vec<Session>,
}

impl SessionRecord {
    pub(crate) fn new(session: Session) -> Self {
        Self {
            current: session,
            previous: Vec::new(),
        }
    }

    /// Makes `session` current, keeping the old current one as a fallback.
    pub(crate) fn promote(&mut self, session: Session) {
        let old = std::mem::replace(&mut self.current, session);
        self.previous.insert(0, old);
        self.previous.truncate(MAX_PREVIOUS_SESSIONS);
    }
}

/// Where an outbox entry goes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Target {
    /// Every device of a user, sealed pairwise (`SendToUser`).
    User(UserName),
    /// A group, sealed once with this device's sender key (`SendToGroup`).
    Group(GroupId),
    /// A group to create (`CreateGroup`).
    CreateGroup {
        group: GroupId,
        members: Vec<UserName>,
    },
}

impl Target {
    /// The user of a pairwise entry.
    pub(crate) fn user(&self) -> Option<&UserName> {
        match self {
            Self::User(user) => Some(user),
            _ => None,
        }
    }
}

/// A group this device is a member of.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    /// The membership version last seen (0 until the server confirms).
    pub(crate) version: u64,
    /// Every member, this user included.
    pub(crate) members: Vec<UserName>,
    /// This device's sender key in the group.
    pub(crate) sender: GroupSender,
    /// Whether the current sender key went out to the current members.
    pub(crate) distributed: bool,
}

/// A message waiting for the server's `Accepted`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct OutboxEntry {
    pub(crate) id: MessageId,
    pub(crate) target: Target,
    /// A sender key for this group: group messages wait until it is accepted.
    pub(crate) for_group: Option<GroupId>,
    /// The encoded [`Content`], kept to seal again for a changed device list.
    #[serde(with = "bin")]
    pub(crate) content: Vec<u8>,
    /// The sealed copies once sealed: (device, body).
    pub(crate) copies: Option<Vec<SealedBody>>,
    /// Whether the application hears of `Accepted` (not for copies to the
    /// sender's own devices).
    pub(crate) notify: bool,
    pub(crate) created_ms: u64,
}

/// One sealed copy of an outbox entry.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SealedBody {
    pub(crate) device: u32,
    #[serde(with = "bin")]
    pub(crate) body: Vec<u8>,
}

/// Which way a stored message went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Direction {
    /// Received from this device.
    Incoming(DeviceId),
    /// Sent by this user (from this device or, for a `Sent` copy, another).
    Outgoing,
}

/// How far an outgoing message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// In the outbox.
    Pending,
    /// The server accepted it (one tick).
    Sent,
    /// A recipient device stored it (two ticks).
    Delivered,
    /// The recipient read it.
    Read,
    /// Received (incoming messages).
    Received,
}

/// A message as kept in the local history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredMessage {
    /// Position in the history (grows with every message).
    pub seq: u64,
    /// The conversation: the other user, or the group.
    pub conversation: Conversation,
    /// Who sent it.
    pub direction: Direction,
    /// The message id.
    pub id: MessageId,
    /// The content.
    pub content: Content,
    /// When it was sent (server time for incoming, local time for outgoing),
    /// milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Delivery state.
    pub status: Status,
}

/// One conversation in [`Client::conversations`](super::Client::conversations).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationSummary {
    /// The other user, or the group.
    pub conversation: Conversation,
    /// Messages in the history.
    pub messages: usize,
    /// The latest message.
    pub last: StoredMessage,
}

#[derive(Serialize, Deserialize)]
struct HistoryRecord {
    conversation: Conversation,
    direction: Direction,
    id: MessageId,
    #[serde(with = "bin")]
    content: Vec<u8>,
    at_ms: u64,
    status: Status,
}

impl LocalStore {
    /// Opens (or creates) the store of `device` in `dir`. A new store gets a
    /// fresh identity and an empty prekey store.
    pub(crate) fn open<R: CryptoRng + ?Sized>(
        dir: &Path,
        device: &DeviceId,
        key: Option<&StorageKey>,
        rng: &mut R,
    ) -> Result<(Self, IdentityKeyPair, PrekeySecrets), ClientError> {
        create_private_dir(dir)?;
        let path = dir.join(STORE_FILE);
        let db = Database::create(&path).map_err(ClientError::store)?;
        let store = Self {
            db,
            codec: Codec {
                key: key.map(|k| k.0.clone()),
            },
        };

        let txn = store.db.begin_write().map_err(ClientError::store)?;
        let (identity, prekeys) = {
            let mut meta = txn.open_table(META).map_err(ClientError::store)?;
            txn.open_table(COUNTERS).map_err(ClientError::store)?;
            txn.open_table(SESSIONS).map_err(ClientError::store)?;
            txn.open_table(DEVICES).map_err(ClientError::store)?;
            txn.open_table(OUTBOX).map_err(ClientError::store)?;
            txn.open_table(SEEN).map_err(ClientError::store)?;
            txn.open_table(HISTORY).map_err(ClientError::store)?;
            txn.open_table(SENT_INDEX).map_err(ClientError::store)?;
            txn.open_table(GROUPS).map_err(ClientError::store)?;
            txn.open_table(GROUP_RECEIVERS)
                .map_err(ClientError::store)?;

            let check = meta
                .get(KEY_CHECK)
                .map_err(ClientError::store)?
                .map(|bytes| bytes.value().to_vec());
            match check {
                Some(bytes) => {
                    let check: String = store
                        .codec
                        .decode(META.name(), &bytes)
                        .map_err(|_| ClientError::StorageKey)?;
                    if check != KEY_CHECK_TEXT {
                        return Err(ClientError::StorageKey);
                    }
                }
                None => {
                    let check = store.codec.encode(META.name(), KEY_CHECK_TEXT)?;
                    meta.insert(KEY_CHECK, check.as_slice())
                        .map_err(ClientError::store)?;
                }
            }
            let found: Option<DeviceId> = match meta.get(DEVICE_KEY).map_err(ClientError::store)? {
                Some(bytes) => Some(store.codec.decode(META.name(), bytes.value())?),
                None => None,
            };
            match found {
                Some(found) if &found != device => {
                    return Err(ClientError::WrongDevice {
                        found: found.to_string(),
                        wanted: device.to_string(),
                    });
                }
                Some(_) => {
                    let identity = match meta.get(IDENTITY_KEY).map_err(ClientError::store)? {
                        Some(bytes) => store.codec.decode(META.name(), bytes.value())?,
                        None => return Err(ClientError::store("identity missing")),
                    };
                    let prekeys = match meta.get(PREKEYS_KEY).map_err(ClientError::store)? {
                        Some(bytes) => store.codec.decode(META.name(), bytes.value())?,
                        None => PrekeySecrets::new(),
                    };
                    (identity, prekeys)
                }
                None => {
                    let identity = IdentityKeyPair::generate(rng);
                    let prekeys = PrekeySecrets::new();
                    meta.insert(
                        DEVICE_KEY,
                        store.codec.encode(META.name(), device)?.as_slice(),
                    )
                    .map_err(ClientError::store)?;
                    meta.insert(
                        IDENTITY_KEY,
                        store.codec.encode(META.name(), &identity)?.as_slice(),
                    )
                    .map_err(ClientError::store)?;
                    meta.insert(
                        PREKEYS_KEY,
                        store.codec.encode(META.name(), &prekeys)?.as_slice(),
                    )
                    .map_err(ClientError::store)?;
                    tracing::info!(device = %device, "created device identity");
                    (identity, prekeys)
                }
            }
        };
        txn.commit().map_err(ClientError::store)?;
        Ok((store, identity, prekeys))
    }

    /// Runs `f` in one write transaction and commits it durably.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let txn = self.db.begin_write().map_err(ClientError::store)?;
        let mut wrapped = Txn {
            txn: &txn,
            codec: &self.codec,
        };
        let value = f(&mut wrapped)?;
        txn.commit().map_err(ClientError::store)?;
        Ok(value)
    }

    /// The sessions with one peer device.
    pub(crate) fn session(&self, peer: &DeviceId) -> Result<Option<SessionRecord>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(SESSIONS).map_err(ClientError::store)?;
        let value = table
            .get((peer.user.as_str(), peer.device))
            .map_err(ClientError::store)?;
        value
            .map(|bytes| self.codec.decode(SESSIONS.name(), bytes.value()))
            .transpose()
    }

    /// The sessions with every device of `user`, by device number.
    pub(crate) fn sessions_of(
        &self,
        user: &UserName,
    ) -> Result<Vec<(u32, SessionRecord)>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(SESSIONS).map_err(ClientError::store)?;
        let range = table
            .range((user.as_str(), 0)..=(user.as_str(), u32::MAX))
            .map_err(ClientError::store)?;
        let mut out = Vec::new();
        for item in range {
            let (key, value) = item.map_err(ClientError::store)?;
            out.push((
                key.value().1,
                self.codec.decode(SESSIONS.name(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// The device numbers of every user whose list is known.
    pub(crate) fn all_devices(&self) -> Result<Vec<(UserName, Vec<u32>)>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(DEVICES).map_err(ClientError::store)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(ClientError::store)? {
            let (key, value) = item.map_err(ClientError::store)?;
            let user = UserName::new(key.value()).map_err(ClientError::store)?;
            out.push((user, self.codec.decode(DEVICES.name(), value.value())?));
        }
        Ok(out)
    }

    /// Every outbox entry in send order.
    pub(crate) fn outbox(&self) -> Result<Vec<(u64, OutboxEntry)>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(OUTBOX).map_err(ClientError::store)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(ClientError::store)? {
            let (key, value) = item.map_err(ClientError::store)?;
            out.push((
                key.value(),
                self.codec.decode(OUTBOX.name(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// Whether the message (`from`, `id`) was already stored.
    pub(crate) fn seen(&self, from: &DeviceId, id: &MessageId) -> Result<bool, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(SEEN).map_err(ClientError::store)?;
        let found = table
            .get((from.user.as_str(), from.device, id.0))
            .map_err(ClientError::store)?;
        Ok(found.is_some())
    }

    /// A group this device is a member of.
    pub(crate) fn group(&self, group: &GroupId) -> Result<Option<GroupRecord>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(GROUPS).map_err(ClientError::store)?;
        let value = table.get(group.0).map_err(ClientError::store)?;
        value
            .map(|bytes| self.codec.decode(GROUPS.name(), bytes.value()))
            .transpose()
    }

    /// Every group this device is a member of.
    pub(crate) fn groups(&self) -> Result<Vec<(GroupId, GroupRecord)>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(GROUPS).map_err(ClientError::store)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(ClientError::store)? {
            let (key, value) = item.map_err(ClientError::store)?;
            out.push((
                GroupId(key.value()),
                self.codec.decode(GROUPS.name(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// The sender key of one member device in a group.
    pub(crate) fn group_receiver(
        &self,
        group: &GroupId,
        member: &DeviceId,
    ) -> Result<Option<GroupReceiver>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read
            .open_table(GROUP_RECEIVERS)
            .map_err(ClientError::store)?;
        let value = table
            .get((group.0, member.user.as_str(), member.device))
            .map_err(ClientError::store)?;
        value
            .map(|bytes| self.codec.decode(GROUP_RECEIVERS.name(), bytes.value()))
            .transpose()
    }

    /// The whole history in order (oldest first).
    pub(crate) fn history(&self) -> Result<Vec<StoredMessage>, ClientError> {
        let read = self.db.begin_read().map_err(ClientError::store)?;
        let table = read.open_table(HISTORY).map_err(ClientError::store)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(ClientError::store)? {
            let (key, value) = item.map_err(ClientError::store)?;
            out.push(stored_message(&self.codec, key.value(), value.value())?);
        }
        Ok(out)
    }
}

/// One write transaction of the local store.
pub(crate) struct Txn<'a> {
    txn: &'a WriteTransaction,
    codec: &'a Codec,
}

impl Txn<'_> {
    /// Takes the next sequence number.
    pub(crate) fn next_seq(&mut self) -> Result<u64, ClientError> {
        let mut table = self.txn.open_table(COUNTERS).map_err(ClientError::store)?;
        let next = table
            .get(SEQ_KEY)
            .map_err(ClientError::store)?
            .map_or(1, |v| v.value());
        table
            .insert(SEQ_KEY, next + 1)
            .map_err(ClientError::store)?;
        Ok(next)
    }

    pub(crate) fn put_prekeys(&mut self, prekeys: &PrekeySecrets) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(META).map_err(ClientError::store)?;
        table
            .insert(
                PREKEYS_KEY,
                self.codec.encode(META.name(), prekeys)?.as_slice(),
            )
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn put_session(
        &mut self,
        peer: &DeviceId,
        record: &SessionRecord,
    ) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(SESSIONS).map_err(ClientError::store)?;
        table
            .insert(
                (peer.user.as_str(), peer.device),
                self.codec.encode(SESSIONS.name(), record)?.as_slice(),
            )
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn put_group(
        &mut self,
        group: &GroupId,
        record: &GroupRecord,
    ) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(GROUPS).map_err(ClientError::store)?;
        table
            .insert(
                group.0,
                self.codec.encode(GROUPS.name(), record)?.as_slice(),
            )
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn remove_group(&mut self, group: &GroupId) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(GROUPS).map_err(ClientError::store)?;
        table.remove(group.0).map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn put_group_receiver(
        &mut self,
        group: &GroupId,
        member: &DeviceId,
        receiver: &GroupReceiver,
    ) -> Result<(), ClientError> {
        let mut table = self
            .txn
            .open_table(GROUP_RECEIVERS)
            .map_err(ClientError::store)?;
        table
            .insert(
                (group.0, member.user.as_str(), member.device),
                self.codec
                    .encode(GROUP_RECEIVERS.name(), receiver)?
                    .as_slice(),
            )
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn remove_session(&mut self, peer: &DeviceId) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(SESSIONS).map_err(ClientError::store)?;
        table
            .remove((peer.user.as_str(), peer.device))
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn put_devices(
        &mut self,
        user: &UserName,
        devices: &[u32],
    ) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(DEVICES).map_err(ClientError::store)?;
        table
            .insert(
                user.as_str(),
                self.codec.encode(DEVICES.name(), &devices)?.as_slice(),
            )
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn put_outbox(&mut self, seq: u64, entry: &OutboxEntry) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(OUTBOX).map_err(ClientError::store)?;
        table
            .insert(seq, self.codec.encode(OUTBOX.name(), entry)?.as_slice())
            .map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn remove_outbox(&mut self, seq: u64) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(OUTBOX).map_err(ClientError::store)?;
        table.remove(seq).map_err(ClientError::store)?;
        Ok(())
    }

    pub(crate) fn mark_seen(
        &mut self,
        from: &DeviceId,
        id: &MessageId,
        now_ms: u64,
    ) -> Result<(), ClientError> {
        let mut table = self.txn.open_table(SEEN).map_err(ClientError::store)?;
        table
            .insert((from.user.as_str(), from.device, id.0), now_ms)
            .map_err(ClientError::store)?;
        Ok(())
    }

    /// Appends a message to the history; outgoing ones are indexed by id so
    /// that their status can change.
    pub(crate) fn append_history(
        &mut self,
        conversation: &Conversation,
        direction: Direction,
        id: MessageId,
        content: &[u8],
        at_ms: u64,
        status: Status,
    ) -> Result<u64, ClientError> {
        let seq = self.next_seq()?;
        let outgoing = direction == Direction::Outgoing;
        let record = HistoryRecord {
            conversation: conversation.clone(),
            direction,
            id,
            content: content.to_vec(),
            at_ms,
            status,
        };
        let mut table = self.txn.open_table(HISTORY).map_err(ClientError::store)?;
        table
            .insert(seq, self.codec.encode(HISTORY.name(), &record)?.as_slice())
            .map_err(ClientError::store)?;
        if outgoing {
            let mut index = self
                .txn
                .open_table(SENT_INDEX)
                .map_err(ClientError::store)?;
            index.insert(id.0, seq).map_err(ClientError::store)?;
        }
        Ok(seq)
    }

    /// Raises the status of an outgoing message (never lowers it). False
    /// when the id is not one of this device's recorded messages.
    pub(crate) fn raise_status(
        &mut self,
        id: &MessageId,
        status: Status,
    ) -> Result<bool, ClientError> {
        let index = self
            .txn
            .open_table(SENT_INDEX)
            .map_err(ClientError::store)?;
        let Some(seq) = index
            .get(id.0)
            .map_err(ClientError::store)?
            .map(|v| v.value())
        else {
            return Ok(false);
        };
        let mut table = self.txn.open_table(HISTORY).map_err(ClientError::store)?;
        let record = match table.get(seq).map_err(ClientError::store)? {
            Some(bytes) => self
                .codec
                .decode::<HistoryRecord>(HISTORY.name(), bytes.value())?,
            None => return Ok(false),
        };
        if record.status < status {
            let record = HistoryRecord { status, ..record };
            table
                .insert(seq, self.codec.encode(HISTORY.name(), &record)?.as_slice())
                .map_err(ClientError::store)?;
        }
        Ok(true)
    }
}

fn stored_message(codec: &Codec, seq: u64, bytes: &[u8]) -> Result<StoredMessage, ClientError> {
    let record: HistoryRecord = codec.decode(HISTORY.name(), bytes)?;
    Ok(StoredMessage {
        seq,
        conversation: record.conversation,
        direction: record.direction,
        id: record.id,
        content: Content::from_bytes(&record.content)?,
        at_ms: record.at_ms,
        status: record.status,
    })
}

/// A key that encrypts the local store's records (AES-256-GCM).
#[derive(Clone)]
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// A storage key from 32 secret bytes (from the operating system's
    /// keychain, or derived from a passphrase with a password hash).
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

/// Encodes records as MessagePack and, with a storage key, seals them:
/// `nonce (12 random bytes) || AES-256-GCM(record) || tag`, with the table
/// name as associated data.
#[derive(Debug)]
struct Codec {
    key: Option<Zeroizing<[u8; 32]>>,
}

impl Codec {
    fn encode<T: Serialize + ?Sized>(
        &self,
        table: &str,
        value: &T,
    ) -> Result<Vec<u8>, ClientError> {
        let plain = Zeroizing::new(rmp_serde::to_vec(value).map_err(ClientError::store)?);
        let Some(key) = &self.key else {
            return Ok(plain.to_vec());
        };
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let mut out = Vec::with_capacity(NONCE_BYTES + plain.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        let cipher = Aes256Gcm::new(&(**key).into());
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                table.as_bytes(),
                (&mut out[NONCE_BYTES..]).into(),
            )
            .map_err(|_| ClientError::store("record too large to seal"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        let Some(key) = &self.key else {
            return rmp_serde::from_slice(bytes).map_err(ClientError::store);
        };
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(ClientError::StorageKey);
        }
        let (nonce, rest) = bytes.split_at(NONCE_BYTES);
        let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| ClientError::StorageKey)?;
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| ClientError::StorageKey)?;
        let mut plain = Zeroizing::new(body.to_vec());
        let cipher = Aes256Gcm::new(&(**key).into());
        cipher
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                table.as_bytes(),
                (&mut plain[..]).into(),
                &tag,
            )
            .map_err(|_| ClientError::StorageKey)?;
        rmp_serde::from_slice(&plain).map_err(ClientError::store)
    }
}

/// Creates the state directory readable by its owner only.
fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|err| ClientError::Store {
        reason: format!("state directory {}: {err}", dir.display()),
    })
}

/// `Vec<u8>` as a MessagePack bin rather than an array of integers.
mod bin {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, n: u32) -> DeviceId {
        DeviceId::new(UserName::new(name).unwrap(), n)
    }

    #[test]
    fn reopening_keeps_the_identity_and_refuses_another_device() {
        let dir = tempfile::tempdir().unwrap();
        let me = device("alice", 1);
        let (store, identity, _) =
            LocalStore::open(dir.path(), &me, None, &mut rand::rng()).unwrap();
        drop(store);
        let (_store, again, _) = LocalStore::open(dir.path(), &me, None, &mut rand::rng()).unwrap();
        assert_eq!(identity.public(), again.public());
        drop(_store);
        let err =
            LocalStore::open(dir.path(), &device("alice", 2), None, &mut rand::rng()).unwrap_err();
        assert!(matches!(err, ClientError::WrongDevice { .. }));
    }

    #[test]
    fn outbox_seen_and_history_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let me = device("alice", 1);
        let bob = device("bob", 1);
        let id = MessageId([9; 16]);
        {
            let (store, _, _) = LocalStore::open(dir.path(), &me, None, &mut rand::rng()).unwrap();
            store
                .write(|txn| {
                    let seq = txn.next_seq()?;
                    txn.put_outbox(
                        seq,
                        &OutboxEntry {
                            id,
                            target: Target::User(bob.user.clone()),
                            for_group: None,
                            content: vec![1, 2, 3],
                            copies: None,
                            notify: true,
                            created_ms: 5,
                        },
                    )?;
                    txn.mark_seen(&bob, &id, 7)?;
                    let text = Content::text("hi").to_bytes()?;
                    txn.append_history(
                        &Conversation::Direct(bob.user.clone()),
                        Direction::Outgoing,
                        id,
                        &text,
                        5,
                        Status::Pending,
                    )?;
                    assert!(txn.raise_status(&id, Status::Delivered)?);
                    assert!(!txn.raise_status(&MessageId([1; 16]), Status::Read)?);
                    txn.raise_status(&id, Status::Sent).map(drop)
                })
                .unwrap();
        }
        let (store, _, _) = LocalStore::open(dir.path(), &me, None, &mut rand::rng()).unwrap();
        let outbox = store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].1.content, vec![1, 2, 3]);
        assert!(store.seen(&bob, &id).unwrap());
        assert!(!store.seen(&bob, &MessageId([1; 16])).unwrap());
        let history = store.history().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, Status::Delivered);
        assert_eq!(history[0].content, Content::text("hi"));
    }

    #[test]
    fn storage_key_seals_records_and_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let me = device("alice", 1);
        let key = StorageKey::new([7; 32]);
        let secret = "meet me by the old mill";
        {
            let (store, _, _) =
                LocalStore::open(dir.path(), &me, Some(&key), &mut rand::rng()).unwrap();
            store
                .write(|txn| {
                    let text = Content::text(secret).to_bytes()?;
                    let with_bob = Conversation::Direct(UserName::new("bob").unwrap());
                    txn.append_history(
                        &with_bob,
                        Direction::Outgoing,
                        MessageId([3; 16]),
                        &text,
                        1,
                        Status::Sent,
                    )
                    .map(drop)
                })
                .unwrap();
            assert_eq!(store.history().unwrap()[0].content, Content::text(secret));
        }
        let file = std::fs::read(dir.path().join(STORE_FILE)).unwrap();
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));

        let wrong = StorageKey::new([8; 32]);
        for attempt in [Some(&wrong), None] {
            let err = LocalStore::open(dir.path(), &me, attempt, &mut rand::rng()).unwrap_err();
            assert_eq!(err, ClientError::StorageKey);
        }
        let (store, _, _) =
            LocalStore::open(dir.path(), &me, Some(&key), &mut rand::rng()).unwrap();
        assert_eq!(store.history().unwrap().len(), 1);
        assert_eq!(format!("{key:?}"), "StorageKey(<redacted>)");
    }

    #[test]
    fn plain_store_refuses_a_storage_key() {
        let dir = tempfile::tempdir().unwrap();
        let me = device("alice", 1);
        drop(LocalStore::open(dir.path(), &me, None, &mut rand::rng()).unwrap());
        let key = StorageKey::new([7; 32]);
        let err = LocalStore::open(dir.path(), &me, Some(&key), &mut rand::rng()).unwrap_err();
        assert_eq!(err, ClientError::StorageKey);
    }
}
