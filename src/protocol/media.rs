//! Media transfer: upload in chunks, download in chunks
//! (`docs/protocol.md`, section 4.6). Blobs are sealed by the client; the
//! server stores ciphertext only.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ids::MediaId;

/// Client: announce an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploadBegin {
    /// Client-made media id.
    pub media: MediaId,
    /// Size of the sealed blob, in bytes.
    pub total_bytes: u64,
    /// SHA-256 of the sealed blob.
    #[serde(with = "super::bin")]
    pub digest: [u8; 32],
}

/// Client: one piece of an upload, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploadChunk {
    /// The media id.
    pub media: MediaId,
    /// Byte offset of `data` in the blob; equal to the bytes sent so far.
    pub offset: u64,
    /// At most `Limits::max_media_chunk_bytes` bytes.
    #[serde(with = "super::bin::var")]
    pub data: Bytes,
}

/// Client: the upload is complete; the server checks size and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploadFinish {
    /// The media id.
    pub media: MediaId,
}

/// Server: the blob is durable and can be downloaded until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaStored {
    /// The media id.
    pub media: MediaId,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Client: ask for a blob from an offset; the server answers with
/// `MediaChunk` frames up to the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaDownload {
    /// The media id.
    pub media: MediaId,
    /// First byte wanted (non-zero to resume).
    pub offset: u64,
}

/// Server: one piece of a download, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChunk {
    /// The media id.
    pub media: MediaId,
    /// Byte offset of `data` in the blob.
    pub offset: u64,
    /// Size of the whole blob; the last chunk ends there.
    pub total_bytes: u64,
    /// The bytes.
    #[serde(with = "super::bin::var")]
    pub data: Bytes,
}
