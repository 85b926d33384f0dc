//! How records of the local store are encoded, and sealed under an
//! optional storage key.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use redb::{ReadableTable, Table};
use serde::Serialize;
use zeroize::Zeroizing;

use super::super::ClientError;

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_TEXT: &str = "courier client store";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// A key that encrypts the local store's records (AES-256-GCM).
#[derive(Clone)]
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// A storage key from 32 secret bytes (from the operating system's
    /// keychain, or derived from a passphrase with a password hash).
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

/// Encodes records as MessagePack and, with a storage key, seals them:
/// `nonce (12 random bytes) || AES-256-GCM(record) || tag`, with the table
/// name as associated data.
#[derive(Debug)]
pub(super) struct Codec {
    key: Option<Zeroizing<[u8; 32]>>,
}

impl Codec {
    pub(super) fn new(key: Option<&StorageKey>) -> Self {
        Self {
            key: key.map(|k| k.0.clone()),
        }
    }

    /// Checks that the store was made with this key (or, without one, with
    /// none), marking a new store.
    pub(super) fn check_key(
        &self,
        meta: &mut Table<'_, &'static str, &'static [u8]>,
        table: &str,
    ) -> Result<(), ClientError> {
        let check = meta
            .get(KEY_CHECK)
            .map_err(ClientError::store)?
            .map(|bytes| bytes.value().to_vec());
        match check {
            Some(bytes) => {
                let check: String = self
                    .decode(table, &bytes)
                    .map_err(|_| ClientError::StorageKey)?;
                if check != KEY_CHECK_TEXT {
                    return Err(ClientError::StorageKey);
                }
            }
            None => {
                let check = self.encode(table, KEY_CHECK_TEXT)?;
                meta.insert(KEY_CHECK, check.as_slice())
                    .map_err(ClientError::store)?;
            }
        }
        Ok(())
    }

    pub(super) fn encode<T: Serialize + ?Sized>(
        &self,
        table: &str,
        value: &T,
    ) -> Result<Vec<u8>, ClientError> {
        let plain = Zeroizing::new(rmp_serde::to_vec(value).map_err(ClientError::store)?);
        let Some(key) = &self.key else {
            return Ok(plain.to_vec());
        };
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let mut out = Vec::with_capacity(NONCE_BYTES + plain.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        let cipher = Aes256Gcm::new(&(**key).into());
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                table.as_bytes(),
                (&mut out[NONCE_BYTES..]).into(),
            )
            .map_err(|_| ClientError::store("record too large to seal"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(super) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        let Some(key) = &self.key else {
            return rmp_serde::from_slice(bytes).map_err(ClientError::store);
        };
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(ClientError::StorageKey);
        }
        let (nonce, rest) = bytes.split_at(NONCE_BYTES);
        let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| ClientError::StorageKey)?;
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| ClientError::StorageKey)?;
        let mut plain = Zeroizing::new(body.to_vec());
        let cipher = Aes256Gcm::new(&(**key).into());
        cipher
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                table.as_bytes(),
                (&mut plain[..]).into(),
                &tag,
            )
            .map_err(|_| ClientError::StorageKey)?;
        rmp_serde::from_slice(&plain).map_err(ClientError::store)
    }
}

/// `Vec<u8>` as a MessagePack bin rather than an array of integers.
pub(super) mod bin {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}
