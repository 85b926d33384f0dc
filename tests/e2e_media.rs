//! End to end: a blob sealed by the sender, stored as ciphertext by the
//! server, downloaded and opened by the recipient.

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod e2e;
}

use courier::client::{Content, Event};
use support::e2e::{TestServer, accepted, contains, files_under, name, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_travels_sealed_and_opens_at_the_recipient() {
    let server = TestServer::start().await;
    let (alice, mut alice_events) = server.client("alice", 1).await;
    let (bob, mut bob_events) = server.client("bob", 1).await;

    // Larger than one chunk, with a marker to look for on the server.
    let marker = b"holiday photo of the secret beach";
    let mut blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    blob[1000..1000 + marker.len()].copy_from_slice(marker);

    let id = alice
        .send_media(&name("bob"), blob.clone(), "beach.jpg")
        .await
        .unwrap();
    accepted(&mut alice_events, id).await;
    let reference = wait_for(&mut bob_events, |e| match e {
        Event::Message {
            content: Content::Media(media),
            id: got,
            ..
        } if *got == id => Some(media.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reference.name, "beach.jpg");
    assert_eq!(reference.size, blob.len() as u64);
    let downloaded = tokio::time::timeout(support::e2e::WAIT, bob.download_media(&reference))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(downloaded, blob);

    for (path, bytes) in files_under(&server.data_dir) {
        assert!(!contains(&bytes, marker), "plaintext in {}", path.display());
    }

    // A reference with the wrong key fails its check instead of opening.
    let mut forged = reference.clone();
    forged.key[0] ^= 1;
    assert!(bob.download_media(&forged).await.is_err());
    server.handle.shutdown().await;
}
