//! What travels inside a sealed message: a small typed record.
//!
//! Encoding (MessagePack, like the frames of `docs/protocol.md`): an array
//! `[kind, fields]` where `fields` is an array in the order listed:
//!
//! | kind | content | fields |
//! | --- | --- | --- |
//! | 1 | [`Content::Text`] | text `str` |
//! | 2 | [`Content::ReadReceipt`] | ids `[bin16]` |
//! | 3 | [`Content::Media`] | media `bin16`, key `bin32`, digest `bin32`, size `u64`, name `str` |
//! | 4 | [`Content::Sent`] | to `str`, id `bin16`, content (a kind 1 to 3 record) |
//! | 5 | [`Content::SenderKey`] | group `bin16`, distribution `bin` (74 bytes, `docs/protocol.md` section 7.6) |

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::protocol::{GroupId, MediaId, MessageId, UserName};

use super::ClientError;

const TEXT: u8 = 1;
const READ_RECEIPT: u8 = 2;
const MEDIA: u8 = 3;
const SENT: u8 = 4;
const SENDER_KEY: u8 = 5;

/// The plaintext of one sealed message.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    /// A text message.
    Text(String),
    /// The recipient has read these messages (sent back to their sender).
    ReadReceipt {
        /// The ids of the messages read.
        ids: Vec<MessageId>,
    },
    /// A sealed blob uploaded to the server's media store.
    Media(MediaRef),
    /// A copy for the sender's own other devices of a message it sent.
    Sent {
        /// The recipient of the original message.
        to: UserName,
        /// The id of the original message.
        id: MessageId,
        /// The original content (never itself a `Sent`).
        content: Box<Content>,
    },
    /// A member's sender key for a group (handled by the client; the
    /// application never sees it in an event).
    SenderKey {
        /// The group.
        group: GroupId,
        /// The encoded sender-key distribution.
        distribution: Vec<u8>,
    },
}

/// Where a media blob is and how to open it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaRef {
    /// The blob's id on the server.
    pub media: MediaId,
    /// The media key (secret).
    pub key: Zeroizing<[u8; 32]>,
    /// SHA-256 of the sealed blob.
    pub digest: [u8; 32],
    /// Size of the plaintext in bytes.
    pub size: u64,
    /// A file name or description chosen by the sender.
    pub name: String,
}

impl MediaRef {
    /// A reference to an uploaded blob.
    pub fn new(media: MediaId, key: [u8; 32], digest: [u8; 32], size: u64, name: String) -> Self {
        Self {
            media,
            key: Zeroizing::new(key),
            digest,
            size,
            name,
        }
    }
}

impl Content {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// The encoded record.
    ///
    /// # Errors
    /// [`ClientError::Content`] when MessagePack encoding fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ClientError> {
        rmp_serde::to_vec(self).map_err(|err| ClientError::Content {
            reason: err.to_string(),
        })
    }

    /// Decodes a record made by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`ClientError::Content`] for anything that is not one record of a
    /// known kind, or a `Sent` nested in a `Sent`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClientError> {
        rmp_serde::from_slice(bytes).map_err(|err| ClientError::Content {
            reason: err.to_string(),
        })
    }

    /// A short description for lists and logs of the application (the text
    /// itself for text).
    pub fn preview(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::ReadReceipt { ids } => format!("[read {} message(s)]", ids.len()),
            Self::Media(media) => format!("[media {} ({} bytes)]", media.name, media.size),
            Self::Sent { content, .. } => content.preview(),
            Self::SenderKey { .. } => "[sender key]".to_owned(),
        }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Plaintext never reaches logs through Debug.
        match self {
            Self::Text(text) => write!(f, "Text(<{} bytes>)", text.len()),
            Self::ReadReceipt { ids } => f.debug_struct("ReadReceipt").field("ids", ids).finish(),
            Self::Media(media) => f.debug_tuple("Media").field(media).finish(),
            Self::Sent { to, id, content } => f
                .debug_struct("Sent")
                .field("to", to)
                .field("id", id)
                .field("content", content)
                .finish(),
            Self::SenderKey { group, .. } => f
                .debug_struct("SenderKey")
                .field("group", group)
                .finish_non_exhaustive(),
        }
    }
}

impl fmt::Debug for MediaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaRef")
            .field("media", &self.media)
            .field("key", &"<redacted>")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => (TEXT, (text,)).serialize(serializer),
            Self::ReadReceipt { ids } => (READ_RECEIPT, (ids,)).serialize(serializer),
            Self::Media(media) => (
                MEDIA,
                (
                    media.media,
                    Bin32(*media.key),
                    Bin32(media.digest),
                    media.size,
                    &media.name,
                ),
            )
                .serialize(serializer),
            Self::Sent { to, id, content } => (SENT, (to, id, content)).serialize(serializer),
            Self::SenderKey {
                group,
                distribution,
            } => (SENDER_KEY, (group, Bin(distribution))).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(2, ContentVisitor { nested: false })
    }
}

/// The content inside a `Sent` copy: any kind but `Sent`, so nesting is
/// one level deep at most.
struct Inner(Content);

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_tuple(2, ContentVisitor { nested: true })
            .map(Inner)
    }
}

struct ContentVisitor {
    nested: bool,
}

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = Content;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a content record [kind, fields]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
        let kind: u8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let missing = || de::Error::invalid_length(1, &"a content record [kind, fields]");
        let content = match kind {
            TEXT => {
                let (text,): (String,) = seq.next_element()?.ok_or_else(missing)?;
                Content::Text(text)
            }
            READ_RECEIPT => {
                let (ids,): (Vec<MessageId>,) = seq.next_element()?.ok_or_else(missing)?;
                Content::ReadReceipt { ids }
            }
            MEDIA => {
                let (media, key, digest, size, name): (MediaId, Bin32, Bin32, u64, String) =
                    seq.next_element()?.ok_or_else(missing)?;
                Content::Media(MediaRef::new(media, key.0, digest.0, size, name))
            }
            SENT if self.nested => return Err(de::Error::custom("nested sent copy")),
            SENT => {
                let (to, id, Inner(content)): (UserName, MessageId, Inner) =
                    seq.next_element()?.ok_or_else(missing)?;
                Content::Sent {
                    to,
                    id,
                    content: Box::new(content),
                }
            }
            SENDER_KEY => {
                let (group, distribution): (GroupId, ByteVec) =
                    seq.next_element()?.ok_or_else(missing)?;
                Content::SenderKey {
                    group,
                    distribution: distribution.0,
                }
            }
            other => {
                return Err(de::Error::custom(format_args!(
                    "unknown content kind {other}"
                )));
            }
        };
        Ok(content)
    }
}

/// Bytes as a MessagePack bin.
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A MessagePack bin of any length.
struct ByteVec(Vec<u8>);

impl<'de> Deserialize<'de> for ByteVec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = ByteVec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteVec, E> {
                Ok(ByteVec(v.to_vec()))
            }
        }

        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// 32 bytes as a MessagePack bin.
struct Bin32([u8; 32]);

impl Serialize for Bin32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bin32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinVisitor;

        impl Visitor<'_> for BinVisitor {
            type Value = Bin32;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bin32, E> {
                <[u8; 32]>::try_from(v)
                    .map(Bin32)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }

        deserializer.deserialize_bytes(BinVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(content: Content) {
        let bytes = content.to_bytes().unwrap();
        assert_eq!(Content::from_bytes(&bytes).unwrap(), content);
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Content::text("hello"));
        round_trip(Content::ReadReceipt {
            ids: vec![MessageId([1; 16]), MessageId([2; 16])],
        });
        round_trip(Content::Media(MediaRef::new(
            MediaId([3; 16]),
            [4; 32],
            [5; 32],
            77,
            "cat.jpg".to_owned(),
        )));
        round_trip(Content::Sent {
            to: UserName::new("bob").unwrap(),
            id: MessageId([6; 16]),
            content: Box::new(Content::text("hi bob")),
        });
        round_trip(Content::SenderKey {
            group: GroupId([8; 16]),
            distribution: vec![1; 74],
        });
    }

    #[test]
    fn text_encodes_as_kind_then_fields() {
        let bytes = Content::text("hi").to_bytes().unwrap();
        assert_eq!(bytes, [0x92, 0x01, 0x91, 0xa2, b'h', b'i']);
    }

    #[test]
    fn rejects_unknown_kinds_garbage_and_nested_copies() {
        assert!(Content::from_bytes(&[0x92, 0x09, 0x90]).is_err());
        assert!(Content::from_bytes(b"\xff\x00").is_err());
        let nested = Content::Sent {
            to: UserName::new("bob").unwrap(),
            id: MessageId([6; 16]),
            content: Box::new(Content::Sent {
                to: UserName::new("bob").unwrap(),
                id: MessageId([7; 16]),
                content: Box::new(Content::text("x")),
            }),
        };
        let bytes = nested.to_bytes().unwrap();
        assert!(matches!(
            Content::from_bytes(&bytes),
            Err(ClientError::Content { .. })
        ));
    }

    #[test]
    fn debug_hides_the_text() {
        assert_eq!(format!("{:?}", Content::text("secret")), "Text(<6 bytes>)");
    }

    proptest::proptest! {
        #[test]
        fn text_round_trips_and_garbage_never_panics(
            text in ".{0,64}",
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..96),
        ) {
            let content = Content::text(text);
            let bytes = content.to_bytes().unwrap();
            proptest::prop_assert_eq!(Content::from_bytes(&bytes).unwrap(), content);
            let _ = Content::from_bytes(&garbage);
        }
    }
}
