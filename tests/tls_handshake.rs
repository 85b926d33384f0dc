//! Handshakes over loopback between `ServerTls` and `ClientTls`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use courier::tls::{
    self, ALPN_COURIER, CertFingerprint, ClientTls, ServerTls, TlsError, accept_with_timeout,
    exporter,
};
use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream as ClientStream;
use tokio_rustls::server::TlsStream as ServerStream;

/// A deadline that only catches hangs.
const HANG: Duration = Duration::from_secs(10);

struct Fixture {
    _dir: tempfile::TempDir,
    server: ServerTls,
    listener: TcpListener,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerTls::load_or_create_self_signed(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            _dir: dir,
            server,
            listener,
        }
    }

    fn fingerprint(&self) -> CertFingerprint {
        self.server.fingerprint().unwrap()
    }

    fn pinned_client(&self) -> ClientTls {
        ClientTls::pinned(self.fingerprint())
    }

    /// Accepts one TCP connection and runs the server handshake on it.
    async fn accept_one(&self) -> JoinHandle<Result<ServerStream<TcpStream>, TlsError>> {
        let acceptor = self.server.acceptor();
        let listener_addr = self.listener.local_addr().unwrap();
        let (tcp, _) = tokio::time::timeout(HANG, self.listener.accept())
            .await
            .unwrap_or_else(|_| panic!("no connection to {listener_addr}"))
            .unwrap();
        tokio::spawn(async move { accept_with_timeout(&acceptor, tcp, HANG).await })
    }

    /// Connects `client` and completes both sides of a handshake.
    async fn pair(
        &self,
        client: &ClientTls,
    ) -> (
        Result<ClientStream<TcpStream>, TlsError>,
        Result<ServerStream<TcpStream>, TlsError>,
    ) {
        let addr = self.listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let server = self.accept_one().await;
        let client = client.connect("localhost", tcp, HANG).await;
        let server = tokio::time::timeout(HANG, server).await.unwrap().unwrap();
        (client, server)
    }
}

#[tokio::test]
async fn handshake_negotiates_tls13_and_alpn() {
    let fx = Fixture::new().await;
    let (client, server) = fx.pair(&fx.pinned_client()).await;
    let mut client = client.unwrap();
    let mut server = server.unwrap();

    for conn in [
        client.get_ref().1.protocol_version(),
        server.get_ref().1.protocol_version(),
    ] {
        assert_eq!(conn, Some(rustls::ProtocolVersion::TLSv1_3));
    }
    assert_eq!(client.get_ref().1.alpn_protocol(), Some(ALPN_COURIER));
    assert_eq!(server.get_ref().1.alpn_protocol(), Some(ALPN_COURIER));
    assert_eq!(
        client.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );

    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn exporter_is_equal_on_both_ends_and_differs_across_connections() {
    let fx = Fixture::new().await;
    let client_tls = fx.pinned_client();

    let (client, server) = fx.pair(&client_tls).await;
    let (client, server) = (client.unwrap(), server.unwrap());
    let first = exporter(&client).unwrap();
    assert_eq!(first, exporter(&server).unwrap());
    assert_eq!(first, exporter(client.get_ref().1).unwrap());

    let (client2, server2) = fx.pair(&client_tls).await;
    let (client2, server2) = (client2.unwrap(), server2.unwrap());
    let second = exporter(&client2).unwrap();
    assert_eq!(second, exporter(&server2).unwrap());
    assert_ne!(first, second);

    let wrapped = tokio_rustls::TlsStream::from(server2);
    assert_eq!(exporter(&wrapped).unwrap(), second);
}

#[test]
fn exporter_before_handshake_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerTls::load_or_create_self_signed(dir.path()).unwrap();
    let conn = rustls::ServerConnection::new(Arc::clone(server.config())).unwrap();
    assert!(matches!(exporter(&conn), Err(TlsError::Exporter { .. })));
}

#[tokio::test]
async fn wrong_pinned_fingerprint_is_rejected() {
    let fx = Fixture::new().await;
    let mut wrong = fx.fingerprint();
    wrong.0[0] ^= 0x01;

    let (client, server) = fx.pair(&ClientTls::pinned(wrong)).await;
    assert_eq!(
        client.unwrap_err(),
        TlsError::FingerprintMismatch {
            expected: wrong,
            presented: fx.fingerprint(),
        }
    );
    assert!(matches!(
        server.unwrap_err(),
        TlsError::BadCertificate { .. }
    ));
}

#[tokio::test]
async fn second_connection_of_same_client_is_resumed() {
    let fx = Fixture::new().await;
    let client_tls = fx.pinned_client();

    let (client, server) = fx.pair(&client_tls).await;
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(
        server.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    // Tickets travel after the handshake; reading past them stores them.
    server.write_all(b"x").await.unwrap();
    server.flush().await.unwrap();
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).await.unwrap();

    // A clone shares the cache, as reconnect loops hold clones.
    let (client2, server2) = fx.pair(&client_tls.clone()).await;
    let (client2, server2) = (client2.unwrap(), server2.unwrap());
    assert_eq!(
        client2.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    assert_eq!(
        server2.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
    assert_eq!(client2.get_ref().1.alpn_protocol(), Some(ALPN_COURIER));
}

#[tokio::test]
async fn other_client_does_a_full_handshake() {
    let fx = Fixture::new().await;
    let (client, server) = fx.pair(&fx.pinned_client()).await;
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    server.write_all(b"x").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut [0u8; 1]).await.unwrap();

    let (other, _server) = fx.pair(&fx.pinned_client()).await;
    assert_eq!(
        other.unwrap().get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
}

#[tokio::test]
async fn tls12_only_client_is_refused() {
    let fx = Fixture::new().await;
    let cert_pem = std::fs::read(fx._dir.path().join("tls-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let old_client = ClientTls::from_config(Arc::new(config));

    let (client, server) = fx.pair(&old_client).await;
    assert!(matches!(
        server.unwrap_err(),
        TlsError::HandshakeFailed { .. }
    ));
    assert!(matches!(
        client.unwrap_err(),
        TlsError::HandshakeFailed { .. }
    ));
}

#[tokio::test]
async fn garbage_before_handshake_is_a_handshake_error() {
    let fx = Fixture::new().await;
    let inputs: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00],
        &[
            0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04,
        ],
    ];
    for input in inputs {
        let mut tcp = TcpStream::connect(fx.listener.local_addr().unwrap())
            .await
            .unwrap();
        let server = fx.accept_one().await;
        tcp.write_all(input).await.unwrap();
        // Close our side so a server waiting for more bytes sees the end.
        tcp.shutdown().await.unwrap();
        let result = tokio::time::timeout(HANG, server).await.unwrap().unwrap();
        match result {
            Err(TlsError::HandshakeFailed { .. }) => {}
            other => panic!("unexpected result for {input:?}: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn garbage_record_is_rejected_without_waiting_for_more() {
    let fx = Fixture::new().await;
    let mut tcp = TcpStream::connect(fx.listener.local_addr().unwrap())
        .await
        .unwrap();
    let server = fx.accept_one().await;
    // Not a TLS record type at all; the socket stays open.
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let result = tokio::time::timeout(HANG, server).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(TlsError::HandshakeFailed { .. })),
        "{:?}",
        result.map(|_| ())
    );
}

#[tokio::test(start_paused = true)]
async fn silent_client_hits_handshake_timeout() {
    let fx = Fixture::new().await;
    let addr = fx.listener.local_addr().unwrap();
    let (accepted, _silent) = tokio::join!(fx.listener.accept(), TcpStream::connect(addr));
    let (tcp, _) = accepted.unwrap();

    let started = tokio::time::Instant::now();
    let limit = Duration::from_secs(10);
    let result = accept_with_timeout(&fx.server.acceptor(), tcp, limit).await;
    assert_eq!(
        result.map(|_| ()),
        Err(TlsError::HandshakeTimeout { after: limit })
    );
    assert!(started.elapsed() >= limit);
}

#[tokio::test]
async fn free_connect_matches_method() {
    let fx = Fixture::new().await;
    let addr = fx.listener.local_addr().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server = fx.accept_one().await;
    let client = tls::connect(&fx.pinned_client(), "127.0.0.1", tcp, HANG)
        .await
        .unwrap();
    let server = server.await.unwrap().unwrap();
    assert_eq!(exporter(&client).unwrap(), exporter(&server).unwrap());
}

#[tokio::test]
async fn invalid_server_name_is_a_config_error() {
    let fx = Fixture::new().await;
    let tcp = TcpStream::connect(fx.listener.local_addr().unwrap())
        .await
        .unwrap();
    let result = fx.pinned_client().connect("not a name!", tcp, HANG).await;
    assert!(matches!(result.map(|_| ()), Err(TlsError::Config { .. })));
}

#[tokio::test]
async fn ca_bundle_client_checks_chain_and_name() {
    let fx = Fixture::new().await;
    let cert_pem = std::fs::read(fx._dir.path().join("tls-cert.pem")).unwrap();
    let client_tls = ClientTls::with_ca_pem(&cert_pem).unwrap();

    let (client, server) = fx.pair(&client_tls).await;
    assert_eq!(
        exporter(&client.unwrap()).unwrap(),
        exporter(&server.unwrap()).unwrap()
    );

    // Same certificate, but the client asks for a name it does not cover.
    let tcp = TcpStream::connect(fx.listener.local_addr().unwrap())
        .await
        .unwrap();
    let server = fx.accept_one().await;
    let client = client_tls.connect("chat.example", tcp, HANG).await;
    assert!(matches!(
        client.map(|_| ()),
        Err(TlsError::BadCertificate { .. })
    ));
    let _ = server.await;

    assert!(matches!(
        ClientTls::with_ca_pem(b"no pem here"),
        Err(TlsError::Config { .. })
    ));
}

#[test]
fn public_handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<ServerTls>();
    check::<ClientTls>();
    check::<TlsError>();
    check::<CertFingerprint>();
}
