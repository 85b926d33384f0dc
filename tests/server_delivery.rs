//! Delivery over real TLS: accept, deliver, ack, receipts, offline
//! mailboxes, order, duplicates and restarts.
#![allow(clippy::unwrap_used)]

mod support;

use courier::protocol::{DeliveryAck, ServerFrame};
use courier::server::Limits;
use courier::store::Durability;
use supervisors::ExitReason;
use support::{Identity, TestClient, TestServer, mid, random_id};

#[tokio::test]
async fn two_devices_exchange_frames_both_ways() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;

    alice.send_direct(&bob.device(), mid(1), b"sealed-a").await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.from, alice.device());
    assert_eq!(d.id, mid(1));
    assert_eq!(&d.body[..], b"sealed-a");
    assert_eq!(d.group, None);
    bob.ack(&d).await;
    let receipt = alice.expect_delivered().await;
    assert_eq!(receipt.id, mid(1));
    assert_eq!(receipt.to, bob.device());

    bob.send_direct(&alice.device(), mid(2), b"sealed-b").await;
    let d = alice.expect_deliver().await;
    assert_eq!(d.from, bob.device());
    assert_eq!(&d.body[..], b"sealed-b");
    alice.ack(&d).await;
    let receipt = bob.expect_delivered().await;
    assert_eq!(receipt.id, mid(2));
    assert_eq!(receipt.to, alice.device());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn offline_recipient_gets_parked_frames_in_order_on_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let bob = server.client("bob", 0).await;
    let bob_id = bob.id.clone();
    drop(bob);

    for n in 0..20u8 {
        alice.send_direct(&bob_id.device, mid(n), &[n; 8]).await;
    }
    let mut bob = TestClient::connect(&server, bob_id).await;
    for n in 0..20u8 {
        let d = bob.expect_deliver().await;
        assert_eq!(d.id, mid(n), "frame {n} out of order");
        assert_eq!(&d.body[..], &[n; 8]);
        bob.ack(&d).await;
    }
    for n in 0..20u8 {
        assert_eq!(alice.expect_delivered().await.id, mid(n));
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn receipts_for_an_offline_sender_are_parked() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    alice.send_direct(&bob.device(), mid(7), b"x").await;
    let alice_id = alice.id.clone();
    drop(alice);
    let d = bob.expect_deliver().await;
    bob.ack(&d).await;
    bob.sync().await;
    let mut alice = TestClient::connect(&server, alice_id).await;
    let receipt = alice.expect_delivered().await;
    assert_eq!(receipt.id, mid(7));
    assert_eq!(receipt.to, bob.device());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_receipt_the_sender_never_read_comes_again_after_it_reconnects() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    alice.send_direct(&bob.device(), mid(8), b"x").await;
    let d = bob.expect_deliver().await;
    bob.ack(&d).await;
    // Bob's pong follows the ack's completion: the receipt is with alice's
    // session (written to her socket, or still queued) while she is online.
    bob.sync().await;
    // Alice goes away without reading it.
    let alice_id = alice.id.clone();
    drop(alice);
    let mut alice = TestClient::connect(&server, alice_id).await;
    let receipt = alice.expect_delivered().await;
    assert_eq!(receipt.id, mid(8));
    assert_eq!(receipt.to, bob.device());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_receipt_held_by_a_killed_session_comes_again_after_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    alice.send_direct(&bob.device(), mid(9), b"x").await;
    let d = bob.expect_deliver().await;
    bob.ack(&d).await;
    // The receipt is with alice's session now; alice never answers the
    // confirmation ping, so the session still holds it when it is killed.
    bob.sync().await;
    let Some(node) = server.handle.node() else {
        panic!("server running");
    };
    let Some(session) = server.handle.session_pid(&alice.device()) else {
        panic!("alice online");
    };
    assert!(node.kill(session));
    assert_eq!(node.watch(session).await, ExitReason::Killed);
    assert_eq!(
        server.handle.session_pid(&alice.device()),
        None,
        "a killed session leaves the router"
    );
    let alice_id = alice.id.clone();
    drop(alice);
    let mut alice = TestClient::connect(&server, alice_id).await;
    let receipt = alice.expect_delivered().await;
    assert_eq!(receipt.id, mid(9));
    assert_eq!(receipt.to, bob.device());
    server.handle.shutdown().await;
}

#[tokio::test]
async fn duplicate_sends_are_accepted_but_delivered_once() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    alice.send_direct(&bob.device(), mid(1), b"once").await;
    alice.send_direct(&bob.device(), mid(1), b"once").await;
    alice.send_direct(&bob.device(), mid(2), b"twice").await;
    let first = bob.expect_deliver().await;
    assert_eq!(first.id, mid(1));
    let second = bob.expect_deliver().await;
    assert_eq!(second.id, mid(2), "the duplicate must not be delivered");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn live_and_parked_frames_from_many_senders_keep_per_sender_order() {
    let server = TestServer::start().await;
    let mut senders = Vec::new();
    for s in 0..4 {
        senders.push(server.client(&format!("sender{s}"), 0).await);
    }
    let bob = server.client("bob", 0).await;
    let bob_id = bob.id.clone();
    drop(bob);
    // Half parked while bob is away, half sent while he reconnects.
    for n in 0..10u8 {
        for s in senders.iter_mut() {
            s.send_direct(&bob_id.device, mid(n), &[n]).await;
        }
    }
    let mut bob = TestClient::connect(&server, bob_id).await;
    let mut tasks = Vec::new();
    for mut s in senders {
        let to = bob.device();
        tasks.push(tokio::spawn(async move {
            for n in 10..20u8 {
                s.send_direct(&to, mid(n), &[n]).await;
            }
            s
        }));
    }
    let mut next = std::collections::HashMap::new();
    for _ in 0..80 {
        let d = bob.expect_deliver().await;
        let expected = next.entry(d.from.clone()).or_insert(0u8);
        assert_eq!(d.id, mid(*expected), "from {}", d.from);
        *expected += 1;
        bob.ack(&d).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn send_to_unknown_device_is_refused() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let nobody = Identity::new("nobody", 0).device;
    alice
        .send(courier::protocol::SendDirect {
            id: mid(9),
            to: nobody,
            body: bytes::Bytes::from_static(b"x"),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, courier::protocol::ErrorCode::UnknownRecipient);
            assert_eq!(e.id, Some(mid(9)));
        }
        other => panic!("expected error, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn cannot_ack_another_devices_message() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    let mut eve = server.client("eve", 0).await;
    let bob_id = bob.id.clone();
    drop(bob);
    alice.send_direct(&bob_id.device, mid(3), b"for bob").await;
    eve.send(DeliveryAck {
        from: alice.device(),
        id: mid(3),
    })
    .await;
    eve.sync().await;
    // Alice got no receipt, and bob still gets the frame.
    let before = alice.sync().await;
    assert!(before.is_empty(), "unexpected {before:?}");
    bob = TestClient::connect(&server, bob_id).await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.id, mid(3));
    server.handle.shutdown().await;
}

#[tokio::test]
async fn mailbox_quota_refuses_with_mailbox_full() {
    let mut limits = Limits::default();
    limits.mailbox_quota = 3;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let bob = server.client("bob", 0).await;
    let bob_dev = bob.device();
    drop(bob);
    for n in 0..3 {
        alice.send_direct(&bob_dev, mid(n), b"x").await;
    }
    alice
        .send(courier::protocol::SendDirect {
            id: mid(3),
            to: bob_dev,
            body: bytes::Bytes::from_static(b"x"),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, courier::protocol::ErrorCode::MailboxFull);
            assert_eq!(e.id, Some(mid(3)));
        }
        other => panic!("expected MailboxFull, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_parked_frames() {
    let dir = tempfile::tempdir().unwrap();
    let alice_id = Identity::new("alice", 0);
    let bob_id = Identity::new("bob", 0);
    let plaintext_marker = b"PLAINTEXT-MUST-NOT-APPEAR";
    {
        let handle = support::builder(dir.path(), Limits::default(), Durability::Fsync)
            .start()
            .await
            .unwrap();
        let server = TestServerRef::new(&handle);
        let bob = TestClient::connect_to(server.addr, server.pin, bob_id.clone()).await;
        drop(bob);
        let mut alice = TestClient::connect_to(server.addr, server.pin, alice_id.clone()).await;
        for n in 0..5u8 {
            // The "sealed" body here is opaque bytes that do not contain
            // the marker; the marker is what a client would have sealed.
            alice
                .send_direct(&bob_id.device, mid(n), &seal(plaintext_marker, n))
                .await;
        }
        handle.shutdown().await;
    }
    let handle = support::builder(dir.path(), Limits::default(), Durability::Fsync)
        .start()
        .await
        .unwrap();
    let server = TestServerRef::new(&handle);
    let mut bob = TestClient::connect_to(server.addr, server.pin, bob_id).await;
    for n in 0..5u8 {
        let d = bob.expect_deliver().await;
        assert_eq!(d.id, mid(n));
        assert_eq!(&d.body[..], &seal(plaintext_marker, n)[..]);
    }
    handle.shutdown().await;
    assert_no_plaintext(dir.path(), plaintext_marker);
}

#[tokio::test]
async fn acked_frames_are_gone_from_the_store_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alice_id = Identity::new("alice", 0);
    let bob_id = Identity::new("bob", 0);
    {
        let handle = support::builder(dir.path(), Limits::default(), Durability::Fsync)
            .start()
            .await
            .unwrap();
        let s = TestServerRef::new(&handle);
        let mut bob = TestClient::connect_to(s.addr, s.pin, bob_id.clone()).await;
        let mut alice = TestClient::connect_to(s.addr, s.pin, alice_id.clone()).await;
        alice.send_direct(&bob_id.device, mid(1), b"one").await;
        alice.send_direct(&bob_id.device, mid(2), b"two").await;
        let d = bob.expect_deliver().await;
        bob.ack(&d).await;
        assert_eq!(alice.expect_delivered().await.id, mid(1));
        handle.shutdown().await;
    }
    let handle = support::builder(dir.path(), Limits::default(), Durability::Fsync)
        .start()
        .await
        .unwrap();
    let s = TestServerRef::new(&handle);
    let mut bob = TestClient::connect_to(s.addr, s.pin, bob_id).await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.id, mid(2), "the acked frame must not come back");
    let before = bob.sync().await;
    assert!(before.is_empty(), "unexpected {before:?}");
    let _ = random_id();
    handle.shutdown().await;
}

struct TestServerRef {
    addr: std::net::SocketAddr,
    pin: courier::tls::CertFingerprint,
}

impl TestServerRef {
    fn new(handle: &courier::server::ServerHandle) -> Self {
        Self {
            addr: handle.local_addr(),
            pin: handle.fingerprint().unwrap(),
        }
    }
}

/// Stands in for sealing: a reversible scramble that hides the marker.
fn seal(plain: &[u8], n: u8) -> Vec<u8> {
    plain.iter().map(|b| b ^ 0x5a ^ n).collect()
}

fn assert_no_plaintext(dir: &std::path::Path, marker: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_plaintext(&path, marker);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext found in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn hibernating_logic_wakes_for_every_frame() {
    let mut limits = Limits::default();
    limits.logic_hibernate_after = std::time::Duration::ZERO;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    for n in 0..20u8 {
        alice.send_direct(&bob.device(), mid(n), &[n]).await;
        let d = bob.expect_deliver().await;
        assert_eq!(d.id, mid(n));
        bob.ack(&d).await;
        assert_eq!(alice.expect_delivered().await.id, mid(n));
    }
    server.handle.shutdown().await;
}
