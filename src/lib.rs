//! Courier: an embeddable library for end-to-end encrypted chat servers.
//!
//! # Quick start: frames on the wire
//!
//! ```
//! use bytes::BytesMut;
//! use courier::{ClientCodec, ClientFrame, Ping, ServerCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! // A client writes a frame; the server reads it (docs/protocol.md).
//! let mut wire = BytesMut::new();
//! ClientCodec::default().encode(ClientFrame::from(Ping { nonce: 7 }), &mut wire)?;
//! let frame = ServerCodec::default().decode(&mut wire)?;
//! assert_eq!(frame, Some(ClientFrame::Ping(Ping { nonce: 7 })));
//! # Ok::<(), courier::FrameError>(())
//! ```

mod protocol;

pub use protocol::{
    ALPN, AUTH_DOMAIN, AUTH_EXPORTER_BYTES, AUTH_EXPORTER_LABEL, AUTH_TRANSCRIPT_BYTES, Accepted,
    AddMembers, Bundle, CHALLENGE_BYTES, ClientCodec, ClientFrame, ClientHello, ConnectionPhase,
    Conversation, CreateGroup, DEFAULT_MAX_FRAME_BYTES, Deliver, Delivered, DeliveryAck,
    DeviceBundle, DeviceId, DeviceIdentity, ErrorCode, ErrorFrame, FrameCodec, FrameError,
    GroupChanged, GroupId, GroupInfo, LENGTH_PREFIX_BYTES, LeaveGroup, Limits, MAX_NESTING_DEPTH,
    MAX_USER_NAME_BYTES, MediaChunk, MediaDownload, MediaId, MediaStored, MediaUploadBegin,
    MediaUploadChunk, MediaUploadFinish, MessageId, NameError, OneTimePrekey, OrderError,
    PROTOCOL_VERSION, Ping, Pong, PrekeysLow, Presence, PresenceState, QueryGroup, RemoveMembers,
    RequestBundle, SealedCopy, SendDirect, SendToGroup, SendToUser, ServerCodec, ServerFrame,
    ServerHello, SignedPrekey, SubscribePresence, Typing, TypingNotice, UpdatePresence,
    UploadPrekeys, UserName, Welcome, auth_transcript,
};
