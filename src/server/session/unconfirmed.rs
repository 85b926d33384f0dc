//! Frames a session wrote that the protocol does not ack and its client
//! has not confirmed: delivered receipts and group-change notices.
//!
//! Such a frame for an online device goes straight to the device's session
//! and is not stored (or, when it was parked, is removed once the session
//! keeps it). If
//! that connection dies before the client read it, the frame would be
//! lost. So a session keeps these frames until a `Ping` sent after them
//! comes back as a `Pong` (a client answers pings in order, after
//! everything written before them). When the session ends with frames
//! unconfirmed (or still in its mailbox), they go to the device's newer
//! session if it has one, and are parked for the device otherwise; a
//! second copy is harmless (a receipt repeats, a group version is not
//! new).
//!
//! This runs however the session ends, killed outright included (its
//! body is dropped then). Only frames still in the mailbox of a process
//! that was ended from outside its task (a task that never yields, see
//! `supervisors` on shutdown timeouts) are lost with that mailbox; the
//! messages a lost receipt confirms never are.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::SessionMsg;
use crate::protocol::{Delivered, DeviceId, GroupChanged, ServerFrame};
use crate::server::logic::{Notice, park_notices};
use crate::server::router::{Handoff, key_of};
use crate::server::shared::Shared;

/// Confirmation pings go out at most this often: a ping per receipt would
/// add two frames to every message at moderate rates.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// Unconfirmed frames a session keeps at most; beyond, the oldest are
/// dropped (a client that never answers pings gets no guarantee).
const MAX_UNCONFIRMED: usize = 1024;

/// A frame kept until the client confirms it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kept {
    Receipt(Delivered),
    GroupChange(GroupChanged),
}

impl Kept {
    /// The kept form of `frame`, if it is one the session keeps.
    pub(super) fn from_frame(frame: ServerFrame) -> Option<Self> {
        match frame {
            ServerFrame::Delivered(receipt) => Some(Self::Receipt(receipt)),
            ServerFrame::GroupChanged(change) => Some(Self::GroupChange(change)),
            _ => None,
        }
    }

    /// The device the frame is parked from: the receipt's acking device,
    /// the device that changed the group.
    fn sender(&self) -> &DeviceId {
        match self {
            Self::Receipt(receipt) => &receipt.to,
            Self::GroupChange(change) => &change.by,
        }
    }

    fn into_frame(self) -> ServerFrame {
        match self {
            Self::Receipt(receipt) => ServerFrame::Delivered(receipt),
            Self::GroupChange(change) => ServerFrame::GroupChanged(change),
        }
    }
}

/// The unconfirmed frames of one session; allocated on the first, so that
/// a session that never writes one stays small.
#[derive(Default)]
pub(super) struct Unconfirmed(Option<Box<Pending>>);

#[derive(Default)]
struct Pending {
    /// Written since the last confirmation ping.
    written: Vec<Kept>,
    /// The nonce of the outstanding confirmation ping and what it covers.
    confirming: Option<(u64, Vec<Kept>)>,
    /// When the last confirmation ping went out.
    last_ping: Option<Instant>,
}

impl Unconfirmed {
    /// A kept frame was written (or would have been, on a closing
    /// connection).
    pub(super) fn written(&mut self, frame: Kept) {
        let pending = self.0.get_or_insert_with(Box::default);
        if pending.written.len() >= MAX_UNCONFIRMED {
            tracing::debug!("too many unconfirmed frames; dropping the oldest");
            pending.written.drain(..MAX_UNCONFIRMED / 2);
        }
        pending.written.push(frame);
    }

    /// When a confirmation ping is due, if one is.
    pub(super) fn ping_due(&self) -> Option<Instant> {
        let pending = self.awaiting_ping()?;
        Some(
            pending
                .last_ping
                .map_or_else(Instant::now, |t| t + CONFIRM_EVERY),
        )
    }

    /// Whether a confirmation ping should go out at `now`.
    pub(super) fn wants_ping(&self, now: Instant) -> bool {
        self.awaiting_ping()
            .is_some_and(|p| p.last_ping.is_none_or(|t| t + CONFIRM_EVERY <= now))
    }

    /// The pending frames, if some were written since the last ping and no
    /// ping is outstanding.
    fn awaiting_ping(&self) -> Option<&Pending> {
        self.0
            .as_deref()
            .filter(|p| !p.written.is_empty() && p.confirming.is_none())
    }

    /// A ping with `nonce` went out at `now` after the frames written so
    /// far.
    pub(super) fn ping_sent(&mut self, nonce: u64, now: Instant) {
        let pending = self.0.get_or_insert_with(Box::default);
        pending.confirming = Some((nonce, std::mem::take(&mut pending.written)));
        pending.last_ping = Some(now);
    }

    /// The client answered a ping.
    pub(super) fn pong(&mut self, nonce: u64) {
        if let Some(pending) = self.0.as_deref_mut()
            && pending
                .confirming
                .as_ref()
                .is_some_and(|(n, _)| *n == nonce)
        {
            pending.confirming = None;
        }
    }

    /// Every frame not confirmed yet.
    pub(super) fn take(&mut self) -> Vec<Kept> {
        let Some(pending) = self.0.as_deref_mut() else {
            return Vec::new();
        };
        let mut out = pending
            .confirming
            .take()
            .map(|(_, frames)| frames)
            .unwrap_or_default();
        out.append(&mut pending.written);
        out
    }
}

/// The kept frame in a message a session did not get to handle. A drained
/// notice is skipped: it stays parked until a session keeps it.
pub(super) fn kept_in(msg: SessionMsg) -> Option<Kept> {
    match msg {
        SessionMsg::Out(frame) | SessionMsg::Live { frame, .. } => Kept::from_frame(*frame),
        _ => None,
    }
}

/// Hands frames a finished session could not confirm to `device`'s newer
/// session, or parks them for it. Runs in the background: the session has
/// ended.
pub(super) fn hand_on(shared: &Arc<Shared>, device: &DeviceId, frames: Vec<Kept>) {
    if frames.is_empty() {
        return;
    }
    let key = key_of(device);
    let mut left = Vec::new();
    for kept in frames {
        let msg = SessionMsg::out(kept.clone().into_frame());
        if shared.router.hand_off(&key, msg) == Handoff::Offline {
            left.push(kept);
        }
    }
    if left.is_empty() {
        return;
    }
    // A fresh id per frame: its own id may already be in the store's
    // de-duplication window from an earlier parking.
    let notices: Vec<Notice> = left
        .into_iter()
        .map(|kept| Notice {
            recipient: key.clone(),
            sender: key_of(kept.sender()),
            id: rand::random(),
            frame: kept.into_frame(),
        })
        .collect();
    // A session dropped by a runtime that is shutting down has no runtime
    // to park with; the store is closing then, too.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            count = notices.len(),
            "unconfirmed frames not parked: runtime gone"
        );
        return;
    };
    let shared = Arc::clone(shared);
    runtime.spawn(async move { park_notices(&shared, notices).await });
}

#[cfg(test)]
mod tests {
    use super::{CONFIRM_EVERY, Kept, Unconfirmed};
    use crate::protocol::{Delivered, DeviceId, MessageId, UserName};
    use tokio::time::Instant;

    fn receipt(n: u8) -> Kept {
        let Ok(user) = UserName::new("bob") else {
            panic!("a valid name");
        };
        Kept::Receipt(Delivered {
            id: MessageId([n; 16]),
            to: DeviceId::new(user, 1),
        })
    }

    #[test]
    fn frames_wait_for_the_pong_of_a_ping_sent_after_them() {
        let now = Instant::now();
        let mut r = Unconfirmed::default();
        assert!(!r.wants_ping(now));
        r.written(receipt(1));
        assert!(r.wants_ping(now));
        r.ping_sent(7, now);
        r.written(receipt(2));
        assert!(!r.wants_ping(now), "one confirmation ping at a time");
        r.pong(6);
        assert_eq!(r.take().len(), 2, "an older pong confirms nothing");

        r.written(receipt(3));
        assert!(!r.wants_ping(now), "at most one ping per interval");
        let later = now + CONFIRM_EVERY;
        assert!(r.wants_ping(later));
        r.ping_sent(8, later);
        r.written(receipt(4));
        r.pong(8);
        assert_eq!(r.take(), vec![receipt(4)]);
    }
}
