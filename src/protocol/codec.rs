//! The length-prefixed MessagePack codec (`docs/protocol.md`, section 2).

use std::fmt;
use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Deserialize;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{ClientFrame, ServerFrame};
use super::handshake::DEFAULT_MAX_FRAME_BYTES;

/// Length of the big-endian length prefix, in bytes.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Deepest nesting of MessagePack arrays and maps a decoder accepts. The
/// deepest frame (`Bundle`) nests five levels.
pub const MAX_NESTING_DEPTH: usize = 16;

/// A frame could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix (or, when encoding, the payload) exceeds the
    /// maximum frame size. Nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced or encoded payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({received} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame, prefix included, that were due.
        expected: usize,
        /// Bytes that arrived.
        received: usize,
    },
    /// The payload nests arrays or maps deeper than [`MAX_NESTING_DEPTH`].
    #[error("frame nests deeper than the limit")]
    TooDeep,
    /// The payload holds bytes after the frame's MessagePack value.
    #[error("bytes after the frame value")]
    TrailingBytes,
    /// The payload is not MessagePack, or does not match the frame schema.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame could not be serialized.
    #[error("frame could not be encoded: {0}")]
    Encode(String),
    /// The transport failed.
    #[error("i/o error: {message}")]
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's text.
        message: String,
    },
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        Self::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// Reads `In` frames and writes `Out` frames: a 4-byte big-endian payload
/// length, then the payload, one MessagePack value.
///
/// A server uses [`ServerCodec`], a client [`ClientCodec`]. The decoder
/// checks the length prefix against the maximum before it reserves any
/// buffer, so a peer cannot make it allocate more than
/// `max_frame_bytes + 4` bytes.
///
/// After any decode error the stream cannot be trusted: answer with an
/// `Error` frame (see [`FrameError::code`]) and close. `tokio_util`'s
/// `Framed` ends the stream after the first error.
pub struct FrameCodec<In, Out> {
    max_frame_bytes: usize,
    frames: PhantomData<fn(Out) -> In>,
}

/// The codec of a server: reads [`ClientFrame`]s, writes [`ServerFrame`]s.
pub type ServerCodec = FrameCodec<ClientFrame, ServerFrame>;

/// The codec of a client: reads [`ServerFrame`]s, writes [`ClientFrame`]s.
pub type ClientCodec = FrameCodec<ServerFrame, ClientFrame>;

impl<In, Out> FrameCodec<In, Out> {
    /// A codec accepting payloads of at most `max_frame_bytes` bytes.
    pub fn new(max_frame_bytes: u32) -> Self {
        Self {
            max_frame_bytes: max_frame_bytes as usize,
            frames: PhantomData,
        }
    }

    /// The largest payload accepted or written, in bytes.
    pub fn max_frame_bytes(&self) -> u32 {
        u32::try_from(self.max_frame_bytes).unwrap_or(u32::MAX)
    }

    /// Changes the limit, for a client that learned the server's limits
    /// from `ServerHello`.
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: u32) {
        self.max_frame_bytes = max_frame_bytes as usize;
    }
}

impl<In, Out: Serialize> FrameCodec<In, Out> {
    /// Appends one frame, prefix and payload, to `dst`.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] if the payload exceeds the limit, or
    /// [`FrameError::Encode`]; `dst` is left as it was.
    pub fn encode_frame(&self, frame: &Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let start = dst.len();
        dst.put_u32(0);

        let written = rmp_serde::encode::write(&mut dst.writer(), frame);
        let len = dst.len() - start - LENGTH_PREFIX_BYTES;
        let checked = match written {
            Err(error) => Err(FrameError::Encode(error.to_string())),
            Ok(()) if len > self.max_frame_bytes => Err(FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            }),
            Ok(()) => u32::try_from(len).map_err(|_| FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            }),
        };

        match checked {
            Ok(len) => {
                dst[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Err(error) => {
                dst.truncate(start);
                Err(error)
            }
        }
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    /// A codec with [`DEFAULT_MAX_FRAME_BYTES`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl<In, Out> Clone for FrameCodec<In, Out> {
    fn clone(&self) -> Self {
        Self {
            max_frame_bytes: self.max_frame_bytes,
            frames: PhantomData,
        }
    }
}

impl<In, Out> fmt::Debug for FrameCodec<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCodec")
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish()
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    /// `Ok(None)` while the frame is incomplete; the frame once it is whole.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        let Some(&prefix) = src.first_chunk::<LENGTH_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }

        let total = LENGTH_PREFIX_BYTES + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }

        let decoded = decode_payload(&src[LENGTH_PREFIX_BYTES..total]);
        src.advance(total);
        decoded.map(Some)
    }

    /// Like `decode`, but bytes left over at the end of the stream are a
    /// [`FrameError::Truncated`] frame.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }

        let expected = match src.first_chunk::<LENGTH_PREFIX_BYTES>() {
            Some(&prefix) => LENGTH_PREFIX_BYTES + u32::from_be_bytes(prefix) as usize,
            None => LENGTH_PREFIX_BYTES,
        };
        Err(FrameError::Truncated {
            expected,
            received: src.len(),
        })
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, frame: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_frame(&frame, dst)
    }
}

impl<In, Out: Serialize> Encoder<&Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, frame: &Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_frame(frame, dst)
    }
}

fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    // rmp-serde fails when its counter reaches zero, so one more than the
    // number of levels allowed.
    de.set_max_depth(MAX_NESTING_DEPTH + 1);
    let value = T::deserialize(&mut de).map_err(decode_error)?;

    // The reader does not expose its position: probe for a second value,
    // which must fail at the very first marker for lack of input.
    match IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(error))
            if error.kind() == io::ErrorKind::UnexpectedEof =>
        {
            Ok(value)
        }
        _ => Err(FrameError::TrailingBytes),
    }
}

fn decode_error(error: rmp_serde::decode::Error) -> FrameError {
    match error {
        rmp_serde::decode::Error::DepthLimitExceeded => FrameError::TooDeep,
        other => FrameError::Malformed(other.to_string()),
    }
}
