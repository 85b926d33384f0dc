//! Serde glue for byte fields: MessagePack `bin` on the wire (rejecting any
//! other length for fixed-size fields, `docs/protocol.md` 3.2), lowercase
//! hex strings in human-readable formats such as the JSON test vectors.

use std::fmt;

use bytes::Bytes;
use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// Writes `bytes` as one `bin` value (hex when human-readable).
pub(crate) fn serialize<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serialize_slice(bytes, serializer)
}

/// Reads one `bin` value of exactly `N` bytes (hex when human-readable).
pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    let visitor = FixedBytes::<N>;
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(visitor)
    } else {
        deserializer.deserialize_bytes(visitor)
    }
}

/// The same for variable-length [`Bytes`] fields.
pub(crate) mod var {
    use super::*;

    /// Writes `bytes` as one `bin` value (hex when human-readable).
    pub(crate) fn serialize<S: Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_slice(bytes, serializer)
    }

    /// Reads one `bin` value of any length (hex when human-readable).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(VarBytes)
        } else {
            deserializer.deserialize_bytes(VarBytes)
        }
    }
}

fn serialize_slice<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        let mut text = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        serializer.serialize_str(&text)
    } else {
        serializer.serialize_bytes(bytes)
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn parse_hex<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    let invalid = || E::invalid_value(de::Unexpected::Str(text), &"an even number of hex digits");
    if !text.len().is_multiple_of(2) {
        return Err(invalid());
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            Ok(high << 4 | low)
        })
        .collect()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
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

    fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; N], E> {
        let bytes = parse_hex::<E>(v)?;
        self.visit_bytes(&bytes)
    }
}

struct VarBytes;

impl Visitor<'_> for VarBytes {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bin")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        parse_hex(v).map(Bytes::from)
    }
}
