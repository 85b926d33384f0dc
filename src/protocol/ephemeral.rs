//! Ephemeral frames: presence, typing and keep-alive. The server never
//! stores them; a frame for an offline device is dropped
//! (`docs/protocol.md`, section 4.7).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::ids::{DeviceId, GroupId, UserName};

/// Either side: are you there? The peer answers with [`Pong`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in the `Pong`.
    pub nonce: u64,
}

/// Either side: the answer to [`Ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u64,
}

/// Client: follow the presence of these users (replaces the previous set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribePresence {
    /// The users to follow; empty to stop.
    pub users: Vec<UserName>,
}

/// Client: set this device's presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePresence {
    /// The new state.
    pub state: PresenceState,
}

/// Server: a followed user's presence changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The user.
    pub user: UserName,
    /// The most present state over the user's devices.
    pub state: PresenceState,
    /// When the user was last online, if known and not online now.
    pub last_seen_ms: Option<u64>,
}

/// Presence of a user, as a small integer on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PresenceState {
    /// 0: no device connected.
    Offline,
    /// 1: connected and in use.
    Online,
    /// 2: connected, idle.
    Away,
}

/// Client: the user is (or stopped) typing in a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// Where.
    pub to: Conversation,
    /// Typing started (`true`) or stopped.
    pub active: bool,
}

/// Server: someone is typing to this device's user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingNotice {
    /// Who types.
    pub from: DeviceId,
    /// The group, if the typing is in a group.
    pub group: Option<GroupId>,
    /// Typing started or stopped.
    pub active: bool,
}

/// A conversation: with one user, or in a group. On the wire `[0, user]`
/// or `[1, group]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Conversation {
    /// With a user (all their devices).
    Direct(UserName),
    /// In a group.
    Group(GroupId),
}

impl PresenceState {
    /// The state's number on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Offline => 0,
            Self::Online => 1,
            Self::Away => 2,
        }
    }

    /// The state for a wire number, if known.
    pub const fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::Offline),
            1 => Some(Self::Online),
            2 => Some(Self::Away),
            _ => None,
        }
    }
}

impl Serialize for PresenceState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for PresenceState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(deserializer)?;
        Self::from_u8(n).ok_or_else(|| {
            de::Error::invalid_value(de::Unexpected::Unsigned(n.into()), &"a presence state 0-2")
        })
    }
}

impl Serialize for Conversation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        match self {
            Self::Direct(user) => {
                tuple.serialize_element(&0u8)?;
                tuple.serialize_element(user)?;
            }
            Self::Group(group) => {
                tuple.serialize_element(&1u8)?;
                tuple.serialize_element(group)?;
            }
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(2, ConversationVisitor)
    }
}

struct ConversationVisitor;

impl<'de> Visitor<'de> for ConversationVisitor {
    type Value = Conversation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a conversation [kind, target]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conversation, A::Error> {
        let kind: u8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let missing = || de::Error::invalid_length(1, &ConversationVisitor);
        match kind {
            0 => Ok(Conversation::Direct(
                seq.next_element()?.ok_or_else(missing)?,
            )),
            1 => Ok(Conversation::Group(
                seq.next_element()?.ok_or_else(missing)?,
            )),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Unsigned(other.into()),
                &"conversation kind 0 or 1",
            )),
        }
    }
}
