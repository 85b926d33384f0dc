//! A raw test client speaking frames over real TLS, and server set-up.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use courier::crypto::IdentityKeyPair;
use courier::protocol::{
    self, ClientCodec, ClientFrame, ClientHello, DeviceId, DeviceIdentity, ErrorCode, MessageId,
    PROTOCOL_VERSION, ServerFrame, ServerHello, UserName,
};
use courier::server::{Limits, ServerBuilder, ServerHandle};
use courier::store::Durability;
use courier::tls::{CertFingerprint, ClientTls};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

/// Generous: only catches hangs.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server on loopback with its data directory.
pub struct TestServer {
    pub handle: ServerHandle,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(Limits::default(), Durability::Fsync).await
    }

    pub async fn with(limits: Limits, durability: Durability) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let handle = builder(dir.path(), limits, durability)
            .start()
            .await
            .unwrap();
        Self { handle, dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn pin(&self) -> CertFingerprint {
        self.handle.fingerprint().unwrap()
    }

    /// Connects and authenticates `user/device` with a fresh identity.
    pub async fn client(&self, user: &str, device: u32) -> TestClient {
        TestClient::connect(self, Identity::new(user, device)).await
    }
}

pub fn builder(dir: &std::path::Path, limits: Limits, durability: Durability) -> ServerBuilder {
    ServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .data_dir(dir)
        .limits(limits)
        .durability(durability)
}

/// A device's keys and name.
#[derive(Clone)]
pub struct Identity {
    pub device: DeviceId,
    pub keys: std::sync::Arc<IdentityKeyPair>,
}

impl Identity {
    pub fn new(user: &str, device: u32) -> Self {
        Self {
            device: DeviceId::new(UserName::new(user).unwrap(), device),
            keys: std::sync::Arc::new(IdentityKeyPair::generate(&mut rand::rng())),
        }
    }

    pub fn public(&self) -> DeviceIdentity {
        let p = self.keys.public();
        DeviceIdentity {
            signing_key: p.signing_key,
            agreement_key: p.agreement_key,
            agreement_signature: p.agreement_signature,
        }
    }

    /// A `ClientHello` for a connection with this challenge and exporter.
    pub fn hello(&self, challenge: &[u8; 32], exporter: &[u8; 32]) -> ClientHello {
        let transcript = protocol::auth_transcript(challenge, exporter);
        ClientHello {
            version: PROTOCOL_VERSION,
            device: self.device.clone(),
            identity: self.public(),
            signature: self.keys.sign(&transcript),
        }
    }
}

/// A connection that has received `ServerHello` but not authenticated.
pub struct RawConn {
    pub framed: Framed<TlsStream<TcpStream>, ClientCodec>,
    pub hello: ServerHello,
    pub exporter: [u8; 32],
}

impl RawConn {
    pub async fn open(server: &TestServer) -> Self {
        Self::open_to(server.addr(), server.pin()).await
    }

    pub async fn open_to(addr: SocketAddr, pin: CertFingerprint) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = ClientTls::pinned(pin)
            .connect("localhost", tcp, WAIT)
            .await
            .unwrap();
        let exporter = courier::tls::exporter(&tls).unwrap();
        let mut framed = Framed::new(tls, ClientCodec::new(protocol::DEFAULT_MAX_FRAME_BYTES));
        let first = tokio::time::timeout(WAIT, framed.next())
            .await
            .expect("server hello in time")
            .expect("a frame")
            .expect("a valid frame");
        let ServerFrame::ServerHello(hello) = first else {
            panic!("expected ServerHello, got {first:?}");
        };
        Self {
            framed,
            hello,
            exporter,
        }
    }

    pub async fn send(&mut self, frame: impl Into<ClientFrame>) {
        self.framed.send(frame.into()).await.unwrap();
    }

    /// The next frame, pings included.
    pub async fn next_frame(&mut self) -> ServerFrame {
        tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("a valid frame")
    }

    /// The next frame, skipping pings.
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            let frame = self.next_frame().await;
            if !matches!(frame, ServerFrame::Ping(_)) {
                return frame;
            }
        }
    }

    /// Waits for an error frame with `code` and then the end of the stream.
    pub async fn expect_error_and_close(&mut self, code: ErrorCode) {
        let mut frame = self.recv().await;
        while matches!(frame, ServerFrame::PrekeysLow(_)) {
            frame = self.recv().await;
        }
        match frame {
            ServerFrame::Error(e) => assert_eq!(e.code, code, "{e:?}"),
            other => panic!("expected error {code:?}, got {other:?}"),
        }
        self.expect_closed().await;
    }

    /// Waits until the server closes the connection.
    pub async fn expect_closed(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.framed.next())
                .await
                .expect("close in time")
            {
                None | Some(Err(_)) => return,
                Some(Ok(ServerFrame::Ping(_))) => {}
                Some(Ok(other)) => panic!("expected close, got {other:?}"),
            }
        }
    }
}

/// An authenticated device.
pub struct TestClient {
    pub id: Identity,
    pub conn: RawConn,
    /// Receipts that arrived while waiting for something else.
    pub receipts: std::collections::VecDeque<protocol::Delivered>,
}

impl TestClient {
    pub async fn connect(server: &TestServer, id: Identity) -> Self {
        Self::connect_to(server.addr(), server.pin(), id).await
    }

    pub async fn connect_to(addr: SocketAddr, pin: CertFingerprint, id: Identity) -> Self {
        let mut conn = RawConn::open_to(addr, pin).await;
        let hello = id.hello(&conn.hello.challenge, &conn.exporter);
        conn.send(hello).await;
        match conn.recv().await {
            ServerFrame::Welcome(w) => assert_eq!(w.device, id.device),
            other => panic!("expected Welcome, got {other:?}"),
        }
        Self {
            id,
            conn,
            receipts: Default::default(),
        }
    }

    /// Reconnects with the same identity.
    pub async fn reconnect(self, server: &TestServer) -> Self {
        let id = self.id.clone();
        drop(self);
        Self::connect(server, id).await
    }

    pub fn device(&self) -> DeviceId {
        self.id.device.clone()
    }

    pub async fn send(&mut self, frame: impl Into<ClientFrame>) {
        self.conn.send(frame).await;
    }

    /// The next frame, skipping pings and `PrekeysLow`.
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            let frame = self.conn.recv().await;
            if !matches!(frame, ServerFrame::PrekeysLow(_)) {
                return frame;
            }
        }
    }

    /// Sends `body` to `to` and waits for `Accepted`.
    pub async fn send_direct(&mut self, to: &DeviceId, id: MessageId, body: &[u8]) {
        self.send(protocol::SendDirect {
            id,
            to: to.clone(),
            body: Bytes::copy_from_slice(body),
        })
        .await;
        loop {
            match self.recv().await {
                ServerFrame::Accepted(a) => return assert_eq!(a.id, id),
                ServerFrame::Delivered(d) => self.receipts.push_back(d),
                other => panic!("expected Accepted, got {other:?}"),
            }
        }
    }

    /// Waits for a `Deliver`.
    pub async fn expect_deliver(&mut self) -> protocol::Deliver {
        match self.recv().await {
            ServerFrame::Deliver(d) => d,
            other => panic!("expected Deliver, got {other:?}"),
        }
    }

    /// Acks a delivered frame.
    pub async fn ack(&mut self, d: &protocol::Deliver) {
        self.send(protocol::DeliveryAck {
            from: d.from.clone(),
            id: d.id,
        })
        .await;
    }

    /// Waits for a `Delivered` receipt.
    pub async fn expect_delivered(&mut self) -> protocol::Delivered {
        if let Some(d) = self.receipts.pop_front() {
            return d;
        }
        match self.recv().await {
            ServerFrame::Delivered(d) => d,
            other => panic!("expected Delivered, got {other:?}"),
        }
    }

    /// Waits for the server's next ping and answers it, confirming every
    /// frame the server wrote before it. Returns those frames (without
    /// `PrekeysLow`).
    pub async fn answer_ping(&mut self) -> Vec<ServerFrame> {
        let mut before = Vec::new();
        loop {
            match self.conn.next_frame().await {
                ServerFrame::Ping(ping) => {
                    self.send(protocol::Pong { nonce: ping.nonce }).await;
                    return before;
                }
                ServerFrame::PrekeysLow(_) => {}
                other => before.push(other),
            }
        }
    }

    /// Sends a ping and waits for its pong: every earlier frame of this
    /// connection has been handled by then. Returns the frames before it.
    pub async fn sync(&mut self) -> Vec<ServerFrame> {
        let nonce = rand::random::<u64>();
        self.send(protocol::Ping { nonce }).await;
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                ServerFrame::Pong(p) if p.nonce == nonce => return before,
                other => before.push(other),
            }
        }
    }
}

pub fn mid(n: u8) -> MessageId {
    let mut id = [0u8; 16];
    id[0] = n;
    id[15] = 0xaa;
    MessageId(id)
}

pub fn random_id() -> MessageId {
    MessageId(rand::random())
}
