//! The Courier client: connects to a server, keeps the device's keys and
//! ratchet sessions in a local store, seals and opens every message, and
//! keeps the delivery contract of `docs/protocol.md` section 5.3 from the
//! client's side.
//!
//! [`Client::connect`] opens the local store (creating the device identity
//! on first use), connects over TLS, authenticates and returns a [`Client`]
//! handle and an [`Events`] stream. A background task owns the connection:
//! it uploads prekeys, fetches bundles and starts sessions when a message
//! needs them, seals to every device of the recipient and to the user's own
//! other devices, resends whatever the server has not accepted after a
//! reconnect, opens and stores what arrives before acknowledging it, and
//! reconnects with exponential backoff when the connection drops.
//!
//! ```no_run
//! # async fn demo() -> Result<(), courier::client::ClientError> {
//! use courier::client::{Client, ClientConfig, Content, Event, Trust};
//! use courier::protocol::UserName;
//!
//! let pin = "ab".repeat(32).parse().expect("64 hex digits");
//! let config = ClientConfig::new(
//!     "127.0.0.1:4433",
//!     Trust::Pinned(pin),
//!     UserName::new("alice")?,
//!     1,
//!     "./courier-client-alice",
//! );
//! let (client, mut events) = Client::connect(config).await?;
//! let id = client.send(&UserName::new("bob")?, Content::text("hi bob")).await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Delivered { id: done, .. } = event {
//!         if done == id {
//!             break;
//!         }
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Durability: every change is one redb transaction committed with fsync.
//! A sealed message (and the ratchet step that sealed it) is committed
//! before its bytes are written to the socket, so a crash never reuses a
//! message key; a received message, its ratchet step and its id are
//! committed before the `DeliveryAck` is sent.
//!
//! # Limitations
//!
//! - Without a [`StorageKey`] the local store is protected by file
//!   permissions only (owner only). With one, every record is sealed with
//!   AES-256-GCM, but the record keys stay in the clear: peer user names,
//!   device numbers and message ids (who talked to whom, not what), and
//!   where the key itself lives is the application's problem.
//! - Store writes run on the client task and block a runtime thread for the
//!   fsync (a few milliseconds per message); moving them to a blocking pool
//!   would keep the runtime free.
//! - A message that cannot be opened (the sender used a session this device
//!   lost) is acknowledged and reported as [`Event::Undecryptable`]; there is
//!   no automatic request to resend it under a new session.
//! - Groups: a device that joins a user after that user's sender key went
//!   out does not get the key until the membership changes; adding and
//!   removing members after creation is not exposed yet (the server's
//!   `GroupChanged` is followed; a change that skips versions, as when this
//!   device is added to a group, makes it ask for the whole group).
//! - Media transfers need a connection (they are not queued like messages)
//!   and hold the whole blob in memory; a dropped connection fails them.
//! - The seen-id table grows without bound; ids older than the server's
//!   retention could be pruned.
//! - A bundle request hands out a one-time prekey for every device of the
//!   user, even devices the client already has a session with.
//! - Signed prekeys are not rotated on a schedule.
//! - When the server refuses a send with a retryable error (rate limit,
//!   full mailbox), later sends to the same user that were already in
//!   flight may be accepted first; the client paces sends to the announced
//!   rate so that this is rare.

mod backoff;
mod config;
mod conn;
mod content;
mod engine;
mod error;
mod group;
mod incoming;
mod media;
mod outgoing;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::crypto::{DeviceIdentity, SafetyNumber};
use crate::protocol::{Conversation, DeviceId, GroupId, MessageId, UserName};

pub use config::{ClientConfig, Trust};
pub use content::{Content, MediaRef};
pub use error::ClientError;
pub use store::{ConversationSummary, Direction, Status, StorageKey, StoredMessage};

use engine::{Command, Engine};
use store::LocalStore;

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Authenticated to the server (again).
    Connected,
    /// The connection ended; the client reconnects unless it was closed.
    Disconnected {
        /// Why, for people and logs.
        reason: String,
    },
    /// A message arrived and was stored.
    Message {
        /// The sending device.
        from: DeviceId,
        /// The sender's message id.
        id: MessageId,
        /// The group, for a group message.
        group: Option<GroupId>,
        /// What it says.
        content: Content,
        /// When the server accepted it.
        sent_at: SystemTime,
    },
    /// The server stored a message durably (one tick).
    Accepted {
        /// The message.
        id: MessageId,
    },
    /// A recipient device stored a message (two ticks).
    Delivered {
        /// The message.
        id: MessageId,
        /// The device that stored it.
        to: DeviceId,
    },
    /// The server refused a message for good; it left the outbox.
    SendFailed {
        /// The message.
        id: MessageId,
        /// Why.
        error: ClientError,
    },
    /// A message arrived that could not be opened; it was acknowledged and
    /// dropped.
    Undecryptable {
        /// The sending device.
        from: DeviceId,
        /// The message id.
        id: MessageId,
        /// Why it could not be opened.
        error: ClientError,
    },
    /// A contact's device presented a different identity than before (it
    /// was reinstalled, or someone is intercepting): compare safety numbers.
    IdentityChanged {
        /// The device.
        device: DeviceId,
    },
    /// The membership of a group changed (or this user joined or left it:
    /// empty `members`).
    GroupChanged {
        /// The group.
        group: GroupId,
        /// Its members now, as far as this device knows.
        members: Vec<UserName>,
    },
    /// The client stopped for good after this error (authentication
    /// refused, replaced by another connection of the same device).
    Stopped {
        /// Why.
        error: ClientError,
    },
}

/// The stream of [`Event`]s of one client.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the client has stopped and every event
    /// was taken.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is either returned or stays queued.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Successful authentications.
    pub connections: u64,
    /// Connections whose TLS handshake resumed an earlier session.
    pub resumed: u64,
    /// Messages received and stored.
    pub received: u64,
    /// Deliveries dropped as duplicates of a stored message.
    pub duplicates_dropped: u64,
    /// Message frames written (first sends and resends).
    pub frames_sent: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    resumed: AtomicU64,
    received: AtomicU64,
    duplicates_dropped: AtomicU64,
    frames_sent: AtomicU64,
}

impl Counters {
    pub(crate) fn bump_connections(&self, resumed: bool) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn bump_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bump_duplicates(&self) {
        self.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bump_frames_sent(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle to a running client. Cheap to clone; the client stops when
/// [`close`](Self::close) is called or every handle is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device: DeviceId,
    identity: DeviceIdentity,
    store: Arc<LocalStore>,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
}

impl Client {
    /// Opens the local store in `config.state_dir` (creating the device's
    /// identity the first time), connects and authenticates, then keeps the
    /// connection up in a background task.
    ///
    /// # Errors
    /// [`ClientError`] when the store cannot be opened or belongs to another
    /// device, or the first connection fails (unreachable, TLS, pin,
    /// authentication refused). Later connection losses are not errors: the
    /// client reconnects and reports them as events.
    ///
    /// # Cancel safety
    /// Not cancel safe: cancelling may leave a background task that stops
    /// on its own once it notices nobody is waiting.
    pub async fn connect(config: ClientConfig) -> Result<(Self, Events), ClientError> {
        let tls = config.trust.client_tls()?;
        let (store, identity, prekeys) = LocalStore::open(
            &config.state_dir,
            &config.device,
            config.storage_key.as_ref(),
            &mut rand::rng(),
        )?;
        let store = Arc::new(store);
        let (command_tx, command_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let device = config.device.clone();
        let public = identity.public();

        let engine = Engine::new(
            config,
            tls,
            Arc::clone(&store),
            identity,
            prekeys,
            event_tx,
            command_rx,
            Arc::clone(&counters),
        )?;
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(engine.run(ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(ClientError::Stopped),
        }

        let client = Self {
            inner: Arc::new(Inner {
                device,
                identity: public,
                store,
                commands: command_tx,
                counters,
            }),
        };
        Ok((client, Events { rx: event_rx }))
    }

    /// This device.
    pub fn device(&self) -> &DeviceId {
        &self.inner.device
    }

    /// This device's public identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.inner.identity
    }

    /// Sends `content` to every device of `to` (and to this user's other
    /// devices) under a fresh message id. Returns once the message is in the
    /// durable outbox; [`Event::Accepted`] and [`Event::Delivered`] follow.
    /// While disconnected the message waits in the outbox.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the outbox write fails,
    /// [`ClientError::Stopped`] when the client has stopped.
    ///
    /// # Cancel safety
    /// Not cancel safe: the message may be queued even if the call is
    /// cancelled.
    pub async fn send(&self, to: &UserName, content: Content) -> Result<MessageId, ClientError> {
        self.send_with_id(to, MessageId(rand::random()), content)
            .await
    }

    /// Sends a text message; see [`send`](Self::send).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_text(
        &self,
        to: &UserName,
        text: impl Into<String>,
    ) -> Result<MessageId, ClientError> {
        self.send(to, Content::text(text)).await
    }

    /// Sends with an id chosen by the caller. Sending the same id again is
    /// harmless: the server and the recipient drop the duplicate.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_with_id(
        &self,
        to: &UserName,
        id: MessageId,
        content: Content,
    ) -> Result<MessageId, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            to: to.clone(),
            id,
            content,
            reply,
        };
        self.command(command, answer).await
    }

    /// Tells the sender of `ids` that they were read (a sealed
    /// [`Content::ReadReceipt`]).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn mark_read(
        &self,
        sender: &UserName,
        ids: Vec<MessageId>,
    ) -> Result<MessageId, ClientError> {
        self.send(sender, Content::ReadReceipt { ids }).await
    }

    /// The safety number with each device of `user` this device has a
    /// session with, by device number.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store cannot be read.
    pub fn safety_numbers(&self, user: &UserName) -> Result<Vec<(u32, SafetyNumber)>, ClientError> {
        let me = &self.inner.device.user;
        let mine = &self.inner.identity;
        Ok(self
            .inner
            .store
            .sessions_of(user)?
            .into_iter()
            .map(|(device, record)| {
                let theirs = record.current.peer();
                (
                    device,
                    SafetyNumber::new(me.as_str(), mine, user.as_str(), theirs),
                )
            })
            .collect())
    }

    /// Creates a group of this user and `members`. Group messages sent
    /// right away wait until the server created it.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn create_group(&self, members: &[UserName]) -> Result<GroupId, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::CreateGroup {
            group: GroupId(rand::random()),
            members: members.to_vec(),
            reply,
        };
        self.command(command, answer).await
    }

    /// Sends `content` to a group: sealed once with this device's sender key
    /// (which goes to the members first, pairwise, when they lack it).
    ///
    /// # Errors
    /// [`ClientError::UnknownGroup`] when this device is not a member, else
    /// as [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_group(
        &self,
        group: GroupId,
        content: Content,
    ) -> Result<MessageId, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::SendGroup {
            group,
            id: MessageId(rand::random()),
            content,
            reply,
        };
        self.command(command, answer).await
    }

    /// Seals `data` under a fresh key, uploads the ciphertext to the
    /// server's media store and sends the reference (id, key, digest) to
    /// `to` as a sealed [`Content::Media`].
    ///
    /// # Errors
    /// [`ClientError::NotConnected`] while disconnected (uploads are not
    /// queued), [`ClientError::Server`] when the server refuses the blob
    /// (too large), [`ClientError::ConnectionClosed`] when the connection
    /// drops during the upload; else as [`send`](Self::send).
    ///
    /// # Cancel safety
    /// Not cancel safe: the upload continues in the background.
    pub async fn send_media(
        &self,
        to: &UserName,
        data: Vec<u8>,
        name: impl Into<String>,
    ) -> Result<MessageId, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::UploadMedia {
            data,
            name: name.into(),
            reply,
        };
        let reference = self.command(command, answer).await?;
        self.send(to, Content::Media(reference)).await
    }

    /// Downloads the blob a [`Content::Media`] refers to, checks its digest
    /// and opens it.
    ///
    /// # Errors
    /// [`ClientError::Media`] when the blob fails its digest or
    /// authentication, [`ClientError::Server`] when the server no longer
    /// has it, [`ClientError::NotConnected`] or
    /// [`ClientError::ConnectionClosed`] without a connection.
    ///
    /// # Cancel safety
    /// Cancel safe: the download result is dropped.
    pub async fn download_media(&self, media: &MediaRef) -> Result<Vec<u8>, ClientError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::DownloadMedia {
            media: Box::new(media.clone()),
            reply,
        };
        self.command(command, answer).await
    }

    /// The groups this device is a member of, with their members.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store cannot be read.
    pub fn groups(&self) -> Result<Vec<(GroupId, Vec<UserName>)>, ClientError> {
        Ok(self
            .inner
            .store
            .groups()?
            .into_iter()
            .map(|(group, record)| (group, record.members))
            .collect())
    }

    /// Every conversation with its latest message, most recent first.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store cannot be read.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>, ClientError> {
        let mut summaries: Vec<ConversationSummary> = Vec::new();
        for message in self.inner.store.history()? {
            match summaries
                .iter_mut()
                .find(|c| c.conversation == message.conversation)
            {
                Some(summary) => {
                    summary.messages += 1;
                    summary.last = message;
                }
                None => summaries.push(ConversationSummary {
                    conversation: message.conversation.clone(),
                    messages: 1,
                    last: message,
                }),
            }
        }
        summaries.sort_by_key(|c| std::cmp::Reverse(c.last.seq));
        Ok(summaries)
    }

    /// The stored messages of one conversation, oldest first.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store cannot be read.
    pub fn history(&self, conversation: &Conversation) -> Result<Vec<StoredMessage>, ClientError> {
        let mut messages = self.inner.store.history()?;
        messages.retain(|m| &m.conversation == conversation);
        Ok(messages)
    }

    /// How many messages wait for the server's `Accepted`.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store cannot be read.
    pub fn outbox_len(&self) -> Result<usize, ClientError> {
        Ok(self.inner.store.outbox()?.len())
    }

    /// Counters since this client started.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            connections: c.connections.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
        }
    }

    /// Stops the client: flushes what is queued, closes the connection and
    /// waits for the background task. Unaccepted messages stay in the
    /// outbox for the next start. The local store is released once the
    /// last clone of this handle is dropped too.
    ///
    /// # Cancel safety
    /// Cancel safe: the client stops either way.
    pub async fn close(self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }
}

impl Client {
    async fn command<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }
}

/// The protocol form of a device identity.
pub(crate) fn wire_identity(identity: &DeviceIdentity) -> crate::protocol::DeviceIdentity {
    crate::protocol::DeviceIdentity {
        signing_key: identity.signing_key,
        agreement_key: identity.agreement_key,
        agreement_signature: identity.agreement_signature,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time from milliseconds since the Unix epoch.
pub(crate) fn time_from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<Events>();
        assert_send_sync::<ClientError>();
    }
}
