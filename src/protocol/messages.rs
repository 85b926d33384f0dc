//! Sealed messages: the three kinds of send, the server's acceptance,
//! delivery, the receiver's ack and the sender's receipt
//! (`docs/protocol.md`, sections 4.3 and 5.3).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ids::{DeviceId, GroupId, MessageId, UserName};

/// Client: one sealed body for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendDirect {
    /// Client-made id; sending the same id twice is harmless.
    pub id: MessageId,
    /// The recipient device.
    pub to: DeviceId,
    /// The sealed body, opaque to the server.
    #[serde(with = "super::bin::var")]
    pub body: Bytes,
}

/// Client: a message to every device of a user, sealed once per device
/// (pairwise sessions give each device its own ciphertext).
///
/// The copies must name exactly the user's current devices; otherwise the
/// server answers `StaleDevices` and stores nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendToUser {
    /// Client-made id, shared by all copies.
    pub id: MessageId,
    /// The recipient user (may be the sender's own user, for its other
    /// devices).
    pub to: UserName,
    /// One sealed copy per device.
    pub copies: Vec<SealedCopy>,
}

/// One device's copy in a [`SendToUser`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCopy {
    /// The device number of the recipient user.
    pub device: u32,
    /// The body sealed for that device.
    #[serde(with = "super::bin::var")]
    pub body: Bytes,
}

/// Client: one sealed body (a sender-key message) for every member device
/// of a group; the server fans it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendToGroup {
    /// Client-made id.
    pub id: MessageId,
    /// The group; the sender must be a member.
    pub group: GroupId,
    /// The sealed body.
    #[serde(with = "super::bin::var")]
    pub body: Bytes,
}

/// Server: the request with this id is durable (or, for requests that are
/// not messages, done). The sender may forget the message now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The id of the accepted request.
    pub id: MessageId,
}

/// Server: a sealed message for this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    /// The sender's id.
    pub id: MessageId,
    /// The sending device, taken from its authenticated session.
    pub from: DeviceId,
    /// The group, for a group message.
    pub group: Option<GroupId>,
    /// The sealed body, as sent.
    #[serde(with = "super::bin::var")]
    pub body: Bytes,
    /// When the server accepted it, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

/// Client: the delivered message is stored on this device; the server may
/// delete it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    /// The sending device of the acknowledged message.
    pub from: DeviceId,
    /// The message id.
    pub id: MessageId,
}

/// Server: a message this device sent was stored by a recipient device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The message id.
    pub id: MessageId,
    /// The device that stored it.
    pub to: DeviceId,
}
