//! The Courier wire protocol: frames, their MessagePack encoding behind a
//! length prefix, the connection phases and the authentication transcript.
//!
//! Everything here is plain code, bytes in and values out; the session that
//! owns a socket drives it. `docs/protocol.md` (sections 1 to 6) is the
//! specification; each type names the section it implements.
//!
//! - [`ClientFrame`] and [`ServerFrame`]: every frame, one enum per
//!   direction, each kind a struct of its own.
//! - [`FrameCodec`]: the `tokio_util` codec, as [`ServerCodec`] or
//!   [`ClientCodec`].
//! - [`ConnectionPhase`]: which frames are allowed before authentication.
//! - [`auth_transcript`]: the bytes a client signs to authenticate.
//! - [`ErrorCode`]: the stable numbers of the `Error` frame, with
//!   [`FrameError::code`] and [`OrderError::code`] mapping every protocol
//!   error to one.
//!
//! # Limitations
//!
//! - Versions are matched exactly; there is one version. A later version
//!   would offer a list in `ClientHello` and let the server pick.
//! - The decoder copies each body out of the read buffer (one copy of the
//!   sealed bytes per frame); decoding straight into shared `Bytes` would
//!   need a deserializer that hands out sub-slices of the buffer.
//! - Decoders accept any MessagePack integer width and also accept a map
//!   with field names where a struct is expected; encoders always write
//!   the shortest integers and arrays, which the specification requires.

mod bin;
mod codec;
mod ephemeral;
mod error;
mod frame;
mod groups;
mod handshake;
mod ids;
mod media;
mod messages;
mod prekeys;
mod state;

pub use codec::{
    ClientCodec, FrameCodec, FrameError, LENGTH_PREFIX_BYTES, MAX_NESTING_DEPTH, ServerCodec,
};
pub use ephemeral::{
    Conversation, Ping, Pong, Presence, PresenceState, SubscribePresence, Typing, TypingNotice,
    UpdatePresence,
};
pub use error::{ErrorCode, ErrorFrame};
pub use frame::{ClientFrame, ServerFrame};
pub use groups::{
    AddMembers, CreateGroup, GroupChanged, GroupInfo, LeaveGroup, QueryGroup, RemoveMembers,
};
pub use handshake::{
    ALPN, AUTH_DOMAIN, AUTH_EXPORTER_BYTES, AUTH_EXPORTER_LABEL, AUTH_TRANSCRIPT_BYTES,
    CHALLENGE_BYTES, ClientHello, DEFAULT_MAX_FRAME_BYTES, DeviceIdentity, Limits,
    PROTOCOL_VERSION, ServerHello, Welcome, auth_transcript,
};
pub use ids::{DeviceId, GroupId, MAX_USER_NAME_BYTES, MediaId, MessageId, NameError, UserName};
pub use media::{
    MediaChunk, MediaDownload, MediaStored, MediaUploadBegin, MediaUploadChunk, MediaUploadFinish,
};
pub use messages::{
    Accepted, Deliver, Delivered, DeliveryAck, SealedCopy, SendDirect, SendToGroup, SendToUser,
};
pub use prekeys::{
    Bundle, DeviceBundle, OneTimePrekey, PrekeysLow, RequestBundle, SignedPrekey, UploadPrekeys,
};
pub use state::{ConnectionPhase, OrderError};
