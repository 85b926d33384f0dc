//! Courier: an embeddable library for end-to-end encrypted chat servers.

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
