//! Helpers for the end-to-end tests: a real server in-process on
//! 127.0.0.1 with a temporary data directory and a self-signed certificate,
//! and clients pinned to its fingerprint.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use courier::client::{Client, ClientConfig, Content, Event, Events, Trust};
use courier::protocol::{MessageId, UserName};
use courier::server::{Authenticator, Registration, ServerBuilder, ServerHandle};
use courier::tls::CertFingerprint;

/// How long any single event may take before the test counts as hung.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Lets every device register (each device of a user has its own
/// identity, which the default policy refuses).
struct OpenRegistration;

impl Authenticator for OpenRegistration {
    fn may_register(&self, _registration: &Registration<'_>) -> bool {
        true
    }
}

/// A server and the directories of one test.
pub(crate) struct TestServer {
    pub(crate) handle: ServerHandle,
    pub(crate) addr: SocketAddr,
    pub(crate) fingerprint: CertFingerprint,
    pub(crate) data_dir: PathBuf,
    /// Holds the data directory and the clients' state directories.
    pub(crate) root: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub(crate) async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("server");
        let handle = build(&data_dir, SocketAddr::from(([127, 0, 0, 1], 0))).await;
        Self {
            addr: handle.local_addr(),
            fingerprint: handle.fingerprint().unwrap(),
            handle,
            data_dir,
            root,
        }
    }

    /// Shuts the server down and starts it again on the same address and
    /// data directory.
    pub(crate) async fn restart(&mut self) {
        self.handle.shutdown().await;
        self.handle = build(&self.data_dir, self.addr).await;
        assert_eq!(self.handle.fingerprint(), Some(self.fingerprint));
    }

    /// A client configuration for `user`'s device `device`, pinned to this
    /// server, with its state under the test's directory.
    pub(crate) fn config(&self, user: &str, device: u32) -> ClientConfig {
        self.config_via(self.addr, user, device)
    }

    /// As [`config`](Self::config), connecting through `addr` (a proxy).
    pub(crate) fn config_via(&self, addr: SocketAddr, user: &str, device: u32) -> ClientConfig {
        ClientConfig::new(
            addr.to_string(),
            Trust::Pinned(self.fingerprint),
            name(user),
            device,
            self.state_dir(user, device),
        )
        .with_reconnect(Duration::from_millis(20), Duration::from_millis(300))
    }

    /// Where `user`'s device `device` keeps its state.
    pub(crate) fn state_dir(&self, user: &str, device: u32) -> PathBuf {
        self.root.path().join(format!("client-{user}-{device}"))
    }

    /// Connects `user`'s device `device`.
    pub(crate) async fn client(&self, user: &str, device: u32) -> (Client, Events) {
        Client::connect(self.config(user, device)).await.unwrap()
    }
}

async fn build(data_dir: &Path, addr: SocketAddr) -> ServerHandle {
    ServerBuilder::new()
        .bind(addr)
        .data_dir(data_dir)
        .authenticator(OpenRegistration)
        .start()
        .await
        .unwrap()
}

pub(crate) fn name(user: &str) -> UserName {
    UserName::new(user).unwrap()
}

/// Waits for the first event that `pick` maps to a value.
pub(crate) async fn wait_for<T>(
    events: &mut Events,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("client stopped");
            if let Some(value) = pick(&event) {
                return value;
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}

/// The next text message: (text, id, sending device's user).
pub(crate) async fn next_text(events: &mut Events) -> (String, MessageId) {
    wait_for(events, |e| match e {
        Event::Message {
            content: Content::Text(text),
            id,
            ..
        } => Some((text.clone(), *id)),
        _ => None,
    })
    .await
}

pub(crate) async fn accepted(events: &mut Events, id: MessageId) {
    wait_for(events, |e| {
        matches!(e, Event::Accepted { id: got } if *got == id).then_some(())
    })
    .await;
}

/// Waits for a delivered receipt of `id` and returns the device.
pub(crate) async fn delivered(events: &mut Events, id: MessageId) -> courier::protocol::DeviceId {
    wait_for(events, |e| match e {
        Event::Delivered { id: got, to } if *got == id => Some(to.clone()),
        _ => None,
    })
    .await
}

/// Every file under `dir`, recursively, with its bytes.
pub(crate) fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
