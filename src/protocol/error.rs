//! Error codes carried by the `Error` frame, and the one place where every
//! protocol error is mapped to its code (`docs/protocol.md`, section 6).

use std::fmt;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use super::codec::FrameError;
use super::ids::MessageId;
use super::state::OrderError;

/// The reason in an `Error` frame, as a stable 16-bit number.
///
/// The hundreds digit groups the codes: 1xx framing, 2xx authentication,
/// 3xx limits, 4xx addressing and permissions, 5xx server side. A code this
/// build does not know decodes as [`ErrorCode::Other`] so that a newer peer
/// never breaks an older one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 100: the frame is not valid MessagePack or does not match the schema.
    MalformedFrame,
    /// 101: the length prefix exceeds the negotiated maximum frame size.
    FrameTooLarge,
    /// 102: the client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// 103: the frame is not allowed in the connection's current phase.
    OutOfOrder,
    /// 200: the frame needs an authenticated connection.
    NotAuthenticated,
    /// 201: the hello signature or the device identity did not verify.
    AuthFailed,
    /// 202: the same device connected again; this connection is closed.
    SessionReplaced,
    /// 300: the client sends faster than `Limits::messages_per_second`.
    RateLimited,
    /// 301: the recipient's offline mailbox is full.
    MailboxFull,
    /// 302: the group would exceed `Limits::max_group_size`.
    GroupTooLarge,
    /// 303: the blob would exceed `Limits::max_media_bytes`.
    MediaTooLarge,
    /// 304: the upload holds more one-time prekeys than allowed.
    TooManyPrekeys,
    /// 400: no such user or device.
    UnknownRecipient,
    /// 401: a send to all devices of a user does not cover exactly the
    /// user's current devices; fetch the bundle again.
    StaleDevices,
    /// 402: no such group.
    UnknownGroup,
    /// 403: the device may not do this (not a member, not the owner, ...).
    Forbidden,
    /// 404: no such media blob, or it expired.
    UnknownMedia,
    /// 405: the uploaded blob does not match its announced size or digest.
    MediaMismatch,
    /// 500: the durable store cannot take the frame now; retry later.
    StorageUnavailable,
    /// 501: a bug or an unexpected failure on the server.
    InternalError,
    /// 502: the server is shutting down; reconnect later.
    ShuttingDown,
    /// A code this build does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::MalformedFrame => 100,
            Self::FrameTooLarge => 101,
            Self::UnsupportedVersion => 102,
            Self::OutOfOrder => 103,
            Self::NotAuthenticated => 200,
            Self::AuthFailed => 201,
            Self::SessionReplaced => 202,
            Self::RateLimited => 300,
            Self::MailboxFull => 301,
            Self::GroupTooLarge => 302,
            Self::MediaTooLarge => 303,
            Self::TooManyPrekeys => 304,
            Self::UnknownRecipient => 400,
            Self::StaleDevices => 401,
            Self::UnknownGroup => 402,
            Self::Forbidden => 403,
            Self::UnknownMedia => 404,
            Self::MediaMismatch => 405,
            Self::StorageUnavailable => 500,
            Self::InternalError => 501,
            Self::ShuttingDown => 502,
            Self::Other(code) => code,
        }
    }

    /// The code for a wire number; unknown numbers become [`ErrorCode::Other`].
    pub const fn from_u16(code: u16) -> Self {
        match code {
            100 => Self::MalformedFrame,
            101 => Self::FrameTooLarge,
            102 => Self::UnsupportedVersion,
            103 => Self::OutOfOrder,
            200 => Self::NotAuthenticated,
            201 => Self::AuthFailed,
            202 => Self::SessionReplaced,
            300 => Self::RateLimited,
            301 => Self::MailboxFull,
            302 => Self::GroupTooLarge,
            303 => Self::MediaTooLarge,
            304 => Self::TooManyPrekeys,
            400 => Self::UnknownRecipient,
            401 => Self::StaleDevices,
            402 => Self::UnknownGroup,
            403 => Self::Forbidden,
            404 => Self::UnknownMedia,
            405 => Self::MediaMismatch,
            500 => Self::StorageUnavailable,
            501 => Self::InternalError,
            502 => Self::ShuttingDown,
            other => Self::Other(other),
        }
    }

    /// Whether the server closes the connection after sending this code.
    ///
    /// Framing and authentication failures leave a stream that cannot be
    /// trusted; every other code answers one request and the connection
    /// goes on.
    pub const fn closes_connection(self) -> bool {
        matches!(
            self,
            Self::MalformedFrame
                | Self::FrameTooLarge
                | Self::UnsupportedVersion
                | Self::OutOfOrder
                | Self::NotAuthenticated
                | Self::AuthFailed
                | Self::SessionReplaced
                | Self::ShuttingDown
        )
    }

    /// Whether the same request may succeed if sent again later.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::MailboxFull | Self::StorageUnavailable | Self::ShuttingDown
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({self:?})", self.as_u16())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(deserializer)?;
        if code == 0 {
            return Err(D::Error::custom("error code 0 is reserved"));
        }
        Ok(Self::from_u16(code))
    }
}

/// Server: a request failed, or the connection is about to close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// What went wrong.
    pub code: ErrorCode,
    /// A human-readable explanation, for logs; never parse it.
    pub text: String,
    /// The id of the failed request, if the error answers one. For a media
    /// transfer it holds the media id's bytes.
    pub id: Option<MessageId>,
}

impl ErrorFrame {
    /// An error frame answering the request `id`, or the connection if `None`.
    pub fn new(code: ErrorCode, text: impl Into<String>, id: Option<MessageId>) -> Self {
        Self {
            code,
            text: text.into(),
            id,
        }
    }
}

impl From<&FrameError> for ErrorFrame {
    fn from(error: &FrameError) -> Self {
        Self::new(error.code(), error.to_string(), None)
    }
}

impl From<&OrderError> for ErrorFrame {
    fn from(error: &OrderError) -> Self {
        Self::new(error.code(), error.to_string(), None)
    }
}

impl FrameError {
    /// The code the server reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Truncated { .. } | Self::TooDeep | Self::TrailingBytes | Self::Malformed(_) => {
                ErrorCode::MalformedFrame
            }
            Self::Encode(_) | Self::Io { .. } => ErrorCode::InternalError,
        }
    }
}

impl OrderError {
    /// The code the server reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::NotAuthenticated { .. } => ErrorCode::NotAuthenticated,
            Self::OutOfOrder { .. } => ErrorCode::OutOfOrder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_through_its_number() {
        for n in 0..=u16::MAX {
            assert_eq!(ErrorCode::from_u16(n).as_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(101), ErrorCode::FrameTooLarge);
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Other(999));
    }
}
