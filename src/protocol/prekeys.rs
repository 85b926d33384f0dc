//! Prekeys: upload, bundle request and response, and the low-prekey
//! warning (`docs/protocol.md`, section 4.4).

use serde::{Deserialize, Serialize};

use super::handshake::DeviceIdentity;
use super::ids::{MessageId, UserName};

/// Client: publish a signed prekey and a batch of one-time prekeys. The
/// signed prekey replaces the previous one; one-time prekeys are added.
/// Answered with `Accepted` or `Error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPrekeys {
    /// Client-made request id.
    pub id: MessageId,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// New one-time prekeys.
    pub one_time: Vec<OneTimePrekey>,
}

/// An X25519 prekey signed by the device's Ed25519 identity key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedPrekey {
    /// Client-chosen id, named again in the first message that uses it.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "super::bin")]
    pub key: [u8; 32],
    /// Ed25519 signature over the key (message defined in section 7).
    #[serde(with = "super::bin")]
    pub signature: [u8; 64],
}

/// An X25519 one-time prekey; the server hands each out once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OneTimePrekey {
    /// Client-chosen id.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "super::bin")]
    pub key: [u8; 32],
}

/// Client: ask for the prekey bundles of every device of a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBundle {
    /// Client-made request id, echoed by an `Error`.
    pub id: MessageId,
    /// Whose devices.
    pub user: UserName,
}

/// Server: the bundles of a user's devices. Each one-time prekey in it has
/// been removed from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The user.
    pub user: UserName,
    /// One bundle per device.
    pub devices: Vec<DeviceBundle>,
}

/// What a sender needs to start a session with one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBundle {
    /// The device number.
    pub device: u32,
    /// The device's identity.
    pub identity: DeviceIdentity,
    /// Its current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// A one-time prekey, if any is left.
    pub one_time_prekey: Option<OneTimePrekey>,
}

/// Server: this device's one-time prekeys are running low; upload more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeysLow {
    /// One-time prekeys left on the server.
    pub remaining: u32,
}
