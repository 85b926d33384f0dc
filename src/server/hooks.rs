//! Hooks an embedding application plugs into the server: who may register,
//! extra rate limiting, and push notifications for offline devices.

use crate::protocol::{DeviceId, DeviceIdentity};

/// A device asking to register for the first time.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Registration<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// The identity it proved it holds (its signature verified).
    pub identity: &'a DeviceIdentity,
    /// The identity the user name is bound to, if it is bound.
    pub name_owner: Option<&'a DeviceIdentity>,
}

/// Decides whether a device that is not registered yet may register.
///
/// Called only after the device proved possession of `identity` (its
/// `ClientHello` signature verified with channel binding). A device that is
/// registered already must present the same identity; that rule is the
/// server's and no authenticator can lift it.
pub trait Authenticator: Send + Sync + 'static {
    /// Whether `registration` may go ahead.
    fn may_register(&self, registration: &Registration<'_>) -> bool;
}

/// The default policy: the first device to claim a user name binds the name
/// to its identity; later devices of that user must present the same
/// identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstClaimAuthenticator;

impl Authenticator for FirstClaimAuthenticator {
    fn may_register(&self, registration: &Registration<'_>) -> bool {
        registration
            .name_owner
            .is_none_or(|owner| owner == registration.identity)
    }
}

/// An extra rate limit consulted for every send (after the per-connection
/// token bucket). Returning `false` answers the send with `RateLimited`.
pub trait RateLimiter: Send + Sync + 'static {
    /// Whether `device` may send one more message now.
    fn allow(&self, device: &DeviceId) -> bool;
}

/// Why a push notification could not be handed to the gateway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Worth trying again later.
    #[error("push gateway unavailable: {0}")]
    Unavailable(String),
    /// Will never succeed for this device.
    #[error("push rejected: {0}")]
    Rejected(String),
}

/// Tells a push service that an offline device has new frames. It learns
/// only the device and how many frames wait, never their content.
pub trait PushGateway: Send + Sync + 'static {
    /// Notifies `device` that `pending` frames wait for it.
    ///
    /// # Errors
    ///
    /// [`PushError::Unavailable`] to be retried with backoff,
    /// [`PushError::Rejected`] to give up.
    fn notify(&self, device: &DeviceId, pending: u64) -> Result<(), PushError>;
}

/// A gateway that does nothing (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPushGateway;

impl PushGateway for NoPushGateway {
    fn notify(&self, _device: &DeviceId, _pending: u64) -> Result<(), PushError> {
        Ok(())
    }
}
