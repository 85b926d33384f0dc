//! The self-signed certificate kept in the data directory.
#![allow(clippy::unwrap_used)]

use courier::tls::{CertFingerprint, ServerTls, TlsError};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[test]
fn self_signed_certificate_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("courier-data");

    let first = ServerTls::load_or_create_self_signed(&data).unwrap();
    let cert_path = data.join("tls-cert.pem");
    let key_path = data.join("tls-key.pem");
    let cert_pem = std::fs::read(&cert_path).unwrap();

    let second = ServerTls::load_or_create_self_signed(&data).unwrap();
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        cert_pem,
        "certificate was rewritten"
    );

    // The fingerprint is the SHA-256 of the stored certificate.
    let der = CertificateDer::from_pem_slice(&cert_pem).unwrap();
    assert_eq!(first.fingerprint(), Some(CertFingerprint::of_der(&der)));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The same files load through the PEM-file constructor too.
    let from_files = ServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(from_files.fingerprint(), first.fingerprint());
}

#[test]
fn different_data_dirs_get_different_certificates() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let fa = ServerTls::load_or_create_self_signed(a.path())
        .unwrap()
        .fingerprint();
    let fb = ServerTls::load_or_create_self_signed(b.path())
        .unwrap()
        .fingerprint();
    assert_ne!(fa, fb);
}

#[test]
fn unreadable_pem_files_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, b"not a certificate").unwrap();
    std::fs::write(&key, b"not a key").unwrap();
    assert!(matches!(
        ServerTls::from_pem_files(&cert, &key),
        Err(TlsError::Config { .. })
    ));
    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        ServerTls::from_pem_files(&missing, &key),
        Err(TlsError::Config { .. })
    ));
}

#[test]
fn key_not_matching_certificate_is_a_config_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ServerTls::load_or_create_self_signed(a.path()).unwrap();
    ServerTls::load_or_create_self_signed(b.path()).unwrap();
    let result = ServerTls::from_pem_files(
        &a.path().join("tls-cert.pem"),
        &b.path().join("tls-key.pem"),
    );
    assert!(matches!(result, Err(TlsError::Config { .. })));
}
