//! Thin wrappers over the RustCrypto primitives: checked X25519, HKDF, HMAC
//! and AES-256-GCM, plus the secret byte type every other file stores.
//!
//! Nothing here implements a primitive; it only fixes how the crates are
//! called (see `docs/protocol.md`, section 7.2).

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Protocol version carried in every envelope, bundle and distribution.
pub(crate) const VERSION: u8 = 1;

/// HKDF `info` for the X3DH shared secret.
pub(crate) const INFO_X3DH: &[u8] = b"courier/v1/x3dh";
/// HKDF `info` for a Double Ratchet root-chain step.
pub(crate) const INFO_ROOT: &[u8] = b"courier/v1/ratchet/root";
/// HKDF `info` expanding a pairwise message key into AES key and nonce.
pub(crate) const INFO_MESSAGE: &[u8] = b"courier/v1/ratchet/message";
/// HKDF `info` expanding a group message key into AES key and nonce.
pub(crate) const INFO_GROUP: &[u8] = b"courier/v1/group/message";
/// HKDF `info` expanding a media key into AES key and nonce.
pub(crate) const INFO_MEDIA: &[u8] = b"courier/v1/media";

/// Signature context for the identity binding (Ed25519 over X25519 key).
pub(crate) const SIG_IDENTITY: &[u8] = b"courier/v1/identity-binding\0";
/// Signature context for a signed prekey.
pub(crate) const SIG_PREKEY: &[u8] = b"courier/v1/signed-prekey\0";
/// Signature context for [`crate::crypto::IdentityKeyPair::sign`].
pub(crate) const SIG_GENERAL: &[u8] = b"courier/v1/sign\0";

/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// 32 secret bytes, zeroized on drop, printed as `<redacted>`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub(crate) struct Key32(#[serde(with = "byte_array")] pub(crate) [u8; 32]);

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An AES-256-GCM key and its 96-bit nonce, derived together from one key.
pub(crate) struct AeadKey {
    key: [u8; 32],
    nonce: [u8; 12],
}

impl Drop for AeadKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.nonce.zeroize();
    }
}

impl AeadKey {
    /// Expands `secret` with HKDF-SHA256 (zero salt) and `info` into 44 bytes:
    /// the AES key, then the nonce.
    pub(crate) fn derive(secret: &Key32, info: &[u8]) -> Self {
        let mut okm = [0u8; 44];
        hkdf(&[], &secret.0, info, &mut okm);
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        key.copy_from_slice(&okm[..32]);
        nonce.copy_from_slice(&okm[32..]);
        okm.zeroize();
        Self { key, nonce }
    }

    /// Appends the ciphertext and tag of `plaintext` to `out`.
    pub(crate) fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let cipher = Aes256Gcm::new(&self.key.into());
        let nonce = Nonce::from(self.nonce);
        let tag = cipher
            .encrypt_inout_detached(&nonce, aad, (&mut out[start..]).into())
            .expect("aes-gcm accepts any message below 64 GiB; frames are far smaller");
        out.extend_from_slice(&tag);
    }

    /// Decrypts `ciphertext` (with its tag appended); `None` when the tag fails.
    pub(crate) fn open(&self, aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let body_len = ciphertext.len().checked_sub(TAG_LEN)?;
        let (body, tag) = ciphertext.split_at(body_len);
        let mut buffer = body.to_vec();
        let cipher = Aes256Gcm::new(&self.key.into());
        let nonce = Nonce::from(self.nonce);
        let tag = aes_gcm::Tag::try_from(tag).ok()?;
        match cipher.decrypt_inout_detached(&nonce, aad, (&mut buffer[..]).into(), &tag) {
            Ok(()) => Some(buffer),
            Err(_) => {
                buffer.zeroize();
                None
            }
        }
    }
}

/// X25519 of `secret` and `public`, rejected when the result is not
/// contributory (a low-order or all-zero public key forces a known output).
pub(crate) fn dh(secret: &Key32, public: &[u8; 32]) -> Option<Key32> {
    let secret = StaticSecret::from(secret.0);
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return None;
    }
    Some(Key32(shared.to_bytes()))
}

/// The X25519 public key of `secret`.
pub(crate) fn x25519_public(secret: &Key32) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(secret.0)).to_bytes()
}

/// HKDF-SHA256 with `salt` (empty means 32 zero bytes), filling `out`.
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out)
        .expect("every output here is at most 64 bytes, far below 255 * 32");
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A symmetric chain (Double Ratchet or sender key): a chain key and the
/// index of the next message key it yields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Chain {
    pub(crate) key: Key32,
    pub(crate) index: u32,
}

impl Chain {
    /// The message key at `self.index` and the chain key after it:
    /// `mk = HMAC(ck, 0x01)`, `ck' = HMAC(ck, 0x02)`.
    pub(crate) fn step(key: &Key32) -> (Key32, Key32) {
        (Key32(hmac(&key.0, &[1])), Key32(hmac(&key.0, &[2])))
    }

    /// Advances in place and returns the message key for the old index, or
    /// `None` when the index space is exhausted.
    pub(crate) fn advance(&mut self) -> Option<(u32, Key32)> {
        let next_index = self.index.checked_add(1)?;
        let (message_key, next) = Self::step(&self.key);
        let index = self.index;
        self.key = next;
        self.index = next_index;
        Some((index, message_key))
    }
}

/// A message key kept for a message that has not arrived yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SkippedKey {
    #[serde(with = "byte_array")]
    pub(crate) chain_id: [u8; 32],
    pub(crate) index: u32,
    pub(crate) key: Key32,
}

/// Serde for fixed-size byte arrays as one byte string (MessagePack `bin`),
/// accepting a sequence too so JSON round-trips.
pub(crate) mod byte_array {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        deserializer.deserialize_bytes(ArrayVisitor::<N>)
    }

    struct ArrayVisitor<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
        type Value = [u8; N];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = [0u8; N];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(de::Error::invalid_length(N + 1, &self));
            }
            Ok(out)
        }
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }
}
