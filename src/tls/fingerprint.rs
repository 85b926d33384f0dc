//! The SHA-256 fingerprint of a DER certificate.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a certificate's DER encoding, the value a client pins.
///
/// It displays as colon-separated uppercase hex pairs (the form
/// `openssl x509 -fingerprint -sha256` prints) and parses from that form or
/// from 64 plain hex digits, in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The fingerprint as 64 lowercase hex digits, without separators.
    pub fn to_plain_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            push_hex(&mut out, byte, b"0123456789abcdef");
        }
        out
    }

    /// Compares with `other` in constant time.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(95);
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            push_hex(&mut out, *byte, b"0123456789ABCDEF");
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_plain_hex())
    }
}

/// A string that is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintParseError {
    /// The text has the wrong length for either accepted form.
    #[error(
        "fingerprint must be 64 hex digits or 32 colon-separated hex pairs, got {len} characters"
    )]
    Length {
        /// The length of the text, in bytes.
        len: usize,
    },
    /// A character is neither a hex digit nor a separator in its place.
    #[error("invalid character at position {position} of fingerprint")]
    Character {
        /// The byte offset of the bad character.
        position: usize,
    },
}

impl FromStr for CertFingerprint {
    type Err = FingerprintParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bytes = text.as_bytes();

        // Plain form: 64 digits. Colon form: 32 pairs and 31 colons.
        let stride = match bytes.len() {
            64 => 2,
            95 => 3,
            len => return Err(FingerprintParseError::Length { len }),
        };

        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * stride;
            if stride == 3 && i > 0 && bytes[at - 1] != b':' {
                return Err(FingerprintParseError::Character { position: at - 1 });
            }
            let high =
                hex_value(bytes[at]).ok_or(FingerprintParseError::Character { position: at })?;
            let low = hex_value(bytes[at + 1])
                .ok_or(FingerprintParseError::Character { position: at + 1 })?;
            *byte = (high << 4) | low;
        }
        Ok(Self(out))
    }
}

/// Appends the two hex digits of `byte` using `digits`.
fn push_hex(out: &mut String, byte: u8, digits: &[u8; 16]) {
    out.push(char::from(digits[usize::from(byte >> 4)]));
    out.push(char::from(digits[usize::from(byte & 0x0f)]));
}

/// The value of one hex digit, either case.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CertFingerprint {
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(37).wrapping_add(5);
        }
        CertFingerprint(bytes)
    }

    #[test]
    fn display_round_trips_through_colon_form() {
        let fp = sample();
        let text = fp.to_string();
        assert_eq!(text.len(), 95);
        assert_eq!(text.parse::<CertFingerprint>().unwrap(), fp);
    }

    #[test]
    fn parses_plain_hex_in_either_case() {
        let fp = sample();
        let plain = fp.to_plain_hex();
        assert_eq!(plain.parse::<CertFingerprint>().unwrap(), fp);
        assert_eq!(plain.to_uppercase().parse::<CertFingerprint>().unwrap(), fp);
        assert_eq!(
            fp.to_string()
                .to_lowercase()
                .parse::<CertFingerprint>()
                .unwrap(),
            fp
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            "abc".parse::<CertFingerprint>(),
            Err(FingerprintParseError::Length { len: 3 })
        );
        let mut plain = sample().to_plain_hex();
        plain.replace_range(10..11, "g");
        assert_eq!(
            plain.parse::<CertFingerprint>(),
            Err(FingerprintParseError::Character { position: 10 })
        );
        let colons = sample().to_string().replace(':', "-");
        assert_eq!(
            colons.parse::<CertFingerprint>(),
            Err(FingerprintParseError::Character { position: 2 })
        );
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        // SHA-256 of the empty string.
        let fp = CertFingerprint::of_der(b"");
        assert_eq!(
            fp.to_plain_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(fp.ct_eq(&fp));
        assert!(!fp.ct_eq(&sample()));
    }
}
