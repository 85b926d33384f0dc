//! A small in-memory Courier server for client tests: authentication,
//! prekeys and bundles, `SendToUser` with device checks and de-duplication,
//! parking for offline devices, delivery acks and receipts. It follows
//! `docs/protocol.md` closely enough to drive the client; durability, limits
//! and groups are left out.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use courier::crypto::DeviceIdentity as CryptoIdentity;
use courier::protocol::{
    Accepted, Bundle, ClientFrame, Deliver, Delivered, DeviceBundle, DeviceId, DeviceIdentity,
    ErrorCode, ErrorFrame, Limits, MessageId, OneTimePrekey, PROTOCOL_VERSION, Pong, ServerCodec,
    ServerFrame, ServerHello, SignedPrekey, Welcome, auth_transcript,
};
use courier::tls::{CertFingerprint, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

#[derive(Default)]
struct State {
    identities: HashMap<DeviceId, DeviceIdentity>,
    signed: HashMap<DeviceId, SignedPrekey>,
    one_time: HashMap<DeviceId, Vec<OneTimePrekey>>,
    online: HashMap<DeviceId, mpsc::UnboundedSender<ServerFrame>>,
    /// Parked frames per device, in order.
    parked: HashMap<DeviceId, Vec<ServerFrame>>,
    accepted: HashSet<(DeviceId, MessageId)>,
    /// Count of `SendToUser` frames received, per id.
    sends: HashMap<MessageId, usize>,
    /// When set, `DeliveryAck`s are ignored (to force redelivery).
    drop_acks: bool,
}

/// The fake server; stops when dropped.
pub(crate) struct FakeServer {
    pub(crate) addr: SocketAddr,
    pub(crate) fingerprint: CertFingerprint,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = ServerTls::load_or_create_self_signed(dir.path()).unwrap();
        let fingerprint = tls.fingerprint().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let tls = tls.clone_for_test();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(tls, tcp, state).await;
                });
            }
        });
        Self {
            addr,
            fingerprint,
            state,
            task,
            _dir: dir,
        }
    }

    /// How many `SendToUser` frames carried `id`.
    pub(crate) fn sends_of(&self, id: MessageId) -> usize {
        self.state
            .lock()
            .unwrap()
            .sends
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    /// Ignore delivery acks from now on (or stop ignoring them).
    pub(crate) fn set_drop_acks(&self, drop: bool) {
        self.state.lock().unwrap().drop_acks = drop;
    }
}

trait CloneForTest {
    fn clone_for_test(&self) -> ServerTls;
}

impl CloneForTest for ServerTls {
    fn clone_for_test(&self) -> ServerTls {
        ServerTls::from_config(Arc::clone(self.config()))
    }
}

async fn serve(tls: ServerTls, tcp: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> Option<()> {
    let stream = tls.accept(tcp, Duration::from_secs(10)).await.ok()?;
    let exporter = courier::tls::exporter(&stream).ok()?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut codec = ServerCodec::default();
    let mut rbuf = BytesMut::new();
    let challenge: [u8; 32] = rand::random();

    let mut out = BytesMut::new();
    codec
        .encode_frame(
            &ServerFrame::ServerHello(ServerHello {
                version: PROTOCOL_VERSION,
                challenge,
                limits: Limits::default(),
            }),
            &mut out,
        )
        .ok()?;
    writer.write_all(&out).await.ok()?;

    let hello = loop {
        if let Some(frame) = codec.decode(&mut rbuf).ok()? {
            break frame;
        }
        if reader.read_buf(&mut rbuf).await.ok()? == 0 {
            return None;
        }
    };
    let ClientFrame::ClientHello(hello) = hello else {
        return None;
    };
    let identity = CryptoIdentity {
        signing_key: hello.identity.signing_key,
        agreement_key: hello.identity.agreement_key,
        agreement_signature: hello.identity.agreement_signature,
    };
    let transcript = auth_transcript(&challenge, &exporter);
    let device = hello.device.clone();
    let verified = identity.verify().is_ok()
        && identity
            .verify_signature(&transcript, &hello.signature)
            .is_ok();
    let known = {
        let mut st = state.lock().unwrap();
        match st.identities.get(&device) {
            Some(existing) => *existing == hello.identity,
            None => {
                st.identities.insert(device.clone(), hello.identity.clone());
                true
            }
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerFrame>();
    if !verified || !known {
        let _ = tx.send(ServerFrame::Error(ErrorFrame::new(
            ErrorCode::AuthFailed,
            "auth failed",
            None,
        )));
    } else {
        let mut st = state.lock().unwrap();
        let remaining = st.one_time.get(&device).map_or(0, Vec::len) as u32;
        let _ = tx.send(ServerFrame::Welcome(Welcome {
            device: device.clone(),
            server_time_ms: 0,
            prekeys_remaining: remaining,
        }));
        for frame in st.parked.get(&device).cloned().unwrap_or_default() {
            let _ = tx.send(frame);
        }
        if let Some(parked) = st.parked.get_mut(&device) {
            parked.retain(|f| matches!(f, ServerFrame::Deliver(_)));
        }
        st.online.insert(device.clone(), tx.clone());
    }
    drop(tx);

    let writer_task = tokio::spawn(async move {
        let codec = ServerCodec::default();
        while let Some(frame) = rx.recv().await {
            let mut out = BytesMut::new();
            if codec.encode_frame(&frame, &mut out).is_err() {
                return;
            }
            if writer.write_all(&out).await.is_err() {
                return;
            }
            if matches!(frame, ServerFrame::Error(ref e) if e.code.closes_connection()) {
                let _ = writer.shutdown().await;
                return;
            }
        }
        let _ = writer.shutdown().await;
    });

    if verified && known {
        loop {
            let frame = match codec.decode(&mut rbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => match reader.read_buf(&mut rbuf).await {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                },
                Err(_) => break,
            };
            let mut st = state.lock().unwrap();
            let Some(me) = st.online.get(&device).cloned() else {
                break;
            };
            handle(&mut st, &device, &me, frame);
        }
    }
    {
        let mut st = state.lock().unwrap();
        st.online.remove(&device);
    }
    writer_task.abort();
    Some(())
}

fn handle(
    st: &mut State,
    device: &DeviceId,
    me: &mpsc::UnboundedSender<ServerFrame>,
    frame: ClientFrame,
) {
    match frame {
        ClientFrame::Ping(ping) => {
            let _ = me.send(ServerFrame::Pong(Pong { nonce: ping.nonce }));
        }
        ClientFrame::UploadPrekeys(upload) => {
            st.signed.insert(device.clone(), upload.signed_prekey);
            st.one_time
                .entry(device.clone())
                .or_default()
                .extend(upload.one_time);
        }
        ClientFrame::RequestBundle(request) => {
            let devices: Vec<DeviceId> = st
                .identities
                .keys()
                .filter(|d| d.user == request.user && st.signed.contains_key(d))
                .cloned()
                .collect();
            if devices.is_empty() {
                let _ = me.send(ServerFrame::Error(ErrorFrame::new(
                    ErrorCode::UnknownRecipient,
                    "unknown user",
                    Some(request.id),
                )));
                return;
            }
            let mut bundles = Vec::new();
            for d in devices {
                let one_time = st.one_time.get_mut(&d).and_then(|v| v.pop());
                bundles.push(DeviceBundle {
                    device: d.device,
                    identity: st.identities[&d].clone(),
                    signed_prekey: st.signed[&d].clone(),
                    one_time_prekey: one_time,
                });
            }
            let _ = me.send(ServerFrame::Bundle(Bundle {
                user: request.user,
                devices: bundles,
            }));
        }
        ClientFrame::SendToUser(send) => {
            *st.sends.entry(send.id).or_default() += 1;
            if st.accepted.contains(&(device.clone(), send.id)) {
                let _ = me.send(ServerFrame::Accepted(Accepted { id: send.id }));
                return;
            }
            let mut expected: Vec<u32> = st
                .identities
                .keys()
                .filter(|d| d.user == send.to && st.signed.contains_key(d) && *d != device)
                .map(|d| d.device)
                .collect();
            expected.sort_unstable();
            let mut got: Vec<u32> = send.copies.iter().map(|c| c.device).collect();
            got.sort_unstable();
            if expected != got {
                let code = if expected.is_empty() && send.to != device.user {
                    ErrorCode::UnknownRecipient
                } else {
                    ErrorCode::StaleDevices
                };
                let _ = me.send(ServerFrame::Error(ErrorFrame::new(
                    code,
                    "devices",
                    Some(send.id),
                )));
                return;
            }
            st.accepted.insert((device.clone(), send.id));
            let _ = me.send(ServerFrame::Accepted(Accepted { id: send.id }));
            for copy in send.copies {
                let to = DeviceId::new(send.to.clone(), copy.device);
                let frame = ServerFrame::Deliver(Deliver {
                    id: send.id,
                    from: device.clone(),
                    group: None,
                    body: copy.body,
                    sent_at_ms: 1,
                });
                st.parked.entry(to.clone()).or_default().push(frame.clone());
                if let Some(link) = st.online.get(&to) {
                    let _ = link.send(frame);
                }
            }
        }
        ClientFrame::DeliveryAck(ack) => {
            if st.drop_acks {
                return;
            }
            let Some(parked) = st.parked.get_mut(device) else {
                return;
            };
            let before = parked.len();
            parked.retain(
                |f| !matches!(f, ServerFrame::Deliver(d) if d.id == ack.id && d.from == ack.from),
            );
            if parked.len() == before {
                return;
            }
            let receipt = ServerFrame::Delivered(Delivered {
                id: ack.id,
                to: device.clone(),
            });
            match st.online.get(&ack.from) {
                Some(link) => {
                    let _ = link.send(receipt);
                }
                None => st.parked.entry(ack.from.clone()).or_default().push(receipt),
            }
        }
        _ => {}
    }
}
