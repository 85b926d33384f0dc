//! Property tests: any delivery order within the skip bound opens every
//! message exactly once; any flipped bit in header, body or associated data
//! is rejected without changing state; replays are rejected.
#![allow(clippy::unwrap_used)]

use courier::crypto::{
    GroupReceiver, GroupSender, IdentityKeyPair, OpenError, PrekeySecrets, Session,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn pair(seed: u64) -> (StdRng, Session, Session, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    let mut prekeys = PrekeySecrets::new();
    prekeys.rotate_signed_prekey(&mut rng, &bob_id);
    prekeys.generate_one_time_prekeys(&mut rng, 1);
    let bundle = prekeys.bundle(&bob_id.public()).unwrap();
    let (alice, first) = Session::initiate(&mut rng, &alice_id, &bundle, b"first").unwrap();
    let (bob, _) = Session::accept(
        &mut rng,
        &bob_id,
        &mut PrekeySecrets::clone(&prekeys),
        &first,
    )
    .unwrap();
    (rng, alice, bob, first)
}

/// Bob sends `first` messages, opens a reply from Alice (a DH step), then
/// sends `second` more: two receiving chains for Alice.
fn two_chains(seed: u64, first: usize, second: usize) -> (StdRng, Session, Vec<Vec<u8>>) {
    let (mut rng, mut alice, mut bob, _) = pair(seed);
    let mut messages: Vec<Vec<u8>> = (0..first).map(|i| bob.seal(&[i as u8]).unwrap()).collect();
    let reply = alice.seal(b"reply").unwrap();
    bob.open_with_rng(&mut rng, &reply).unwrap();
    messages.extend((first..first + second).map(|i| bob.seal(&[i as u8]).unwrap()));
    (rng, alice, messages)
}

fn snapshot(session: &Session) -> Vec<u8> {
    rmp_serde::to_vec(session).unwrap()
}

fn delivery() -> impl Strategy<Value = (u64, usize, usize, Vec<usize>)> {
    (any::<u64>(), 0usize..12, 1usize..12).prop_flat_map(|(seed, first, second)| {
        let order: Vec<usize> = (0..first + second).collect();
        (
            Just(seed),
            Just(first),
            Just(second),
            Just(order).prop_shuffle(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x636f_7572),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_delivery_order_opens_each_message_exactly_once(
        (seed, first, second, order) in delivery()
    ) {
        let (mut rng, mut alice, messages) = two_chains(seed, first, second);
        for &i in &order {
            prop_assert_eq!(alice.open_with_rng(&mut rng, &messages[i]).unwrap(), vec![i as u8]);
        }
        for &i in &order {
            prop_assert_eq!(alice.open_with_rng(&mut rng, &messages[i]), Err(OpenError::Replay));
        }
    }

    #[test]
    fn any_flipped_bit_in_a_ratchet_message_is_rejected(seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
        let (mut rng, mut alice, messages) = two_chains(seed, 1, 1);
        let m = &messages[1];
        let before = snapshot(&alice);
        let mut bad = m.clone();
        let i = bit.index(m.len() * 8);
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(alice.open_with_rng(&mut rng, &bad).is_err());
        prop_assert_eq!(snapshot(&alice), before);
        prop_assert_eq!(alice.open_with_rng(&mut rng, m).unwrap(), vec![1u8]);
    }

    #[test]
    fn any_flipped_bit_in_an_initial_message_is_rejected(seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let alice_id = IdentityKeyPair::generate(&mut rng);
        let bob_id = IdentityKeyPair::generate(&mut rng);
        let mut prekeys = PrekeySecrets::new();
        prekeys.rotate_signed_prekey(&mut rng, &bob_id);
        prekeys.generate_one_time_prekeys(&mut rng, 1);
        let bundle = prekeys.bundle(&bob_id.public()).unwrap();
        let (_, first) = Session::initiate(&mut rng, &alice_id, &bundle, b"first").unwrap();
        let mut bad = first.clone();
        let i = bit.index(first.len() * 8);
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(Session::accept(&mut rng, &bob_id, &mut prekeys, &bad).is_err());
        prop_assert_eq!(prekeys.one_time_count(), 1);
        prop_assert!(Session::accept(&mut rng, &bob_id, &mut prekeys, &first).is_ok());
    }

    #[test]
    fn any_flipped_bit_in_the_associated_data_is_rejected(seed in any::<u64>(), bit in 0usize..1024) {
        let (mut rng, alice, mut bob, _) = pair(seed);
        let m = bob.seal(b"bound").unwrap();
        // The associated data (both identities) lives in the session state.
        let mut state: serde_json::Value = serde_json::to_value(&alice).unwrap();
        let byte = &mut state["associated_data"][bit / 8];
        *byte = serde_json::json!(byte.as_u64().unwrap() ^ (1 << (bit % 8)));
        let mut altered: Session = serde_json::from_value(state).unwrap();
        prop_assert_eq!(altered.open_with_rng(&mut rng, &m), Err(OpenError::Tampered));
        let mut alice = alice;
        prop_assert_eq!(alice.open_with_rng(&mut rng, &m).unwrap(), b"bound".to_vec());
    }

    #[test]
    fn group_messages_open_once_in_any_order(seed in any::<u64>(), order in Just((0..16usize).collect::<Vec<_>>()).prop_shuffle()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sender = GroupSender::generate(&mut rng);
        let mut receiver = GroupReceiver::new(&sender.distribution());
        let messages: Vec<_> = (0..16u8).map(|i| sender.seal(&[i]).unwrap()).collect();
        for &i in &order {
            prop_assert_eq!(receiver.open(&messages[i]).unwrap(), vec![i as u8]);
        }
        for &i in &order {
            prop_assert_eq!(receiver.open(&messages[i]), Err(courier::crypto::GroupError::Replay));
        }
    }

    #[test]
    fn any_flipped_bit_in_a_group_message_is_rejected(seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sender = GroupSender::generate(&mut rng);
        let mut receiver = GroupReceiver::new(&sender.distribution());
        let m = sender.seal(b"group").unwrap();
        let mut bad = m.clone();
        let i = bit.index(m.len() * 8);
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(receiver.open(&bad).is_err());
        prop_assert_eq!(receiver.open(&m).unwrap(), b"group".to_vec());
    }
}
