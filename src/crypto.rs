//! Client-side end-to-end encryption: device identities, X3DH, the Double
//! Ratchet, sender keys for groups, media sealing and safety numbers.
//!
//! Everything is composed from the RustCrypto and dalek crates (X25519,
//! Ed25519, HKDF-SHA256, HMAC-SHA256, AES-256-GCM); the exact construction is
//! specified in `docs/protocol.md`, section 7. The module does no I/O: bytes
//! and an RNG go in, bytes come out. Functions that need randomness take
//! `&mut impl CryptoRng`, so a seeded RNG makes every output reproducible.
//!
//! A typical exchange between two devices:
//!
//! ```
//! use courier::crypto::{IdentityKeyPair, PrekeySecrets, Session};
//!
//! let mut rng = rand::rng();
//! let alice = IdentityKeyPair::generate(&mut rng);
//! let bob = IdentityKeyPair::generate(&mut rng);
//!
//! // Bob publishes prekeys; the server hands Alice a bundle.
//! let mut bob_prekeys = PrekeySecrets::new();
//! bob_prekeys.rotate_signed_prekey(&mut rng, &bob);
//! bob_prekeys.generate_one_time_prekeys(&mut rng, 10);
//! let bundle = bob_prekeys.bundle(&bob.public()).expect("a signed prekey exists");
//!
//! let (mut to_bob, first) = Session::initiate(&mut rng, &alice, &bundle, b"hi").unwrap();
//! let (mut to_alice, text) = Session::accept(&mut rng, &bob, &mut bob_prekeys, &first).unwrap();
//! assert_eq!(text, b"hi");
//!
//! let reply = to_alice.seal(b"hello").unwrap();
//! assert_eq!(to_bob.open(&reply).unwrap(), b"hello");
//! ```
//!
//! # Limitations
//!
//! - Zeroization covers the values the module owns; copies that the
//!   allocator or the caller's serializer leave behind (a `Vec` that grew,
//!   a persisted session file) are outside its reach.
//! - A session persisted before a seal and restored after that ciphertext
//!   was sent would reuse a message key. The API advances state before
//!   returning ciphertext, but it cannot stop a caller from restoring an old
//!   snapshot; persist after every `seal`.
//! - An initial message sent to a bundle without a one-time prekey can be
//!   replayed to a device that lost its session; it then opens again. With a
//!   one-time prekey the replay fails because the prekey is consumed.
//! - When the skipped-key store is full, later gaps fail with
//!   `OpenError::SkippedStoreFull` rather than evicting old keys; the peers
//!   then need a new session.
//! - Only suite 1 (classical X25519) exists. The version and suite bytes and
//!   the empty KEM field in initial messages leave room for a hybrid
//!   post-quantum suite.

mod group;
mod identity;
mod media;
mod primitives;
mod ratchet;
mod safety;
mod session;
mod x3dh;

pub use group::{GroupError, GroupReceiver, GroupSender, SenderKeyDistribution};
pub use identity::{DeviceIdentity, IdentityError, IdentityKeyPair};
pub use media::{MediaError, MediaKey, open_media, seal_media, seal_media_with_key};
pub use ratchet::{MAX_SKIP, MAX_STORED_SKIPPED, OpenError, SealError};
pub use safety::SafetyNumber;
pub use session::{EnvelopeKind, Session};
pub use x3dh::{
    InitialHeader, OneTimePrekeyPublic, PrekeyBundle, PrekeySecrets, SignedPrekeyPublic, Suite,
    X3dhError, X3dhOutput, x3dh_initiate, x3dh_respond,
};
