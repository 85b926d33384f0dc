//! Media sealing: a fresh AES-256-GCM key per blob and a SHA-256 digest of
//! the ciphertext, checked before decryption (`docs/protocol.md`, 7.7).

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::primitives::{AeadKey, INFO_MEDIA, Key32, TAG_LEN, byte_array};

/// Associated data of every media ciphertext.
const MEDIA_AAD: &[u8] = b"courier/v1/media";

/// What the uploader sends (inside a sealed message) so a recipient can
/// fetch and open a blob. The key is zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct MediaKey {
    /// The 32-byte media key (secret).
    #[serde(with = "byte_array")]
    pub key: [u8; 32],
    /// SHA-256 of the uploaded ciphertext.
    #[serde(with = "byte_array")]
    pub digest: [u8; 32],
}

/// Failures to open a media blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The ciphertext is shorter than an AES-GCM tag.
    #[error("ciphertext too short")]
    Malformed,
    /// The ciphertext does not hash to the digest in the key.
    #[error("digest mismatch")]
    DigestMismatch,
    /// The digest matched but decryption failed (wrong key).
    #[error("media failed authentication")]
    Tampered,
}

/// Seals `plaintext` under a fresh key (32 bytes drawn from `rng`).
pub fn seal_media<R: CryptoRng + ?Sized>(rng: &mut R, plaintext: &[u8]) -> (Vec<u8>, MediaKey) {
    let mut key = Key32([0; 32]);
    rng.fill_bytes(&mut key.0);
    seal_media_with_key(&key.0, plaintext)
}

/// Seals `plaintext` under `key`. Use a key only once: the nonce is derived
/// from it. Deterministic, for test vectors.
pub fn seal_media_with_key(key: &[u8; 32], plaintext: &[u8]) -> (Vec<u8>, MediaKey) {
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
    AeadKey::derive(&Key32(*key), INFO_MEDIA).seal_into(MEDIA_AAD, plaintext, &mut ciphertext);
    let digest = Sha256::digest(&ciphertext).into();
    (ciphertext, MediaKey { key: *key, digest })
}

/// Checks the digest (in constant time), then decrypts.
///
/// # Errors
/// [`MediaError`] naming the failed check.
pub fn open_media(ciphertext: &[u8], key: &MediaKey) -> Result<Vec<u8>, MediaError> {
    if ciphertext.len() < TAG_LEN {
        return Err(MediaError::Malformed);
    }
    let digest: [u8; 32] = Sha256::digest(ciphertext).into();
    if !bool::from(digest.ct_eq(&key.digest)) {
        return Err(MediaError::DigestMismatch);
    }
    AeadKey::derive(&Key32(key.key), INFO_MEDIA)
        .open(MEDIA_AAD, ciphertext)
        .ok_or(MediaError::Tampered)
}

impl fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_changed_ciphertext_or_key() {
        let (mut ct, key) = seal_media(&mut rand::rng(), b"a picture");
        assert_eq!(open_media(&ct, &key).unwrap(), b"a picture");

        let mut wrong = key.clone();
        wrong.key[0] ^= 1;
        assert_eq!(open_media(&ct, &wrong), Err(MediaError::Tampered));

        ct[0] ^= 1;
        assert_eq!(open_media(&ct, &key), Err(MediaError::DigestMismatch));
        assert_eq!(open_media(&[0; 3], &key), Err(MediaError::Malformed));
    }
}
