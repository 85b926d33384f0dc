//! Mailboxes: order, backpressure, try_send, call.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{
    CallError, Envelope, ExitReason, Node, ReplyTo, SendError, SpawnOptions, TrySendError,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const HANG: Duration = Duration::from_secs(10);

enum Req {
    Echo(u32, ReplyTo<u32>),
    Drop(ReplyTo<u32>),
    Stop,
}

fn echo_server(node: &Node) -> supervisors::Addr<Req> {
    node.spawn(|mut ctx| async move {
        loop {
            match ctx.recv_msg().await {
                Req::Echo(n, reply) => {
                    let _ = reply.send(n);
                }
                Req::Drop(reply) => drop(reply),
                Req::Stop => return ExitReason::error("asked to stop"),
            }
        }
    })
}

#[tokio::test]
async fn delivers_messages_in_send_order() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = node.spawn(move |mut ctx| async move {
        loop {
            let n: u32 = ctx.recv_msg().await;
            tx.send(n).unwrap();
        }
    });
    for n in 0..1000 {
        addr.send(n).await.unwrap();
    }
    for n in 0..1000 {
        assert_eq!(timeout(HANG, rx.recv()).await.unwrap(), Some(n));
    }
}

#[tokio::test]
async fn try_send_reports_a_full_mailbox_and_returns_the_message() {
    let node = Node::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = node
        .spawn_with(SpawnOptions::new().capacity(2), |mut ctx| async move {
            go_rx.await.unwrap();
            loop {
                let _: u32 = ctx.recv_msg().await;
            }
        })
        .unwrap();
    addr.try_send(1).unwrap();
    addr.try_send(2).unwrap();
    match addr.try_send(3) {
        Err(TrySendError::Full(3)) => {}
        other => panic!("expected full, got {other:?}"),
    }
    assert_eq!(addr.mailbox_len(), 2);
    go_tx.send(()).unwrap();
}

#[tokio::test]
async fn send_waits_for_room_in_a_full_mailbox() {
    let node = Node::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let addr = node
        .spawn_with(SpawnOptions::new().capacity(1), |mut ctx| async move {
            go_rx.await.unwrap();
            loop {
                let n: u32 = ctx.recv_msg().await;
                out_tx.send(n).unwrap();
            }
        })
        .unwrap();
    addr.send(1).await.unwrap();
    let sender = {
        let addr = addr.clone();
        tokio::spawn(async move {
            for n in 2..=50 {
                addr.send(n).await.unwrap();
            }
        })
    };
    tokio::task::yield_now().await;
    assert!(!sender.is_finished());
    go_tx.send(()).unwrap();
    for n in 1..=50 {
        assert_eq!(timeout(HANG, out_rx.recv()).await.unwrap(), Some(n));
    }
    timeout(HANG, sender).await.unwrap().unwrap();
}

#[tokio::test]
async fn cancelled_send_passes_its_wakeup_on() {
    let node = Node::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let addr = node
        .spawn_with(SpawnOptions::new().capacity(1), |mut ctx| async move {
            go_rx.await.unwrap();
            loop {
                let n: u32 = ctx.recv_msg().await;
                out_tx.send(n).unwrap();
            }
        })
        .unwrap();
    addr.send(1).await.unwrap();
    let cancelled = {
        let addr = addr.clone();
        tokio::spawn(async move { addr.send(2).await })
    };
    let waiting = {
        let addr = addr.clone();
        tokio::spawn(async move { addr.send(3).await })
    };
    tokio::task::yield_now().await;
    cancelled.abort();
    go_tx.send(()).unwrap();
    timeout(HANG, waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(timeout(HANG, out_rx.recv()).await.unwrap(), Some(1));
    let next = timeout(HANG, out_rx.recv()).await.unwrap().unwrap();
    assert!(next == 3 || next == 2);
}

#[tokio::test]
async fn send_to_an_exited_process_gives_the_message_back() {
    let node = Node::new();
    let addr = node.spawn(|_ctx: supervisors::Ctx<String>| async { ExitReason::Normal });
    assert_eq!(
        timeout(HANG, addr.watch()).await.unwrap(),
        ExitReason::Normal
    );
    assert!(!addr.is_alive());
    let err = addr.send("hello".to_owned()).await.unwrap_err();
    assert_eq!(err, SendError("hello".to_owned()));
    match addr.try_send("again".to_owned()) {
        Err(TrySendError::Exited(m)) => assert_eq!(m, "again"),
        other => panic!("expected exited, got {other:?}"),
    }
}

#[tokio::test]
async fn blocked_sender_fails_when_the_process_exits() {
    let node = Node::new();
    let addr = node
        .spawn_with(SpawnOptions::new().capacity(1), |mut ctx| async move {
            let _: u32 = ctx.recv_msg().await;
            std::future::pending::<ExitReason>().await
        })
        .unwrap();
    addr.send(1).await.unwrap();
    addr.send(2).await.unwrap();
    let blocked = {
        let addr = addr.clone();
        tokio::spawn(async move { addr.send(3).await })
    };
    tokio::task::yield_now().await;
    node.kill(addr.pid());
    let result = timeout(HANG, blocked).await.unwrap().unwrap();
    assert_eq!(result, Err(SendError(3)));
}

#[tokio::test]
async fn call_returns_the_reply() {
    let node = Node::new();
    let server = echo_server(&node);
    for n in 0..100 {
        let got = server.call(|r| Req::Echo(n, r), HANG).await;
        assert_eq!(got, Ok(n));
    }
}

/// A process that keeps every request and answers none.
fn silent(node: &Node) -> supervisors::Addr<ReplyTo<u32>> {
    node.spawn(|mut ctx| async move {
        let mut kept = Vec::new();
        loop {
            let reply: ReplyTo<u32> = ctx.recv_msg().await;
            kept.push(reply);
        }
    })
}

#[tokio::test(start_paused = true)]
async fn call_times_out_when_nobody_answers() {
    let node = Node::new();
    let silent = silent(&node);
    let got = silent.call(|r| r, Duration::from_millis(500)).await;
    assert_eq!(got, Err(CallError::Timeout));
}

/// Fails (rather than advancing the paused clock forever) when a call
/// is never woken.
async fn timeout_guard<T>(call: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(120), call)
        .await
        .expect("the call was woken at its deadline")
}

#[tokio::test(start_paused = true)]
async fn a_long_call_timeout_fires_when_due_not_at_a_tick() {
    let node = Node::new();
    let silent = silent(&node);
    // Long timeouts wait on the node's ticks until they come near, then on
    // an exact timer.
    let timeout = Duration::from_millis(10_250);
    let start = tokio::time::Instant::now();
    let got = timeout_guard(silent.call(|r| r, timeout)).await;
    assert_eq!(got, Err(CallError::Timeout));
    assert_eq!(start.elapsed(), timeout);
    // An answered call with a long timeout leaves nothing behind.
    let echo = node.spawn(|mut ctx| async move {
        loop {
            let (n, reply): (u32, ReplyTo<u32>) = ctx.recv_msg().await;
            let _ = reply.send(n);
        }
    });
    for n in 0..3 {
        assert_eq!(echo.call(|r| (n, r), Duration::from_secs(60)).await, Ok(n));
    }
}

#[tokio::test]
async fn call_reports_the_exit_reason_of_a_dead_server() {
    let node = Node::new();
    let server = echo_server(&node);
    server.send(Req::Stop).await.unwrap();
    let reason = timeout(HANG, server.watch()).await.unwrap();
    assert_eq!(reason, ExitReason::error("asked to stop"));
    let got = server.call(|r| Req::Echo(1, r), HANG).await;
    assert_eq!(
        got,
        Err(CallError::Exited(ExitReason::error("asked to stop")))
    );
}

#[tokio::test]
async fn call_reports_a_dropped_reply() {
    let node = Node::new();
    let server = echo_server(&node);
    let got = server.call(Req::Drop, HANG).await;
    assert_eq!(got, Err(CallError::NoReply));
}

#[tokio::test]
async fn typed_lookup_by_pid_checks_the_message_type() {
    let node = Node::new();
    let server = echo_server(&node);
    assert!(node.addr::<Req>(server.pid()).is_some());
    assert!(node.addr::<String>(server.pid()).is_none());
    assert_eq!(node.mailbox_len(server.pid()), Some(0));
}

#[tokio::test]
async fn try_recv_never_waits() {
    let node = Node::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let addr = node.spawn(move |mut ctx| async move {
        tx.send(ctx.try_recv().is_none()).unwrap();
        let n: u32 = ctx.recv_msg().await;
        got_tx.send(n).unwrap();
        ExitReason::Normal
    });
    assert!(timeout(HANG, rx).await.unwrap().unwrap());
    addr.send(7).await.unwrap();
    assert_eq!(timeout(HANG, got_rx).await.unwrap().unwrap(), 7);
    let _ = Envelope::<u32>::Message(1);
}

#[tokio::test]
async fn a_receive_polled_under_another_waker_is_woken_too() {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;

    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = node.spawn(move |mut ctx: supervisors::Ctx<u32>| async move {
        for _ in 0..3 {
            // A receive inside a `FuturesUnordered` waits under that set's
            // waker, not the task's own.
            let mut set = FuturesUnordered::new();
            set.push(ctx.recv_msg());
            let n = set.next().await;
            drop(set);
            tx.send(n).unwrap();
            // And once under the task's own waker.
            let n = ctx.recv_msg().await;
            tx.send(Some(n)).unwrap();
        }
        ExitReason::Normal
    });
    for n in 0..6 {
        // Lets the process reach its receive before the message comes.
        tokio::task::yield_now().await;
        addr.send(n).await.unwrap();
        assert_eq!(timeout(HANG, rx.recv()).await.unwrap(), Some(Some(n)));
    }
}
