//! Public handles can be shared across tasks and threads.

use supervisors::fault::ChaosMonkey;
use supervisors::{
    Addr, CallError, ChildCtx, ChildSpec, DynamicSpec, DynamicSupervisorRef, ExitReason, ExitWatch,
    Node, Pid, ReplyTo, SpawnOptions, SupervisorError, SupervisorRef, SupervisorSpec, TreeSnapshot,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn public_handles_are_send_and_sync() {
    send_sync::<Node>();
    send_sync::<Addr<String>>();
    send_sync::<Pid>();
    send_sync::<ExitReason>();
    send_sync::<CallError>();
    send_sync::<SpawnOptions>();
    send_sync::<SupervisorRef>();
    send_sync::<DynamicSupervisorRef<String>>();
    send_sync::<SupervisorError>();
    send_sync::<ChildSpec>();
    send_sync::<SupervisorSpec>();
    send_sync::<DynamicSpec<u64>>();
    send_sync::<ChildCtx>();
    send_sync::<TreeSnapshot>();
    send_sync::<ChaosMonkey>();
    send::<ReplyTo<u32>>();
    send::<ExitWatch>();
}
