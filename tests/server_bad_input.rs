//! Bad input and limits: every malformed, oversized, out-of-order or
//! over-limit input gets its error frame, and other clients carry on.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use courier::protocol::{ErrorCode, SendDirect, ServerFrame};
use courier::server::Limits;
use courier::store::{Durability, FaultInjector};
use support::{RawConn, TestClient, TestServer, WAIT, mid};
use tokio::io::AsyncWriteExt;

/// Writes raw bytes on an authenticated connection.
async fn write_raw(client: &mut TestClient, bytes: &[u8]) {
    let io = client.conn.framed.get_mut();
    io.write_all(bytes).await.unwrap();
    io.flush().await.unwrap();
}

fn prefixed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Checks that a pair of well-behaved clients still works.
async fn others_unaffected(a: &mut TestClient, b: &mut TestClient) {
    let id = support::random_id();
    a.send_direct(&b.device(), id, b"still fine").await;
    let d = b.expect_deliver().await;
    assert_eq!(d.id, id);
    b.ack(&d).await;
    assert_eq!(a.expect_delivered().await.id, id);
}

#[tokio::test]
async fn malformed_inputs_get_their_error_and_others_are_unaffected() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    let mut nested = vec![0x92, 0x08];
    nested.extend(std::iter::repeat_n(0x91, 200));
    nested.push(0x00);
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "not messagepack",
            prefixed(&[0xc1, 0xc1, 0xc1]),
            ErrorCode::MalformedFrame,
        ),
        (
            "unknown kind",
            prefixed(&[0x92, 0x3f, 0x90]),
            ErrorCode::MalformedFrame,
        ),
        (
            "wrong schema",
            prefixed(&[0x92, 0x08, 0x90]),
            ErrorCode::MalformedFrame,
        ),
        (
            "deeply nested",
            prefixed(&nested),
            ErrorCode::MalformedFrame,
        ),
        (
            "trailing bytes",
            prefixed(&[0x92, 0x02, 0x91, 0x01, 0x00]),
            ErrorCode::MalformedFrame,
        ),
        (
            "huge length prefix",
            vec![0xff, 0xff, 0xff, 0xff, 0x00],
            ErrorCode::FrameTooLarge,
        ),
        (
            "just over the limit",
            ((256 * 1024 + 1) as u32).to_be_bytes().to_vec(),
            ErrorCode::FrameTooLarge,
        ),
    ];
    for (n, (what, bytes, code)) in cases.into_iter().enumerate() {
        let mut victim = server.client(&format!("mallory{n}"), 0).await;
        write_raw(&mut victim, &bytes).await;
        let frame = victim.recv().await;
        match frame {
            ServerFrame::Error(e) => assert_eq!(e.code, code, "{what}: {e:?}"),
            other => panic!("{what}: expected error, got {other:?}"),
        }
        victim.conn.expect_closed().await;
        others_unaffected(&mut alice, &mut bob).await;
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn garbage_before_the_tls_handshake_is_dropped() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf),
    )
    .await
    .expect("server closes the connection");
    assert!(read.is_ok() || read.is_err());
    others_unaffected(&mut alice, &mut bob).await;
    server.handle.shutdown().await;
}

#[cfg(feature = "chaos")]
#[tokio::test]
async fn panic_in_session_logic_does_not_close_the_connection() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    assert!(server.handle.panic_on_next_frame(&alice.device()));
    alice
        .send(SendDirect {
            id: mid(1),
            to: bob.device(),
            body: bytes::Bytes::from_static(b"boom"),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::InternalError);
            assert_eq!(e.id, Some(mid(1)));
        }
        other => panic!("expected InternalError, got {other:?}"),
    }
    // Same connection, same authentication: the next send goes through.
    alice.send_direct(&bob.device(), mid(2), b"after").await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.id, mid(2));
    bob.ack(&d).await;
    assert_eq!(alice.expect_delivered().await.id, mid(2));
    // And the logic keeps receiving live frames.
    bob.send_direct(&alice.device(), mid(3), b"back").await;
    assert_eq!(alice.expect_deliver().await.id, mid(3));
    server.handle.shutdown().await;
}

#[tokio::test]
async fn handshake_timeout_closes_a_silent_connection() {
    let mut limits = Limits::default();
    limits.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut conn = RawConn::open(&server).await;
    conn.expect_error_and_close(ErrorCode::NotAuthenticated)
        .await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn idle_connection_is_pinged_then_closed() {
    let mut limits = Limits::default();
    limits.heartbeat_interval = Duration::from_millis(100);
    limits.idle_timeout = Duration::from_millis(400);
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let mut pinged = false;
    loop {
        let next =
            tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut alice.conn.framed))
                .await
                .expect("ping or close in time");
        match next {
            Some(Ok(ServerFrame::Ping(_))) => pinged = true,
            Some(Ok(ServerFrame::PrekeysLow(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            None | Some(Err(_)) => break,
        }
    }
    assert!(pinged, "the server pings before it gives up");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_connections_per_address_are_capped() {
    let mut limits = Limits::default();
    limits.max_unauthenticated_per_address = 2;
    let server = TestServer::with(limits, Durability::Memory).await;
    let _a = RawConn::open(&server).await;
    let _b = RawConn::open(&server).await;
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let tls = courier::tls::ClientTls::pinned(server.pin())
        .connect("localhost", tcp, WAIT)
        .await
        .unwrap();
    let mut framed = tokio_util::codec::Framed::new(
        tls,
        courier::protocol::ClientCodec::new(courier::protocol::DEFAULT_MAX_FRAME_BYTES),
    );
    let frame = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut framed))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match frame {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::RateLimited),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn sending_too_fast_is_rate_limited() {
    let mut limits = Limits::default();
    limits.messages_per_second = 1;
    limits.burst = 2;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let bob = server.client("bob", 0).await;
    alice.send_direct(&bob.device(), mid(1), b"1").await;
    alice.send_direct(&bob.device(), mid(2), b"2").await;
    alice
        .send(SendDirect {
            id: mid(3),
            to: bob.device(),
            body: bytes::Bytes::from_static(b"3"),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert_eq!(e.id, Some(mid(3)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn full_disk_answers_storage_unavailable_and_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let handle = support::builder(dir.path(), Limits::default(), Durability::Fsync)
        .store_faults(faults.clone())
        .start()
        .await
        .unwrap();
    let (addr, pin) = (handle.local_addr(), handle.fingerprint().unwrap());
    let mut alice = TestClient::connect_to(addr, pin, support::Identity::new("alice", 0)).await;
    let mut bob = TestClient::connect_to(addr, pin, support::Identity::new("bob", 0)).await;
    faults.set_disk_full(true);
    alice
        .send(SendDirect {
            id: mid(1),
            to: bob.device(),
            body: bytes::Bytes::from_static(b"x"),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::StorageUnavailable);
            assert_eq!(e.id, Some(mid(1)));
        }
        other => panic!("expected StorageUnavailable, got {other:?}"),
    }
    faults.set_disk_full(false);
    alice.send_direct(&bob.device(), mid(1), b"x").await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.id, mid(1));
    handle.shutdown().await;
}
