//! Receiving: open, de-duplicate, store, then acknowledge.

use crate::crypto::{EnvelopeKind, PrekeySecrets, Session};
use crate::protocol::{ClientFrame, Deliver, DeliveryAck, DeviceId};

use super::conn::Connection;
use super::engine::Engine;
use super::store::{Direction, SessionRecord, Status};
use super::{ClientError, Content, Event, now_ms, time_from_ms};

/// A message opened but not stored yet.
struct Opened {
    plaintext: Vec<u8>,
    record: SessionRecord,
    /// The prekey secrets after a one-time prekey was used.
    prekeys: Option<PrekeySecrets>,
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

        let opened = match group {
            Some(_) => Err(ClientError::protocol("group messages are not supported")),
            None => self.open(&from, &body),
        };
        let (opened, content) = match opened {
            Ok(opened) => {
                let content = Content::from_bytes(&opened.plaintext);
                (Some(opened), content)
            }
            Err(error) => (None, Err(error)),
        };

        let me = self.me().user.clone();
        let now = now_ms();
        self.store.write(|txn| {
            if let Some(opened) = &opened {
                txn.put_session(&from, &opened.record)?;
                if let Some(prekeys) = &opened.prekeys {
                    txn.put_prekeys(prekeys)?;
                }
            }
            txn.mark_seen(&from, &id, now)?;
            let Ok(content) = &content else {
                return Ok(());
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
                    txn.append_history(
                        to,
                        Direction::Outgoing,
                        *original,
                        &bytes,
                        sent_at_ms,
                        Status::Sent,
                    )?;
                }
                other => {
                    let bytes = other.to_bytes()?;
                    txn.append_history(
                        &from.user,
                        Direction::Incoming(from.clone()),
                        id,
                        &bytes,
                        sent_at_ms,
                        Status::Received,
                    )?;
                }
            }
            Ok(())
        })?;
        if let Some(Opened {
            prekeys: Some(prekeys),
            ..
        }) = opened
        {
            self.prekeys = prekeys;
        }
        self.learn_device(&from)?;
        conn.queue(&ack)?;

        match content {
            Ok(content) => {
                self.counters.bump_received();
                self.emit(Event::Message {
                    from,
                    id,
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
                record: SessionRecord::new(session),
                prekeys: Some(prekeys),
            });
        };

        let first_error = match record.current.open_with_rng(&mut rng, body) {
            Ok(plaintext) => {
                return Ok(Opened {
                    plaintext,
                    record,
                    prekeys: None,
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
                    record,
                    prekeys: None,
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
                record,
                prekeys: Some(prekeys),
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
