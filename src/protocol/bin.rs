//! Serde glue that writes fixed-size byte arrays as MessagePack `bin` and
//! reads them back, rejecting any other length (`docs/protocol.md`, 3.2).

use std::fmt;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// Writes `bytes` as one `bin` value.
pub(crate) fn serialize<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Reads one `bin` value of exactly `N` bytes.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    deserializer.deserialize_bytes(FixedBytes::<N>)
}

struct FixedBytes<const N: usize>;

impl<const N: usize> Visitor<'_> for FixedBytes<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a bin of {N} bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }
}
