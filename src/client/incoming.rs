//! Receiving: open, de-duplicate, store, then acknowledge.

use crate::crypto::{EnvelopeKind, GroupReceiver, PrekeySecrets, Session};
use crate::protocol::{
    ClientFrame, Conversation, Deliver, DeliveryAck, DeviceId, GroupId, MessageId, UserName,
};

use super::conn::Connection;
use super::engine::Engine;
use super::group::receiver_of;
use super::store::{Direction, SessionRecord, Status, Txn};
use super::{ClientError, Content, Event, now_ms, time_from_ms};

/// A message opened but not stored yet.
struct Opened {
    plaintext: Vec<u8>,
    state: OpenedWith,
}

/// The state that opened a message, to store with it.
enum OpenedWith {
    Pairwise {
        record: Box<SessionRecord>,
        /// The prekey secrets after a one-time prekey was used.
        prekeys: Option<PrekeySecrets>,
    },
    Group(GroupId, Box<GroupReceiver>),
}

/// A delivery after opening, before storing.
struct Received {
    from: DeviceId,
    id: MessageId,
    group: Option<GroupId>,
    sent_at_ms: u64,
    opened: Option<Opened>,
    content: Result<Content, ClientError>,
    /// The receiver state a sender-key distribution installs.
    sender_key: Option<(GroupId, Result<GroupReceiver, ClientError>)>,
}

impl Engine {
    /// Handles one `Deliver`: a duplicate is acknowledged again and
    /// dropped; a new message is opened, stored with its ratchet step and
    /// its id in one transaction, and only then acknowledged.
    pub(crate) async fn on_deliver(
        &mut self,
        conn: &mut Connection,
        deliver: Deliver,
    ) -> Result<(), ClientError> {
        let ack = ClientFrame::DeliveryAck(DeliveryAck {
            from: deliver.from.clone(),
            id: deliver.id,
        });
        if self.store.seen(&deliver.from, &deliver.id)? {
            tracing::debug!(from = %deliver.from, id = %deliver.id, "dropping duplicate delivery");
            self.counters.bump_duplicates();
            return conn.queue(&ack);
        }
        if let Some(group) = deliver.group
            && self.store.group(&group)?.is_none()
        {
            self.query_group(conn, group)?;
        }

        let received = self.receive(deliver);
        self.store_delivery(&received)?;
        if let Some(Opened {
            state:
                OpenedWith::Pairwise {
                    prekeys: Some(prekeys),
                    ..
                },
            ..
        }) = &received.opened
        {
            self.prekeys = prekeys.clone();
        }
        if received.group.is_none() {
            self.learn_device(&received.from)?;
        }
        conn.queue(&ack)?;
        self.announce(received).await;
        Ok(())
    }

    /// Opens a delivery and decodes its content.
    fn receive(&self, deliver: Deliver) -> Received {
        let Deliver {
            id,
            from,
            group,
            body,
            sent_at_ms,
        } = deliver;
        let opened = match group {
            Some(group) => self
                .open_group(&group, &from, &body)
                .map(|(plaintext, receiver)| Opened {
                    plaintext,
                    state: OpenedWith::Group(group, Box::new(receiver)),
                }),
            None => self.open(&from, &body),
        };
        let (opened, content) = match opened {
            Ok(opened) => {
                let content = Content::from_bytes(&opened.plaintext);
                (Some(opened), content)
            }
            Err(error) => (None, Err(error)),
        };
        let sender_key = match &content {
            Ok(Content::SenderKey {
                group: key_group,
                distribution,
            }) if group.is_none() => Some((*key_group, receiver_of(distribution))),
            _ => None,
        };
        Received {
            from,
            id,
            group,
            sent_at_ms,
            opened,
            content,
            sender_key,
        }
    }

    /// Tells the application about a stored delivery (a sender key is
    /// handled silently).
    async fn announce(&mut self, received: Received) {
        let Received {
            from,
            id,
            group,
            sent_at_ms,
            content,
            sender_key,
            ..
        } = received;
        let content = match (content, sender_key) {
            (Ok(_), Some((_, Ok(_)))) => return,
            (Ok(_), Some((_, Err(error)))) => Err(error),
            (content, _) => content,
        };
        match content {
            Ok(content) => {
                self.counters.bump_received();
                self.emit(Event::Message {
                    from,
                    id,
                    group,
                    content,
                    sent_at: time_from_ms(sent_at_ms),
                })
                .await;
            }
            Err(error) => {
                tracing::warn!(%from, %id, %error, "cannot open message");
                self.emit(Event::Undecryptable { from, id, error }).await;
            }
        }
    }

    /// Stores what one delivery changed, in one transaction: the ratchet or
    /// sender-key state that opened it, the consumed prekey, its id, and the
    /// message itself (or the status change a read receipt makes).
    fn store_delivery(&self, received: &Received) -> Result<(), ClientError> {
        let me = self.me().user.clone();
        let now = now_ms();
        let from = &received.from;
        self.store.write_lazy(|txn| {
            match received.opened.as_ref().map(|o| &o.state) {
                Some(OpenedWith::Pairwise { record, prekeys }) => {
                    txn.put_session(from, record)?;
                    if let Some(prekeys) = prekeys {
                        txn.put_prekeys(prekeys)?;
                    }
                }
                Some(OpenedWith::Group(group, receiver)) => {
                    txn.put_group_receiver(group, from, receiver)?;
                }
                None => {}
            }
            txn.mark_seen(from, &received.id, now)?;
            if let Some((group, Ok(receiver))) = &received.sender_key {
                return txn.put_group_receiver(group, from, receiver);
            }
            match &received.content {
                Ok(content) => record_content(txn, &me, received, content),
                Err(_) => Ok(()),
            }
        })
    }

    /// Opens `body` with a session with `from`: the current one, an older
    /// one (which then becomes current), or a new one that the message
    /// starts.
    fn open(&self, from: &DeviceId, body: &[u8]) -> Result<Opened, ClientError> {
        let mut rng = rand::rng();
        let Some(mut record) = self.store.session(from)? else {
            let mut prekeys = self.prekeys.clone();
            let (session, plaintext) =
                Session::accept(&mut rng, &self.identity, &mut prekeys, body)?;
            tracing::debug!(peer = %from, "accepted session");
            return Ok(Opened {
                plaintext,
                state: OpenedWith::Pairwise {
                    record: Box::new(SessionRecord::new(session)),
                    prekeys: Some(prekeys),
                },
            });
        };

        let first_error = match record.current.open_with_rng(&mut rng, body) {
            Ok(plaintext) => {
                return Ok(Opened {
                    plaintext,
                    state: OpenedWith::Pairwise {
                        record: Box::new(record),
                        prekeys: None,
                    },
                });
            }
            Err(error) => error,
        };
        for index in 0..record.previous.len() {
            if let Ok(plaintext) = record.previous[index].open_with_rng(&mut rng, body) {
                let session = record.previous.remove(index);
                record.promote(session);
                return Ok(Opened {
                    plaintext,
                    state: OpenedWith::Pairwise {
                        record: Box::new(record),
                        prekeys: None,
                    },
                });
            }
        }
        if EnvelopeKind::of(body) == Some(EnvelopeKind::Initial) {
            let mut prekeys = self.prekeys.clone();
            let (session, plaintext) =
                Session::accept(&mut rng, &self.identity, &mut prekeys, body)?;
            tracing::debug!(peer = %from, "accepted a new session");
            record.promote(session);
            return Ok(Opened {
                plaintext,
                state: OpenedWith::Pairwise {
                    record: Box::new(record),
                    prekeys: Some(prekeys),
                },
            });
        }
        Err(first_error.into())
    }

    /// Adds a device that sent us a message to its user's known devices.
    fn learn_device(&mut self, from: &DeviceId) -> Result<(), ClientError> {
        let me = self.me().clone();
        if *from == me {
            return Ok(());
        }
        let Some(list) = self.devices.get_mut(&from.user) else {
            return Ok(());
        };
        if list.contains(&from.device) {
            return Ok(());
        }
        list.push(from.device);
        list.sort_unstable();
        let list = list.clone();
        self.store
            .write_lazy(|txn| txn.put_devices(&from.user, &list))
    }
}

/// Records a received content in the history: a message, a copy of one this
/// user sent from another device, or the read marks of a receipt.
fn record_content(
    txn: &mut Txn<'_>,
    me: &UserName,
    received: &Received,
    content: &Content,
) -> Result<(), ClientError> {
    let from = &received.from;
    match content {
        Content::ReadReceipt { ids } => {
            for read in ids {
                txn.raise_status(read, Status::Read)?;
            }
        }
        Content::Sent {
            to,
            id: original,
            content: inner,
        } if from.user == *me => {
            let bytes = inner.to_bytes()?;
            let with = Conversation::Direct(to.clone());
            let at = received.sent_at_ms;
            txn.append_history(
                &with,
                Direction::Outgoing,
                *original,
                &bytes,
                at,
                Status::Sent,
            )?;
        }
        Content::SenderKey { .. } => {}
        other => {
            let conversation = match received.group {
                Some(group) => Conversation::Group(group),
                None => Conversation::Direct(from.user.clone()),
            };
            let bytes = other.to_bytes()?;
            txn.append_history(
                &conversation,
                Direction::Incoming(from.clone()),
                received.id,
                &bytes,
                received.sent_at_ms,
                Status::Received,
            )?;
        }
    }
    Ok(())
}
