//! End to end over real TLS on loopback: the client library against the
//! real server, with real sealing.

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod e2e;
}

use courier::chaos::{Direction, FaultProxy};
use courier::client::{Client, Content, Event, Status};
use courier::protocol::Conversation;
use support::e2e::{TestServer, accepted, delivered, name, next_text, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_sealed_messages_both_ways() {
    let server = TestServer::start().await;
    let (alice, mut alice_events) = server.client("alice", 1).await;
    let (bob, mut bob_events) = server.client("bob", 1).await;

    let id = alice.send_text(&name("bob"), "hello bob").await.unwrap();
    accepted(&mut alice_events, id).await;
    assert_eq!(
        next_text(&mut bob_events).await,
        ("hello bob".to_owned(), id)
    );
    assert_eq!(delivered(&mut alice_events, id).await, *bob.device());

    let reply = bob.send_text(&name("alice"), "hello alice").await.unwrap();
    accepted(&mut bob_events, reply).await;
    assert_eq!(
        next_text(&mut alice_events).await,
        ("hello alice".to_owned(), reply)
    );
    assert_eq!(delivered(&mut bob_events, reply).await, *alice.device());

    // A read receipt travels as a sealed message and marks the history.
    bob.mark_read(&name("alice"), vec![id]).await.unwrap();
    wait_for(&mut alice_events, |e| match e {
        Event::Message {
            content: Content::ReadReceipt { ids },
            ..
        } => (ids == &vec![id]).then_some(()),
        _ => None,
    })
    .await;
    let history = alice.history(&Conversation::Direct(name("bob"))).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, Status::Read);

    let alice_sees = alice.safety_numbers(&name("bob")).unwrap();
    let bob_sees = bob.safety_numbers(&name("alice")).unwrap();
    assert_eq!(alice_sees.len(), 1);
    assert_eq!(
        alice_sees,
        bob_sees
            .into_iter()
            .map(|(_, n)| (1, n))
            .collect::<Vec<_>>()
    );
    alice.close().await;
    bob.close().await;
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_an_offline_device_arrive_in_order_after_it_connects() {
    let server = TestServer::start().await;
    let (bob, _) = server.client("bob", 1).await;
    bob.close().await;

    let (alice, mut alice_events) = server.client("alice", 1).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            alice
                .send_text(&name("bob"), format!("parked {i}"))
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        accepted(&mut alice_events, *id).await;
    }

    let (_bob, mut bob_events) = server.client("bob", 1).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            next_text(&mut bob_events).await,
            (format!("parked {i}"), *id)
        );
    }
    for id in &ids {
        delivered(&mut alice_events, *id).await;
    }
    assert_eq!(alice.outbox_len().unwrap(), 0);
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_clients_keep_their_sessions() {
    let server = TestServer::start().await;
    {
        let (alice, mut alice_events) = server.client("alice", 1).await;
        let (bob, mut bob_events) = server.client("bob", 1).await;
        let id = alice.send_text(&name("bob"), "before").await.unwrap();
        assert_eq!(next_text(&mut bob_events).await.1, id);
        let id = bob.send_text(&name("alice"), "reply").await.unwrap();
        assert_eq!(next_text(&mut alice_events).await.1, id);
        alice.close().await;
        bob.close().await;
    }

    let (alice, mut alice_events) = server.client("alice", 1).await;
    let (bob, mut bob_events) = server.client("bob", 1).await;
    let first_number = alice.safety_numbers(&name("bob")).unwrap();
    for i in 0..3 {
        let id = alice
            .send_text(&name("bob"), format!("after {i}"))
            .await
            .unwrap();
        assert_eq!(next_text(&mut bob_events).await, (format!("after {i}"), id));
        let id = bob
            .send_text(&name("alice"), format!("back {i}"))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut alice_events).await,
            (format!("back {i}"), id)
        );
    }
    // Still the same sessions: no new identity, no undecryptable message.
    assert_eq!(alice.safety_numbers(&name("bob")).unwrap(), first_number);
    assert_eq!(
        alice
            .history(&Conversation::Direct(name("bob")))
            .unwrap()
            .len(),
        8
    );
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_both_users_gets_each_message() {
    let server = TestServer::start().await;
    let (_a1, mut a1_events) = server.client("alice", 1).await;
    let (a2, mut a2_events) = server.client("alice", 2).await;
    let (b1, mut b1_events) = server.client("bob", 1).await;
    let (_b2, mut b2_events) = server.client("bob", 2).await;

    let id = a2.send_text(&name("bob"), "to every bob").await.unwrap();
    assert_eq!(next_text(&mut b1_events).await.1, id);
    assert_eq!(next_text(&mut b2_events).await.1, id);
    let copy = wait_for(&mut a1_events, |e| match e {
        Event::Message {
            content: Content::Sent { to, id, content },
            ..
        } => Some((to.clone(), *id, (**content).clone())),
        _ => None,
    })
    .await;
    assert_eq!(copy, (name("bob"), id, Content::text("to every bob")));
    let mut receivers = [
        delivered(&mut a2_events, id).await.device,
        delivered(&mut a2_events, id).await.device,
    ];
    receivers.sort_unstable();
    assert_eq!(receivers, [1, 2]);

    // The answer reaches both of alice's devices and bob's other device.
    let reply = b1.send_text(&name("alice"), "both of you").await.unwrap();
    assert_eq!(next_text(&mut a2_events).await.1, reply);
    assert_eq!(next_text(&mut a1_events).await.1, reply);
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_by_server_and_receiver() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let (alice, mut alice_events) = server.client("alice", 1).await;
    let (bob, mut bob_events) = Client::connect(server.config_via(proxy.local_addr(), "bob", 1))
        .await
        .unwrap();

    // The same id twice: the server accepts both, stores and delivers one
    // (bob's next message below is the next one he gets).
    let id = alice.send_text(&name("bob"), "once").await.unwrap();
    accepted(&mut alice_events, id).await;
    assert_eq!(next_text(&mut bob_events).await, ("once".to_owned(), id));
    delivered(&mut alice_events, id).await;
    alice
        .send_with_id(&name("bob"), id, Content::text("once"))
        .await
        .unwrap();
    accepted(&mut alice_events, id).await;

    // Bob's acknowledgement is lost: the server delivers again after the
    // reconnect, and bob drops the copy but acknowledges it.
    for conn in proxy.connections() {
        conn.stall(Direction::ToServer);
    }
    let again = alice
        .send_text(&name("bob"), "twice on the wire")
        .await
        .unwrap();
    assert_eq!(next_text(&mut bob_events).await.1, again);
    proxy.drop_all();
    delivered(&mut alice_events, again).await;
    let last = alice.send_text(&name("bob"), "after").await.unwrap();
    assert_eq!(next_text(&mut bob_events).await, ("after".to_owned(), last));
    assert_eq!(bob.stats().received, 3);
    assert_eq!(bob.stats().duplicates_dropped, 1);
    server.handle.shutdown().await;
}
