//! Malformed and hostile input, one table: each case gets its error (or a
//! closed connection where nothing can be said), and a pair of well-behaved
//! clients on the same server carries on unaffected after every case.
#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use courier::protocol::{
    ClientFrame, DeliveryAck, ErrorCode, PROTOCOL_VERSION, Ping, SendDirect, ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use support::{Identity, RawConn, TestClient, TestServer, WAIT, mid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a case does to the server.
enum Input {
    /// Raw bytes on a fresh TCP connection, before any TLS.
    BeforeTls(&'static [u8]),
    /// Raw bytes on an authenticated connection.
    AfterAuth(Vec<u8>),
    /// A frame on a connection that has not authenticated.
    BeforeAuth(ClientFrame),
    /// A frame on an authenticated connection.
    Authenticated(ClientFrame),
    /// A `ClientHello` with this protocol version.
    HelloVersion(u16),
    /// A delivery ack for a message parked for another device.
    AckOfAnotherDevice,
}

/// What the server must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The connection closes without a frame (no TLS to speak in).
    Closed,
    /// This error frame, then the connection closes.
    ErrorAndClose(ErrorCode),
    /// This error frame; the connection stays usable.
    Error(ErrorCode),
}

fn prefixed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn nested(depth: usize) -> Vec<u8> {
    // [SendDirect kind, [[[[...]]]]]
    let mut payload = vec![0x92, 0x08];
    payload.extend(std::iter::repeat_n(0x91, depth));
    payload.push(0x00);
    payload
}

fn cases() -> Vec<(&'static str, Input, Expect)> {
    use Expect::*;
    use Input::*;
    vec![
        (
            "garbage before the tls handshake",
            BeforeTls(b"GET / HTTP/1.1\r\nHost: courier\r\n\r\n"),
            Closed,
        ),
        (
            "a tls record header with a huge length",
            BeforeTls(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x00]),
            Closed,
        ),
        (
            "wrong protocol version",
            HelloVersion(PROTOCOL_VERSION + 1),
            ErrorAndClose(ErrorCode::UnsupportedVersion),
        ),
        (
            "a send before authenticating",
            BeforeAuth(ClientFrame::SendDirect(SendDirect {
                id: mid(9),
                to: Identity::new("bob", 0).device,
                body: Bytes::from_static(b"x"),
            })),
            ErrorAndClose(ErrorCode::NotAuthenticated),
        ),
        (
            "a second hello after authenticating",
            Authenticated(ClientFrame::ClientHello(
                Identity::new("mallory", 0).hello(&[0; 32], &[0; 32]),
            )),
            ErrorAndClose(ErrorCode::OutOfOrder),
        ),
        (
            "a delivery ack for another device's message",
            AckOfAnotherDevice,
            Error(ErrorCode::Forbidden),
        ),
        (
            "unknown frame kind",
            AfterAuth(prefixed(&[0x92, 0x3f, 0x90])),
            ErrorAndClose(ErrorCode::MalformedFrame),
        ),
        (
            "not messagepack",
            AfterAuth(prefixed(&[0xc1, 0xc1, 0xc1])),
            ErrorAndClose(ErrorCode::MalformedFrame),
        ),
        (
            "huge length prefix",
            AfterAuth(vec![0xff, 0xff, 0xff, 0xff, 0x00]),
            ErrorAndClose(ErrorCode::FrameTooLarge),
        ),
        (
            "deeply nested messagepack",
            AfterAuth(prefixed(&nested(100_000))),
            ErrorAndClose(ErrorCode::MalformedFrame),
        ),
        (
            "a map where a frame should be",
            AfterAuth(prefixed(&[0x81, 0x00, 0x00])),
            ErrorAndClose(ErrorCode::MalformedFrame),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_input_gets_its_error_and_other_clients_carry_on() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    for (n, (what, input, expect)) in cases().into_iter().enumerate() {
        let got = run_case(&server, n, input).await;
        assert_eq!(got, expect, "{what}");
        others_unaffected(&mut alice, &mut bob, n).await;
    }
    server.handle.shutdown().await;
}

/// Runs one case and reports what the server did.
async fn run_case(server: &TestServer, n: usize, input: Input) -> Expect {
    match input {
        Input::BeforeTls(bytes) => {
            let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
            tcp.write_all(bytes).await.unwrap();
            let mut buf = Vec::new();
            let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
                .await
                .expect("the server closes the connection");
            // An alert or nothing, never a frame: TLS did not start.
            assert!(read.is_err() || buf.len() < 64, "{buf:?}");
            Expect::Closed
        }
        Input::AfterAuth(bytes) => {
            let mut victim = server.client(&format!("victim{n}"), 0).await;
            let io = victim.conn.framed.get_mut();
            io.write_all(&bytes).await.unwrap();
            io.flush().await.unwrap();
            observe(&mut victim.conn).await
        }
        Input::BeforeAuth(frame) => {
            let mut conn = RawConn::open(server).await;
            conn.send(frame).await;
            observe(&mut conn).await
        }
        Input::Authenticated(frame) => {
            let mut victim = server.client(&format!("victim{n}"), 0).await;
            victim.send(frame).await;
            observe(&mut victim.conn).await
        }
        Input::HelloVersion(version) => {
            let mut conn = RawConn::open(server).await;
            let id = Identity::new(&format!("victim{n}"), 0);
            let mut hello = id.hello(&conn.hello.challenge, &conn.exporter);
            hello.version = version;
            conn.send(hello).await;
            observe(&mut conn).await
        }
        Input::AckOfAnotherDevice => {
            let mut sender = server.client(&format!("sender{n}"), 0).await;
            let owner = server.client(&format!("owner{n}"), 0).await;
            let owner_id = owner.id.clone();
            drop(owner);
            let id = mid(200);
            sender
                .send_direct(&owner_id.device, id, b"for the owner")
                .await;
            let mut thief = server.client(&format!("thief{n}"), 0).await;
            thief
                .send(DeliveryAck {
                    from: sender.device(),
                    id,
                })
                .await;
            let got = observe(&mut thief.conn).await;
            // The ack removed nothing: the owner still gets the message.
            let mut owner = TestClient::connect(server, owner_id).await;
            assert_eq!(owner.expect_deliver().await.id, id);
            got
        }
    }
}

/// The next frame; `None` once the connection is closed.
async fn recv_raw(conn: &mut RawConn) -> Option<ServerFrame> {
    match tokio::time::timeout(WAIT, conn.framed.next())
        .await
        .expect("a frame or a close in time")
    {
        Some(Ok(frame)) => Some(frame),
        _ => None,
    }
}

/// The next error frame, and whether the connection closed after it.
async fn observe(conn: &mut RawConn) -> Expect {
    let code = loop {
        match recv_raw(conn).await {
            Some(ServerFrame::Error(e)) => break e.code,
            Some(ServerFrame::PrekeysLow(_) | ServerFrame::Ping(_)) => {}
            Some(other) => panic!("expected an error, got {other:?}"),
            None => return Expect::Closed,
        }
    };
    // Stays open if a ping is still answered.
    let _ = conn
        .framed
        .send(ClientFrame::Ping(Ping { nonce: 77 }))
        .await;
    loop {
        match recv_raw(conn).await {
            Some(ServerFrame::Pong(_)) => return Expect::Error(code),
            Some(_) => {}
            None => return Expect::ErrorAndClose(code),
        }
    }
}

async fn others_unaffected(a: &mut TestClient, b: &mut TestClient, n: usize) {
    let id = mid(100 + n as u8);
    a.send_direct(&b.device(), id, b"still fine").await;
    let d = b.expect_deliver().await;
    assert_eq!(d.id, id);
    b.ack(&d).await;
    assert_eq!(a.expect_delivered().await.id, id);
}
