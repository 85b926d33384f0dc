//! Child specifications and supervisor configuration.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::addr::Addr;
use crate::ctx::Ctx;
use crate::exit::ExitReason;
use crate::node::Node;
use crate::pid::Pid;
use crate::process::Cell;
use crate::spawn::{SpawnError, SpawnOptions};

/// What a start function produced.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The child runs as this process, linked to the supervisor.
    Started(Pid),
    /// Nothing was started; the supervisor keeps the spec (OTP's `ignore`).
    Ignore,
}

impl<M: Send + 'static> From<Addr<M>> for Start {
    fn from(addr: Addr<M>) -> Self {
        Self::Started(addr.pid())
    }
}

/// The boxed future a start function returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<Start, ExitReason>> + Send>>;

pub(crate) type StartFn = Arc<dyn Fn(ChildCtx) -> StartFuture + Send + Sync>;

/// When a terminated child is restarted.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `Normal`, `Shutdown`, `ShutdownWith`).
    Transient,
    /// Never; the spec is forgotten when the child exits.
    Temporary,
}

/// How a supervisor stops a child.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shutdown {
    /// Kill at once with the untrappable kill.
    BrutalKill,
    /// Send `Shutdown`, wait this long for the exit, then kill.
    Timeout(Duration),
    /// Send `Shutdown` and wait as long as it takes (for supervisors).
    Infinity,
}

/// Whether a child is a worker or a supervisor.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildKind {
    /// An ordinary process.
    Worker,
    /// A supervisor (its tree appears in snapshots).
    Supervisor,
}

/// Which children restart when one terminates and must be restarted.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the terminated child.
    OneForOne,
    /// All children: the others are stopped (reverse start order) and all
    /// are started again in order.
    OneForAll,
    /// The terminated child and the children started after it.
    RestForOne,
}

/// When the supervisor stops itself because significant children ended.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoShutdown {
    /// Never.
    Never,
    /// When any significant child terminates by itself.
    AnySignificant,
    /// When all significant children have terminated by themselves.
    AllSignificant,
}

/// Exponential restart delay with jitter, beyond OTP.
///
/// The n-th consecutive restart of a supervisor waits
/// `min(initial * 2^(n-1), max)`, scaled by a random factor in
/// `[1 - jitter, 1]`. After `reset_after` without restarts the delay falls
/// back to `initial`. Delayed restarts still count toward the intensity.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: f64,
    pub(crate) reset_after: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`, with 20% jitter
    /// and a reset after ten times `max` without restarts.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            jitter: 0.2,
            reset_after: max.saturating_mul(10),
        }
    }

    /// Sets the jitter fraction (clamped to `0.0..=1.0`).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Sets the quiet period after which the delay resets.
    pub fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }
}

/// What a start function gets: the node and the supervisor's pid.
#[derive(Clone)]
pub struct ChildCtx {
    node: Node,
    parent: Pid,
    parent_cell: Arc<dyn Cell>,
}

impl fmt::Debug for ChildCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildCtx")
            .field("parent", &self.parent)
            .finish()
    }
}

impl ChildCtx {
    pub(crate) fn new(node: Node, parent_cell: Arc<dyn Cell>) -> Self {
        Self {
            node,
            parent: parent_cell.pid(),
            parent_cell,
        }
    }

    /// The node to spawn on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The supervisor's pid.
    pub fn parent(&self) -> Pid {
        self.parent
    }

    /// Spawn options linking the new process to the supervisor.
    pub fn options(&self) -> SpawnOptions {
        SpawnOptions::new().link(self.parent)
    }

    /// Spawns a process linked to the supervisor.
    pub fn spawn<M, F, Fut>(&self, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.node.spawn_under_plain(&self.parent_cell, body)
    }

    /// Spawns a process linked to the supervisor, with more options (the
    /// link in `opts` is replaced by the supervisor).
    ///
    /// # Errors
    ///
    /// As [`Node::spawn_with`].
    pub fn spawn_with<M, F, Fut>(&self, opts: SpawnOptions, body: F) -> Result<Addr<M>, SpawnError>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) -> Fut,
        Fut: Future<Output = ExitReason> + Send + 'static,
    {
        self.node.spawn_under(&self.parent_cell, opts, body)
    }

    /// Spawns an actor linked to the supervisor and waits for its `init`.
    ///
    /// # Errors
    ///
    /// As [`Node::spawn_actor`].
    ///
    /// # Cancel safety
    ///
    /// As [`Node::spawn_actor`].
    pub async fn spawn_actor<A: Actor>(
        &self,
        opts: SpawnOptions,
        args: A::Args,
    ) -> Result<Addr<A::Msg>, SpawnError> {
        self.node
            .spawn_actor::<A>(opts.link(self.parent), args)
            .await
    }
}

/// How to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: Arc<str>,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .finish()
    }
}

/// Default time a worker gets to stop after `Shutdown`, as in OTP.
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

impl ChildSpec {
    /// A permanent worker started by `start`, which must spawn the child
    /// linked to the supervisor (see [`ChildCtx::spawn`]) and return its
    /// pid, or `Start::Ignore`, or an error.
    pub fn new<F, Fut>(id: impl Into<Arc<str>>, start: F) -> Self
    where
        F: Fn(ChildCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Start, ExitReason>> + Send + 'static,
    {
        Self {
            id: id.into(),
            start: Arc::new(move |ctx| Box::pin(start(ctx))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_SHUTDOWN),
            kind: ChildKind::Worker,
            significant: false,
        }
    }

    /// A permanent worker running actor `A`, started with `args()` each
    /// time. A failed `init` is a failed start.
    pub fn actor<A, F>(id: impl Into<Arc<str>>, args: F) -> Self
    where
        A: Actor,
        F: Fn() -> A::Args + Send + Sync + 'static,
    {
        let args = Arc::new(args);
        Self::new(id, move |ctx: ChildCtx| {
            let args = args.clone();
            async move {
                match ctx.spawn_actor::<A>(SpawnOptions::new(), args()).await {
                    Ok(addr) => Ok(Start::from(addr)),
                    Err(SpawnError::Init(reason)) => Err(reason),
                    Err(other) => Err(ExitReason::error(other)),
                }
            }
        })
    }

    /// A permanent supervisor child running `spec()` each time it starts.
    pub fn supervisor<F>(id: impl Into<Arc<str>>, spec: F) -> Self
    where
        F: Fn() -> SupervisorSpec + Send + Sync + 'static,
    {
        let spec = Arc::new(spec);
        Self::new(id, move |ctx: ChildCtx| {
            let spec = spec();
            async move {
                match crate::supervisor::Supervisor::start_linked(ctx.node(), ctx.parent(), spec)
                    .await
                {
                    Ok(sup) => Ok(Start::Started(sup.pid())),
                    Err(e) => Err(ExitReason::error(e)),
                }
            }
        })
        .kind(ChildKind::Supervisor)
    }

    /// A permanent supervisor child running a dynamic supervisor built
    /// from `spec()` each time it starts; find it with
    /// [`DynamicSupervisorRef::whereis`](crate::DynamicSupervisorRef::whereis)
    /// by giving the spec a name.
    pub fn dynamic<A, F>(id: impl Into<Arc<str>>, spec: F) -> Self
    where
        A: Clone + Send + 'static,
        F: Fn() -> crate::dynamic::DynamicSpec<A> + Send + Sync + 'static,
    {
        let spec = Arc::new(spec);
        Self::new(id, move |ctx: ChildCtx| {
            let spec = spec();
            async move {
                match crate::dynamic::DynamicSupervisor::start_linked(
                    ctx.node(),
                    ctx.parent(),
                    spec,
                ) {
                    Ok(sup) => Ok(Start::Started(sup.pid())),
                    Err(e) => Err(ExitReason::error(e)),
                }
            }
        })
        .kind(ChildKind::Supervisor)
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind; a supervisor kind also defaults shutdown to infinity.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        if kind == ChildKind::Supervisor {
            self.shutdown = Shutdown::Infinity;
        }
        self
    }

    /// Marks the child significant for auto shutdown.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A supervisor's strategy, restart intensity, children and options.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) kill_grace: Duration,
}

impl SupervisorSpec {
    /// A spec with OTP's defaults: intensity 1 in 5 seconds, no auto
    /// shutdown, no backoff, no children.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            intensity: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
            backoff: None,
            children: Vec::new(),
            name: None,
            kill_grace: Duration::from_secs(1),
        }
    }

    /// At most `intensity` restarts within any `period`; one more and the
    /// supervisor stops its children and exits with `Shutdown`.
    pub fn intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Sets auto shutdown.
    pub fn auto_shutdown(mut self, auto: AutoShutdown) -> Self {
        self.auto_shutdown = auto;
        self
    }

    /// Delays restarts with an exponential backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Appends a child (children start in the order they are added).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Registers the supervisor under `name`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long to wait for a killed child's task to end before declaring
    /// it dead anyway (a task that never reaches an `.await` cannot be
    /// stopped); default one second.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }
}
