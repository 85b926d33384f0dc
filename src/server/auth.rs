//! Authentication: verify a `ClientHello` against the connection's
//! challenge and TLS exporter, then bind or check the device's identity.
//!
//! Checks, in order: the identity's agreement-key binding signature; the
//! hello signature over `auth_transcript(challenge, exporter)` (so it
//! cannot be replayed on another connection); then the registration: a
//! registered device must present the identity it registered with, a new
//! one must be allowed by the [`Authenticator`](super::Authenticator). All
//! failures are `AuthFailed`; nothing is bound before the signature
//! verified.
//!
//! The hello signature is accepted in the form of section 7 of the protocol
//! document (`Sign(IKs, "courier/v1/sign\0" || transcript)`) and, as
//! section 5.2 words it, as a pure Ed25519 signature over the transcript.
//! Both are safe: every other signature a device makes starts with a
//! `courier/v1/` context, and the transcript starts with `courier-auth-v1`.

use ed25519_dalek::{Signature, VerifyingKey};

use super::hooks::Registration;
use super::shared::Shared;
use crate::crypto;
use crate::protocol::{ClientHello, DeviceId, DeviceIdentity, auth_transcript};
use crate::store::{Identity, Store, StoreError};

/// Why authentication failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// The identity's binding signature does not verify.
    #[error("identity binding signature does not verify")]
    BadIdentity,
    /// The hello signature does not verify for this connection.
    #[error("hello signature does not verify for this connection")]
    BadSignature,
    /// The device is registered with another identity, or the user name
    /// belongs to another identity.
    #[error("identity does not match the registered one")]
    IdentityMismatch,
    /// The user has the most devices allowed.
    #[error("too many devices for this user")]
    TooManyDevices,
    /// The store could not answer.
    #[error("store unavailable: {0}")]
    Store(StoreError),
}

/// Verifies `hello` on the connection with `challenge` and `exporter` and
/// registers the device if it is new.
pub(crate) async fn authenticate(
    shared: &Shared,
    challenge: &[u8; 32],
    exporter: &[u8; 32],
    hello: &ClientHello,
) -> Result<(), AuthError> {
    let identity = &hello.identity;
    to_crypto(identity)
        .verify()
        .map_err(|_| AuthError::BadIdentity)?;
    let transcript = auth_transcript(challenge, exporter);
    verify_hello(identity, &transcript, &hello.signature)?;
    register(shared, &hello.device, identity).await
}

/// Checks the device's registration, registering it when allowed.
async fn register(
    shared: &Shared,
    device: &DeviceId,
    identity: &DeviceIdentity,
) -> Result<(), AuthError> {
    let store = &shared.store;
    let device_key = device_binding_key(device);
    let presented = to_store(identity);
    match store
        .identity(&device_key)
        .await
        .map_err(AuthError::Store)?
    {
        Some(bound) if bound == presented => return Ok(()),
        Some(_) => return Err(AuthError::IdentityMismatch),
        None => {}
    }
    let owner = store
        .identity(device.user.as_str())
        .await
        .map_err(AuthError::Store)?
        .map(|id| from_store(&id));
    let allowed = shared.authenticator.may_register(&Registration {
        device,
        identity,
        name_owner: owner.as_ref(),
    });
    if !allowed {
        return Err(AuthError::IdentityMismatch);
    }
    let devices = shared
        .directory
        .devices(device.user.as_str())
        .await
        .map_err(AuthError::Store)?;
    if !devices.contains(&device.device)
        && devices.len() >= shared.limits.max_devices_per_user as usize
    {
        return Err(AuthError::TooManyDevices);
    }
    if owner.is_none() {
        bind(store, device.user.as_str(), presented.clone()).await?;
    }
    bind(store, &device_key, presented).await?;
    shared
        .directory
        .add_device(device)
        .await
        .map_err(AuthError::Store)?;
    tracing::info!(device = %device, "device registered");
    Ok(())
}

async fn bind(store: &impl Store, key: &str, identity: Identity) -> Result<(), AuthError> {
    match store.bind_identity(key, identity).await {
        Ok(()) => Ok(()),
        Err(StoreError::IdentityConflict) => Err(AuthError::IdentityMismatch),
        Err(e) => Err(AuthError::Store(e)),
    }
}

fn verify_hello(
    identity: &DeviceIdentity,
    transcript: &[u8],
    signature: &[u8; 64],
) -> Result<(), AuthError> {
    if to_crypto(identity)
        .verify_signature(transcript, signature)
        .is_ok()
    {
        return Ok(());
    }
    let key =
        VerifyingKey::from_bytes(&identity.signing_key).map_err(|_| AuthError::BadIdentity)?;
    key.verify_strict(transcript, &Signature::from_bytes(signature))
        .map_err(|_| AuthError::BadSignature)
}

/// The key under which a device's own identity is bound in the store
/// (`user/device`; a user name cannot contain `/`).
pub(crate) fn device_binding_key(device: &DeviceId) -> String {
    format!("{}/{}", device.user, device.device)
}

/// The identity in the crypto module's type, to verify its binding.
fn to_crypto(identity: &DeviceIdentity) -> crypto::DeviceIdentity {
    crypto::DeviceIdentity {
        signing_key: identity.signing_key,
        agreement_key: identity.agreement_key,
        agreement_signature: identity.agreement_signature,
    }
}

/// The identity as the store keeps it.
pub(crate) fn to_store(identity: &DeviceIdentity) -> Identity {
    Identity {
        signing_key: identity.signing_key,
        dh_key: identity.agreement_key,
        signature: identity.agreement_signature.to_vec(),
    }
}

/// The identity as the wire carries it.
pub(crate) fn from_store(identity: &Identity) -> DeviceIdentity {
    let mut signature = [0u8; 64];
    if identity.signature.len() == 64 {
        signature.copy_from_slice(&identity.signature);
    }
    DeviceIdentity {
        signing_key: identity.signing_key,
        agreement_key: identity.dh_key,
        agreement_signature: signature,
    }
}
