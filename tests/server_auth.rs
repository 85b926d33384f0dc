//! Authentication over real TLS: challenge, signature, channel binding,
//! identity binding and the order of frames before authentication.
#![allow(clippy::unwrap_used)]

mod support;

use courier::protocol::{ClientHello, ErrorCode, PROTOCOL_VERSION, SendDirect, ServerFrame};
use support::{Identity, RawConn, TestClient, TestServer, mid};

#[tokio::test]
async fn welcome_names_the_authenticated_device() {
    let server = TestServer::start().await;
    let id = Identity::new("alice", 3);
    let mut conn = RawConn::open(&server).await;
    assert_eq!(conn.hello.version, PROTOCOL_VERSION);
    assert_ne!(conn.hello.challenge, [0; 32]);
    conn.send(id.hello(&conn.hello.challenge, &conn.exporter))
        .await;
    match conn.recv().await {
        ServerFrame::Welcome(w) => {
            assert_eq!(w.device, id.device);
            assert_eq!(w.prekeys_remaining, 0);
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn challenges_differ_per_connection() {
    let server = TestServer::start().await;
    let a = RawConn::open(&server).await;
    let b = RawConn::open(&server).await;
    assert_ne!(a.hello.challenge, b.hello.challenge);
    assert_ne!(a.exporter, b.exporter);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn authentication_replayed_on_another_connection_fails() {
    let server = TestServer::start().await;
    let id = Identity::new("alice", 0);
    let first = RawConn::open(&server).await;
    let hello = id.hello(&first.hello.challenge, &first.exporter);
    // An attacker who saw the hello sends it on its own connection.
    let mut other = RawConn::open(&server).await;
    other.send(hello.clone()).await;
    other.expect_error_and_close(ErrorCode::AuthFailed).await;
    // Even with the same challenge the exporter differs, so the signature
    // does not verify; and the legitimate connection still works.
    let mut first = first;
    first.send(hello).await;
    assert!(matches!(first.recv().await, ServerFrame::Welcome(_)));
    server.handle.shutdown().await;
}

#[tokio::test]
async fn bad_signature_fails() {
    let server = TestServer::start().await;
    let id = Identity::new("alice", 0);
    let mut conn = RawConn::open(&server).await;
    let mut hello = id.hello(&conn.hello.challenge, &conn.exporter);
    hello.signature[0] ^= 1;
    conn.send(hello).await;
    conn.expect_error_and_close(ErrorCode::AuthFailed).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn bad_identity_binding_fails() {
    let server = TestServer::start().await;
    let id = Identity::new("alice", 0);
    let mut conn = RawConn::open(&server).await;
    let mut hello = id.hello(&conn.hello.challenge, &conn.exporter);
    hello.identity.agreement_key[0] ^= 1;
    conn.send(hello).await;
    conn.expect_error_and_close(ErrorCode::AuthFailed).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn same_device_with_another_identity_fails() {
    let server = TestServer::start().await;
    let alice = server.client("alice", 0).await;
    drop(alice);
    let impostor = Identity::new("alice", 0);
    let mut conn = RawConn::open(&server).await;
    conn.send(impostor.hello(&conn.hello.challenge, &conn.exporter))
        .await;
    conn.expect_error_and_close(ErrorCode::AuthFailed).await;
    // The user name is bound too: another device number does not help.
    let impostor = Identity::new("alice", 1);
    let mut conn = RawConn::open(&server).await;
    conn.send(impostor.hello(&conn.hello.challenge, &conn.exporter))
        .await;
    conn.expect_error_and_close(ErrorCode::AuthFailed).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_second_device_with_the_owners_identity_registers() {
    let server = TestServer::start().await;
    let alice = server.client("alice", 0).await;
    let mut second = Identity::new("alice", 1);
    second.keys = alice.id.keys.clone();
    let mut other = TestClient::connect(&server, second).await;
    other.sync().await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn frame_before_authentication_is_rejected() {
    let server = TestServer::start().await;
    let bob = server.client("bob", 0).await;
    let mut conn = RawConn::open(&server).await;
    conn.send(SendDirect {
        id: mid(1),
        to: bob.device(),
        body: bytes::Bytes::from_static(b"sneaky"),
    })
    .await;
    conn.expect_error_and_close(ErrorCode::NotAuthenticated)
        .await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn second_hello_is_out_of_order() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let hello = alice
        .id
        .hello(&alice.conn.hello.challenge, &alice.conn.exporter);
    alice.send(hello).await;
    alice
        .conn
        .expect_error_and_close(ErrorCode::OutOfOrder)
        .await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let server = TestServer::start().await;
    let id = Identity::new("alice", 0);
    let mut conn = RawConn::open(&server).await;
    let hello = ClientHello {
        version: PROTOCOL_VERSION + 1,
        ..id.hello(&conn.hello.challenge, &conn.exporter)
    };
    conn.send(hello).await;
    conn.expect_error_and_close(ErrorCode::UnsupportedVersion)
        .await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn sender_is_taken_from_the_session() {
    let server = TestServer::start().await;
    let mut mallory = server.client("mallory", 0).await;
    let alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    // There is no "from" in a send: whatever mallory sends arrives as hers.
    mallory.send_direct(&bob.device(), mid(1), b"hi").await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.from, mallory.device());
    assert_ne!(d.from, alice.device());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_new_connection_replaces_the_old_one() {
    let server = TestServer::start().await;
    let alice = server.client("alice", 0).await;
    let id = alice.id.clone();
    let mut old = alice;
    let mut new = TestClient::connect(&server, id).await;
    old.conn
        .expect_error_and_close(ErrorCode::SessionReplaced)
        .await;
    new.sync().await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_going_away_to_every_session() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    server.handle.shutdown().await;
    alice
        .conn
        .expect_error_and_close(ErrorCode::ShuttingDown)
        .await;
    bob.conn
        .expect_error_and_close(ErrorCode::ShuttingDown)
        .await;
}
