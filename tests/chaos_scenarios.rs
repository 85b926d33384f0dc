//! Seeded chaos scenarios: real server, real clients, real TLS through the
//! fault proxy, one family of faults each; every one must end with the
//! delivery contract intact (zero loss).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use courier::chaos::{FaultKind, Report, Scenario};

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
