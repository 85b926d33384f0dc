//! X3DH key agreement: prekeys, bundles and both sides of the handshake
//! (`docs/protocol.md`, section 7.3).

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::identity::{DeviceIdentity, IdentityError, IdentityKeyPair};
use super::primitives::{
    INFO_X3DH, Key32, SIG_PREKEY, VERSION, byte_array, dh, hkdf, x25519_public,
};

/// How many signed prekeys a device keeps (the current one and the one
/// before it, so bundles fetched just before a rotation still work).
const SIGNED_PREKEYS_KEPT: usize = 2;

/// An algorithm suite: which key agreement, AEAD and hash a bundle and an
/// initial message use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Suite {
    /// X25519 X3DH, Ed25519 signatures, AES-256-GCM, HKDF/HMAC-SHA256.
    /// Wire identifier `1`.
    X25519Aes256GcmSha256,
}

impl Suite {
    /// The one-byte wire identifier.
    pub fn id(self) -> u8 {
        match self {
            Self::X25519Aes256GcmSha256 => 1,
        }
    }

    /// The suite with wire identifier `id`, if known.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::X25519Aes256GcmSha256),
            _ => None,
        }
    }
}

/// The public half of a signed prekey, as uploaded to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPrekeyPublic {
    /// Identifier chosen by the owning device.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "byte_array")]
    pub key: [u8; 32],
    /// Ed25519 signature by the device identity over the id and key.
    #[serde(with = "byte_array")]
    pub signature: [u8; 64],
}

/// The public half of a one-time prekey, as uploaded to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePrekeyPublic {
    /// Identifier chosen by the owning device.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "byte_array")]
    pub key: [u8; 32],
}

/// What the server hands out so a peer can start a session with a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyBundle {
    /// Protocol version, currently 1.
    pub version: u8,
    /// Algorithm suite identifier, currently 1 (see [`Suite`]).
    pub suite: u8,
    /// The identity of the device.
    pub identity: DeviceIdentity,
    /// Its current signed prekey.
    pub signed_prekey: SignedPrekeyPublic,
    /// One unused one-time prekey, when the server still has one.
    pub one_time_prekey: Option<OneTimePrekeyPublic>,
}

/// The X3DH part of an initial message, sent in clear in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialHeader {
    /// Algorithm suite identifier.
    pub suite: u8,
    /// The initiator's identity.
    pub identity: DeviceIdentity,
    /// The initiator's ephemeral X25519 public key.
    #[serde(with = "byte_array")]
    pub ephemeral_key: [u8; 32],
    /// Id of the responder's signed prekey that was used.
    pub signed_prekey_id: u32,
    /// Id of the responder's one-time prekey that was used, if any.
    pub one_time_prekey_id: Option<u32>,
    /// Reserved for a post-quantum KEM ciphertext; empty in suite 1.
    pub kem_ciphertext: Vec<u8>,
}

/// Failures of the X3DH handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X3dhError {
    /// The bundle or header names a protocol version this code does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The bundle or header names an unknown algorithm suite.
    #[error("unsupported suite {0}")]
    UnsupportedSuite(u8),
    /// An identity binding or prekey signature did not verify.
    #[error("invalid identity: {0}")]
    Identity(#[from] IdentityError),
    /// A Diffie-Hellman result was not contributory (low-order key).
    #[error("non-contributory key agreement")]
    NonContributory,
    /// The signed prekey id is not (or no longer) held by this device.
    #[error("unknown signed prekey {0}")]
    UnknownSignedPrekey(u32),
    /// The one-time prekey id is unknown or already used.
    #[error("unknown or used one-time prekey {0}")]
    UnknownOneTimePrekey(u32),
    /// A suite-1 header carried a KEM ciphertext.
    #[error("unexpected kem ciphertext")]
    UnexpectedKemCiphertext,
}

/// The result of X3DH: the shared secret and the associated data that binds
/// both identities. Zeroized on drop.
pub struct X3dhOutput {
    pub(crate) secret: Key32,
    pub(crate) associated_data: [u8; 128],
}

impl X3dhOutput {
    /// The 32-byte shared secret `SK` (exposed for test vectors and interop
    /// checks; the session keeps it internally).
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret.0
    }

    /// Initiator identity key bytes, then responder identity key bytes.
    pub fn associated_data(&self) -> &[u8; 128] {
        &self.associated_data
    }
}

impl fmt::Debug for X3dhOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X3dhOutput(<redacted>)")
    }
}

/// The prekey secrets a device keeps to answer initial messages.
/// Zeroized on drop; serializes so a client can persist it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PrekeySecrets {
    signed: Vec<SignedPrekeySecret>,
    one_time: Vec<OneTimePrekeySecret>,
    next_id: u32,
}

#[derive(Clone, Serialize, Deserialize)]
struct SignedPrekeySecret {
    public: SignedPrekeyPublic,
    secret: Key32,
}

#[derive(Clone, Serialize, Deserialize)]
struct OneTimePrekeySecret {
    id: u32,
    secret: Key32,
}

impl PrekeySecrets {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a new signed prekey (32 random bytes from `rng`), keeps it and
    /// the previous one, and returns its public half for upload.
    pub fn rotate_signed_prekey<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &IdentityKeyPair,
    ) -> SignedPrekeyPublic {
        let secret = random_key(rng);
        let id = self.fresh_id();
        let key = x25519_public(&secret);
        let signature = identity.sign_context(SIG_PREKEY, &signed_prekey_message(id, &key));
        let public = SignedPrekeyPublic { id, key, signature };
        self.signed.push(SignedPrekeySecret { public, secret });
        if self.signed.len() > SIGNED_PREKEYS_KEPT {
            self.signed.remove(0);
        }
        public
    }

    /// Creates `count` one-time prekeys (32 random bytes each) and returns
    /// their public halves for upload.
    pub fn generate_one_time_prekeys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        count: usize,
    ) -> Vec<OneTimePrekeyPublic> {
        (0..count)
            .map(|_| {
                let secret = random_key(rng);
                let id = self.fresh_id();
                let key = x25519_public(&secret);
                self.one_time.push(OneTimePrekeySecret { id, secret });
                OneTimePrekeyPublic { id, key }
            })
            .collect()
    }

    /// The current signed prekey, if one was created.
    pub fn current_signed_prekey(&self) -> Option<SignedPrekeyPublic> {
        self.signed.last().map(|s| s.public)
    }

    /// Number of one-time prekeys not used yet.
    pub fn one_time_count(&self) -> usize {
        self.one_time.len()
    }

    /// A bundle as the server would build it: the current signed prekey and
    /// the first unused one-time prekey (not removed). `None` before the
    /// first [`rotate_signed_prekey`](Self::rotate_signed_prekey).
    pub fn bundle(&self, identity: &DeviceIdentity) -> Option<PrekeyBundle> {
        let signed_prekey = self.current_signed_prekey()?;
        let one_time_prekey = self.one_time.first().map(|k| OneTimePrekeyPublic {
            id: k.id,
            key: x25519_public(&k.secret),
        });
        Some(PrekeyBundle {
            version: VERSION,
            suite: Suite::X25519Aes256GcmSha256.id(),
            identity: *identity,
            signed_prekey,
            one_time_prekey,
        })
    }

    pub(crate) fn signed_secret(&self, id: u32) -> Option<&Key32> {
        self.signed
            .iter()
            .find(|s| s.public.id == id)
            .map(|s| &s.secret)
    }

    fn one_time_secret(&self, id: u32) -> Option<&Key32> {
        self.one_time.iter().find(|k| k.id == id).map(|k| &k.secret)
    }

    /// Removes a used one-time prekey so it never answers twice.
    pub(crate) fn consume_one_time(&mut self, id: u32) {
        self.one_time.retain(|k| k.id != id);
    }

    fn fresh_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

impl fmt::Debug for PrekeySecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrekeySecrets")
            .field("signed", &self.signed.len())
            .field("one_time", &self.one_time.len())
            .finish_non_exhaustive()
    }
}

impl PrekeyBundle {
    /// Checks version, suite, the identity binding and the prekey signature.
    ///
    /// # Errors
    /// [`X3dhError`] naming the first check that failed.
    pub fn verify(&self) -> Result<(), X3dhError> {
        if self.version != VERSION {
            return Err(X3dhError::UnsupportedVersion(self.version));
        }
        if Suite::from_id(self.suite).is_none() {
            return Err(X3dhError::UnsupportedSuite(self.suite));
        }
        self.identity.verify()?;
        let spk = &self.signed_prekey;
        self.identity.verify_context(
            SIG_PREKEY,
            &signed_prekey_message(spk.id, &spk.key),
            &spk.signature,
        )?;
        Ok(())
    }
}

/// The initiator's side: verifies `bundle`, draws a 32-byte ephemeral secret
/// from `rng`, and derives the shared secret.
///
/// # Errors
/// [`X3dhError`] when the bundle fails verification or a DH result is not
/// contributory.
pub fn x3dh_initiate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    me: &IdentityKeyPair,
    bundle: &PrekeyBundle,
) -> Result<(X3dhOutput, InitialHeader), X3dhError> {
    bundle.verify()?;
    let ephemeral = random_key(rng);
    let spk = &bundle.signed_prekey.key;

    let dh1 = dh(me.agreement_secret(), spk);
    let dh2 = dh(&ephemeral, &bundle.identity.agreement_key);
    let dh3 = dh(&ephemeral, spk);
    let dh4 = match &bundle.one_time_prekey {
        Some(opk) => Some(dh(&ephemeral, &opk.key).ok_or(X3dhError::NonContributory)?),
        None => None,
    };
    let (Some(dh1), Some(dh2), Some(dh3)) = (dh1, dh2, dh3) else {
        return Err(X3dhError::NonContributory);
    };

    let my_public = me.public();
    let output = derive(
        &[&dh1, &dh2, &dh3],
        dh4.as_ref(),
        &my_public,
        &bundle.identity,
    );
    let header = InitialHeader {
        suite: bundle.suite,
        identity: my_public,
        ephemeral_key: x25519_public(&ephemeral),
        signed_prekey_id: bundle.signed_prekey.id,
        one_time_prekey_id: bundle.one_time_prekey.map(|k| k.id),
        kem_ciphertext: Vec::new(),
    };
    Ok((output, header))
}

/// The responder's side: verifies the initiator identity and derives the
/// same shared secret. Does not consume the one-time prekey; the session
/// does that once the first message has opened.
///
/// # Errors
/// [`X3dhError`] when the header is unsupported, names unknown prekeys,
/// carries a bad identity, or a DH result is not contributory.
pub fn x3dh_respond(
    me: &IdentityKeyPair,
    prekeys: &PrekeySecrets,
    header: &InitialHeader,
) -> Result<X3dhOutput, X3dhError> {
    if Suite::from_id(header.suite).is_none() {
        return Err(X3dhError::UnsupportedSuite(header.suite));
    }
    if !header.kem_ciphertext.is_empty() {
        return Err(X3dhError::UnexpectedKemCiphertext);
    }
    header.identity.verify()?;
    let spk = prekeys
        .signed_secret(header.signed_prekey_id)
        .ok_or(X3dhError::UnknownSignedPrekey(header.signed_prekey_id))?;
    let opk = match header.one_time_prekey_id {
        Some(id) => Some(
            prekeys
                .one_time_secret(id)
                .ok_or(X3dhError::UnknownOneTimePrekey(id))?,
        ),
        None => None,
    };

    let theirs = &header.identity;
    let dh1 = dh(spk, &theirs.agreement_key);
    let dh2 = dh(me.agreement_secret(), &header.ephemeral_key);
    let dh3 = dh(spk, &header.ephemeral_key);
    let dh4 = match opk {
        Some(secret) => Some(dh(secret, &header.ephemeral_key).ok_or(X3dhError::NonContributory)?),
        None => None,
    };
    let (Some(dh1), Some(dh2), Some(dh3)) = (dh1, dh2, dh3) else {
        return Err(X3dhError::NonContributory);
    };
    Ok(derive(
        &[&dh1, &dh2, &dh3],
        dh4.as_ref(),
        theirs,
        &me.public(),
    ))
}

/// `SK = HKDF(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4],
/// info = "courier/v1/x3dh")`.
fn derive(
    dhs: &[&Key32; 3],
    dh4: Option<&Key32>,
    initiator: &DeviceIdentity,
    responder: &DeviceIdentity,
) -> X3dhOutput {
    let mut ikm = IkmBuffer::default();
    ikm.bytes[..32].fill(0xff);
    let mut len = 32;
    for part in dhs.iter().copied().chain(dh4) {
        ikm.bytes[len..len + 32].copy_from_slice(&part.0);
        len += 32;
    }
    let mut secret = Key32([0; 32]);
    hkdf(&[], &ikm.bytes[..len], INFO_X3DH, &mut secret.0);

    let mut associated_data = [0u8; 128];
    associated_data[..64].copy_from_slice(&initiator.key_bytes());
    associated_data[64..].copy_from_slice(&responder.key_bytes());
    X3dhOutput {
        secret,
        associated_data,
    }
}

/// The signed prekey signature covers `id (u32 BE) || key`.
fn signed_prekey_message(id: u32, key: &[u8; 32]) -> [u8; 36] {
    let mut message = [0u8; 36];
    message[..4].copy_from_slice(&id.to_be_bytes());
    message[4..].copy_from_slice(key);
    message
}

pub(crate) fn random_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Key32 {
    let mut key = Key32([0; 32]);
    rng.fill_bytes(&mut key.0);
    key
}

/// Scratch space for the X3DH input keying material, zeroized on drop.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct IkmBuffer {
    bytes: [u8; 160],
}

impl Default for IkmBuffer {
    fn default() -> Self {
        Self { bytes: [0; 160] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (IdentityKeyPair, IdentityKeyPair, PrekeySecrets) {
        let mut rng = rand::rng();
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let mut prekeys = PrekeySecrets::new();
        prekeys.rotate_signed_prekey(&mut rng, &bob);
        prekeys.generate_one_time_prekeys(&mut rng, 2);
        (alice, bob, prekeys)
    }

    #[test]
    fn both_sides_derive_the_same_secret_and_associated_data() {
        let (alice, bob, prekeys) = setup();
        let bundle = prekeys.bundle(&bob.public()).unwrap();
        let (a, header) = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap();
        let b = x3dh_respond(&bob, &prekeys, &header).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
        assert_eq!(a.associated_data(), b.associated_data());
        assert_eq!(
            header.one_time_prekey_id,
            bundle.one_time_prekey.map(|k| k.id)
        );
    }

    #[test]
    fn works_without_one_time_prekey() {
        let (alice, bob, prekeys) = setup();
        let mut bundle = prekeys.bundle(&bob.public()).unwrap();
        bundle.one_time_prekey = None;
        let (a, header) = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap();
        let b = x3dh_respond(&bob, &prekeys, &header).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
    }

    #[test]
    fn rejects_bad_prekey_signature() {
        let (alice, bob, prekeys) = setup();
        let mut bundle = prekeys.bundle(&bob.public()).unwrap();
        bundle.signed_prekey.id += 1;
        let err = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap_err();
        assert_eq!(err, X3dhError::Identity(IdentityError::BadSignature));
    }

    #[test]
    fn rejects_low_order_prekey() {
        let (alice, bob, prekeys) = setup();
        let mut bundle = prekeys.bundle(&bob.public()).unwrap();
        let mut opk = bundle.one_time_prekey.unwrap();
        opk.key = [0; 32];
        bundle.one_time_prekey = Some(opk);
        let err = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap_err();
        assert_eq!(err, X3dhError::NonContributory);
    }

    #[test]
    fn rejects_unknown_version_and_suite() {
        let (alice, bob, prekeys) = setup();
        let mut bundle = prekeys.bundle(&bob.public()).unwrap();
        bundle.suite = 9;
        let err = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap_err();
        assert_eq!(err, X3dhError::UnsupportedSuite(9));
        bundle.version = 2;
        let err = x3dh_initiate(&mut rand::rng(), &alice, &bundle).unwrap_err();
        assert_eq!(err, X3dhError::UnsupportedVersion(2));
    }
}
