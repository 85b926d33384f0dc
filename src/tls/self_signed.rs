//! A self-signed certificate kept in the data directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{CertFingerprint, TlsError, config_error, io_error};

/// File name of the stored certificate.
pub(crate) const CERT_FILE: &str = "tls-cert.pem";

/// File name of the stored private key.
pub(crate) const KEY_FILE: &str = "tls-key.pem";

/// The names the generated certificate is valid for.
const SUBJECT_ALT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Loads the stored certificate and key, or creates and stores new ones.
///
/// The certificate file is written last, so its presence means the pair is
/// complete; a key left without a certificate by an interrupted first start
/// is replaced.
pub(crate) fn load_or_create(
    data_dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);

    if cert_path.exists() {
        return load(&cert_path, &key_path);
    }

    fs::create_dir_all(data_dir).map_err(|err| io_error(&err))?;
    let generated =
        rcgen::generate_simple_self_signed(SUBJECT_ALT_NAMES.map(String::from).to_vec())
            .map_err(|err| config_error(format_args!("generating a certificate: {err}")))?;

    let key_pem = generated.signing_key.serialize_pem();
    write_atomically(&key_path, key_pem.as_bytes(), 0o600).map_err(|err| io_error(&err))?;
    write_atomically(&cert_path, generated.cert.pem().as_bytes(), 0o644)
        .map_err(|err| io_error(&err))?;

    let cert = generated.cert.der().clone();
    tracing::info!(
        path = %cert_path.display(),
        fingerprint = %CertFingerprint::of_der(&cert),
        "created self-signed certificate"
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|err| config_error(format_args!("reading the generated key: {err}")))?;
    Ok((vec![cert], key))
}

/// Loads a stored pair.
fn load(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    if !key_path.exists() {
        return Err(config_error(format_args!(
            "certificate {} exists but its key {} is missing",
            cert_path.display(),
            key_path.display()
        )));
    }
    warn_if_key_readable_by_others(key_path);

    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            config_error(format_args!(
                "certificate file {}: {err}",
                cert_path.display()
            ))
        })?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| config_error(format_args!("key file {}: {err}", key_path.display())))?;
    Ok((certs, key))
}

/// Writes `contents` to a temporary file beside `path` with `mode`, syncs
/// it, and renames it over `path`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temporary_path(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;

    let mut file = options.open(&tmp)?;
    // A stale temporary file keeps its old mode; set it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;

    // Make the rename itself durable.
    if let Some(dir) = path.parent() {
        #[cfg(unix)]
        fs::File::open(dir)?.sync_all()?;
        #[cfg(not(unix))]
        let _ = dir;
    }
    Ok(())
}

/// The temporary name used while writing `path`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Logs a warning when the key file's mode lets others read it.
fn warn_if_key_readable_by_others(key_path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(key_path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %key_path.display(),
                    mode = format_args!("{mode:o}"),
                    "tls key file is readable by group or others"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key_path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_pair_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (certs, _) = load_or_create(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, _) = load_or_create(dir.path()).unwrap();
        assert_eq!(certs, again);
    }

    #[test]
    fn certificate_without_key_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(TlsError::Config { .. })
        ));
    }

    #[test]
    fn key_without_certificate_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"left over").unwrap();
        let (certs, _) = load_or_create(dir.path()).unwrap();
        assert_eq!(certs.len(), 1);
    }
}
