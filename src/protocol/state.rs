//! The phases of a connection and which frames each allows
//! (`docs/protocol.md`, section 5.1). Pure: the server and the client
//! each keep a [`ConnectionPhase`] and consult it for every frame.

use std::fmt;

use super::frame::{ClientFrame, ServerFrame};
use super::handshake::PROTOCOL_VERSION;

/// Where a connection stands. Server frames drive the transitions:
/// `ServerHello` moves `Greeting` to `Authenticating`, `Welcome` moves
/// `Authenticating` to `Established`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConnectionPhase {
    /// TLS is up; the server has not sent `ServerHello` yet.
    #[default]
    Greeting,
    /// `ServerHello` was sent; the client must authenticate.
    Authenticating,
    /// `Welcome` was sent; every frame but the hellos is allowed.
    Established,
}

/// A frame arrived that the connection's phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// A hello names a protocol version this build does not speak.
    #[error("protocol version {offered} is not supported (supported: {supported})")]
    UnsupportedVersion {
        /// The version in the hello.
        offered: u16,
        /// The version this build speaks.
        supported: u16,
    },
    /// A client frame that needs authentication came before `Welcome`.
    #[error("{kind} needs an authenticated connection")]
    NotAuthenticated {
        /// The frame's name.
        kind: &'static str,
    },
    /// A frame came in a phase where it has no meaning.
    #[error("{kind} is out of order while {phase}")]
    OutOfOrder {
        /// The frame's name.
        kind: &'static str,
        /// The phase it came in.
        phase: ConnectionPhase,
    },
}

impl ConnectionPhase {
    /// Checks whether the server may accept `frame` from the client now.
    ///
    /// Before authentication only `ClientHello`, `Ping` and `Pong` pass;
    /// once established, everything but `ClientHello` does. The phase does
    /// not change: the server moves to `Established` when it sends
    /// `Welcome` (see [`ConnectionPhase::on_server_frame`]).
    ///
    /// # Errors
    ///
    /// [`OrderError`], whose [`OrderError::code`] is the code to answer
    /// with before closing the connection.
    pub fn check_client_frame(self, frame: &ClientFrame) -> Result<(), OrderError> {
        let kind = frame.name();
        match (self, frame) {
            (Self::Authenticating, ClientFrame::ClientHello(hello)) => check_version(hello.version),
            (
                Self::Authenticating | Self::Established,
                ClientFrame::Ping(_) | ClientFrame::Pong(_),
            ) => Ok(()),
            (Self::Authenticating, _) => Err(OrderError::NotAuthenticated { kind }),
            (Self::Established, ClientFrame::ClientHello(_)) | (Self::Greeting, _) => {
                Err(OrderError::OutOfOrder { kind, phase: self })
            }
            (Self::Established, _) => Ok(()),
        }
    }

    /// Checks a server frame against the phase and returns the phase after
    /// it. The server calls it on every frame it sends, the client on every
    /// frame it receives, so both sides walk the same states.
    ///
    /// # Errors
    ///
    /// [`OrderError`] when the frame is not allowed now, or a `ServerHello`
    /// names another protocol version.
    pub fn on_server_frame(self, frame: &ServerFrame) -> Result<Self, OrderError> {
        let kind = frame.name();
        match (self, frame) {
            (Self::Greeting, ServerFrame::ServerHello(hello)) => {
                check_version(hello.version).map(|()| Self::Authenticating)
            }
            (Self::Authenticating, ServerFrame::Welcome(_)) => Ok(Self::Established),
            (_, ServerFrame::Error(_)) => Ok(self),
            (Self::Authenticating, ServerFrame::Ping(_) | ServerFrame::Pong(_)) => Ok(self),
            (Self::Established, ServerFrame::ServerHello(_) | ServerFrame::Welcome(_)) => {
                Err(OrderError::OutOfOrder { kind, phase: self })
            }
            (Self::Established, _) => Ok(self),
            (Self::Greeting | Self::Authenticating, _) => {
                Err(OrderError::OutOfOrder { kind, phase: self })
            }
        }
    }

    /// Whether the connection is authenticated.
    pub const fn is_established(self) -> bool {
        matches!(self, Self::Established)
    }
}

impl fmt::Display for ConnectionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Greeting => "greeting",
            Self::Authenticating => "authenticating",
            Self::Established => "established",
        })
    }
}

fn check_version(offered: u16) -> Result<(), OrderError> {
    if offered == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(OrderError::UnsupportedVersion {
            offered,
            supported: PROTOCOL_VERSION,
        })
    }
}
