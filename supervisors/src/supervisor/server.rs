//! The supervisor process: its state and how it reacts to exits and
//! requests.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::shutdown::stop_child;
use super::spec::{
    AutoShutdown, ChildCtx, ChildKind, ChildSpec, Restart, Start, Strategy, SupervisorSpec,
};
use super::{
    BackoffState, ChildCounts, ChildInfo, ChildStatus, Description, RestartWindow, SupMsg,
    SupervisorError,
};
use crate::addr::Addr;
use crate::ctx::Ctx;
use crate::exit::{ExitReason, panic_message};
use crate::node::Node;
use crate::pid::Pid;
use crate::process::{Cell, Envelope};

/// Checks a supervisor spec the way OTP does before starting anything.
pub(crate) fn validate(spec: &SupervisorSpec) -> Result<(), SupervisorError> {
    let mut ids = HashSet::new();
    for child in &spec.children {
        validate_child(child, spec.auto_shutdown)?;
        if !ids.insert(child.id.clone()) {
            return Err(SupervisorError::InvalidSpec(format!(
                "duplicate child id {}",
                child.id
            )));
        }
    }
    Ok(())
}

/// A significant child must not be permanent, and needs auto shutdown.
pub(crate) fn validate_child(child: &ChildSpec, auto: AutoShutdown) -> Result<(), SupervisorError> {
    if child.significant && child.restart == Restart::Permanent {
        return Err(SupervisorError::InvalidSpec(format!(
            "significant child {} is permanent",
            child.id
        )));
    }
    if child.significant && auto == AutoShutdown::Never {
        return Err(SupervisorError::InvalidSpec(format!(
            "significant child {} under auto shutdown never",
            child.id
        )));
    }
    Ok(())
}

/// Runs a child's start function, turning a panic into an error.
pub(crate) async fn run_start(
    start: &super::spec::StartFn,
    node: &Node,
    me: &Arc<dyn Cell>,
) -> Result<Start, ExitReason> {
    let fut = start(ChildCtx::new(node.clone(), me.clone()));
    let result = match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(ExitReason::Panic(panic_message(&*payload))),
    };
    if let Ok(Start::Started(pid)) = result {
        // Link even if the start function forgot to; a child that already
        // died then reports `NoProc`.
        node.ensure_link_from(me, pid);
    }
    result
}

/// Whether the loop goes on.
enum Step {
    Continue,
    Stop(ExitReason),
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    restarting: bool,
    restarts: u64,
}

impl Child {
    fn info(&self) -> ChildInfo {
        ChildInfo {
            id: self.spec.id.to_string(),
            pid: self.pid,
            status: self.status(),
            kind: self.spec.kind,
            restarts: self.restarts,
        }
    }

    fn status(&self) -> ChildStatus {
        if self.pid.is_some() {
            ChildStatus::Running
        } else if self.restarting {
            ChildStatus::Restarting
        } else {
            ChildStatus::Stopped
        }
    }
}

struct Server {
    node: Node,
    me: Pid,
    cell: Arc<dyn Cell>,
    parent: Option<Pid>,
    addr: Addr<SupMsg>,
    strategy: Strategy,
    auto: AutoShutdown,
    window: RestartWindow,
    intensity: u32,
    period: Duration,
    backoff: Option<BackoffState>,
    grace: Duration,
    children: Vec<Child>,
    restarts: u64,
}

/// The supervisor process body.
pub(crate) async fn run(
    mut ctx: Ctx<SupMsg>,
    mut spec: SupervisorSpec,
    started: oneshot::Sender<Result<(), SupervisorError>>,
) -> ExitReason {
    let specs = std::mem::take(&mut spec.children);
    let mut server = Server {
        node: ctx.node().clone(),
        me: ctx.pid(),
        cell: ctx.cell(),
        parent: ctx.parent(),
        addr: ctx.addr(),
        strategy: spec.strategy,
        auto: spec.auto_shutdown,
        window: RestartWindow::new(spec.intensity, spec.period),
        intensity: spec.intensity,
        period: spec.period,
        backoff: spec
            .backoff
            .map(|b| BackoffState::new(b, ctx.pid().serial())),
        grace: spec.kill_grace,
        children: Vec::with_capacity(specs.len()),
        restarts: 0,
    };
    if let Err((id, reason)) = server.start_initial(specs).await {
        server.terminate_all().await;
        let why = format!("failed to start child {id}: {reason}");
        let _ = started.send(Err(SupervisorError::StartFailed {
            id: id.to_string(),
            reason,
        }));
        return ExitReason::ShutdownWith(why);
    }
    let _ = started.send(Ok(()));
    tracing::debug!(
        supervisor = %server.me,
        strategy = server.strategy.label(),
        children = server.children.len(),
        "supervisor started"
    );
    loop {
        let step = match ctx.recv().await {
            Envelope::Exit { from, reason } if server.is_parent(from) => Step::Stop(reason),
            Envelope::Exit { from, reason } => server.child_exited(from, reason).await,
            Envelope::Message(msg) => server.handle(msg).await,
            Envelope::Down { .. } => Step::Continue,
        };
        if let Step::Stop(reason) = step {
            server.terminate_all().await;
            tracing::debug!(supervisor = %server.me, reason = %reason, "supervisor stopped");
            return reason;
        }
    }
}

impl Server {
    fn is_parent(&self, from: Pid) -> bool {
        Some(from) == self.parent || (from.is_external() && from.node() == self.me.node())
    }

    fn index_of_pid(&self, pid: Pid) -> Option<usize> {
        self.children.iter().position(|c| c.pid == Some(pid))
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| &*c.spec.id == id)
    }

    async fn start_initial(&mut self, specs: Vec<ChildSpec>) -> Result<(), (Arc<str>, ExitReason)> {
        for spec in specs {
            match run_start(&spec.start, &self.node, &self.cell).await {
                Ok(Start::Started(pid)) => {
                    tracing::debug!(supervisor = %self.me, child = %spec.id, pid = %pid, "child started");
                    self.children.push(Child {
                        spec,
                        pid: Some(pid),
                        restarting: false,
                        restarts: 0,
                    });
                }
                Ok(Start::Ignore) => {
                    if spec.restart != Restart::Temporary {
                        self.children.push(Child {
                            spec,
                            pid: None,
                            restarting: false,
                            restarts: 0,
                        });
                    }
                }
                Err(reason) => return Err((spec.id.clone(), reason)),
            }
        }
        Ok(())
    }

    /// Reacts to the exit of a child, as OTP's `restart_child/3`.
    async fn child_exited(&mut self, pid: Pid, reason: ExitReason) -> Step {
        let Some(idx) = self.index_of_pid(pid) else {
            tracing::debug!(supervisor = %self.me, from = %pid, "exit signal from unknown process ignored");
            return Step::Continue;
        };
        let child = &mut self.children[idx];
        child.pid = None;
        let (restart, significant) = (child.spec.restart, child.spec.significant);
        if reason.is_clean() {
            tracing::debug!(supervisor = %self.me, child = %child.spec.id, pid = %pid, reason = %reason, "child exited");
        } else {
            tracing::warn!(supervisor = %self.me, child = %child.spec.id, pid = %pid, reason = %reason, "child terminated");
        }
        match restart {
            Restart::Permanent => self.restart(idx).await,
            Restart::Transient if !reason.is_clean() => self.restart(idx).await,
            Restart::Transient | Restart::Temporary => {
                if restart == Restart::Temporary {
                    self.children.remove(idx);
                }
                self.after_significant_exit(significant)
            }
        }
    }

    /// Auto shutdown after a significant child ended by itself.
    fn after_significant_exit(&self, significant: bool) -> Step {
        if !significant {
            return Step::Continue;
        }
        let stop = match self.auto {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .children
                .iter()
                .any(|c| c.spec.significant && (c.pid.is_some() || c.restarting)),
        };
        if stop {
            tracing::info!(supervisor = %self.me, "significant child ended, auto shutdown");
            Step::Stop(ExitReason::Shutdown)
        } else {
            Step::Continue
        }
    }

    /// Counts a restart against the intensity and restarts by strategy,
    /// now or after the backoff delay.
    async fn restart(&mut self, idx: usize) -> Step {
        let now = Instant::now();
        let id = self.children[idx].spec.id.clone();
        if !self.window.add(now) {
            tracing::error!(
                supervisor = %self.me,
                child = %id,
                intensity = self.intensity,
                period_ms = self.period.as_millis() as u64,
                "restart intensity exceeded"
            );
            if let Some(parent) = self.parent {
                tracing::error!(supervisor = %self.me, parent = %parent, "supervisor shutting down, escalating to its parent");
            }
            return Step::Stop(ExitReason::Shutdown);
        }
        self.restarts += 1;
        if let Some(backoff) = &mut self.backoff {
            let delay = backoff.next_delay(now);
            if !delay.is_zero() {
                self.children[idx].restarting = true;
                tracing::debug!(supervisor = %self.me, child = %id, delay_ms = delay.as_millis() as u64, "restart delayed");
                let addr = self.addr.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = addr.send(SupMsg::RestartDue(id)).await;
                });
                return Step::Continue;
            }
        }
        self.restart_now(idx).await;
        Step::Continue
    }

    /// Stops the children the strategy names (in reverse order) and starts
    /// them again in order. A failed start is retried through the mailbox.
    async fn restart_now(&mut self, idx: usize) {
        if self.strategy == Strategy::OneForOne {
            self.start_again(idx).await;
            return;
        }
        let last = self.children.len() - 1;
        let range = match self.strategy {
            Strategy::OneForOne => idx..=idx,
            Strategy::OneForAll => 0..=last,
            Strategy::RestForOne => idx..=last,
        };
        let in_range: Vec<Arc<str>> = self.children[range.clone()]
            .iter()
            .map(|c| c.spec.id.clone())
            .collect();
        for j in range.rev() {
            let child = &mut self.children[j];
            if let Some(pid) = child.pid.take() {
                stop_child(&self.node, self.me, pid, child.spec.shutdown, self.grace).await;
            }
        }
        // Temporary children stopped by the strategy are not restarted.
        self.children
            .retain(|c| c.spec.restart != Restart::Temporary || !in_range.contains(&c.spec.id));
        for id in in_range {
            let Some(j) = self.index_of_id(&id) else {
                continue;
            };
            if !self.start_again(j).await {
                return;
            }
        }
    }

    /// Starts child `j` again as part of a restart; false (and a retry
    /// queued) when its start fails.
    async fn start_again(&mut self, j: usize) -> bool {
        let id = self.children[j].spec.id.clone();
        let start = self.children[j].spec.start.clone();
        match run_start(&start, &self.node, &self.cell).await {
            Ok(outcome) => {
                let child = &mut self.children[j];
                child.restarting = false;
                child.restarts += 1;
                child.pid = match outcome {
                    Start::Started(pid) => Some(pid),
                    Start::Ignore => None,
                };
                tracing::info!(supervisor = %self.me, child = %id, pid = ?child.pid, "child restarted");
                true
            }
            Err(reason) => {
                tracing::warn!(supervisor = %self.me, child = %id, reason = %reason, "child failed to restart, retrying");
                self.children[j].restarting = true;
                self.post(SupMsg::TryAgain(id));
                false
            }
        }
    }

    /// Queues a message to this supervisor itself.
    fn post(&self, msg: SupMsg) {
        if let Err(e) = self.addr.try_send(msg) {
            let addr = self.addr.clone();
            let msg = e.into_inner();
            tokio::spawn(async move {
                let _ = addr.send(msg).await;
            });
        }
    }

    /// Stops all children in reverse start order.
    async fn terminate_all(&mut self) {
        for child in self.children.iter_mut().rev() {
            child.restarting = false;
            if let Some(pid) = child.pid.take() {
                let reason =
                    stop_child(&self.node, self.me, pid, child.spec.shutdown, self.grace).await;
                // `NoProc`: the child had already stopped by itself (its
                // exit signal is still queued); there was nothing to stop.
                if !matches!(
                    reason,
                    ExitReason::Shutdown | ExitReason::Killed | ExitReason::NoProc
                ) && !reason.is_clean()
                {
                    tracing::warn!(supervisor = %self.me, child = %child.spec.id, reason = %reason, "child shutdown error");
                }
            }
        }
    }

    async fn handle(&mut self, msg: SupMsg) -> Step {
        match msg {
            SupMsg::WhichChildren(reply) => {
                let _ = reply.send(self.children.iter().map(Child::info).collect());
            }
            SupMsg::CountChildren(reply) => {
                let _ = reply.send(self.counts());
            }
            SupMsg::TerminateChild(id, reply) => {
                let _ = reply.send(self.terminate_child(&id).await);
            }
            SupMsg::RestartChild(id, reply) => {
                let _ = reply.send(self.restart_child(&id).await);
            }
            SupMsg::DeleteChild(id, reply) => {
                let _ = reply.send(self.delete_child(&id));
            }
            SupMsg::StartChild(spec, reply) => {
                let _ = reply.send(self.start_child(spec).await);
            }
            SupMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    strategy: self.strategy.label().to_owned(),
                    restarts: self.restarts,
                    children: self.children.iter().map(Child::info).collect(),
                });
            }
            SupMsg::TryAgain(id) => {
                if let Some(idx) = self.index_of_id(&id)
                    && self.children[idx].pid.is_none()
                    && self.children[idx].restarting
                {
                    return self.restart(idx).await;
                }
            }
            SupMsg::RestartDue(id) => {
                if let Some(idx) = self.index_of_id(&id)
                    && self.children[idx].pid.is_none()
                    && self.children[idx].restarting
                {
                    self.restart_now(idx).await;
                }
            }
            SupMsg::ChildExited(..) | SupMsg::RetryDynamic(_) => {}
        }
        Step::Continue
    }

    fn counts(&self) -> ChildCounts {
        let mut counts = ChildCounts {
            specs: self.children.len(),
            ..ChildCounts::default()
        };
        for c in &self.children {
            counts.active += usize::from(c.pid.is_some());
            match c.spec.kind {
                ChildKind::Supervisor => counts.supervisors += 1,
                ChildKind::Worker => counts.workers += 1,
            }
        }
        counts
    }

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self.index_of_id(id).ok_or(SupervisorError::NotFound)?;
        let child = &mut self.children[idx];
        child.restarting = false;
        if let Some(pid) = child.pid.take() {
            stop_child(&self.node, self.me, pid, child.spec.shutdown, self.grace).await;
        }
        if child.spec.restart == Restart::Temporary {
            self.children.remove(idx);
        }
        Ok(())
    }

    async fn restart_child(&mut self, id: &str) -> Result<Option<Pid>, SupervisorError> {
        let idx = self.index_of_id(id).ok_or(SupervisorError::NotFound)?;
        if self.children[idx].pid.is_some() || self.children[idx].restarting {
            return Err(SupervisorError::Running);
        }
        let start = self.children[idx].spec.start.clone();
        match run_start(&start, &self.node, &self.cell).await {
            Ok(Start::Started(pid)) => {
                self.children[idx].pid = Some(pid);
                Ok(Some(pid))
            }
            Ok(Start::Ignore) => Ok(None),
            Err(reason) => Err(SupervisorError::StartFailed {
                id: id.to_owned(),
                reason,
            }),
        }
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self.index_of_id(id).ok_or(SupervisorError::NotFound)?;
        if self.children[idx].pid.is_some() || self.children[idx].restarting {
            return Err(SupervisorError::Running);
        }
        self.children.remove(idx);
        Ok(())
    }

    async fn start_child(&mut self, spec: ChildSpec) -> Result<Option<Pid>, SupervisorError> {
        validate_child(&spec, self.auto)?;
        if let Some(idx) = self.index_of_id(&spec.id) {
            return Err(match self.children[idx].pid {
                Some(pid) => SupervisorError::AlreadyStarted(pid),
                None => SupervisorError::AlreadyPresent,
            });
        }
        match run_start(&spec.start, &self.node, &self.cell).await {
            Ok(Start::Started(pid)) => {
                tracing::debug!(supervisor = %self.me, child = %spec.id, pid = %pid, "child started");
                self.children.push(Child {
                    spec,
                    pid: Some(pid),
                    restarting: false,
                    restarts: 0,
                });
                Ok(Some(pid))
            }
            Ok(Start::Ignore) => {
                if spec.restart != Restart::Temporary {
                    self.children.push(Child {
                        spec,
                        pid: None,
                        restarting: false,
                        restarts: 0,
                    });
                }
                Ok(None)
            }
            Err(reason) => Err(SupervisorError::StartFailed {
                id: spec.id.to_string(),
                reason,
            }),
        }
    }
}
