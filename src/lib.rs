//! Courier: an embeddable library for end-to-end encrypted chat servers.

mod crypto;

pub use crypto::{
    DeviceIdentity, EnvelopeKind, GroupError, GroupReceiver, GroupSender, IdentityError,
    IdentityKeyPair, InitialHeader, MAX_SKIP, MAX_STORED_SKIPPED, MediaError, MediaKey,
    OneTimePrekeyPublic, OpenError, PrekeyBundle, PrekeySecrets, SafetyNumber, SealError,
    SenderKeyDistribution, Session, SignedPrekeyPublic, Suite, X3dhError, X3dhOutput, open_media,
    seal_media, seal_media_with_key, x3dh_initiate, x3dh_respond,
};
