//! Public handles can be shared across tasks and threads.

use supervisors::{Addr, CallError, ExitReason, ExitWatch, Node, Pid, ReplyTo, SpawnOptions};

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
    send::<ReplyTo<u32>>();
    send::<ExitWatch>();
}
