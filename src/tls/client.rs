//! The client's TLS configuration and the pinned-certificate verifier.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::{ALPN_COURIER, CertFingerprint, TlsError, classify_io, config_error};

/// How many servers' session tickets a [`ClientTls`] remembers.
const RESUMPTION_CACHE_SIZE: usize = 64;

/// The client side of Courier's TLS: whom to trust, and a session cache
/// shared by every connection made through this value (and its clones).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts exactly the server certificate whose SHA-256 is `pin`.
    ///
    /// The handshake signature is still checked against that certificate's
    /// key, so a server must hold the private key, not just a copy of the
    /// certificate. Server names and validity dates are not checked: the
    /// pin is the trust decision.
    pub fn pinned(pin: CertFingerprint) -> Self {
        let provider = super::provider();
        let verifier = Arc::new(PinnedVerifier {
            pin,
            provider: Arc::clone(&provider),
        });
        let config = builder(provider)
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Self::finish(config)
    }

    /// Trusts servers whose certificate chains to one of the PEM root
    /// certificates in `pem`, for the server name given at connect time.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if the PEM holds no usable certificate.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| config_error(format_args!("ca bundle: {err}")))?;
        Self::with_ca_certs(certs)
    }

    /// Like [`ClientTls::with_ca_pem`], reading the bundle from a file.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if the file cannot be read or holds no usable
    /// certificate.
    pub fn with_ca_file(path: &Path) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|err| config_error(format_args!("ca bundle {}: {err}", path.display())))?;
        Self::with_ca_certs(certs)
    }

    /// Uses a rustls configuration built by the caller, unchanged.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }

    /// The rustls configuration in use.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// A tokio-rustls connector sharing this configuration and its session
    /// cache.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(&self.config))
    }

    /// Runs the client side of a handshake on `io`, giving up after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`super::connect`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops `io` and the half-done
    /// handshake.
    pub async fn connect<IO>(
        &self,
        server_name: &str,
        io: IO,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|err| config_error(format_args!("server name {server_name:?}: {err}")))?;
        let result = match tokio::time::timeout(timeout, self.connector().connect(name, io)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(classify_io(err)),
            Err(_) => Err(TlsError::HandshakeTimeout { after: timeout }),
        };
        if let Err(err) = &result {
            tracing::debug!(server_name, error = %err, "tls connect failed");
        }
        result
    }

    fn with_ca_certs(certs: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(config_error("ca bundle holds no usable certificate"));
        }
        let config = builder(super::provider())
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::finish(config))
    }

    fn finish(mut config: ClientConfig) -> Self {
        config.alpn_protocols = vec![ALPN_COURIER.to_vec()];
        config.resumption = Resumption::in_memory_sessions(RESUMPTION_CACHE_SIZE);
        config.enable_early_data = false;
        Self {
            config: Arc::new(config),
        }
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// A TLS 1.3 client configuration builder for `provider`.
fn builder(
    provider: Arc<CryptoProvider>,
) -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider supports TLS 1.3, requested just above")
}

/// The server presented a certificate other than the pinned one; carried
/// through rustls inside [`rustls::CertificateError::Other`].
#[derive(Debug)]
pub(crate) struct PinMismatch {
    expected: CertFingerprint,
    presented: CertFingerprint,
}

impl PinMismatch {
    pub(crate) fn to_error(&self) -> TlsError {
        TlsError::FingerprintMismatch {
            expected: self.expected,
            presented: self.presented,
        }
    }
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate fingerprint {} is not the pinned {}",
            self.presented, self.expected
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts only the certificate with the pinned fingerprint, and checks the
/// handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct PinnedVerifier {
    pin: CertFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = CertFingerprint::of_der(end_entity);
        if presented.ct_eq(&self.pin) {
            return Ok(ServerCertVerified::assertion());
        }
        tracing::warn!(
            expected = %self.pin,
            presented = %presented,
            "server certificate does not match the pinned fingerprint"
        );
        let mismatch = PinMismatch {
            expected: self.pin,
            presented,
        };
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(mismatch))),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Unreachable with a TLS 1.3-only configuration, but correct anyway.
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
