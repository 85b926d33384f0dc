//! End to end: group messages sealed once with sender keys, fanned out by
//! the real server.

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod e2e;
}
/// Raw frames, for a member that changes the group (the client library
/// creates groups and sends to them).
#[path = "support/mod.rs"]
mod raw;

use courier::client::{Content, Event, Events};
use courier::protocol::{AddMembers, CreateGroup, GroupId, MessageId, ServerFrame};
use support::e2e::{TestServer, accepted, name, wait_for};

async fn group_text(events: &mut Events) -> (GroupId, String, MessageId) {
    wait_for(events, |e| match e {
        Event::Message {
            group: Some(group),
            content: Content::Text(text),
            id,
            ..
        } => Some((*group, text.clone(), *id)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_reach_every_member() {
    let server = TestServer::start().await;
    let (alice, mut alice_events) = server.client("alice", 1).await;
    let (bob, mut bob_events) = server.client("bob", 1).await;
    let (_carol, mut carol_events) = server.client("carol", 1).await;

    let group = alice
        .create_group(&[name("bob"), name("carol")])
        .await
        .unwrap();
    let id = alice
        .send_group(group, Content::text("hello group"))
        .await
        .unwrap();
    accepted(&mut alice_events, id).await;
    assert_eq!(
        group_text(&mut bob_events).await,
        (group, "hello group".to_owned(), id)
    );
    assert_eq!(
        group_text(&mut carol_events).await,
        (group, "hello group".to_owned(), id)
    );

    // Bob learned the members from the server (its `GroupChanged` came
    // before the message) and answers with his own key.
    let groups = bob.groups().unwrap();
    assert_eq!(groups.len(), 1);
    let (known, mut members) = groups.into_iter().next().unwrap();
    assert_eq!(known, group);
    members.sort();
    assert_eq!(members, vec![name("alice"), name("bob"), name("carol")]);
    let reply = bob
        .send_group(group, Content::text("hi all"))
        .await
        .unwrap();
    assert_eq!(
        group_text(&mut alice_events).await,
        (group, "hi all".to_owned(), reply)
    );
    assert_eq!(
        group_text(&mut carol_events).await,
        (group, "hi all".to_owned(), reply)
    );
    for i in 0..3 {
        alice
            .send_group(group, Content::text(format!("more {i}")))
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert_eq!(group_text(&mut carol_events).await.1, format!("more {i}"));
    }
    server.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_later_learns_the_whole_group() {
    let server = TestServer::start().await;
    let mut alice = raw::TestClient::connect_to(
        server.addr,
        server.fingerprint,
        raw::Identity::new("alice", 1),
    )
    .await;
    let (_carol, _carol_events) = server.client("carol", 1).await;
    let (bob, mut bob_events) = server.client("bob", 1).await;
    let group = GroupId([3; 16]);
    alice
        .send(CreateGroup {
            id: raw::mid(1),
            group,
            members: vec![name("carol")],
        })
        .await;
    alice
        .send(AddMembers {
            id: raw::mid(2),
            group,
            members: vec![name("bob")],
        })
        .await;
    let mut answered = 0;
    while answered < 2 {
        match alice.recv().await {
            ServerFrame::Accepted(_) => answered += 1,
            ServerFrame::GroupChanged(_) => {}
            other => panic!("expected Accepted, got {other:?}"),
        }
    }
    // Bob's notice says only that he joined at version 2; he asks for the
    // rest.
    let mut members = wait_for(&mut bob_events, |e| match e {
        Event::GroupChanged { group: g, members } if *g == group && members.len() == 3 => {
            Some(members.clone())
        }
        _ => None,
    })
    .await;
    members.sort();
    assert_eq!(members, vec![name("alice"), name("bob"), name("carol")]);
    let (_, mut known) = bob.groups().unwrap().into_iter().next().unwrap();
    known.sort();
    assert_eq!(known, members);
    server.handle.shutdown().await;
}
