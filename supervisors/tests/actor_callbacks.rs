//! The gen_server-style actor trait.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use supervisors::{
    Actor, CallError, Ctx, ExitReason, Node, Pid, ReplyTo, SpawnError, SpawnOptions,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const HANG: Duration = Duration::from_secs(10);

struct Account {
    balance: i64,
    log: mpsc::UnboundedSender<String>,
}

enum Op {
    Deposit(i64),
    Balance(ReplyTo<i64>),
    Crash,
    Stop,
}

impl Actor for Account {
    type Msg = Op;
    type Args = (i64, mpsc::UnboundedSender<String>);

    async fn init((balance, log): Self::Args, _ctx: &mut Ctx<Op>) -> Result<Self, ExitReason> {
        if balance < 0 {
            return Err(ExitReason::error("negative opening balance"));
        }
        Ok(Self { balance, log })
    }

    async fn handle(&mut self, msg: Op, ctx: &mut Ctx<Op>) -> Result<(), ExitReason> {
        match msg {
            Op::Deposit(n) => self.balance += n,
            Op::Balance(reply) => {
                let _ = reply.send(self.balance);
            }
            Op::Crash => panic!("crash requested"),
            Op::Stop => ctx.stop(ExitReason::Normal),
        }
        Ok(())
    }

    async fn handle_exit(
        &mut self,
        from: Pid,
        reason: ExitReason,
        _ctx: &mut Ctx<Op>,
    ) -> Result<(), ExitReason> {
        let _ = self.log.send(format!("exit {from} {reason}"));
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Ctx<Op>) {
        let _ = self.log.send(format!("terminate {reason}"));
    }
}

#[tokio::test]
async fn actor_handles_messages_and_calls() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let acc = node
        .spawn_actor::<Account>(SpawnOptions::new(), (10, tx))
        .await
        .unwrap();
    acc.send(Op::Deposit(5)).await.unwrap();
    assert_eq!(acc.call(Op::Balance, HANG).await, Ok(15));
}

#[tokio::test]
async fn failed_init_fails_the_spawn() {
    let node = Node::new();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = node
        .spawn_actor::<Account>(SpawnOptions::new(), (-1, tx))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SpawnError::Init(ExitReason::error("negative opening balance"))
    );
}

#[tokio::test]
async fn stop_runs_terminate_and_exits_normally() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let acc = node
        .spawn_actor::<Account>(SpawnOptions::new(), (0, tx))
        .await
        .unwrap();
    acc.send(Op::Stop).await.unwrap();
    assert_eq!(
        timeout(HANG, acc.watch()).await.unwrap(),
        ExitReason::Normal
    );
    assert_eq!(rx.recv().await.unwrap(), "terminate normal");
}

#[tokio::test]
async fn panic_in_handle_runs_terminate_with_the_panic() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let acc = node
        .spawn_actor::<Account>(SpawnOptions::new(), (0, tx))
        .await
        .unwrap();
    acc.send(Op::Crash).await.unwrap();
    let reason = ExitReason::Panic("crash requested".to_owned());
    assert_eq!(timeout(HANG, acc.watch()).await.unwrap(), reason);
    assert_eq!(rx.recv().await.unwrap(), "terminate panic: crash requested");
    let got = acc.call(Op::Balance, HANG).await;
    assert_eq!(got, Err(CallError::Exited(reason)));
}

#[tokio::test]
async fn trapping_actor_terminates_on_its_parents_exit_signal() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let parent = node.spawn(|mut ctx: Ctx<()>| async move {
        ctx.trap_exits(true);
        loop {
            ctx.recv().await;
        }
    });
    let opts = SpawnOptions::new().link(parent.pid()).trap_exits(true);
    let acc = node.spawn_actor::<Account>(opts, (0, tx)).await.unwrap();
    let other = node.spawn(|mut ctx: Ctx<()>| async move {
        ctx.recv().await;
        ExitReason::error("other")
    });
    node.link(other.pid(), acc.pid());
    other.send(()).await.unwrap();
    assert_eq!(
        rx.recv().await.unwrap(),
        format!("exit {} error: other", other.pid())
    );
    node.exit_as(parent.pid(), acc.pid(), ExitReason::Shutdown);
    assert_eq!(
        timeout(HANG, acc.watch()).await.unwrap(),
        ExitReason::Shutdown
    );
    assert_eq!(rx.recv().await.unwrap(), "terminate shutdown");
}

#[tokio::test]
async fn killed_actor_does_not_run_terminate() {
    let node = Node::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let acc = node
        .spawn_actor::<Account>(SpawnOptions::new().trap_exits(true), (0, tx))
        .await
        .unwrap();
    node.kill(acc.pid());
    assert_eq!(
        timeout(HANG, acc.watch()).await.unwrap(),
        ExitReason::Killed
    );
    assert!(rx.recv().await.is_none());
}
