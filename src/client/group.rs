//! Groups: creation, sender keys (`docs/protocol.md` section 7.6) and
//! membership changes.

use crate::crypto::{GroupReceiver, GroupSender, SenderKeyDistribution};
use crate::protocol::{
    ClientFrame, Conversation, DeviceId, GroupChanged, GroupId, GroupInfo, MessageId, QueryGroup,
    UserName,
};

use super::conn::Connection;
use super::engine::Engine;
use super::store::{Direction, GroupRecord, OutboxEntry, SealedBody, Status, Target};
use super::{ClientError, Content, Event, now_ms};

impl Engine {
    /// Queues the creation of `group` with `members` (this user included
    /// implicitly) and keeps a fresh sender key for it.
    pub(crate) fn enqueue_create_group(
        &mut self,
        group: GroupId,
        members: Vec<UserName>,
    ) -> Result<(), ClientError> {
        let me = self.me().user.clone();
        let mut others: Vec<UserName> = members.into_iter().filter(|m| *m != me).collect();
        others.sort();
        others.dedup();
        let mut all = others.clone();
        all.push(me);
        let record = GroupRecord {
            version: 0,
            members: all,
            sender: GroupSender::generate(&mut rand::rng()),
            distributed: false,
        };
        let target = Target::CreateGroup {
            group,
            members: others,
        };
        let mut entry = OutboxEntry::new(MessageId(rand::random()), target, Vec::new(), false);
        entry.copies = Some(Vec::new());
        self.store_entries(vec![entry], |txn| txn.put_group(&group, &record))
    }

    /// Seals `content` once with this device's sender key and queues it for
    /// the group, after this device's sender key for every member when the
    /// members have not had it yet.
    pub(crate) fn enqueue_group_message(
        &mut self,
        group: GroupId,
        id: MessageId,
        content: &Content,
    ) -> Result<(), ClientError> {
        let mut record = self
            .store
            .group(&group)?
            .ok_or(ClientError::UnknownGroup { group })?;
        let me = self.me().user.clone();
        let mut entries = Vec::new();
        if !record.distributed {
            let key = Content::SenderKey {
                group,
                distribution: record.sender.distribution().to_bytes(),
            }
            .to_bytes()?;
            let alone = self.devices.get(&me).is_some_and(Vec::is_empty);
            for member in &record.members {
                if *member == me && alone {
                    continue;
                }
                let target = Target::User(member.clone());
                let mut entry =
                    OutboxEntry::new(MessageId(rand::random()), target, key.clone(), false);
                entry.for_group = Some(group);
                entries.push(entry);
            }
            record.distributed = true;
        }
        let bytes = content.to_bytes()?;
        let body = record.sender.seal(&bytes)?;
        let mut entry = OutboxEntry::new(id, Target::Group(group), bytes.clone(), true);
        entry.copies = Some(vec![SealedBody { device: 0, body }]);
        entries.push(entry);
        let now = now_ms();
        self.store_entries(entries, |txn| {
            txn.put_group(&group, &record)?;
            txn.append_history(
                &Conversation::Group(group),
                Direction::Outgoing,
                id,
                &bytes,
                now,
                Status::Pending,
            )
            .map(drop)
        })
    }

    /// Applies a membership change; a change of members makes a new sender
    /// key that goes out with the next group message.
    ///
    /// A change lists only who joined and who left, so it applies to the
    /// version just before it. When this device missed versions in between
    /// (it was just added to the group, or a notice was delayed), it asks
    /// the server for the whole group instead; being removed needs no list.
    pub(crate) async fn on_group_changed(
        &mut self,
        conn: &mut Connection,
        changed: GroupChanged,
    ) -> Result<(), ClientError> {
        let GroupChanged {
            group,
            version,
            added,
            removed,
            ..
        } = changed;
        let known = self.store.group(&group)?;
        let next = known.as_ref().map_or(1, |record| record.version + 1);
        let me = &self.me().user;
        if version > next && !removed.contains(me) {
            tracing::debug!(%group, version, next, "group versions missed; asking for the group");
            return self.query_group(conn, group);
        }
        let mut members = known.map(|record| record.members).unwrap_or_default();
        for member in added {
            if !members.contains(&member) {
                members.push(member);
            }
        }
        members.retain(|m| !removed.contains(m));
        self.apply_membership(group, version, members).await
    }

    /// Takes the membership the server reported for a group this device
    /// asked about.
    pub(crate) async fn on_group_info(&mut self, info: GroupInfo) -> Result<(), ClientError> {
        self.apply_membership(info.group, info.version, info.members)
            .await
    }

    /// Asks the server who is in `group` (for a group message that arrived
    /// before its `GroupChanged`).
    pub(crate) fn query_group(
        &mut self,
        conn: &mut Connection,
        group: GroupId,
    ) -> Result<(), ClientError> {
        conn.queue(&ClientFrame::QueryGroup(QueryGroup {
            id: MessageId(rand::random()),
            group,
        }))
    }

    /// Records `members` as the membership at `version` (ignored when not
    /// newer than what is known); leaving forgets the group.
    async fn apply_membership(
        &mut self,
        group: GroupId,
        version: u64,
        mut members: Vec<UserName>,
    ) -> Result<(), ClientError> {
        let me = self.me().user.clone();
        let known = self.store.group(&group)?;
        if known.as_ref().is_some_and(|r| r.version >= version) {
            return Ok(());
        }
        if !members.contains(&me) {
            if known.is_some() {
                self.store.write_lazy(|txn| txn.remove_group(&group))?;
            }
            self.emit(Event::GroupChanged {
                group,
                members: Vec::new(),
            })
            .await;
            return Ok(());
        }
        members.sort();
        members.dedup();
        let mut record = known.unwrap_or_else(|| GroupRecord {
            version: 0,
            members: Vec::new(),
            sender: GroupSender::generate(&mut rand::rng()),
            distributed: false,
        });
        if sorted(record.members.clone()) != members && record.distributed {
            record.sender.rotate(&mut rand::rng());
            record.distributed = false;
        }
        record.members = members;
        record.version = version;
        self.store
            .write_lazy(|txn| txn.put_group(&group, &record))?;
        tracing::debug!(%group, version, "group changed");
        self.emit(Event::GroupChanged {
            group,
            members: record.members,
        })
        .await;
        Ok(())
    }

    /// Opens a group message with the sender key `from` distributed.
    pub(crate) fn open_group(
        &self,
        group: &GroupId,
        from: &DeviceId,
        body: &[u8],
    ) -> Result<(Vec<u8>, GroupReceiver), ClientError> {
        let mut receiver = self
            .store
            .group_receiver(group, from)?
            .ok_or(ClientError::NoSenderKey)?;
        let plaintext = receiver.open(body)?;
        Ok((plaintext, receiver))
    }
}

/// The receiver state a sender-key distribution installs.
pub(crate) fn receiver_of(distribution: &[u8]) -> Result<GroupReceiver, ClientError> {
    let distribution = SenderKeyDistribution::from_bytes(distribution)?;
    Ok(GroupReceiver::new(&distribution))
}

fn sorted(mut members: Vec<UserName>) -> Vec<UserName> {
    members.sort();
    members
}
