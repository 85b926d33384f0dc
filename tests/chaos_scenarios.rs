//! Seeded chaos scenarios: real server, real clients, real TLS through the
//! fault proxy, one family of faults each; every one must end with the
//! delivery contract intact (zero loss).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use courier::chaos::{FaultKind, Report, Scenario, ServerMode};

/// Runs a scenario, prints its report and checks it passed and injected
/// at least one fault of every kind in `kinds`.
async fn check(scenario: Scenario, kinds: &[FaultKind]) -> Report {
    if let Ok(filter) = std::env::var("CHAOS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let report = scenario.run().await.unwrap();
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.messages.sent > 0, "{report}");
    assert!(report.messages.delivered > 0, "{report}");
    assert_eq!(report.messages.lost, 0);
    for kind in kinds {
        assert!(report.injected(*kind) > 0, "no {kind} injected:\n{report}");
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_everything_is_delivered_once_in_order() {
    let scenario = Scenario::new("baseline", 1)
        .clients(4)
        .duration(Duration::from_secs(2))
        .rate(5.0);
    let report = check(scenario, &[]).await;
    assert_eq!(report.messages.accepted, report.messages.sent);
    assert_eq!(report.messages.delivered, report.messages.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_faults_lose_nothing_acknowledged() {
    let scenario = Scenario::new("process", 11)
        .clients(6)
        .duration(Duration::from_secs(6))
        .rate(4.0)
        .faults(&FaultKind::PROCESS, 2.0);
    let report = check(
        scenario,
        &[
            FaultKind::KillLogic,
            FaultKind::PanicLogic,
            FaultKind::KillSession,
            FaultKind::KillStore,
            FaultKind::KillSubtree,
        ],
    )
    .await;
    assert!(report.restarts.supervisor > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_lose_nothing_acknowledged() {
    let scenario = Scenario::new("network", 21)
        .clients(6)
        .duration(Duration::from_secs(6))
        .rate(4.0)
        .faults(&FaultKind::NETWORK, 3.0);
    let report = check(scenario, &FaultKind::NETWORK).await;
    assert!(report.restarts.client_reconnects > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_frames_and_recovers() {
    let scenario = Scenario::new("disk", 31)
        .clients(4)
        .duration(Duration::from_secs(5))
        .rate(5.0)
        .faults(&[FaultKind::DiskFull], 0.6);
    let report = check(scenario, &[FaultKind::DiskFull]).await;
    assert!(report.messages.accepted > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_absent_clients_and_killed_mailboxes_lose_nothing() {
    let scenario = Scenario::new("clients", 41)
        .clients(6)
        .duration(Duration::from_secs(6))
        .rate(4.0)
        .faults(
            &[
                FaultKind::SlowConsumer,
                FaultKind::ClientOffline,
                FaultKind::KillMailbox,
            ],
            1.5,
        );
    check(
        scenario,
        &[
            FaultKind::SlowConsumer,
            FaultKind::ClientOffline,
            FaultKind::KillMailbox,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_monkey_kills_sessions_and_nothing_acknowledged_is_lost() {
    let scenario = Scenario::new("monkey", 51)
        .clients(6)
        .duration(Duration::from_secs(5))
        .rate(4.0)
        .monkey(2.0, 8);
    let report = check(scenario, &[]).await;
    assert!(report.restarts.monkey_strikes > 0, "{report}");
}

/// The child-process server of [`kill_9_of_the_server_loses_nothing_acknowledged`]:
/// a no-op unless the environment names a data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_child_server() {
    courier::chaos::child_server_from_env().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_server_loses_nothing_acknowledged() {
    let program = std::env::current_exe().unwrap();
    let args = ["--exact", "chaos_child_server", "--nocapture", "--quiet"]
        .map(String::from)
        .to_vec();
    let scenario = Scenario::new("crash", 61)
        .clients(4)
        .duration(Duration::from_secs(6))
        .rate(4.0)
        .faults(&[FaultKind::ServerCrash, FaultKind::NetDrop], 0.5)
        .server(ServerMode::Child { program, args });
    let report = check(scenario, &[FaultKind::ServerCrash]).await;
    assert!(report.restarts.server > 0, "{report}");
}
