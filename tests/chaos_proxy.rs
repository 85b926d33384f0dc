//! The TCP fault proxy: pass-through and each fault kind.
#![cfg(feature = "chaos")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use courier::chaos::{ConnectionId, Direction, Fault, FaultProxy, ProxiedConnection};
use courier::tls::{ClientTls, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A deadline that only catches hangs.
const HANG: Duration = Duration::from_secs(10);

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, future).await.expect("timed out")
}

/// A target listener, a proxy in front of it, and one connection through it.
struct Setup {
    proxy: FaultProxy,
    client: TcpStream,
    server: TcpStream,
    connection: ProxiedConnection,
}

async fn setup() -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(listener.local_addr().unwrap())
        .await
        .unwrap();
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (server, _) = within(listener.accept()).await.unwrap();
    let connection = within(proxy.wait_connection(ConnectionId(0)))
        .await
        .unwrap();
    Setup {
        proxy,
        client,
        server,
        connection,
    }
}

/// A deterministic byte pattern.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn bytes_pass_through_unchanged_both_ways() {
    let Setup {
        proxy,
        client,
        server,
        connection,
    } = setup().await;
    let up = pattern(300_000, 1);
    let down = pattern(200_000, 7);

    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_sent = up.clone();
    let down_sent = down.clone();
    let writers = tokio::spawn(async move {
        let a = async {
            client_write.write_all(&up_sent).await.unwrap();
            client_write.shutdown().await.unwrap();
        };
        let b = async {
            server_write.write_all(&down_sent).await.unwrap();
            server_write.shutdown().await.unwrap();
        };
        tokio::join!(a, b);
    });

    let mut at_server = Vec::new();
    let mut at_client = Vec::new();
    let (r1, r2) = within(async {
        tokio::join!(
            server_read.read_to_end(&mut at_server),
            client_read.read_to_end(&mut at_client)
        )
    })
    .await;
    r1.unwrap();
    r2.unwrap();
    within(writers).await.unwrap();
    assert!(at_server == up, "client to server bytes changed");
    assert!(at_client == down, "server to client bytes changed");

    let stats = within(connection.closed()).await;
    assert_eq!(stats.to_server.delivered, up.len() as u64);
    assert_eq!(stats.to_client.delivered, down.len() as u64);
    let totals = proxy.stats();
    assert_eq!(totals.accepted, 1);
    assert_eq!(totals.open, 0);
    assert_eq!(totals.bytes_to_server, up.len() as u64);
    assert_eq!(totals.bytes_to_client, down.len() as u64);
}

#[tokio::test]
async fn drop_closes_the_client_side() {
    let Setup {
        mut client,
        server: _server,
        connection,
        proxy: _proxy,
    } = setup().await;
    connection.drop_now();
    let mut buf = [0u8; 16];
    match within(client.read(&mut buf)).await {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("client still connected: {other:?}"),
    }
    assert!(within(connection.closed()).await.closed);
}

#[tokio::test]
async fn drop_all_closes_every_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(listener.local_addr().unwrap())
        .await
        .unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for i in 0..3 {
        clients.push(TcpStream::connect(proxy.local_addr()).await.unwrap());
        servers.push(within(listener.accept()).await.unwrap().0);
        within(proxy.wait_connection(ConnectionId(i)))
            .await
            .unwrap();
    }
    assert_eq!(proxy.connections().len(), 3);

    proxy.drop_all();
    for server in &mut servers {
        let mut buf = [0u8; 1];
        assert!(!matches!(within(server.read(&mut buf)).await, Ok(n) if n > 0));
    }
    for i in 0..3 {
        if let Some(conn) = proxy.connection(ConnectionId(i)) {
            within(conn.closed()).await;
        }
    }
    assert_eq!(proxy.stats().open, 0);
}

#[tokio::test]
async fn cut_delivers_exactly_n_bytes_then_eof() {
    let Setup {
        mut client,
        mut server,
        connection,
        proxy: _proxy,
    } = setup().await;
    connection.cut_after(Direction::ToServer, 5);
    client.write_all(b"0123456789").await.unwrap();

    let mut got = Vec::new();
    within(server.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"01234");

    // The other direction is closed too.
    let mut buf = [0u8; 1];
    assert!(!matches!(within(client.read(&mut buf)).await, Ok(n) if n > 0));
    let stats = within(connection.closed()).await;
    assert_eq!(stats.to_server.delivered, 5);
}

#[tokio::test]
async fn cut_counts_bytes_across_chunks() {
    let Setup {
        mut client,
        mut server,
        connection,
        proxy: _proxy,
    } = setup().await;
    let mut first = [0u8; 3];
    server.write_all(b"abc").await.unwrap();
    within(client.read_exact(&mut first)).await.unwrap();

    connection.cut_after(Direction::ToClient, 4);
    server.write_all(b"de").await.unwrap();
    within(connection.wait_for(|s| s.to_client.delivered == 5)).await;
    server.write_all(b"fghij").await.unwrap();

    let mut rest = Vec::new();
    within(client.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(rest, b"defg");
}

#[tokio::test]
async fn stall_blocks_delivery_until_resumed() {
    let Setup {
        mut client,
        mut server,
        connection,
        proxy: _proxy,
    } = setup().await;
    connection.stall(Direction::ToServer);
    client.write_all(b"hello").await.unwrap();

    // The proxy has the bytes and holds them.
    let stats = within(connection.wait_for(|s| s.to_server.held() == 5)).await;
    assert_eq!(stats.to_server.delivered, 0);
    let mut buf = [0u8; 5];
    assert_eq!(
        server.try_read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );

    // The other direction still flows.
    server.write_all(b"pong").await.unwrap();
    let mut pong = [0u8; 4];
    within(client.read_exact(&mut pong)).await.unwrap();
    assert_eq!(&pong, b"pong");

    connection.resume(Direction::ToServer);
    within(server.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"hello");
}

#[tokio::test]
async fn delay_holds_each_chunk_at_least_that_long() {
    let Setup {
        mut client,
        mut server,
        connection,
        proxy: _proxy,
    } = setup().await;
    let delay = Duration::from_millis(50);
    connection.delay(Direction::ToClient, delay);

    let started = Instant::now();
    server.write_all(b"slow").await.unwrap();
    let mut buf = [0u8; 4];
    within(client.read_exact(&mut buf)).await.unwrap();
    assert!(started.elapsed() >= delay);
    assert_eq!(&buf, b"slow");
}

#[tokio::test]
async fn flip_bit_changes_exactly_one_bit_at_offset() {
    let Setup {
        mut client,
        mut server,
        connection,
        proxy: _proxy,
    } = setup().await;
    connection.flip_bit(Direction::ToServer, 3, 0);
    client.write_all(&[0u8; 8]).await.unwrap();
    let mut buf = [0u8; 8];
    within(server.read_exact(&mut buf)).await.unwrap();
    assert_eq!(buf, [0, 0, 0, 1, 0, 0, 0, 0]);

    // Only once.
    client.write_all(&[0u8; 8]).await.unwrap();
    within(server.read_exact(&mut buf)).await.unwrap();
    assert_eq!(buf, [0u8; 8]);
}

#[tokio::test]
async fn faults_for_new_connections_apply_before_first_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(listener.local_addr().unwrap())
        .await
        .unwrap();
    proxy.apply_to_new(Fault::Cut {
        direction: Direction::ToServer,
        bytes: 2,
    });
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut server, _) = within(listener.accept()).await.unwrap();
    client.write_all(b"abcdef").await.unwrap();
    let mut got = Vec::new();
    within(server.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"ab");

    proxy.clear_new_faults();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut server, _) = within(listener.accept()).await.unwrap();
    client.write_all(b"abcdef").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    within(server.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"abcdef");
}

#[tokio::test]
async fn unreachable_target_closes_client_and_is_counted() {
    // Bind then drop a listener to get a port with nobody behind it.
    let vacant = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(vacant).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 1];
    assert!(!matches!(within(client.read(&mut buf)).await, Ok(n) if n > 0));
    assert!(
        within(proxy.wait_connection(ConnectionId(0)))
            .await
            .is_none()
    );
    assert_eq!(proxy.stats().target_unreachable, 1);
}

#[tokio::test]
async fn flipped_byte_makes_tls_read_fail() {
    let dir = tempfile::tempdir().unwrap();
    let server_tls = ServerTls::load_or_create_self_signed(dir.path()).unwrap();
    let client_tls = ClientTls::pinned(server_tls.fingerprint().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(listener.local_addr().unwrap())
        .await
        .unwrap();

    let tcp = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (server_tcp, _) = within(listener.accept()).await.unwrap();
    let accept = tokio::spawn(async move { server_tls.accept(server_tcp, HANG).await });
    let mut client = client_tls.connect("localhost", tcp, HANG).await.unwrap();
    let mut server = within(accept).await.unwrap().unwrap();
    let connection = within(proxy.wait_connection(ConnectionId(0)))
        .await
        .unwrap();

    // A clean record first, so the corruption below is the only cause.
    client.write_all(b"hello").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 5];
    within(server.read_exact(&mut buf)).await.unwrap();

    // Offset 10 lands inside the next record's ciphertext (5-byte header).
    connection.flip_bit(Direction::ToServer, 10, 3);
    client.write_all(b"secret message").await.unwrap();
    client.flush().await.unwrap();
    let mut rest = [0u8; 14];
    let err = within(server.read_exact(&mut rest)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(tls, Some(rustls::Error::DecryptError));
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let Setup {
        proxy,
        mut client,
        connection,
        server: _server,
    } = setup().await;
    drop(proxy);
    let mut buf = [0u8; 1];
    assert!(!matches!(within(client.read(&mut buf)).await, Ok(n) if n > 0));
    assert!(within(connection.closed()).await.closed);
}

#[test]
fn public_handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<FaultProxy>();
    check::<ProxiedConnection>();
    check::<Fault>();
}
