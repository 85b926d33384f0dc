//! Codec behaviour: round trips, incomplete input, limits and garbage.

#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use courier::protocol::{
    ClientCodec, ClientFrame, DeviceId, ErrorCode, FrameError, MessageId, Ping, SendDirect,
    ServerCodec, ServerFrame, UserName,
};
use tokio_util::codec::{Decoder, Encoder};

fn send_direct() -> ClientFrame {
    ClientFrame::SendDirect(SendDirect {
        id: MessageId([7; 16]),
        to: DeviceId::new(UserName::new("bob").unwrap(), 2),
        body: Bytes::from_static(&[0xaa; 100]),
    })
}

#[test]
fn client_frame_round_trips_through_both_codecs() {
    let frame = send_direct();
    let mut buf = BytesMut::new();
    ClientCodec::default().encode(&frame, &mut buf).unwrap();

    let decoded = ServerCodec::default().decode(&mut buf).unwrap();
    assert_eq!(decoded, Some(frame));
    assert!(buf.is_empty());
}

#[test]
fn server_frame_round_trips() {
    let frame = ServerFrame::Ping(Ping { nonce: u64::MAX });
    let mut buf = BytesMut::new();
    ServerCodec::default()
        .encode(frame.clone(), &mut buf)
        .unwrap();
    assert_eq!(
        ClientCodec::default().decode(&mut buf).unwrap(),
        Some(frame)
    );
}

#[test]
fn two_frames_in_one_buffer_decode_in_order() {
    let mut buf = BytesMut::new();
    let mut client = ClientCodec::default();
    client
        .encode(ClientFrame::Ping(Ping { nonce: 1 }), &mut buf)
        .unwrap();
    client.encode(send_direct(), &mut buf).unwrap();

    let mut server = ServerCodec::default();
    assert_eq!(
        server.decode(&mut buf).unwrap(),
        Some(ClientFrame::Ping(Ping { nonce: 1 }))
    );
    assert_eq!(server.decode(&mut buf).unwrap(), Some(send_direct()));
    assert_eq!(server.decode(&mut buf).unwrap(), None);
}

#[test]
fn incomplete_frame_is_none_until_whole() {
    let mut whole = BytesMut::new();
    ClientCodec::default()
        .encode(send_direct(), &mut whole)
        .unwrap();

    let mut server = ServerCodec::default();
    let mut buf = BytesMut::new();
    for (i, byte) in whole.iter().enumerate() {
        assert_eq!(server.decode(&mut buf).unwrap(), None, "after {i} bytes");
        buf.put_u8(*byte);
    }
    assert_eq!(server.decode(&mut buf).unwrap(), Some(send_direct()));
}

#[test]
fn truncated_frame_at_end_of_stream_is_an_error() {
    let mut buf = BytesMut::new();
    ClientCodec::default()
        .encode(send_direct(), &mut buf)
        .unwrap();
    let len = buf.len();
    buf.truncate(len - 1);

    let err = ServerCodec::default().decode_eof(&mut buf).unwrap_err();
    assert_eq!(
        err,
        FrameError::Truncated {
            expected: len,
            received: len - 1
        }
    );
    assert_eq!(err.code(), ErrorCode::MalformedFrame);
}

#[test]
fn oversized_prefix_is_rejected_before_reserving() {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    let before = buf.capacity();

    let err = ServerCodec::new(1024).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u32::MAX as usize,
            max: 1024
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert_eq!(buf.capacity(), before);
}

#[test]
fn encoding_past_the_limit_fails_and_leaves_the_buffer_alone() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    let err = ClientCodec::new(50)
        .encode(send_direct(), &mut buf)
        .unwrap_err();
    assert!(
        matches!(err, FrameError::TooLarge { max: 50, .. }),
        "{err:?}"
    );
    assert_eq!(&buf[..], b"xy");
}

#[test]
fn garbage_payload_is_malformed() {
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    buf.put_slice(&[0xc1, 0xff, 0x00]);
    let err = ServerCodec::default().decode(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
    assert!(buf.is_empty(), "the bad frame is consumed");
}

#[test]
fn codecs_and_frames_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ServerCodec>();
    assert_send_sync::<ClientCodec>();
    assert_send_sync::<ClientFrame>();
    assert_send_sync::<ServerFrame>();
    assert_send_sync::<FrameError>();
}

#[test]
fn request_ids_name_sends_and_media_transfers() {
    assert_eq!(send_direct().request_id(), Some(MessageId([7; 16])));
    let download = ClientFrame::MediaDownload(courier::protocol::MediaDownload {
        media: courier::protocol::MediaId([3; 16]),
        offset: 0,
    });
    assert_eq!(download.request_id(), Some(MessageId([3; 16])));
    assert_eq!(ClientFrame::Ping(Ping { nonce: 1 }).request_id(), None);
}
