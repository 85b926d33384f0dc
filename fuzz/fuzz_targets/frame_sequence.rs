//! Drives a real server with a sequence of client frames.
//!
//! One server per process: memory durability, a self-signed certificate in
//! a temporary directory, loopback, small quotas. Every input opens a fresh
//! TLS connection and writes its frames; the server must answer the `Ping`
//! that ends the sequence or close the connection within [`WAIT`], must
//! never answer `InternalError`, and a well-behaved device connected since
//! the start must still get a `Pong` afterwards. A panic anywhere, in the
//! harness or in a server process that its supervisor would restart, aborts
//! under libFuzzer and counts as a crash.
//!
//! An input is one mode byte, then frames as on the wire (a 4-byte
//! big-endian length, then MessagePack), decoded with the server's codec.
//! A payload that does not decode is skipped; a length past the frame limit
//! or a torn frame ends the sequence; at most [`MAX_FRAMES`] are sent.
//! Mode bits:
//!
//! - `0x01`: authenticate as `fuzz/1` before the sequence;
//! - `0x02`: sign every `ClientHello` of the sequence for this connection
//!   with `fuzz`'s identity, keeping its version and device, so that the
//!   fuzzer reaches registration and the replacement of a session;
//! - `0x04`: drop the connection right after writing, without waiting for
//!   the answer.
//!
//! Devices the seeds name: `fuzz/1` (the connection under test), `watcher/1`
//! (online throughout, acknowledges what it gets) and `peer/1` (registered,
//! offline, so frames to it are parked).
//!
//! `cargo +nightly fuzz run frame_sequence fuzz/corpus/frame_sequence
//! fuzz/seeds/frame_sequence -- -detect_leaks=0`
//!
//! Leak detection is off: the server's state lives as long as the process,
//! and LeakSanitizer reports the read buffer of the harness's own watcher
//! connection as leaked when every byte of it has been consumed (`bytes`
//! then holds a pointer just past the allocation, not to its start).
//!
//! With `FRAME_SEQUENCE_TRACE` set, the target prints every frame of the
//! connection under test to stderr (to see what a seed or crash does).
//!
//! # Limitations
//!
//! - The server keeps its state across inputs (registrations, groups,
//!   parked frames, blobs), so a crash may need inputs run before the one
//!   libFuzzer saves; running the saved input alone on a fresh process
//!   tells whether it does.
//! - The temporary data directory stays behind when libFuzzer exits (the
//!   server lives in a static that is never dropped).

#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use courier::crypto::IdentityKeyPair;
use courier::protocol::{
    self, ClientCodec, ClientFrame, ClientHello, DeliveryAck, DeviceId, DeviceIdentity, ErrorCode,
    FrameError, MessageId, PROTOCOL_VERSION, Ping, ServerCodec, ServerFrame, UserName,
};
use courier::server::{Limits, ServerBuilder, ServerHandle};
use courier::store::Durability;
use courier::tls::{CertFingerprint, ClientTls};
use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::{Decoder, FramedRead};

/// How long the server may take to answer or close; generous, only a
/// hang exceeds it.
const WAIT: Duration = Duration::from_secs(10);

/// Frames of one input sent at most.
const MAX_FRAMES: usize = 64;

/// Mode bit: authenticate before the sequence.
const AUTHENTICATE: u8 = 0x01;

/// Mode bit: sign the sequence's `ClientHello` frames for this connection.
const SIGN_HELLOS: u8 = 0x02;

/// Mode bit: drop the connection without reading the answer.
const ABANDON: u8 = 0x04;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, wire)) = data.split_first() else {
        return;
    };
    let frames = decode(wire);
    let harness = harness();
    let mut watcher = harness.watcher.lock().expect("no input panicked before");
    harness.rt.block_on(async {
        run_sequence(harness, mode, frames).await;
        watcher.still_served().await;
    });
});

/// Splits the wire bytes into the frames the server's codec accepts.
fn decode(wire: &[u8]) -> Vec<ClientFrame> {
    let mut codec = ServerCodec::default();
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) | Err(FrameError::TooLarge { .. }) => break,
            // The codec consumed the payload it could not decode.
            Err(_) if buf.len() < before => {}
            Err(_) => break,
        }
    }
    frames
}

/// Sends one input's frames on a fresh connection and checks the answer.
async fn run_sequence(harness: &Harness, mode: u8, frames: Vec<ClientFrame>) {
    let mut conn = Conn::open(harness.addr, harness.pin).await;
    trace(|| format!("mode {mode:#04x}"));
    if mode & AUTHENTICATE != 0 {
        conn.authenticate(&harness.me).await;
    }

    let marker = next_nonce();
    let mut wire = BytesMut::new();
    let codec = ClientCodec::new(u32::MAX);
    for mut frame in frames {
        if mode & SIGN_HELLOS != 0
            && let ClientFrame::ClientHello(hello) = &mut frame
        {
            harness.me.sign(hello, &conn.challenge, &conn.exporter);
        }
        trace(|| format!("> {frame:?}"));
        codec
            .encode_frame(&frame, &mut wire)
            .expect("a decoded frame encodes");
    }
    codec
        .encode_frame(&ClientFrame::Ping(Ping { nonce: marker }), &mut wire)
        .expect("a ping encodes");

    if mode & ABANDON != 0 {
        let _ = tokio::time::timeout(WAIT, conn.write(&wire)).await;
        return;
    }
    // Write and read at once: the server's answers to a long sequence
    // could otherwise fill both socket buffers.
    let Conn { reader, writer, .. } = &mut conn;
    let write = async {
        // The server may close before it has read everything.
        let _ = writer.write_all(&wire).await;
        let _ = writer.flush().await;
    };
    let read = tokio::time::timeout(WAIT, answer(reader, marker));
    let ((), answered) = tokio::join!(write, read);
    answered.expect("the server answers the sequence or closes the connection in time");
    trace(|| "end".to_owned());
}

/// Reads until the `Pong` to `marker` or the end of the stream.
async fn answer(reader: &mut Reader, marker: u64) {
    loop {
        let frame = match reader.next().await {
            Some(Ok(frame)) => frame,
            // Closed, cleanly or not.
            None | Some(Err(FrameError::Io { .. } | FrameError::Truncated { .. })) => return,
            Some(Err(err)) => panic!("the server wrote a frame its clients cannot read: {err}"),
        };
        trace(|| format!("< {frame:?}"));
        match frame {
            ServerFrame::Pong(pong) if pong.nonce == marker => return,
            ServerFrame::Error(err) => {
                assert_ne!(err.code, ErrorCode::InternalError, "{err:?}");
            }
            _ => {}
        }
    }
}

/// Prints a line when `FRAME_SEQUENCE_TRACE` is set.
fn trace(line: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FRAME_SEQUENCE_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

fn next_nonce() -> u64 {
    static NONCE: AtomicU64 = AtomicU64::new(1 << 63);
    NONCE.fetch_add(1, Ordering::Relaxed)
}

/// The server and what every input shares.
struct Harness {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    pin: CertFingerprint,
    me: Device,
    watcher: Mutex<Watcher>,
    _server: ServerHandle,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("courier-fuzz-")
            .tempdir()
            .unwrap();
        let (server, watcher) = rt.block_on(async {
            // libFuzzer's `main` is not Rust's, which would ignore SIGPIPE:
            // a TLS write (`writev`, no MSG_NOSIGNAL) to a connection its
            // peer closed would kill the process. A handler makes it a
            // plain EPIPE; it stays installed when the stream is dropped.
            drop(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe()).unwrap());
            let server = ServerBuilder::new()
                .bind("127.0.0.1:0".parse().unwrap())
                .data_dir(dir.path())
                .limits(limits())
                .durability(Durability::Memory)
                .start()
                .await
                .unwrap();
            let addr = server.local_addr();
            let pin = server.fingerprint().unwrap();
            // Registered once, then offline: sends to it are parked.
            Conn::open(addr, pin)
                .await
                .authenticate(&Device::new("peer", 3))
                .await;
            let mut watcher = Conn::open(addr, pin).await;
            watcher.authenticate(&Device::new("watcher", 2)).await;
            let watcher = Watcher {
                conn: watcher,
                acked: HashSet::new(),
            };
            (server, watcher)
        });
        Harness {
            rt,
            addr: server.local_addr(),
            pin: server.fingerprint().unwrap(),
            me: Device::new("fuzz", 1),
            watcher: Mutex::new(watcher),
            _server: server,
            _dir: dir,
        }
    })
}

/// Default limits with small quotas, so that state stays small over
/// millions of inputs, and no cap on handshakes in progress.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.mailbox_quota = 256;
    limits.max_media_bytes = 1024 * 1024;
    limits.max_media_chunk_bytes = 16 * 1024;
    limits.max_unauthenticated_per_address = 100_000;
    limits
}

/// A device with keys derived from a fixed seed: `name/1`.
struct Device {
    id: DeviceId,
    keys: IdentityKeyPair,
}

impl Device {
    fn new(name: &str, seed: u8) -> Self {
        Self {
            id: DeviceId::new(UserName::new(name).unwrap(), 1),
            keys: IdentityKeyPair::from_secret_bytes(&[seed; 32], &[seed ^ 0x5a; 32]),
        }
    }

    /// Puts this device's identity and a valid signature for the
    /// connection into `hello`.
    fn sign(&self, hello: &mut ClientHello, challenge: &[u8; 32], exporter: &[u8; 32]) {
        let public = self.keys.public();
        hello.identity = DeviceIdentity {
            signing_key: public.signing_key,
            agreement_key: public.agreement_key,
            agreement_signature: public.agreement_signature,
        };
        hello.signature = self
            .keys
            .sign(&protocol::auth_transcript(challenge, exporter));
    }
}

type Reader = FramedRead<ReadHalf<TlsStream<TcpStream>>, ClientCodec>;

/// A client connection that has received `ServerHello`.
struct Conn {
    reader: Reader,
    writer: WriteHalf<TlsStream<TcpStream>>,
    challenge: [u8; 32],
    exporter: [u8; 32],
}

impl Conn {
    async fn open(addr: SocketAddr, pin: CertFingerprint) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = ClientTls::pinned(pin)
            .connect("localhost", tcp, WAIT)
            .await
            .unwrap();
        let exporter = courier::tls::exporter(&tls).unwrap();
        let (read, writer) = tokio::io::split(tls);
        let mut reader = FramedRead::new(read, ClientCodec::default());
        let first = tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("ServerHello in time")
            .expect("a frame")
            .expect("a valid frame");
        let ServerFrame::ServerHello(hello) = first else {
            panic!("expected ServerHello, got {first:?}");
        };
        Self {
            reader,
            writer,
            challenge: hello.challenge,
            exporter,
        }
    }

    async fn write(&mut self, wire: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(wire).await?;
        self.writer.flush().await
    }

    async fn send(&mut self, frame: ClientFrame) {
        let mut wire = BytesMut::new();
        ClientCodec::default()
            .encode_frame(&frame, &mut wire)
            .expect("a harness frame encodes");
        self.write(&wire).await.expect("connection open");
    }

    /// The next frame, which must come in time.
    async fn recv(&mut self) -> ServerFrame {
        tokio::time::timeout(WAIT, self.reader.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("a valid frame")
    }

    async fn authenticate(&mut self, device: &Device) {
        let mut hello = ClientHello {
            version: PROTOCOL_VERSION,
            device: device.id.clone(),
            identity: DeviceIdentity {
                signing_key: [0; 32],
                agreement_key: [0; 32],
                agreement_signature: [0; 64],
            },
            signature: [0; 64],
        };
        device.sign(&mut hello, &self.challenge, &self.exporter);
        self.send(hello.into()).await;
        loop {
            match self.recv().await {
                ServerFrame::Welcome(w) if w.device == device.id => return,
                ServerFrame::Ping(_) => {}
                other => panic!("expected Welcome, got {other:?}"),
            }
        }
    }
}

/// The well-behaved device: pings after every input and acknowledges each
/// message it gets once.
struct Watcher {
    conn: Conn,
    acked: HashSet<(DeviceId, MessageId)>,
}

impl Watcher {
    async fn still_served(&mut self) {
        let nonce = next_nonce();
        self.conn.send(Ping { nonce }.into()).await;
        loop {
            match self.conn.recv().await {
                ServerFrame::Pong(pong) if pong.nonce == nonce => return,
                ServerFrame::Deliver(d) => {
                    if self.acked.insert((d.from.clone(), d.id)) {
                        let ack = DeliveryAck {
                            from: d.from,
                            id: d.id,
                        };
                        self.conn.send(ack.into()).await;
                    }
                }
                ServerFrame::Error(err) => panic!("the watcher got {err:?}"),
                _ => {}
            }
        }
    }
}
