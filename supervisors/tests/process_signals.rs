//! Exit signals, links, monitors, trapping, kill, panics.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{Addr, Ctx, Envelope, ExitReason, Node, Pid, SpawnOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const HANG: Duration = Duration::from_secs(10);

/// A process that waits for messages forever.
fn idle(node: &Node) -> Addr<()> {
    node.spawn(|mut ctx| async move {
        loop {
            ctx.recv().await;
        }
    })
}

/// A process that traps exits and forwards every envelope it receives.
fn trapper(node: &Node) -> (Addr<u32>, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = node
        .spawn_with(
            SpawnOptions::new().trap_exits(true),
            move |mut ctx| async move {
                loop {
                    let line = match ctx.recv().await {
                        Envelope::Message(n) => format!("msg {n}"),
                        Envelope::Exit { from, reason } => format!("exit {from} {reason}"),
                        Envelope::Down { pid, reason, .. } => format!("down {pid} {reason}"),
                        _ => "other".to_owned(),
                    };
                    if tx.send(line).is_err() {
                        return ExitReason::Normal;
                    }
                }
            },
        )
        .unwrap();
    (addr, rx)
}

/// A process that exits with `reason` when it receives a message.
fn exits_on_message(node: &Node, link: Option<Pid>) -> Addr<ExitReason> {
    let mut opts = SpawnOptions::new();
    if let Some(p) = link {
        opts = opts.link(p);
    }
    node.spawn_with(opts, |mut ctx: Ctx<ExitReason>| async move {
        ctx.recv_msg().await
    })
    .unwrap()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    timeout(HANG, rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn panic_becomes_the_exit_reason() {
    let node = Node::new();
    let addr = node.spawn(|mut ctx: Ctx<u32>| async move {
        let n = ctx.recv_msg().await;
        if n == 1 {
            panic!("boom {n}");
        }
        ExitReason::Normal
    });
    addr.send(1).await.unwrap();
    let reason = timeout(HANG, addr.watch()).await.unwrap();
    assert_eq!(reason, ExitReason::Panic("boom 1".to_owned()));
    let other = idle(&node);
    assert!(other.is_alive());
}

#[tokio::test]
async fn abnormal_exit_kills_linked_process_with_the_same_reason() {
    let node = Node::new();
    let a = idle(&node);
    let b = exits_on_message(&node, Some(a.pid()));
    b.send(ExitReason::error("bad")).await.unwrap();
    assert_eq!(
        timeout(HANG, a.watch()).await.unwrap(),
        ExitReason::error("bad")
    );
}

#[tokio::test]
async fn normal_exit_does_not_kill_linked_process() {
    let node = Node::new();
    let (a, mut rx) = trapper(&node);
    let watcher = idle(&node);
    let b = exits_on_message(&node, Some(watcher.pid()));
    node.link(b.pid(), a.pid());
    b.send(ExitReason::Normal).await.unwrap();
    assert_eq!(next(&mut rx).await, format!("exit {} normal", b.pid()));
    assert!(watcher.is_alive());
    assert!(node.is_alive(watcher.pid()));
}

#[tokio::test]
async fn trapping_process_receives_exit_signals_as_messages() {
    let node = Node::new();
    let (a, mut rx) = trapper(&node);
    let b = exits_on_message(&node, Some(a.pid()));
    b.send(ExitReason::error("bad")).await.unwrap();
    assert_eq!(next(&mut rx).await, format!("exit {} error: bad", b.pid()));
    node.exit(a.pid(), ExitReason::Shutdown);
    assert_eq!(
        next(&mut rx).await,
        format!("exit {} shutdown", node.external_pid())
    );
    assert!(a.is_alive());
}

#[tokio::test]
async fn kill_cannot_be_trapped() {
    let node = Node::new();
    let (a, _rx) = trapper(&node);
    assert!(node.kill(a.pid()));
    assert_eq!(timeout(HANG, a.watch()).await.unwrap(), ExitReason::Killed);
}

#[tokio::test]
async fn killed_propagates_to_links_and_can_be_trapped_there() {
    let node = Node::new();
    let (a, mut rx) = trapper(&node);
    let b = idle(&node);
    let c = idle(&node);
    node.link(b.pid(), a.pid());
    node.link(b.pid(), c.pid());
    node.kill(b.pid());
    assert_eq!(next(&mut rx).await, format!("exit {} killed", b.pid()));
    assert_eq!(timeout(HANG, c.watch()).await.unwrap(), ExitReason::Killed);
}

#[tokio::test]
async fn exit_with_normal_is_ignored_by_a_process_that_does_not_trap() {
    let node = Node::new();
    let a = idle(&node);
    node.exit(a.pid(), ExitReason::Normal);
    node.exit(a.pid(), ExitReason::Shutdown);
    assert_eq!(
        timeout(HANG, a.watch()).await.unwrap(),
        ExitReason::Shutdown
    );
}

#[tokio::test]
async fn exit_to_self_with_normal_stops_the_process() {
    let node = Node::new();
    let addr = node.spawn(|mut ctx: Ctx<()>| async move {
        ctx.exit(ctx.pid(), ExitReason::Normal);
        loop {
            ctx.recv().await;
        }
    });
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::Normal
    );
}

#[tokio::test]
async fn monitor_delivers_down_once_with_the_reason() {
    let node = Node::new();
    let (a, mut rx) = trapper(&node);
    let (ref_tx, ref_rx) = oneshot::channel();
    let target = exits_on_message(&node, None);
    let target_pid = target.pid();
    let _monitoring = node.spawn(move |mut ctx: Ctx<()>| async move {
        let r = ctx.monitor(target_pid);
        ref_tx.send(()).unwrap();
        match ctx.recv().await {
            Envelope::Down {
                reference,
                pid,
                reason,
            } => {
                assert_eq!(reference, r);
                assert_eq!(pid, target_pid);
                reason
            }
            _ => ExitReason::error("unexpected"),
        }
    });
    timeout(HANG, ref_rx).await.unwrap().unwrap();
    node.link(_monitoring.pid(), a.pid());
    target.send(ExitReason::error("x")).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        format!("exit {} error: x", _monitoring.pid())
    );
}

#[tokio::test]
async fn monitoring_a_dead_process_gives_noproc() {
    let node = Node::new();
    let dead = node.spawn(|_ctx: Ctx<()>| async { ExitReason::Normal });
    timeout(HANG, dead.watch()).await.unwrap();
    let dead_pid = dead.pid();
    let addr = node.spawn(move |mut ctx: Ctx<()>| async move {
        ctx.monitor(dead_pid);
        match ctx.recv().await {
            Envelope::Down { reason, .. } => reason,
            _ => ExitReason::error("unexpected"),
        }
    });
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::NoProc
    );
    assert_eq!(node.watch(dead_pid).await, ExitReason::NoProc);
}

#[tokio::test]
async fn linking_to_a_dead_process_kills_with_noproc() {
    let node = Node::new();
    let dead = node.spawn(|_ctx: Ctx<()>| async { ExitReason::Normal });
    timeout(HANG, dead.watch()).await.unwrap();
    let a = idle(&node);
    node.link(a.pid(), dead.pid());
    assert_eq!(timeout(HANG, a.watch()).await.unwrap(), ExitReason::NoProc);
}

#[tokio::test]
async fn demonitor_flushes_a_queued_down() {
    let node = Node::new();
    let target = exits_on_message(&node, None);
    let target_pid = target.pid();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel();
    let watcher = target.clone();
    let _ = node.spawn(move |mut ctx: Ctx<()>| async move {
        let r = ctx.monitor(target_pid);
        watcher.send(ExitReason::Normal).await.unwrap();
        go_rx.await.unwrap();
        ctx.demonitor(r);
        done_tx.send(ctx.try_recv().is_none()).unwrap();
        ExitReason::Normal
    });
    timeout(HANG, target.watch()).await.unwrap();
    go_tx.send(()).unwrap();
    assert!(timeout(HANG, done_rx).await.unwrap().unwrap());
}

#[tokio::test]
async fn unlink_stops_exit_propagation() {
    let node = Node::new();
    let a = idle(&node);
    let b = exits_on_message(&node, Some(a.pid()));
    node.unlink(a.pid(), b.pid());
    b.send(ExitReason::error("bad")).await.unwrap();
    timeout(HANG, b.watch()).await.unwrap();
    assert!(a.is_alive());
}

#[tokio::test]
async fn signals_are_received_before_queued_messages() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let addr = node
        .spawn_with(
            SpawnOptions::new().trap_exits(true),
            move |mut ctx| async move {
                go_rx.await.unwrap();
                loop {
                    let line = match ctx.recv().await {
                        Envelope::Message(n) => format!("msg {n}"),
                        Envelope::Exit { reason, .. } => format!("exit {reason}"),
                        _ => "other".to_owned(),
                    };
                    tx.send(line).unwrap();
                }
            },
        )
        .unwrap();
    addr.send(1u32).await.unwrap();
    addr.send(2).await.unwrap();
    node.exit(addr.pid(), ExitReason::Shutdown);
    go_tx.send(()).unwrap();
    assert_eq!(next(&mut rx).await, "exit shutdown");
    assert_eq!(next(&mut rx).await, "msg 1");
    assert_eq!(next(&mut rx).await, "msg 2");
}

#[tokio::test]
async fn exit_signal_stops_a_process_waiting_on_something_else() {
    let node = Node::new();
    let addr = node.spawn(|_ctx: Ctx<()>| async move {
        std::future::pending::<()>().await;
        ExitReason::Normal
    });
    tokio::task::yield_now().await;
    node.exit(addr.pid(), ExitReason::error("stop"));
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::error("stop")
    );
}

#[tokio::test]
async fn trap_flag_can_change_at_run_time() {
    let node = Node::new();
    let (ready_tx, ready_rx) = oneshot::channel();
    let addr = node.spawn(move |mut ctx: Ctx<()>| async move {
        ctx.trap_exits(true);
        ready_tx.send(()).unwrap();
        match ctx.recv().await {
            Envelope::Exit { reason, .. } => ExitReason::ShutdownWith(reason.to_string()),
            _ => ExitReason::error("unexpected"),
        }
    });
    timeout(HANG, ready_rx).await.unwrap().unwrap();
    node.exit(addr.pid(), ExitReason::error("x"));
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::ShutdownWith("error: x".to_owned())
    );
}

#[tokio::test]
async fn nodes_are_independent() {
    let one = Node::new();
    let two = Node::new();
    let a = idle(&one);
    let b = idle(&two);
    assert_ne!(a.pid(), b.pid());
    assert!(!two.is_alive(a.pid()));
    assert!(!two.kill(a.pid()));
    assert_eq!(one.process_count(), 1);
    assert_eq!(two.process_count(), 1);
}

#[tokio::test]
async fn process_table_forgets_exited_processes() {
    let node = Node::new();
    let a = idle(&node);
    assert_eq!(node.process_count(), 1);
    node.kill(a.pid());
    timeout(HANG, a.watch()).await.unwrap();
    assert_eq!(node.process_count(), 0);
    assert!(node.pids().is_empty());
}
