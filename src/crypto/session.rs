//! Pairwise sessions: X3DH to start, the Double Ratchet after, and the
//! versioned envelope that carries both (`docs/protocol.md`, section 7.5).

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::identity::{DeviceIdentity, IdentityKeyPair};
use super::primitives::{AeadKey, INFO_MESSAGE, Reader, TAG_LEN, VERSION, byte_array};
use super::ratchet::{HEADER_LEN, Header, OpenError, RatchetState, SealError};
use super::x3dh::{
    InitialHeader, PrekeyBundle, PrekeySecrets, X3dhError, x3dh_initiate, x3dh_respond,
};

/// Envelope kind byte of an initial (prekey) message.
const KIND_INITIAL: u8 = 0x01;
/// Envelope kind byte of a ratchet message.
const KIND_RATCHET: u8 = 0x02;
/// Length of the X3DH part of an initial message without KEM ciphertext.
const INITIAL_HEADER_LEN: usize = 1 + 64 + 64 + 32 + 4 + 1 + 4 + 2;

/// Which kind of envelope a byte string holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// An initial message: open with [`Session::accept`] when no session
    /// with the sender exists yet.
    Initial,
    /// A ratchet message of an existing session.
    Ratchet,
}

impl EnvelopeKind {
    /// The kind of `bytes`, judged from its first two bytes only.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [VERSION, KIND_INITIAL, ..] => Some(Self::Initial),
            [VERSION, KIND_RATCHET, ..] => Some(Self::Ratchet),
            _ => None,
        }
    }
}

/// An end-to-end session with one peer device.
///
/// `seal` advances the sending chain before it returns the ciphertext:
/// persist the session (it implements `Serialize`) after every `seal` and
/// before the bytes leave the device, so a restored session never seals
/// twice under one message key. Restoring a snapshot taken *before* a seal
/// whose ciphertext was sent would reuse that key; never do that. For the
/// same reason `Session` is not `Clone`: two copies sealing would reuse keys.
#[derive(Serialize, Deserialize)]
pub struct Session {
    #[serde(with = "byte_array")]
    associated_data: [u8; 128],
    peer: DeviceIdentity,
    initiator: bool,
    #[serde(with = "byte_array")]
    initial_ephemeral: [u8; 32],
    pending_initial: Option<InitialHeader>,
    ratchet: RatchetState,
}

impl Session {
    /// Starts a session from the peer's prekey bundle and seals the first
    /// message. Until the peer answers, every sealed message is an initial
    /// message, so any one of them can start the session on the other side.
    ///
    /// # Errors
    /// [`X3dhError`] when the bundle fails verification or a key agreement
    /// is not contributory.
    pub fn initiate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        me: &IdentityKeyPair,
        bundle: &PrekeyBundle,
        plaintext: &[u8],
    ) -> Result<(Self, Vec<u8>), X3dhError> {
        let (x3dh, header) = x3dh_initiate(rng, me, bundle)?;
        let ratchet = RatchetState::initiator(rng, &x3dh.secret, &bundle.signed_prekey.key)?;
        let mut session = Self {
            associated_data: x3dh.associated_data,
            peer: bundle.identity,
            initiator: true,
            initial_ephemeral: header.ephemeral_key,
            pending_initial: Some(header),
            ratchet,
        };
        let first = session
            .seal(plaintext)
            .expect("a chain made just above starts at index 0 and cannot be exhausted");
        Ok((session, first))
    }

    /// Answers an initial message: runs X3DH with the prekeys it names,
    /// opens it, and consumes the one-time prekey only when it opened.
    ///
    /// # Errors
    /// [`OpenError::NotInitial`] for a ratchet message,
    /// [`OpenError::Handshake`] when X3DH fails, or any error of opening.
    pub fn accept<R: CryptoRng + ?Sized>(
        rng: &mut R,
        me: &IdentityKeyPair,
        prekeys: &mut PrekeySecrets,
        bytes: &[u8],
    ) -> Result<(Self, Vec<u8>), OpenError> {
        let envelope = Envelope::parse(bytes)?;
        let Some(initial) = envelope.initial else {
            return Err(OpenError::NotInitial);
        };
        let x3dh = x3dh_respond(me, prekeys, &initial)?;
        let prekey = prekeys
            .signed_secret(initial.signed_prekey_id)
            .ok_or(X3dhError::UnknownSignedPrekey(initial.signed_prekey_id))?;
        let mut ratchet =
            RatchetState::responder(rng, &x3dh.secret, prekey, &envelope.header.ratchet_key)?;

        let aad = aad(&x3dh.associated_data, envelope.prefix);
        let plaintext = ratchet.open(rng, &envelope.header, |mk| {
            AeadKey::derive(mk, INFO_MESSAGE).open(&aad, envelope.ciphertext)
        })?;
        if let Some(id) = initial.one_time_prekey_id {
            prekeys.consume_one_time(id);
        }
        let session = Self {
            associated_data: x3dh.associated_data,
            peer: initial.identity,
            initiator: false,
            initial_ephemeral: initial.ephemeral_key,
            pending_initial: None,
            ratchet,
        };
        Ok((session, plaintext))
    }

    /// Seals `plaintext`. The session is advanced before this returns.
    ///
    /// # Errors
    /// [`SealError::ChainExhausted`] after 2^32 messages in one chain.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let (header, message_key) = self.ratchet.next_send()?;
        let initial_len = self
            .pending_initial
            .as_ref()
            .map_or(0, |h| INITIAL_HEADER_LEN + h.kem_ciphertext.len());
        let mut out = Vec::with_capacity(2 + initial_len + HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        match &self.pending_initial {
            Some(initial) => {
                out.push(KIND_INITIAL);
                encode_initial(initial, &mut out);
            }
            None => out.push(KIND_RATCHET),
        }
        header.encode(&mut out);

        let aad = aad(&self.associated_data, &out);
        AeadKey::derive(&message_key, INFO_MESSAGE).seal_into(&aad, plaintext, &mut out);
        Ok(out)
    }

    /// Opens a message of this session with the operating system's RNG
    /// (needed when the message starts a new ratchet step).
    ///
    /// # Errors
    /// [`OpenError`]; the session is unchanged on any error.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_with_rng(&mut rand::rng(), bytes)
    }

    /// [`open`](Self::open) with a caller-supplied RNG.
    ///
    /// # Errors
    /// [`OpenError`]; the session is unchanged on any error.
    pub fn open_with_rng<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        bytes: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        let envelope = Envelope::parse(bytes)?;
        if let Some(initial) = &envelope.initial {
            let ours = !self.initiator
                && initial.ephemeral_key == self.initial_ephemeral
                && initial.identity == self.peer;
            if !ours {
                return Err(OpenError::UnexpectedInitial);
            }
        }
        let aad = aad(&self.associated_data, envelope.prefix);
        let plaintext = self.ratchet.open(rng, &envelope.header, |mk| {
            AeadKey::derive(mk, INFO_MESSAGE).open(&aad, envelope.ciphertext)
        })?;
        if self.initiator {
            self.pending_initial = None;
        }
        Ok(plaintext)
    }

    /// The peer device's identity.
    pub fn peer(&self) -> &DeviceIdentity {
        &self.peer
    }

    /// Whether this side started the session.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Initiator identity key bytes, then responder identity key bytes.
    pub fn associated_data(&self) -> &[u8; 128] {
        &self.associated_data
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("initiator", &self.initiator)
            .field("state", &"<redacted>")
            .finish()
    }
}

/// A parsed envelope borrowing the input bytes.
struct Envelope<'a> {
    initial: Option<InitialHeader>,
    header: Header,
    /// Every byte before the ciphertext: authenticated as associated data.
    prefix: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, OpenError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8().ok_or(OpenError::Malformed)?;
        if version != VERSION {
            return Err(OpenError::UnsupportedVersion(version));
        }
        let initial = match reader.u8().ok_or(OpenError::Malformed)? {
            KIND_INITIAL => Some(decode_initial(&mut reader).ok_or(OpenError::Malformed)?),
            KIND_RATCHET => None,
            _ => return Err(OpenError::Malformed),
        };
        let header = Header::decode(&mut reader).ok_or(OpenError::Malformed)?;
        let prefix = &bytes[..reader.position()];
        let ciphertext = reader.rest();
        if ciphertext.len() < TAG_LEN {
            return Err(OpenError::Malformed);
        }
        Ok(Self {
            initial,
            header,
            prefix,
            ciphertext,
        })
    }
}

fn encode_initial(initial: &InitialHeader, out: &mut Vec<u8>) {
    out.push(initial.suite);
    out.extend_from_slice(&initial.identity.signing_key);
    out.extend_from_slice(&initial.identity.agreement_key);
    out.extend_from_slice(&initial.identity.agreement_signature);
    out.extend_from_slice(&initial.ephemeral_key);
    out.extend_from_slice(&initial.signed_prekey_id.to_be_bytes());
    match initial.one_time_prekey_id {
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_be_bytes());
        }
        None => out.extend_from_slice(&[0; 5]),
    }
    // The KEM ciphertext is at most 65535 bytes by construction of the suite.
    let kem_len = u16::try_from(initial.kem_ciphertext.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&kem_len.to_be_bytes());
    out.extend_from_slice(&initial.kem_ciphertext[..usize::from(kem_len)]);
}

fn decode_initial(reader: &mut Reader<'_>) -> Option<InitialHeader> {
    let suite = reader.u8()?;
    let identity = DeviceIdentity {
        signing_key: reader.array()?,
        agreement_key: reader.array()?,
        agreement_signature: reader.array()?,
    };
    let ephemeral_key = reader.array()?;
    let signed_prekey_id = reader.u32()?;
    let one_time_prekey_id = match (reader.u8()?, reader.u32()?) {
        (0, 0) => None,
        (1, id) => Some(id),
        _ => return None,
    };
    let kem_len = reader.u16()?;
    let kem_ciphertext = reader.take(usize::from(kem_len))?.to_vec();
    Some(InitialHeader {
        suite,
        identity,
        ephemeral_key,
        signed_prekey_id,
        one_time_prekey_id,
        kem_ciphertext,
    })
}

/// AEAD associated data: both identities, then the envelope prefix.
fn aad(associated_data: &[u8; 128], prefix: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(associated_data.len() + prefix.len());
    aad.extend_from_slice(associated_data);
    aad.extend_from_slice(prefix);
    aad
}
