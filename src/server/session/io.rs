//! The session's socket: a TLS stream with a lazily allocated read buffer
//! and a write buffer flushed once per burst of frames.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Decoder;

use super::m;
use crate::protocol::{ClientFrame, ErrorFrame, FrameError, ServerCodec, ServerFrame};

/// The read buffer allocated for a read; it grows to hold a whole frame.
const READ_CHUNK: usize = 512;
/// Write buffers larger than this are released after a flush.
const KEEP_CAPACITY: usize = 1024;

/// A socket write that did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IoError {
    /// The peer did not take the bytes in time.
    #[error("write timed out")]
    Timeout,
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub(super) struct Conn {
    stream: TlsStream<TcpStream>,
    codec: ServerCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    wframes: u32,
}

impl Conn {
    pub(super) fn new(stream: TlsStream<TcpStream>, max_frame_bytes: u32) -> Self {
        Self {
            stream,
            codec: ServerCodec::new(max_frame_bytes),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            wframes: 0,
        }
    }

    /// Appends a frame to the write buffer, logging a failure.
    pub(super) fn queue(&mut self, frame: &ServerFrame) {
        if let Err(err) = self.queue_checked(frame) {
            tracing::warn!(error = %err, "frame not encoded");
        }
    }

    /// Appends a frame to the write buffer.
    pub(super) fn queue_checked(&mut self, frame: &ServerFrame) -> Result<(), FrameError> {
        self.codec.encode_frame(frame, &mut self.wbuf)?;
        self.wframes += 1;
        Ok(())
    }

    /// Bytes waiting to be written.
    pub(super) fn pending_bytes(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes and flushes everything queued, giving up after `timeout`.
    pub(super) async fn flush(&mut self, timeout: Duration) -> Result<(), IoError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        metrics::histogram!(m::WRITE_BATCH).record(f64::from(self.wframes));
        let stream = &mut self.stream;
        let buf = &self.wbuf;
        let write = async {
            stream.write_all(buf).await?;
            stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(IoError::Io(err)),
            Err(_) => return Err(IoError::Timeout),
        }
        self.wbuf.clear();
        self.wframes = 0;
        if self.wbuf.capacity() > KEEP_CAPACITY {
            self.wbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Reads more bytes; `Ok(0)` at end of stream. Cancel safe.
    pub(super) async fn read(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// Decodes the next whole frame from the read buffer; an emptied buffer
    /// is freed, so an idle connection holds none.
    pub(super) fn decode(&mut self) -> Result<Option<ClientFrame>, FrameError> {
        let frame = self.codec.decode(&mut self.rbuf)?;
        if frame.is_none() && self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        Ok(frame)
    }

    /// Frees both buffers if they are empty (an idle connection keeps none).
    pub(super) fn release_buffers(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        }
        if self.wbuf.is_empty() {
            self.wbuf = BytesMut::new();
        }
    }

    /// Writes `err`, flushes and closes the TLS session.
    pub(super) async fn close_with(&mut self, err: ErrorFrame) -> Result<(), IoError> {
        m::error_frame(err.code);
        self.queue(&ServerFrame::Error(err));
        self.flush(Duration::from_secs(5)).await?;
        self.shutdown().await;
        Ok(())
    }

    /// Sends close_notify and shuts the socket down, briefly.
    pub(super) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}
