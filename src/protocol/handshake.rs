//! The first frames of a connection: `ServerHello`, `ClientHello` and
//! `Welcome`, the server's limits, and the authentication transcript
//! (`docs/protocol.md`, sections 1, 4.2 and 5.2).

use serde::{Deserialize, Serialize};

use super::ids::DeviceId;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The ALPN protocol id of a Courier TLS connection.
pub const ALPN: &[u8] = b"courier/1";

/// The domain string that starts the authentication transcript.
pub const AUTH_DOMAIN: &[u8] = b"courier-auth-v1";

/// The TLS exporter label for channel binding (RFC 5705 / RFC 8446 7.5),
/// used with no context.
pub const AUTH_EXPORTER_LABEL: &[u8] = b"EXPORTER-courier-auth-v1";

/// Length of the TLS exporter value, in bytes.
pub const AUTH_EXPORTER_BYTES: usize = 32;

/// Length of the server's challenge, in bytes.
pub const CHALLENGE_BYTES: usize = 32;

/// Length of the authentication transcript: domain, challenge, exporter.
pub const AUTH_TRANSCRIPT_BYTES: usize = AUTH_DOMAIN.len() + CHALLENGE_BYTES + AUTH_EXPORTER_BYTES;

/// The bytes a client signs with its Ed25519 identity key to authenticate:
/// `courier-auth-v1 || challenge || exporter`.
///
/// `exporter` is the 32-byte TLS exporter value for
/// [`AUTH_EXPORTER_LABEL`] with no context, so a signature made on one TLS
/// connection does not verify on another.
pub fn auth_transcript(
    challenge: &[u8; CHALLENGE_BYTES],
    exporter: &[u8; AUTH_EXPORTER_BYTES],
) -> [u8; AUTH_TRANSCRIPT_BYTES] {
    let mut transcript = [0u8; AUTH_TRANSCRIPT_BYTES];
    let (domain, rest) = transcript.split_at_mut(AUTH_DOMAIN.len());
    let (chal, exp) = rest.split_at_mut(CHALLENGE_BYTES);
    domain.copy_from_slice(AUTH_DOMAIN);
    chal.copy_from_slice(challenge);
    exp.copy_from_slice(exporter);
    transcript
}

/// The server's first frame: its version, a fresh random challenge and the
/// limits it enforces on this connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The protocol version the server speaks.
    pub version: u16,
    /// 32 random bytes, fresh for every connection.
    #[serde(with = "super::bin")]
    pub challenge: [u8; CHALLENGE_BYTES],
    /// What the server enforces.
    pub limits: Limits,
}

/// The limits a server enforces, announced in [`ServerHello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame payload (after the length prefix), in bytes.
    pub max_frame_bytes: u32,
    /// Sends a connection may make per second before `RateLimited`.
    pub messages_per_second: u32,
    /// Most members a group may have.
    pub max_group_size: u32,
    /// Largest media blob, in bytes.
    pub max_media_bytes: u64,
    /// Largest `data` in one media chunk, in bytes.
    pub max_media_chunk_bytes: u32,
    /// Most one-time prekeys the server keeps per device.
    pub max_one_time_prekeys: u32,
    /// Most devices a user may have.
    pub max_devices_per_user: u32,
    /// Time the client has to send `ClientHello`, in milliseconds.
    pub handshake_timeout_ms: u32,
    /// Silence after which the server closes the connection, in
    /// milliseconds; a client pings more often than this.
    pub idle_timeout_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            messages_per_second: 50,
            max_group_size: 256,
            max_media_bytes: 100 * 1024 * 1024,
            max_media_chunk_bytes: 64 * 1024,
            max_one_time_prekeys: 100,
            max_devices_per_user: 8,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 90_000,
        }
    }
}

/// Defines `Limits::with_<field>` setters, one per field.
macro_rules! limit_setters {
    ($($setter:ident => $field:ident: $ty:ty),* $(,)?) => {
        impl Limits {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                #[must_use]
                pub fn $setter(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

limit_setters! {
    with_max_frame_bytes => max_frame_bytes: u32,
    with_messages_per_second => messages_per_second: u32,
    with_max_group_size => max_group_size: u32,
    with_max_media_bytes => max_media_bytes: u64,
    with_max_media_chunk_bytes => max_media_chunk_bytes: u32,
    with_max_one_time_prekeys => max_one_time_prekeys: u32,
    with_max_devices_per_user => max_devices_per_user: u32,
    with_handshake_timeout_ms => handshake_timeout_ms: u32,
    with_idle_timeout_ms => idle_timeout_ms: u32,
}

/// The default largest frame payload: 256 KiB.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 256 * 1024;

/// The client's answer to [`ServerHello`]: who it is and the proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// The protocol version the client speaks.
    pub version: u16,
    /// The device that connects.
    pub device: DeviceId,
    /// The device's public identity.
    pub identity: DeviceIdentity,
    /// Ed25519 signature by `identity.signing_key` over
    /// [`auth_transcript`]`(challenge, exporter)`.
    #[serde(with = "super::bin")]
    pub signature: [u8; 64],
}

/// The public identity of a device: an Ed25519 key that signs, an X25519
/// key for key agreement, and the Ed25519 signature over the X25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Ed25519 public key.
    #[serde(with = "super::bin")]
    pub signing_key: [u8; 32],
    /// X25519 public key.
    #[serde(with = "super::bin")]
    pub agreement_key: [u8; 32],
    /// Ed25519 signature by `signing_key` over `agreement_key` (the exact
    /// signed message is defined with the cryptography in section 7).
    #[serde(with = "super::bin")]
    pub agreement_signature: [u8; 64],
}

/// The server's answer to a verified [`ClientHello`]: the connection is
/// authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The authenticated device, as the server will name it.
    pub device: DeviceId,
    /// The server's clock, milliseconds since the Unix epoch.
    pub server_time_ms: u64,
    /// One-time prekeys the server still holds for this device.
    pub prekeys_remaining: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_is_domain_then_challenge_then_exporter() {
        let t = auth_transcript(&[1; 32], &[2; 32]);
        assert_eq!(t.len(), 79);
        assert_eq!(&t[..15], b"courier-auth-v1");
        assert_eq!(&t[15..47], &[1; 32]);
        assert_eq!(&t[47..], &[2; 32]);
    }
}
