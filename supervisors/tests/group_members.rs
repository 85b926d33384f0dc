//! Process groups: join, leave, members, broadcast, clean-up on exit.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{Addr, Ctx, ExitReason, GroupError, Node};
use tokio::sync::mpsc;
use tokio::time::timeout;

const HANG: Duration = Duration::from_secs(10);

fn forwarder(node: &Node, out: mpsc::UnboundedSender<(u64, String)>, tag: u64) -> Addr<String> {
    node.spawn(move |mut ctx: Ctx<String>| async move {
        loop {
            let msg = ctx.recv_msg().await;
            let _ = out.send((tag, msg));
        }
    })
}

#[tokio::test]
async fn broadcast_reaches_every_member() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let members: Vec<_> = (0..10).map(|i| forwarder(&node, tx.clone(), i)).collect();
    for m in &members {
        node.join("room", m.pid()).unwrap();
    }
    let mut expected: Vec<_> = members.iter().map(|m| m.pid()).collect();
    expected.sort();
    assert_eq!(node.members("room"), expected);
    assert_eq!(node.broadcast("room", "hi".to_owned()).await, 10);
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(timeout(HANG, rx.recv()).await.unwrap().unwrap().0);
    }
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(node.try_broadcast("room", &"again".to_owned()), 10);
    assert_eq!(node.try_broadcast::<u32>("room", &1), 0);
}

#[tokio::test]
async fn leave_and_exit_remove_members() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let a = forwarder(&node, tx.clone(), 1);
    let b = forwarder(&node, tx, 2);
    node.join("g", a.pid()).unwrap();
    node.join("g", a.pid()).unwrap();
    node.join("g", b.pid()).unwrap();
    node.join("h", b.pid()).unwrap();
    assert!(node.leave("g", a.pid()));
    assert!(!node.leave("g", a.pid()));
    assert_eq!(node.members("g"), vec![b.pid()]);
    node.exit(b.pid(), ExitReason::error("gone"));
    timeout(HANG, b.watch()).await.unwrap();
    assert!(node.members("g").is_empty());
    assert!(node.members("h").is_empty());
    assert!(node.groups().is_empty());
}

#[tokio::test]
async fn joining_with_a_dead_process_fails() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let a = forwarder(&node, tx, 1);
    node.kill(a.pid());
    timeout(HANG, a.watch()).await.unwrap();
    assert_eq!(node.join("g", a.pid()), Err(GroupError::NoProc));
}
