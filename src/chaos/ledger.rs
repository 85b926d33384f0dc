//! The invariant checker: a ledger of every message a scenario sends and
//! everything the clients report about it, checked at the end against the
//! delivery contract.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::MessageId;

/// What the ledger knows about one message.
#[derive(Debug)]
struct Entry {
    sender: usize,
    recipient: usize,
    n: u64,
    sent_at: Instant,
    /// `Client::send_with_id` returned: the message is in the outbox.
    queued: bool,
    /// The sender heard `Accepted`.
    accepted: bool,
    /// The server refused it for good (`SendFailed`).
    refused: bool,
    /// `Message` events at the recipient (after its de-duplication).
    deliveries: u32,
    /// `Delivered` receipts at the sender.
    receipts: u32,
    /// When the first delivery was reported.
    delivered_at: Option<Instant>,
}

/// The checked outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// Messages handed to a client (in its outbox).
    pub sent: u64,
    /// Messages the server acknowledged (`Accepted`).
    pub accepted: u64,
    /// Messages the server refused for good (the sender was told).
    pub refused: u64,
    /// Messages delivered to their recipient (first delivery).
    pub delivered: u64,
    /// `Delivered` receipts that reached senders (repeats included).
    pub receipts: u64,
    /// Delivered messages whose sender had no receipt when the messages
    /// settled. Reported, not a breach: a receipt may still be on its way,
    /// and one that cannot be parked (a full disk, a store restarting) is
    /// given up, while the message it confirms is not.
    pub unreceipted: u64,
    /// Acknowledged messages never delivered.
    pub lost: u64,
    /// Deliveries beyond the first, after the client's de-duplication.
    pub duplicates_after_dedup: u64,
    /// Messages delivered (or receipted) without being acknowledged.
    pub unacknowledged_delivered: u64,
    /// Deliveries that came before an earlier message of the same pair.
    pub order_violations: u64,
    /// Messages still neither acknowledged nor refused.
    pub unsettled: u64,
    /// Deliveries or receipts of ids this run never sent.
    pub stray: u64,
    /// Latency from send to first delivery, per delivered message.
    pub latencies: Vec<Duration>,
    /// A few of the messages behind the breaches, for diagnosis
    /// (`what sender->recipient #n`).
    pub examples: Vec<String>,
}

impl Verdict {
    fn note(&mut self, what: &str, e: &Entry) {
        if self.examples.len() < 10 {
            self.examples.push(format!(
                "{what} c{}->c{} #{} (refused {}, receipts {})",
                e.sender, e.recipient, e.n, e.refused, e.receipts
            ));
        }
    }

    /// Breaches of the delivery contract, one line each; empty when it
    /// held.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let checks = [
            (self.lost, "acknowledged messages lost"),
            (
                self.duplicates_after_dedup,
                "duplicates after de-duplication",
            ),
            (
                self.unacknowledged_delivered,
                "unacknowledged messages reported delivered",
            ),
            (self.order_violations, "per-pair order violations"),
            (self.unsettled, "messages neither acknowledged nor refused"),
            (self.stray, "deliveries of ids never sent"),
        ];
        for (count, what) in checks {
            if count > 0 {
                out.push(format!("{count} {what}"));
            }
        }
        out
    }
}

/// Every message of a run and what became of it.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: HashMap<MessageId, Entry>,
    /// Sequence numbers per (sender, recipient), in arrival order.
    arrivals: BTreeMap<(usize, usize), Vec<u64>>,
    stray: u64,
    /// Messages queued but not yet accepted or refused.
    open: u64,
    /// Accepted messages not delivered yet.
    undelivered: u64,
}

impl Ledger {
    /// Notes a message before it is handed to the sender's client.
    pub(crate) fn intend(&mut self, id: MessageId, sender: usize, recipient: usize, n: u64) {
        self.entries.insert(
            id,
            Entry {
                sender,
                recipient,
                n,
                sent_at: Instant::now(),
                queued: false,
                accepted: false,
                refused: false,
                deliveries: 0,
                receipts: 0,
                delivered_at: None,
            },
        );
    }

    /// The client took the message (or not: then it is forgotten, unless
    /// something was reported about it already).
    pub(crate) fn queued(&mut self, id: MessageId, ok: bool) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if ok {
            e.queued = true;
            if !e.accepted && !e.refused {
                self.open += 1;
            }
        } else if !e.accepted && e.deliveries == 0 {
            self.entries.remove(&id);
        }
    }

    /// The sender heard `Accepted`.
    pub(crate) fn accepted(&mut self, id: MessageId) {
        let Some(e) = self.entries.get_mut(&id) else {
            self.stray += 1;
            return;
        };
        if e.accepted {
            return;
        }
        e.accepted = true;
        if e.queued && !e.refused {
            self.open = self.open.saturating_sub(1);
        }
        if e.deliveries == 0 {
            self.undelivered += 1;
        }
    }

    /// The server refused the message for good.
    pub(crate) fn refused(&mut self, id: MessageId) {
        let Some(e) = self.entries.get_mut(&id) else {
            self.stray += 1;
            return;
        };
        if e.refused || e.accepted {
            e.refused = true;
            return;
        }
        e.refused = true;
        if e.queued {
            self.open = self.open.saturating_sub(1);
        }
    }

    /// Client `at` reported message `id` from client `from` (sequence
    /// number `n`, when its content could be read).
    pub(crate) fn delivered(&mut self, id: MessageId, from: usize, at: usize, n: Option<u64>) {
        let Some(e) = self.entries.get_mut(&id) else {
            self.stray += 1;
            return;
        };
        if e.sender != from || e.recipient != at || n.is_some_and(|n| n != e.n) {
            self.stray += 1;
            return;
        }
        e.deliveries += 1;
        if e.deliveries == 1 {
            e.delivered_at = Some(Instant::now());
            if e.accepted {
                self.undelivered = self.undelivered.saturating_sub(1);
            }
            self.arrivals.entry((from, at)).or_default().push(e.n);
        }
    }

    /// The sender got a `Delivered` receipt.
    pub(crate) fn receipt(&mut self, id: MessageId) {
        match self.entries.get_mut(&id) {
            Some(e) => e.receipts += 1,
            None => self.stray += 1,
        }
    }

    /// Whether every queued message is acknowledged or refused and every
    /// acknowledged one delivered.
    pub(crate) fn settled(&self) -> bool {
        self.open == 0 && self.undelivered == 0
    }

    /// (messages still open, acknowledged but undelivered).
    pub(crate) fn outstanding(&self) -> (u64, u64) {
        (self.open, self.undelivered)
    }

    /// Messages queued so far.
    pub(crate) fn queued_count(&self) -> u64 {
        self.entries.values().filter(|e| e.queued).count() as u64
    }

    /// Acknowledged messages not delivered: (id, sender, recipient).
    pub(crate) fn undelivered_ids(&self) -> Vec<(MessageId, usize, usize)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.accepted && e.deliveries == 0)
            .map(|(id, e)| (*id, e.sender, e.recipient))
            .collect()
    }

    /// Checks every invariant.
    pub(crate) fn verdict(&self) -> Verdict {
        let mut v = Verdict {
            stray: self.stray,
            ..Verdict::default()
        };
        for e in self.entries.values() {
            if e.queued {
                v.sent += 1;
            }
            if e.accepted {
                v.accepted += 1;
            } else if e.refused {
                v.refused += 1;
            }
            if let Some(at) = e.delivered_at {
                v.delivered += 1;
                v.latencies.push(at.duration_since(e.sent_at));
            }
            v.receipts += u64::from(e.receipts);
            if e.delivered_at.is_some() && e.receipts == 0 {
                v.unreceipted += 1;
            }
            if e.accepted && e.deliveries == 0 {
                v.lost += 1;
                v.note("lost", e);
            }
            v.duplicates_after_dedup += u64::from(e.deliveries.saturating_sub(1));
            if !e.accepted && (e.deliveries > 0 || e.receipts > 0) {
                v.unacknowledged_delivered += 1;
                v.note("unacknowledged-delivered", e);
            }
            if e.queued && !e.accepted && !e.refused {
                v.unsettled += 1;
                v.note("unsettled", e);
            }
        }
        for ((from, to), arrivals) in &self.arrivals {
            for w in arrivals.windows(2).filter(|w| w[1] < w[0]) {
                v.order_violations += 1;
                if v.examples.len() < 10 {
                    v.examples.push(format!(
                        "order c{from}->c{to}: #{} arrived after #{} ({arrivals:?})",
                        w[1], w[0]
                    ));
                }
            }
        }
        v.latencies.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId([n; 16])
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        let mut l = Ledger::default();
        l.intend(id(1), 0, 1, 0);
        l.queued(id(1), true);
        assert!(!l.settled());
        l.accepted(id(1));
        assert!(!l.settled());
        l.delivered(id(1), 0, 1, Some(0));
        assert!(l.settled());
        let v = l.verdict();
        assert_eq!((v.sent, v.accepted, v.delivered), (1, 1, 1));
        assert!(v.violations().is_empty());
    }

    #[test]
    fn loss_duplicates_order_and_unacknowledged_are_caught() {
        let mut l = Ledger::default();
        for n in 0..4u8 {
            l.intend(id(n), 0, 1, u64::from(n));
            l.queued(id(n), true);
        }
        l.accepted(id(0));
        l.accepted(id(1));
        l.accepted(id(2));
        l.delivered(id(2), 0, 1, Some(2));
        l.delivered(id(1), 0, 1, Some(1));
        l.delivered(id(1), 0, 1, Some(1));
        l.delivered(id(3), 0, 1, Some(3));
        l.delivered(id(9), 0, 1, None);
        let v = l.verdict();
        assert_eq!(v.lost, 1);
        assert_eq!(v.duplicates_after_dedup, 1);
        assert_eq!(v.order_violations, 1);
        assert_eq!(v.unacknowledged_delivered, 1);
        assert_eq!(v.unsettled, 1);
        assert_eq!(v.stray, 1);
    }
}
