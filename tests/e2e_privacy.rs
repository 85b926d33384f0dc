//! End to end: the server never holds plaintext, neither in its data
//! directory nor in its logs (captured at trace level).

#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod e2e;
}

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use support::e2e::{TestServer, accepted, contains, delivered, files_under, name, next_text};

/// Everything any subscriber in this test binary logged.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&logs));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_reaches_the_data_directory_or_the_logs() {
    let logs = capture_logs();
    let server = TestServer::start().await;
    let (bob, _) = server.client("bob", 1).await;
    bob.close().await;
    let (alice, mut alice_events) = server.client("alice", 1).await;

    // Parked for the offline device: durable on the server, sealed.
    let secrets: Vec<String> = (0..5)
        .map(|i| format!("the eagle lands at midnight, plan {i}"))
        .collect();
    let mut ids = Vec::new();
    for secret in &secrets {
        let id = alice.send_text(&name("bob"), secret.clone()).await.unwrap();
        accepted(&mut alice_events, id).await;
        ids.push(id);
    }
    assert_no_plaintext(&server, &logs, &secrets, "while parked");

    let (bob, mut bob_events) = server.client("bob", 1).await;
    for secret in &secrets {
        assert_eq!(&next_text(&mut bob_events).await.0, secret);
    }
    for id in &ids {
        delivered(&mut alice_events, *id).await;
    }
    let reply = "the reply is also secret: blue heron";
    let id = bob.send_text(&name("alice"), reply).await.unwrap();
    assert_eq!(next_text(&mut alice_events).await, (reply.to_owned(), id));
    delivered(&mut bob_events, id).await;

    alice.close().await;
    bob.close().await;
    server.handle.shutdown().await;
    let mut all = secrets.clone();
    all.push(reply.to_owned());
    assert_no_plaintext(&server, &logs, &all, "after shutdown");

    // The scan does find plaintext where it is: the clients' own history.
    let alice_files = files_under(&server.state_dir("alice", 1));
    assert!(
        alice_files
            .iter()
            .any(|(_, bytes)| contains(bytes, reply.as_bytes())),
        "the scan should see the client's own stored history"
    );
    assert!(!logs.lock().unwrap().is_empty(), "logs were captured");
}

fn assert_no_plaintext(server: &TestServer, logs: &Mutex<Vec<u8>>, secrets: &[String], when: &str) {
    let files = files_under(&server.data_dir);
    assert!(!files.is_empty(), "the data directory has files");
    for secret in secrets {
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{when}: plaintext in {}",
                path.display()
            );
        }
        let logs = logs.lock().unwrap();
        assert!(
            !contains(&logs, secret.as_bytes()),
            "{when}: plaintext in the logs"
        );
    }
}
