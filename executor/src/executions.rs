//! The registry of executions this executor owns, and the task that carries each
//! one from assignment to report.
//!
//! # Admission
//!
//! An assignment is accepted only if
//! - its term is not older than the highest term seen (from `Welcome`s and
//!   assignments): a deposed leader that has not noticed yet cannot start anything
//!   (refused with a warning and no report; the new leader owns that execution);
//! - its execution id is neither running (or waiting for its `start_at`) nor
//!   finished with a report still in the outbox: the leader re-sends assignments
//!   after a reconnect or a leader change, and each must run once;
//! - the executor is not stopping for good (then nothing is reported either; when
//!   the stream closes the leader's lease treats the run as lost and retries it).
//!   While it only *drains* (SIGTERM, within its shutdown grace) it still takes what
//!   the leader sends: an assignment committed to it before the leader heard of the
//!   drain belongs to it, and refusing it would cost a lease (10 s) and a retry.
//!
//! # Life of a run
//!
//! Each accepted assignment gets one task, tracked for shutdown, inside one
//! `execution` span. It validates the action (shell or HTTP), waits for `start_at`
//! on the precise [`crate::timer`], starts it (spawns the process, or builds the
//! HTTP client and request), reports `started`, waits for the end, and files the
//! outcome in the [`Outbox`] before it leaves the registry, so at every moment the
//! id is in one of the two and a duplicate assignment cannot slip between them. A
//! run that cannot start (missing cwd, unreadable CA file) is `failed` without a
//! `started` report. Runs do not depend on the stream: the session may come and go
//! underneath them.
//!
//! # Cancellation
//!
//! Every run's token is a child of the executor's stop token. A
//! `CancelAssignment` cancels one run (its reason goes into the error) and it
//! finishes `cancelled`. The stop token fires when a shutdown's grace runs out: the
//! runs still going are killed and finish `failed` ("the executor shut down"), not
//! `cancelled` — nobody asked for them to stop, and the job's retry policy should
//! have its say. Either way the process group is killed as for a timeout (an HTTP
//! request is dropped, closing its connection). A run cancelled while waiting for
//! `start_at` never starts a process or sends a request.
//!
//! # Draining
//!
//! A shutdown first *drains* ([`Executions::begin_drain`]): the session tells the
//! leader (and says so in every later `Hello`), so it chooses other executors; runs
//! held here go on to their end; only when the grace is over are the rest stopped.
//!
//! A cancel with `if_not_started_status` (a pause reaching runs committed ahead)
//! holds only before the start: the run then ends with that status and never
//! starts; a run already started goes on. Whether it started is decided under the
//! registry lock (the run marks itself started there just before spawning or
//! sending), so the executor — the only one who knows — settles the race between a
//! pause and `start_at`, and what is recorded is what happened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::outbox::Outbox;
use crate::runner::http::{self, HttpSpec};
use crate::runner::shell::{self, OUTPUT_DRAIN, ShellSpec};
use crate::runner::{DEFAULT_MAX_OUTPUT_BYTES, Identity, Outcome, format_duration};
use crate::timer;

/// Room for progress reports (started, live output) on their way to the session.
/// When it is full (the session is reconnecting, or output comes faster than the
/// stream takes it), a report is dropped: the running list of the next `Hello` and
/// heartbeats, and the finished report (with `started_at` and the output tail), carry
/// the same facts. Live output is best effort by design.
pub(crate) const STARTED_CAPACITY: usize = 1024;

/// Extra time shutdown allows runs beyond kill grace and output drain.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(3);

/// The channel that carries progress reports (started, output) from runs to the
/// session.
pub(crate) fn started_channel() -> (
    mpsc::Sender<pb::executor_message::Kind>,
    mpsc::Receiver<pb::executor_message::Kind>,
) {
    mpsc::channel(STARTED_CAPACITY)
}

/// What became of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It will run (or, if invalid, be reported failed).
    Accepted,
    /// Its term is older than `highest`: fenced off.
    StaleTerm { highest: u64 },
    /// It is already running or reported and unacknowledged.
    Duplicate,
    /// The executor is shutting down.
    ShuttingDown,
    /// It has no execution id, so nothing could even be reported about it.
    Unidentified,
}

/// One run in the registry.
struct Entry {
    cancel: CancellationToken,
    /// Set by `CancelAssignment`: the error the run will finish with.
    cancel_error: Option<String>,
    /// Set by a cancel that holds only before the start: the status and error the
    /// run ends with instead of starting.
    not_started: Option<(ExecutionStatus, String)>,
    /// Set, under the registry lock, just before the process is spawned or the
    /// request sent; from then on a before-start cancel no longer applies.
    started: bool,
}

/// What a `CancelAssignment` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelEffect {
    /// The run is being stopped (or will not start).
    Cancelled,
    /// A before-start cancel found the run already started; it goes on.
    AlreadyStarted,
    /// This executor does not have the run (already finished, or never assigned here).
    Unknown,
}

/// The executions this executor owns and the fencing term.
pub(crate) struct Executions {
    running: Mutex<BTreeMap<String, Entry>>,
    highest_term: AtomicU64,
    outbox: Arc<Outbox>,
    started: mpsc::Sender<pb::executor_message::Kind>,
    tasks: TaskTracker,
    kill_grace: Duration,
    /// Fires when the executor stops for good: every run still going is killed.
    shutdown: CancellationToken,
    /// Fires when a shutdown begins: take nothing new from the leader's choice.
    draining: CancellationToken,
}

impl Executions {
    pub(crate) fn new(
        outbox: Arc<Outbox>,
        started: mpsc::Sender<pb::executor_message::Kind>,
        kill_grace: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Executions {
            running: Mutex::new(BTreeMap::new()),
            highest_term: AtomicU64::new(0),
            outbox,
            started,
            tasks: TaskTracker::new(),
            kill_grace,
            shutdown,
            draining: CancellationToken::new(),
        }
    }

    /// Starts draining: the session tells the leader to choose other executors.
    pub(crate) fn begin_drain(&self) {
        self.draining.cancel();
    }

    /// Fires when draining begins.
    pub(crate) fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Waits until every run has ended, or until `grace` is over; true when idle.
    pub(crate) async fn wait_drained(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Every critical section is a single map operation; a poisoned map is whole.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a term seen from a leader and returns the highest one so far.
    pub(crate) fn observe_term(&self, term: u64) -> u64 {
        self.highest_term
            .fetch_max(term, Ordering::SeqCst)
            .max(term)
    }

    /// Ids of the runs this executor owns (running or waiting for `start_at`), sorted.
    pub(crate) fn running_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// True while `execution_id` is in the registry.
    #[cfg(test)]
    pub(crate) fn is_running(&self, execution_id: &str) -> bool {
        self.lock().contains_key(execution_id)
    }

    /// True once the run is past its start (spawning or sending).
    #[cfg(test)]
    pub(crate) fn is_started(&self, execution_id: &str) -> bool {
        self.lock().get(execution_id).is_some_and(|e| e.started)
    }

    /// Admits an assignment and, if accepted, starts its task.
    pub(crate) fn assign(self: &Arc<Self>, assignment: pb::Assignment) -> Verdict {
        let id = assignment.execution_id.clone();
        if id.is_empty() {
            tracing::warn!(job = %assignment.job, "ignoring an assignment without an execution id");
            return Verdict::Unidentified;
        }
        if self.shutdown.is_cancelled() {
            tracing::info!(execution_id = %id, "shutting down, not taking the assignment");
            return Verdict::ShuttingDown;
        }
        let highest = self.observe_term(assignment.term);
        if assignment.term < highest {
            tracing::warn!(
                execution_id = %id,
                job = %assignment.job,
                term = assignment.term,
                highest,
                "refusing an assignment from an older term"
            );
            return Verdict::StaleTerm { highest };
        }
        let cancel = {
            let mut running = self.lock();
            if running.contains_key(&id) || self.outbox.contains(&id) {
                tracing::debug!(execution_id = %id, "ignoring a repeated assignment");
                return Verdict::Duplicate;
            }
            let cancel = self.shutdown.child_token();
            running.insert(
                id,
                Entry {
                    cancel: cancel.clone(),
                    cancel_error: None,
                    not_started: None,
                    started: false,
                },
            );
            cancel
        };
        // Converted now, so a wall-clock step while waiting does not move the start.
        let start = assignment
            .start_at
            .as_ref()
            .and_then(timer::to_utc)
            .and_then(|at| timer::deadline_for(at.into()));
        let span = tracing::info_span!(
            "execution",
            job = %assignment.job,
            execution_id = %assignment.execution_id,
            attempt = assignment.attempt,
        );
        self.tasks.spawn(
            Arc::clone(self)
                .run(assignment, cancel, start)
                .instrument(span),
        );
        Verdict::Accepted
    }

    /// Cancels a run. With `if_not_started`, only a run still waiting to start is
    /// stopped, and it ends with that status and `reason` as its error; a started one
    /// goes on.
    pub(crate) fn cancel(
        &self,
        execution_id: &str,
        reason: &str,
        if_not_started: Option<ExecutionStatus>,
    ) -> CancelEffect {
        let mut running = self.lock();
        let Some(entry) = running.get_mut(execution_id) else {
            return CancelEffect::Unknown;
        };
        if let Some(status) = if_not_started {
            if entry.started {
                return CancelEffect::AlreadyStarted;
            }
            let error = if reason.is_empty() {
                "stopped before it started".to_string()
            } else {
                reason.to_string()
            };
            entry.not_started = Some((status, error));
        } else {
            entry.cancel_error = Some(if reason.is_empty() {
                "cancelled".to_string()
            } else {
                format!("cancelled: {reason}")
            });
        }
        entry.cancel.cancel();
        CancelEffect::Cancelled
    }

    /// Marks the run started unless it was cancelled first; the two decisions are
    /// made under the registry lock, so a before-start cancel either stops the run
    /// or finds it started, never both.
    fn begin(&self, execution_id: &str, cancel: &CancellationToken) -> Result<(), Outcome> {
        let mut running = self.lock();
        let entry = running.get_mut(execution_id);
        if cancel.is_cancelled() {
            let (status, error) = entry.and_then(|e| e.not_started.clone()).unwrap_or((
                ExecutionStatus::Cancelled,
                "cancelled before it started".into(),
            ));
            return Err(Outcome::not_started(status, error));
        }
        if let Some(entry) = entry {
            entry.started = true;
        }
        Ok(())
    }

    /// Waits (bounded) for every run to end after shutdown cancelled them.
    pub(crate) async fn wait_idle(&self) {
        self.tasks.close();
        let bound = self.kill_grace + OUTPUT_DRAIN + SHUTDOWN_SLACK;
        if tokio::time::timeout(bound, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.running_ids().len(),
                "runs still ending after shutdown"
            );
        }
    }

    /// One run, from assignment to report.
    async fn run(
        self: Arc<Self>,
        assignment: pb::Assignment,
        cancel: CancellationToken,
        start: Option<Instant>,
    ) {
        let id = assignment.execution_id.clone();
        let outcome = self.execute(assignment, &cancel, start).await;
        self.finish(id, outcome);
    }

    async fn execute(
        &self,
        assignment: pb::Assignment,
        cancel: &CancellationToken,
        start: Option<Instant>,
    ) -> Outcome {
        let id = assignment.execution_id.clone();
        let action = match Action::try_from_assignment(assignment, self.kill_grace) {
            Ok(action) => action,
            Err(reason) => {
                tracing::warn!(error = %reason, "invalid assignment");
                return Outcome::not_started(ExecutionStatus::Failed, reason);
            }
        };
        if let Some(deadline) = start {
            tokio::select! {
                () = timer::sleep_until_precise(deadline) => {}
                () = cancel.cancelled() => {}
            }
        }
        match action {
            Action::Http(spec) => {
                let request = spec.describe();
                match http::prepare(spec).await {
                    Err(reason) => Outcome::not_started(ExecutionStatus::Failed, reason),
                    Ok(prepared) => {
                        if let Err(outcome) = self.begin(&id, cancel) {
                            return outcome;
                        }
                        tracing::info!(%request, "execution started");
                        self.report_started(&id, prepared.started_at());
                        prepared.send(cancel).await
                    }
                }
            }
            Action::Shell(spec) => {
                if let Err(outcome) = self.begin(&id, cancel) {
                    return outcome;
                }
                match shell::spawn(
                    &spec,
                    Some(shell::LiveOutput {
                        execution_id: id.clone(),
                        tx: self.started.clone(),
                    }),
                ) {
                    Err(reason) => Outcome::not_started(ExecutionStatus::Failed, reason),
                    Ok(spawned) => {
                        tracing::info!(pid = spawned.pid(), "execution started");
                        self.report_started(&id, spawned.started_at());
                        spawned.wait(cancel).await
                    }
                }
            }
        }
    }

    fn report_started(&self, execution_id: &str, started_at: SystemTime) {
        let report = pb::ExecutionStarted {
            execution_id: execution_id.to_string(),
            started_at: Some(timer::to_timestamp(started_at)),
        };
        // Full: see STARTED_CAPACITY. Closed: the executor is stopping.
        if self
            .started
            .try_send(pb::executor_message::Kind::Started(report))
            .is_err()
        {
            tracing::debug!("started report dropped, the running list carries it");
        }
    }

    /// Files the outcome in the outbox, then forgets the run.
    fn finish(&self, execution_id: String, mut outcome: Outcome) {
        if outcome.status == ExecutionStatus::Cancelled {
            let (requested, not_started) = self
                .lock()
                .get(&execution_id)
                .map(|e| (e.cancel_error.clone(), e.not_started.is_some()))
                .unwrap_or_default();
            if let Some(error) = requested {
                outcome.error = error;
            } else if self.shutdown.is_cancelled() && !not_started {
                // Stopped by the shutdown, not by anyone's request: a failure the
                // retry policy may run again elsewhere.
                outcome.status = ExecutionStatus::Failed;
                outcome.error = if outcome.started_at.is_some() {
                    "killed: the executor shut down before the run ended".into()
                } else {
                    "not started: the executor shut down before its start time".into()
                };
            }
        }
        let duration_ms = outcome
            .started_at
            .and_then(|s| outcome.finished_at.duration_since(s).ok())
            .map(|d| d.as_millis());
        tracing::info!(
            status = outcome.status.as_str(),
            exit_code = outcome.exit_code,
            duration_ms,
            error = %outcome.error,
            output_truncated = outcome.output_truncated,
            "execution finished"
        );
        self.outbox.push(pb::ExecutionFinished {
            execution_id: execution_id.clone(),
            status: outcome.status.as_str().to_string(),
            exit_code: outcome.exit_code,
            output: outcome.output,
            output_truncated: outcome.output_truncated,
            error: outcome.error,
            started_at: outcome.started_at.map(timer::to_timestamp),
            finished_at: Some(timer::to_timestamp(outcome.finished_at)),
        });
        // Only now: until here the id must stay visible to deduplication.
        self.lock().remove(&execution_id);
    }
}

/// What an assignment asks for, validated.
enum Action {
    Shell(ShellSpec),
    Http(HttpSpec),
}

impl Action {
    /// Checks the fields a run needs; the error is the run's failure reason.
    fn try_from_assignment(a: pb::Assignment, kill_grace: Duration) -> Result<Self, String> {
        let scheduled_at = a
            .scheduled_at
            .as_ref()
            .ok_or("invalid assignment: missing field scheduled_at")?;
        let scheduled_at = timer::to_utc(scheduled_at)
            .ok_or("invalid assignment: scheduled_at is out of range")?;
        let identity = Identity {
            job: a.job,
            execution_id: a.execution_id,
            scheduled_at,
            // Attempts count from 1; a 0 can only mean the first.
            attempt: a.attempt.max(1),
            trigger: a.trigger,
        };
        let max_output_bytes = match a.max_output_bytes {
            0 => DEFAULT_MAX_OUTPUT_BYTES,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let timeout = (a.timeout_ms > 0).then(|| Duration::from_millis(a.timeout_ms));
        match a.action {
            None => Err("invalid assignment: missing field action".into()),
            Some(pb::assignment::Action::Http(action)) => {
                let spec = HttpSpec::try_new(action, &identity, timeout, max_output_bytes)?;
                tracing::debug!(
                    request = %spec.describe(),
                    timeout = %timeout.map(format_duration).unwrap_or_else(|| "none".into()),
                    "http action"
                );
                Ok(Action::Http(spec))
            }
            Some(pb::assignment::Action::Shell(shell)) => {
                if shell.command.trim().is_empty() {
                    return Err("invalid assignment: the shell command is empty".into());
                }
                tracing::debug!(
                    timeout = %timeout.map(format_duration).unwrap_or_else(|| "none".into()),
                    "shell action"
                );
                let mut secret_env = std::collections::BTreeMap::new();
                for (name, secret) in shell.secret_env {
                    match secret.source {
                        Some(source) if !matches!(source, pb::secret_env::Source::Stored(_)) => {
                            secret_env.insert(name, source);
                        }
                        _ => {
                            return Err(format!(
                                "invalid assignment: secret_env.{name} carries no value, file or env"
                            ));
                        }
                    }
                }
                Ok(Action::Shell(ShellSpec {
                    command: shell.command,
                    env: shell.env.into_iter().collect(),
                    secret_env,
                    cwd: shell.cwd,
                    identity,
                    timeout,
                    kill_grace,
                    max_output_bytes,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(id: &str, term: u64, command: &str) -> pb::Assignment {
        pb::Assignment {
            execution_id: id.into(),
            job: "job".into(),
            scheduled_at: Some(timer::to_timestamp(SystemTime::now())),
            attempt: 1,
            trigger: "manual".into(),
            action: Some(pb::assignment::Action::Shell(pb::ShellAction {
                command: command.into(),
                ..Default::default()
            })),
            term,
            ..Default::default()
        }
    }

    fn executions() -> (Arc<Executions>, Arc<Outbox>, CancellationToken) {
        let outbox = Arc::new(Outbox::new());
        let (started, _) = started_channel();
        let shutdown = CancellationToken::new();
        let executions = Arc::new(Executions::new(
            Arc::clone(&outbox),
            started,
            Duration::from_millis(200),
            shutdown.clone(),
        ));
        (executions, outbox, shutdown)
    }

    async fn wait_started(executions: &Executions, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !executions.is_started(id) {
            assert!(Instant::now() < deadline, "{id} never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finished(outbox: &Outbox, id: &str) -> pb::ExecutionFinished {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(r) = outbox
                .pending_except(|other| other != id)
                .into_iter()
                .next()
            {
                return r;
            }
            assert!(Instant::now() < deadline, "{id} never finished");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn older_terms_are_fenced_off() {
        let (executions, outbox, _) = executions();
        assert_eq!(executions.observe_term(7), 7);
        assert_eq!(
            executions.assign(assignment("old", 6, "true")),
            Verdict::StaleTerm { highest: 7 }
        );
        assert!(!executions.is_running("old"));
        assert_eq!(
            executions.assign(assignment("new", 8, "true")),
            Verdict::Accepted
        );
        assert_eq!(
            executions.assign(assignment("older", 7, "true")),
            Verdict::StaleTerm { highest: 8 }
        );
        finished(&outbox, "new").await;
        assert!(!outbox.contains("old"));
    }

    #[tokio::test]
    async fn an_id_runs_once_until_its_report_is_acked() {
        let (executions, outbox, _) = executions();
        assert_eq!(
            executions.assign(assignment("a", 1, "true")),
            Verdict::Accepted
        );
        assert_eq!(
            executions.assign(assignment("a", 1, "true")),
            Verdict::Duplicate
        );
        finished(&outbox, "a").await;
        assert_eq!(
            executions.assign(assignment("a", 1, "true")),
            Verdict::Duplicate
        );
        outbox.ack("a");
        assert_eq!(
            executions.assign(assignment("a", 1, "true")),
            Verdict::Accepted
        );
    }

    #[tokio::test]
    async fn a_run_waits_for_start_at() {
        let (executions, outbox, _) = executions();
        let start_at = SystemTime::now() + Duration::from_millis(150);
        let mut a = assignment("later", 1, "true");
        a.start_at = Some(timer::to_timestamp(start_at));
        executions.assign(a);
        let report = finished(&outbox, "later").await;
        let started = report
            .started_at
            .as_ref()
            .and_then(timer::to_utc)
            .map(SystemTime::from)
            .expect("started_at is set");
        assert!(started >= start_at, "started before start_at");
    }

    /// A run waiting a minute for its `start_at`.
    fn waiting(executions: &Arc<Executions>, id: &str) {
        let mut a = assignment(id, 1, "true");
        a.start_at = Some(timer::to_timestamp(
            SystemTime::now() + Duration::from_secs(60),
        ));
        executions.assign(a);
    }

    #[tokio::test]
    async fn a_cancel_before_start_at_never_starts_the_process() {
        let (executions, outbox, _) = executions();
        waiting(&executions, "later");
        assert_eq!(
            executions.cancel("later", "job deleted", None),
            CancelEffect::Cancelled
        );
        let report = finished(&outbox, "later").await;
        assert_eq!(report.status, "cancelled");
        assert_eq!(report.error, "cancelled: job deleted");
        assert_eq!(report.started_at, None);

        // A before-start cancel ends it with the status it names.
        waiting(&executions, "ahead");
        let reason = "the job was paused before the run started";
        let skip = Some(ExecutionStatus::SkippedPaused);
        assert_eq!(
            executions.cancel("ahead", reason, skip),
            CancelEffect::Cancelled
        );
        let report = finished(&outbox, "ahead").await;
        assert_eq!(report.status, "skipped_paused");
        assert_eq!(report.error, reason);
        assert_eq!(report.started_at, None);
        assert_eq!(
            executions.cancel("ahead", reason, skip),
            CancelEffect::Unknown
        );
    }

    /// Executions whose `started` reports can be read.
    fn executions_reporting_starts() -> (
        Arc<Executions>,
        Arc<Outbox>,
        mpsc::Receiver<pb::executor_message::Kind>,
    ) {
        let outbox = Arc::new(Outbox::new());
        let (started_tx, started_rx) = started_channel();
        let executions = Arc::new(Executions::new(
            Arc::clone(&outbox),
            started_tx,
            Duration::from_millis(200),
            CancellationToken::new(),
        ));
        (executions, outbox, started_rx)
    }

    /// The next `started` report.
    async fn next_started(
        rx: &mut mpsc::Receiver<pb::executor_message::Kind>,
    ) -> pb::ExecutionStarted {
        let kind = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a started report in time")
            .expect("the channel is open");
        let pb::executor_message::Kind::Started(started) = kind else {
            panic!("expected a started report, got {kind:?}");
        };
        started
    }

    #[tokio::test]
    async fn a_before_start_cancel_leaves_a_started_run_alone() {
        let (executions, outbox, mut started_rx) = executions_reporting_starts();
        executions.assign(assignment("going", 1, "sleep 0.3; echo done"));
        assert_eq!(next_started(&mut started_rx).await.execution_id, "going");
        assert_eq!(
            executions.cancel("going", "paused", Some(ExecutionStatus::SkippedPaused)),
            CancelEffect::AlreadyStarted
        );
        let report = finished(&outbox, "going").await;
        assert_eq!(report.status, "succeeded", "{report:?}");
        assert!(report.output.contains("done"));
    }

    #[tokio::test]
    async fn invalid_and_http_assignments_fail_with_a_reason() {
        let (executions, outbox, _) = executions();
        let mut a = assignment("no-action", 1, "true");
        a.action = None;
        executions.assign(a);
        let report = finished(&outbox, "no-action").await;
        assert_eq!(report.status, "failed");
        assert_eq!(report.error, "invalid assignment: missing field action");

        let mut a = assignment("http", 1, "true");
        a.action = Some(pb::assignment::Action::Http(pb::HttpAction::default()));
        executions.assign(a);
        let report = finished(&outbox, "http").await;
        assert_eq!(report.status, "failed");
        assert_eq!(
            report.error,
            "invalid assignment: http.url: an http action needs a url"
        );
        assert_eq!(report.started_at, None);
    }

    fn http_assignment(id: &str, url: String) -> pb::Assignment {
        let mut a = assignment(id, 1, "unused");
        a.action = Some(pb::assignment::Action::Http(pb::HttpAction {
            url,
            ..Default::default()
        }));
        a
    }

    #[tokio::test]
    async fn an_http_run_is_started_and_finished_like_a_shell_run() {
        let server = crate::test::FakeHttpServer::start().await;
        let (executions, outbox, mut started_rx) = executions_reporting_starts();
        let start_at = SystemTime::now() + Duration::from_millis(100);
        let mut a = http_assignment("get", server.url("/ok"));
        a.start_at = Some(timer::to_timestamp(start_at));
        assert_eq!(executions.assign(a), Verdict::Accepted);

        let started = next_started(&mut started_rx).await;
        assert_eq!(started.execution_id, "get");
        let report = finished(&outbox, "get").await;
        assert_eq!(report.status, "succeeded", "{report:?}");
        assert_eq!(report.exit_code, None);
        assert!(report.output.contains("hello from the fake server"));
        assert_eq!(report.started_at, started.started_at);
        let started_at = report
            .started_at
            .as_ref()
            .and_then(timer::to_utc)
            .map(SystemTime::from)
            .expect("started_at is set");
        assert!(started_at >= start_at, "sent before start_at");
    }

    #[tokio::test]
    async fn a_cancel_stops_an_http_run_waiting_for_its_response() {
        let server = crate::test::FakeHttpServer::start().await;
        let (executions, outbox, _) = executions();
        executions.assign(http_assignment("hang", server.url("/hang")));
        server.arrived().await;
        assert_eq!(
            executions.cancel("hang", "job deleted", None),
            CancelEffect::Cancelled
        );
        let report = finished(&outbox, "hang").await;
        assert_eq!(report.status, "cancelled");
        assert_eq!(report.error, "cancelled: job deleted");
        assert!(report.started_at.is_some());
    }

    #[tokio::test]
    async fn stopping_kills_runs_as_failures_and_refuses_new_ones() {
        let (executions, outbox, shutdown) = executions();
        executions.assign(assignment("long", 1, "sleep 100"));
        let mut waiting = assignment("later", 1, "true");
        waiting.start_at = Some(timer::to_timestamp(
            SystemTime::now() + Duration::from_secs(3600),
        ));
        executions.assign(waiting);
        wait_started(&executions, "long").await;
        shutdown.cancel();
        assert_eq!(
            executions.assign(assignment("late", 1, "true")),
            Verdict::ShuttingDown
        );
        executions.wait_idle().await;
        let report = finished(&outbox, "long").await;
        assert_eq!(report.status, "failed");
        assert_eq!(
            report.error,
            "killed: the executor shut down before the run ended"
        );
        let report = finished(&outbox, "later").await;
        assert_eq!(report.status, "failed");
        assert_eq!(
            report.error,
            "not started: the executor shut down before its start time"
        );
        assert!(report.started_at.is_none());
    }

    #[tokio::test]
    async fn a_draining_executor_takes_assignments_and_lets_runs_end() {
        let (executions, outbox, _shutdown) = executions();
        executions.assign(assignment("short", 1, "sleep 0.2; echo done"));
        executions.begin_drain();
        assert!(executions.draining().is_cancelled());
        assert_eq!(
            executions.assign(assignment("sent-ahead", 1, "echo late")),
            Verdict::Accepted,
            "an assignment committed before the leader heard of the drain still runs"
        );
        assert!(executions.wait_drained(Duration::from_secs(20)).await);
        for id in ["short", "sent-ahead"] {
            let report = finished(&outbox, id).await;
            assert_eq!(report.status, "succeeded", "{id}: {}", report.error);
        }
    }
}
