//! Offline mailboxes: the depth of every device's parked frames (for the
//! quota) and one process per offline device that has parked frames.
//!
//! The frames themselves live in the store; a mailbox process watches over
//! one offline device: it is started under the `mailboxes` dynamic
//! supervisor when a frame is parked for a device that is not online,
//! records the mailbox depth, asks the notifier to push once per offline
//! period, and stops when the device comes online (its session drains the
//! frames in order) or when it has been idle with nothing parked.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use supervisors::{
    ChildCtx, Ctx, DynamicSupervisorRef, Envelope, ExitReason, SpawnError, SpawnOptions, Start,
};

use super::metrics as m;
use super::notifier::{self, NotifierMsg};
use super::shared::{MAILBOXES, Shared};
use crate::store::{AnyStore, DeviceKey, Store, StoreError};

/// How long a mailbox process waits without news before checking whether
/// it is still needed.
const IDLE: Duration = Duration::from_secs(60);

/// Parked-frame counts per device, loaded lazily from the store.
pub(crate) struct Depths {
    store: AnyStore,
    map: DashMap<DeviceKey, u64>,
}

impl Depths {
    pub(crate) fn new(store: AnyStore) -> Self {
        Self {
            store,
            map: DashMap::new(),
        }
    }

    /// Whether `key` may take one more frame under `quota`.
    pub(crate) async fn has_room(&self, key: &DeviceKey, quota: u64) -> Result<bool, StoreError> {
        if let Some(depth) = self.map.get(key) {
            return Ok(*depth < quota);
        }
        let count = self.store.pending_count(key).await?;
        let depth = *self.map.entry(key.clone()).or_insert(count);
        Ok(depth < quota)
    }

    /// The known depth of `key` (0 when not loaded).
    pub(crate) fn depth(&self, key: &DeviceKey) -> u64 {
        self.map.get(key).map_or(0, |d| *d)
    }

    /// `n` frames were parked for `key`.
    pub(crate) fn add(&self, key: &DeviceKey, n: u64) {
        if let Some(mut depth) = self.map.get_mut(key) {
            *depth += n;
        }
    }

    /// `n` frames of `key` were removed.
    pub(crate) fn sub(&self, key: &DeviceKey, n: u64) {
        if let Some(mut depth) = self.map.get_mut(key) {
            *depth = depth.saturating_sub(n);
        }
    }

    /// A frame was parked for `key`, which is offline: wake its mailbox.
    pub(crate) fn parked_offline(&self, key: &DeviceKey, shared: &Arc<Shared>) {
        let name = mailbox_name(key);
        if let Some(addr) = shared.node.whereis::<MailboxMsg>(&name)
            && addr.try_send(MailboxMsg::Parked).is_ok()
        {
            return;
        }
        let shared = Arc::clone(shared);
        let key = key.clone();
        tokio::spawn(async move { start_mailbox(&shared, key).await });
    }

    /// `key` came online: its session drains; the mailbox process stops.
    pub(crate) fn came_online(&self, key: &DeviceKey, shared: &Shared) {
        if let Some(addr) = shared.node.whereis::<MailboxMsg>(&mailbox_name(key)) {
            let _ = addr.try_send(MailboxMsg::Online);
        }
    }

    /// `key` went offline; start its mailbox if frames wait, else forget
    /// its depth.
    pub(crate) fn went_offline(&self, key: &DeviceKey, shared: &Arc<Shared>) {
        if shared.router.is_online(key) {
            return;
        }
        if self.map.remove_if(key, |_, d| *d == 0).is_none() && self.depth(key) > 0 {
            self.parked_offline(key, shared);
        }
    }
}

/// What a mailbox process receives.
#[derive(Debug)]
pub(crate) enum MailboxMsg {
    /// A frame was parked.
    Parked,
    /// The device came online.
    Online,
}

/// The arguments of a mailbox process.
#[derive(Clone, Debug)]
pub(crate) struct MailboxArgs {
    pub(crate) key: DeviceKey,
}

/// The start function of the `mailboxes` dynamic supervisor.
pub(crate) async fn start_child(
    shared: Arc<Shared>,
    args: MailboxArgs,
    cctx: ChildCtx,
) -> Result<Start, ExitReason> {
    let opts = SpawnOptions::new()
        .name(mailbox_name(&args.key))
        .capacity(64);
    match cctx.spawn_with(opts, move |ctx| run(ctx, shared, args.key)) {
        Ok(addr) => Ok(Start::from(addr)),
        Err(SpawnError::NameTaken(_)) => Ok(Start::Ignore),
        Err(e) => Err(ExitReason::error(e)),
    }
}

async fn start_mailbox(shared: &Arc<Shared>, key: DeviceKey) {
    if shared.router.is_online(&key) {
        return;
    }
    let Some(sup) = DynamicSupervisorRef::<MailboxArgs>::whereis(&shared.node, MAILBOXES) else {
        return;
    };
    if sup
        .start_child(MailboxArgs { key: key.clone() })
        .await
        .is_ok()
        && let Some(addr) = shared.node.whereis::<MailboxMsg>(&mailbox_name(&key))
    {
        let _ = addr.try_send(MailboxMsg::Parked);
    }
}

async fn run(mut ctx: Ctx<MailboxMsg>, shared: Arc<Shared>, key: DeviceKey) -> ExitReason {
    metrics::gauge!(m::MAILBOXES).increment(1.0);
    let _gauge = GaugeGuard;
    let mut notified = false;
    loop {
        let msg = tokio::select! {
            env = ctx.recv() => env,
            () = tokio::time::sleep(IDLE) => {
                if shared.router.is_online(&key) || shared.depths.depth(&key) == 0 {
                    return ExitReason::Normal;
                }
                continue;
            }
        };
        match msg {
            Envelope::Message(MailboxMsg::Parked) => {
                let depth = shared.depths.depth(&key);
                metrics::histogram!(m::MAILBOX_DEPTH).record(depth as f64);
                if shared.router.is_online(&key) {
                    return ExitReason::Normal;
                }
                if !notified {
                    notified = true;
                    notifier::send(
                        &shared,
                        NotifierMsg::Push {
                            key: key.clone(),
                            pending: depth,
                        },
                    );
                }
            }
            Envelope::Message(MailboxMsg::Online) => return ExitReason::Normal,
            _ => {}
        }
    }
}

struct GaugeGuard;

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(m::MAILBOXES).decrement(1.0);
    }
}

fn mailbox_name(key: &DeviceKey) -> String {
    format!("courier.mailbox.{key}")
}
