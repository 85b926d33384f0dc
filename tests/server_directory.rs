//! Prekeys, groups, media and presence over real TLS.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use courier::protocol::{
    AddMembers, Conversation, CreateGroup, ErrorCode, GroupId, LeaveGroup, MediaDownload, MediaId,
    MediaUploadBegin, MediaUploadChunk, MediaUploadFinish, OneTimePrekey, PresenceState,
    QueryGroup, RemoveMembers, RequestBundle, SealedCopy, SendToGroup, SendToUser, ServerFrame,
    SignedPrekey, SubscribePresence, Typing, UploadPrekeys, UserName,
};
use courier::server::Limits;
use courier::store::Durability;
use sha2::{Digest, Sha256};
use support::{TestClient, TestServer, mid};

fn name(s: &str) -> UserName {
    UserName::new(s).unwrap()
}

fn upload(n: u32) -> UploadPrekeys {
    UploadPrekeys {
        id: mid(200),
        signed_prekey: SignedPrekey {
            id: 1,
            key: [9; 32],
            signature: [8; 64],
        },
        one_time: (0..n)
            .map(|i| OneTimePrekey {
                id: i,
                key: [i as u8; 32],
            })
            .collect(),
    }
}

async fn expect_error(client: &mut TestClient, code: ErrorCode) {
    match client.recv().await {
        ServerFrame::Error(e) => assert_eq!(e.code, code, "{e:?}"),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

async fn expect_accepted(client: &mut TestClient, id: courier::protocol::MessageId) {
    loop {
        match client.recv().await {
            ServerFrame::Accepted(a) => return assert_eq!(a.id, id),
            ServerFrame::GroupChanged(_) => {}
            other => panic!("expected Accepted, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn bundle_hands_out_each_one_time_prekey_once() {
    let server = TestServer::start().await;
    let mut bob = server.client("bob", 0).await;
    bob.send(upload(3)).await;
    expect_accepted(&mut bob, mid(200)).await;
    let mut alice = server.client("alice", 0).await;
    let mut seen = Vec::new();
    for n in 0..4 {
        alice
            .send(RequestBundle {
                id: mid(n),
                user: name("bob"),
            })
            .await;
        match alice.recv().await {
            ServerFrame::Bundle(b) => {
                assert_eq!(b.devices.len(), 1);
                let d = &b.devices[0];
                assert_eq!(d.signed_prekey.id, 1);
                assert_eq!(d.identity, bob.id.public());
                seen.push(d.one_time_prekey.as_ref().map(|p| p.id));
            }
            other => panic!("expected Bundle, got {other:?}"),
        }
    }
    assert_eq!(seen, vec![Some(0), Some(1), Some(2), None]);
    // Bob hears that he runs low.
    let frames = bob.conn.recv().await;
    assert!(matches!(frames, ServerFrame::PrekeysLow(_)), "{frames:?}");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn too_many_prekeys_are_refused_and_unknown_users_have_no_bundle() {
    let mut limits = Limits::default();
    limits.max_one_time_prekeys = 5;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut bob = server.client("bob", 0).await;
    bob.send(upload(6)).await;
    expect_error(&mut bob, ErrorCode::TooManyPrekeys).await;
    bob.send(RequestBundle {
        id: mid(1),
        user: name("nobody"),
    })
    .await;
    expect_error(&mut bob, ErrorCode::UnknownRecipient).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn send_to_user_needs_exactly_the_current_devices() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob0 = server.client("bob", 0).await;
    let mut second = support::Identity::new("bob", 1);
    second.keys = bob0.id.keys.clone();
    let mut bob1 = TestClient::connect(&server, second).await;
    let copy = |device: u32| SealedCopy {
        device,
        body: Bytes::from(vec![device as u8]),
    };
    alice
        .send(SendToUser {
            id: mid(1),
            to: name("bob"),
            copies: vec![copy(0)],
        })
        .await;
    expect_error(&mut alice, ErrorCode::StaleDevices).await;
    alice
        .send(SendToUser {
            id: mid(2),
            to: name("bob"),
            copies: vec![copy(0), copy(1)],
        })
        .await;
    expect_accepted(&mut alice, mid(2)).await;
    assert_eq!(&bob0.expect_deliver().await.body[..], &[0]);
    assert_eq!(&bob1.expect_deliver().await.body[..], &[1]);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn groups_fan_out_and_enforce_membership() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    let carol = server.client("carol", 0).await;
    let carol_id = carol.id.clone();
    drop(carol);
    let mut eve = server.client("eve", 0).await;
    let group = GroupId([5; 16]);
    alice
        .send(CreateGroup {
            id: mid(1),
            group,
            members: vec![name("bob"), name("carol")],
        })
        .await;
    expect_accepted(&mut alice, mid(1)).await;
    match bob.recv().await {
        ServerFrame::GroupChanged(c) => {
            assert_eq!(c.version, 1);
            assert_eq!(c.by, alice.device());
            assert_eq!(c.added, vec![name("alice"), name("bob"), name("carol")]);
        }
        other => panic!("expected GroupChanged, got {other:?}"),
    }
    // Repeating the creation is harmless; another creation is refused.
    alice
        .send(CreateGroup {
            id: mid(1),
            group,
            members: vec![name("bob")],
        })
        .await;
    expect_accepted(&mut alice, mid(1)).await;
    eve.send(CreateGroup {
        id: mid(2),
        group,
        members: vec![],
    })
    .await;
    expect_error(&mut eve, ErrorCode::Forbidden).await;

    alice
        .send(SendToGroup {
            id: mid(3),
            group,
            body: Bytes::from_static(b"to all"),
        })
        .await;
    expect_accepted(&mut alice, mid(3)).await;
    let d = bob.expect_deliver().await;
    assert_eq!(d.group, Some(group));
    assert_eq!(&d.body[..], b"to all");
    // Carol was offline: the notice and the message wait for her, in order.
    let mut carol = TestClient::connect(&server, carol_id).await;
    assert!(matches!(carol.recv().await, ServerFrame::GroupChanged(_)));
    assert_eq!(carol.expect_deliver().await.id, mid(3));

    eve.send(SendToGroup {
        id: mid(4),
        group,
        body: Bytes::from_static(b"intruder"),
    })
    .await;
    expect_error(&mut eve, ErrorCode::Forbidden).await;
    bob.send(AddMembers {
        id: mid(5),
        group,
        members: vec![name("eve")],
    })
    .await;
    expect_error(&mut bob, ErrorCode::Forbidden).await;
    eve.send(QueryGroup { id: mid(6), group }).await;
    expect_error(&mut eve, ErrorCode::Forbidden).await;
    eve.send(QueryGroup {
        id: mid(7),
        group: GroupId([6; 16]),
    })
    .await;
    expect_error(&mut eve, ErrorCode::UnknownGroup).await;

    alice
        .send(RemoveMembers {
            id: mid(8),
            group,
            members: vec![name("carol")],
        })
        .await;
    expect_accepted(&mut alice, mid(8)).await;
    alice.send(LeaveGroup { id: mid(9), group }).await;
    expect_accepted(&mut alice, mid(9)).await;
    bob.sync().await;
    bob.send(QueryGroup { id: mid(10), group }).await;
    loop {
        match bob.recv().await {
            ServerFrame::GroupInfo(info) => {
                assert_eq!(info.owner, name("bob"), "ownership passes on");
                assert_eq!(info.members, vec![name("bob")]);
                // Created, carol removed, alice out and bob owner in one
                // change: three versions.
                assert_eq!(info.version, 3);
                break;
            }
            ServerFrame::GroupChanged(_) => {}
            other => panic!("expected GroupInfo, got {other:?}"),
        }
    }
    server.handle.shutdown().await;
}

/// Alice creates `group` with bob and waits until the notices are out:
/// they go after the answer, and the answer to a later ping follows them.
async fn create_group_with_bob(alice: &mut TestClient, group: GroupId) {
    alice
        .send(CreateGroup {
            id: mid(1),
            group,
            members: vec![name("bob")],
        })
        .await;
    expect_accepted(alice, mid(1)).await;
    alice.sync().await;
}

#[tokio::test]
async fn a_group_notice_the_member_never_read_comes_again_after_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let bob = server.client("bob", 0).await;
    let group = GroupId([7; 16]);
    create_group_with_bob(&mut alice, group).await;
    // Bob's connection goes away without reading it.
    let bob_id = bob.id.clone();
    drop(bob);
    let mut bob = TestClient::connect(&server, bob_id).await;
    match bob.recv().await {
        ServerFrame::GroupChanged(c) => {
            assert_eq!(c.group, group);
            assert_eq!(c.version, 1);
            assert_eq!(c.by, alice.device());
        }
        other => panic!("expected GroupChanged, got {other:?}"),
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_parked_group_notice_stays_until_the_client_confirms_it() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    let bob = server.client("bob", 0).await;
    let bob_id = bob.id.clone();
    drop(bob);
    create_group_with_bob(&mut alice, GroupId([8; 16])).await;
    // Bob's mailbox hands him the notice; he goes away before answering
    // the ping that would confirm it, so it comes again.
    for _ in 0..2 {
        let mut bob = TestClient::connect(&server, bob_id.clone()).await;
        assert!(matches!(bob.recv().await, ServerFrame::GroupChanged(_)));
    }
    // Once confirmed, it does not.
    let mut bob = TestClient::connect(&server, bob_id.clone()).await;
    let before = bob.answer_ping().await;
    assert!(
        matches!(before[..], [ServerFrame::GroupChanged(_)]),
        "{before:?}"
    );
    // The pong is handled before the answer to this ping.
    bob.sync().await;
    drop(bob);
    let mut bob = TestClient::connect(&server, bob_id).await;
    let after = bob.sync().await;
    assert!(after.is_empty(), "{after:?}");
    server.handle.shutdown().await;
}

#[tokio::test]
async fn group_size_is_limited() {
    let mut limits = Limits::default();
    limits.max_group_size = 2;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let _bob = server.client("bob", 0).await;
    let _carol = server.client("carol", 0).await;
    alice
        .send(CreateGroup {
            id: mid(1),
            group: GroupId([1; 16]),
            members: vec![name("bob"), name("carol")],
        })
        .await;
    expect_error(&mut alice, ErrorCode::GroupTooLarge).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn media_uploads_download_and_check_digest_and_size() {
    let mut limits = Limits::default();
    limits.max_media_chunk_bytes = 1000;
    limits.max_media_bytes = 10_000;
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let mut bob = server.client("bob", 0).await;
    let blob: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let media = MediaId([3; 16]);
    alice
        .send(MediaUploadBegin {
            media,
            total_bytes: blob.len() as u64,
            digest: Sha256::digest(&blob).into(),
        })
        .await;
    for (i, chunk) in blob.chunks(1000).enumerate() {
        alice
            .send(MediaUploadChunk {
                media,
                offset: (i * 1000) as u64,
                data: Bytes::copy_from_slice(chunk),
            })
            .await;
    }
    alice.send(MediaUploadFinish { media }).await;
    match alice.recv().await {
        ServerFrame::MediaStored(s) => assert_eq!(s.media, media),
        other => panic!("expected MediaStored, got {other:?}"),
    }
    bob.send(MediaDownload { media, offset: 500 }).await;
    let mut got = Vec::new();
    while got.len() < blob.len() - 500 {
        match bob.recv().await {
            ServerFrame::MediaChunk(c) => {
                assert_eq!(c.offset as usize, 500 + got.len());
                assert_eq!(c.total_bytes, blob.len() as u64);
                got.extend_from_slice(&c.data);
            }
            other => panic!("expected MediaChunk, got {other:?}"),
        }
    }
    assert_eq!(&got[..], &blob[500..]);

    // Too large, wrong digest, unknown.
    alice
        .send(MediaUploadBegin {
            media: MediaId([4; 16]),
            total_bytes: 10_001,
            digest: [0; 32],
        })
        .await;
    expect_error(&mut alice, ErrorCode::MediaTooLarge).await;
    alice
        .send(MediaUploadBegin {
            media: MediaId([5; 16]),
            total_bytes: 3,
            digest: [0; 32],
        })
        .await;
    alice
        .send(MediaUploadChunk {
            media: MediaId([5; 16]),
            offset: 0,
            data: Bytes::from_static(b"abc"),
        })
        .await;
    alice
        .send(MediaUploadFinish {
            media: MediaId([5; 16]),
        })
        .await;
    expect_error(&mut alice, ErrorCode::MediaMismatch).await;
    bob.send(MediaDownload {
        media: MediaId([5; 16]),
        offset: 0,
    })
    .await;
    expect_error(&mut bob, ErrorCode::UnknownMedia).await;
    server.handle.shutdown().await;
}

#[tokio::test]
async fn media_expires_after_its_ttl() {
    let mut limits = Limits::default();
    limits.media_ttl = Duration::from_millis(200);
    let server = TestServer::with(limits, Durability::Memory).await;
    let mut alice = server.client("alice", 0).await;
    let media = MediaId([7; 16]);
    alice
        .send(MediaUploadBegin {
            media,
            total_bytes: 1,
            digest: Sha256::digest([1u8]).into(),
        })
        .await;
    alice
        .send(MediaUploadChunk {
            media,
            offset: 0,
            data: Bytes::from_static(&[1]),
        })
        .await;
    alice.send(MediaUploadFinish { media }).await;
    let expires = match alice.recv().await {
        ServerFrame::MediaStored(s) => s.expires_at_ms,
        other => panic!("expected MediaStored, got {other:?}"),
    };
    // Poll until the expiry has passed: a download then fails.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        alice.send(MediaDownload { media, offset: 0 }).await;
        match alice.recv().await {
            ServerFrame::MediaChunk(_) => {
                assert!(tokio::time::Instant::now() < deadline, "blob never expired");
                tokio::task::yield_now().await;
            }
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::UnknownMedia);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                assert!(now >= expires);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    server.handle.shutdown().await;
}

#[tokio::test]
async fn presence_and_typing_reach_online_followers() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice", 0).await;
    alice
        .send(SubscribePresence {
            users: vec![name("bob")],
        })
        .await;
    match alice.recv().await {
        ServerFrame::Presence(p) => assert_eq!(p.state, PresenceState::Offline),
        other => panic!("expected Presence, got {other:?}"),
    }
    let mut bob = server.client("bob", 0).await;
    match alice.recv().await {
        ServerFrame::Presence(p) => {
            assert_eq!(p.user, name("bob"));
            assert_eq!(p.state, PresenceState::Online);
        }
        other => panic!("expected Presence, got {other:?}"),
    }
    bob.send(Typing {
        to: Conversation::Direct(name("alice")),
        active: true,
    })
    .await;
    match alice.recv().await {
        ServerFrame::TypingNotice(t) => {
            assert_eq!(t.from, bob.device());
            assert!(t.active);
        }
        other => panic!("expected TypingNotice, got {other:?}"),
    }
    drop(bob);
    match alice.recv().await {
        ServerFrame::Presence(p) => {
            assert_eq!(p.state, PresenceState::Offline);
            assert!(p.last_seen_ms.is_some());
        }
        other => panic!("expected Presence, got {other:?}"),
    }
    server.handle.shutdown().await;
}
