//! Receiving: open, de-duplicate, store, then acknowledge.

use crate::crypto::{EnvelopeKind, GroupReceiver, PrekeySecrets, Session};
use crate::protocol::{
    ClientFrame, Conversation, Deliver, DeliveryAck, DeviceId, GroupId, MessageId,
};

use super::conn::Connection;
use super::engine::Engine;
use super::group::receiver_of;
use super::store::{Direction, SessionRecord, Status};
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

impl Engine {
    /// Handles one `Deliver`: a duplicate is acknowledged again and
    /// dropped; a new message is opened, stored with its ratchet step and
    /// its id in one transaction, and only then acknowledged.
    pub(crate) async fn on_deliver(
        &mut self,
        conn: &mut Connection,
        deliver: Deliver,
    ) -> Result<(), ClientError> {
        let Deliver {
            id,
            from,
            group,
            body,
            sent_at_ms,
        } = deliver;
        let ack = ClientFrame::DeliveryAck(DeliveryAck {
            from: from.clone(),
            id,
        });
        if self.store.seen(&from, &id)? {
            tracing::debug!(%from, %id, "dropping duplicate delivery");
            self.counters.bump_duplicates();
            return conn.queue(&ack);
        }

        if let Some(group) = group
            && self.store.group(&group)?.is_none()
        {
            self.query_group(conn, group)?;
        }
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

        self.store_delivery(
            &from,
            id,
            group,
            sent_at_ms,
            opened.as_ref(),
            &content,
            sender_key.as_ref(),
        )?;
        if let Some(Opened {
            state:
                OpenedWith::Pairwise {
                    prekeys: Some(prekeys),
                    ..
                },
            ..
        }) = opened
        {
            self.prekeys = prekeys;
        }
        if group.is_none() {
            self.learn_device(&from)?;
        }
        conn.queue(&ack)?;

        let content = match (content, sender_key) {
            (Ok(_), Some((_, Ok(_)))) => return Ok(()),
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
        Ok(())
    }

    /// Stores what one delivery changed, in one transaction: the ratchet or
    /// sender-key state that opened it, the consumed prekey, its id, and the
    /// message itself (or the status change a read receipt makes).
    #[expect(clippy::too_many_arguments, reason = "the parts of one delivery")]
    fn store_delivery(
        &self,
        from: &DeviceId,
        id: MessageId,
        group: Option<GroupId>,
        sent_at_ms: u64,
        opened: Option<&Opened>,
        content: &Result<Content, ClientError>,
        sender_key: Option<&(GroupId, Result<GroupReceiver, ClientError>)>,
    ) -> Result<(), ClientError> {
        let me = self.me().user.clone();
        let now = now_ms();
        self.store.write(|txn| {
            match opened.map(|o| &o.state) {
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
            txn.mark_seen(from, &id, now)?;
            if let Some((group, Ok(receiver))) = sender_key {
                txn.put_group_receiver(group, from, receiver)?;
                return Ok(());
            }
            let Ok(content) = content else {
                return Ok(());
            };
            let conversation = match group {
                Some(group) => Conversation::Group(group),
                None => Conversation::Direct(from.user.clone()),
            };
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
                } if from.user == me => {
                    let bytes = inner.to_bytes()?;
                    let with = Conversation::Direct(to.clone());
                    txn.append_history(
                        &with,
                        Direction::Outgoing,
                        *original,
                        &bytes,
                        sent_at_ms,
                        Status::Sent,
                    )?;
                }
                Content::SenderKey { .. } => {}
                other => {
                    let bytes = other.to_bytes()?;
                    txn.append_history(
                        &conversation,
                        Direction::Incoming(from.clone()),
                        id,
                        &bytes,
                        sent_at_ms,
                        Status::Received,
                    )?;
                }
            }
            Ok(())
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
        self.store.write(|txn| txn.put_devices(&from.user, &list))
    }
}
