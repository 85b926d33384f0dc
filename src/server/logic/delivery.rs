//! Sends, delivery acks, receipts and the drain of parked frames.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::{Done, Logic, now_ms, storage_code};
use crate::protocol::{
    Accepted, Deliver, Delivered, DeliveryAck, DeviceId, ErrorCode, GroupId, MessageId, SendDirect,
    SendToGroup, SendToUser, ServerFrame, UserName,
};
use crate::server::metrics as m;
use crate::server::router::{Handoff, key_of};
use crate::server::session::SessionMsg;
use crate::server::shared::Shared;
use crate::store::{self, DeviceKey, ParkOutcome, ParkedFrame, Store, StoreError, StoredFrame};

/// The `group` marker of a parked frame that is not a message but a server
/// frame to replay (a receipt or a group notice), stored encoded in `body`.
pub(crate) const CONTROL: &str = "\u{0}control";

/// Parked frames read per drain step.
const DRAIN_PAGE: usize = 128;

/// One recipient of a send: where it goes and what it becomes.
pub(crate) struct Route {
    key: DeviceKey,
    deliver: ServerFrame,
}

impl Logic {
    pub(super) async fn send_direct(&mut self, me: &DeviceId, f: &SendDirect) {
        if !self.admit_send(me, f.id).await {
            return;
        }
        match self.shared.directory.has_device(&f.to).await {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .error(ErrorCode::UnknownRecipient, "no such device", Some(f.id))
                    .await;
            }
            Err(e) => {
                return self
                    .error(storage_code(&e), e.to_string(), Some(f.id))
                    .await;
            }
        }
        let frames = vec![(key_of(&f.to), f.body.clone())];
        self.park_and_route(me, f.id, None, frames).await;
    }

    pub(super) async fn send_to_user(&mut self, me: &DeviceId, f: &SendToUser) {
        if !self.admit_send(me, f.id).await {
            return;
        }
        let devices = match self.shared.directory.devices(f.to.as_str()).await {
            Ok(d) => d,
            Err(e) => {
                return self
                    .error(storage_code(&e), e.to_string(), Some(f.id))
                    .await;
            }
        };
        if devices.is_empty() {
            return self
                .error(ErrorCode::UnknownRecipient, "no such user", Some(f.id))
                .await;
        }
        let mut expected: Vec<u32> = devices
            .iter()
            .copied()
            .filter(|d| !(f.to == me.user && *d == me.device))
            .collect();
        expected.sort_unstable();
        let mut given: Vec<u32> = f.copies.iter().map(|c| c.device).collect();
        given.sort_unstable();
        if given != expected {
            return self
                .error(
                    ErrorCode::StaleDevices,
                    "copies do not match the user's devices",
                    Some(f.id),
                )
                .await;
        }
        let frames = f
            .copies
            .iter()
            .map(|c| (DeviceKey::new(f.to.as_str(), c.device), c.body.clone()))
            .collect();
        self.park_and_route(me, f.id, None, frames).await;
    }

    pub(super) async fn send_to_group(&mut self, me: &DeviceId, f: &SendToGroup) {
        if !self.admit_send(me, f.id).await {
            return;
        }
        let group = match self.group_for_member(me, &f.group, f.id).await {
            Some(g) => g,
            None => return,
        };
        let mut frames = Vec::new();
        for member in &group.members {
            let devices = match self.shared.directory.devices(member.as_str()).await {
                Ok(d) => d,
                Err(e) => {
                    return self
                        .error(storage_code(&e), e.to_string(), Some(f.id))
                        .await;
                }
            };
            for device in devices.iter() {
                if *member == me.user && *device == me.device {
                    continue;
                }
                frames.push((DeviceKey::new(member.as_str(), *device), f.body.clone()));
            }
        }
        self.park_and_route(me, f.id, Some(f.group), frames).await;
    }

    /// Checks the connection's token bucket and the rate-limiter hook.
    async fn admit_send(&self, me: &DeviceId, id: MessageId) -> bool {
        let allowed = self.state.bucket.lock().take(1)
            && self
                .shared
                .rate_limiter
                .as_ref()
                .is_none_or(|l| l.allow(me));
        if !allowed {
            self.error(ErrorCode::RateLimited, "sending too fast", Some(id))
                .await;
        }
        allowed
    }

    /// Parks one frame per recipient (group commit), answers `Accepted`,
    /// then forwards to the recipients that are online.
    async fn park_and_route(
        &mut self,
        me: &DeviceId,
        id: MessageId,
        group: Option<GroupId>,
        frames: Vec<(DeviceKey, bytes::Bytes)>,
    ) {
        let sender = key_of(me);
        let sent_at_ms = now_ms();
        for (key, _) in &frames {
            match self
                .shared
                .depths
                .has_room(key, self.shared.limits.mailbox_quota)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return self
                        .error(
                            ErrorCode::MailboxFull,
                            format!("mailbox of {key} is full"),
                            Some(id),
                        )
                        .await;
                }
                Err(e) => return self.error(storage_code(&e), e.to_string(), Some(id)).await,
            }
        }
        let mut routes = Vec::with_capacity(frames.len());
        let mut parked = Vec::with_capacity(frames.len());
        for (key, body) in frames {
            routes.push(Route {
                key: key.clone(),
                deliver: ServerFrame::Deliver(Deliver {
                    id,
                    from: me.clone(),
                    group,
                    body: body.clone(),
                    sent_at_ms,
                }),
            });
            parked.push(ParkedFrame {
                recipient: key,
                sender: sender.clone(),
                id: store::MessageId(id.0),
                group: group.map(|g| g.to_string()),
                body,
                sent_at_ms,
            });
        }
        metrics::histogram!(m::PARK_BATCH).record(parked.len() as f64);
        // Parks of one connection are pipelined: the store commits them in
        // submission order and their completions run in that order too.
        let store = self.shared.store.clone();
        self.push(async move {
            Done::Parked {
                id,
                routes,
                result: store.park(parked).await,
            }
        });
    }

    /// Finishes a pipelined park: forward, then `Accepted`.
    ///
    /// Per-pair order rests on two rules. A connection that another one of
    /// the same device has replaced forwards nothing and accepts nothing: its
    /// client resends on the new connection, in order, and a frame this one
    /// parked comes back as [`ParkOutcome::AlreadyParked`], which is forwarded
    /// again there, ahead of the frames sent after it. And `Accepted` goes out
    /// only after the forward, so a client never stops resending a frame
    /// whose forward was lost with a dying logic.
    pub(super) async fn parked(
        &self,
        id: MessageId,
        routes: Vec<Route>,
        result: Result<Vec<ParkOutcome>, StoreError>,
    ) {
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "park failed");
                return self
                    .error(storage_code(&e), "message not stored, try again", Some(id))
                    .await;
            }
        };
        if self.is_replaced() {
            tracing::debug!(%id, "connection replaced; the resend on the new one forwards");
            return;
        }
        for (route, outcome) in routes.into_iter().zip(outcomes) {
            match outcome {
                ParkOutcome::Stored { seq } => {
                    metrics::counter!(m::PARKED).increment(1);
                    self.shared.depths.add(&route.key, 1);
                    self.forward(route.key, seq, route.deliver);
                }
                ParkOutcome::AlreadyParked { seq } => {
                    metrics::counter!(m::DUPLICATES).increment(1);
                    self.forward(route.key, seq, route.deliver);
                }
                _ => metrics::counter!(m::DUPLICATES).increment(1),
            }
        }
        self.out(ServerFrame::Accepted(Accepted { id })).await;
    }

    /// Whether another connection of this device has replaced this one.
    /// (A connection that merely closed still forwards what it parked: no
    /// newer frame of its device can be ahead of it yet.)
    fn is_replaced(&self) -> bool {
        self.me().is_some_and(|me| {
            self.shared
                .router
                .conn_of(&key_of(me))
                .is_some_and(|conn| conn != self.state.conn)
        })
    }

    /// Forwards a parked frame to its recipient's session, or leaves it to
    /// the recipient's offline mailbox.
    fn forward(&self, key: DeviceKey, seq: u64, frame: ServerFrame) {
        metrics::counter!(m::ROUTED).increment(1);
        let msg = SessionMsg::Live {
            seq,
            frame: Box::new(frame),
        };
        if self.shared.router.hand_off(&key, msg) == Handoff::Offline {
            self.shared.depths.parked_offline(&key, &self.shared);
        }
    }

    pub(super) async fn delivery_ack(&mut self, me: &DeviceId, f: &DeliveryAck) {
        let mine = key_of(me);
        let from = key_of(&f.from);
        let store = self.shared.store.clone();
        let (id, me) = (f.id, me.clone());
        self.push(async move {
            let result = store.remove(&mine, &from, store::MessageId(id.0)).await;
            Done::Removed {
                id,
                me,
                from,
                result: result.map(|r| r.is_some()),
            }
        });
    }

    /// Finishes a pipelined ack: a receipt to the sender.
    pub(super) async fn removed(
        &self,
        id: MessageId,
        me: &DeviceId,
        from: &DeviceKey,
        result: Result<bool, StoreError>,
    ) {
        match result {
            Ok(true) => {
                let mine = key_of(me);
                metrics::counter!(m::ACKED).increment(1);
                self.shared.depths.sub(&mine, 1);
                let receipt = ServerFrame::Delivered(Delivered { id, to: me.clone() });
                self.notice(from, &mine, receipt_id(id), receipt).await;
            }
            // Not held for this device: another device's message, or one
            // acked already. Nothing is removed; the client is told.
            Ok(false) => {
                self.error(
                    ErrorCode::Forbidden,
                    "no such message in this device's mailbox",
                    Some(id),
                )
                .await;
            }
            Err(e) => self.error(storage_code(&e), e.to_string(), Some(id)).await,
        }
    }

    /// Sends a server frame to `to`: at once if online, else parked for it.
    pub(crate) async fn notice(
        &self,
        to: &DeviceKey,
        from: &DeviceKey,
        id: [u8; 16],
        frame: ServerFrame,
    ) {
        self.notice_many(std::slice::from_ref(to), from, id, frame)
            .await;
    }

    /// Sends a server frame to every device of `to`: at once to those
    /// online, parked (one store batch) for the others.
    pub(crate) async fn notice_many(
        &self,
        to: &[DeviceKey],
        from: &DeviceKey,
        id: [u8; 16],
        frame: ServerFrame,
    ) {
        let offline: Vec<&DeviceKey> = to
            .iter()
            .filter(|key| {
                self.shared
                    .router
                    .hand_off(key, SessionMsg::out(frame.clone()))
                    == Handoff::Offline
            })
            .collect();
        if offline.is_empty() {
            return;
        }
        let notices = offline
            .into_iter()
            .map(|key| Notice {
                recipient: key.clone(),
                sender: from.clone(),
                id,
                frame: frame.clone(),
            })
            .collect();
        park_notices(&self.shared, notices).await;
    }

    /// Sends the next page of parked frames to the session.
    pub(crate) async fn drain_page(&mut self) {
        let Some(me) = self.me().cloned() else {
            self.draining = false;
            return;
        };
        let mine = key_of(&me);
        let cursor = self.state.drain_cursor.load(Ordering::Acquire);
        let page = match self.shared.store.pending(&mine, cursor, DRAIN_PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "drain failed; parked frames wait for the next connection");
                self.end_drain().await;
                return;
            }
        };
        let last_page = page.len() < DRAIN_PAGE;
        for stored in page {
            let seq = stored.seq;
            if let Some((frame, control)) = replayable(&stored) {
                // A control frame stays parked until the session keeps it:
                // the session removes it then (this process may be stopped
                // before it could).
                let unpark = control.then(|| {
                    Box::new(ParkedNotice {
                        recipient: mine.clone(),
                        sender: stored.frame.sender.clone(),
                        id: stored.frame.id,
                    })
                });
                let drained = SessionMsg::Drained {
                    seq,
                    frame: Box::new(frame),
                    unpark,
                };
                if self.session.send(drained).await.is_err() {
                    self.draining = false;
                    return;
                }
            }
            self.state.drain_cursor.store(seq, Ordering::Release);
        }
        if last_page {
            self.end_drain().await;
        }
    }

    async fn end_drain(&mut self) {
        self.draining = false;
        self.state.drained.store(true, Ordering::Release);
        let _ = self.session.send(SessionMsg::DrainEnd).await;
    }
}

/// Where a notice is parked: removed once a session keeps the notice.
#[derive(Debug)]
pub(crate) struct ParkedNotice {
    pub(crate) recipient: DeviceKey,
    pub(crate) sender: DeviceKey,
    pub(crate) id: store::MessageId,
}

impl ParkedNotice {
    /// Removes the parked copy; a drain may have sent and removed it first.
    pub(crate) async fn remove(&self, shared: &Shared) {
        match shared
            .store
            .remove(&self.recipient, &self.sender, self.id)
            .await
        {
            Ok(Some(_)) => shared.depths.sub(&self.recipient, 1),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "notice a session keeps stays parked"),
        }
    }
}

/// A server frame for a device that cannot take it now, parked as a
/// control frame from `sender` under `id`.
pub(crate) struct Notice {
    pub(crate) recipient: DeviceKey,
    pub(crate) sender: DeviceKey,
    pub(crate) id: [u8; 16],
    pub(crate) frame: ServerFrame,
}

/// Parks notices (one store batch) and wakes the offline mailboxes. A
/// device may have connected while its notice was being parked, after its
/// drain read the mailbox, so each is forwarded live too when its device is
/// online. The session then keeps it until its client confirms it (and
/// hands it on if it cannot), so the parked copy is removed: left there,
/// it would come again on every later connection.
pub(crate) async fn park_notices(shared: &Arc<Shared>, notices: Vec<Notice>) {
    let sent_at_ms = now_ms();
    let mut parked = Vec::with_capacity(notices.len());
    let mut encoded = Vec::with_capacity(notices.len());
    for notice in notices {
        let body = match rmp_serde::to_vec(&notice.frame) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "notice not encoded");
                continue;
            }
        };
        parked.push(ParkedFrame {
            recipient: notice.recipient.clone(),
            sender: notice.sender.clone(),
            id: store::MessageId(notice.id),
            group: Some(CONTROL.to_owned()),
            body: body.into(),
            sent_at_ms,
        });
        encoded.push(notice);
    }
    if parked.is_empty() {
        return;
    }
    let count = parked.len();
    let outcomes = match shared.store.park(parked).await {
        Ok(outcomes) => outcomes,
        Err(e) => return tracing::warn!(error = %e, count, "notices not parked"),
    };
    for (notice, outcome) in encoded.into_iter().zip(outcomes) {
        let ParkOutcome::Stored { seq } = outcome else {
            continue;
        };
        shared.depths.add(&notice.recipient, 1);
        let live = SessionMsg::Live {
            seq,
            frame: Box::new(notice.frame),
        };
        if shared.router.hand_off(&notice.recipient, live) == Handoff::Offline {
            shared.depths.parked_offline(&notice.recipient, shared);
            continue;
        }
        let parked = ParkedNotice {
            recipient: notice.recipient,
            sender: notice.sender,
            id: store::MessageId(notice.id),
        };
        parked.remove(shared).await;
    }
}

/// The frame a parked entry replays as, and whether it is a control frame
/// (removed once sent) rather than a message (removed on its ack).
fn replayable(stored: &StoredFrame) -> Option<(ServerFrame, bool)> {
    let f = &stored.frame;
    if f.group.as_deref() == Some(CONTROL) {
        return match rmp_serde::from_slice::<ServerFrame>(&f.body) {
            Ok(frame) => Some((frame, true)),
            Err(e) => {
                tracing::warn!(error = %e, seq = stored.seq, "unreadable parked notice skipped");
                None
            }
        };
    }
    let user = UserName::new(f.sender.user.as_str()).ok()?;
    let group = match &f.group {
        Some(g) => Some(parse_group(g)?),
        None => None,
    };
    Some((
        ServerFrame::Deliver(Deliver {
            id: MessageId(f.id.0),
            from: DeviceId::new(user, f.sender.device),
            group,
            body: f.body.clone(),
            sent_at_ms: f.sent_at_ms,
        }),
        false,
    ))
}

/// The id under which the receipt for message `id` is parked: distinct from
/// any message id the acking device may send.
pub(crate) fn receipt_id(id: MessageId) -> [u8; 16] {
    derived_id(b"courier-receipt", &id.0)
}

/// A 16-byte id derived from a label and some bytes.
pub(crate) fn derived_id(label: &[u8], data: &[u8]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(label)
        .chain_update(data)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Parses a group id from its 32-character hex form.
pub(crate) fn parse_group(s: &str) -> Option<GroupId> {
    parse_hex16(s).map(GroupId)
}

/// Parses 16 bytes from 32 lowercase hex characters.
pub(crate) fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    let bytes = s.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0])?;
        let lo = hex_digit(pair[1])?;
        out[i] = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_round_trip_through_hex() {
        let g = GroupId([0xa5; 16]);
        assert_eq!(parse_group(&g.to_string()), Some(g));
        assert_eq!(parse_group("zz"), None);
    }

    #[test]
    fn receipt_ids_differ_from_message_ids() {
        let id = MessageId([7; 16]);
        assert_ne!(receipt_id(id), id.0);
    }
}
