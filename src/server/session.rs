//! The session process: one per connection.
//!
//! It owns the TLS stream, reads and decodes frames, hands them to its
//! `logic` child one window at a time, and writes everything the logic and
//! the router send it, batching writes into one flush per burst. It traps
//! exits: when the logic panics, the session answers the frame that crashed
//! with `InternalError`, starts a new logic with the same authentication
//! state and hands it the frames that were still waiting.
//!
//! Live deliveries that arrive while the logic drains the device's parked
//! frames are held and sent after the drain, skipping what the drain sent
//! (see [`Delivery`]).

mod io;
mod unconfirmed;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use supervisors::{Addr, Ctx, Envelope, ExitReason, SpawnOptions};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use self::io::{Conn, IoError};
use self::unconfirmed::{Kept, Unconfirmed};
use super::logic::{self, LogicMsg, ParkedNotice, TokenBucket, Upload};
use super::metrics as m;
use super::router::key_of;
use super::shared::{ConnGuard, Shared};
use crate::protocol::{
    CHALLENGE_BYTES, ClientFrame, DeviceId, ErrorCode, ErrorFrame, MessageId, PROTOCOL_VERSION,
    Ping, ServerFrame, ServerHello,
};

/// Frames handed to the logic and not finished yet, at most.
const WINDOW: u64 = 32;

/// What a session receives. Frames are boxed to keep the message small:
/// a mailbox keeps the capacity it once needed.
#[derive(Debug)]
pub(crate) enum SessionMsg {
    /// A frame to write now (answers, receipts, notices).
    Out(Box<ServerFrame>),
    /// A parked frame forwarded live by the router, with its store seq.
    Live { seq: u64, frame: Box<ServerFrame> },
    /// A parked frame sent by the logic's drain, with its store seq; for a
    /// notice, where it is parked, to remove once the session keeps it.
    Drained {
        seq: u64,
        frame: Box<ServerFrame>,
        unpark: Option<Box<ParkedNotice>>,
    },
    /// The device authenticated: hold live frames until the drain ends.
    DrainStart,
    /// The drain sent everything parked.
    DrainEnd,
    /// Write this error and close the connection.
    Close(Box<ErrorFrame>),
}

impl SessionMsg {
    /// A frame to write now.
    pub(crate) fn out(frame: ServerFrame) -> Self {
        Self::Out(Box::new(frame))
    }

    /// Write `err` and close.
    pub(crate) fn close(err: ErrorFrame) -> Self {
        Self::Close(Box::new(err))
    }
}

/// The state of a connection that outlives a restart of its logic.
pub(crate) struct SessionState {
    pub(crate) conn: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) challenge: [u8; CHALLENGE_BYTES],
    pub(crate) exporter: [u8; 32],
    device: OnceLock<DeviceId>,
    /// The number of the last frame the logic finished.
    done: AtomicU64,
    /// The number of the frame the logic is handling right now, 0 between
    /// frames (to name the one that crashed it).
    pub(crate) handling: AtomicU64,
    progress: Notify,
    /// Fault injection: the logic panics on its next frame.
    pub(crate) panic_next: AtomicBool,
    /// Seq up to which the drain has sent the parked frames.
    pub(crate) drain_cursor: AtomicU64,
    /// Whether the drain finished.
    pub(crate) drained: AtomicBool,
    pub(crate) bucket: Mutex<TokenBucket>,
    pub(crate) upload: Mutex<Option<Box<Upload>>>,
    /// The pid of the current logic process (for fault injection).
    pub(crate) logic_pid: Mutex<Option<supervisors::Pid>>,
}

impl SessionState {
    /// The authenticated device, once authenticated.
    pub(crate) fn device(&self) -> Option<&DeviceId> {
        self.device.get()
    }

    /// Records the authenticated device; false if one was recorded already.
    pub(crate) fn set_device(&self, device: DeviceId) -> bool {
        self.device.set(device).is_ok()
    }

    /// The logic finished frame `n`.
    pub(crate) fn finished(&self, n: u64) {
        self.done.store(n, Ordering::Release);
        self.progress.notify_one();
    }
}

/// What the listener hands the sessions supervisor: a connection, taken
/// once by the start function.
#[derive(Clone)]
pub(crate) struct SessionArgs {
    pub(crate) slot: Arc<Mutex<Option<(TcpStream, SocketAddr, ConnGuard)>>>,
}

/// Runs one session (the body of a `sessions` child).
pub(crate) async fn run(
    ctx: Ctx<SessionMsg>,
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) -> ExitReason {
    let span = tracing::info_span!(
        "session",
        peer = %peer,
        conn = guard.id(),
        device = tracing::field::Empty
    );
    run_inner(ctx, shared, tcp, peer, guard)
        .instrument(span)
        .await
}

async fn run_inner(
    ctx: Ctx<SessionMsg>,
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) -> ExitReason {
    // Boxed: the handshake's state is large and only needed once, so an
    // established session's future holds just the session.
    let Some(session) = Box::pin(open(&ctx, shared, tcp, peer, guard)).await else {
        return ExitReason::Normal;
    };
    let mut open = Established { ctx, session };
    open.session.serve(&mut open.ctx).await
}

/// An established session with its process context. Dropping it finishes
/// the session, so that a session leaves the router and hands on its
/// unconfirmed frames however its task ends: by returning, by a panic, or
/// killed (a killed process's body is dropped and never resumed).
struct Established {
    ctx: Ctx<SessionMsg>,
    session: Session,
}

impl Drop for Established {
    fn drop(&mut self) {
        self.session.finish(&mut self.ctx);
    }
}

/// Completes TLS, sends `ServerHello` and starts the logic.
async fn open(
    ctx: &Ctx<SessionMsg>,
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) -> Option<Session> {
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    let tls = match shared
        .tls
        .accept(tcp, shared.limits.handshake_timeout)
        .await
    {
        Ok(tls) => tls,
        Err(err) => {
            tracing::debug!(error = %err, "tls handshake failed");
            return None;
        }
    };
    let exporter = match crate::tls::exporter(&tls) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(error = %err, "tls exporter failed");
            return None;
        }
    };
    let mut conn = Conn::new(tls, shared.limits.max_frame_bytes);
    if shared.is_shutting_down() {
        let err = ErrorFrame::new(ErrorCode::ShuttingDown, "server is shutting down", None);
        let _ = conn.close_with(err).await;
        return None;
    }
    let state = Arc::new(SessionState {
        conn: guard.id(),
        peer,
        challenge: random_challenge(),
        exporter,
        device: OnceLock::new(),
        done: AtomicU64::new(0),
        handling: AtomicU64::new(0),
        progress: Notify::new(),
        panic_next: AtomicBool::new(false),
        drain_cursor: AtomicU64::new(0),
        drained: AtomicBool::new(false),
        bucket: Mutex::new(TokenBucket::new(
            shared.limits.messages_per_second,
            shared.limits.burst,
        )),
        upload: Mutex::new(None),
        logic_pid: Mutex::new(None),
    });
    let hello = ServerHello {
        version: PROTOCOL_VERSION,
        challenge: state.challenge,
        limits: shared.wire_limits.clone(),
    };
    conn.queue(&ServerFrame::ServerHello(hello));
    let logic = Some(spawn_logic(ctx, &shared, &state));
    Some(Session {
        shared,
        state,
        conn,
        guard,
        logic,
        sent: 0,
        inflight: std::collections::VecDeque::new(),
        delivery: Delivery::default(),
        unconfirmed: Unconfirmed::default(),
        restarts: None,
        handshake_deadline: Some(deadline),
        last_read: Instant::now(),
        ping_sent: false,
        nonce: 0,
        closing: false,
    })
}

/// Starts a logic process linked to the session.
fn spawn_logic(
    ctx: &Ctx<SessionMsg>,
    shared: &Arc<Shared>,
    state: &Arc<SessionState>,
) -> Addr<LogicMsg> {
    let session = ctx.addr();
    let shared = Arc::clone(shared);
    let for_logic = Arc::clone(state);
    let opts = SpawnOptions::new()
        .link(ctx.pid())
        .capacity(usize::try_from(WINDOW).unwrap_or(32) + 8);
    let spawned = ctx.node().spawn_with(opts, move |lctx| {
        logic::run(lctx, shared, for_logic, session)
    });
    match spawned {
        Ok(addr) => {
            *state.logic_pid.lock() = Some(addr.pid());
            addr
        }
        // Unnamed spawns cannot fail; keep a dead address if they ever do
        // (the session then closes on the first frame it cannot hand over).
        Err(err) => {
            tracing::error!(error = %err, "logic spawn failed");
            ctx.node()
                .spawn(|_ctx: Ctx<LogicMsg>| async { ExitReason::error("no logic") })
        }
    }
}

/// Which live and drained frames a session writes, so that parked frames
/// come out in order and none twice.
///
/// The drain reads parked frames in seq order; a frame is durable (and has
/// its seq) before it is forwarded live, and seqs become visible in order,
/// so every live frame with a seq at or below the highest drained seq was
/// part of the drain.
///
/// A frame can also be forwarded twice: a resend of a frame that still
/// waits is forwarded again, in case the first forward was lost with the
/// connection that parked it. The seqs of the last few live frames written
/// catch the second copy; an older one reaches the client, which drops it by
/// its id.
#[derive(Default)]
struct Delivery {
    draining: bool,
    horizon: u64,
    held: Vec<(u64, Box<ServerFrame>)>,
    /// Seqs of the live frames written most recently (allocated with the
    /// first live frame, so a session that never gets one stays small).
    recent: Option<Box<RecentLive>>,
}

/// Live seqs a session remembers (8 bytes each).
const RECENT_LIVE: usize = 64;

/// A ring of the last [`RECENT_LIVE`] live seqs (0 marks a free slot: seqs
/// start at 1).
struct RecentLive {
    seqs: [u64; RECENT_LIVE],
    next: usize,
}

impl Delivery {
    /// Whether a live frame with `seq` is new to this connection; records it.
    fn admit_live(&mut self, seq: u64) -> bool {
        if seq <= self.horizon {
            return false;
        }
        let recent = self.recent.get_or_insert_with(|| {
            Box::new(RecentLive {
                seqs: [0; RECENT_LIVE],
                next: 0,
            })
        });
        if recent.seqs.contains(&seq) {
            return false;
        }
        recent.seqs[recent.next] = seq;
        recent.next = (recent.next + 1) % RECENT_LIVE;
        true
    }
}

struct Session {
    shared: Arc<Shared>,
    state: Arc<SessionState>,
    conn: Conn,
    guard: ConnGuard,
    /// The logic process; `None` while it hibernates.
    logic: Option<Addr<LogicMsg>>,
    /// Number of the last frame handed to the logic.
    sent: u64,
    inflight: std::collections::VecDeque<(u64, Arc<ClientFrame>)>,
    delivery: Delivery,
    unconfirmed: Unconfirmed,
    /// When the logic crashed within the restart period. Boxed: it stays
    /// `None` in almost every session, which is then 16 bytes smaller.
    #[expect(
        clippy::box_collection,
        reason = "keeps a session without crashes small"
    )]
    restarts: Option<Box<Vec<Instant>>>,
    handshake_deadline: Option<Instant>,
    last_read: Instant,
    ping_sent: bool,
    nonce: u64,
    closing: bool,
}

impl Session {
    async fn serve(&mut self, ctx: &mut Ctx<SessionMsg>) -> ExitReason {
        loop {
            let now = Instant::now();
            if self.unconfirmed.wants_ping(now) && !self.closing {
                self.nonce += 1;
                self.write(&ServerFrame::Ping(Ping { nonce: self.nonce }));
                self.unconfirmed.ping_sent(self.nonce, now);
            }
            if let Err(err) = self.conn.flush(self.shared.limits.idle_timeout).await {
                tracing::debug!(error = %err, "write failed");
                return ExitReason::Normal;
            }
            if self.closing {
                self.conn.shutdown().await;
                return ExitReason::Normal;
            }
            if let Err(reason) = self.pump(ctx) {
                return reason;
            }
            if self.closing {
                continue;
            }
            let window_open = self.sent - self.done() < WINDOW;
            let timer = self.next_timer();
            tokio::select! {
                biased;
                env = ctx.recv() => {
                    if let Some(reason) = self.on_envelope(ctx, env) {
                        return reason;
                    }
                    while let Some(env) = ctx.try_recv() {
                        if let Some(reason) = self.on_envelope(ctx, env) {
                            return reason;
                        }
                        if self.conn.pending_bytes() > 64 * 1024 {
                            break;
                        }
                    }
                }
                read = self.conn.read(), if window_open => match read {
                    Ok(0) => {
                        tracing::debug!("peer closed");
                        return ExitReason::Normal;
                    }
                    Ok(_) => {
                        self.last_read = Instant::now();
                        self.ping_sent = false;
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "read failed");
                        return ExitReason::Normal;
                    }
                },
                () = self.state.progress.notified(), if !window_open => {}
                () = tokio::time::sleep_until(timer) => {
                    if let Some(reason) = self.on_timer() {
                        return reason;
                    }
                }
            }
        }
    }

    fn done(&self) -> u64 {
        self.state.done.load(Ordering::Acquire)
    }

    /// Decodes buffered frames and hands them to the logic while the window
    /// allows.
    fn pump(&mut self, ctx: &Ctx<SessionMsg>) -> Result<(), ExitReason> {
        while self.sent - self.done() < WINDOW && !self.closing {
            let frame = match self.conn.decode() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(error = %err, "bad frame");
                    let code = err.code();
                    self.close(ErrorFrame::new(code, err.to_string(), None));
                    break;
                }
            };
            metrics::counter!(m::FRAMES_IN).increment(1);
            if let ClientFrame::Pong(pong) = &frame {
                self.unconfirmed.pong(pong.nonce);
            }
            self.sent += 1;
            let frame = Arc::new(frame);
            self.trim_inflight();
            self.inflight.push_back((self.sent, Arc::clone(&frame)));
            let msg = LogicMsg::Frame {
                n: self.sent,
                frame,
            };
            if self.logic(ctx).try_send(msg).is_err() {
                // The logic is gone (its exit is on the way) or the window
                // is wrong; either way the frame is in `inflight` and is
                // handed to the next logic.
                tracing::debug!("logic not reachable, frame held");
            }
        }
        self.trim_inflight();
        Ok(())
    }

    /// Forgets frames the logic has finished; frees the queue when empty.
    fn trim_inflight(&mut self) {
        let done = self.done();
        while self.inflight.front().is_some_and(|(n, _)| *n <= done) {
            self.inflight.pop_front();
        }
        if self.inflight.is_empty() && self.inflight.capacity() > 4 {
            self.inflight = std::collections::VecDeque::new();
        }
    }

    fn on_envelope(
        &mut self,
        ctx: &mut Ctx<SessionMsg>,
        env: Envelope<SessionMsg>,
    ) -> Option<ExitReason> {
        match env {
            Envelope::Message(msg) => {
                self.on_message(msg);
                None
            }
            Envelope::Exit { from, reason }
                if self.logic.as_ref().is_some_and(|l| l.pid() == from) =>
            {
                self.on_logic_exit(ctx, reason)
            }
            Envelope::Exit { reason, .. } => {
                let code = ErrorCode::ShuttingDown;
                let text = match &reason {
                    ExitReason::ShutdownWith(why) => why.clone(),
                    _ => "server is shutting down".to_owned(),
                };
                self.close(ErrorFrame::new(code, text, None));
                None
            }
            _ => None,
        }
    }

    fn on_message(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Out(frame) => {
                if let ServerFrame::Welcome(welcome) = &*frame {
                    self.handshake_deadline = None;
                    self.guard.authenticated();
                    tracing::Span::current()
                        .record("device", tracing::field::display(&welcome.device));
                }
                self.write_kept(frame);
            }
            SessionMsg::Live { seq, frame } => {
                if self.delivery.draining {
                    self.delivery.held.push((seq, frame));
                } else if self.delivery.admit_live(seq) {
                    self.write_kept(frame);
                }
            }
            SessionMsg::Drained { seq, frame, unpark } => {
                self.delivery.horizon = self.delivery.horizon.max(seq);
                self.write_kept(frame);
                if let Some(parked) = unpark {
                    let shared = Arc::clone(&self.shared);
                    tokio::spawn(async move { parked.remove(&shared).await });
                }
            }
            SessionMsg::DrainStart => self.delivery.draining = true,
            SessionMsg::DrainEnd => {
                self.delivery.draining = false;
                let held = std::mem::take(&mut self.delivery.held);
                for (seq, frame) in held {
                    if self.delivery.admit_live(seq) {
                        self.write_kept(frame);
                    }
                }
            }
            SessionMsg::Close(err) => self.close(*err),
        }
    }

    /// The logic exited: restart it unless it stopped on purpose or crashes
    /// too often.
    fn on_logic_exit(
        &mut self,
        ctx: &mut Ctx<SessionMsg>,
        reason: ExitReason,
    ) -> Option<ExitReason> {
        if matches!(&reason, ExitReason::ShutdownWith(why) if why == logic::HIBERNATE) {
            self.logic = None;
            self.trim_inflight();
            // A frame handed over while it was stopping goes to a new one.
            let pending: Vec<_> = self.inflight.iter().cloned().collect();
            for (n, frame) in pending {
                let _ = self.logic(ctx).try_send(LogicMsg::Frame { n, frame });
            }
            return None;
        }
        if reason.is_clean() {
            self.closing = true;
            return None;
        }
        metrics::counter!(m::RESTARTS).increment(1);
        tracing::warn!(reason = %reason, "session logic crashed, restarting it");
        let now = Instant::now();
        let period = self.shared.limits.logic_restart_period;
        let restarts = self.restarts.get_or_insert_with(Box::default);
        restarts.retain(|t| now.duration_since(*t) < period);
        restarts.push(now);
        let done = self.done();
        self.inflight.retain(|(n, _)| *n > done);
        // A panic is blamed on the frame being handled: it is answered with
        // an error and not handed over again. A kill blames no frame: every
        // unfinished one goes to the new logic, including a send whose park
        // may have committed (it comes back as already parked, and is
        // forwarded and accepted then), so no client is told "failed" about
        // a message that was stored.
        let crashed_n = self.state.handling.load(Ordering::Acquire);
        let crashed = if matches!(reason, ExitReason::Panic(_)) {
            self.inflight
                .iter()
                .position(|(n, _)| *n == crashed_n)
                .and_then(|at| self.inflight.remove(at))
        } else {
            None
        };
        let id = crashed.as_ref().and_then(|(_, f)| request_id(f));
        let err = ErrorFrame::new(
            ErrorCode::InternalError,
            "internal error handling this frame",
            id,
        );
        let crashes = self.restarts.as_ref().map_or(0, |r| r.len());
        if crashes > self.shared.limits.logic_restart_limit as usize {
            self.close(err);
            return None;
        }
        if crashed.is_some() {
            self.write(&ServerFrame::Error(err));
        }
        // The new logic gets every unfinished frame again, in order, and
        // counts the crashed one as finished in its place.
        self.logic = None;
        let logic = self.logic(ctx).clone();
        let pending: Vec<_> = self.inflight.iter().cloned().collect();
        let mut skipped = crashed.is_none();
        for (n, frame) in pending {
            if !skipped && n > crashed_n {
                let _ = logic.try_send(LogicMsg::Skip { n: crashed_n });
                skipped = true;
            }
            let _ = logic.try_send(LogicMsg::Frame { n, frame });
        }
        if !skipped {
            let _ = logic.try_send(LogicMsg::Skip { n: crashed_n });
        }
        None
    }

    /// The logic process, started if it is hibernating or was restarted;
    /// a new logic resumes an unfinished drain first.
    fn logic(&mut self, ctx: &Ctx<SessionMsg>) -> &Addr<LogicMsg> {
        let state = &self.state;
        let shared = &self.shared;
        self.logic.get_or_insert_with(|| {
            let logic = spawn_logic(ctx, shared, state);
            if state.device().is_some() && !state.drained.load(Ordering::Acquire) {
                let _ = logic.try_send(LogicMsg::Resume);
            }
            logic
        })
    }

    fn next_timer(&self) -> Instant {
        let limits = &self.shared.limits;
        let mut next = self.last_read + limits.idle_timeout;
        if !self.ping_sent {
            next = next.min(self.last_read + limits.heartbeat_interval);
        }
        if let Some(deadline) = self.handshake_deadline {
            next = next.min(deadline);
        }
        if let Some(due) = self.unconfirmed.ping_due() {
            next = next.min(due);
        }
        next
    }

    fn on_timer(&mut self) -> Option<ExitReason> {
        let now = Instant::now();
        let limits = &self.shared.limits;
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.close(ErrorFrame::new(
                ErrorCode::NotAuthenticated,
                "no valid ClientHello within the handshake timeout",
                None,
            ));
            return None;
        }
        if now >= self.last_read + limits.idle_timeout {
            tracing::debug!("idle timeout");
            return Some(ExitReason::Normal);
        }
        if !self.ping_sent && now >= self.last_read + limits.heartbeat_interval {
            self.ping_sent = true;
            self.nonce += 1;
            self.write(&ServerFrame::Ping(Ping { nonce: self.nonce }));
            self.conn.release_buffers();
        }
        None
    }

    /// Writes a frame handed to the session; a receipt or group notice is
    /// kept until the client confirms it (even on a closing connection,
    /// where nothing is written any more).
    fn write_kept(&mut self, frame: Box<ServerFrame>) {
        self.write(&frame);
        if let Some(kept) = Kept::from_frame(*frame) {
            self.unconfirmed.written(kept);
        }
    }

    fn write(&mut self, frame: &ServerFrame) {
        if self.closing {
            return;
        }
        if let ServerFrame::Error(err) = frame {
            m::error_frame(err.code);
        }
        if matches!(frame, ServerFrame::Deliver(_)) {
            metrics::counter!(m::DELIVERED).increment(1);
        }
        if let Err(err) = self.conn.queue_checked(frame) {
            tracing::warn!(error = %err, frame = frame.name(), "frame not written");
        }
    }

    fn close(&mut self, err: ErrorFrame) {
        if self.closing {
            return;
        }
        tracing::debug!(code = %err.code, "closing connection");
        self.write(&ServerFrame::Error(err));
        self.closing = true;
    }

    /// Leaves the router, hands on unconfirmed frames and stops the logic.
    /// Runs once, when the session is dropped (see [`Established`]).
    fn finish(&mut self, ctx: &mut Ctx<SessionMsg>) {
        if let Some(device) = self.state.device() {
            let key = key_of(device);
            if self.shared.router.unregister(&key, self.state.conn) {
                self.shared.presence.went_offline(&self.shared, device);
            }
            let mut frames = self.unconfirmed.take();
            // Live frames held back during a drain were never written.
            let held = std::mem::take(&mut self.delivery.held);
            frames.extend(held.into_iter().filter_map(|(_, f)| Kept::from_frame(*f)));
            // While unwinding from a panic the mailbox stays unread: a
            // receive can itself panic (an injected fault), and a second
            // panic there would abort the server.
            while !std::thread::panicking()
                && let Some(env) = ctx.try_recv()
            {
                if let Envelope::Message(msg) = env {
                    frames.extend(unconfirmed::kept_in(msg));
                }
            }
            unconfirmed::hand_on(&self.shared, device, frames);
            self.shared.depths.went_offline(&key, &self.shared);
        }
        if let Some(logic) = &self.logic {
            ctx.node().kill(logic.pid());
        }
    }
}

/// The request id a client frame carries, for error frames.
pub(crate) fn request_id(frame: &ClientFrame) -> Option<MessageId> {
    Some(match frame {
        ClientFrame::SendDirect(f) => f.id,
        ClientFrame::SendToUser(f) => f.id,
        ClientFrame::SendToGroup(f) => f.id,
        ClientFrame::DeliveryAck(f) => f.id,
        ClientFrame::UploadPrekeys(f) => f.id,
        ClientFrame::RequestBundle(f) => f.id,
        ClientFrame::CreateGroup(f) => f.id,
        ClientFrame::AddMembers(f) => f.id,
        ClientFrame::RemoveMembers(f) => f.id,
        ClientFrame::LeaveGroup(f) => f.id,
        ClientFrame::QueryGroup(f) => f.id,
        ClientFrame::MediaUploadBegin(f) => f.media.into(),
        ClientFrame::MediaUploadChunk(f) => f.media.into(),
        ClientFrame::MediaUploadFinish(f) => f.media.into(),
        ClientFrame::MediaDownload(f) => f.media.into(),
        _ => return None,
    })
}

fn random_challenge() -> [u8; CHALLENGE_BYTES] {
    use rand::Rng as _;
    let mut challenge = [0u8; CHALLENGE_BYTES];
    rand::rng().fill_bytes(&mut challenge);
    challenge
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("conn", &self.conn)
            .field("peer", &self.peer)
            .field("device", &self.device.get())
            .finish_non_exhaustive()
    }
}

impl From<IoError> for ExitReason {
    fn from(err: IoError) -> Self {
        ExitReason::error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::Delivery;

    #[test]
    fn a_live_seq_is_written_once_and_never_below_the_drain() {
        let mut delivery = Delivery {
            horizon: 10,
            ..Delivery::default()
        };
        assert!(!delivery.admit_live(10), "drained already");
        assert!(delivery.admit_live(12));
        assert!(
            delivery.admit_live(11),
            "live frames of two senders may cross"
        );
        assert!(!delivery.admit_live(12), "a second forward of a resend");
        for seq in 13..13 + super::RECENT_LIVE as u64 {
            assert!(delivery.admit_live(seq));
        }
        let full = delivery.recent.as_ref().map(|r| !r.seqs.contains(&0));
        assert_eq!(full, Some(true), "the ring is full");
        assert!(
            delivery.admit_live(11),
            "forgotten: the client drops it by id"
        );
    }
}
