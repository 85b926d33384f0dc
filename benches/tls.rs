//! Full and resumed TLS 1.3 handshakes per second over loopback, client and
//! server in one process sharing the machine's cores.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use courier::tls::{ClientTls, ServerTls};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts forever: handshake, one byte (which follows the tickets), close.
async fn serve(listener: TcpListener, server: ServerTls) {
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let Ok(mut stream) = server.accept(tcp, TIMEOUT).await else {
                return;
            };
            let _ = stream.write_all(b"!").await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        });
    }
}

/// One client connection: connect, handshake, read the byte. Returns
/// whether the handshake was resumed.
async fn one(client: &ClientTls, addr: std::net::SocketAddr) -> bool {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.set_nodelay(true);
    let mut stream = client.connect("localhost", tcp, TIMEOUT).await.unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.unwrap();
    stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

fn handshakes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerTls::load_or_create_self_signed(dir.path()).unwrap();
    let pin = server.fingerprint().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, server));

    let resuming = ClientTls::pinned(pin);
    let mut no_resumption = (**ClientTls::pinned(pin).config()).clone();
    no_resumption.resumption = rustls::client::Resumption::disabled();
    let full = ClientTls::from_config(Arc::new(no_resumption));

    // Eight connections in flight keep both cores busy.
    const BATCH: u64 = 8;
    let mut group = c.benchmark_group("tls_handshake");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, client) in [("full", &full), ("resumed", &resuming)] {
        rt.block_on(one(client, addr));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..BATCH {
                        let client = client.clone();
                        set.spawn(async move { one(&client, addr).await });
                    }
                    while let Some(done) = set.join_next().await {
                        done.unwrap();
                    }
                })
            })
        });
    }
    group.finish();

    // Say how many of a batch actually resumed, so the figures can be read.
    for (name, client) in [("full", &full), ("resumed", &resuming)] {
        let resumed = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..BATCH {
                let client = client.clone();
                set.spawn(async move { one(&client, addr).await });
            }
            let mut resumed = 0;
            while let Some(done) = set.join_next().await {
                resumed += u64::from(done.unwrap());
            }
            resumed
        });
        eprintln!("{name}: {resumed} of {BATCH} handshakes in a batch resumed");
    }
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
