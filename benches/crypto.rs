//! Criterion benches for the end-to-end cryptography: ratchet seal and open
//! within a sending chain, a full X3DH, and a sender-key group message.

use std::hint::black_box;

use courier::crypto::{GroupReceiver, GroupSender, IdentityKeyPair, PrekeySecrets, Session};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SIZES: [(usize, &str); 2] = [(100, "100B"), (64 * 1024, "64KiB")];

/// Two sessions that have exchanged one message each way, so both are past
/// the initial message and seal within an established sending chain.
fn sessions(rng: &mut StdRng) -> (Session, Session) {
    let alice_id = IdentityKeyPair::generate(rng);
    let bob_id = IdentityKeyPair::generate(rng);
    let mut prekeys = PrekeySecrets::new();
    prekeys.rotate_signed_prekey(rng, &bob_id);
    prekeys.generate_one_time_prekeys(rng, 1);
    let bundle = prekeys
        .bundle(&bob_id.public())
        .expect("a signed prekey was made above");
    let (mut alice, first) =
        Session::initiate(rng, &alice_id, &bundle, b"hi").expect("bundle made above is valid");
    let (mut bob, _) =
        Session::accept(rng, &bob_id, &mut prekeys, &first).expect("fresh initial message");
    let reply = bob.seal(b"hello").expect("fresh chain");
    alice.open_with_rng(rng, &reply).expect("fresh reply");
    (alice, bob)
}

fn ratchet(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("ratchet");
    for (size, name) in SIZES {
        let plaintext = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));

        let (mut alice, _) = sessions(&mut rng);
        group.bench_function(format!("seal/{name}"), |b| {
            b.iter(|| {
                alice
                    .seal(black_box(&plaintext))
                    .expect("chain far from exhausted")
            })
        });

        // Opening consumes a message key, so each iteration opens a fresh
        // message of the same chain; sealing happens outside the timing.
        let (mut alice, mut bob) = sessions(&mut rng);
        group.bench_function(format!("open/{name}"), |b| {
            b.iter_batched(
                || alice.seal(&plaintext).expect("chain far from exhausted"),
                |m| bob.open(black_box(&m)).expect("in-order message opens"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn x3dh(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let alice_id = IdentityKeyPair::generate(&mut rng);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    let mut prekeys = PrekeySecrets::new();
    prekeys.rotate_signed_prekey(&mut rng, &bob_id);
    let mut group = c.benchmark_group("x3dh");
    group.throughput(Throughput::Elements(1));
    group.bench_function("initiate_and_accept", |b| {
        b.iter_batched(
            || {
                let mut keys = prekeys.clone();
                keys.generate_one_time_prekeys(&mut rng, 1);
                let bundle = keys
                    .bundle(&bob_id.public())
                    .expect("signed prekey made above");
                (keys, bundle, StdRng::seed_from_u64(3))
            },
            |(mut keys, bundle, mut rng)| {
                let (_, first) =
                    Session::initiate(&mut rng, &alice_id, &bundle, b"hi").expect("valid bundle");
                Session::accept(&mut rng, &bob_id, &mut keys, &first).expect("valid message")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn sender_keys(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(4);
    let mut group = c.benchmark_group("sender_key");
    let plaintext = vec![0x5a; 100];
    group.throughput(Throughput::Bytes(100));

    let mut sender = GroupSender::generate(&mut rng);
    group.bench_function("seal/100B", |b| {
        b.iter(|| {
            sender
                .seal(black_box(&plaintext))
                .expect("chain far from exhausted")
        })
    });

    let mut sender = GroupSender::generate(&mut rng);
    let mut receiver = GroupReceiver::new(&sender.distribution());
    group.bench_function("open/100B", |b| {
        b.iter_batched(
            || sender.seal(&plaintext).expect("chain far from exhausted"),
            |m| {
                receiver
                    .open(black_box(&m))
                    .expect("in-order message opens")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The group function `criterion_group!` generates carries no docs.
mod harness {
    #![allow(missing_docs)]

    use super::{Criterion, ratchet, sender_keys, x3dh};

    criterion::criterion_group! {
        name = benches;
        config = Criterion::default();
        targets = ratchet, x3dh, sender_keys
    }
}

criterion_main!(harness::benches);
