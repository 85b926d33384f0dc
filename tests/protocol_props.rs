//! Property tests of the codec: every frame round-trips, every truncation
//! is incomplete or rejected, and no input makes the decoder panic or
//! allocate past the limit.

#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use courier::protocol::{
    Accepted, AddMembers, Bundle, ClientCodec, ClientFrame, ClientHello, Conversation, CreateGroup,
    Deliver, Delivered, DeliveryAck, DeviceBundle, DeviceId, DeviceIdentity, ErrorCode, ErrorFrame,
    FrameCodec, FrameError, GroupChanged, GroupId, GroupInfo, LeaveGroup, Limits, MediaChunk,
    MediaDownload, MediaId, MediaStored, MediaUploadBegin, MediaUploadChunk, MediaUploadFinish,
    MessageId, OneTimePrekey, Ping, Pong, PrekeysLow, Presence, PresenceState, QueryGroup,
    RemoveMembers, RequestBundle, SealedCopy, SendDirect, SendToGroup, SendToUser, ServerCodec,
    ServerFrame, ServerHello, SignedPrekey, SubscribePresence, Typing, TypingNotice,
    UpdatePresence, UploadPrekeys, UserName, Welcome,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::IgnoredAny;
use tokio_util::codec::{Decoder, Encoder};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_client_frame_round_trips(frame in client_frame()) {
        let wire = encode_client(&frame);
        let mut buf = BytesMut::from(&wire[..]);
        prop_assert_eq!(ServerCodec::default().decode(&mut buf).unwrap(), Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_server_frame_round_trips(frame in server_frame()) {
        let wire = encode_server(&frame);
        let mut buf = BytesMut::from(&wire[..]);
        prop_assert_eq!(ClientCodec::default().decode(&mut buf).unwrap(), Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_then_truncated(
        frame in client_frame(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_client(&frame);
        let cut = cut.index(wire.len());
        let mut codec = ServerCodec::default();

        let mut buf = BytesMut::from(&wire[..cut]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), None);
        prop_assert_eq!(buf.len(), cut, "an incomplete frame is not consumed");

        let eof = codec.decode_eof(&mut buf);
        if cut == 0 {
            prop_assert_eq!(eof.unwrap(), None);
        } else {
            let truncated = matches!(eof, Err(FrameError::Truncated { .. }));
            prop_assert!(truncated, "{:?}", eof);
        }
    }

    #[test]
    fn every_cut_payload_with_a_matching_prefix_is_rejected(
        frame in server_frame(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_server(&frame);
        let payload = &wire[4..];
        let cut = cut.index(payload.len());
        let mut buf = BytesMut::new();
        buf.put_u32(cut as u32);
        buf.put_slice(&payload[..cut]);

        let result = ClientCodec::default().decode(&mut buf);
        let rejected = matches!(result, Err(FrameError::Malformed(_)));
        prop_assert!(rejected, "{:?}", result);
        prop_assert!(buf.is_empty(), "a complete bad frame is consumed");
    }

    #[test]
    fn an_oversized_prefix_is_rejected_without_allocating(
        max in 0u32..1_000_000,
        excess in 1u32..1_000_000,
    ) {
        let mut buf = BytesMut::with_capacity(4);
        buf.put_u32(max + excess);
        let capacity = buf.capacity();

        let result = ServerCodec::new(max).decode(&mut buf);
        prop_assert_eq!(
            result.unwrap_err(),
            FrameError::TooLarge { len: (max + excess) as usize, max: max as usize }
        );
        prop_assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn garbage_never_panics_and_never_reserves_past_the_limit(
        bytes in vec(any::<u8>(), 0..600),
    ) {
        let mut codec = ServerCodec::new(256);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
        prop_assert!(buf.capacity() <= bytes.len().max(256 + 4) + 64);
    }

    #[test]
    fn garbage_payloads_are_rejected_or_well_formed(bytes in vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::new();
        buf.put_u32(bytes.len() as u32);
        buf.put_slice(&bytes);
        match ServerCodec::default().decode(&mut buf) {
            // Random bytes that happen to be a frame must encode back to themselves
            // (the encoding is canonical) or to a shorter equivalent.
            Ok(Some(frame)) => prop_assert!(encode_client(&frame).len() <= bytes.len() + 4),
            Ok(None) => prop_assert!(false, "a complete frame is never incomplete"),
            Err(error) => prop_assert_eq!(error.code(), ErrorCode::MalformedFrame),
        }
    }

    #[test]
    fn a_flipped_bit_never_panics(
        frame in client_frame(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut wire = encode_client(&frame);
        let at = 4 + at.index(wire.len() - 4);
        wire[at] ^= 1 << bit;
        let mut buf = BytesMut::from(&wire[..]);
        if let Ok(Some(decoded)) = ServerCodec::default().decode(&mut buf) {
            prop_assert_ne!(decoded, frame);
        }
    }
}

#[test]
fn deep_nesting_is_rejected_by_the_schema_before_recursing() {
    let mut payload = vec![0x92, 0x08];
    payload.extend(std::iter::repeat_n(0x91, 100_000));
    payload.push(0xc0);
    let mut buf = BytesMut::new();
    buf.put_u32(payload.len() as u32);
    buf.put_slice(&payload);

    let result = ServerCodec::new(1 << 20).decode(&mut buf);
    assert!(
        matches!(result, Err(FrameError::Malformed(_))),
        "{result:?}"
    );
}

#[test]
fn nesting_past_the_depth_limit_is_too_deep_even_for_schemaless_decoding() {
    let nested = |levels: usize| {
        let mut payload = vec![0x91; levels];
        payload.push(0xc0);
        let mut buf = BytesMut::new();
        buf.put_u32(payload.len() as u32);
        buf.put_slice(&payload);
        FrameCodec::<IgnoredAny, ()>::new(1 << 20).decode(&mut buf)
    };

    assert!(nested(courier::protocol::MAX_NESTING_DEPTH).is_ok());
    assert_eq!(
        nested(courier::protocol::MAX_NESTING_DEPTH + 1).unwrap_err(),
        FrameError::TooDeep
    );
    assert_eq!(nested(100_000).unwrap_err(), FrameError::TooDeep);
}

#[test]
fn trailing_bytes_after_the_frame_value_are_rejected() {
    let mut wire = encode_client(&ClientFrame::Ping(Ping { nonce: 1 }));
    wire.push(0xc0);
    let len = (wire.len() - 4) as u32;
    wire[..4].copy_from_slice(&len.to_be_bytes());

    let err = ServerCodec::default()
        .decode(&mut BytesMut::from(&wire[..]))
        .unwrap_err();
    assert_eq!(err, FrameError::TrailingBytes);
}

#[test]
fn a_server_frame_is_not_a_client_frame() {
    let wire = encode_server(&ServerFrame::Ping(Ping { nonce: 1 }));
    let err = ServerCodec::default()
        .decode(&mut BytesMut::from(&wire[..]))
        .unwrap_err();
    assert_eq!(err, FrameError::Malformed("unknown frame kind 67".into()));
}

#[test]
fn an_invalid_user_name_is_malformed() {
    let mut wire = encode_client(&ClientFrame::RequestBundle(RequestBundle {
        id: MessageId([0; 16]),
        user: UserName::new("bob").unwrap(),
    }));
    let at = wire.windows(3).position(|w| w == b"bob").unwrap();
    wire[at] = b'B';

    let err = ServerCodec::default()
        .decode(&mut BytesMut::from(&wire[..]))
        .unwrap_err();
    assert!(matches!(&err, FrameError::Malformed(text) if text.contains("invalid character")));
}

fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ClientCodec::new(u32::MAX).encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ServerCodec::new(u32::MAX).encode(frame, &mut buf).unwrap();
    buf.to_vec()
}

// Strategies.

fn user_name() -> impl Strategy<Value = UserName> {
    "[a-z0-9][a-z0-9_.-]{0,31}".prop_map(|name| UserName::new(name).unwrap())
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    (user_name(), any::<u32>()).prop_map(|(user, device)| DeviceId::new(user, device))
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 16]>().prop_map(MessageId)
}

fn group_id() -> impl Strategy<Value = GroupId> {
    any::<[u8; 16]>().prop_map(GroupId)
}

fn media_id() -> impl Strategy<Value = MediaId> {
    any::<[u8; 16]>().prop_map(MediaId)
}

fn body() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn key() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn signature() -> impl Strategy<Value = [u8; 64]> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut sig = [0; 64];
        sig[..32].copy_from_slice(&a);
        sig[32..].copy_from_slice(&b);
        sig
    })
}

fn users() -> impl Strategy<Value = Vec<UserName>> {
    vec(user_name(), 0..6)
}

fn identity() -> impl Strategy<Value = DeviceIdentity> {
    (key(), key(), signature()).prop_map(|(signing_key, agreement_key, agreement_signature)| {
        DeviceIdentity {
            signing_key,
            agreement_key,
            agreement_signature,
        }
    })
}

fn signed_prekey() -> impl Strategy<Value = SignedPrekey> {
    (any::<u32>(), key(), signature()).prop_map(|(id, key, signature)| SignedPrekey {
        id,
        key,
        signature,
    })
}

fn one_time_prekey() -> impl Strategy<Value = OneTimePrekey> {
    (any::<u32>(), key()).prop_map(|(id, key)| OneTimePrekey { id, key })
}

fn presence_state() -> impl Strategy<Value = PresenceState> {
    prop_oneof![
        Just(PresenceState::Offline),
        Just(PresenceState::Online),
        Just(PresenceState::Away)
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    (any::<[u32; 8]>(), any::<u64>()).prop_map(|(n, media)| {
        Limits::default()
            .with_max_frame_bytes(n[0])
            .with_messages_per_second(n[1])
            .with_max_group_size(n[2])
            .with_max_media_bytes(media)
            .with_max_media_chunk_bytes(n[3])
            .with_max_one_time_prekeys(n[4])
            .with_max_devices_per_user(n[5])
            .with_handshake_timeout_ms(n[6])
            .with_idle_timeout_ms(n[7])
    })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u16>(), device_id(), identity(), signature()).prop_map(
            |(version, device, identity, signature)| {
                ClientHello {
                    version,
                    device,
                    identity,
                    signature,
                }
                .into()
            }
        ),
        any::<u64>().prop_map(|nonce| Ping { nonce }.into()),
        any::<u64>().prop_map(|nonce| Pong { nonce }.into()),
        (message_id(), device_id(), body())
            .prop_map(|(id, to, body)| SendDirect { id, to, body }.into()),
        (message_id(), user_name(), vec((any::<u32>(), body()), 0..4)).prop_map(
            |(id, to, copies)| {
                let copies = copies
                    .into_iter()
                    .map(|(device, body)| SealedCopy { device, body })
                    .collect();
                SendToUser { id, to, copies }.into()
            }
        ),
        (message_id(), group_id(), body()).prop_map(|(id, group, body)| SendToGroup {
            id,
            group,
            body
        }
        .into()),
        (device_id(), message_id()).prop_map(|(from, id)| DeliveryAck { from, id }.into()),
        (message_id(), signed_prekey(), vec(one_time_prekey(), 0..5)).prop_map(
            |(id, signed_prekey, one_time)| {
                UploadPrekeys {
                    id,
                    signed_prekey,
                    one_time,
                }
                .into()
            }
        ),
        (message_id(), user_name()).prop_map(|(id, user)| RequestBundle { id, user }.into()),
        (message_id(), group_id(), users()).prop_map(|(id, group, members)| CreateGroup {
            id,
            group,
            members
        }
        .into()),
        (message_id(), group_id(), users()).prop_map(|(id, group, members)| AddMembers {
            id,
            group,
            members
        }
        .into()),
        (message_id(), group_id(), users()).prop_map(|(id, group, members)| RemoveMembers {
            id,
            group,
            members
        }
        .into()),
        (message_id(), group_id()).prop_map(|(id, group)| LeaveGroup { id, group }.into()),
        (message_id(), group_id()).prop_map(|(id, group)| QueryGroup { id, group }.into()),
        (media_id(), any::<u64>(), key()).prop_map(|(media, total_bytes, digest)| {
            MediaUploadBegin {
                media,
                total_bytes,
                digest,
            }
            .into()
        }),
        (media_id(), any::<u64>(), body()).prop_map(|(media, offset, data)| MediaUploadChunk {
            media,
            offset,
            data
        }
        .into()),
        media_id().prop_map(|media| MediaUploadFinish { media }.into()),
        (media_id(), any::<u64>())
            .prop_map(|(media, offset)| MediaDownload { media, offset }.into()),
        users().prop_map(|users| SubscribePresence { users }.into()),
        presence_state().prop_map(|state| UpdatePresence { state }.into()),
        (
            prop_oneof![
                user_name().prop_map(Conversation::Direct),
                group_id().prop_map(Conversation::Group)
            ],
            any::<bool>()
        )
            .prop_map(|(to, active)| Typing { to, active }.into()),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u16>(), key(), limits()).prop_map(|(version, challenge, limits)| {
            ServerHello {
                version,
                challenge,
                limits,
            }
            .into()
        }),
        (device_id(), any::<u64>(), any::<u32>()).prop_map(
            |(device, server_time_ms, prekeys_remaining)| {
                Welcome {
                    device,
                    server_time_ms,
                    prekeys_remaining,
                }
                .into()
            }
        ),
        (1u16.., ".{0,40}", prop::option::of(message_id())).prop_map(|(code, text, id)| {
            ErrorFrame::new(ErrorCode::from_u16(code), text, id).into()
        }),
        any::<u64>().prop_map(|nonce| Ping { nonce }.into()),
        any::<u64>().prop_map(|nonce| Pong { nonce }.into()),
        message_id().prop_map(|id| Accepted { id }.into()),
        (
            message_id(),
            device_id(),
            prop::option::of(group_id()),
            body(),
            any::<u64>()
        )
            .prop_map(|(id, from, group, body, sent_at_ms)| {
                Deliver {
                    id,
                    from,
                    group,
                    body,
                    sent_at_ms,
                }
                .into()
            }),
        (message_id(), device_id()).prop_map(|(id, to)| Delivered { id, to }.into()),
        (
            user_name(),
            vec(
                (
                    any::<u32>(),
                    identity(),
                    signed_prekey(),
                    prop::option::of(one_time_prekey())
                ),
                0..3
            )
        )
            .prop_map(|(user, devices)| {
                let devices = devices
                    .into_iter()
                    .map(
                        |(device, identity, signed_prekey, one_time_prekey)| DeviceBundle {
                            device,
                            identity,
                            signed_prekey,
                            one_time_prekey,
                        },
                    )
                    .collect();
                Bundle { user, devices }.into()
            }),
        any::<u32>().prop_map(|remaining| PrekeysLow { remaining }.into()),
        (group_id(), any::<u64>(), user_name(), users()).prop_map(
            |(group, version, owner, members)| GroupInfo {
                group,
                version,
                owner,
                members
            }
            .into()
        ),
        (group_id(), any::<u64>(), device_id(), users(), users()).prop_map(
            |(group, version, by, added, removed)| {
                GroupChanged {
                    group,
                    version,
                    by,
                    added,
                    removed,
                }
                .into()
            }
        ),
        (media_id(), any::<u64>()).prop_map(|(media, expires_at_ms)| MediaStored {
            media,
            expires_at_ms
        }
        .into()),
        (media_id(), any::<u64>(), any::<u64>(), body()).prop_map(
            |(media, offset, total_bytes, data)| {
                MediaChunk {
                    media,
                    offset,
                    total_bytes,
                    data,
                }
                .into()
            }
        ),
        (
            user_name(),
            presence_state(),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(user, state, last_seen_ms)| Presence {
                user,
                state,
                last_seen_ms
            }
            .into()),
        (device_id(), prop::option::of(group_id()), any::<bool>()).prop_map(
            |(from, group, active)| TypingNotice {
                from,
                group,
                active
            }
            .into()
        ),
    ]
}
