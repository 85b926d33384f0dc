//! The listener: accepts TCP connections and starts a session for each
//! under the `sessions` dynamic supervisor.
//!
//! A connection over a limit (unauthenticated connections per address, or
//! connections in total) still gets a TLS handshake and a `RateLimited`
//! error frame, so a well-behaved client knows why; at most
//! [`MAX_REFUSING`] such refusals run at once, the rest are dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use supervisors::{Ctx, DynamicSupervisorRef, ExitReason, StartChildError};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use super::session::SessionArgs;
use super::shared::{SESSIONS, Shared};
use crate::protocol::{ErrorCode, ErrorFrame, ServerCodec, ServerFrame};

/// Refusals in progress at most.
const MAX_REFUSING: usize = 64;

/// The listener process.
pub(crate) async fn run(
    _ctx: Ctx<()>,
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
) -> ExitReason {
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut stop = shared.stop_signal();
    loop {
        if *stop.borrow() {
            return ExitReason::Normal;
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return ExitReason::Normal,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(guard) = shared.admit(peer.ip()) else {
            refuse(
                &shared,
                &refusing,
                tcp,
                "too many unauthenticated connections from this address",
            );
            continue;
        };
        let Some(sessions) = DynamicSupervisorRef::<SessionArgs>::whereis(&shared.node, SESSIONS)
        else {
            drop(guard);
            refuse(&shared, &refusing, tcp, "server is starting");
            continue;
        };
        let slot = Arc::new(Mutex::new(Some((tcp, peer, guard))));
        match sessions
            .start_child(SessionArgs {
                slot: Arc::clone(&slot),
            })
            .await
        {
            Ok(_) => {}
            Err(err) => {
                let taken = slot.lock().take();
                if let Some((tcp, peer, guard)) = taken {
                    drop(guard);
                    tracing::debug!(peer = %peer, error = %err, "session not started");
                    let why = match err {
                        StartChildError::MaxChildren => "server is full",
                        _ => "server is shutting down",
                    };
                    refuse(&shared, &refusing, tcp, why);
                }
            }
        }
    }
}

/// Completes TLS on a connection over a limit and tells it why it closes.
fn refuse(shared: &Arc<Shared>, refusing: &Arc<Semaphore>, tcp: TcpStream, why: &'static str) {
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        return;
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let _permit = permit;
        let timeout = Duration::from_secs(2).min(shared.limits.handshake_timeout);
        let Ok(mut tls) = shared.tls.accept(tcp, timeout).await else {
            return;
        };
        let code = if shared.is_shutting_down() {
            ErrorCode::ShuttingDown
        } else {
            ErrorCode::RateLimited
        };
        let mut buf = bytes::BytesMut::new();
        let codec = ServerCodec::new(shared.limits.max_frame_bytes);
        let frame = ServerFrame::Error(ErrorFrame::new(code, why, None));
        if codec.encode_frame(&frame, &mut buf).is_ok() {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(timeout, async {
                tls.write_all(&buf).await?;
                tls.shutdown().await
            })
            .await;
        }
    });
}

/// Connections the kernel may hold for `accept` (capped by the system's
/// `net.core.somaxconn`). A reconnect storm brings thousands of connections
/// at once; a short queue drops their SYNs and the clients wait out TCP's
/// retransmission backoff (1, 3, 7, 15 s) before they are even seen.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind at once
    // while connections of the old one linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
