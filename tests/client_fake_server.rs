//! The client library against a small in-memory server: sessions from
//! bundles, both directions, multiple devices, offline delivery, restarts,
//! resends and duplicates.

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod fake_server;
}

use std::path::Path;
use std::time::Duration;

use courier::chaos::FaultProxy;
use courier::client::{Client, ClientConfig, Content, Event, Events, Status, Trust};
use courier::protocol::{Conversation, MessageId, UserName};
use support::fake_server::FakeServer;

const WAIT: Duration = Duration::from_secs(10);

fn name(user: &str) -> UserName {
    UserName::new(user).unwrap()
}

fn config(
    addr: impl ToString,
    server: &FakeServer,
    user: &str,
    device: u32,
    dir: &Path,
) -> ClientConfig {
    ClientConfig::new(
        addr.to_string(),
        Trust::Pinned(server.fingerprint),
        name(user),
        device,
        dir.join(format!("{user}-{device}")),
    )
    .with_reconnect(Duration::from_millis(20), Duration::from_millis(200))
}

async fn start(server: &FakeServer, user: &str, device: u32, dir: &Path) -> (Client, Events) {
    Client::connect(config(server.addr, server, user, device, dir))
        .await
        .unwrap()
}

/// Waits for the first event that `pick` maps to a value.
async fn wait_for<T>(events: &mut Events, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("client stopped");
            if let Some(value) = pick(&event) {
                return value;
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}

async fn text_from(events: &mut Events) -> (String, MessageId) {
    wait_for(events, |e| match e {
        Event::Message {
            content: Content::Text(text),
            id,
            ..
        } => Some((text.clone(), *id)),
        _ => None,
    })
    .await
}

async fn delivered(events: &mut Events, id: MessageId) {
    wait_for(events, |e| match e {
        Event::Delivered { id: got, .. } if *got == id => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_messages_both_ways() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (alice, mut alice_events) = start(&server, "alice", 1, dir.path()).await;
    let (bob, mut bob_events) = start(&server, "bob", 1, dir.path()).await;

    let id = alice.send_text(&name("bob"), "hello bob").await.unwrap();
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Accepted { id: got } if *got == id).then_some(())
    })
    .await;
    assert_eq!(
        text_from(&mut bob_events).await,
        ("hello bob".to_owned(), id)
    );
    delivered(&mut alice_events, id).await;

    let reply = bob.send_text(&name("alice"), "hi alice").await.unwrap();
    assert_eq!(
        text_from(&mut alice_events).await,
        ("hi alice".to_owned(), reply)
    );
    delivered(&mut bob_events, reply).await;

    for i in 0..5 {
        alice
            .send_text(&name("bob"), format!("again {i}"))
            .await
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(text_from(&mut bob_events).await.0, format!("again {i}"));
    }

    let history = alice.history(&Conversation::Direct(name("bob"))).unwrap();
    assert_eq!(history.first().unwrap().status, Status::Delivered);
    assert_eq!(history.len(), 7);
    let numbers_a = alice.safety_numbers(&name("bob")).unwrap();
    let numbers_b = bob.safety_numbers(&name("alice")).unwrap();
    assert_eq!(numbers_a.len(), 1);
    assert_eq!(numbers_a[0].1, numbers_b[0].1);
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_gets_messages_in_order_and_restart_keeps_sessions() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (bob, _) = start(&server, "bob", 1, dir.path()).await;
    bob.close().await;

    let (alice, mut alice_events) = start(&server, "alice", 1, dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            alice
                .send_text(&name("bob"), format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        wait_for(&mut alice_events, |e| {
            matches!(e, Event::Accepted { id: got } if got == id).then_some(())
        })
        .await;
    }

    let (bob, mut bob_events) = start(&server, "bob", 1, dir.path()).await;
    for i in 0..10 {
        assert_eq!(text_from(&mut bob_events).await.0, format!("m{i}"));
    }
    let reply = bob.send_text(&name("alice"), "back").await.unwrap();
    assert_eq!(text_from(&mut alice_events).await.1, reply);

    // Both restart from their state directories; the sessions continue.
    alice.close().await;
    bob.close().await;
    let (alice, mut alice_events) = start(&server, "alice", 1, dir.path()).await;
    let (bob, mut bob_events) = start(&server, "bob", 1, dir.path()).await;
    let id = alice
        .send_text(&name("bob"), "after restart")
        .await
        .unwrap();
    assert_eq!(
        text_from(&mut bob_events).await,
        ("after restart".to_owned(), id)
    );
    let id = bob.send_text(&name("alice"), "me too").await.unwrap();
    assert_eq!(
        text_from(&mut alice_events).await,
        ("me too".to_owned(), id)
    );
    assert_eq!(alice.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_device_of_both_users() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_a1, mut a1_events) = start(&server, "alice", 1, dir.path()).await;
    let (a2, mut a2_events) = start(&server, "alice", 2, dir.path()).await;
    let (_b1, mut b1_events) = start(&server, "bob", 1, dir.path()).await;
    let (_b2, mut b2_events) = start(&server, "bob", 2, dir.path()).await;

    let id = a2.send_text(&name("bob"), "to all of bob").await.unwrap();
    assert_eq!(text_from(&mut b1_events).await.1, id);
    assert_eq!(text_from(&mut b2_events).await.1, id);
    let copy = wait_for(&mut a1_events, |e| match e {
        Event::Message {
            content: Content::Sent { to, id, content },
            ..
        } => Some((to.clone(), *id, (**content).clone())),
        _ => None,
    })
    .await;
    assert_eq!(copy, (name("bob"), id, Content::text("to all of bob")));
    // Alice's second device hears both deliveries.
    delivered(&mut a2_events, id).await;
    delivered(&mut a2_events, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_send_is_resent_after_reconnect_and_duplicates_are_dropped() {
    let server = FakeServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_bob, mut bob_events) = start(&server, "bob", 1, dir.path()).await;
    let (alice, mut alice_events) =
        Client::connect(config(proxy.local_addr(), &server, "alice", 1, dir.path()))
            .await
            .unwrap();
    let first = alice.send_text(&name("bob"), "first").await.unwrap();
    assert_eq!(text_from(&mut bob_events).await.1, first);
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Accepted { id } if *id == first).then_some(())
    })
    .await;

    // The next send never reaches the server; the connection then drops.
    for conn in proxy.connections() {
        conn.stall(courier::chaos::Direction::ToServer);
    }
    let second = alice.send_text(&name("bob"), "second").await.unwrap();
    assert_eq!(alice.outbox_len().unwrap(), 1);
    proxy.drop_all();
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Accepted { id } if *id == second).then_some(())
    })
    .await;
    assert_eq!(text_from(&mut bob_events).await.1, second);
    assert_eq!(alice.outbox_len().unwrap(), 0);

    // Sending the same id again: the server answers Accepted, nobody gets it twice.
    delivered(&mut alice_events, second).await;
    alice
        .send_with_id(&name("bob"), second, Content::text("second"))
        .await
        .unwrap();
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Accepted { id } if *id == second).then_some(())
    })
    .await;
    let third = alice.send_text(&name("bob"), "third").await.unwrap();
    assert_eq!(text_from(&mut bob_events).await.1, third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_message_is_dropped_but_acknowledged() {
    let server = FakeServer::start().await;
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (alice, mut alice_events) = start(&server, "alice", 1, dir.path()).await;
    let (bob, mut bob_events) =
        Client::connect(config(proxy.local_addr(), &server, "bob", 1, dir.path()))
            .await
            .unwrap();

    server.set_drop_acks(true);
    let id = alice.send_text(&name("bob"), "once").await.unwrap();
    assert_eq!(text_from(&mut bob_events).await.1, id);
    server.set_drop_acks(false);
    proxy.drop_all();
    delivered(&mut alice_events, id).await;
    assert_eq!(bob.stats().duplicates_dropped, 1);
    assert_eq!(bob.stats().received, 1);
}
