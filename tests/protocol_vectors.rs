//! Checks the codec against `tests/vectors/frames.json`: every frame kind
//! with fixed contents, its JSON form and its exact bytes on the wire.
//!
//! `COURIER_WRITE_VECTORS=1 cargo test --test protocol_vectors -- --test-threads=1`
//! rewrites the file (and the fuzz seed corpus) from the frames below;
//! review the diff.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use bytes::{Bytes, BytesMut};
use courier::protocol::{
    Accepted, AddMembers, Bundle, ClientCodec, ClientFrame, ClientHello, Conversation, CreateGroup,
    Deliver, Delivered, DeliveryAck, DeviceBundle, DeviceId, DeviceIdentity, ErrorCode, ErrorFrame,
    GroupChanged, GroupId, GroupInfo, LeaveGroup, Limits, MediaChunk, MediaDownload, MediaId,
    MediaStored, MediaUploadBegin, MediaUploadChunk, MediaUploadFinish, MessageId, OneTimePrekey,
    PROTOCOL_VERSION, Ping, Pong, PrekeysLow, Presence, PresenceState, QueryGroup, RemoveMembers,
    RequestBundle, SealedCopy, SendDirect, SendToGroup, SendToUser, ServerCodec, ServerFrame,
    ServerHello, SignedPrekey, SubscribePresence, Typing, TypingNotice, UpdatePresence,
    UploadPrekeys, UserName, Welcome,
};
use serde_json::{Value, json};
use tokio_util::codec::{Decoder, Encoder};

const VECTORS: &str = "tests/vectors/frames.json";
const SEEDS: &str = "fuzz/seeds/frame_decoder";

#[test]
fn frames_encode_to_the_recorded_bytes() {
    let file = vectors_file();
    if std::env::var_os("COURIER_WRITE_VECTORS").is_some() {
        write_vectors(&file);
    }

    let text = std::fs::read_to_string(root().join(VECTORS)).unwrap();
    let recorded: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        recorded, file,
        "{VECTORS} is stale; rerun with COURIER_WRITE_VECTORS=1"
    );
}

#[test]
fn recorded_vectors_decode_and_reencode() {
    let text = std::fs::read_to_string(root().join(VECTORS)).unwrap();
    let recorded: Value = serde_json::from_str(&text).unwrap();

    for entry in recorded["frames"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let wire = hex::decode(entry["wire"].as_str().unwrap()).unwrap();
        let kind = entry["kind"].as_u64().unwrap();
        match entry["direction"].as_str().unwrap() {
            "client" => {
                let parsed: ClientFrame = serde_json::from_value(entry["frame"].clone()).unwrap();
                assert_eq!(u64::from(parsed.kind()), kind, "{name}");
                let decoded = ServerCodec::default().decode(&mut BytesMut::from(&wire[..]));
                assert_eq!(decoded.unwrap(), Some(parsed.clone()), "{name}");
                assert_eq!(encode_client(&parsed), wire, "{name}");
            }
            "server" => {
                let parsed: ServerFrame = serde_json::from_value(entry["frame"].clone()).unwrap();
                assert_eq!(u64::from(parsed.kind()), kind, "{name}");
                let decoded = ClientCodec::default().decode(&mut BytesMut::from(&wire[..]));
                assert_eq!(decoded.unwrap(), Some(parsed.clone()), "{name}");
                assert_eq!(encode_server(&parsed), wire, "{name}");
            }
            other => panic!("{name}: unknown direction {other}"),
        }
    }
}

#[test]
fn vectors_cover_every_frame_kind() {
    let (client, server) = sample_frames();
    let client_kinds: Vec<u8> = client.iter().map(|(_, f)| f.kind()).collect();
    let server_kinds: Vec<u8> = server.iter().map(|(_, f)| f.kind()).collect();
    for (kind, name) in ClientFrame::KINDS {
        assert!(
            client_kinds.contains(kind),
            "no vector for client frame {name}"
        );
    }
    for (kind, name) in ServerFrame::KINDS {
        assert!(
            server_kinds.contains(kind),
            "no vector for server frame {name}"
        );
    }
}

fn vectors_file() -> Value {
    let (client, server) = sample_frames();
    let mut frames = Vec::new();
    for (name, frame) in &client {
        frames.push(json!({
            "name": name,
            "direction": "client",
            "kind": frame.kind(),
            "frame": serde_json::to_value(frame).unwrap(),
            "wire": hex::encode(encode_client(frame)),
        }));
    }
    for (name, frame) in &server {
        frames.push(json!({
            "name": name,
            "direction": "server",
            "kind": frame.kind(),
            "frame": serde_json::to_value(frame).unwrap(),
            "wire": hex::encode(encode_server(frame)),
        }));
    }
    json!({
        "description": "Courier frames with fixed contents. `frame` is the frame as \
            [kind, {field: value}] with byte fields in hex; `wire` is the whole frame on \
            the wire: 4-byte big-endian payload length, then the MessagePack payload \
            [kind, [fields in declaration order]]. See docs/protocol.md sections 2 to 4.",
        "protocol_version": PROTOCOL_VERSION,
        "frames": frames,
    })
}

fn write_vectors(file: &Value) {
    let text = serde_json::to_string_pretty(file).unwrap() + "\n";
    std::fs::write(root().join(VECTORS), text).unwrap();

    let seeds = root().join(SEEDS);
    std::fs::create_dir_all(&seeds).unwrap();
    for entry in file["frames"].as_array().unwrap() {
        let name = format!(
            "{}-{}",
            entry["direction"].as_str().unwrap(),
            entry["name"].as_str().unwrap()
        );
        let wire = hex::decode(entry["wire"].as_str().unwrap()).unwrap();
        std::fs::write(seeds.join(name), wire).unwrap();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ClientCodec::default().encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ServerCodec::default().encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

/// `n` bytes counting up from `start`, wrapping.
fn counting<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

fn alice() -> DeviceId {
    DeviceId::new(user("alice"), 1)
}

fn bob() -> DeviceId {
    DeviceId::new(user("bob"), 2)
}

fn message_id() -> MessageId {
    MessageId(counting(0x10))
}

fn group_id() -> GroupId {
    GroupId(counting(0x20))
}

fn media_id() -> MediaId {
    MediaId(counting(0x30))
}

fn body() -> Bytes {
    Bytes::from_static(b"sealed body")
}

fn identity() -> DeviceIdentity {
    DeviceIdentity {
        signing_key: counting(0x40),
        agreement_key: counting(0x60),
        agreement_signature: counting(0x80),
    }
}

fn signed_prekey() -> SignedPrekey {
    SignedPrekey {
        id: 7,
        key: counting(0xa0),
        signature: counting(0xc0),
    }
}

fn one_time_prekey(id: u32) -> OneTimePrekey {
    OneTimePrekey {
        id,
        key: counting(id as u8),
    }
}

/// Frames with their vector names.
type Named<F> = Vec<(&'static str, F)>;

fn sample_frames() -> (Named<ClientFrame>, Named<ServerFrame>) {
    let client: Vec<(&str, ClientFrame)> = vec![
        (
            "client_hello",
            ClientHello {
                version: PROTOCOL_VERSION,
                device: alice(),
                identity: identity(),
                signature: counting(0xe0),
            }
            .into(),
        ),
        ("ping", Ping { nonce: 42 }.into()),
        (
            "pong",
            Pong {
                nonce: 0x0102_0304_0506_0708,
            }
            .into(),
        ),
        (
            "send_direct",
            SendDirect {
                id: message_id(),
                to: bob(),
                body: body(),
            }
            .into(),
        ),
        (
            "send_to_user",
            SendToUser {
                id: message_id(),
                to: user("bob"),
                copies: vec![
                    SealedCopy {
                        device: 1,
                        body: Bytes::from_static(b"copy one"),
                    },
                    SealedCopy {
                        device: 2,
                        body: Bytes::from_static(b"copy two"),
                    },
                ],
            }
            .into(),
        ),
        (
            "send_to_group",
            SendToGroup {
                id: message_id(),
                group: group_id(),
                body: body(),
            }
            .into(),
        ),
        (
            "delivery_ack",
            DeliveryAck {
                from: bob(),
                id: message_id(),
            }
            .into(),
        ),
        (
            "upload_prekeys",
            UploadPrekeys {
                id: message_id(),
                signed_prekey: signed_prekey(),
                one_time: vec![one_time_prekey(1), one_time_prekey(2)],
            }
            .into(),
        ),
        (
            "request_bundle",
            RequestBundle {
                id: message_id(),
                user: user("bob"),
            }
            .into(),
        ),
        (
            "create_group",
            CreateGroup {
                id: message_id(),
                group: group_id(),
                members: vec![user("bob"), user("carol")],
            }
            .into(),
        ),
        (
            "add_members",
            AddMembers {
                id: message_id(),
                group: group_id(),
                members: vec![user("dave")],
            }
            .into(),
        ),
        (
            "remove_members",
            RemoveMembers {
                id: message_id(),
                group: group_id(),
                members: vec![user("carol")],
            }
            .into(),
        ),
        (
            "leave_group",
            LeaveGroup {
                id: message_id(),
                group: group_id(),
            }
            .into(),
        ),
        (
            "query_group",
            QueryGroup {
                id: message_id(),
                group: group_id(),
            }
            .into(),
        ),
        (
            "media_upload_begin",
            MediaUploadBegin {
                media: media_id(),
                total_bytes: 70_000,
                digest: counting(0x50),
            }
            .into(),
        ),
        (
            "media_upload_chunk",
            MediaUploadChunk {
                media: media_id(),
                offset: 65_536,
                data: body(),
            }
            .into(),
        ),
        (
            "media_upload_finish",
            MediaUploadFinish { media: media_id() }.into(),
        ),
        (
            "media_download",
            MediaDownload {
                media: media_id(),
                offset: 0,
            }
            .into(),
        ),
        (
            "subscribe_presence",
            SubscribePresence {
                users: vec![user("bob"), user("carol")],
            }
            .into(),
        ),
        (
            "update_presence",
            UpdatePresence {
                state: PresenceState::Away,
            }
            .into(),
        ),
        (
            "typing_direct",
            Typing {
                to: Conversation::Direct(user("bob")),
                active: true,
            }
            .into(),
        ),
        (
            "typing_group",
            Typing {
                to: Conversation::Group(group_id()),
                active: false,
            }
            .into(),
        ),
    ];

    let server: Vec<(&str, ServerFrame)> = vec![
        (
            "server_hello",
            ServerHello {
                version: PROTOCOL_VERSION,
                challenge: counting(0x00),
                limits: Limits::default(),
            }
            .into(),
        ),
        (
            "welcome",
            Welcome {
                device: alice(),
                server_time_ms: 1_764_790_000_000,
                prekeys_remaining: 100,
            }
            .into(),
        ),
        (
            "error_for_request",
            ErrorFrame::new(
                ErrorCode::UnknownRecipient,
                "no such user",
                Some(message_id()),
            )
            .into(),
        ),
        (
            "error_for_connection",
            ErrorFrame::new(ErrorCode::AuthFailed, "signature did not verify", None).into(),
        ),
        ("ping", Ping { nonce: 7 }.into()),
        ("pong", Pong { nonce: 42 }.into()),
        ("accepted", Accepted { id: message_id() }.into()),
        (
            "deliver_direct",
            Deliver {
                id: message_id(),
                from: alice(),
                group: None,
                body: body(),
                sent_at_ms: 1_764_790_000_123,
            }
            .into(),
        ),
        (
            "deliver_group",
            Deliver {
                id: message_id(),
                from: alice(),
                group: Some(group_id()),
                body: body(),
                sent_at_ms: 1_764_790_000_456,
            }
            .into(),
        ),
        (
            "delivered",
            Delivered {
                id: message_id(),
                to: bob(),
            }
            .into(),
        ),
        (
            "bundle",
            Bundle {
                user: user("bob"),
                devices: vec![
                    DeviceBundle {
                        device: 1,
                        identity: identity(),
                        signed_prekey: signed_prekey(),
                        one_time_prekey: Some(one_time_prekey(9)),
                    },
                    DeviceBundle {
                        device: 2,
                        identity: identity(),
                        signed_prekey: signed_prekey(),
                        one_time_prekey: None,
                    },
                ],
            }
            .into(),
        ),
        ("prekeys_low", PrekeysLow { remaining: 5 }.into()),
        (
            "group_info",
            GroupInfo {
                group: group_id(),
                version: 3,
                owner: user("alice"),
                members: vec![user("alice"), user("bob")],
            }
            .into(),
        ),
        (
            "group_changed",
            GroupChanged {
                group: group_id(),
                version: 4,
                by: alice(),
                added: vec![user("dave")],
                removed: vec![user("carol")],
            }
            .into(),
        ),
        (
            "media_stored",
            MediaStored {
                media: media_id(),
                expires_at_ms: 1_765_394_800_000,
            }
            .into(),
        ),
        (
            "media_chunk",
            MediaChunk {
                media: media_id(),
                offset: 0,
                total_bytes: 11,
                data: body(),
            }
            .into(),
        ),
        (
            "presence",
            Presence {
                user: user("bob"),
                state: PresenceState::Offline,
                last_seen_ms: Some(1_764_790_000_000),
            }
            .into(),
        ),
        (
            "typing_notice",
            TypingNotice {
                from: bob(),
                group: Some(group_id()),
                active: true,
            }
            .into(),
        ),
    ];
    (client, server)
}
