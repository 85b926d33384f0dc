//! Erlang/OTP-style processes, links, monitors and supervisors on tokio.
//!
//! A [`Node`] owns a table of processes, a name registry and process
//! groups. Processes are tokio tasks with a bounded, typed mailbox reached
//! through an [`Addr`]; they link, monitor, trap exits and are restarted by
//! supervisors with OTP's strategies and restart intensity. The guarantees
//! are written down in `SEMANTICS.md` next to this crate's manifest.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use supervisors::{Envelope, ExitReason, Node, ReplyTo};
//!
//! enum Counter {
//!     Add(u64),
//!     Get(ReplyTo<u64>),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let node = Node::new();
//! let counter = node.spawn(|mut ctx| async move {
//!     let mut total = 0;
//!     loop {
//!         match ctx.recv().await {
//!             Envelope::Message(Counter::Add(n)) => total += n,
//!             Envelope::Message(Counter::Get(reply)) => {
//!                 let _ = reply.send(total);
//!             }
//!             _ => {}
//!         }
//!     }
//! });
//!
//! counter.send(Counter::Add(2)).await.unwrap();
//! counter.send(Counter::Add(40)).await.unwrap();
//! let total = counter.call(Counter::Get, Duration::from_secs(1)).await;
//! assert_eq!(total, Ok(42));
//!
//! node.exit(counter.pid(), ExitReason::Shutdown);
//! assert_eq!(counter.watch().await, ExitReason::Shutdown);
//! # }
//! ```

mod actor;
mod addr;
mod ctx;
mod dynamic;
mod exit;
mod group;
mod node;
mod pid;
mod process;
mod registry;
mod rng;
mod snapshot;
mod spawn;
mod supervisor;

pub use actor::Actor;
pub use addr::{Addr, CallError, ExitWatch, ReplyTo, SendError, TrySendError};
pub use ctx::Ctx;
pub use dynamic::{DynamicSpec, DynamicSupervisor, DynamicSupervisorRef, StartChildError};
pub use exit::ExitReason;
pub use group::GroupError;
pub use node::Node;
pub use pid::{MonitorRef, Pid};
pub use process::Envelope;
pub use registry::RegistryError;
pub use snapshot::{ChildSnapshot, TreeSnapshot};
pub use spawn::{DEFAULT_CAPACITY, SpawnError, SpawnOptions};
pub use supervisor::spec::{
    AutoShutdown, Backoff, ChildCtx, ChildKind, ChildSpec, DEFAULT_SHUTDOWN, Restart, Shutdown,
    Start, StartFuture, Strategy, SupervisorSpec,
};
pub use supervisor::{
    ChildCounts, ChildInfo, ChildStatus, Supervisor, SupervisorError, SupervisorRef,
};
