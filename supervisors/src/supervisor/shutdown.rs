//! Stopping children: one at a time (supervisors) or all at once
//! (dynamic supervisors).

use std::time::Duration;

use tokio::time::timeout;

use super::spec::Shutdown;
use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;

/// Stops one child the OTP way: unlink, then kill at once or send
/// `Shutdown` and wait, killing after the timeout.
///
/// A killed child whose task does not end within `grace` (a handler that
/// never reaches an `.await` cannot be stopped by tokio) is declared dead
/// so the supervisor can carry on.
pub(crate) async fn stop_child(
    node: &Node,
    sup: Pid,
    pid: Pid,
    shutdown: Shutdown,
    grace: Duration,
) -> ExitReason {
    node.unlink(sup, pid);
    let mut watch = node.watch(pid);
    match shutdown {
        Shutdown::BrutalKill => {
            node.kill(pid);
        }
        Shutdown::Timeout(limit) => {
            node.exit_as(sup, pid, ExitReason::Shutdown);
            match timeout(limit, &mut watch).await {
                Ok(reason) => return reason,
                Err(_) => {
                    tracing::warn!(supervisor = %sup, child = %pid, "child ignored shutdown, killing it");
                    node.kill(pid);
                }
            }
        }
        Shutdown::Infinity => {
            node.exit_as(sup, pid, ExitReason::Shutdown);
            return watch.await;
        }
    }
    match timeout(grace, &mut watch).await {
        Ok(reason) => reason,
        Err(_) => {
            force(node, sup, pid);
            ExitReason::Killed
        }
    }
}

/// Stops many children in parallel, each within the same shutdown limit.
pub(crate) async fn stop_all(
    node: &Node,
    sup: Pid,
    pids: Vec<Pid>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let counter = node.unlink_and_watch_all(sup, &pids);
    for &pid in &pids {
        match shutdown {
            Shutdown::BrutalKill => node.kill(pid),
            Shutdown::Timeout(_) | Shutdown::Infinity => {
                node.exit_as(sup, pid, ExitReason::Shutdown)
            }
        };
    }
    let first = match shutdown {
        Shutdown::BrutalKill => grace,
        Shutdown::Timeout(limit) => limit,
        Shutdown::Infinity => {
            counter.wait().await;
            return;
        }
    };
    if timeout(first, counter.wait()).await.is_ok() {
        return;
    }
    let left: Vec<Pid> = pids.into_iter().filter(|&p| node.is_alive(p)).collect();
    if shutdown != Shutdown::BrutalKill {
        tracing::warn!(supervisor = %sup, children = left.len(), "children ignored shutdown, killing them");
        for &pid in &left {
            node.kill(pid);
        }
        if timeout(grace, counter.wait()).await.is_ok() {
            return;
        }
    }
    for pid in left.into_iter().filter(|&p| node.is_alive(p)) {
        force(node, sup, pid);
    }
}

fn force(node: &Node, sup: Pid, pid: Pid) {
    tracing::warn!(
        supervisor = %sup,
        child = %pid,
        "child could not be stopped promptly, declaring it dead"
    );
    node.force_exit(pid, ExitReason::Killed);
}
