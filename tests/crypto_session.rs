//! Pairwise sessions: handshake, ratchet steps, out-of-order delivery,
//! replays, tampering, skip bounds and persistence.
#![allow(clippy::unwrap_used)]

use courier::crypto::{
    EnvelopeKind, IdentityKeyPair, MAX_SKIP, MAX_STORED_SKIPPED, OpenError, PrekeySecrets, Session,
    X3dhError,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Pair {
    rng: StdRng,
    alice: Session,
    bob: Session,
}

fn devices(rng: &mut StdRng) -> (IdentityKeyPair, IdentityKeyPair, PrekeySecrets) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut prekeys = PrekeySecrets::new();
    prekeys.rotate_signed_prekey(rng, &bob);
    prekeys.generate_one_time_prekeys(rng, 3);
    (alice, bob, prekeys)
}

fn pair(seed: u64) -> Pair {
    let mut rng = StdRng::seed_from_u64(seed);
    let (alice_id, bob_id, mut prekeys) = devices(&mut rng);
    let bundle = prekeys.bundle(&bob_id.public()).unwrap();
    let (alice, first) = Session::initiate(&mut rng, &alice_id, &bundle, b"first").unwrap();
    let (bob, text) = Session::accept(&mut rng, &bob_id, &mut prekeys, &first).unwrap();
    assert_eq!(text, b"first");
    Pair { rng, alice, bob }
}

fn snapshot(session: &Session) -> Vec<u8> {
    rmp_serde::to_vec(session).unwrap()
}

#[test]
fn messages_flow_both_ways_across_ratchet_steps() {
    let mut p = pair(1);
    for round in 0..5u8 {
        for i in 0..3u8 {
            let m = p.bob.seal(&[round, i]).unwrap();
            assert_eq!(EnvelopeKind::of(&m), Some(EnvelopeKind::Ratchet));
            assert_eq!(p.alice.open_with_rng(&mut p.rng, &m).unwrap(), [round, i]);
        }
        let m = p.alice.seal(&[round]).unwrap();
        assert_eq!(EnvelopeKind::of(&m), Some(EnvelopeKind::Ratchet));
        assert_eq!(p.bob.open_with_rng(&mut p.rng, &m).unwrap(), [round]);
    }
}

#[test]
fn initiator_keeps_sending_initial_messages_until_answered() {
    let mut rng = StdRng::seed_from_u64(2);
    let (alice_id, bob_id, mut prekeys) = devices(&mut rng);
    let bundle = prekeys.bundle(&bob_id.public()).unwrap();
    let (mut alice, lost) = Session::initiate(&mut rng, &alice_id, &bundle, b"lost").unwrap();
    let second = alice.seal(b"second").unwrap();
    assert_eq!(EnvelopeKind::of(&second), Some(EnvelopeKind::Initial));

    // The first message is lost; the second still starts the session.
    let (mut bob, text) = Session::accept(&mut rng, &bob_id, &mut prekeys, &second).unwrap();
    assert_eq!(text, b"second");
    assert_eq!(bob.open_with_rng(&mut rng, &lost).unwrap(), b"lost");
    assert_eq!(prekeys.one_time_count(), 2);

    let reply = bob.seal(b"reply").unwrap();
    assert_eq!(alice.open_with_rng(&mut rng, &reply).unwrap(), b"reply");
    let after = alice.seal(b"after").unwrap();
    assert_eq!(EnvelopeKind::of(&after), Some(EnvelopeKind::Ratchet));
    assert_eq!(bob.open_with_rng(&mut rng, &after).unwrap(), b"after");
}

#[test]
fn accept_rejects_ratchet_messages_and_replayed_initial_messages() {
    let mut rng = StdRng::seed_from_u64(3);
    let (alice_id, bob_id, mut prekeys) = devices(&mut rng);
    let bundle = prekeys.bundle(&bob_id.public()).unwrap();
    let opk = bundle.one_time_prekey.unwrap().id;
    let (_alice, first) = Session::initiate(&mut rng, &alice_id, &bundle, b"x").unwrap();
    let (mut bob, _) = Session::accept(&mut rng, &bob_id, &mut prekeys, &first).unwrap();

    let again = Session::accept(&mut rng, &bob_id, &mut prekeys, &first).unwrap_err();
    assert_eq!(
        again,
        OpenError::Handshake(X3dhError::UnknownOneTimePrekey(opk))
    );

    let ratchet = bob.seal(b"y").unwrap();
    let err = Session::accept(&mut rng, &alice_id, &mut prekeys, &ratchet).unwrap_err();
    assert_eq!(err, OpenError::NotInitial);
}

#[test]
fn out_of_order_delivery_across_chains_opens_every_message_once() {
    let mut p = pair(4);
    let a: Vec<_> = (0..4u8).map(|i| p.bob.seal(&[b'a', i]).unwrap()).collect();
    assert_eq!(p.alice.open_with_rng(&mut p.rng, &a[3]).unwrap(), [b'a', 3]);
    let reply = p.alice.seal(b"r").unwrap();
    assert_eq!(p.bob.open_with_rng(&mut p.rng, &reply).unwrap(), b"r");
    let b: Vec<_> = (0..3u8).map(|i| p.bob.seal(&[b'b', i]).unwrap()).collect();

    // New chain first, then the leftovers of the old chain.
    for (m, want) in [(&b[2], [b'b', 2]), (&a[1], [b'a', 1]), (&b[0], [b'b', 0])] {
        assert_eq!(p.alice.open_with_rng(&mut p.rng, m).unwrap(), want);
    }
    for (m, want) in [(&a[0], [b'a', 0]), (&a[2], [b'a', 2]), (&b[1], [b'b', 1])] {
        assert_eq!(p.alice.open_with_rng(&mut p.rng, m).unwrap(), want);
    }
    for m in a.iter().chain(&b) {
        assert_eq!(p.alice.open_with_rng(&mut p.rng, m), Err(OpenError::Replay));
    }
}

#[test]
fn replay_in_the_current_chain_is_rejected() {
    let mut p = pair(5);
    let m = p.bob.seal(b"once").unwrap();
    assert_eq!(p.alice.open_with_rng(&mut p.rng, &m).unwrap(), b"once");
    assert_eq!(
        p.alice.open_with_rng(&mut p.rng, &m),
        Err(OpenError::Replay)
    );
}

#[test]
fn failed_open_leaves_the_session_unchanged() {
    let mut p = pair(6);
    let reply = p.bob.seal(b"new chain").unwrap();
    let before = snapshot(&p.alice);
    for i in 0..reply.len() {
        let mut bad = reply.clone();
        bad[i] ^= 0x40;
        assert!(p.alice.open_with_rng(&mut p.rng, &bad).is_err(), "byte {i}");
        assert_eq!(snapshot(&p.alice), before, "byte {i}");
    }
    assert_eq!(
        p.alice.open_with_rng(&mut p.rng, &reply).unwrap(),
        b"new chain"
    );
}

#[test]
fn rejects_a_forward_jump_beyond_the_bound() {
    let mut p = pair(7);
    let mut last = Vec::new();
    for _ in 0..=MAX_SKIP + 1 {
        last = p.bob.seal(b"x").unwrap();
    }
    let err = p.alice.open_with_rng(&mut p.rng, &last).unwrap_err();
    assert_eq!(
        err,
        OpenError::TooManySkipped {
            skipped: MAX_SKIP + 1,
            limit: MAX_SKIP
        }
    );
}

#[test]
fn rejects_gaps_once_the_skipped_key_store_is_full() {
    let mut p = pair(8);
    let rounds = MAX_STORED_SKIPPED / MAX_SKIP as usize;
    for _ in 0..rounds {
        let mut last = Vec::new();
        for _ in 0..=MAX_SKIP {
            last = p.bob.seal(b"x").unwrap();
        }
        p.alice.open_with_rng(&mut p.rng, &last).unwrap();
        let reply = p.alice.seal(b"r").unwrap();
        p.bob.open_with_rng(&mut p.rng, &reply).unwrap();
    }
    p.bob.seal(b"skipped").unwrap();
    let gap = p.bob.seal(b"gap").unwrap();
    let err = p.alice.open_with_rng(&mut p.rng, &gap).unwrap_err();
    assert_eq!(
        err,
        OpenError::SkippedStoreFull {
            limit: MAX_STORED_SKIPPED
        }
    );
}

#[test]
fn persisted_state_is_advanced_before_the_ciphertext_leaves() {
    let mut p = pair(9);
    let m1 = p.alice.seal(b"one").unwrap();
    // Persist right after sealing, before sending.
    let saved = snapshot(&p.alice);
    let mut restored: Session = rmp_serde::from_slice(&saved).unwrap();
    let m2 = restored.seal(b"two").unwrap();

    // The restored session uses the next message key, not the one of m1.
    assert_ne!(m1[..m1.len() - 16], m2[..m2.len() - 16]);
    assert_eq!(p.bob.open_with_rng(&mut p.rng, &m1).unwrap(), b"one");
    assert_eq!(p.bob.open_with_rng(&mut p.rng, &m2).unwrap(), b"two");
}

#[test]
fn rejects_initial_messages_of_another_session_and_other_versions() {
    let mut p = pair(10);
    let mut rng = StdRng::seed_from_u64(11);
    let (carol, dave, prekeys) = devices(&mut rng);
    let bundle = prekeys.bundle(&dave.public()).unwrap();
    let (_, foreign) = Session::initiate(&mut rng, &carol, &bundle, b"z").unwrap();
    assert_eq!(
        p.bob.open_with_rng(&mut p.rng, &foreign),
        Err(OpenError::UnexpectedInitial)
    );

    let mut m = p.bob.seal(b"v").unwrap();
    m[0] = 2;
    assert_eq!(
        p.alice.open_with_rng(&mut p.rng, &m),
        Err(OpenError::UnsupportedVersion(2))
    );
    assert_eq!(
        p.alice.open_with_rng(&mut p.rng, &[1, 2, 3]),
        Err(OpenError::Malformed)
    );
}

#[test]
fn debug_output_hides_state() {
    let p = pair(12);
    let text = format!("{:?}", p.alice);
    assert!(text.contains("<redacted>"));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Session>();
    check::<IdentityKeyPair>();
    check::<PrekeySecrets>();
    check::<courier::crypto::GroupSender>();
    check::<courier::crypto::GroupReceiver>();
}

#[test]
fn identity_and_prekeys_survive_persistence() {
    let mut rng = StdRng::seed_from_u64(13);
    let (alice, bob, prekeys) = devices(&mut rng);
    let bob: IdentityKeyPair = rmp_serde::from_slice(&rmp_serde::to_vec(&bob).unwrap()).unwrap();
    let mut prekeys: PrekeySecrets =
        rmp_serde::from_slice(&rmp_serde::to_vec(&prekeys).unwrap()).unwrap();
    let bundle = prekeys.bundle(&bob.public()).unwrap();
    let (_, first) = Session::initiate(&mut rng, &alice, &bundle, b"kept").unwrap();
    let (_, text) = Session::accept(&mut rng, &bob, &mut prekeys, &first).unwrap();
    assert_eq!(text, b"kept");
}

#[test]
fn low_order_keys_in_messages_are_refused() {
    let mut p = pair(14);
    // A ratchet message whose ratchet key is the all-zero (low-order) point.
    let mut m = p.bob.seal(b"x").unwrap();
    m[2..34].fill(0);
    assert_eq!(
        p.alice.open_with_rng(&mut p.rng, &m),
        Err(OpenError::NonContributory)
    );

    // An initial message whose ephemeral key is the all-zero point.
    let mut rng = StdRng::seed_from_u64(15);
    let (alice, bob, mut prekeys) = devices(&mut rng);
    let bundle = prekeys.bundle(&bob.public()).unwrap();
    let (_, mut first) = Session::initiate(&mut rng, &alice, &bundle, b"x").unwrap();
    first[131..163].fill(0);
    assert_eq!(
        Session::accept(&mut rng, &bob, &mut prekeys, &first).unwrap_err(),
        OpenError::Handshake(X3dhError::NonContributory)
    );
}
