//! Sender keys for groups: each member seals a group message once under its
//! own symmetric chain and signs it with its group signing key
//! (`docs/protocol.md`, section 7.6).
//!
//! A member sends its [`SenderKeyDistribution`] to every other member over
//! the pairwise sessions. When membership changes, every remaining member
//! calls [`GroupSender::rotate`] and distributes the new key to the new
//! member list; receivers replace their [`GroupReceiver`], and messages under
//! the old key id are rejected from then on.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::primitives::{AeadKey, Chain, INFO_GROUP, Key32, Reader, SkippedKey, TAG_LEN, VERSION};
use super::ratchet::{MAX_SKIP, MAX_STORED_SKIPPED, SealError};
use super::x3dh::random_key;

/// Kind byte of a group message.
const KIND_GROUP: u8 = 0x03;
/// Kind byte of a sender key distribution.
const KIND_DISTRIBUTION: u8 = 0x10;
/// Version, kind, key id and iteration.
const GROUP_HEADER_LEN: usize = 10;
/// Length of an encoded distribution.
const DISTRIBUTION_LEN: usize = 2 + 4 + 4 + 32 + 32;
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// Failures of sender-key operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The bytes are not a group message or distribution.
    #[error("malformed group message")]
    Malformed,
    /// An unknown protocol version.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The message is under another sender key (an old one after rotation,
    /// or one not distributed yet).
    #[error("unknown sender key {got} (current {current})")]
    UnknownSenderKey {
        /// Key id of the receiver's current sender key.
        current: u32,
        /// Key id in the message.
        got: u32,
    },
    /// The distribution carries an invalid Ed25519 key.
    #[error("invalid signing key")]
    InvalidSigningKey,
    /// The Ed25519 signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The message key was already used (or discarded): a replay.
    #[error("replayed message")]
    Replay,
    /// The signature verified but decryption failed.
    #[error("message failed authentication")]
    Tampered,
    /// The message would skip more keys than allowed.
    #[error("message skips {skipped} keys, limit {limit}")]
    TooManySkipped {
        /// Keys the message would skip.
        skipped: u32,
        /// The limit ([`MAX_SKIP`]).
        limit: u32,
    },
    /// Storing the skipped keys would exceed the store bound.
    #[error("skipped-key store full (limit {limit})")]
    SkippedStoreFull {
        /// The limit ([`MAX_STORED_SKIPPED`]).
        limit: usize,
    },
}

/// This device's sender key in one group. Zeroized on drop. Not `Clone`:
/// two copies sealing would reuse message keys.
#[derive(Serialize, Deserialize)]
pub struct GroupSender {
    key_id: u32,
    chain: Chain,
    signing: SigningKey,
}

/// A sender key as handed to other members (contains the secret chain key:
/// send it only inside pairwise sessions).
#[derive(Clone, Serialize, Deserialize)]
pub struct SenderKeyDistribution {
    key_id: u32,
    chain: Chain,
    signing_key: VerifyingKey,
}

/// What a member keeps to open one other member's group messages.
#[derive(Clone, Serialize, Deserialize)]
pub struct GroupReceiver {
    key_id: u32,
    chain: Chain,
    signing_key: VerifyingKey,
    skipped: Vec<SkippedKey>,
}

impl GroupSender {
    /// A fresh sender key: 4 bytes of key id, 32 bytes of chain key and 32
    /// bytes of Ed25519 seed drawn from `rng`, in that order.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 4];
        rng.fill_bytes(&mut id);
        let chain_key = random_key(rng);
        let seed = random_key(rng);
        Self {
            key_id: u32::from_be_bytes(id),
            chain: Chain {
                key: chain_key,
                index: 0,
            },
            signing: SigningKey::from_bytes(&seed.0),
        }
    }

    /// Replaces the sender key with a fresh one (with a different key id);
    /// call when the group's membership changes and distribute the result.
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) {
        let old = self.key_id;
        *self = Self::generate(rng);
        if self.key_id == old {
            self.key_id = old.wrapping_add(1);
        }
    }

    /// The distribution message for the current key and iteration: new
    /// recipients can open messages from this point on, not earlier ones.
    pub fn distribution(&self) -> SenderKeyDistribution {
        SenderKeyDistribution {
            key_id: self.key_id,
            chain: self.chain.clone(),
            signing_key: self.signing.verifying_key(),
        }
    }

    /// The current key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Seals and signs one group message. The chain advances before the
    /// ciphertext is returned.
    ///
    /// # Errors
    /// [`SealError::ChainExhausted`] after 2^32 messages; rotate then.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let (iteration, message_key) = self.chain.advance().ok_or(SealError::ChainExhausted)?;
        let mut out =
            Vec::with_capacity(GROUP_HEADER_LEN + plaintext.len() + TAG_LEN + SIGNATURE_LEN);
        out.push(VERSION);
        out.push(KIND_GROUP);
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&iteration.to_be_bytes());

        let aad = group_aad(&out, &self.signing.verifying_key());
        AeadKey::derive(&message_key, INFO_GROUP).seal_into(&aad, plaintext, &mut out);
        let signature = self.signing.sign(&out);
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }
}

impl SenderKeyDistribution {
    /// The key id this distribution installs.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The fixed 74-byte encoding (section 7.6).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DISTRIBUTION_LEN);
        out.push(VERSION);
        out.push(KIND_DISTRIBUTION);
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.chain.index.to_be_bytes());
        out.extend_from_slice(&self.chain.key.0);
        out.extend_from_slice(self.signing_key.as_bytes());
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output.
    ///
    /// # Errors
    /// [`GroupError`] for a wrong length, version, kind or signing key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GroupError> {
        if bytes.len() != DISTRIBUTION_LEN {
            return Err(GroupError::Malformed);
        }
        let mut reader = Reader::new(bytes);
        let version = reader.u8().ok_or(GroupError::Malformed)?;
        if version != VERSION {
            return Err(GroupError::UnsupportedVersion(version));
        }
        if reader.u8() != Some(KIND_DISTRIBUTION) {
            return Err(GroupError::Malformed);
        }
        let key_id = reader.u32().ok_or(GroupError::Malformed)?;
        let index = reader.u32().ok_or(GroupError::Malformed)?;
        let key = Key32(reader.array().ok_or(GroupError::Malformed)?);
        let signing: [u8; 32] = reader.array().ok_or(GroupError::Malformed)?;
        let signing_key =
            VerifyingKey::from_bytes(&signing).map_err(|_| GroupError::InvalidSigningKey)?;
        Ok(Self {
            key_id,
            chain: Chain { key, index },
            signing_key,
        })
    }
}

impl GroupReceiver {
    /// Installs a member's distributed sender key. After a rotation, replace
    /// the old receiver with a new one; the old key id is then rejected.
    pub fn new(distribution: &SenderKeyDistribution) -> Self {
        Self {
            key_id: distribution.key_id,
            chain: distribution.chain.clone(),
            signing_key: distribution.signing_key,
            skipped: Vec::new(),
        }
    }

    /// The key id this receiver accepts.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Verifies the signature, then opens the message. The receiver is
    /// unchanged on any error.
    ///
    /// # Errors
    /// [`GroupError`] naming the check that failed.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Vec<u8>, GroupError> {
        let min_len = GROUP_HEADER_LEN + TAG_LEN + SIGNATURE_LEN;
        if bytes.len() < min_len {
            return Err(GroupError::Malformed);
        }
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let mut reader = Reader::new(signed);
        let version = reader.u8().ok_or(GroupError::Malformed)?;
        if version != VERSION {
            return Err(GroupError::UnsupportedVersion(version));
        }
        if reader.u8() != Some(KIND_GROUP) {
            return Err(GroupError::Malformed);
        }
        let key_id = reader.u32().ok_or(GroupError::Malformed)?;
        let iteration = reader.u32().ok_or(GroupError::Malformed)?;
        if key_id != self.key_id {
            return Err(GroupError::UnknownSenderKey {
                current: self.key_id,
                got: key_id,
            });
        }
        let signature = Signature::from_slice(signature).map_err(|_| GroupError::Malformed)?;
        self.signing_key
            .verify_strict(signed, &signature)
            .map_err(|_| GroupError::BadSignature)?;

        let aad = group_aad(&signed[..GROUP_HEADER_LEN], &self.signing_key);
        let ciphertext = reader.rest();
        let decrypt = |mk: &Key32| AeadKey::derive(mk, INFO_GROUP).open(&aad, ciphertext);

        if let Some(pos) = self.skipped.iter().position(|s| s.index == iteration) {
            let plaintext = decrypt(&self.skipped[pos].key).ok_or(GroupError::Tampered)?;
            self.skipped.swap_remove(pos);
            return Ok(plaintext);
        }
        if iteration < self.chain.index {
            return Err(GroupError::Replay);
        }
        let (next, message_key, skipped) = self.walk(iteration)?;
        let plaintext = decrypt(&message_key).ok_or(GroupError::Tampered)?;
        self.skipped.extend(skipped);
        self.chain = next;
        Ok(plaintext)
    }

    /// The chain after `target`, the key at `target` and the keys skipped
    /// on the way, within both bounds; `self` is not changed.
    fn walk(&self, target: u32) -> Result<(Chain, Key32, Vec<SkippedKey>), GroupError> {
        let count = target - self.chain.index;
        if count > MAX_SKIP {
            return Err(GroupError::TooManySkipped {
                skipped: count,
                limit: MAX_SKIP,
            });
        }
        if self.skipped.len() + count as usize > MAX_STORED_SKIPPED {
            return Err(GroupError::SkippedStoreFull {
                limit: MAX_STORED_SKIPPED,
            });
        }
        let mut key = self.chain.key.clone();
        let mut skipped = Vec::with_capacity(count as usize);
        for index in self.chain.index..target {
            let (mk, next) = Chain::step(&key);
            skipped.push(SkippedKey {
                chain_id: [0; 32],
                index,
                key: mk,
            });
            key = next;
        }
        let (message_key, next) = Chain::step(&key);
        let chain = Chain {
            key: next,
            index: target.saturating_add(1),
        };
        Ok((chain, message_key, skipped))
    }
}

/// AEAD associated data of a group message: its 10-byte header, then the
/// sender's group signing key.
fn group_aad(header: &[u8], signing_key: &VerifyingKey) -> Vec<u8> {
    let mut aad = Vec::with_capacity(GROUP_HEADER_LEN + 32);
    aad.extend_from_slice(&header[..GROUP_HEADER_LEN]);
    aad.extend_from_slice(signing_key.as_bytes());
    aad
}

impl fmt::Debug for GroupSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSender")
            .field("key_id", &self.key_id)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for SenderKeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeyDistribution")
            .field("key_id", &self.key_id)
            .field("chain_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for GroupReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupReceiver")
            .field("key_id", &self.key_id)
            .field("secrets", &"<redacted>")
            .finish()
    }
}
