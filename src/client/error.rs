//! The client's error type.

use std::io;

use crate::crypto::{GroupError, MediaError, OpenError, SealError, X3dhError};
use crate::protocol::{ErrorCode, FrameError, GroupId, NameError, UserName};
use crate::tls::TlsError;

/// Everything that can go wrong in the client: connecting, authenticating,
/// the local store, sealing and opening, and requests the server refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration cannot work (bad address, bad name, no trust anchor).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// TCP could not connect, or the connection failed while in use.
    #[error("i/o error ({kind:?}): {message}")]
    Io {
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// Its message.
        message: String,
    },
    /// The TLS layer failed (handshake, certificate, pin, exporter).
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// A step took longer than allowed.
    #[error("timed out while {during}")]
    Timeout {
        /// What the client was waiting for.
        during: &'static str,
    },
    /// A frame could not be encoded or decoded.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// The server sent something the protocol does not allow here.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The server refused a request or closed the connection with an error.
    #[error("server error {code}: {text}")]
    Server {
        /// The error code of the `Error` frame.
        code: ErrorCode,
        /// The server's explanation.
        text: String,
    },
    /// The server closed the connection (end of stream).
    #[error("connection closed by the server")]
    ConnectionClosed,
    /// The local store failed; the operation did not take effect.
    #[error("local store: {reason}")]
    Store {
        /// What failed.
        reason: String,
    },
    /// The storage key is wrong, missing, or given for a store made without
    /// one.
    #[error("the local store cannot be opened with this storage key")]
    StorageKey,
    /// The state directory belongs to another device.
    #[error("state directory belongs to {found}, not {wanted}")]
    WrongDevice {
        /// The device the store was created for.
        found: String,
        /// The device the configuration names.
        wanted: String,
    },
    /// Sealing a message failed.
    #[error("seal: {0}")]
    Seal(#[from] SealError),
    /// Opening a message failed.
    #[error("open: {0}")]
    Open(#[from] OpenError),
    /// A prekey bundle did not verify.
    #[error("bundle: {0}")]
    Bundle(#[from] X3dhError),
    /// The content inside a sealed message is not a known content record.
    #[error("content: {reason}")]
    Content {
        /// What was wrong.
        reason: String,
    },
    /// A user name is invalid.
    #[error("user name: {0}")]
    Name(#[from] NameError),
    /// No session with any device of this user exists yet.
    #[error("no session with {user}")]
    NoSession {
        /// The user.
        user: UserName,
    },
    /// A group message or sender key failed its checks.
    #[error("group: {0}")]
    Group(#[from] GroupError),
    /// This device is not a member of the group (as far as it knows).
    #[error("unknown group {group}")]
    UnknownGroup {
        /// The group.
        group: GroupId,
    },
    /// A group message arrived before its sender's key.
    #[error("no sender key for this group member")]
    NoSenderKey,
    /// A downloaded blob failed its digest or authentication.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// The request needs a connection and there is none right now.
    #[error("not connected")]
    NotConnected,
    /// The client has stopped (closed, or a fatal error ended it).
    #[error("client stopped")]
    Stopped,
}

impl ClientError {
    /// Whether reconnecting cannot help (authentication refused, replaced by
    /// another connection of the same device, wrong store, bad pin).
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Server { code, .. } => matches!(
                code,
                ErrorCode::AuthFailed | ErrorCode::SessionReplaced | ErrorCode::UnsupportedVersion
            ),
            Self::Tls(TlsError::FingerprintMismatch { .. } | TlsError::BadCertificate { .. }) => {
                true
            }
            Self::Config { .. }
            | Self::WrongDevice { .. }
            | Self::Store { .. }
            | Self::StorageKey => true,
            _ => false,
        }
    }

    pub(crate) fn io(err: &io::Error) -> Self {
        Self::Io {
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    pub(crate) fn store(err: impl std::fmt::Display) -> Self {
        Self::Store {
            reason: err.to_string(),
        }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        Self::Protocol {
            reason: reason.into(),
        }
    }
}
