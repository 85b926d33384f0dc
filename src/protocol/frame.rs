//! The two frame enums, one per direction, and their wire shape
//! `[kind, [fields...]]` (`docs/protocol.md`, sections 3.3 and 4).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::ephemeral::{
    Ping, Pong, Presence, SubscribePresence, Typing, TypingNotice, UpdatePresence,
};
use super::error::ErrorFrame;
use super::groups::{
    AddMembers, CreateGroup, GroupChanged, GroupInfo, LeaveGroup, QueryGroup, RemoveMembers,
};
use super::handshake::{ClientHello, ServerHello, Welcome};
use super::ids::MessageId;
use super::media::{
    MediaChunk, MediaDownload, MediaStored, MediaUploadBegin, MediaUploadChunk, MediaUploadFinish,
};
use super::messages::{
    Accepted, Deliver, Delivered, DeliveryAck, SendDirect, SendToGroup, SendToUser,
};
use super::prekeys::{Bundle, PrekeysLow, RequestBundle, UploadPrekeys};

/// Defines a frame enum with one newtype variant per frame kind, its kind
/// numbers, and serde impls writing `[kind, payload]`.
macro_rules! frames {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = $kind:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant($payload), )*
        }

        impl $name {
            /// Every kind number with its frame name, in kind order.
            pub const KINDS: &'static [(u8, &'static str)] = &[
                $( ($kind, stringify!($variant)), )*
            ];

            /// The kind number written first on the wire.
            pub const fn kind(&self) -> u8 {
                match self {
                    $( Self::$variant(_) => $kind, )*
                }
            }

            /// The frame's name, for logs.
            pub const fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => stringify!($variant), )*
                }
            }
        }

        $(
            impl From<$payload> for $name {
                fn from(payload: $payload) -> Self {
                    Self::$variant(payload)
                }
            }
        )*

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut tuple = serializer.serialize_tuple(2)?;
                tuple.serialize_element(&self.kind())?;
                match self {
                    $( Self::$variant(payload) => tuple.serialize_element(payload)?, )*
                }
                tuple.end()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct FrameVisitor;

                impl<'de> Visitor<'de> for FrameVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " [kind, payload]"))
                    }

                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$name, A::Error> {
                        let kind: u8 = seq
                            .next_element()?
                            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                        let frame = match kind {
                            $(
                                $kind => $name::$variant(
                                    seq.next_element()?
                                        .ok_or_else(|| de::Error::invalid_length(1, &self))?,
                                ),
                            )*
                            other => {
                                return Err(de::Error::custom(format_args!(
                                    "unknown frame kind {other}"
                                )));
                            }
                        };
                        Ok(frame)
                    }
                }

                deserializer.deserialize_tuple(2, FrameVisitor)
            }
        }
    };
}

frames! {
    /// A frame sent by a client to the server. Kinds 0x01 to 0x3f.
    pub enum ClientFrame {
        /// Authenticate, answering `ServerHello`.
        ClientHello(ClientHello) = 0x01,
        /// Keep-alive probe.
        Ping(Ping) = 0x02,
        /// Answer to the server's `Ping`.
        Pong(Pong) = 0x03,
        /// Send to one device.
        SendDirect(SendDirect) = 0x08,
        /// Send to every device of a user, one sealed copy each.
        SendToUser(SendToUser) = 0x09,
        /// Send to a group, one sealed body.
        SendToGroup(SendToGroup) = 0x0a,
        /// A delivered message is stored on this device.
        DeliveryAck(DeliveryAck) = 0x0b,
        /// Publish prekeys.
        UploadPrekeys(UploadPrekeys) = 0x10,
        /// Ask for a user's prekey bundles.
        RequestBundle(RequestBundle) = 0x11,
        /// Create a group.
        CreateGroup(CreateGroup) = 0x18,
        /// Add members to a group.
        AddMembers(AddMembers) = 0x19,
        /// Remove members from a group.
        RemoveMembers(RemoveMembers) = 0x1a,
        /// Leave a group.
        LeaveGroup(LeaveGroup) = 0x1b,
        /// Ask for a group's members.
        QueryGroup(QueryGroup) = 0x1c,
        /// Start a media upload.
        MediaUploadBegin(MediaUploadBegin) = 0x20,
        /// One upload chunk.
        MediaUploadChunk(MediaUploadChunk) = 0x21,
        /// Finish a media upload.
        MediaUploadFinish(MediaUploadFinish) = 0x22,
        /// Download a blob.
        MediaDownload(MediaDownload) = 0x23,
        /// Follow users' presence.
        SubscribePresence(SubscribePresence) = 0x28,
        /// Set this device's presence.
        UpdatePresence(UpdatePresence) = 0x29,
        /// Typing started or stopped.
        Typing(Typing) = 0x2a,
    }
}

frames! {
    /// A frame sent by the server to a client. Kinds 0x40 to 0x7f.
    pub enum ServerFrame {
        /// The first frame: version, challenge, limits.
        ServerHello(ServerHello) = 0x40,
        /// Authentication succeeded.
        Welcome(Welcome) = 0x41,
        /// A request or the connection failed.
        Error(ErrorFrame) = 0x42,
        /// Keep-alive probe.
        Ping(Ping) = 0x43,
        /// Answer to the client's `Ping`.
        Pong(Pong) = 0x44,
        /// A request is durable or done.
        Accepted(Accepted) = 0x48,
        /// A sealed message for this device.
        Deliver(Deliver) = 0x49,
        /// A recipient device stored a message this device sent.
        Delivered(Delivered) = 0x4a,
        /// A user's prekey bundles.
        Bundle(Bundle) = 0x50,
        /// One-time prekeys are running low.
        PrekeysLow(PrekeysLow) = 0x51,
        /// A group's members.
        GroupInfo(GroupInfo) = 0x58,
        /// A group changed.
        GroupChanged(GroupChanged) = 0x59,
        /// An upload is stored.
        MediaStored(MediaStored) = 0x60,
        /// One download chunk.
        MediaChunk(MediaChunk) = 0x61,
        /// A followed user's presence.
        Presence(Presence) = 0x68,
        /// Someone is typing.
        TypingNotice(TypingNotice) = 0x69,
    }
}

impl ClientFrame {
    /// The id an `Accepted` or `Error` answering this frame carries
    /// (`docs/protocol.md`, 4.1): the request id of a send, group change or
    /// query, the media id's bytes for a media frame, `None` otherwise.
    pub fn request_id(&self) -> Option<MessageId> {
        match self {
            Self::SendDirect(SendDirect { id, .. })
            | Self::SendToUser(SendToUser { id, .. })
            | Self::SendToGroup(SendToGroup { id, .. })
            | Self::UploadPrekeys(UploadPrekeys { id, .. })
            | Self::RequestBundle(RequestBundle { id, .. })
            | Self::CreateGroup(CreateGroup { id, .. })
            | Self::AddMembers(AddMembers { id, .. })
            | Self::RemoveMembers(RemoveMembers { id, .. })
            | Self::LeaveGroup(LeaveGroup { id, .. })
            | Self::QueryGroup(QueryGroup { id, .. }) => Some(*id),
            Self::MediaUploadBegin(MediaUploadBegin { media, .. })
            | Self::MediaUploadChunk(MediaUploadChunk { media, .. })
            | Self::MediaUploadFinish(MediaUploadFinish { media })
            | Self::MediaDownload(MediaDownload { media, .. }) => Some((*media).into()),
            Self::ClientHello(_)
            | Self::Ping(_)
            | Self::Pong(_)
            | Self::DeliveryAck(_)
            | Self::SubscribePresence(_)
            | Self::UpdatePresence(_)
            | Self::Typing(_) => None,
        }
    }
}
