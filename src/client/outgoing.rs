//! Sending: the outbox, sealing to every device, bundles, acceptance.

use std::collections::HashSet;

use tokio::time::Instant;

use crate::crypto::{
    DeviceIdentity, OneTimePrekeyPublic, PrekeyBundle, Session, SignedPrekeyPublic,
};
use crate::protocol::{
    Bundle, ClientFrame, Conversation, CreateGroup, DeviceBundle, DeviceId, ErrorCode, GroupId,
    MessageId, RequestBundle, SealedCopy, SendToGroup, SendToUser, UserName,
};

use super::backoff::delay_for;
use super::conn::Connection;
use super::engine::{Engine, Link, Pending};
use super::store::{Direction, OutboxEntry, SealedBody, SessionRecord, Status, Target, Txn};
use super::{ClientError, Content, Event, now_ms};

/// What sealing an outbox entry came to.
enum Sealing {
    Sealed,
    /// Waiting for a bundle.
    Waiting,
    /// The entry left the outbox.
    Dropped,
}

impl Engine {
    /// Puts a message (and its copy for this user's other devices) into the
    /// durable outbox and the history.
    pub(crate) fn enqueue(
        &mut self,
        to: &UserName,
        id: MessageId,
        content: &Content,
    ) -> Result<(), ClientError> {
        let bytes = content.to_bytes()?;
        let now = now_ms();
        let me = self.me().user.clone();
        let no_other_devices = self.devices.get(&me).is_some_and(Vec::is_empty);
        let sync = (self.config.sync_own_devices
            && *to != me
            && !no_other_devices
            && !is_receipt(content))
        .then(|| {
            Content::Sent {
                to: to.clone(),
                id,
                content: Box::new(content.clone()),
            }
            .to_bytes()
        })
        .transpose()?;
        let main = OutboxEntry::new(id, Target::User(to.clone()), bytes.clone(), true);
        let copy = sync.map(|content| {
            OutboxEntry::new(MessageId(rand::random()), Target::User(me), content, false)
        });
        let record = !is_receipt(content);
        let conversation = Conversation::Direct(to.clone());
        let mut entries = vec![main];
        entries.extend(copy);
        self.store_entries(entries, |txn| {
            if record {
                txn.append_history(
                    &conversation,
                    Direction::Outgoing,
                    id,
                    &bytes,
                    now,
                    Status::Pending,
                )?;
            }
            Ok(())
        })
    }

    /// Stores outbox entries (with whatever else `also` writes) in one
    /// transaction, then queues them in memory.
    pub(crate) fn store_entries(
        &mut self,
        entries: Vec<OutboxEntry>,
        also: impl FnOnce(&mut Txn<'_>) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let seqs = self.store.write(|txn| {
            let mut seqs = Vec::with_capacity(entries.len());
            for entry in &entries {
                let seq = txn.next_seq()?;
                txn.put_outbox(seq, entry)?;
                seqs.push(seq);
            }
            also(txn)?;
            Ok(seqs)
        })?;
        for (seq, entry) in seqs.into_iter().zip(entries) {
            self.outbox.insert(seq, Pending::new(entry));
        }
        Ok(())
    }

    /// Seals what can be sealed and sends what the window and the rate allow,
    /// in outbox order. Entries travel in lanes (one per user, one per
    /// group): an entry that must wait holds back the later entries of its
    /// lane; a group message also waits for the sender keys before it and
    /// for the creation of its group.
    pub(crate) async fn pump(
        &mut self,
        conn: &mut Connection,
        link: &mut Link,
    ) -> Result<(), ClientError> {
        let now = Instant::now();
        let mut blocked: HashSet<Lane> = HashSet::new();
        let mut keys_pending: HashSet<GroupId> = HashSet::new();
        let mut in_flight = self.outbox.values().filter(|p| p.in_flight).count();
        let seqs: Vec<u64> = self.outbox.keys().copied().collect();
        for seq in seqs {
            let Some(pending) = self.outbox.get(&seq) else {
                continue;
            };
            let lane = Lane::of(&pending.entry.target);
            if let Some(group) = pending.entry.for_group {
                keys_pending.insert(group);
            }
            let creating = matches!(pending.entry.target, Target::CreateGroup { .. });
            if blocked.contains(&lane) {
                continue;
            }
            if pending.in_flight {
                if creating {
                    blocked.insert(lane);
                }
                continue;
            }
            let waits_for_keys =
                matches!(&pending.entry.target, Target::Group(g) if keys_pending.contains(g));
            if waits_for_keys || pending.retry_at.is_some_and(|at| at > now) {
                blocked.insert(lane);
                continue;
            }
            if pending.entry.copies.is_none() {
                match self.seal_entry(conn, seq).await? {
                    Sealing::Sealed => {}
                    Sealing::Waiting => {
                        blocked.insert(lane);
                        continue;
                    }
                    Sealing::Dropped => continue,
                }
            }
            if in_flight >= self.config.send_window || !link.tokens.take(now) {
                break;
            }
            let Some(pending) = self.outbox.get_mut(&seq) else {
                continue;
            };
            conn.queue(&frame_of(&pending.entry))?;
            pending.in_flight = true;
            in_flight += 1;
            if creating {
                blocked.insert(lane);
            }
            self.counters.bump_frames_sent();
        }
        self.flush(conn).await
    }

    /// Seals entry `seq` for every current device of its recipient, starting
    /// sessions from fetched bundles, and stores the sessions and the sealed
    /// entry in one transaction before anything is sent.
    async fn seal_entry(
        &mut self,
        conn: &mut Connection,
        seq: u64,
    ) -> Result<Sealing, ClientError> {
        let Some(pending) = self.outbox.get(&seq) else {
            return Ok(Sealing::Dropped);
        };
        let Some(to) = pending.entry.target.user().cloned() else {
            // Group entries are sealed when they are queued.
            return Ok(Sealing::Sealed);
        };
        let Some(sessions) = self.sessions_for(conn, &to)? else {
            return Ok(Sealing::Waiting);
        };
        if sessions.is_empty() && to == self.me().user {
            // No other device of this user: nothing to send.
            self.store.write_lazy(|txn| txn.remove_outbox(seq))?;
            self.outbox.remove(&seq);
            return Ok(Sealing::Dropped);
        }
        let Some(pending) = self.outbox.get(&seq) else {
            return Ok(Sealing::Dropped);
        };

        let plaintext = pending.entry.content.clone();
        let id = pending.entry.id;
        let mut copies = Vec::with_capacity(sessions.len());
        let mut records = Vec::with_capacity(sessions.len());
        for (peer, record) in sessions {
            let sealed = match record {
                Some(mut record) => record
                    .current
                    .seal(&plaintext)
                    .map_err(ClientError::from)
                    .map(|body| (body, record)),
                None => self.initiate(&peer, &plaintext),
            };
            match sealed {
                Ok((body, record)) => {
                    copies.push(SealedBody {
                        device: peer.device,
                        body,
                    });
                    records.push((peer, record));
                }
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot seal for device");
                    self.fail_entry(seq, id, error).await?;
                    return Ok(Sealing::Dropped);
                }
            }
        }

        let Some(pending) = self.outbox.get_mut(&seq) else {
            return Ok(Sealing::Dropped);
        };
        pending.entry.copies = Some(copies);
        let entry = &pending.entry;
        self.store.write_lazy(|txn| {
            for (peer, record) in &records {
                txn.put_session(peer, record)?;
            }
            txn.put_outbox(seq, entry)
        })?;
        Ok(Sealing::Sealed)
    }

    /// The session (or a fetched bundle, as `None`) for every device of
    /// `to` but this one; `None` after asking for bundles still missing.
    #[expect(
        clippy::type_complexity,
        reason = "a list of optional sessions per device"
    )]
    fn sessions_for(
        &mut self,
        conn: &mut Connection,
        to: &UserName,
    ) -> Result<Option<Vec<(DeviceId, Option<SessionRecord>)>>, ClientError> {
        let me = self.me().clone();
        let Some(devices) = self.devices.get(to).cloned() else {
            self.request_bundle(conn, to)?;
            return Ok(None);
        };
        let mut sessions = Vec::with_capacity(devices.len());
        for device in devices {
            if *to == me.user && device == me.device {
                continue;
            }
            let peer = DeviceId::new(to.clone(), device);
            match self.store.session(&peer)? {
                Some(record) => sessions.push((peer, Some(record))),
                None if self.bundles.contains_key(&peer) => sessions.push((peer, None)),
                None => {
                    self.request_bundle(conn, to)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(sessions))
    }

    /// Starts a session with `peer` from its fetched bundle.
    fn initiate(
        &mut self,
        peer: &DeviceId,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, SessionRecord), ClientError> {
        let bundle = self
            .bundles
            .remove(peer)
            .ok_or_else(|| ClientError::NoSession {
                user: peer.user.clone(),
            })?;
        let bundle = prekey_bundle(&bundle);
        let (session, body) =
            Session::initiate(&mut rand::rng(), &self.identity, &bundle, plaintext)?;
        tracing::debug!(%peer, "started session");
        Ok((body, SessionRecord::new(session)))
    }

    /// Asks for the bundles of `user` unless a request is already out.
    pub(crate) fn request_bundle(
        &mut self,
        conn: &mut Connection,
        user: &UserName,
    ) -> Result<(), ClientError> {
        if self.bundle_requests.values().any(|u| u == user) {
            return Ok(());
        }
        let id = MessageId(rand::random());
        conn.queue(&ClientFrame::RequestBundle(RequestBundle {
            id,
            user: user.clone(),
        }))?;
        self.bundle_requests.insert(id, user.clone());
        Ok(())
    }

    /// Learns a user's devices and keeps bundles for devices without a
    /// session (or whose identity changed).
    pub(crate) async fn on_bundle(&mut self, bundle: Bundle) -> Result<(), ClientError> {
        let Bundle { user, devices } = bundle;
        self.bundle_requests.retain(|_, u| *u != user);
        let me = self.me().clone();
        let mut list = Vec::with_capacity(devices.len());
        let mut replaced = Vec::new();
        for device in devices {
            if user == me.user && device.device == me.device {
                continue;
            }
            list.push(device.device);
            let peer = DeviceId::new(user.clone(), device.device);
            let identity = crypto_identity(&device.identity);
            match self.store.session(&peer)? {
                Some(record) if *record.current.peer() == identity => {}
                Some(_) => {
                    tracing::warn!(%peer, "device identity changed");
                    replaced.push(peer.clone());
                    self.bundles.insert(peer, device);
                }
                None => {
                    self.bundles.insert(peer, device);
                }
            }
        }
        list.sort_unstable();
        list.dedup();
        self.store.write_lazy(|txn| {
            for peer in &replaced {
                txn.remove_session(peer)?;
            }
            txn.put_devices(&user, &list)
        })?;
        self.devices.insert(user, list);
        for device in replaced {
            self.emit(Event::IdentityChanged { device }).await;
        }
        Ok(())
    }

    /// A bundle request was refused: an unknown user fails its messages; a
    /// passing problem delays them.
    pub(crate) async fn on_bundle_error(
        &mut self,
        user: &UserName,
        code: ErrorCode,
        text: String,
    ) -> Result<(), ClientError> {
        tracing::debug!(%user, code = code.as_u16(), "bundle request refused");
        let seqs: Vec<(u64, MessageId)> = self
            .outbox
            .iter()
            .filter(|(_, p)| p.entry.target.user() == Some(user))
            .map(|(seq, p)| (*seq, p.entry.id))
            .collect();
        if code == ErrorCode::UnknownRecipient || !code.is_retryable() {
            for (seq, id) in seqs {
                let error = ClientError::Server {
                    code,
                    text: text.clone(),
                };
                self.fail_entry(seq, id, error).await?;
            }
            return Ok(());
        }
        let now = Instant::now();
        let (initial, max) = (self.config.reconnect_initial, self.config.reconnect_max);
        for (seq, _) in seqs {
            if let Some(pending) = self.outbox.get_mut(&seq) {
                pending.attempts = pending.attempts.saturating_add(1);
                let delay = delay_for(initial, max, pending.attempts.saturating_sub(1));
                pending.retry_at = Some(now + delay);
            }
        }
        Ok(())
    }

    /// The server stored a message: it leaves the outbox.
    pub(crate) async fn on_accepted(&mut self, id: MessageId) -> Result<(), ClientError> {
        let found = self
            .outbox
            .iter()
            .filter(|(_, p)| p.entry.id == id)
            .max_by_key(|(_, p)| p.in_flight)
            .map(|(seq, p)| (*seq, p.entry.notify));
        let Some((seq, notify)) = found else {
            tracing::debug!(%id, "accepted for an unknown message");
            return Ok(());
        };
        self.store.write_lazy(|txn| {
            txn.remove_outbox(seq)?;
            txn.raise_status(&id, Status::Sent).map(drop)
        })?;
        self.outbox.remove(&seq);
        if notify {
            self.emit(Event::Accepted { id }).await;
        }
        Ok(())
    }

    /// A recipient device stored one of our messages.
    pub(crate) async fn on_delivered(
        &mut self,
        id: MessageId,
        to: DeviceId,
    ) -> Result<(), ClientError> {
        let known = self
            .store
            .write_lazy(|txn| txn.raise_status(&id, Status::Delivered))?;
        if known {
            self.emit(Event::Delivered { id, to }).await;
        }
        Ok(())
    }

    /// The server refused a send.
    pub(crate) async fn on_send_error(
        &mut self,
        id: MessageId,
        code: ErrorCode,
        text: String,
    ) -> Result<(), ClientError> {
        let Some((seq, target)) = self
            .outbox
            .iter()
            .find(|(_, p)| p.entry.id == id)
            .map(|(seq, p)| (*seq, p.entry.target.clone()))
        else {
            return Ok(());
        };
        tracing::debug!(%id, code = code.as_u16(), "send refused");
        if let (ErrorCode::StaleDevices, Target::User(to)) = (code, &target) {
            // Seal everything for this user again once its devices are
            // known; back off in case the server keeps disagreeing.
            self.devices.remove(to);
            let attempts = self.outbox.get(&seq).map_or(1, |p| p.attempts + 1);
            let retry_at = Instant::now() + self.retry_delay(attempts);
            for pending in self
                .outbox
                .values_mut()
                .filter(|p| p.entry.target == target)
            {
                pending.entry.copies = None;
                pending.in_flight = false;
            }
            if let Some(pending) = self.outbox.get_mut(&seq) {
                pending.attempts = attempts;
                if attempts > 1 {
                    pending.retry_at = Some(retry_at);
                }
            }
            return Ok(());
        }
        if code.is_retryable() {
            let delay_attempts = self.outbox.get(&seq).map_or(1, |p| p.attempts + 1);
            let delay = self.retry_delay(delay_attempts);
            if let Some(pending) = self.outbox.get_mut(&seq) {
                pending.in_flight = false;
                pending.attempts = delay_attempts;
                pending.retry_at = Some(Instant::now() + delay);
            }
            return Ok(());
        }
        self.fail_entry(seq, id, ClientError::Server { code, text })
            .await
    }

    /// Removes an entry for good and tells the application.
    async fn fail_entry(
        &mut self,
        seq: u64,
        id: MessageId,
        error: ClientError,
    ) -> Result<(), ClientError> {
        self.store.write_lazy(|txn| txn.remove_outbox(seq))?;
        let notify = self.outbox.remove(&seq).is_some_and(|p| p.entry.notify);
        if notify {
            self.emit(Event::SendFailed { id, error }).await;
        }
        Ok(())
    }

    fn retry_delay(&self, attempts: u32) -> std::time::Duration {
        delay_for(
            self.config.reconnect_initial,
            self.config.reconnect_max,
            attempts.saturating_sub(1),
        )
    }
}

/// The order a group of entries keeps: one lane per user, one per group.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Lane {
    User(UserName),
    Group(GroupId),
}

impl Lane {
    fn of(target: &Target) -> Self {
        match target {
            Target::User(user) => Self::User(user.clone()),
            Target::Group(group) | Target::CreateGroup { group, .. } => Self::Group(*group),
        }
    }
}

/// The frame that sends an entry.
fn frame_of(entry: &OutboxEntry) -> ClientFrame {
    let mut bodies = entry.copies.iter().flatten();
    match &entry.target {
        Target::User(to) => ClientFrame::SendToUser(SendToUser {
            id: entry.id,
            to: to.clone(),
            copies: bodies
                .map(|c| SealedCopy {
                    device: c.device,
                    body: c.body.clone().into(),
                })
                .collect(),
        }),
        Target::Group(group) => ClientFrame::SendToGroup(SendToGroup {
            id: entry.id,
            group: *group,
            body: bodies
                .next()
                .map(|c| c.body.clone())
                .unwrap_or_default()
                .into(),
        }),
        Target::CreateGroup { group, members } => ClientFrame::CreateGroup(CreateGroup {
            id: entry.id,
            group: *group,
            members: members.clone(),
        }),
    }
}

impl OutboxEntry {
    /// A new entry, sealed later.
    pub(crate) fn new(id: MessageId, target: Target, content: Vec<u8>, notify: bool) -> Self {
        Self {
            id,
            target,
            for_group: None,
            content,
            copies: None,
            notify,
            created_ms: now_ms(),
        }
    }
}

impl Pending {
    pub(crate) fn new(entry: OutboxEntry) -> Self {
        Self {
            entry,
            in_flight: false,
            retry_at: None,
            attempts: 0,
        }
    }
}

fn is_receipt(content: &Content) -> bool {
    matches!(content, Content::ReadReceipt { .. })
}

/// The crypto form of a device identity from the wire.
pub(crate) fn crypto_identity(identity: &crate::protocol::DeviceIdentity) -> DeviceIdentity {
    DeviceIdentity {
        signing_key: identity.signing_key,
        agreement_key: identity.agreement_key,
        agreement_signature: identity.agreement_signature,
    }
}

/// The crypto form of a device bundle from the wire (suite 1).
fn prekey_bundle(bundle: &DeviceBundle) -> PrekeyBundle {
    PrekeyBundle {
        version: 1,
        suite: 1,
        identity: crypto_identity(&bundle.identity),
        signed_prekey: SignedPrekeyPublic {
            id: bundle.signed_prekey.id,
            key: bundle.signed_prekey.key,
            signature: bundle.signed_prekey.signature,
        },
        one_time_prekey: bundle
            .one_time_prekey
            .as_ref()
            .map(|p| OneTimePrekeyPublic {
                id: p.id,
                key: p.key,
            }),
    }
}
