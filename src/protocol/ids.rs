//! Addressing types: user names, device ids and the 16-byte ids that clients
//! make for messages, groups and media (`docs/protocol.md`, section 3.2).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest user name, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 32;

/// A validated user name: 1 to 32 bytes of `a-z`, `0-9`, `_`, `-` and `.`,
/// starting with a letter or a digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a string is not a valid [`UserName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("user name is empty")]
    Empty,
    /// The name is longer than [`MAX_USER_NAME_BYTES`].
    #[error("user name of {len} bytes exceeds {max} bytes")]
    TooLong {
        /// Length of the rejected name in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character outside the allowed set, or starts with
    /// a punctuation character.
    #[error("user name has invalid character {ch:?} at byte {at}")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

impl UserName {
    /// Validates `name` and wraps it.
    ///
    /// # Errors
    ///
    /// [`NameError`] when the name is empty, too long or has a character
    /// outside `a-z 0-9 _ - .` (or starts with `_`, `-` or `.`).
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        validate_user_name(&name)?;
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for UserName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for UserName {
    type Error = NameError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl Serialize for UserName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(UserNameVisitor)
    }
}

/// A device of a user: the user name and a device number the user's
/// clients choose (`0` is conventionally the first device).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId {
    /// The owner.
    pub user: UserName,
    /// The device number, unique per user.
    pub device: u32,
}

impl DeviceId {
    /// Builds a device id.
    pub fn new(user: UserName, device: u32) -> Self {
        Self { user, device }
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// Wraps 16 bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The 16 bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl From<[u8; 16]> for $name {
            fn from(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "("))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                super::bin::serialize(&self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                super::bin::deserialize(deserializer).map(Self)
            }
        }
    };
}

byte_id! {
    /// A message id, made by the sending client (16 random bytes). The server
    /// and the receiver drop a second frame with the same id from the same
    /// device. Requests that are not messages (group changes, bundle and
    /// group queries) carry one too, so that an error can name them.
    MessageId
}

byte_id! {
    /// A group id, made by the client that creates the group (16 random bytes).
    GroupId
}

byte_id! {
    /// A media blob id, made by the uploading client (16 random bytes).
    MediaId
}

impl From<MediaId> for MessageId {
    /// An error about a media transfer names it by the media id's bytes.
    fn from(media: MediaId) -> Self {
        Self(media.0)
    }
}

fn validate_user_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_USER_NAME_BYTES {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_USER_NAME_BYTES,
        });
    }
    for (at, ch) in name.char_indices() {
        let allowed = match ch {
            'a'..='z' | '0'..='9' => true,
            '_' | '-' | '.' => at > 0,
            _ => false,
        };
        if !allowed {
            return Err(NameError::InvalidChar { ch, at });
        }
    }
    Ok(())
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

struct UserNameVisitor;

impl Visitor<'_> for UserNameVisitor {
    type Value = UserName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user name string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<UserName, E> {
        UserName::new(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_and_inner_punctuation() {
        for name in [
            "alice",
            "bob.smith",
            "x",
            "a_b-c.d",
            "0day",
            &"a".repeat(32),
        ] {
            assert!(UserName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_names_with_typed_errors() {
        assert_eq!(UserName::new(""), Err(NameError::Empty));
        assert_eq!(
            UserName::new("a".repeat(33)),
            Err(NameError::TooLong { len: 33, max: 32 })
        );
        assert_eq!(
            UserName::new("Alice"),
            Err(NameError::InvalidChar { ch: 'A', at: 0 })
        );
        assert_eq!(
            UserName::new(".alice"),
            Err(NameError::InvalidChar { ch: '.', at: 0 })
        );
        assert_eq!(
            UserName::new("al ice"),
            Err(NameError::InvalidChar { ch: ' ', at: 2 })
        );
        assert_eq!(
            UserName::new("zoë"),
            Err(NameError::InvalidChar { ch: 'ë', at: 2 })
        );
    }

    #[test]
    fn ids_print_as_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(format!("{id:?}"), format!("MessageId({})", "ab".repeat(16)));
    }
}
