//! A raw, light load client: one TLS connection speaking Courier frames
//! directly, authenticated with an Ed25519 signature over the challenge and
//! the TLS exporter, with a write buffer flushed once per burst.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use courier::crypto::IdentityKeyPair;
use courier::protocol::{
    self, ClientCodec, ClientFrame, ClientHello, DeviceId, DeviceIdentity, PROTOCOL_VERSION,
    ServerFrame, UserName,
};
use courier::tls::{CertFingerprint, ClientTls};
use rustls::client::Resumption;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;

/// Time allowed for connecting and authenticating.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A device's name and keys.
pub(crate) struct Identity {
    pub(crate) device: DeviceId,
    keys: IdentityKeyPair,
}

impl Identity {
    /// A fresh identity for device 0 of `user`.
    pub(crate) fn new(user: &str) -> anyhow::Result<Self> {
        let name = UserName::new(user).context("user name")?;
        Ok(Self {
            device: DeviceId::new(name, 0),
            keys: IdentityKeyPair::generate(&mut rand::rng()),
        })
    }

    fn hello(&self, challenge: &[u8; 32], exporter: &[u8; 32]) -> ClientHello {
        let p = self.keys.public();
        ClientHello {
            version: PROTOCOL_VERSION,
            device: self.device.clone(),
            identity: DeviceIdentity {
                signing_key: p.signing_key,
                agreement_key: p.agreement_key,
                agreement_signature: p.agreement_signature,
            },
            signature: self
                .keys
                .sign(&protocol::auth_transcript(challenge, exporter)),
        }
    }
}

/// TLS settings pinned to the server: without resumption (every handshake
/// is a full one), or with a ticket cache of its own.
pub(crate) fn client_tls(pin: CertFingerprint, resume: bool) -> ClientTls {
    let base = ClientTls::pinned(pin);
    let mut config = (**base.config()).clone();
    config.resumption = if resume {
        Resumption::in_memory_sessions(1)
    } else {
        Resumption::disabled()
    };
    ClientTls::from_config(Arc::new(config))
}

/// An authenticated connection.
pub(crate) struct Conn {
    stream: TlsStream<TcpStream>,
    codec: ClientCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Whether the TLS handshake resumed an earlier session.
    pub(crate) resumed: bool,
}

impl Conn {
    /// Connects, completes TLS and authenticates as `id`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        tls: &ClientTls,
        id: &Identity,
    ) -> anyhow::Result<Self> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_inner(addr, tls, id))
            .await
            .context("connect and authenticate timed out")?
    }

    async fn connect_inner(
        addr: SocketAddr,
        tls: &ClientTls,
        id: &Identity,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await.context("tcp connect")?;
        tcp.set_nodelay(true).context("nodelay")?;
        let stream = tls
            .connect("localhost", tcp, CONNECT_TIMEOUT)
            .await
            .context("tls handshake")?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let exporter = courier::tls::exporter(&stream).context("tls exporter")?;
        let mut conn = Self {
            stream,
            codec: ClientCodec::new(protocol::DEFAULT_MAX_FRAME_BYTES),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            resumed,
        };
        let challenge = match conn.recv().await? {
            ServerFrame::ServerHello(h) => h.challenge,
            other => anyhow::bail!("expected ServerHello, got {}", other.name()),
        };
        conn.queue(&id.hello(&challenge, &exporter).into())?;
        conn.flush().await.context("sending ClientHello")?;
        match conn.recv().await? {
            ServerFrame::Welcome(_) => Ok(conn),
            ServerFrame::Error(e) => anyhow::bail!("refused: {} {}", e.code, e.text),
            other => anyhow::bail!("expected Welcome, got {}", other.name()),
        }
    }

    /// Appends a frame to the write buffer.
    pub(crate) fn queue(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        self.codec
            .encode_frame(frame, &mut self.wbuf)
            .context("encoding a frame")
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads more bytes; `Ok(0)` at end of stream. Cancel safe.
    pub(crate) async fn read(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(4096);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// The next whole frame already read, if any; an emptied read buffer
    /// is freed so idle connections stay small.
    pub(crate) fn next_frame(&mut self) -> anyhow::Result<Option<ServerFrame>> {
        let frame = self.codec.decode(&mut self.rbuf).context("decoding")?;
        if frame.is_none() && self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        Ok(frame)
    }

    /// The next frame, reading as needed.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<ServerFrame> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(frame);
            }
            if self.read().await.context("reading")? == 0 {
                anyhow::bail!("the server closed the connection");
            }
        }
    }

    /// Sends a ping and waits for its pong: the server has handled every
    /// earlier frame of this connection.
    pub(crate) async fn sync(&mut self) -> anyhow::Result<()> {
        let nonce = rand::random::<u64>();
        self.queue(&protocol::Ping { nonce }.into())?;
        self.flush().await?;
        loop {
            if let ServerFrame::Pong(p) = self.recv().await?
                && p.nonce == nonce
            {
                return Ok(());
            }
        }
    }
}

/// Opens `ids.len()` connections, at most `concurrency` handshakes at a
/// time, calling `opened` after each; returns them in the order of `ids`.
pub(crate) async fn open_all(
    addr: SocketAddr,
    tls: impl Fn(usize) -> ClientTls,
    ids: &[Arc<Identity>],
    concurrency: usize,
    opened: impl Fn(),
) -> anyhow::Result<Vec<Conn>> {
    let mut out: Vec<Option<Conn>> = Vec::with_capacity(ids.len());
    out.resize_with(ids.len(), || None);
    let mut set = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let id = Arc::clone(id);
        let tls = tls(i);
        set.spawn(async move { (i, Conn::connect(addr, &tls, &id).await) });
        if set.len() >= concurrency.max(1)
            && let Some(joined) = set.join_next().await
        {
            let (i, conn) = joined.context("connect task")?;
            out[i] = Some(conn.with_context(|| format!("connection {i}"))?);
            opened();
        }
    }
    while let Some(joined) = set.join_next().await {
        let (i, conn) = joined.context("connect task")?;
        out[i] = Some(conn.with_context(|| format!("connection {i}"))?);
        opened();
    }
    out.into_iter()
        .map(|c| c.context("every connection opened"))
        .collect()
}

/// `n` identities named `{prefix}{i}`.
pub(crate) fn identities(prefix: &str, n: usize) -> anyhow::Result<Vec<Arc<Identity>>> {
    (0..n)
        .map(|i| Identity::new(&format!("{prefix}{i}")).map(Arc::new))
        .collect()
}
