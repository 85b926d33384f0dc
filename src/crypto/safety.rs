//! Safety numbers: a 60-digit code two people compare to check that their
//! devices talk to each other without a key-substituting server in between
//! (`docs/protocol.md`, section 7.8).

use std::fmt;

use sha2::{Digest, Sha512};

use super::identity::DeviceIdentity;

/// SHA-512 iterations per half, to make grinding for a colliding half slow.
const ITERATIONS: usize = 1024;
/// Domain separation prefix of the first hash.
const CONTEXT: &[u8] = b"courier/v1/safety-number\0";

/// A safety number: 60 decimal digits, shown as 12 groups of 5. Both sides
/// compute the same number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafetyNumber {
    digits: String,
}

impl SafetyNumber {
    /// The safety number of two users' device identities. The order of the
    /// arguments does not matter.
    pub fn new(
        my_name: &str,
        mine: &DeviceIdentity,
        their_name: &str,
        theirs: &DeviceIdentity,
    ) -> Self {
        let a = half(my_name, mine);
        let b = half(their_name, theirs);
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        Self {
            digits: low + &high,
        }
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The 12 groups of 5 digits.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        (0..12).map(|i| &self.digits[i * 5..i * 5 + 5])
    }

    /// Whether `typed` (digits, spaces ignored) equals this number.
    pub fn matches(&self, typed: &str) -> bool {
        typed
            .chars()
            .filter(|c| !c.is_whitespace())
            .eq(self.digits.chars())
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.groups().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(group)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// 30 digits for one party: iterated SHA-512 over the name and both keys,
/// then six 40-bit big-endian chunks, each reduced mod 100000.
fn half(name: &str, identity: &DeviceIdentity) -> String {
    let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
    let mut hash = Sha512::new()
        .chain_update(CONTEXT)
        .chain_update(name_len.to_be_bytes())
        .chain_update(name.as_bytes())
        .chain_update(identity.signing_key)
        .chain_update(identity.agreement_key)
        .finalize();
    for _ in 1..ITERATIONS {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(identity.signing_key)
            .chain_update(identity.agreement_key)
            .finalize();
    }
    let mut out = String::with_capacity(30);
    for chunk in hash[..30].chunks_exact(5) {
        let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        out.push_str(&format!("{:05}", value % 100_000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKeyPair;

    #[test]
    fn same_on_both_sides_and_changes_with_any_key_or_name() {
        let mut rng = rand::rng();
        let a = IdentityKeyPair::generate(&mut rng).public();
        let b = IdentityKeyPair::generate(&mut rng).public();
        let ab = SafetyNumber::new("alice", &a, "bob", &b);
        let ba = SafetyNumber::new("bob", &b, "alice", &a);
        assert_eq!(ab, ba);
        assert_eq!(ab.digits().len(), 60);
        assert_eq!(ab.to_string().len(), 71);
        assert!(ab.matches(&ab.to_string()));

        let other = IdentityKeyPair::generate(&mut rng).public();
        let swapped_agreement = DeviceIdentity {
            agreement_key: other.agreement_key,
            ..b
        };
        assert_ne!(
            ab,
            SafetyNumber::new("alice", &a, "bob", &swapped_agreement)
        );
        assert_ne!(ab, SafetyNumber::new("alice", &a, "bobby", &b));
    }
}
