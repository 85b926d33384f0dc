//! Checks the cryptography against the JSON vectors in `tests/vectors/`.
//!
//! Every random byte the code draws comes from a "tape" listed in the vector
//! (hex, consumed in order, 32 bytes per key), so another implementation can
//! replay the same run. To regenerate the files after a deliberate change of
//! the construction, run
//! `COURIER_WRITE_VECTORS=1 cargo test -p courier --test crypto_vectors`.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::PathBuf;

use courier::crypto::{
    GroupReceiver, GroupSender, IdentityKeyPair, PrekeySecrets, SafetyNumber,
    SenderKeyDistribution, Session, open_media, seal_media_with_key, x3dh_respond,
};
use rand_core::{TryCryptoRng, TryRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A source of "random" bytes: replayed from a vector, or (when writing
/// vectors) SHA-256 in counter mode over a label, of which the used prefix is
/// recorded.
struct Tape {
    bytes: Vec<u8>,
    pos: usize,
    recording: bool,
}

impl Tape {
    fn replay(hex_bytes: &Value) -> Self {
        let bytes = hex::decode(hex_bytes.as_str().unwrap()).unwrap();
        Self {
            bytes,
            pos: 0,
            recording: false,
        }
    }

    fn record(label: &str) -> Self {
        let bytes = (0..128u64)
            .flat_map(|counter| {
                Sha256::new()
                    .chain_update(label.as_bytes())
                    .chain_update(counter.to_be_bytes())
                    .finalize()
            })
            .collect();
        Self {
            bytes,
            pos: 0,
            recording: true,
        }
    }

    fn consumed(&self) -> Value {
        if !self.recording {
            assert_eq!(self.pos, self.bytes.len(), "the run left tape bytes unused");
        }
        json!(hex::encode(&self.bytes[..self.pos]))
    }
}

impl TryRng for Tape {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let end = self.pos + dst.len();
        assert!(
            end <= self.bytes.len(),
            "tape exhausted: vector and code disagree"
        );
        dst.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(())
    }
}

impl TryCryptoRng for Tape {}

fn writing() -> bool {
    std::env::var_os("COURIER_WRITE_VECTORS").is_some()
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// Runs `case` on the stored inputs and compares with the stored outputs,
/// or (when writing) records fresh inputs and outputs.
fn check(name: &str, description: &str, tapes: &[&str], case: fn(&Value, &mut [Tape]) -> Value) {
    let file = path(name);
    if writing() {
        let inputs = fixed_inputs();
        let mut recorded: Vec<Tape> = tapes.iter().map(|t| Tape::record(t)).collect();
        let expected = case(&inputs, &mut recorded);
        let mut inputs = inputs;
        for (label, tape) in tapes.iter().zip(&recorded) {
            inputs["tapes"][label] = tape.consumed();
        }
        let doc = json!({ "description": description, "inputs": inputs, "expected": expected });
        std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let inputs = &doc["inputs"];
    let mut replay: Vec<Tape> = tapes
        .iter()
        .map(|t| Tape::replay(&inputs["tapes"][t]))
        .collect();
    let outputs = case(inputs, &mut replay);
    assert_eq!(outputs, doc["expected"], "{name} differs from the code");
    for tape in &replay {
        tape.consumed();
    }
}

fn fixed_inputs() -> Value {
    let key = |label: &str| hex::encode(Sha256::digest(label.as_bytes()));
    json!({
        "alice": {
            "name": "alice",
            "signing_seed": key("alice signing seed"),
            "agreement_secret": key("alice agreement secret"),
        },
        "bob": {
            "name": "bob",
            "signing_seed": key("bob signing seed"),
            "agreement_secret": key("bob agreement secret"),
        },
        "plaintexts": [
            hex::encode(b"hello bob"),
            hex::encode(b""),
            hex::encode([0x5au8; 100]),
        ],
        "media_keys": [key("media key 0"), key("media key 1")],
        "tapes": {},
    })
}

fn bytes32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn identity(v: &Value) -> IdentityKeyPair {
    IdentityKeyPair::from_secret_bytes(
        &bytes32(&v["signing_seed"]),
        &bytes32(&v["agreement_secret"]),
    )
}

fn plaintext(inputs: &Value, i: usize) -> Vec<u8> {
    hex::decode(inputs["plaintexts"][i].as_str().unwrap()).unwrap()
}

fn outcome<E: std::fmt::Debug>(result: Result<Vec<u8>, E>) -> Value {
    match result {
        Ok(text) => json!({ "plaintext": hex::encode(text) }),
        Err(e) => json!({ "error": format!("{e:?}") }),
    }
}

/// Bob's prekeys from tape 0 (signed prekey, then one one-time prekey),
/// Alice's X3DH from tape 1 (ephemeral key, then first ratchet key), Bob's
/// accept from tape 2 (his first ratchet key).
fn x3dh_case(inputs: &Value, tapes: &mut [Tape]) -> Value {
    let [prekey_tape, alice_tape, bob_tape] = tapes else {
        panic!("three tapes")
    };
    let alice = identity(&inputs["alice"]);
    let bob = identity(&inputs["bob"]);
    let mut prekeys = PrekeySecrets::new();
    let signed = prekeys.rotate_signed_prekey(prekey_tape, &bob);
    let one_time = prekeys.generate_one_time_prekeys(prekey_tape, 1)[0];
    let bundle = prekeys.bundle(&bob.public()).unwrap();

    let (_, first) = Session::initiate(alice_tape, &alice, &bundle, &plaintext(inputs, 0)).unwrap();
    let header = initial_header(&first);
    let x3dh = x3dh_respond(&bob, &prekeys, &header).unwrap();
    let (_, text) = Session::accept(bob_tape, &bob, &mut prekeys, &first).unwrap();

    let public = |p: &IdentityKeyPair| {
        let id = p.public();
        json!({
            "signing_key": hex::encode(id.signing_key),
            "agreement_key": hex::encode(id.agreement_key),
            "agreement_signature": hex::encode(id.agreement_signature),
        })
    };
    let safety = SafetyNumber::new("alice", &alice.public(), "bob", &bob.public());
    json!({
        "alice_identity": public(&alice),
        "bob_identity": public(&bob),
        "signed_prekey": {
            "id": signed.id,
            "key": hex::encode(signed.key),
            "signature": hex::encode(signed.signature),
        },
        "one_time_prekey": { "id": one_time.id, "key": hex::encode(one_time.key) },
        "ephemeral_key": hex::encode(header.ephemeral_key),
        "shared_secret": hex::encode(x3dh.secret_bytes()),
        "associated_data": hex::encode(x3dh.associated_data()),
        "initial_message": hex::encode(&first),
        "accepted_plaintext": hex::encode(text),
        "safety_number": safety.to_string(),
    })
}

/// The X3DH header of an initial message, read back at its fixed offsets
/// (section 7.5 of the protocol document).
fn initial_header(m: &[u8]) -> courier::crypto::InitialHeader {
    let arr = |at: usize| -> [u8; 32] { m[at..at + 32].try_into().unwrap() };
    let u32_at = |at: usize| u32::from_be_bytes(m[at..at + 4].try_into().unwrap());
    courier::crypto::InitialHeader {
        suite: m[2],
        identity: courier::crypto::DeviceIdentity {
            signing_key: arr(3),
            agreement_key: arr(35),
            agreement_signature: m[67..131].try_into().unwrap(),
        },
        ephemeral_key: arr(131),
        signed_prekey_id: u32_at(163),
        one_time_prekey_id: (m[167] == 1).then(|| u32_at(168)),
        kem_ciphertext: Vec::new(),
    }
}

/// A scripted conversation with out-of-order delivery and a replay.
fn ratchet_case(inputs: &Value, tapes: &mut [Tape]) -> Value {
    let [prekey_tape, alice_tape, bob_tape] = tapes else {
        panic!("three tapes")
    };
    let alice_id = identity(&inputs["alice"]);
    let bob_id = identity(&inputs["bob"]);
    let mut prekeys = PrekeySecrets::new();
    prekeys.rotate_signed_prekey(prekey_tape, &bob_id);
    prekeys.generate_one_time_prekeys(prekey_tape, 1);
    let bundle = prekeys.bundle(&bob_id.public()).unwrap();
    let (mut alice, a0) =
        Session::initiate(alice_tape, &alice_id, &bundle, &plaintext(inputs, 0)).unwrap();
    let (mut bob, _) = Session::accept(bob_tape, &bob_id, &mut prekeys, &a0).unwrap();

    let mut messages = vec![a0];
    let mut steps = vec![json!({ "op": "seal", "by": "alice", "message": 0 })];
    let seal = |who: &str, session: &mut Session, text: &[u8], messages: &mut Vec<Vec<u8>>| {
        messages.push(session.seal(text).unwrap());
        json!({ "op": "seal", "by": who, "message": messages.len() - 1, "plaintext": hex::encode(text) })
    };
    for i in 0..3u8 {
        steps.push(seal("bob", &mut bob, &[b'b', i], &mut messages));
    }
    let mut opens = Vec::new();
    for i in [3, 1] {
        opens.push((i, outcome(alice.open_with_rng(alice_tape, &messages[i]))));
    }
    steps.push(seal("alice", &mut alice, b"a1", &mut messages));
    opens.push((4, outcome(bob.open_with_rng(bob_tape, &messages[4]))));
    steps.push(seal("bob", &mut bob, b"b3", &mut messages));
    for i in [5, 2, 2] {
        opens.push((i, outcome(alice.open_with_rng(alice_tape, &messages[i]))));
    }

    json!({
        "seals": steps,
        "messages": messages.iter().map(hex::encode).collect::<Vec<_>>(),
        "opens": opens.iter().map(|(i, o)| json!({ "message": i, "outcome": o })).collect::<Vec<_>>(),
    })
}

/// A sender key: distribution, three messages opened out of order, a
/// replay, then a rotation after which the old key is refused.
fn sender_key_case(inputs: &Value, tapes: &mut [Tape]) -> Value {
    let [sender_tape] = tapes else {
        panic!("one tape")
    };
    let mut sender = GroupSender::generate(sender_tape);
    let distribution = sender.distribution().to_bytes();
    let mut receiver =
        GroupReceiver::new(&SenderKeyDistribution::from_bytes(&distribution).unwrap());
    let messages: Vec<Vec<u8>> = (0..3)
        .map(|i| sender.seal(&plaintext(inputs, i)).unwrap())
        .collect();
    let mut opens: Vec<Value> = [2, 0, 1, 0]
        .iter()
        .map(|&i| json!({ "message": i, "outcome": outcome(receiver.open(&messages[i])) }))
        .collect();

    let stale = sender.seal(b"before rotation").unwrap();
    sender.rotate(sender_tape);
    let rotated = sender.distribution().to_bytes();
    let mut receiver = GroupReceiver::new(&SenderKeyDistribution::from_bytes(&rotated).unwrap());
    opens.push(json!({ "message": "stale", "outcome": outcome(receiver.open(&stale)) }));
    json!({
        "distribution": hex::encode(distribution),
        "messages": messages.iter().map(hex::encode).collect::<Vec<_>>(),
        "stale_message": hex::encode(stale),
        "rotated_distribution": hex::encode(rotated),
        "opens": opens,
    })
}

fn media_case(inputs: &Value, _tapes: &mut [Tape]) -> Value {
    let cases: Vec<Value> = [(0, 1), (1, 2)]
        .iter()
        .map(|&(k, p)| {
            let text = plaintext(inputs, p);
            let (ciphertext, key) = seal_media_with_key(&bytes32(&inputs["media_keys"][k]), &text);
            assert_eq!(open_media(&ciphertext, &key).unwrap(), text);
            json!({
                "key": k,
                "plaintext": p,
                "ciphertext": hex::encode(&ciphertext),
                "digest": hex::encode(key.digest),
            })
        })
        .collect();
    json!(cases)
}

#[test]
fn x3dh_matches_vectors() {
    check(
        "x3dh.json",
        "X3DH between fixed identities, the first initial message, and the safety number",
        &["bob_prekeys", "alice", "bob"],
        x3dh_case,
    );
}

#[test]
fn ratchet_matches_vectors() {
    check(
        "ratchet.json",
        "A Double Ratchet conversation with out-of-order delivery and a replay",
        &["bob_prekeys", "alice", "bob"],
        ratchet_case,
    );
}

#[test]
fn sender_key_matches_vectors() {
    check(
        "sender_key.json",
        "A sender key: distribution, out-of-order group messages, replay, rotation",
        &["sender"],
        sender_key_case,
    );
}

#[test]
fn media_matches_vectors() {
    check(
        "media.json",
        "Media sealed under fixed keys: ciphertext and SHA-256 digest",
        &[],
        media_case,
    );
}
