//! The redb tables and the operations applied inside one write transaction.
//!
//! Keys are tuples, which redb orders element by element, so every per-device
//! or per-user listing is a range over a key prefix. Parked frames are the
//! exception: they live in a log keyed by sequence number alone, indexed per
//! recipient in memory ([`super::frames`]).

use std::collections::HashSet;
use std::ops::{Bound, RangeInclusive};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::super::{
    DeviceKey, Group, Identity, MessageId, OneTimePrekey, ParkOutcome, ParkedFrame, Removed,
    SignedPrekey, StoreError, StoredFrame,
};
use super::dedup::{DEDUP_LOG, DedupDelta, DedupIndex, DedupWrites};
use super::frames::{FRAME_LOG, FrameIndex, FrameV};

type DeviceK = (&'static str, u32);
type OldFrameK = (&'static str, u32, u64);
type OldFrameV = (
    &'static str,
    u32,
    [u8; 16],
    Option<&'static str>,
    &'static [u8],
    u64,
);
type IdentityV = ([u8; 32], [u8; 32], &'static [u8]);
type SignedV = (u32, [u8; 32], &'static [u8]);
type PrekeyK = (&'static str, u32, u32);
type MemberK = (&'static str, &'static str);

/// Before the frame log: recipient device and sequence number to the frame.
/// Read once to move its frames into the log, then deleted.
const OLD_FRAMES: TableDefinition<OldFrameK, OldFrameV> = TableDefinition::new("frames");
/// Before the frame log: recipient device to its number of parked frames.
const OLD_MAILBOXES: TableDefinition<DeviceK, u64> = TableDefinition::new("mailboxes");
/// Counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const IDENTITIES: TableDefinition<&str, IdentityV> = TableDefinition::new("identities");
const DEVICES: TableDefinition<DeviceK, ()> = TableDefinition::new("devices");
const SIGNED_PREKEYS: TableDefinition<DeviceK, SignedV> = TableDefinition::new("signed_prekeys");
const ONE_TIME_PREKEYS: TableDefinition<PrekeyK, [u8; 32]> =
    TableDefinition::new("one_time_prekeys");
/// Group id to its membership version.
const GROUPS: TableDefinition<&str, u64> = TableDefinition::new("groups");
const GROUP_MEMBERS: TableDefinition<MemberK, ()> = TableDefinition::new("group_members");

const NEXT_SEQ: &str = "next_seq";

/// A mutation the writer applies in a batch.
#[derive(Debug)]
pub(super) enum Request {
    Park(Vec<ParkedFrame>),
    Remove(DeviceKey, DeviceKey, MessageId),
    BindIdentity(String, Identity),
    AddDevice(DeviceKey),
    RemoveDevice(DeviceKey),
    SetSignedPrekey(DeviceKey, SignedPrekey),
    AddOneTimePrekeys(DeviceKey, Vec<OneTimePrekey>),
    TakeOneTimePrekey(DeviceKey),
    CreateGroup(String, Vec<String>),
    ChangeGroup {
        group: String,
        remove: Vec<String>,
        add: Vec<String>,
    },
}

impl Request {
    /// How many frames the request parks (for the batch-size metric).
    pub(super) fn frames(&self) -> usize {
        match self {
            Self::Park(frames) => frames.len(),
            _ => 0,
        }
    }
}

/// The answer to one [`Request`].
#[derive(Debug)]
pub(super) enum Response {
    Parked(Vec<ParkOutcome>),
    Removed(Option<Removed>),
    Done,
    Flag(bool),
    Count(u64),
    Prekey(Option<OneTimePrekey>),
}

/// The outcome of one request inside a transaction: the outer error aborts the
/// whole transaction (storage failure), the inner one answers only this request.
type Applied = Result<Result<Response, StoreError>, StoreError>;

/// Creates every table, so that read transactions never miss one, and moves
/// the frames of a database written before the frame log into it.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    migrate_frames(txn)?;
    super::dedup::migrate(txn)?;
    txn.open_table(META)?;
    txn.open_table(DEDUP_LOG)?;
    txn.open_table(IDENTITIES)?;
    txn.open_table(DEVICES)?;
    txn.open_table(SIGNED_PREKEYS)?;
    txn.open_table(ONE_TIME_PREKEYS)?;
    txn.open_table(GROUPS)?;
    txn.open_table(GROUP_MEMBERS)?;
    Ok(())
}

/// Moves frames from the per-recipient table into the log under their own
/// sequence numbers (which were already store-wide), then drops the old tables.
fn migrate_frames(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut log = txn.open_table(FRAME_LOG)?;
    let old_names: Vec<String> = txn
        .list_tables()?
        .map(|table| redb::TableHandle::name(&table).to_owned())
        .collect();
    if old_names.iter().any(|name| name == "frames") {
        let old = txn.open_table(OLD_FRAMES)?;
        let mut moved = 0u64;
        for entry in old.range(..)? {
            let (key, value) = entry?;
            let (user, device, seq) = key.value();
            let (sender, sender_device, id, group, body, sent_at_ms) = value.value();
            let frame = (
                user,
                device,
                sender,
                sender_device,
                id,
                group,
                body,
                sent_at_ms,
            );
            log.insert(seq, frame)?;
            moved += 1;
        }
        drop(old);
        txn.delete_table(OLD_FRAMES)?;
        tracing::info!(frames = moved, "parked frames moved into the frame log");
    }
    if old_names.iter().any(|name| name == "mailboxes") {
        txn.delete_table(OLD_MAILBOXES)?;
    }
    Ok(())
}

/// One answer per request of a batch.
pub(super) type Answers = Vec<Result<Response, StoreError>>;

/// Applies `requests` in order inside `txn`; returns one answer per request
/// and the change to the de-duplication index, to apply once committed.
///
/// # Errors
///
/// A storage error, after which the transaction must be dropped.
pub(super) fn apply_all(
    txn: &WriteTransaction,
    index: &DedupIndex,
    parked: &Mutex<FrameIndex>,
    requests: Vec<Request>,
    dedup_window: usize,
) -> Result<(Answers, DedupDelta), StoreError> {
    let mut writes = Writes::open(txn, index, parked, dedup_window)?;
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        answers.push(writes.apply(request)?);
    }
    let delta = writes.finish()?;
    Ok((answers, delta))
}

struct Writes<'t> {
    frames: Table<'t, u64, FrameV>,
    /// Locked while the batch is applied; readers see its changes early.
    parked: MutexGuard<'t, FrameIndex>,
    meta: Table<'t, &'static str, u64>,
    dedup: DedupWrites<'t>,
    identities: Table<'t, &'static str, IdentityV>,
    devices: Table<'t, DeviceK, ()>,
    signed: Table<'t, DeviceK, SignedV>,
    one_time: Table<'t, PrekeyK, [u8; 32]>,
    groups: Table<'t, &'static str, u64>,
    members: Table<'t, MemberK, ()>,
    next_seq: u64,
}

impl<'t> Writes<'t> {
    fn open(
        txn: &'t WriteTransaction,
        index: &'t DedupIndex,
        parked: &'t Mutex<FrameIndex>,
        dedup_window: usize,
    ) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let next_seq = meta.get(NEXT_SEQ)?.map_or(1, |seq| seq.value());
        Ok(Self {
            frames: txn.open_table(FRAME_LOG)?,
            parked: parked.lock(),
            meta,
            dedup: DedupWrites::new(txn.open_table(DEDUP_LOG)?, index, dedup_window),
            identities: txn.open_table(IDENTITIES)?,
            devices: txn.open_table(DEVICES)?,
            signed: txn.open_table(SIGNED_PREKEYS)?,
            one_time: txn.open_table(ONE_TIME_PREKEYS)?,
            groups: txn.open_table(GROUPS)?,
            members: txn.open_table(GROUP_MEMBERS)?,
            next_seq,
        })
    }

    fn finish(mut self) -> Result<DedupDelta, StoreError> {
        let entry = self.take_seq();
        self.meta.insert(NEXT_SEQ, self.next_seq)?;
        self.dedup.finish(entry)
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn apply(&mut self, request: Request) -> Applied {
        Ok(match request {
            Request::Park(frames) => Ok(Response::Parked(self.park(frames)?)),
            Request::Remove(recipient, sender, id) => {
                Ok(Response::Removed(self.remove(&recipient, &sender, id)?))
            }
            Request::BindIdentity(user, identity) => self.bind_identity(&user, &identity)?,
            Request::AddDevice(device) => {
                let key = (device.user.as_str(), device.device);
                Ok(Response::Flag(self.devices.insert(key, ())?.is_none()))
            }
            Request::RemoveDevice(device) => Ok(Response::Flag(self.remove_device(&device)?)),
            Request::SetSignedPrekey(device, prekey) => {
                let key = (device.user.as_str(), device.device);
                let value = (prekey.id, prekey.public, prekey.signature.as_slice());
                self.signed.insert(key, value)?;
                Ok(Response::Done)
            }
            Request::AddOneTimePrekeys(device, prekeys) => {
                for prekey in &prekeys {
                    let key = (device.user.as_str(), device.device, prekey.id);
                    self.one_time.insert(key, prekey.public)?;
                }
                Ok(Response::Count(count_range(
                    &self.one_time,
                    prekey_range(&device),
                )?))
            }
            Request::TakeOneTimePrekey(device) => {
                Ok(Response::Prekey(self.take_one_time_prekey(&device)?))
            }
            Request::CreateGroup(group, members) => self.create_group(&group, &members)?,
            Request::ChangeGroup { group, remove, add } => {
                self.change_group(&group, &remove, &add)?
            }
        })
    }

    fn park(&mut self, frames: Vec<ParkedFrame>) -> Result<Vec<ParkOutcome>, StoreError> {
        // (sender, id) fingerprints of this call, with whether an earlier
        // call recorded them.
        let mut checked: Vec<(u128, bool)> = Vec::new();
        // (recipient, sender, id) of the frames this call stored.
        let mut stored: HashSet<(&DeviceKey, &DeviceKey, MessageId)> = HashSet::new();
        let mut outcomes = Vec::with_capacity(frames.len());

        for frame in &frames {
            let sender = &frame.sender;
            let print = self.dedup.fingerprint(sender, frame.id);
            let known = checked
                .iter()
                .find(|(p, _)| *p == print)
                .map(|(_, duplicate)| *duplicate);
            let duplicate = match known {
                Some(duplicate) => duplicate,
                None => {
                    let seen = self.dedup.seen(print);
                    checked.push((print, seen));
                    if !seen {
                        self.dedup.record(sender, frame.id, print);
                    }
                    seen
                }
            };
            let recipient = &frame.recipient;
            let copy = (recipient, sender, frame.id);
            if !stored.insert(copy) {
                outcomes.push(ParkOutcome::Duplicate);
                continue;
            }
            if duplicate {
                outcomes.push(match self.find(recipient, sender, frame.id)? {
                    Some((seq, _)) => ParkOutcome::AlreadyParked { seq },
                    None => ParkOutcome::Duplicate,
                });
                continue;
            }

            let seq = self.take_seq();
            let value = (
                recipient.user.as_str(),
                recipient.device,
                sender.user.as_str(),
                sender.device,
                frame.id.0,
                frame.group.as_deref(),
                &frame.body[..],
                frame.sent_at_ms,
            );
            self.frames.insert(seq, value)?;
            let print = self.parked.print(&sender.user, sender.device, &frame.id.0);
            self.parked.push(recipient, seq, print);
            outcomes.push(ParkOutcome::Stored { seq });
        }
        Ok(outcomes)
    }

    /// The seq and send time of `recipient`'s parked copy of (`sender`, `id`).
    fn find(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        // The index narrows it down by hash; the log has the last word.
        let print = self.parked.print(&sender.user, sender.device, &id.0);
        for seq in self.parked.candidates(recipient, print) {
            let Some(value) = self.frames.get(seq)? else {
                continue;
            };
            let (_, _, from, from_device, frame_id, _, _, sent_at_ms) = value.value();
            if frame_id == id.0 && from_device == sender.device && from == sender.user {
                return Ok(Some((seq, sent_at_ms)));
            }
        }
        Ok(None)
    }

    fn remove(
        &mut self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<Removed>, StoreError> {
        // One descent of the tree per ack: remove the likely frame, then
        // check it is the one (a frame whose pair merely shares the hash
        // goes back).
        let print = self.parked.print(&sender.user, sender.device, &id.0);
        let mut found = None;
        for seq in self.parked.candidates(recipient, print) {
            let Some(old) = self.frames.remove(seq)? else {
                continue;
            };
            let value = old.value();
            let (_, _, from, from_device, frame_id, _, _, sent_at_ms) = value;
            if frame_id == id.0 && from_device == sender.device && from == sender.user {
                found = Some((seq, sent_at_ms));
                break;
            }
            let (user, device, from, from_device, frame_id, group, body, sent_at_ms) = value;
            let (user, from, group, body) = (
                user.to_owned(),
                from.to_owned(),
                group.map(str::to_owned),
                body.to_vec(),
            );
            drop(old);
            let value = (
                user.as_str(),
                device,
                from.as_str(),
                from_device,
                frame_id,
                group.as_deref(),
                body.as_slice(),
                sent_at_ms,
            );
            self.frames.insert(seq, value)?;
        }
        Ok(found.map(|(seq, sent_at_ms)| {
            self.parked.remove(recipient, seq);
            Removed {
                seq,
                sender: sender.clone(),
                sent_at_ms,
            }
        }))
    }

    fn bind_identity(&mut self, user: &str, identity: &Identity) -> Applied {
        let bound = self
            .identities
            .get(user)?
            .map(|v| decode_identity(v.value()));
        match bound {
            Some(bound) if bound == *identity => Ok(Ok(Response::Done)),
            Some(_) => Ok(Err(StoreError::IdentityConflict)),
            None => {
                let value = (
                    identity.signing_key,
                    identity.dh_key,
                    identity.signature.as_slice(),
                );
                self.identities.insert(user, value)?;
                Ok(Ok(Response::Done))
            }
        }
    }

    fn remove_device(&mut self, device: &DeviceKey) -> Result<bool, StoreError> {
        let key = (device.user.as_str(), device.device);
        let existed = self.devices.remove(key)?.is_some();
        self.signed.remove(key)?;
        self.one_time
            .retain_in(prekey_range(device), |_, _| false)?;
        Ok(existed)
    }

    fn take_one_time_prekey(
        &mut self,
        device: &DeviceKey,
    ) -> Result<Option<OneTimePrekey>, StoreError> {
        let first = self
            .one_time
            .range(prekey_range(device))?
            .next()
            .transpose()?
            .map(|(key, public)| OneTimePrekey {
                id: key.value().2,
                public: public.value(),
            });
        if let Some(prekey) = &first {
            self.one_time
                .remove((device.user.as_str(), device.device, prekey.id))?;
        }
        Ok(first)
    }

    fn create_group(&mut self, group: &str, members: &[String]) -> Applied {
        if self.groups.get(group)?.is_some() {
            return Ok(Err(StoreError::GroupExists));
        }
        self.groups.insert(group, 1)?;
        for member in members {
            self.members.insert((group, member.as_str()), ())?;
        }
        Ok(Ok(Response::Count(1)))
    }

    fn change_group(&mut self, group: &str, remove: &[String], add: &[String]) -> Applied {
        let Some(version) = self.groups.get(group)?.map(|v| v.value()) else {
            return Ok(Err(StoreError::UnknownGroup));
        };
        let mut changed = false;
        for member in remove {
            changed |= self.members.remove((group, member.as_str()))?.is_some();
        }
        for member in add {
            changed |= self.members.insert((group, member.as_str()), ())?.is_none();
        }
        let version = if changed { version + 1 } else { version };
        self.groups.insert(group, version)?;
        Ok(Ok(Response::Count(version)))
    }
}

fn prekey_range(device: &DeviceKey) -> RangeInclusive<(&str, u32, u32)> {
    let user = device.user.as_str();
    (user, device.device, 0)..=(user, device.device, u32::MAX)
}

fn count_range<K, V>(
    table: &impl ReadableTable<K, V>,
    range: impl redb::KeyRange<K>,
) -> Result<u64, StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let mut count = 0;
    for entry in table.range(range)? {
        entry?;
        count += 1;
    }
    Ok(count)
}

fn decode_identity(value: ([u8; 32], [u8; 32], &[u8])) -> Identity {
    Identity {
        signing_key: value.0,
        dh_key: value.1,
        signature: value.2.to_vec(),
    }
}

/// Reads inside one read transaction, begun before the index is consulted
/// (so every frame the index lists that the transaction misses is newer than
/// all it holds).
pub(super) struct Reads<'t> {
    pub(super) txn: &'t ReadTransaction,
    pub(super) parked: &'t Mutex<FrameIndex>,
}

impl Reads<'_> {
    pub(super) fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        let seqs = self.parked.lock().after(recipient, after_seq, limit);
        let table = self.txn.open_table(FRAME_LOG)?;
        let mut frames = Vec::with_capacity(seqs.len());
        for seq in seqs {
            // Parked after this transaction began, or not committed yet.
            let Some(value) = table.get(seq)? else {
                continue;
            };
            let (_, _, sender, device, id, group, body, sent_at_ms) = value.value();
            frames.push(StoredFrame {
                seq,
                frame: ParkedFrame {
                    recipient: recipient.clone(),
                    sender: DeviceKey::new(sender, device),
                    id: MessageId(id),
                    group: group.map(str::to_owned),
                    body: Bytes::copy_from_slice(body),
                    sent_at_ms,
                },
            });
        }
        Ok(frames)
    }

    pub(super) fn pending_count(&self, recipient: &DeviceKey) -> u64 {
        self.parked.lock().count(recipient)
    }

    pub(super) fn recipients(&self) -> Vec<DeviceKey> {
        let mut all = self.parked.lock().recipients();
        all.sort();
        all
    }

    pub(super) fn identity(&self, user: &str) -> Result<Option<Identity>, StoreError> {
        let table = self.txn.open_table(IDENTITIES)?;
        Ok(table.get(user)?.map(|v| decode_identity(v.value())))
    }

    pub(super) fn devices(&self, user: &str) -> Result<Vec<u32>, StoreError> {
        let table = self.txn.open_table(DEVICES)?;
        let mut devices = Vec::new();
        for entry in table.range((user, 0)..=(user, u32::MAX))? {
            devices.push(entry?.0.value().1);
        }
        Ok(devices)
    }

    pub(super) fn signed_prekey(
        &self,
        device: &DeviceKey,
    ) -> Result<Option<SignedPrekey>, StoreError> {
        let table = self.txn.open_table(SIGNED_PREKEYS)?;
        let key = (device.user.as_str(), device.device);
        Ok(table.get(key)?.map(|v| {
            let (id, public, signature) = v.value();
            SignedPrekey {
                id,
                public,
                signature: signature.to_vec(),
            }
        }))
    }

    pub(super) fn one_time_prekey_count(&self, device: &DeviceKey) -> Result<u64, StoreError> {
        let table = self.txn.open_table(ONE_TIME_PREKEYS)?;
        count_range(&table, prekey_range(device))
    }

    pub(super) fn group(&self, group: &str) -> Result<Option<Group>, StoreError> {
        let groups = self.txn.open_table(GROUPS)?;
        let Some(version) = groups.get(group)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let table = self.txn.open_table(GROUP_MEMBERS)?;
        let mut members = Vec::new();
        let range = (Bound::Included((group, "")), Bound::Unbounded);
        for entry in table.range(range)? {
            let (key, _) = entry?;
            let (owner, member) = key.value();
            if owner != group {
                break;
            }
            members.push(member.to_owned());
        }
        Ok(Some(Group { members, version }))
    }
}
