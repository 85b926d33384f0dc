//! The redb tables and the operations applied inside one write transaction.
//!
//! Keys are tuples, which redb orders element by element, so every per-device
//! or per-user listing is a range over a key prefix.

use std::collections::HashSet;
use std::ops::{Bound, RangeInclusive};

use bytes::Bytes;
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::super::{
    DeviceKey, Group, Identity, MessageId, OneTimePrekey, ParkOutcome, ParkedFrame, Removed,
    SignedPrekey, StoreError, StoredFrame,
};
use super::dedup::{DEDUP_LOG, DedupDelta, DedupIndex, DedupWrites};

type DeviceK = (&'static str, u32);
type FrameK = (&'static str, u32, u64);
type FrameV = (
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

/// Recipient device and sequence number to the frame.
const FRAMES: TableDefinition<FrameK, FrameV> = TableDefinition::new("frames");
/// Recipient device to its number of parked frames (absent when zero).
const MAILBOXES: TableDefinition<DeviceK, u64> = TableDefinition::new("mailboxes");
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
        members: Vec<String>,
        add: bool,
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

/// Creates every table, so that read transactions never miss one.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(FRAMES)?;
    txn.open_table(MAILBOXES)?;
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
    requests: Vec<Request>,
    dedup_window: usize,
) -> Result<(Answers, DedupDelta), StoreError> {
    let mut writes = Writes::open(txn, index, dedup_window)?;
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        answers.push(writes.apply(request)?);
    }
    let delta = writes.finish()?;
    Ok((answers, delta))
}

struct Writes<'t> {
    frames: Table<'t, FrameK, FrameV>,
    mailboxes: Table<'t, DeviceK, u64>,
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
        dedup_window: usize,
    ) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let next_seq = meta.get(NEXT_SEQ)?.map_or(1, |seq| seq.value());
        Ok(Self {
            frames: txn.open_table(FRAMES)?,
            mailboxes: txn.open_table(MAILBOXES)?,
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
        self.meta.insert(NEXT_SEQ, self.next_seq)?;
        self.dedup.finish()
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
            Request::ChangeGroup {
                group,
                members,
                add,
            } => self.change_group(&group, &members, add)?,
        })
    }

    fn park(&mut self, frames: Vec<ParkedFrame>) -> Result<Vec<ParkOutcome>, StoreError> {
        // (sender, id) pairs of this call, with whether an earlier call recorded them.
        let mut checked: Vec<(DeviceKey, MessageId, bool)> = Vec::new();
        // (recipient, sender, id) of the frames this call stored.
        let mut stored: HashSet<(&DeviceKey, &DeviceKey, MessageId)> = HashSet::new();
        let mut outcomes = Vec::with_capacity(frames.len());

        for frame in &frames {
            let sender = &frame.sender;
            let known = checked
                .iter()
                .find(|(s, id, _)| s == sender && *id == frame.id)
                .map(|(_, _, duplicate)| *duplicate);
            let duplicate = match known {
                Some(duplicate) => duplicate,
                None => {
                    let seen = self.dedup.seen(sender, frame.id);
                    checked.push((sender.clone(), frame.id, seen));
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
            let frame_key = (recipient.user.as_str(), recipient.device, seq);
            let value = (
                sender.user.as_str(),
                sender.device,
                frame.id.0,
                frame.group.as_deref(),
                &frame.body[..],
                frame.sent_at_ms,
            );
            self.frames.insert(frame_key, value)?;
            self.add_to_mailbox(recipient, 1)?;
            outcomes.push(ParkOutcome::Stored { seq });
        }

        for (sender, id, duplicate) in checked {
            if !duplicate {
                let seq = self.take_seq();
                self.dedup.record(&sender, id, seq)?;
            }
        }
        Ok(outcomes)
    }

    fn add_to_mailbox(&mut self, recipient: &DeviceKey, delta: i64) -> Result<(), StoreError> {
        let key = (recipient.user.as_str(), recipient.device);
        let count = self.mailboxes.get(key)?.map_or(0, |c| c.value());
        let count = count.saturating_add_signed(delta);
        if count == 0 {
            self.mailboxes.remove(key)?;
        } else {
            self.mailboxes.insert(key, count)?;
        }
        Ok(())
    }

    /// The seq and send time of `recipient`'s parked copy of (`sender`, `id`).
    fn find(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        // Acks come in delivery order, so the frame is near the oldest end.
        let user = recipient.user.as_str();
        let range = (user, recipient.device, 0)..=(user, recipient.device, u64::MAX);
        for entry in self.frames.range(range)? {
            let (key, value) = entry?;
            let (from, from_device, frame_id, _, _, sent_at_ms) = value.value();
            if frame_id == id.0 && from_device == sender.device && from == sender.user {
                return Ok(Some((key.value().2, sent_at_ms)));
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
        let Some((seq, sent_at_ms)) = self.find(recipient, sender, id)? else {
            return Ok(None);
        };
        self.frames
            .remove((recipient.user.as_str(), recipient.device, seq))?;
        self.add_to_mailbox(recipient, -1)?;
        Ok(Some(Removed {
            seq,
            sender: sender.clone(),
            sent_at_ms,
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

    fn change_group(&mut self, group: &str, members: &[String], add: bool) -> Applied {
        let Some(version) = self.groups.get(group)?.map(|v| v.value()) else {
            return Ok(Err(StoreError::UnknownGroup));
        };
        let mut changed = false;
        for member in members {
            let key = (group, member.as_str());
            changed |= if add {
                self.members.insert(key, ())?.is_none()
            } else {
                self.members.remove(key)?.is_some()
            };
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

/// Reads inside one read transaction.
pub(super) struct Reads<'t>(pub(super) &'t ReadTransaction);

impl Reads<'_> {
    pub(super) fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        let Some(from) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let table = self.0.open_table(FRAMES)?;
        let user = recipient.user.as_str();
        let range = (user, recipient.device, from)..=(user, recipient.device, u64::MAX);
        let mut frames = Vec::new();
        for entry in table.range(range)?.take(limit) {
            let (key, value) = entry?;
            let (sender, device, id, group, body, sent_at_ms) = value.value();
            frames.push(StoredFrame {
                seq: key.value().2,
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

    pub(super) fn pending_count(&self, recipient: &DeviceKey) -> Result<u64, StoreError> {
        let table = self.0.open_table(MAILBOXES)?;
        let key = (recipient.user.as_str(), recipient.device);
        Ok(table.get(key)?.map_or(0, |c| c.value()))
    }

    pub(super) fn recipients(&self) -> Result<Vec<DeviceKey>, StoreError> {
        let table = self.0.open_table(MAILBOXES)?;
        let mut all = Vec::new();
        for entry in table.range(..)? {
            let (key, _) = entry?;
            let (user, device) = key.value();
            all.push(DeviceKey::new(user, device));
        }
        Ok(all)
    }

    pub(super) fn identity(&self, user: &str) -> Result<Option<Identity>, StoreError> {
        let table = self.0.open_table(IDENTITIES)?;
        Ok(table.get(user)?.map(|v| decode_identity(v.value())))
    }

    pub(super) fn devices(&self, user: &str) -> Result<Vec<u32>, StoreError> {
        let table = self.0.open_table(DEVICES)?;
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
        let table = self.0.open_table(SIGNED_PREKEYS)?;
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
        let table = self.0.open_table(ONE_TIME_PREKEYS)?;
        count_range(&table, prekey_range(device))
    }

    pub(super) fn group(&self, group: &str) -> Result<Option<Group>, StoreError> {
        let groups = self.0.open_table(GROUPS)?;
        let Some(version) = groups.get(group)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let table = self.0.open_table(GROUP_MEMBERS)?;
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
