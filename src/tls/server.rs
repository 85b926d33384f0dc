//! The server's TLS configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use super::{ALPN_COURIER, CertFingerprint, TlsError, config_error, self_signed};

/// The server side of Courier's TLS: a shared rustls configuration and the
/// fingerprint of the certificate it presents, when known.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: Option<CertFingerprint>,
}

impl ServerTls {
    /// Builds from a PEM certificate chain (end-entity certificate first) and
    /// a PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if a file cannot be read or parsed, holds no
    /// certificate or key, or the key does not fit the certificate.
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_file_iter(cert_chain)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|err| {
                config_error(format_args!(
                    "certificate file {}: {err}",
                    cert_chain.display()
                ))
            })?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|err| config_error(format_args!("key file {}: {err}", key.display())))?;
        Self::from_der(certs, key)
    }

    /// Builds from a DER certificate chain (end-entity certificate first) and
    /// its private key.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if the chain is empty or the key is unusable or
    /// does not fit the certificate.
    pub fn from_der(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let Some(end_entity) = cert_chain.first() else {
            return Err(config_error("certificate chain is empty"));
        };
        let fingerprint = CertFingerprint::of_der(end_entity);

        let mut config = ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)
            .map_err(config_error)?;
        config.alpn_protocols = vec![ALPN_COURIER.to_vec()];
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(config_error)?;
        config.max_early_data_size = 0;
        config.send_half_rtt_data = false;

        Ok(Self {
            config: Arc::new(config),
            fingerprint: Some(fingerprint),
        })
    }

    /// Uses a rustls configuration built by the embedder, unchanged.
    ///
    /// The fingerprint is unknown in this case ([`ServerTls::fingerprint`]
    /// returns `None`).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            fingerprint: None,
        }
    }

    /// Loads the self-signed certificate kept in `data_dir`, creating it on
    /// first use.
    ///
    /// The certificate (ECDSA P-256, for `localhost` and `127.0.0.1`) is
    /// stored as `tls-cert.pem` and its key as `tls-key.pem` (mode 0600 on
    /// Unix). Later starts reuse them, so the fingerprint clients pinned
    /// stays valid. This does blocking file I/O: call it at start-up or from
    /// `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`TlsError::Io`] if the directory or files cannot be created or read,
    /// [`TlsError::Config`] if stored files are unusable (for example a
    /// certificate whose key file is missing).
    pub fn load_or_create_self_signed(data_dir: &Path) -> Result<Self, TlsError> {
        let (certs, key) = self_signed::load_or_create(data_dir)?;
        Self::from_der(certs, key)
    }

    /// The SHA-256 fingerprint of the end-entity certificate, when this
    /// value was built from a certificate rather than a ready configuration.
    pub fn fingerprint(&self) -> Option<CertFingerprint> {
        self.fingerprint
    }

    /// The rustls configuration in use.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// A tokio-rustls acceptor sharing this configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Runs the server side of a handshake on `io`, giving up after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`super::accept_with_timeout`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops `io` and the half-done
    /// handshake.
    pub async fn accept<IO>(
        &self,
        io: IO,
        timeout: Duration,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        super::accept_with_timeout(&self.acceptor(), io, timeout).await
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}
