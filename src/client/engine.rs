//! The background task that owns the connection and the local state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::crypto::{IdentityKeyPair, PrekeySecrets};
use crate::protocol::{
    ClientFrame, DeviceBundle, DeviceId, ErrorCode, ErrorFrame, GroupId, MediaId, MessageId,
    OneTimePrekey, Ping, Pong, ServerFrame, SignedPrekey, UploadPrekeys, UserName,
};
use crate::tls::ClientTls;

use super::backoff::{Backoff, TokenBucket};
use super::conn::Connection;
use super::media::{Download, Upload};
use super::store::{LocalStore, OutboxEntry};
use super::{ClientConfig, ClientError, Content, Counters, Event, MediaRef};

/// Frames handled before the queued writes are flushed.
const MAX_FRAMES_PER_BATCH: usize = 256;

/// Requests from [`Client`](super::Client) handles.
pub(crate) enum Command {
    Send {
        to: UserName,
        id: MessageId,
        content: Content,
        reply: oneshot::Sender<Result<MessageId, ClientError>>,
    },
    CreateGroup {
        group: GroupId,
        members: Vec<UserName>,
        reply: oneshot::Sender<Result<GroupId, ClientError>>,
    },
    SendGroup {
        group: GroupId,
        id: MessageId,
        content: Content,
        reply: oneshot::Sender<Result<MessageId, ClientError>>,
    },
    UploadMedia {
        data: Vec<u8>,
        name: String,
        reply: oneshot::Sender<Result<MediaRef, ClientError>>,
    },
    DownloadMedia {
        media: Box<MediaRef>,
        reply: oneshot::Sender<Result<Vec<u8>, ClientError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// An outbox entry and what this run of the client knows about it.
pub(crate) struct Pending {
    pub(crate) entry: OutboxEntry,
    /// Sent on the current connection, waiting for `Accepted`.
    pub(crate) in_flight: bool,
    /// Not before this instant (after a retryable refusal).
    pub(crate) retry_at: Option<Instant>,
    /// Retryable refusals so far.
    pub(crate) attempts: u32,
}

/// Per-connection state.
pub(crate) struct Link {
    pub(crate) tokens: TokenBucket,
    /// The prekey count of `Welcome`: a `PrekeysLow` with this count that
    /// follows it reports the same shortage the client already fixed.
    pub(crate) welcome_prekeys: Option<u32>,
    pub(crate) prekey_target: u32,
    pub(crate) last_rx: Instant,
    pub(crate) idle_timeout: Duration,
    next_ping: u64,
    /// The ping whose pong proves the server handled the frames before it.
    ready_ping: Option<u64>,
}

impl Link {
    fn new(conn: &Connection, config: &ClientConfig) -> Self {
        let now = Instant::now();
        Self {
            tokens: TokenBucket::new(conn.limits.messages_per_second, now),
            welcome_prekeys: Some(conn.welcome.prekeys_remaining),
            prekey_target: config
                .one_time_prekeys
                .min(conn.limits.max_one_time_prekeys),
            last_rx: now,
            idle_timeout: Duration::from_millis(u64::from(conn.limits.idle_timeout_ms.max(3000))),
            next_ping: 1,
            ready_ping: None,
        }
    }

    /// Pings the server, or gives up on it after the idle timeout.
    fn ping(&mut self, conn: &mut Connection) -> Result<(), ClientError> {
        if self.last_rx.elapsed() > self.idle_timeout {
            return Err(ClientError::Timeout {
                during: "waiting for the server",
            });
        }
        let nonce = self.next_ping;
        self.next_ping += 1;
        conn.queue(&ClientFrame::Ping(Ping { nonce }))
    }
}

/// How a connection ended.
enum End {
    Closed(Option<oneshot::Sender<()>>),
    Lost(ClientError),
}

/// The client's state, driven by one task.
pub(crate) struct Engine {
    pub(crate) config: ClientConfig,
    tls: ClientTls,
    pub(crate) store: Arc<LocalStore>,
    pub(crate) identity: IdentityKeyPair,
    pub(crate) prekeys: PrekeySecrets,
    events: mpsc::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    pub(crate) counters: Arc<Counters>,
    /// The outbox in send order.
    pub(crate) outbox: BTreeMap<u64, Pending>,
    /// Known device numbers per user (for this user: the other devices).
    pub(crate) devices: HashMap<UserName, Vec<u32>>,
    /// Bundles fetched for devices without a session, not used yet.
    pub(crate) bundles: HashMap<DeviceId, DeviceBundle>,
    /// Bundle requests waiting for an answer, by request id.
    pub(crate) bundle_requests: HashMap<MessageId, UserName>,
    /// Told when the first connection is ready (prekeys stored by the server).
    ready: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// Media uploads waiting for `MediaStored`.
    pub(crate) uploads: HashMap<MediaId, Upload>,
    /// Media downloads in progress.
    pub(crate) downloads: HashMap<MediaId, Download>,
}

impl Engine {
    #[expect(clippy::too_many_arguments, reason = "private constructor called once")]
    pub(crate) fn new(
        config: ClientConfig,
        tls: ClientTls,
        store: Arc<LocalStore>,
        identity: IdentityKeyPair,
        prekeys: PrekeySecrets,
        events: mpsc::Sender<Event>,
        commands: mpsc::Receiver<Command>,
        counters: Arc<Counters>,
    ) -> Result<Self, ClientError> {
        let outbox = store
            .outbox()?
            .into_iter()
            .map(|(seq, entry)| {
                let pending = Pending {
                    entry,
                    in_flight: false,
                    retry_at: None,
                    attempts: 0,
                };
                (seq, pending)
            })
            .collect();
        let devices = store.all_devices()?.into_iter().collect();
        Ok(Self {
            config,
            tls,
            store,
            identity,
            prekeys,
            events,
            commands,
            counters,
            outbox,
            devices,
            bundles: HashMap::new(),
            bundle_requests: HashMap::new(),
            ready: None,
            uploads: HashMap::new(),
            downloads: HashMap::new(),
        })
    }

    /// This device.
    pub(crate) fn me(&self) -> &DeviceId {
        &self.config.device
    }

    /// Connects, serves, reconnects with backoff, until closed or a fatal
    /// error. `ready` learns the outcome of the first connection.
    pub(crate) async fn run(mut self, ready: oneshot::Sender<Result<(), ClientError>>) {
        self.ready = Some(ready);
        let mut backoff = Backoff::new(self.config.reconnect_initial, self.config.reconnect_max);
        loop {
            let mut stop = self.connect_once(&mut backoff).await;
            if stop.is_none() {
                stop = self.wait_offline(backoff.next_delay()).await;
            }
            if let Some(closer) = stop {
                // Release the store before the caller hears of it.
                drop(self);
                if let Some(closer) = closer {
                    let _ = closer.send(());
                }
                return;
            }
        }
    }

    /// One connection attempt and, when it succeeds, the connection's life.
    /// `Some` when the client must stop (with the closer to answer, if any).
    async fn connect_once(&mut self, backoff: &mut Backoff) -> Option<Option<oneshot::Sender<()>>> {
        let opened = Connection::open(
            &self.config.server,
            &self.config.server_name,
            &self.tls,
            &self.config.device,
            &self.identity,
            self.config.connect_timeout,
        )
        .await;
        let error = match opened {
            Ok(conn) => {
                backoff.reset();
                self.counters.bump_connections(conn.resumed);
                tracing::info!(device = %self.me(), "connected");
                self.emit(Event::Connected).await;
                let end = self.serve(conn).await;
                self.fail_transfers();
                let error = match end {
                    End::Closed(closer) => return Some(closer),
                    End::Lost(error) => error,
                };
                if self.ready.is_none() {
                    tracing::info!(device = %self.me(), %error, "disconnected");
                    let reason = error.to_string();
                    self.emit(Event::Disconnected { reason }).await;
                }
                error
            }
            Err(error) => {
                if self.ready.is_none() {
                    tracing::warn!(device = %self.me(), %error, "reconnect failed");
                }
                error
            }
        };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error));
            return Some(None);
        }
        if error.is_fatal() {
            self.emit(Event::Stopped { error }).await;
            return Some(None);
        }
        None
    }

    /// Takes commands while disconnected, for `delay`. `Some` once closed
    /// (with the closer to answer, if any).
    async fn wait_offline(&mut self, delay: Duration) -> Option<Option<oneshot::Sender<()>>> {
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return None,
                command = self.commands.recv() => match command {
                    None => return Some(None),
                    Some(Command::Close { reply }) => return Some(Some(reply)),
                    Some(command) => self.on_command(command),
                },
            }
        }
    }

    /// Runs one authenticated connection until it ends.
    async fn serve(&mut self, mut conn: Connection) -> End {
        let mut link = Link::new(&conn, &self.config);
        for pending in self.outbox.values_mut() {
            pending.in_flight = false;
        }
        self.bundle_requests.clear();
        if let Err(error) = self.on_welcome(&mut conn, &mut link) {
            return End::Lost(error);
        }

        let ping_every = link.idle_timeout / 3;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        loop {
            if let Err(error) = self.pump(&mut conn, &mut link).await {
                return End::Lost(error);
            }
            let wake = self.next_wake(&link);
            let handled = tokio::select! {
                frame = conn.recv() => match frame {
                    Ok(frame) => {
                        link.last_rx = Instant::now();
                        self.on_frames(&mut conn, &mut link, frame).await
                    }
                    Err(error) => Err(error),
                },
                command = self.commands.recv() => match command {
                    None => {
                        self.close(conn).await;
                        return End::Closed(None);
                    }
                    Some(Command::Close { reply }) => {
                        self.close(conn).await;
                        return End::Closed(Some(reply));
                    }
                    Some(command) => self.on_command_online(&mut conn, command).await,
                },
                _ = ping.tick() => link.ping(&mut conn),
                () = sleep_until_opt(wake) => Ok(()),
            };
            if let Err(error) = handled {
                return End::Lost(error);
            }
        }
    }

    /// Handles `frame` and the frames already buffered behind it (up to a
    /// bound), so that their store writes share one fsync at the next flush.
    async fn on_frames(
        &mut self,
        conn: &mut Connection,
        link: &mut Link,
        frame: ServerFrame,
    ) -> Result<(), ClientError> {
        self.on_frame(conn, link, frame).await?;
        for _ in 1..MAX_FRAMES_PER_BATCH {
            match conn.try_recv()? {
                Some(frame) => self.on_frame(conn, link, frame).await?,
                None => break,
            }
        }
        Ok(())
    }

    /// Makes the store durable, then writes what is queued: nothing leaves
    /// the device before the state it depends on is on disk (a sealed
    /// message's ratchet step, a received message before its ack).
    pub(crate) async fn flush(&self, conn: &mut Connection) -> Result<(), ClientError> {
        self.store.sync()?;
        conn.flush().await
    }

    /// Closes the connection, sending what is queued only if the store is
    /// durable.
    async fn close(&self, conn: Connection) {
        match self.store.sync() {
            Ok(()) => conn.close().await,
            Err(error) => tracing::warn!(%error, "store sync failed; dropping queued frames"),
        }
    }

    /// A command while connected: media transfers need the connection.
    async fn on_command_online(
        &mut self,
        conn: &mut Connection,
        command: Command,
    ) -> Result<(), ClientError> {
        match command {
            Command::UploadMedia { data, name, reply } => {
                self.start_upload(conn, data, name, reply).await
            }
            Command::DownloadMedia { media, reply } => self.start_download(conn, &media, reply),
            command => {
                self.on_command(command);
                Ok(())
            }
        }
    }

    /// After `Welcome`: top up prekeys and learn this user's other devices.
    fn on_welcome(&mut self, conn: &mut Connection, link: &mut Link) -> Result<(), ClientError> {
        let remaining = conn.welcome.prekeys_remaining;
        let low_water = self.config.prekey_low_water.min(link.prekey_target);
        if self.prekeys.current_signed_prekey().is_none() || remaining < low_water.max(1) {
            self.upload_prekeys(conn, link.prekey_target.saturating_sub(remaining))?;
        } else {
            link.welcome_prekeys = None;
        }
        if self.config.sync_own_devices {
            let me = self.me().user.clone();
            self.request_bundle(conn, &me)?;
        }
        if self.ready.is_some() {
            // Ready once the server has handled the upload above: a ping
            // sent after it is answered after it.
            let nonce = link.next_ping;
            link.next_ping += 1;
            link.ready_ping = Some(nonce);
            conn.queue(&ClientFrame::Ping(Ping { nonce }))?;
        }
        Ok(())
    }

    /// Generates `count` one-time prekeys (and a signed prekey if there is
    /// none), stores the secrets, then queues the upload.
    fn upload_prekeys(&mut self, conn: &mut Connection, count: u32) -> Result<(), ClientError> {
        let mut rng = rand::rng();
        let mut prekeys = self.prekeys.clone();
        let signed = match prekeys.current_signed_prekey() {
            Some(signed) => signed,
            None => prekeys.rotate_signed_prekey(&mut rng, &self.identity),
        };
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let one_time = prekeys.generate_one_time_prekeys(&mut rng, count);
        self.store.write_lazy(|txn| txn.put_prekeys(&prekeys))?;
        self.prekeys = prekeys;
        tracing::debug!(count = one_time.len(), "uploading prekeys");
        conn.queue(&ClientFrame::UploadPrekeys(UploadPrekeys {
            id: MessageId(rand::random()),
            signed_prekey: SignedPrekey {
                id: signed.id,
                key: signed.key,
                signature: signed.signature,
            },
            one_time: one_time
                .iter()
                .map(|p| OneTimePrekey {
                    id: p.id,
                    key: p.key,
                })
                .collect(),
        }))
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                to,
                id,
                content,
                reply,
            } => {
                let result = self.enqueue(&to, id, &content).map(|()| id);
                let _ = reply.send(result);
            }
            Command::CreateGroup {
                group,
                members,
                reply,
            } => {
                let result = self.enqueue_create_group(group, members).map(|()| group);
                let _ = reply.send(result);
            }
            Command::SendGroup {
                group,
                id,
                content,
                reply,
            } => {
                let result = self.enqueue_group_message(group, id, &content).map(|()| id);
                let _ = reply.send(result);
            }
            Command::UploadMedia { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
            Command::DownloadMedia { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotConnected));
            }
            Command::Close { reply } => {
                // Handled by the loops; reaching here means nothing to close.
                let _ = reply.send(());
            }
        }
    }

    async fn on_frame(
        &mut self,
        conn: &mut Connection,
        link: &mut Link,
        frame: ServerFrame,
    ) -> Result<(), ClientError> {
        match frame {
            ServerFrame::Deliver(deliver) => self.on_deliver(conn, deliver).await,
            ServerFrame::Accepted(accepted) => self.on_accepted(accepted.id).await,
            ServerFrame::Delivered(delivered) => {
                self.on_delivered(delivered.id, delivered.to).await
            }
            ServerFrame::Bundle(bundle) => self.on_bundle(bundle).await,
            ServerFrame::GroupChanged(changed) => self.on_group_changed(conn, changed).await,
            ServerFrame::GroupInfo(info) => self.on_group_info(info).await,
            ServerFrame::MediaStored(stored) => {
                self.on_media_stored(&stored);
                Ok(())
            }
            ServerFrame::MediaChunk(chunk) => {
                self.on_media_chunk(chunk);
                Ok(())
            }
            ServerFrame::PrekeysLow(low) => {
                if link.welcome_prekeys.take() == Some(low.remaining) {
                    return Ok(());
                }
                let missing = link.prekey_target.saturating_sub(low.remaining);
                if missing > 0 {
                    self.upload_prekeys(conn, missing)?;
                }
                Ok(())
            }
            ServerFrame::Ping(ping) => conn.queue(&ClientFrame::Pong(Pong { nonce: ping.nonce })),
            ServerFrame::Error(error) => self.on_error(error).await,
            ServerFrame::Pong(pong) => {
                if link.ready_ping == Some(pong.nonce) {
                    link.ready_ping = None;
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Ok(())
            }
            other => {
                tracing::debug!(frame = other.name(), "ignoring frame");
                Ok(())
            }
        }
    }

    async fn on_error(&mut self, error: ErrorFrame) -> Result<(), ClientError> {
        let ErrorFrame { code, text, id } = error;
        if let Some(id) = id {
            let refused = ClientError::Server {
                code,
                text: text.clone(),
            };
            if self.on_media_error(MediaId(id.0), &refused) {
                return Ok(());
            }
            if let Some(user) = self.bundle_requests.remove(&id) {
                return self.on_bundle_error(&user, code, text).await;
            }
            if self.outbox.values().any(|p| p.entry.id == id) {
                return self.on_send_error(id, code, text).await;
            }
        }
        if code.closes_connection() {
            return Err(ClientError::Server { code, text });
        }
        match code {
            ErrorCode::TooManyPrekeys => tracing::debug!(%text, "server holds enough prekeys"),
            _ => tracing::warn!(code = code.as_u16(), %text, "server error"),
        }
        Ok(())
    }

    /// Hands an event to the application (waits while its queue is full).
    pub(crate) async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    /// The earliest instant at which something waiting may proceed.
    fn next_wake(&self, link: &Link) -> Option<Instant> {
        let retry = self
            .outbox
            .values()
            .filter(|p| !p.in_flight)
            .filter_map(|p| p.retry_at)
            .min();
        let has_unsent = self
            .outbox
            .values()
            .any(|p| !p.in_flight && p.entry.copies.is_some());
        let tokens = has_unsent.then(|| link.tokens.next_token_at());
        match (retry, tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|at| *at > Instant::now())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
