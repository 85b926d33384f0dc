//! Feeds arbitrary bytes to both directions of the frame decoder. It must
//! never panic, never reserve past its limit, and every frame it accepts
//! must encode and decode back to itself.
//!
//! `cargo +nightly fuzz run frame_decoder fuzz/corpus/frame_decoder
//! fuzz/seeds/frame_decoder` (libFuzzer writes new inputs to the first
//! directory, which git ignores; the seeds stay as committed).

#![no_main]

use bytes::BytesMut;
use courier::protocol::{ClientCodec, ServerCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

const LIMIT: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut server = ServerCodec::new(LIMIT);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = server.decode(&mut buf) {
        let mut wire = BytesMut::new();
        ClientCodec::new(u32::MAX)
            .encode(&frame, &mut wire)
            .expect("a decoded frame encodes");
        let again = ServerCodec::new(u32::MAX)
            .decode(&mut wire)
            .expect("re-encoded frame decodes");
        assert_eq!(again, Some(frame));
        assert!(wire.is_empty());
    }
    assert!(buf.capacity() <= data.len().max(LIMIT as usize + 4) + 64);
    let _ = server.decode_eof(&mut buf);

    let mut client = ClientCodec::new(LIMIT);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = client.decode(&mut buf) {
        let mut wire = BytesMut::new();
        ServerCodec::new(u32::MAX)
            .encode(&frame, &mut wire)
            .expect("a decoded frame encodes");
        let again = ClientCodec::new(u32::MAX)
            .decode(&mut wire)
            .expect("re-encoded frame decodes");
        assert_eq!(again, Some(frame));
    }
    let _ = client.decode_eof(&mut buf);
});
