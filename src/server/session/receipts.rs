//! Delivered receipts a session wrote but its client has not confirmed.
//!
//! A receipt for an online sender goes straight to the sender's session and
//! is not stored. If that connection dies before the client read it, the
//! receipt would be lost. So a session keeps the receipts it writes until a
//! `Ping` sent after them comes back as a `Pong` (a client answers pings in
//! order, after everything written before them). When the session ends
//! with receipts unconfirmed (or still in its mailbox), they go to the
//! device's newer session if it has one, and are parked for the device
//! otherwise.
//!
//! This runs however the session ends, killed outright included (its
//! body is dropped then). Only receipts still in the mailbox of a process
//! that was ended from outside its task (a task that never yields, see
//! `supervisors` on shutdown timeouts) are lost with that mailbox; the
//! messages they confirm never are.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::SessionMsg;
use crate::protocol::{Delivered, DeviceId, ServerFrame};
use crate::server::logic::{Notice, park_notices};
use crate::server::router::{Handoff, key_of};
use crate::server::shared::Shared;

/// Confirmation pings go out at most this often: a ping per receipt would
/// add two frames to every message at moderate rates.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// Unconfirmed receipts a session keeps at most; beyond, the oldest are
/// dropped (a client that never answers pings gets no guarantee).
const MAX_UNCONFIRMED: usize = 1024;

/// The receipts of one session; allocated on its first receipt, so that a
/// session that never writes one stays small.
#[derive(Default)]
pub(super) struct Receipts(Option<Box<Unconfirmed>>);

#[derive(Default)]
struct Unconfirmed {
    /// Written since the last confirmation ping.
    written: Vec<Delivered>,
    /// The nonce of the outstanding confirmation ping and what it covers.
    confirming: Option<(u64, Vec<Delivered>)>,
    /// When the last confirmation ping went out.
    last_ping: Option<Instant>,
}

impl Receipts {
    /// A receipt was written (or would have been, on a closing connection).
    pub(super) fn written(&mut self, receipt: Delivered) {
        let receipts = self.0.get_or_insert_with(Box::default);
        if receipts.written.len() >= MAX_UNCONFIRMED {
            tracing::debug!("too many unconfirmed receipts; dropping the oldest");
            receipts.written.drain(..MAX_UNCONFIRMED / 2);
        }
        receipts.written.push(receipt);
    }

    /// When a confirmation ping is due, if one is.
    pub(super) fn ping_due(&self) -> Option<Instant> {
        let receipts = self.awaiting_ping()?;
        Some(
            receipts
                .last_ping
                .map_or_else(Instant::now, |t| t + CONFIRM_EVERY),
        )
    }

    /// Whether a confirmation ping should go out at `now`.
    pub(super) fn wants_ping(&self, now: Instant) -> bool {
        self.awaiting_ping()
            .is_some_and(|r| r.last_ping.is_none_or(|t| t + CONFIRM_EVERY <= now))
    }

    /// The receipts, if some were written since the last ping and no ping
    /// is outstanding.
    fn awaiting_ping(&self) -> Option<&Unconfirmed> {
        self.0
            .as_deref()
            .filter(|r| !r.written.is_empty() && r.confirming.is_none())
    }

    /// A ping with `nonce` went out at `now` after the receipts written so
    /// far.
    pub(super) fn ping_sent(&mut self, nonce: u64, now: Instant) {
        let receipts = self.0.get_or_insert_with(Box::default);
        receipts.confirming = Some((nonce, std::mem::take(&mut receipts.written)));
        receipts.last_ping = Some(now);
    }

    /// The client answered a ping.
    pub(super) fn pong(&mut self, nonce: u64) {
        if let Some(receipts) = self.0.as_deref_mut()
            && receipts
                .confirming
                .as_ref()
                .is_some_and(|(n, _)| *n == nonce)
        {
            receipts.confirming = None;
        }
    }

    /// Every receipt not confirmed yet.
    pub(super) fn take_unconfirmed(&mut self) -> Vec<Delivered> {
        let Some(receipts) = self.0.as_deref_mut() else {
            return Vec::new();
        };
        let mut out = receipts
            .confirming
            .take()
            .map(|(_, r)| r)
            .unwrap_or_default();
        out.append(&mut receipts.written);
        out
    }
}

/// The receipt in a message a session did not get to handle.
pub(super) fn receipt_in(msg: SessionMsg) -> Option<Delivered> {
    match msg {
        SessionMsg::Out(frame) => match *frame {
            ServerFrame::Delivered(receipt) => Some(receipt),
            _ => None,
        },
        _ => None,
    }
}

/// Hands receipts a finished session could not confirm to `device`'s
/// newer session, or parks them for it. Runs in the background: the
/// session has ended.
pub(super) fn hand_on(shared: &Arc<Shared>, device: &DeviceId, receipts: Vec<Delivered>) {
    if receipts.is_empty() {
        return;
    }
    let key = key_of(device);
    let mut left = Vec::new();
    for receipt in receipts {
        let msg = SessionMsg::out(ServerFrame::Delivered(receipt.clone()));
        if shared.router.hand_off(&key, msg) == Handoff::Offline {
            left.push(receipt);
        }
    }
    if left.is_empty() {
        return;
    }
    // A fresh id per receipt: its own id may already be in the store's
    // de-duplication window from an earlier parking.
    let notices: Vec<Notice> = left
        .into_iter()
        .map(|receipt| Notice {
            recipient: key.clone(),
            sender: key_of(&receipt.to),
            id: rand::random(),
            frame: ServerFrame::Delivered(receipt),
        })
        .collect();
    // A session dropped by a runtime that is shutting down has no runtime
    // to park with; the store is closing then, too.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(count = notices.len(), "receipts not parked: runtime gone");
        return;
    };
    let shared = Arc::clone(shared);
    runtime.spawn(async move { park_notices(&shared, notices).await });
}

#[cfg(test)]
mod tests {
    use super::{CONFIRM_EVERY, Receipts};
    use crate::protocol::{Delivered, DeviceId, MessageId, UserName};
    use tokio::time::Instant;

    fn receipt(n: u8) -> Delivered {
        let Ok(user) = UserName::new("bob") else {
            panic!("a valid name");
        };
        Delivered {
            id: MessageId([n; 16]),
            to: DeviceId::new(user, 1),
        }
    }

    #[test]
    fn receipts_wait_for_the_pong_of_a_ping_sent_after_them() {
        let now = Instant::now();
        let mut r = Receipts::default();
        assert!(!r.wants_ping(now));
        r.written(receipt(1));
        assert!(r.wants_ping(now));
        r.ping_sent(7, now);
        r.written(receipt(2));
        assert!(!r.wants_ping(now), "one confirmation ping at a time");
        r.pong(6);
        assert_eq!(
            r.take_unconfirmed().len(),
            2,
            "an older pong confirms nothing"
        );

        r.written(receipt(3));
        assert!(!r.wants_ping(now), "at most one ping per interval");
        let later = now + CONFIRM_EVERY;
        assert!(r.wants_ping(later));
        r.ping_sent(8, later);
        r.written(receipt(4));
        r.pong(8);
        assert_eq!(r.take_unconfirmed(), vec![receipt(4)]);
    }
}
