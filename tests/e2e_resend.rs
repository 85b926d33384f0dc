//! End to end: messages the server has not accepted are kept and sent again
//! after a reconnect, under the same id.

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod e2e;
}

use courier::chaos::{Direction, FaultProxy};
use courier::client::{Client, Event};
use support::e2e::{TestServer, accepted, delivered, name, next_text, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaccepted_message_is_resent_after_the_connection_drops() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let (_bob, mut bob_events) = server.client("bob", 1).await;
    let (alice, mut alice_events) =
        Client::connect(server.config_via(proxy.local_addr(), "alice", 1))
            .await
            .unwrap();
    let first = alice.send_text(&name("bob"), "first").await.unwrap();
    assert_eq!(next_text(&mut bob_events).await.1, first);
    accepted(&mut alice_events, first).await;

    // The next send never reaches the server, then the connection drops.
    for conn in proxy.connections() {
        conn.stall(Direction::ToServer);
    }
    let second = alice.send_text(&name("bob"), "second").await.unwrap();
    let third = alice.send_text(&name("bob"), "third").await.unwrap();
    assert_eq!(alice.outbox_len().unwrap(), 2);
    proxy.drop_all();
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;

    accepted(&mut alice_events, second).await;
    accepted(&mut alice_events, third).await;
    assert_eq!(
        next_text(&mut bob_events).await,
        ("second".to_owned(), second)
    );
    assert_eq!(
        next_text(&mut bob_events).await,
        ("third".to_owned(), third)
    );
    delivered(&mut alice_events, third).await;
    assert_eq!(alice.outbox_len().unwrap(), 0);
    // The reconnection resumed the TLS session instead of a full handshake.
    assert_eq!(alice.stats().connections, 2);
    assert_eq!(alice.stats().resumed, 1);
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_sent_while_the_server_is_down_goes_out_after_it_returns() {
    let mut server = TestServer::start().await;
    let (_bob, mut bob_events) = server.client("bob", 1).await;
    let (alice, mut alice_events) = server.client("alice", 1).await;
    let id = alice.send_text(&name("bob"), "warm up").await.unwrap();
    assert_eq!(next_text(&mut bob_events).await.1, id);
    accepted(&mut alice_events, id).await;

    server.handle.shutdown().await;
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    let queued = alice
        .send_text(&name("bob"), "queued offline")
        .await
        .unwrap();
    assert_eq!(alice.outbox_len().unwrap(), 1);

    server.restart().await;
    accepted(&mut alice_events, queued).await;
    assert_eq!(
        next_text(&mut bob_events).await,
        ("queued offline".to_owned(), queued)
    );
    delivered(&mut alice_events, queued).await;
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_a_client_restart() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let (_bob, mut bob_events) = server.client("bob", 1).await;
    let config = server.config_via(proxy.local_addr(), "alice", 1);
    let (alice, _) = Client::connect(config.clone()).await.unwrap();
    let first = alice.send_text(&name("bob"), "first").await.unwrap();
    assert_eq!(next_text(&mut bob_events).await.1, first);

    for conn in proxy.connections() {
        conn.stall(Direction::ToServer);
    }
    let lost = alice.send_text(&name("bob"), "kept on disk").await.unwrap();
    alice.close().await;
    proxy.drop_all();

    let (alice, mut alice_events) = Client::connect(config).await.unwrap();
    accepted(&mut alice_events, lost).await;
    assert_eq!(
        next_text(&mut bob_events).await,
        ("kept on disk".to_owned(), lost)
    );
    assert_eq!(alice.outbox_len().unwrap(), 0);
    server.handle.shutdown().await;
}
