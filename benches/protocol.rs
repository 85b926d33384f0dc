//! Frame codec benchmarks: encoding and decoding the frames that carry a
//! sealed message, with a 100-byte body and with a 64 KiB media chunk.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use bytes::{Bytes, BytesMut};
use courier::protocol::{
    ClientCodec, ClientFrame, Deliver, DeviceId, MediaChunk, MediaId, MessageId, SendDirect,
    ServerCodec, ServerFrame, UserName,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

fn device(name: &str, device: u32) -> DeviceId {
    DeviceId::new(UserName::new(name).expect("a valid literal name"), device)
}

fn send_direct(body_bytes: usize) -> ClientFrame {
    SendDirect {
        id: MessageId([0x11; 16]),
        to: device("bob", 2),
        body: Bytes::from(vec![0xab; body_bytes]),
    }
    .into()
}

fn deliver(body_bytes: usize) -> ServerFrame {
    Deliver {
        id: MessageId([0x11; 16]),
        from: device("alice", 1),
        group: None,
        body: Bytes::from(vec![0xab; body_bytes]),
        sent_at_ms: 1_764_790_000_000,
    }
    .into()
}

fn media_chunk(data_bytes: usize) -> ServerFrame {
    MediaChunk {
        media: MediaId([0x22; 16]),
        offset: 0,
        total_bytes: data_bytes as u64,
        data: Bytes::from(vec![0xcd; data_bytes]),
    }
    .into()
}

fn wire<F>(frame: &F, encode: impl FnOnce(&F, &mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(frame, &mut buf);
    buf.to_vec()
}

fn client_frames(c: &mut Criterion) {
    let frame = send_direct(100);
    let bytes = wire(&frame, |f, b| {
        ClientCodec::default().encode(f, b).expect("encodes")
    });
    let mut group = c.benchmark_group("protocol/send_direct_100");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    let mut codec = ClientCodec::default();
    let mut buf = BytesMut::with_capacity(1024);
    group.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&frame), &mut buf).expect("encodes");
        })
    });

    let mut codec = ServerCodec::default();
    group.bench_function("decode", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&bytes[..]),
            |buf| codec.decode(buf).expect("decodes").expect("whole"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn server_frames(c: &mut Criterion) {
    for (name, frame) in [
        ("deliver_100", deliver(100)),
        ("media_chunk_64k", media_chunk(65_536)),
    ] {
        let bytes = wire(&frame, |f, b| {
            ServerCodec::default().encode(f, b).expect("encodes")
        });
        let mut group = c.benchmark_group(format!("protocol/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));

        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::with_capacity(bytes.len());
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                codec.encode(black_box(&frame), &mut buf).expect("encodes");
            })
        });

        let mut codec = ClientCodec::default();
        group.bench_function("decode", |b| {
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| codec.decode(buf).expect("decodes").expect("whole"),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, client_frames, server_frames);
criterion_main!(benches);
