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
//!
//! # Supervision
//!
//! ```
//! use std::time::Duration;
//! use supervisors::{
//!     ChildCtx, ChildSpec, Ctx, DynamicSpec, DynamicSupervisorRef, ExitReason, Node,
//!     SpawnOptions, Start, Strategy, Supervisor, SupervisorSpec,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let node = Node::new();
//!
//! // A worker registered by name, so that its restarted incarnation is
//! // found again; and a dynamic supervisor for one process per client.
//! let store = ChildSpec::new("store", |ctx: ChildCtx| async move {
//!     let addr = ctx
//!         .spawn_with(SpawnOptions::new().name("store"), |mut c: Ctx<String>| async move {
//!             loop {
//!                 let _line = c.recv_msg().await;
//!             }
//!         })
//!         .map_err(ExitReason::error)?;
//!     Ok(Start::from(addr))
//! });
//! let sessions = ChildSpec::dynamic("sessions", || {
//!     DynamicSpec::new(|client: u64, ctx: ChildCtx| async move {
//!         let addr = ctx.spawn(move |mut c: Ctx<String>| async move {
//!             let _ = client;
//!             loop {
//!                 c.recv_msg().await;
//!             }
//!         });
//!         Ok(Start::from(addr))
//!     })
//!     .name("sessions")
//!     .max_children(100_000)
//! });
//! let spec = SupervisorSpec::new(Strategy::RestForOne)
//!     .intensity(3, Duration::from_secs(5))
//!     .child(store)
//!     .child(sessions);
//! let root = Supervisor::start(&node, spec).await.unwrap();
//!
//! let sessions = DynamicSupervisorRef::<u64>::whereis(&node, "sessions").unwrap();
//! let session = sessions.start_child(42).await.unwrap();
//!
//! // The store crashes: rest_for_one restarts it and every session.
//! let old_store = node.whereis_pid("store").unwrap();
//! node.exit(old_store, ExitReason::error("disk full"));
//! assert_eq!(node.watch(session).await, ExitReason::Shutdown);
//! let tree = root.snapshot().await.unwrap();
//! assert_eq!(tree.restarts, 1);
//! assert_ne!(node.whereis_pid("store"), Some(old_store));
//!
//! assert_eq!(root.shutdown().await, ExitReason::Shutdown);
//! # }
//! ```

mod actor;
mod addr;
mod ctx;
mod deadline;
mod dynamic;
mod exit;
pub mod fault;
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
