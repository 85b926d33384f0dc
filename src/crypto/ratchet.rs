//! The Double Ratchet: root chain, sending and receiving chains, skipped
//! message keys (`docs/protocol.md`, section 7.4).
//!
//! Every operation that can fail works on values it owns and commits to
//! `self` only after the AEAD tag verified, so a failed open leaves the
//! state exactly as it was.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::primitives::{
    Chain, INFO_ROOT, Key32, Reader, SkippedKey, byte_array, dh, hkdf, x25519_public,
};
use super::x3dh::{X3dhError, random_key};

/// Most message keys one incoming message may make a chain skip.
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys a session stores at once.
pub const MAX_STORED_SKIPPED: usize = 2000;
/// How many earlier remote ratchet keys are remembered to name replays.
const OLD_REMOTES_KEPT: usize = 16;

/// Length of the ratchet header on the wire.
pub(crate) const HEADER_LEN: usize = 40;

/// Failures to open a message. A failed open never changes the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The bytes are not an envelope (truncated, unknown kind, short body).
    #[error("malformed envelope")]
    Malformed,
    /// The envelope names a protocol version this code does not speak.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// The X3DH part of an initial message failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] X3dhError),
    /// `Session::accept` was given a message that is not an initial message.
    #[error("not an initial message")]
    NotInitial,
    /// An initial message that does not belong to this session.
    #[error("initial message of another session")]
    UnexpectedInitial,
    /// The message key was already used (or discarded): a replay.
    #[error("replayed message")]
    Replay,
    /// Authentication failed: header, body or associated data was altered,
    /// or the message was not made for this session.
    #[error("message failed authentication")]
    Tampered,
    /// The message would skip more keys in one chain than allowed.
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
    /// The peer's ratchet key is low-order.
    #[error("non-contributory ratchet key")]
    NonContributory,
}

/// Failures to seal a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The chain has used all 2^32 message numbers; start a new session.
    #[error("sending chain exhausted")]
    ChainExhausted,
}

/// The clear header of a ratchet message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) ratchet_key: [u8; 32],
    pub(crate) previous_count: u32,
    pub(crate) index: u32,
}

impl Header {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ratchet_key);
        out.extend_from_slice(&self.previous_count.to_be_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
    }

    pub(crate) fn decode(reader: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            ratchet_key: reader.array()?,
            previous_count: reader.u32()?,
            index: reader.u32()?,
        })
    }
}

/// A remote ratchet public key seen before (public, kept to name replays).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldRemote(#[serde(with = "byte_array")] [u8; 32]);

/// Double Ratchet state of one side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RatchetState {
    root: Key32,
    self_secret: Key32,
    #[serde(with = "byte_array")]
    self_public: [u8; 32],
    #[serde(with = "byte_array")]
    remote: [u8; 32],
    send: Chain,
    recv: Option<Chain>,
    previous_send_count: u32,
    skipped: Vec<SkippedKey>,
    old_remotes: Vec<OldRemote>,
}

impl RatchetState {
    /// Initiator: a fresh ratchet key against the responder's signed prekey.
    pub(crate) fn initiator<R: CryptoRng + ?Sized>(
        rng: &mut R,
        shared: &Key32,
        their_prekey: &[u8; 32],
    ) -> Result<Self, X3dhError> {
        let self_secret = random_key(rng);
        let dh_out = dh(&self_secret, their_prekey).ok_or(X3dhError::NonContributory)?;
        let (root, send_key) = kdf_root(shared, &dh_out);
        Ok(Self {
            root,
            self_public: x25519_public(&self_secret),
            self_secret,
            remote: *their_prekey,
            send: Chain {
                key: send_key,
                index: 0,
            },
            recv: None,
            previous_send_count: 0,
            skipped: Vec::new(),
            old_remotes: Vec::new(),
        })
    }

    /// Responder: the signed prekey is the first ratchet key; the first
    /// message's ratchet key immediately drives one DH step.
    pub(crate) fn responder<R: CryptoRng + ?Sized>(
        rng: &mut R,
        shared: &Key32,
        prekey_secret: &Key32,
        their_ratchet_key: &[u8; 32],
    ) -> Result<Self, OpenError> {
        let mut state = Self {
            root: shared.clone(),
            self_public: x25519_public(prekey_secret),
            self_secret: prekey_secret.clone(),
            remote: *their_ratchet_key,
            send: Chain {
                key: Key32([0; 32]),
                index: 0,
            },
            recv: None,
            previous_send_count: 0,
            skipped: Vec::new(),
            old_remotes: Vec::new(),
        };
        state.dh_step(rng, their_ratchet_key)?;
        Ok(state)
    }

    /// Advances the sending chain and returns the header and message key to
    /// use. The state is advanced before the caller can encrypt anything.
    pub(crate) fn next_send(&mut self) -> Result<(Header, Key32), SealError> {
        let (index, key) = self.send.advance().ok_or(SealError::ChainExhausted)?;
        let header = Header {
            ratchet_key: self.self_public,
            previous_count: self.previous_send_count,
            index,
        };
        Ok((header, key))
    }

    /// Finds the message key for `header`, lets `decrypt` try it, and commits
    /// the state change only when `decrypt` succeeds.
    pub(crate) fn open<R, F>(
        &mut self,
        rng: &mut R,
        header: &Header,
        decrypt: F,
    ) -> Result<Vec<u8>, OpenError>
    where
        R: CryptoRng + ?Sized,
        F: FnOnce(&Key32) -> Option<Vec<u8>>,
    {
        if let Some(pos) = self
            .skipped
            .iter()
            .position(|s| s.chain_id == header.ratchet_key && s.index == header.index)
        {
            let plaintext = decrypt(&self.skipped[pos].key).ok_or(OpenError::Tampered)?;
            self.skipped.swap_remove(pos);
            return Ok(plaintext);
        }

        if header.ratchet_key == self.remote {
            let Some(recv) = &self.recv else {
                return Err(OpenError::Tampered);
            };
            if header.index < recv.index {
                return Err(OpenError::Replay);
            }
            let (next, mk, new_skipped) = self.walk(recv, header.ratchet_key, header.index)?;
            let plaintext = decrypt(&mk).ok_or(OpenError::Tampered)?;
            self.skipped.extend(new_skipped);
            self.recv = Some(next);
            return Ok(plaintext);
        }

        if self.old_remotes.iter().any(|r| r.0 == header.ratchet_key) {
            return Err(OpenError::Replay);
        }

        let mut next = self.clone();
        let plaintext = next.open_new_chain(rng, header, decrypt)?;
        *self = next;
        Ok(plaintext)
    }

    /// A message under a new remote ratchet key: store what is left of the
    /// current receiving chain, step the DH ratchet, then walk the new chain.
    fn open_new_chain<R, F>(
        &mut self,
        rng: &mut R,
        header: &Header,
        decrypt: F,
    ) -> Result<Vec<u8>, OpenError>
    where
        R: CryptoRng + ?Sized,
        F: FnOnce(&Key32) -> Option<Vec<u8>>,
    {
        if let Some(recv) = self.recv.take() {
            let (_, tail) = self.skip_keys(&recv, self.remote, header.previous_count)?;
            self.skipped.extend(tail);
        }
        self.old_remotes.push(OldRemote(self.remote));
        if self.old_remotes.len() > OLD_REMOTES_KEPT {
            self.old_remotes.remove(0);
        }
        self.dh_step(rng, &header.ratchet_key)?;

        let recv = self.recv.take().ok_or(OpenError::Tampered)?;
        let (next, mk, new_skipped) = self.walk(&recv, header.ratchet_key, header.index)?;
        let plaintext = decrypt(&mk).ok_or(OpenError::Tampered)?;
        self.skipped.extend(new_skipped);
        self.recv = Some(next);
        Ok(plaintext)
    }

    /// Walks `chain` up to `target`, returning the chain after `target`, the
    /// key at `target` and the keys skipped on the way. Nothing in `self`
    /// changes.
    fn walk(
        &self,
        chain: &Chain,
        chain_id: [u8; 32],
        target: u32,
    ) -> Result<(Chain, Key32, Vec<SkippedKey>), OpenError> {
        let (key, skipped) = self.skip_keys(chain, chain_id, target)?;
        let (mk, next) = Chain::step(&key);
        let after = Chain {
            key: next,
            index: target.saturating_add(1),
        };
        Ok((after, mk, skipped))
    }

    /// The message keys of `chain` from its index up to (not including)
    /// `until`, and the chain key at `until`, within both skip bounds.
    fn skip_keys(
        &self,
        chain: &Chain,
        chain_id: [u8; 32],
        until: u32,
    ) -> Result<(Key32, Vec<SkippedKey>), OpenError> {
        let count = until.saturating_sub(chain.index);
        if count > MAX_SKIP {
            return Err(OpenError::TooManySkipped {
                skipped: count,
                limit: MAX_SKIP,
            });
        }
        if self.skipped.len() + count as usize > MAX_STORED_SKIPPED {
            return Err(OpenError::SkippedStoreFull {
                limit: MAX_STORED_SKIPPED,
            });
        }
        let mut key = chain.key.clone();
        let mut skipped = Vec::with_capacity(count as usize);
        for index in chain.index..until {
            let (mk, next) = Chain::step(&key);
            skipped.push(SkippedKey {
                chain_id,
                index,
                key: mk,
            });
            key = next;
        }
        Ok((key, skipped))
    }

    /// One DH ratchet step: a receiving chain from our current key and
    /// theirs, then a fresh key of ours and a sending chain from it.
    fn dh_step<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        their_key: &[u8; 32],
    ) -> Result<(), OpenError> {
        let dh_recv = dh(&self.self_secret, their_key).ok_or(OpenError::NonContributory)?;
        let (root, recv_key) = kdf_root(&self.root, &dh_recv);

        let self_secret = random_key(rng);
        let dh_send = dh(&self_secret, their_key).ok_or(OpenError::NonContributory)?;
        let (root, send_key) = kdf_root(&root, &dh_send);

        self.previous_send_count = self.send.index;
        self.root = root;
        self.self_public = x25519_public(&self_secret);
        self.self_secret = self_secret;
        self.remote = *their_key;
        self.recv = Some(Chain {
            key: recv_key,
            index: 0,
        });
        self.send = Chain {
            key: send_key,
            index: 0,
        };
        Ok(())
    }
}

/// `(RK', CK) = HKDF(salt = RK, ikm = DH output, info = "courier/v1/ratchet/root")`.
fn kdf_root(root: &Key32, dh_out: &Key32) -> (Key32, Key32) {
    let mut okm = [0u8; 64];
    hkdf(&root.0, &dh_out.0, INFO_ROOT, &mut okm);
    let mut root = Key32([0; 32]);
    let mut chain = Key32([0; 32]);
    root.0.copy_from_slice(&okm[..32]);
    chain.0.copy_from_slice(&okm[32..]);
    zeroize::Zeroize::zeroize(&mut okm);
    (root, chain)
}
