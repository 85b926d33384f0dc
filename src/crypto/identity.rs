//! Device identities: an Ed25519 signing key and an X25519 agreement key,
//! bound by an Ed25519 signature (`docs/protocol.md`, section 7.1).

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::primitives::{Key32, SIG_GENERAL, SIG_IDENTITY, byte_array, x25519_public};

/// The public identity of one device, as published to the server and peers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Ed25519 public key.
    #[serde(with = "byte_array")]
    pub signing_key: [u8; 32],
    /// X25519 public key used in X3DH.
    #[serde(with = "byte_array")]
    pub agreement_key: [u8; 32],
    /// Ed25519 signature by `signing_key` binding `agreement_key`.
    #[serde(with = "byte_array")]
    pub agreement_signature: [u8; 64],
}

/// Failures to check an identity or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The Ed25519 public key is not a valid point.
    #[error("invalid signing key")]
    InvalidSigningKey,
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
}

impl DeviceIdentity {
    /// Checks that `agreement_signature` binds `agreement_key` to `signing_key`.
    ///
    /// # Errors
    /// [`IdentityError`] when the key is invalid or the signature fails.
    pub fn verify(&self) -> Result<(), IdentityError> {
        self.verify_context(SIG_IDENTITY, &self.agreement_key, &self.agreement_signature)
    }

    /// Checks a signature made with [`IdentityKeyPair::sign`] over `message`.
    ///
    /// # Errors
    /// [`IdentityError`] when the key is invalid or the signature fails.
    pub fn verify_signature(
        &self,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), IdentityError> {
        self.verify_context(SIG_GENERAL, message, signature)
    }

    /// The 64 bytes that stand for this identity in associated data:
    /// signing key then agreement key.
    pub fn key_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.signing_key);
        out[32..].copy_from_slice(&self.agreement_key);
        out
    }

    /// Verifies an Ed25519 signature over `context || message` (strict mode).
    pub(crate) fn verify_context(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), IdentityError> {
        let key = VerifyingKey::from_bytes(&self.signing_key)
            .map_err(|_| IdentityError::InvalidSigningKey)?;
        let mut signed = Vec::with_capacity(context.len() + message.len());
        signed.extend_from_slice(context);
        signed.extend_from_slice(message);
        key.verify_strict(&signed, &Signature::from_bytes(signature))
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("signing_key", &Hex(&self.signing_key))
            .field("agreement_key", &Hex(&self.agreement_key))
            .finish_non_exhaustive()
    }
}

/// The secret half of a device identity. Zeroized on drop.
#[derive(Clone, Serialize, Deserialize)]
pub struct IdentityKeyPair {
    signing: SigningKey,
    agreement: Key32,
    #[serde(with = "byte_array")]
    agreement_public: [u8; 32],
    agreement_signature: Signature,
}

impl IdentityKeyPair {
    /// Generates a fresh identity (32 bytes of Ed25519 seed, then 32 bytes of
    /// X25519 secret drawn from `rng`).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut signing_seed = Key32([0; 32]);
        let mut agreement = Key32([0; 32]);
        rng.fill_bytes(&mut signing_seed.0);
        rng.fill_bytes(&mut agreement.0);
        Self::from_secret_bytes(&signing_seed.0, &agreement.0)
    }

    /// Rebuilds an identity from its Ed25519 seed and X25519 secret.
    pub fn from_secret_bytes(signing_seed: &[u8; 32], agreement_secret: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(signing_seed);
        let agreement = Key32(*agreement_secret);
        let agreement_public = x25519_public(&agreement);
        let agreement_signature = sign_context(&signing, SIG_IDENTITY, &agreement_public);
        Self {
            signing,
            agreement,
            agreement_public,
            agreement_signature,
        }
    }

    /// The public identity to publish.
    pub fn public(&self) -> DeviceIdentity {
        DeviceIdentity {
            signing_key: self.signing.verifying_key().to_bytes(),
            agreement_key: self.agreement_public,
            agreement_signature: self.agreement_signature.to_bytes(),
        }
    }

    /// Signs `message` (prefixed with the context `courier/v1/sign\0`, so
    /// such a signature never doubles as a binding or prekey signature).
    /// Check it with [`DeviceIdentity::verify_signature`].
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        sign_context(&self.signing, SIG_GENERAL, message).to_bytes()
    }

    pub(crate) fn sign_context(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        sign_context(&self.signing, context, message).to_bytes()
    }

    pub(crate) fn agreement_secret(&self) -> &Key32 {
        &self.agreement
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKeyPair(<redacted>)")
    }
}

fn sign_context(key: &SigningKey, context: &[u8], message: &[u8]) -> Signature {
    let mut signed = Vec::with_capacity(context.len() + message.len());
    signed.extend_from_slice(context);
    signed.extend_from_slice(message);
    key.sign(&signed)
}

/// Lowercase hex for public keys in `Debug` output.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_signature_verifies_and_rejects_swapped_agreement_key() {
        let mut rng = rand::rng();
        let a = IdentityKeyPair::generate(&mut rng).public();
        let b = IdentityKeyPair::generate(&mut rng).public();
        assert_eq!(a.verify(), Ok(()));
        let forged = DeviceIdentity {
            agreement_key: b.agreement_key,
            ..a
        };
        assert_eq!(forged.verify(), Err(IdentityError::BadSignature));
    }

    #[test]
    fn general_signature_is_not_a_binding_signature() {
        let pair = IdentityKeyPair::generate(&mut rand::rng());
        let id = pair.public();
        let sig = pair.sign(&id.agreement_key);
        assert_eq!(id.verify_signature(&id.agreement_key, &sig), Ok(()));
        let forged = DeviceIdentity {
            agreement_signature: sig,
            ..id
        };
        assert_eq!(forged.verify(), Err(IdentityError::BadSignature));
    }

    #[test]
    fn debug_hides_secrets() {
        let pair = IdentityKeyPair::generate(&mut rand::rng());
        assert_eq!(format!("{pair:?}"), "IdentityKeyPair(<redacted>)");
    }
}
