//! Courier: an embeddable library for end-to-end encrypted chat servers.
//!
//! # Quick start: frames on the wire
//!
//! ```
//! use bytes::BytesMut;
//! use courier::protocol::{ClientCodec, ClientFrame, Ping, ServerCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! // A client writes a frame; the server reads it (docs/protocol.md).
//! let mut wire = BytesMut::new();
//! ClientCodec::default().encode(ClientFrame::from(Ping { nonce: 7 }), &mut wire)?;
//! let frame = ServerCodec::default().decode(&mut wire)?;
//! assert_eq!(frame, Some(ClientFrame::Ping(Ping { nonce: 7 })));
//! # Ok::<(), courier::protocol::FrameError>(())
//! ```

#[cfg(feature = "chaos")]
pub mod chaos;
pub mod client;
pub mod crypto;
pub mod protocol;
pub mod server;
pub mod store;
pub mod tls;
