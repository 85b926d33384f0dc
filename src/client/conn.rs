//! One authenticated connection: TCP, TLS, the handshake of
//! `docs/protocol.md` section 5.2, and frame I/O.

use std::time::Duration;

use bytes::BytesMut;
use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;

use crate::crypto::IdentityKeyPair;
use crate::protocol::{
    ClientCodec, ClientFrame, ClientHello, ConnectionPhase, DeviceId, Limits, PROTOCOL_VERSION,
    Pong, ServerFrame, Welcome, auth_transcript,
};
use crate::tls::ClientTls;

use super::{ClientError, wire_identity};

type Stream = TlsStream<TcpStream>;

/// Initial capacity of the read and write buffers.
const BUFFER_BYTES: usize = 8 * 1024;

/// An authenticated connection.
pub(crate) struct Connection {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: ClientCodec,
    phase: ConnectionPhase,
    /// The limits the server announced.
    pub(crate) limits: Limits,
    /// The server's `Welcome`.
    pub(crate) welcome: Welcome,
    /// Whether TLS resumed an earlier session (no full handshake).
    pub(crate) resumed: bool,
}

impl Connection {
    /// Connects, runs TLS and authenticates as `device` within `timeout`.
    pub(crate) async fn open(
        server: &str,
        server_name: &str,
        tls: &ClientTls,
        device: &DeviceId,
        identity: &IdentityKeyPair,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let attempt = Self::open_inner(server, server_name, tls, device, identity, timeout);
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                during: "connecting",
            }),
        }
    }

    async fn open_inner(
        server: &str,
        server_name: &str,
        tls: &ClientTls,
        device: &DeviceId,
        identity: &IdentityKeyPair,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|err| ClientError::io(&err))?;
        tcp.set_nodelay(true).map_err(|err| ClientError::io(&err))?;
        let stream = tls.connect(server_name, tcp, timeout).await?;
        let exporter = crate::tls::exporter(&stream)?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let (reader, writer) = tokio::io::split(stream);
        let mut conn = Self {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(BUFFER_BYTES),
            wbuf: BytesMut::with_capacity(BUFFER_BYTES),
            codec: ClientCodec::default(),
            phase: ConnectionPhase::Greeting,
            limits: Limits::default(),
            welcome: Welcome {
                device: device.clone(),
                server_time_ms: 0,
                prekeys_remaining: 0,
            },
            resumed,
        };

        conn.authenticate(device, identity, &exporter).await?;
        tracing::debug!(device = %device, resumed, "authenticated");
        Ok(conn)
    }

    /// Answers the `ServerHello` challenge and waits for `Welcome`
    /// (`docs/protocol.md` section 5.2).
    async fn authenticate(
        &mut self,
        device: &DeviceId,
        identity: &IdentityKeyPair,
        exporter: &[u8; 32],
    ) -> Result<(), ClientError> {
        let hello = match self.recv().await? {
            ServerFrame::ServerHello(hello) => hello,
            other => return Err(unexpected(&other)),
        };
        self.codec.set_max_frame_bytes(hello.limits.max_frame_bytes);
        self.limits = hello.limits;

        let transcript = auth_transcript(&hello.challenge, exporter);
        let signature = identity.sign(&transcript);
        self.queue(&ClientFrame::ClientHello(ClientHello {
            version: PROTOCOL_VERSION,
            device: device.clone(),
            identity: wire_identity(&identity.public()),
            signature,
        }))?;
        self.flush().await?;

        loop {
            match self.recv().await? {
                ServerFrame::Welcome(welcome) => {
                    self.welcome = welcome;
                    return Ok(());
                }
                ServerFrame::Ping(ping) => {
                    self.queue(&ClientFrame::Pong(Pong { nonce: ping.nonce }))?;
                    self.flush().await?;
                }
                ServerFrame::Pong(_) => {}
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// The next frame from the server. An `Error` frame comes back as a
    /// frame; protocol violations and a closed stream as errors.
    ///
    /// Cancel safe: a frame is either returned or stays buffered.
    pub(crate) async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.rbuf)? {
                self.phase = self
                    .phase
                    .on_server_frame(&frame)
                    .map_err(|err| ClientError::protocol(err.to_string()))?;
                if let (ServerFrame::Error(error), false) = (&frame, self.phase.is_established()) {
                    return Err(ClientError::Server {
                        code: error.code,
                        text: error.text.clone(),
                    });
                }
                return Ok(frame);
            }
            let read = self
                .reader
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|err| ClientError::io(&err))?;
            if read == 0 {
                return Err(ClientError::ConnectionClosed);
            }
        }
    }

    /// The next frame if one is already buffered, without reading.
    pub(crate) fn try_recv(&mut self) -> Result<Option<ServerFrame>, ClientError> {
        let Some(frame) = self.codec.decode(&mut self.rbuf)? else {
            return Ok(None);
        };
        self.phase = self
            .phase
            .on_server_frame(&frame)
            .map_err(|err| ClientError::protocol(err.to_string()))?;
        Ok(Some(frame))
    }

    /// Encodes a frame into the write buffer (sent by [`flush`](Self::flush)).
    pub(crate) fn queue(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.codec.encode_frame(frame, &mut self.wbuf)?;
        Ok(())
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.writer
            .write_all(&self.wbuf)
            .await
            .map_err(|err| ClientError::io(&err))?;
        self.wbuf.clear();
        self.writer
            .flush()
            .await
            .map_err(|err| ClientError::io(&err))
    }

    /// Sends what is queued and closes TLS politely.
    pub(crate) async fn close(mut self) {
        if self.flush().await.is_ok() {
            let _ = self.writer.shutdown().await;
        }
    }
}

fn unexpected(frame: &ServerFrame) -> ClientError {
    match frame {
        ServerFrame::Error(error) => ClientError::Server {
            code: error.code,
            text: error.text.clone(),
        },
        other => ClientError::protocol(format!("unexpected {} while connecting", other.name())),
    }
}
