//! TLS 1.3 for the server and the client: configuration, handshakes with a
//! deadline, certificate pinning and channel binding.
//!
//! The server side is a [`ServerTls`], built from PEM files
//! ([`ServerTls::from_pem_files`]), from a rustls configuration the embedder
//! owns ([`ServerTls::from_config`]), or from a self-signed certificate kept in
//! the data directory ([`ServerTls::load_or_create_self_signed`]). The client
//! side is a [`ClientTls`] that trusts either one pinned certificate
//! fingerprint ([`ClientTls::pinned`]) or a bundle of root certificates
//! ([`ClientTls::with_ca_pem`]).
//!
//! Both sides speak TLS 1.3 only and offer the ALPN protocol [`ALPN_COURIER`].
//! The server issues stateless session tickets (encrypted with a key that
//! rotates every six hours and lives only in memory), and a [`ClientTls`]
//! keeps the tickets it receives, so its next connection to the same server
//! name resumes without a full handshake.
//!
//! # No early data
//!
//! 0-RTT data is disabled (`max_early_data_size = 0`). Early data is not
//! protected against replay: an attacker who records the first flight can
//! send it again, and the server would process the frames a second time.
//! Courier's first frames authenticate a device and route messages, and
//! neither may run twice on the strength of a recorded packet, while the
//! round trip that early data would save is small next to a chat session's
//! lifetime.
//!
//! # Channel binding
//!
//! [`exporter`] derives 32 bytes from the TLS session with the exporter label
//! [`EXPORTER_LABEL`] and no context. Both ends of one connection get the
//! same value and every connection gets a different one, so a signature over
//! it cannot be replayed on another connection.
//!
//! # Limitations
//!
//! - A pinned [`ClientTls`] trusts exactly one certificate. Rotating the
//!   server's certificate means handing clients the new pin first; a list of
//!   pins would make rotation seamless.
//! - A pinned certificate is trusted whatever its validity dates say: the pin
//!   is the trust decision.
//! - A configuration given to [`ServerTls::from_config`] is used as it is: its
//!   protocol versions, ALPN list, tickets and early-data limit are the
//!   embedder's choice.
//! - [`ServerTls::load_or_create_self_signed`] assumes one server per data
//!   directory: two processes creating the certificate at the same moment
//!   could each keep a different half of the pair.
//! - The session-ticket key is not shared between server processes, so a
//!   client reconnecting to another process (or after a restart) does a full
//!   handshake.

mod client;
mod fingerprint;
mod self_signed;
mod server;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use client::ClientTls;
pub use fingerprint::{CertFingerprint, FingerprintParseError};
pub use server::ServerTls;

/// The ALPN protocol name both sides offer.
pub const ALPN_COURIER: &[u8] = b"courier/1";

/// The TLS exporter label used for channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-courier-auth-v1";

/// The handshake deadline used when the embedder does not choose one.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An error setting up TLS or completing a handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer did not complete the handshake before the deadline.
    #[error("tls handshake timed out after {after:?}")]
    HandshakeTimeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The handshake failed: a protocol error, an unsupported version, a
    /// bad message or an alert from the peer.
    #[error("tls handshake failed: {reason}")]
    HandshakeFailed {
        /// What went wrong, as rustls describes it.
        reason: String,
    },
    /// A certificate was rejected, by us or by the peer.
    #[error("bad certificate: {reason}")]
    BadCertificate {
        /// Why the certificate was rejected.
        reason: String,
    },
    /// The server's certificate does not match the pinned fingerprint.
    #[error("certificate fingerprint mismatch: expected {expected}, server presented {presented}")]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: CertFingerprint,
        /// The fingerprint of the certificate the server sent.
        presented: CertFingerprint,
    },
    /// Reading or writing a socket or a file failed.
    #[error("tls i/o error ({kind:?}): {message}")]
    Io {
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// The underlying error's message.
        message: String,
    },
    /// The configuration, a certificate file or a key file is unusable.
    #[error("tls configuration error: {reason}")]
    Config {
        /// What is wrong with it.
        reason: String,
    },
    /// Keying material could not be exported (the handshake is not complete).
    #[error("tls exporter unavailable: {reason}")]
    Exporter {
        /// Why rustls refused.
        reason: String,
    },
}

/// A TLS connection whose keying material can be exported: the client and
/// server streams of `tokio_rustls` and the rustls connections themselves.
pub trait TlsSession: sealed::Sealed {}

/// Derives the 32-byte channel-binding value of a TLS connection.
///
/// It uses the TLS exporter with label [`EXPORTER_LABEL`] and no context; the
/// client and the server of one connection get the same value.
///
/// # Errors
///
/// [`TlsError::Exporter`] if the handshake has not completed.
pub fn exporter(conn: &impl TlsSession) -> Result<[u8; 32], TlsError> {
    conn.export(EXPORTER_LABEL)
}

/// Runs the server side of a handshake on `io`, giving up after `timeout`.
///
/// # Errors
///
/// [`TlsError::HandshakeTimeout`] if the client is too slow, otherwise the
/// handshake's failure classified by [`TlsError`].
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future drops `io` and the half-done
/// handshake.
pub async fn accept_with_timeout<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    timeout: Duration,
) -> Result<tokio_rustls::server::TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let result = match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(classify_io(err)),
        Err(_) => Err(TlsError::HandshakeTimeout { after: timeout }),
    };
    if let Err(err) = &result {
        tracing::debug!(error = %err, "tls accept failed");
    }
    result
}

/// Runs the client side of a handshake with `client`'s trust settings,
/// giving up after `timeout`.
///
/// `server_name` is a DNS name or an IP address; it names the server for
/// certificate checks (CA mode) and keys the resumption cache.
///
/// # Errors
///
/// [`TlsError::Config`] for an invalid `server_name`,
/// [`TlsError::FingerprintMismatch`] or [`TlsError::BadCertificate`] when the
/// server is not trusted, [`TlsError::HandshakeTimeout`] when it is too slow,
/// and other handshake failures as classified by [`TlsError`].
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future drops `io` and the half-done
/// handshake.
pub async fn connect<IO>(
    client: &ClientTls,
    server_name: &str,
    io: IO,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    client.connect(server_name, io, timeout).await
}

/// Turns an error from a tokio-rustls handshake into a [`TlsError`].
pub(crate) fn classify_io(err: io::Error) -> TlsError {
    let Some(inner) = err.get_ref() else {
        return io_error(&err);
    };
    if let Some(mismatch) = inner.downcast_ref::<client::PinMismatch>() {
        return mismatch.to_error();
    }
    match inner.downcast_ref::<rustls::Error>() {
        Some(tls) => classify_rustls(tls),
        None => io_error(&err),
    }
}

/// Turns a rustls error into a [`TlsError`].
pub(crate) fn classify_rustls(err: &rustls::Error) -> TlsError {
    use rustls::{AlertDescription as Alert, Error};

    if let Error::InvalidCertificate(rustls::CertificateError::Other(other)) = err
        && let Some(mismatch) = other.0.downcast_ref::<client::PinMismatch>()
    {
        return mismatch.to_error();
    }
    match err {
        Error::InvalidCertificate(_)
        | Error::NoCertificatesPresented
        | Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA,
        ) => TlsError::BadCertificate {
            reason: err.to_string(),
        },
        _ => TlsError::HandshakeFailed {
            reason: err.to_string(),
        },
    }
}

/// Wraps a plain I/O error.
pub(crate) fn io_error(err: &io::Error) -> TlsError {
    TlsError::Io {
        kind: err.kind(),
        message: err.to_string(),
    }
}

/// Wraps a configuration problem.
pub(crate) fn config_error(reason: impl std::fmt::Display) -> TlsError {
    TlsError::Config {
        reason: reason.to_string(),
    }
}

mod sealed {
    use super::TlsError;

    /// Keeps [`super::TlsSession`] implemented only here.
    pub trait Sealed {
        /// Exports 32 bytes of keying material under `label`.
        fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError>;
    }
}

/// Exports from anything that derefs to a rustls connection.
fn export_from<D>(conn: &rustls::ConnectionCommon<D>, label: &[u8]) -> Result<[u8; 32], TlsError> {
    conn.export_keying_material([0u8; 32], label, None)
        .map_err(|err| TlsError::Exporter {
            reason: err.to_string(),
        })
}

impl sealed::Sealed for rustls::ServerConnection {
    fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError> {
        export_from(self, label)
    }
}
impl TlsSession for rustls::ServerConnection {}

impl sealed::Sealed for rustls::ClientConnection {
    fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError> {
        export_from(self, label)
    }
}
impl TlsSession for rustls::ClientConnection {}

impl<IO> sealed::Sealed for tokio_rustls::server::TlsStream<IO> {
    fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError> {
        export_from(self.get_ref().1, label)
    }
}
impl<IO> TlsSession for tokio_rustls::server::TlsStream<IO> {}

impl<IO> sealed::Sealed for tokio_rustls::client::TlsStream<IO> {
    fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError> {
        export_from(self.get_ref().1, label)
    }
}
impl<IO> TlsSession for tokio_rustls::client::TlsStream<IO> {}

impl<IO> sealed::Sealed for tokio_rustls::TlsStream<IO> {
    fn export(&self, label: &[u8]) -> Result<[u8; 32], TlsError> {
        match self {
            Self::Client(stream) => stream.export(label),
            Self::Server(stream) => stream.export(label),
        }
    }
}
impl<IO> TlsSession for tokio_rustls::TlsStream<IO> {}

/// The rustls provider every Courier configuration uses.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
