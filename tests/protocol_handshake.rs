//! The handshake: connection phases, version checks, the authentication
//! transcript and the error codes they map to.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use courier::protocol::{
    ALPN, AUTH_EXPORTER_LABEL, ClientFrame, ClientHello, ConnectionPhase, DeviceId, DeviceIdentity,
    ErrorCode, ErrorFrame, Limits, MessageId, OrderError, PROTOCOL_VERSION, Ping, SendDirect,
    ServerFrame, ServerHello, UserName, Welcome, auth_transcript,
};

fn hello(version: u16) -> ClientFrame {
    ClientHello {
        version,
        device: alice(),
        identity: DeviceIdentity {
            signing_key: [1; 32],
            agreement_key: [2; 32],
            agreement_signature: [3; 64],
        },
        signature: [4; 64],
    }
    .into()
}

fn alice() -> DeviceId {
    DeviceId::new(UserName::new("alice").unwrap(), 1)
}

fn send() -> ClientFrame {
    SendDirect {
        id: MessageId([9; 16]),
        to: alice(),
        body: Bytes::new(),
    }
    .into()
}

fn server_hello(version: u16) -> ServerFrame {
    ServerHello {
        version,
        challenge: [5; 32],
        limits: Limits::default(),
    }
    .into()
}

fn welcome() -> ServerFrame {
    Welcome {
        device: alice(),
        server_time_ms: 0,
        prekeys_remaining: 0,
    }
    .into()
}

#[test]
fn server_frames_walk_greeting_authenticating_established() {
    let phase = ConnectionPhase::default();
    assert_eq!(phase, ConnectionPhase::Greeting);

    let phase = phase
        .on_server_frame(&server_hello(PROTOCOL_VERSION))
        .unwrap();
    assert_eq!(phase, ConnectionPhase::Authenticating);

    let phase = phase.on_server_frame(&welcome()).unwrap();
    assert_eq!(phase, ConnectionPhase::Established);
    assert!(phase.is_established());
}

#[test]
fn only_hello_and_keepalive_pass_before_authentication() {
    let phase = ConnectionPhase::Authenticating;
    assert_eq!(phase.check_client_frame(&hello(PROTOCOL_VERSION)), Ok(()));
    assert_eq!(phase.check_client_frame(&Ping { nonce: 1 }.into()), Ok(()));

    let err = phase.check_client_frame(&send()).unwrap_err();
    assert_eq!(err, OrderError::NotAuthenticated { kind: "SendDirect" });
    assert_eq!(err.code(), ErrorCode::NotAuthenticated);
}

#[test]
fn a_second_hello_is_out_of_order() {
    let phase = ConnectionPhase::Established;
    assert_eq!(phase.check_client_frame(&send()), Ok(()));

    let err = phase
        .check_client_frame(&hello(PROTOCOL_VERSION))
        .unwrap_err();
    assert_eq!(
        err,
        OrderError::OutOfOrder {
            kind: "ClientHello",
            phase
        }
    );
    assert_eq!(err.code(), ErrorCode::OutOfOrder);
    assert!(err.code().closes_connection());
}

#[test]
fn client_frames_before_the_server_hello_are_out_of_order() {
    let err = ConnectionPhase::Greeting
        .check_client_frame(&hello(PROTOCOL_VERSION))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfOrder);
}

#[test]
fn another_version_is_unsupported_on_either_side() {
    let err = ConnectionPhase::Authenticating
        .check_client_frame(&hello(2))
        .unwrap_err();
    assert_eq!(
        err,
        OrderError::UnsupportedVersion {
            offered: 2,
            supported: PROTOCOL_VERSION
        }
    );
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);

    let err = ConnectionPhase::Greeting
        .on_server_frame(&server_hello(9))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn the_client_rejects_frames_out_of_order() {
    let err = ConnectionPhase::Greeting
        .on_server_frame(&welcome())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfOrder);

    let deliver_early = ConnectionPhase::Authenticating
        .on_server_frame(
            &courier::protocol::Accepted {
                id: MessageId([0; 16]),
            }
            .into(),
        )
        .unwrap_err();
    assert_eq!(deliver_early.code(), ErrorCode::OutOfOrder);

    let err = ConnectionPhase::Established
        .on_server_frame(&server_hello(1))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfOrder);
}

#[test]
fn an_error_frame_is_allowed_in_every_phase() {
    let error: ServerFrame = ErrorFrame::new(ErrorCode::AuthFailed, "no", None).into();
    for phase in [
        ConnectionPhase::Greeting,
        ConnectionPhase::Authenticating,
        ConnectionPhase::Established,
    ] {
        assert_eq!(phase.on_server_frame(&error), Ok(phase));
    }
}

#[test]
fn an_order_error_becomes_an_error_frame_with_its_code() {
    let err = ConnectionPhase::Authenticating
        .check_client_frame(&send())
        .unwrap_err();
    let frame = ErrorFrame::from(&err);
    assert_eq!(frame.code, ErrorCode::NotAuthenticated);
    assert_eq!(frame.text, "SendDirect needs an authenticated connection");
    assert_eq!(frame.id, None);
}

#[test]
fn auth_transcript_matches_the_specified_bytes() {
    let challenge: [u8; 32] = std::array::from_fn(|i| i as u8);
    let exporter: [u8; 32] = std::array::from_fn(|i| 0xe0 ^ i as u8);
    let transcript = auth_transcript(&challenge, &exporter);
    assert_eq!(
        hex::encode(transcript),
        "636f75726965722d617574682d7631\
         000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
         e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    );
    assert_eq!(AUTH_EXPORTER_LABEL, b"EXPORTER-courier-auth-v1");
    assert_eq!(ALPN, b"courier/1");
}
