//! The frame logic of one session: a process that handles the connection's
//! frames one at a time (authentication, sends, acks, prekeys, groups,
//! media, presence). It does no socket I/O: it answers through the session
//! and routes through the router and the store. When it panics, its session
//! restarts it; everything it must remember lives in the session's
//! [`SessionState`].

mod bucket;
mod delivery;
mod directory_ops;
mod media_ops;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use supervisors::{Addr, Ctx, Envelope, ExitReason};

pub(crate) use self::bucket::TokenBucket;
pub(crate) use self::delivery::{Notice, ParkedNotice, park_notices, parse_hex16};
pub(crate) use self::media_ops::Upload;
use super::auth::{self, AuthError};
use super::metrics as m;
use super::router::{SessionLink, key_of};
use super::session::{SessionMsg, SessionState, request_id};
use super::shared::Shared;
use crate::protocol::{
    ClientFrame, ClientHello, ConnectionPhase, DeviceId, ErrorCode, ErrorFrame, MessageId, Pong,
    ServerFrame, Welcome,
};
use crate::store::{Store, StoreError};

/// The exit reason of a logic that stops because it was idle; its
/// session starts a new one for the next frame.
pub(crate) const HIBERNATE: &str = "hibernate";

/// What a logic process receives.
#[derive(Debug)]
pub(crate) enum LogicMsg {
    /// Frame number `n` of the connection.
    Frame { n: u64, frame: Arc<ClientFrame> },
    /// Continue the drain a crashed predecessor started.
    Resume,
    /// Frame number `n` crashed a predecessor: count it as finished, in
    /// order.
    Skip { n: u64 },
}

/// Sends and acks in flight at once per connection, at most.
const PIPELINE: usize = 32;

/// A pipelined store operation of frame `n`.
type Work = Pin<Box<dyn Future<Output = Done> + Send>>;

/// The pipelined operations of a connection.
type Pipeline = FuturesOrdered<Pin<Box<dyn Future<Output = (u64, Done)> + Send>>>;

/// The result of a pipelined store operation, finished in frame order.
pub(crate) enum Done {
    /// Nothing left to do (keeps a frame's place in the order).
    Nothing,
    /// A send was parked (or failed).
    Parked {
        id: MessageId,
        routes: Vec<delivery::Route>,
        result: Result<Vec<crate::store::ParkOutcome>, StoreError>,
    },
    /// An ack removed a frame (or found none, or failed).
    Removed {
        id: MessageId,
        me: DeviceId,
        from: crate::store::DeviceKey,
        result: Result<bool, StoreError>,
    },
}

/// Runs the logic of one session.
pub(crate) async fn run(
    mut ctx: Ctx<LogicMsg>,
    shared: Arc<Shared>,
    state: Arc<SessionState>,
    session: Addr<SessionMsg>,
) -> ExitReason {
    let mut logic = Logic {
        shared,
        state,
        session,
        draining: false,
        closed: false,
        pipeline: parking_lot::Mutex::new(FuturesOrdered::new()),
        current: 0,
        pushed: false,
    };
    loop {
        let queued = logic.pipeline.get_mut().len();
        let env = if queued > 0 {
            tokio::select! {
                biased;
                Some((n, done)) = logic.pipeline.get_mut().next() => {
                    logic.complete(n, done).await;
                    continue;
                }
                env = ctx.recv(), if queued < PIPELINE => env,
            }
        } else if logic.draining {
            match ctx.try_recv() {
                Some(env) => env,
                None => {
                    // Boxed, like frame handling: an idle logic stays small.
                    Box::pin(logic.drain_page()).await;
                    continue;
                }
            }
        } else {
            let idle = logic.shared.limits.logic_hibernate_after;
            match tokio::time::timeout(idle, ctx.recv()).await {
                Ok(env) => env,
                // Idle: stop to free the process; everything it needs to
                // go on lives in the session state.
                Err(_) => return ExitReason::ShutdownWith(HIBERNATE.into()),
            }
        };
        match env {
            Envelope::Message(LogicMsg::Frame { n, frame }) => {
                logic.state.handling.store(n, Ordering::Release);
                if logic.state.panic_next.swap(false, Ordering::SeqCst) {
                    panic!("fault injected into session logic");
                }
                if !logic.closed && !pipelined(&frame) {
                    // Everything else waits for the sends before it, so
                    // that, e.g., a Pong follows their Accepted frames.
                    logic.flush_pipeline().await;
                }
                logic.current = n;
                logic.pushed = false;
                if !logic.closed && !logic.handle(&frame).await {
                    // The session closes the connection; frames already
                    // read are not handled any more.
                    logic.closed = true;
                    logic.draining = false;
                }
                // Done with it: a crash from here on is not this frame's.
                logic.state.handling.store(0, Ordering::Release);
                logic.after(n);
            }
            Envelope::Message(LogicMsg::Skip { n }) => {
                logic.pushed = false;
                logic.after(n);
            }
            Envelope::Message(LogicMsg::Resume) => logic.draining = true,
            _ => {}
        }
    }
}

/// Whether a frame's store work may overlap with the next frames'.
/// (A `Pong` waits for nothing: the session has read it already, and
/// holding it back would stall a sender's pipeline at every receipt ping.)
fn pipelined(frame: &ClientFrame) -> bool {
    matches!(
        frame,
        ClientFrame::SendDirect(_)
            | ClientFrame::SendToUser(_)
            | ClientFrame::SendToGroup(_)
            | ClientFrame::DeliveryAck(_)
            | ClientFrame::Pong(_)
    )
}

pub(crate) struct Logic {
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Arc<SessionState>,
    pub(crate) session: Addr<SessionMsg>,
    /// Parked frames are being sent to the session.
    pub(crate) draining: bool,
    /// The connection is closing.
    closed: bool,
    /// Store operations in flight, finished in frame order. (In a mutex
    /// only to make `Logic` `Sync`; it is reached through `get_mut`.)
    pipeline: parking_lot::Mutex<Pipeline>,
    /// The frame being handled.
    current: u64,
    /// Whether handling it pushed work into the pipeline.
    pushed: bool,
}

impl Logic {
    /// Queues the store work of the current frame.
    pub(crate) fn push(&mut self, work: impl Future<Output = Done> + Send + 'static) {
        let n = self.current;
        self.pushed = true;
        let work: Work = Box::pin(work);
        self.pipeline
            .get_mut()
            .push_back(Box::pin(async move { (n, work.await) }));
    }

    /// Frame `n` was handled: it is finished now, or after the work ahead
    /// of it in the pipeline.
    fn after(&mut self, n: u64) {
        if self.pushed {
            return;
        }
        let pipeline = self.pipeline.get_mut();
        if pipeline.is_empty() {
            self.state.finished(n);
        } else {
            pipeline.push_back(Box::pin(std::future::ready((n, Done::Nothing))));
        }
    }

    /// Finishes all pipelined work, in order.
    async fn flush_pipeline(&mut self) {
        while let Some((n, done)) = self.pipeline.get_mut().next().await {
            self.complete(n, done).await;
        }
    }

    /// Finishes one pipelined operation of frame `n`.
    async fn complete(&mut self, n: u64, done: Done) {
        // `handling` is not set: a crash while finishing stored work is not
        // blamed on the frame, which is handed to the next logic again (its
        // store work is recognised as done and only finished).
        match done {
            Done::Nothing => {}
            Done::Parked { id, routes, result } => self.parked(id, routes, result).await,
            Done::Removed {
                id,
                me,
                from,
                result,
            } => self.removed(id, &me, &from, result).await,
        }
        self.state.finished(n);
    }

    /// Handles one frame; false when the connection must close.
    async fn handle(&mut self, frame: &ClientFrame) -> bool {
        let phase = if self.state.device().is_some() {
            ConnectionPhase::Established
        } else {
            ConnectionPhase::Authenticating
        };
        if let Err(err) = phase.check_client_frame(frame) {
            self.close(ErrorFrame::from(&err)).await;
            return false;
        }
        let Some(me) = self.state.device().cloned() else {
            return match frame {
                ClientFrame::ClientHello(hello) => self.hello(hello).await,
                ClientFrame::Ping(ping) => {
                    self.out(ServerFrame::Pong(Pong { nonce: ping.nonce }))
                        .await;
                    true
                }
                _ => true,
            };
        };
        match frame {
            ClientFrame::Ping(ping) => {
                self.out(ServerFrame::Pong(Pong { nonce: ping.nonce }))
                    .await;
            }
            ClientFrame::Pong(_) => {}
            ClientFrame::SendDirect(f) => self.send_direct(&me, f).await,
            ClientFrame::SendToUser(f) => self.send_to_user(&me, f).await,
            ClientFrame::SendToGroup(f) => self.send_to_group(&me, f).await,
            ClientFrame::DeliveryAck(f) => self.delivery_ack(&me, f).await,
            ClientFrame::UploadPrekeys(f) => self.upload_prekeys(&me, f).await,
            ClientFrame::RequestBundle(f) => self.request_bundle(f).await,
            ClientFrame::CreateGroup(f) => self.create_group(&me, f).await,
            ClientFrame::AddMembers(f) => self.add_members(&me, f).await,
            ClientFrame::RemoveMembers(f) => self.remove_members(&me, f).await,
            ClientFrame::LeaveGroup(f) => self.leave_group(&me, f).await,
            ClientFrame::QueryGroup(f) => self.query_group(&me, f).await,
            ClientFrame::MediaUploadBegin(f) => self.media_begin(f).await,
            ClientFrame::MediaUploadChunk(f) => self.media_chunk(f).await,
            ClientFrame::MediaUploadFinish(f) => self.media_finish(f).await,
            ClientFrame::MediaDownload(f) => self.media_download(f).await,
            ClientFrame::SubscribePresence(_)
            | ClientFrame::UpdatePresence(_)
            | ClientFrame::Typing(_) => self.ephemeral(&me, frame).await,
            other => {
                self.error(
                    ErrorCode::MalformedFrame,
                    format!("{} is not handled by this server", other.name()),
                    request_id(other),
                )
                .await;
            }
        }
        true
    }

    /// Authenticates the connection.
    async fn hello(&mut self, hello: &ClientHello) -> bool {
        let state = Arc::clone(&self.state);
        let result =
            auth::authenticate(&self.shared, &state.challenge, &state.exporter, hello).await;
        match result {
            Ok(()) => {}
            Err(AuthError::Store(err)) => {
                tracing::warn!(error = %err, "store failed during authentication");
                self.error(storage_code(&err), "store unavailable, try again", None)
                    .await;
                return true;
            }
            Err(err) => {
                metrics::counter!(m::AUTH_FAILED).increment(1);
                tracing::info!(device = %hello.device, reason = %err, "authentication failed");
                self.close(ErrorFrame::new(
                    ErrorCode::AuthFailed,
                    err.to_string(),
                    None,
                ))
                .await;
                return false;
            }
        }
        let device = hello.device.clone();
        if !self.state.set_device(device.clone()) {
            return true;
        }
        metrics::counter!(m::AUTHENTICATED).increment(1);
        let remaining = self.prekeys_remaining(&device).await;
        self.out(ServerFrame::Welcome(Welcome {
            device: device.clone(),
            server_time_ms: now_ms(),
            prekeys_remaining: remaining,
        }))
        .await;
        let _ = self.session.send(SessionMsg::DrainStart).await;
        let key = key_of(&device);
        let link = SessionLink {
            addr: self.session.clone(),
            state: Arc::clone(&self.state),
        };
        if let Some(old) = self.shared.router.register(key.clone(), link) {
            replace(&self.shared, &old);
        }
        self.shared.depths.came_online(&key, &self.shared);
        self.shared.presence.came_online(&self.shared, &device);
        tracing::info!(device = %device, "device online");
        if remaining < self.shared.limits.prekeys_low_threshold {
            self.out(ServerFrame::PrekeysLow(crate::protocol::PrekeysLow {
                remaining,
            }))
            .await;
        }
        self.draining = true;
        true
    }

    async fn prekeys_remaining(&self, device: &DeviceId) -> u32 {
        let count = self
            .shared
            .store
            .one_time_prekey_count(&key_of(device))
            .await
            .unwrap_or(0);
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Sends a frame to this connection's client.
    pub(crate) async fn out(&self, frame: ServerFrame) {
        let _ = self.session.send(SessionMsg::out(frame)).await;
    }

    /// Answers a request with an error frame.
    pub(crate) async fn error(
        &self,
        code: ErrorCode,
        text: impl Into<String>,
        id: Option<MessageId>,
    ) {
        self.out(ServerFrame::Error(ErrorFrame::new(code, text, id)))
            .await;
    }

    /// Asks the session to write `err` and close.
    async fn close(&self, err: ErrorFrame) {
        let _ = self.session.send(SessionMsg::close(err)).await;
    }

    /// The authenticated device. Only called after authentication.
    pub(crate) fn me(&self) -> Option<&DeviceId> {
        self.state.device()
    }
}

/// Closes the session that `device` had before this one.
fn replace(shared: &Shared, old: &SessionLink) {
    let err = ErrorFrame::new(
        ErrorCode::SessionReplaced,
        "the device connected again",
        None,
    );
    if old.addr.try_send(SessionMsg::close(err)).is_err() {
        shared.node.exit(
            old.addr.pid(),
            ExitReason::ShutdownWith("the device connected again".into()),
        );
    }
}

/// The error code for a failed store operation.
pub(crate) fn storage_code(err: &StoreError) -> ErrorCode {
    match err {
        StoreError::Closed => ErrorCode::ShuttingDown,
        _ => ErrorCode::StorageUnavailable,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
