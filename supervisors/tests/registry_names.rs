//! The registry: names, whereis, clean-up on exit.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{Ctx, ExitReason, Node, RegistryError, SpawnError, SpawnOptions};
use tokio::time::timeout;

const HANG: Duration = Duration::from_secs(10);

fn idle(node: &Node, opts: SpawnOptions) -> Result<supervisors::Addr<u32>, SpawnError> {
    node.spawn_with(opts, |mut ctx: Ctx<u32>| async move {
        loop {
            ctx.recv().await;
        }
    })
}

#[tokio::test]
async fn whereis_finds_a_registered_process() {
    let node = Node::new();
    let a = idle(&node, SpawnOptions::new()).unwrap();
    node.register("store", a.pid()).unwrap();
    assert_eq!(node.whereis_pid("store"), Some(a.pid()));
    assert_eq!(node.whereis::<u32>("store"), Some(a.clone()));
    assert!(node.whereis::<String>("store").is_none());
    assert_eq!(node.registered(), vec!["store".to_owned()]);
}

#[tokio::test]
async fn a_name_is_taken_once() {
    let node = Node::new();
    let a = idle(&node, SpawnOptions::new().name("x")).unwrap();
    let b = idle(&node, SpawnOptions::new()).unwrap();
    assert_eq!(
        node.register("x", b.pid()),
        Err(RegistryError::NameTaken("x".to_owned()))
    );
    let err = idle(&node, SpawnOptions::new().name("x")).unwrap_err();
    assert_eq!(err, SpawnError::NameTaken("x".to_owned()));
    assert_eq!(node.whereis_pid("x"), Some(a.pid()));
}

#[tokio::test]
async fn a_name_is_removed_when_its_process_exits() {
    let node = Node::new();
    let a = idle(&node, SpawnOptions::new().name("x")).unwrap();
    node.exit(a.pid(), ExitReason::Shutdown);
    timeout(HANG, a.watch()).await.unwrap();
    assert_eq!(node.whereis_pid("x"), None);
    let b = idle(&node, SpawnOptions::new().name("x")).unwrap();
    assert_eq!(node.whereis_pid("x"), Some(b.pid()));
}

#[tokio::test]
async fn unregister_frees_the_name() {
    let node = Node::new();
    let a = idle(&node, SpawnOptions::new().name("x")).unwrap();
    assert_eq!(node.unregister("x"), Some(a.pid()));
    assert_eq!(node.whereis_pid("x"), None);
    assert_eq!(node.unregister("x"), None);
}

#[tokio::test]
async fn registering_a_dead_process_fails() {
    let node = Node::new();
    let a = idle(&node, SpawnOptions::new()).unwrap();
    node.kill(a.pid());
    timeout(HANG, a.watch()).await.unwrap();
    assert_eq!(node.register("x", a.pid()), Err(RegistryError::NoProc));
}
