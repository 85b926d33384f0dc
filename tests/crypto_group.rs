//! Sender keys: distribution, signatures, skip bounds and rotation.
#![allow(clippy::unwrap_used)]

use courier::crypto::{GroupError, GroupReceiver, GroupSender, MAX_SKIP, SenderKeyDistribution};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn one_sealing_opens_for_every_member() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut sender = GroupSender::generate(&mut rng);
    let bytes = sender.distribution().to_bytes();
    let mut members: Vec<_> = (0..3)
        .map(|_| GroupReceiver::new(&SenderKeyDistribution::from_bytes(&bytes).unwrap()))
        .collect();
    let m = sender.seal(b"to everyone").unwrap();
    for member in &mut members {
        assert_eq!(member.open(&m).unwrap(), b"to everyone");
    }
}

#[test]
fn late_member_opens_only_messages_after_its_distribution() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut sender = GroupSender::generate(&mut rng);
    let early = sender.seal(b"early").unwrap();
    let mut late = GroupReceiver::new(&sender.distribution());
    let now = sender.seal(b"now").unwrap();
    assert_eq!(late.open(&now).unwrap(), b"now");
    assert_eq!(late.open(&early), Err(GroupError::Replay));
}

#[test]
fn rotation_refuses_messages_under_the_old_key() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut sender = GroupSender::generate(&mut rng);
    let old_id = sender.key_id();
    let stale = sender.seal(b"old").unwrap();

    sender.rotate(&mut rng);
    assert_ne!(sender.key_id(), old_id);
    let mut receiver = GroupReceiver::new(&sender.distribution());
    assert_eq!(
        receiver.open(&stale),
        Err(GroupError::UnknownSenderKey {
            current: sender.key_id(),
            got: old_id
        })
    );
    let fresh = sender.seal(b"new").unwrap();
    assert_eq!(receiver.open(&fresh).unwrap(), b"new");
}

#[test]
fn rejects_a_message_signed_by_another_key() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut sender = GroupSender::generate(&mut rng);
    let mut receiver = GroupReceiver::new(&sender.distribution());

    // An impostor that knows the chain key and key id but not the signing key.
    let mut bytes = sender.distribution().to_bytes();
    let other = GroupSender::generate(&mut rng).distribution().to_bytes();
    bytes[42..74].copy_from_slice(&other[42..74]);
    let m = sender.seal(b"real").unwrap();
    let mut impostor_view = GroupReceiver::new(&SenderKeyDistribution::from_bytes(&bytes).unwrap());
    assert_eq!(impostor_view.open(&m), Err(GroupError::BadSignature));
    assert_eq!(receiver.open(&m).unwrap(), b"real");
}

#[test]
fn wrong_chain_key_fails_authentication_after_a_valid_signature() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut sender = GroupSender::generate(&mut rng);
    let mut bytes = sender.distribution().to_bytes();
    bytes[10] ^= 1;
    let mut receiver = GroupReceiver::new(&SenderKeyDistribution::from_bytes(&bytes).unwrap());
    let m = sender.seal(b"x").unwrap();
    assert_eq!(receiver.open(&m), Err(GroupError::Tampered));
}

#[test]
fn rejects_a_forward_jump_beyond_the_bound() {
    let mut rng = StdRng::seed_from_u64(6);
    let mut sender = GroupSender::generate(&mut rng);
    let mut receiver = GroupReceiver::new(&sender.distribution());
    let mut last = Vec::new();
    for _ in 0..=MAX_SKIP + 1 {
        last = sender.seal(b"x").unwrap();
    }
    assert_eq!(
        receiver.open(&last),
        Err(GroupError::TooManySkipped {
            skipped: MAX_SKIP + 1,
            limit: MAX_SKIP
        })
    );
}

#[test]
fn rejects_malformed_distributions_and_messages() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut sender = GroupSender::generate(&mut rng);
    let bytes = sender.distribution().to_bytes();
    assert_eq!(
        SenderKeyDistribution::from_bytes(&bytes[..73]).unwrap_err(),
        GroupError::Malformed
    );
    let mut receiver = GroupReceiver::new(&sender.distribution());
    let m = sender.seal(b"x").unwrap();
    assert_eq!(receiver.open(&m[..50]), Err(GroupError::Malformed));
    let mut versioned = m.clone();
    versioned[0] = 9;
    assert_eq!(
        receiver.open(&versioned),
        Err(GroupError::UnsupportedVersion(9))
    );
    assert!(format!("{receiver:?}").contains("<redacted>"));
}
