//! The notifier: hands "frames are waiting" notices for offline devices to
//! the [`PushGateway`](super::PushGateway), retrying with backoff when the
//! gateway is unavailable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use supervisors::{Ctx, Envelope, ExitReason};
use tokio::time::Instant;

use super::hooks::PushError;
use super::metrics as m;
use super::shared::{NOTIFIER, Shared};
use crate::protocol::{DeviceId, UserName};
use crate::store::DeviceKey;

/// Attempts per notice before it is dropped.
const MAX_ATTEMPTS: u32 = 6;
/// Notices waiting for a retry, at most (the oldest are dropped).
const MAX_QUEUED: usize = 10_000;

/// What the notifier receives.
#[derive(Debug)]
pub(crate) enum NotifierMsg {
    /// `key` is offline with `pending` frames waiting.
    Push { key: DeviceKey, pending: u64 },
}

/// Queues a notice without waiting (dropped when the notifier is busy).
pub(crate) fn send(shared: &Shared, msg: NotifierMsg) {
    if let Some(addr) = shared.node.whereis::<NotifierMsg>(NOTIFIER) {
        let _ = addr.try_send(msg);
    }
}

struct Retry {
    device: DeviceId,
    pending: u64,
    attempts: u32,
    at: Instant,
}

/// The notifier process.
pub(crate) async fn run(mut ctx: Ctx<NotifierMsg>, shared: Arc<Shared>) -> ExitReason {
    let mut retries: VecDeque<Retry> = VecDeque::new();
    loop {
        let next = retries.front().map(|r| r.at);
        let env = tokio::select! {
            env = ctx.recv() => Some(env),
            () = sleep_until_opt(next) => None,
        };
        match env {
            Some(Envelope::Message(NotifierMsg::Push { key, pending })) => {
                let Ok(user) = UserName::new(key.user.as_str()) else {
                    continue;
                };
                let device = DeviceId::new(user, key.device);
                attempt(&shared, device, pending, 0, &mut retries);
            }
            Some(_) => {}
            None => {
                if let Some(r) = retries.pop_front() {
                    attempt(&shared, r.device, r.pending, r.attempts, &mut retries);
                }
            }
        }
    }
}

fn attempt(
    shared: &Shared,
    device: DeviceId,
    pending: u64,
    attempts: u32,
    retries: &mut VecDeque<Retry>,
) {
    match shared.push.notify(&device, pending) {
        Ok(()) => metrics::counter!(m::PUSHES).increment(1),
        Err(PushError::Unavailable(why)) if attempts + 1 < MAX_ATTEMPTS => {
            tracing::debug!(device = %device, reason = %why, "push deferred");
            let delay = Duration::from_millis(500) * 2u32.pow(attempts);
            if retries.len() >= MAX_QUEUED {
                retries.pop_front();
            }
            retries.push_back(Retry {
                device,
                pending,
                attempts: attempts + 1,
                at: Instant::now() + delay,
            });
            retries.make_contiguous().sort_by_key(|r| r.at);
        }
        Err(err) => tracing::info!(device = %device, error = %err, "push dropped"),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
