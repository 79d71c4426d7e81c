//! The scheduler's domain API: what the gRPC and HTTP adapters call.
//!
//! Writes are validated here, before they reach raft (bad input never enters the
//! log), then proposed as commands; the answer comes from the state machine once the
//! command is applied and on disk. Reads come from the node's applied state.
//!
//! Decisions that need a clock or the executor registry (a manual run's executors,
//! "now" in a command) are taken here on the leader and written into the command.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use kairos_common::clock::Clock;
use kairos_common::ids::ExecutionId;
use kairos_common::job::{JobName, NotifyEvent};
use kairos_common::schedule::Schedule;
use kairos_common::status::{ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;
use tracing::{debug, info, warn};

use crate::executors::{ExecutorRegistry, SendError};
use crate::raft::{RaftHandle, RaftStatus};
use crate::state::{ActiveExecution, Applied, Dispatch, FireResult, PutResult, StateView};
use crate::time::{dt_from_ms, ms_from_ts, ts_from_dt};
use crate::{Config, Error, Result};

/// Default and largest page sizes of the list calls.
pub const DEFAULT_JOB_PAGE: u32 = 100;
pub const DEFAULT_EXECUTION_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;
/// How long a request waits for the group to have a leader before it is refused
/// (covers an election; bounded so a group without quorum answers promptly).
pub const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a leader that is shutting down waits for its successor to take over.
/// raft-rs gives up a transfer after an election timeout; this leaves room for two.
pub const HANDOFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub type Raft = RaftHandle<Result<Applied>>;

/// Everything a node's services share.
pub struct Core {
    pub config: Config,
    /// This node's gRPC address as peers and executors reach it.
    pub my_addr: String,
    pub raft: Raft,
    pub view: Arc<StateView>,
    pub db: Arc<crate::storage::Db>,
    /// Schedulers' addresses (replicated members, --peers, and learned).
    pub book: crate::raft::AddressBook,
    /// Channels for handing requests to the leader.
    pub forwarder: crate::grpc::Forwarder,
    /// Live output of running executions (leader only).
    pub live: crate::live::LiveOutputs,
    pub clock: Arc<dyn Clock>,
    pub executors: ExecutorRegistry,
    /// When this node last became a ready leader (for lease grace).
    pub leader_since: std::sync::Mutex<Option<Instant>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Webhook deliveries (leader only).
    pub notifier: crate::notify::Notifier,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node", &self.config.node_id)
            .finish()
    }
}

fn now_ms(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_millis()
}

impl Core {
    pub fn status(&self) -> RaftStatus {
        self.raft.status()
    }

    /// Ok on the ready leader; otherwise the error that sends the caller there.
    pub fn require_leader(&self) -> Result<()> {
        let s = self.raft.status();
        if s.is_ready_leader() {
            Ok(())
        } else if s.leader_id == 0 {
            Err(Error::Unavailable(
                "no leader: the group is electing one or has lost its quorum".into(),
            ))
        } else if s.leader_id == s.id {
            Err(Error::Unavailable(
                "this node was just elected and is catching up; retry".into(),
            ))
        } else {
            Err(Error::NotLeader {
                leader: self.book.get(s.leader_id),
            })
        }
    }

    /// Like [`Core::require_leader`], but while the group has no leader (an election,
    /// a node just started) waits up to [`LEADER_WAIT`] for one.
    pub async fn leader_or_wait(&self) -> Result<()> {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let s = status.borrow_and_update().clone();
            let settled = s.is_ready_leader() || (s.leader_id != 0 && s.leader_id != s.id);
            if settled || tokio::time::Instant::now() >= deadline {
                return self.require_leader();
            }
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_ok_and(|r| r.is_err())
            {
                return self.require_leader();
            }
        }
    }

    /// Waits until this node has applied every write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<()> {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        while status.borrow_and_update().leader_id == 0 {
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        self.raft.read_barrier().await
    }

    pub async fn propose(&self, kind: ipb::command::Kind) -> Result<Applied> {
        let cmd = ipb::Command { kind: Some(kind) };
        match self.raft.propose(cmd.encode_to_vec()).await {
            // Raft dropped the proposal before it entered the log: this node is
            // handing leadership over (shutdown, transfer) or just lost it. Nothing
            // was written, so sending the caller to the next leader is safe.
            Err(Error::NotLeader { leader: None }) => Err(self.next_leader().await),
            other => other?,
        }
    }

    /// Waits (up to [`LEADER_WAIT`]) for a leader other than this node and returns
    /// the error that sends a caller there.
    async fn next_leader(&self) -> Error {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let s = status.borrow_and_update().clone();
            if s.leader_id != 0 && s.leader_id != s.id {
                return Error::NotLeader {
                    leader: self.book.get(s.leader_id),
                };
            }
            match tokio::time::timeout_at(deadline, status.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Error::Unavailable("leadership is changing hands; retry".into());
                }
            }
        }
    }

    // ---- jobs ----

    pub async fn put_job(
        &self,
        job: pb::Job,
        expected_version: Option<u64>,
    ) -> Result<(pb::Job, PutResult)> {
        let (normalized, spec) = kairos_common::job::normalize(&job)?;
        self.check_supported(&spec)?;
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::PutJob(ipb::PutJob {
            job: Some(normalized),
            expected_version,
            now_ms: now_ms(self.clock.as_ref()),
        });
        match self.propose(cmd).await? {
            Applied::Job {
                job,
                result,
                cancels,
            } => {
                if result != PutResult::Unchanged {
                    info!(job = %job.name, version = job.version, result = result.as_str(), "job stored");
                }
                self.cancel_on_executors(&cancels, "the job was changed before the run started");
                Ok((self.decorate(*job), result))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Refuses features the document can express but this version does not run yet,
    /// so that nothing is stored that would silently behave differently.
    fn check_supported(&self, spec: &kairos_common::job::Job) -> Result<()> {
        let _ = spec;
        Ok(())
    }

    /// Fills the read-time fields of a stored job (the next fire instant).
    pub fn decorate(&self, mut job: pb::Job) -> pb::Job {
        if let Some(entry) = self.view.job(&job.name) {
            let status = job.status.get_or_insert_with(Default::default);
            status.next_fire_at = None;
            if !job.paused {
                let after = dt_from_ms(entry.record.cursor_ms)
                    .max(self.clock.now() - chrono::Duration::seconds(1));
                status.next_fire_at = entry.spec.next_fire_after(after).map(ts_from_dt);
            }
            status.pending_retries = self.view.retries_of(&job.name) as u32;
            status.backfills = self
                .view
                .backfills()
                .iter()
                .filter(|b| b.job == job.name)
                .count() as u32;
        }
        job
    }

    pub async fn get_job(&self, name: &str) -> Result<pb::Job> {
        self.read_barrier().await?;
        let entry = self
            .view
            .job(name)
            .ok_or_else(|| Error::NotFound(format!("job {name}")))?;
        let job = entry
            .record
            .job
            .clone()
            .expect("invariant: records hold a job");
        Ok(self.decorate(job))
    }

    pub async fn list_jobs(
        &self,
        page_size: u32,
        page_token: &str,
        filter: &str,
    ) -> Result<(Vec<pb::Job>, String)> {
        self.read_barrier().await?;
        self.list_jobs_local(page_size, page_token, filter)
    }

    /// Jobs as this node has them, without a read barrier (status page); `filter` is
    /// a selector over the jobs' metadata.
    pub fn list_jobs_local(
        &self,
        page_size: u32,
        page_token: &str,
        filter: &str,
    ) -> Result<(Vec<pb::Job>, String)> {
        let limit = page_size_or(page_size, DEFAULT_JOB_PAGE)?;
        let selector = kairos_common::selector::Selector::parse(filter)
            .map_err(|reason| Error::invalid("filter", reason))?;
        let mut after = if page_token.is_empty() {
            None
        } else {
            Some(page_token.to_string())
        };
        let mut matched: Vec<std::sync::Arc<crate::state::JobEntry>> = Vec::new();
        // Scan in name order, a chunk at a time, until a page (and one more) matched.
        loop {
            let chunk = self.view.jobs_page(after.as_deref(), 1000);
            let Some(last) = chunk.last() else { break };
            after = Some(last.name().to_string());
            matched.extend(
                chunk
                    .into_iter()
                    .filter(|e| selector.matches(&e.spec.metadata)),
            );
            if matched.len() > limit {
                break;
            }
        }
        let more = matched.len() > limit;
        matched.truncate(limit);
        let next = if more {
            matched
                .last()
                .map(|e| e.name().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let jobs = matched
            .iter()
            .map(|e| self.decorate(e.record.job.clone().expect("invariant: records hold a job")))
            .collect();
        Ok((jobs, next))
    }

    /// Deletes a job with its history; with `cascade`, also every job that depends on
    /// it. Returns the jobs deleted.
    pub async fn delete_job(&self, name: &str, cascade: bool) -> Result<Vec<String>> {
        JobName::parse(name)?;
        self.leader_or_wait().await?;
        match self
            .propose(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
                name: name.to_string(),
                cascade,
            }))
            .await?
        {
            Applied::JobDeleted { deleted, cancelled } => {
                info!(job = %name, deleted = ?deleted, cancelled = cancelled.len(), "job deleted");
                self.cancel_on_executors(&cancelled, "job deleted");
                Ok(deleted)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Runs `name` for every instant in (`from`, `to`] — or, with `dry_run`, only lists
    /// them. Returns the instants and the backfill's id.
    pub async fn backfill(
        &self,
        name: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        dry_run: bool,
        parallel: u32,
        rate: f64,
    ) -> Result<(Vec<DateTime<Utc>>, Option<u64>)> {
        JobName::parse(name)?;
        let from = from.ok_or_else(|| Error::invalid("from", "required"))?;
        let to = to.ok_or_else(|| Error::invalid("to", "required"))?;
        if to <= from {
            return Err(Error::invalid("to", "is not after from"));
        }
        if to > self.clock.now() {
            return Err(Error::invalid(
                "to",
                "is in the future; a backfill covers the past",
            ));
        }
        if parallel > 1000 {
            return Err(Error::invalid("parallel", "at most 1000"));
        }
        if !rate.is_finite() || !(0.0..=1000.0).contains(&rate) {
            return Err(Error::invalid(
                "rate",
                "must be between 0 (= default 1/s) and 1000 per second",
            ));
        }
        self.read_barrier().await?;
        let entry = self
            .view
            .job(name)
            .ok_or_else(|| Error::NotFound(format!("job {name}")))?;
        let instants =
            entry
                .spec
                .schedule
                .instants(from, Some(to), crate::state::MAX_BACKFILL_INSTANTS + 1);
        if instants.len() > crate::state::MAX_BACKFILL_INSTANTS {
            return Err(Error::invalid(
                "from",
                format!(
                    "the range holds more than {} instants; split it",
                    crate::state::MAX_BACKFILL_INSTANTS
                ),
            ));
        }
        if dry_run || instants.is_empty() {
            return Ok((instants, None));
        }
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::StartBackfill(ipb::StartBackfill {
            job: name.to_string(),
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            parallel,
            rate,
            now_ms: now_ms(self.clock.as_ref()),
        });
        match self.propose(cmd).await? {
            Applied::Backfill { id } => {
                info!(job = %name, backfill = id, instants = instants.len(), "backfill started");
                Ok((instants, Some(id)))
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn set_paused(&self, name: &str, paused: bool, reason: &str) -> Result<pb::Job> {
        JobName::parse(name)?;
        if reason.len() > 1024 {
            return Err(Error::invalid("reason", "longer than 1024 bytes"));
        }
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::SetPaused(ipb::SetPaused {
            name: name.to_string(),
            paused,
            reason: reason.to_string(),
            now_ms: now_ms(self.clock.as_ref()),
        });
        match self.propose(cmd).await? {
            Applied::Job { job, cancels, .. } => {
                info!(job = %name, paused, "job pause state set");
                self.skip_unless_started(&cancels);
                Ok(self.decorate(*job))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Asks executors to skip runs of a paused job that they have not started yet;
    /// each ends `skipped_paused` (or, if it had started, with what it did) when its
    /// executor reports. The runs stay tracked until then.
    fn skip_unless_started(&self, executions: &[ActiveExecution]) {
        for a in executions {
            self.send_cancel(
                a,
                "the job was paused before the run started",
                ExecutionStatus::SkippedPaused.as_str(),
            );
        }
    }

    /// Tells executors to stop executions the state no longer wants run.
    pub fn cancel_on_executors(&self, executions: &[ActiveExecution], reason: &str) {
        for a in executions {
            self.send_cancel(a, reason, "");
            self.executors.note_finished(&a.executor, a.id);
        }
    }

    /// Sends one `CancelAssignment` (see its `if_not_started_status`); an executor
    /// that is gone has nothing to stop.
    fn send_cancel(&self, a: &ActiveExecution, reason: &str, if_not_started_status: &str) {
        let msg = pb::SchedulerMessage {
            kind: Some(pb::scheduler_message::Kind::Cancel(pb::CancelAssignment {
                execution_id: a.id.to_string(),
                reason: reason.to_string(),
                if_not_started_status: if_not_started_status.to_string(),
            })),
        };
        if self.executors.send(&a.executor, msg).is_err() {
            debug!(execution = a.id, executor = %a.executor, "cancel not delivered: executor gone");
        }
    }

    /// Starts one execution of the job now (trigger `manual`), under the job's
    /// concurrency policy: with `forbid` a run during another is refused (and
    /// recorded `skipped_overlap`); with `queue` it waits (`queued` in the answer).
    pub async fn run_job(&self, name: &str) -> Result<(Option<pb::Execution>, bool)> {
        JobName::parse(name)?;
        self.leader_or_wait().await?;
        let entry = self
            .view
            .job(name)
            .ok_or_else(|| Error::NotFound(format!("job {name}")))?;
        let now = now_ms(self.clock.as_ref());
        let fire = self.plan_fire(&entry, now, Trigger::Manual, None);
        let results = self.fire(vec![fire], Vec::new()).await?;
        let result = results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("a fire batch of one produced no result".into()))?;
        let outcome = result.outcome.map_err(Error::FailedPrecondition)?;
        if outcome.queued {
            return Ok((None, true));
        }
        let exec = outcome
            .executions
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("a fire produced no execution".into()))?;
        if exec.status == ExecutionStatus::SkippedOverlap.as_str() {
            return Err(Error::FailedPrecondition(format!(
                "job {name} is already running and its concurrency is {} (recorded as execution {}, skipped_overlap): {}",
                entry.spec.concurrency, exec.id, exec.error
            )));
        }
        Ok((Some(exec), false))
    }

    /// A fire of `entry` at `at_ms`, with executors chosen now (avoiding `avoid`, the
    /// executor a failed attempt ran on, when another matches).
    pub fn plan_fire(
        &self,
        entry: &crate::state::JobEntry,
        at_ms: i64,
        trigger: Trigger,
        avoid: Option<&str>,
    ) -> ipb::Fire {
        let target = &entry.spec.target;
        // A retry re-runs one attempt, even of a fan-out job.
        let count = if trigger == Trigger::Retry {
            1
        } else {
            target.count
        };
        let executors = self.executors.choose(
            &target.selector,
            count,
            target.strategy,
            entry.name(),
            avoid,
        );
        let no_target_reason = if executors.is_empty() {
            if target.selector.is_empty() {
                "no executor is connected".to_string()
            } else {
                format!("no connected executor matches {}", target.selector)
            }
        } else {
            String::new()
        };
        let now = now_ms(self.clock.as_ref());
        let executor_boots = executors
            .iter()
            .map(|e| self.executors.boot_of(e))
            .collect();
        ipb::Fire {
            executor_boots,
            parent_execution: 0,
            backfill: 0,
            group: count != 1,
            job: entry.name().to_string(),
            scheduled_at_ms: at_ms,
            trigger: trigger.as_str().to_string(),
            attempt: 1,
            executors,
            job_version: entry.version(),
            no_target_reason,
            max_output_bytes: self.config.max_output_bytes,
            retry_of: 0,
            dequeue: false,
            // Scheduled instants start on time; anything late or unscheduled starts now.
            start_at_ms: at_ms.max(now),
        }
    }

    /// Commits `misses` and `fires` as one batch, then hands the created executions
    /// to executors and stops the ones replaced.
    pub async fn fire(
        &self,
        fires: Vec<ipb::Fire>,
        misses: Vec<ipb::Miss>,
    ) -> Result<Vec<FireResult>> {
        let term = self.raft.status().term;
        let count = fires.len();
        let missed = misses.len();
        let cmd = ipb::command::Kind::FireBatch(ipb::FireBatch {
            fires,
            term,
            now_ms: now_ms(self.clock.as_ref()),
            misses,
            global_keep: self.config.max_executions,
        });
        let (results, refused_misses) = match self.propose(cmd).await? {
            Applied::Fired {
                results,
                refused_misses,
            } => (results, refused_misses),
            other => return Err(unexpected(other)),
        };
        debug!(fires = count, misses = missed, "fire batch committed");
        for (job, reason) in refused_misses {
            debug!(%job, %reason, "miss refused");
        }
        for r in &results {
            match &r.outcome {
                Ok(outcome) => {
                    for e in &outcome.executions {
                        self.metrics.fired(&e.status);
                        info!(job = %r.job, execution = %e.id, at = %dt_from_ms(r.scheduled_at_ms), trigger = %e.trigger, attempt = e.attempt, executor = %e.executor, status = %e.status, "job fired");
                    }
                    if outcome.queued {
                        info!(job = %r.job, at = %dt_from_ms(r.scheduled_at_ms), "start queued behind the running execution");
                    }
                    self.cancel_on_executors(
                        &outcome.cancels,
                        "replaced by a new start (concurrency: replace)",
                    );
                    for d in &outcome.dispatches {
                        self.dispatch(d).await;
                    }
                }
                Err(reason) => {
                    debug!(job = %r.job, at = r.scheduled_at_ms, %reason, "fire refused")
                }
            }
        }
        Ok(results)
    }

    /// Sends one assignment; an executor that is gone makes the attempt lost.
    pub async fn dispatch(&self, d: &Dispatch) {
        let id: u64 = d.execution.id.parse().expect("invariant: ids are numbers");
        let executor = d.execution.executor.clone();
        let msg = pb::SchedulerMessage {
            kind: Some(pb::scheduler_message::Kind::Assignment(
                d.assignment.clone(),
            )),
        };
        if let Err(e) = self.executors.send(&executor, msg) {
            let why = match e {
                SendError::NotConnected => {
                    format!("executor {executor} disconnected before the assignment reached it")
                }
                SendError::QueueFull => {
                    format!("executor {executor} is not reading its assignments")
                }
            };
            // Not recorded lost at once: if the same executor process says Hello again
            // within the lease, it gets the assignment then (it never had it);
            // otherwise the lease ends it `lost`.
            warn!(execution = id, %why, "assignment not delivered; waiting for the executor within the lease");
        }
        // The lease starts now either way.
        self.executors.note_assigned(&executor, id);
    }

    /// Records an attempt as lost (its executor is gone).
    pub async fn finish_lost(&self, id: u64, executor: &str, why: &str) -> Result<()> {
        let now = now_ms(self.clock.as_ref());
        self.report_finished(ipb::ExecutionFinished {
            id,
            executor: executor.to_string(),
            status: ExecutionStatus::Lost.as_str().to_string(),
            exit_code: None,
            output: String::new(),
            output_truncated: false,
            error: why.to_string(),
            started_at_ms: 0,
            finished_at_ms: now,
            retry_at_ms: 0,
        })
        .await
        .map(|_| ())
    }

    pub async fn report_started(&self, c: ipb::ExecutionStarted) -> Result<Option<pb::Execution>> {
        let started_at_ms = c.started_at_ms;
        match self
            .propose(ipb::command::Kind::ExecutionStarted(c))
            .await?
        {
            Applied::Execution(e) => {
                if let Some(e) = &e
                    && e.started_at.as_ref().map(ms_from_ts) == Some(started_at_ms)
                {
                    self.notify(self.view.job(&e.job).as_deref(), NotifyEvent::Start, e);
                }
                Ok(e.map(|e| *e))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Tells the webhooks that want it about an execution's start or end. `entry` is
    /// the job as it was before the change (an ephemeral job is gone after it).
    fn notify(
        &self,
        entry: Option<&crate::state::JobEntry>,
        event: NotifyEvent,
        exec: &pb::Execution,
    ) {
        if let Some(entry) = entry {
            self.notifier
                .notify(&entry.spec, &self.config.notify, event, exec);
        }
    }

    /// Commits a final status. For a failed, timed-out or lost attempt of a job that
    /// allows more, the leader decides here when the retry is due (backoff doubled
    /// per attempt, capped, with ±20% jitter so retries of many jobs spread out).
    pub async fn report_finished(
        &self,
        mut c: ipb::ExecutionFinished,
    ) -> Result<Option<pb::Execution>> {
        let id = c.id;
        let executor = c.executor.clone();
        let (reported, finished_at_ms) = (c.status.clone(), c.finished_at_ms);
        let job_before = self
            .view
            .active_execution(id)
            .and_then(|a| self.view.job(&a.job));
        c.retry_at_ms = self.retry_at_ms(&c);
        match self
            .propose(ipb::command::Kind::ExecutionFinished(c))
            .await?
        {
            Applied::Execution(e) => {
                self.executors.note_finished(&executor, id);
                self.live.end(id);
                if let Some(e) = &e
                    && e.status == reported
                    && e.finished_at.as_ref().map(ms_from_ts) == Some(finished_at_ms)
                {
                    let event = if e.status == ExecutionStatus::Succeeded.as_str() {
                        Some(NotifyEvent::Success)
                    } else if matches!(e.status.as_str(), "failed" | "timed_out" | "lost") {
                        Some(NotifyEvent::Failure)
                    } else {
                        None
                    };
                    if let Some(event) = event {
                        self.notify(job_before.as_deref(), event, e);
                    }
                }
                if let Some(e) = &e {
                    self.metrics.finished(&e.status);
                    info!(job = %e.job, execution = %e.id, attempt = e.attempt, status = %e.status, late_status = %e.late_status, executor = %e.executor, "execution finished");
                }
                Ok(e.map(|e| *e))
            }
            other => Err(unexpected(other)),
        }
    }

    fn retry_at_ms(&self, c: &ipb::ExecutionFinished) -> i64 {
        let retryable = matches!(
            c.status.parse::<ExecutionStatus>(),
            Ok(ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Lost)
        );
        if !retryable {
            return 0;
        }
        let Some(active) = self.view.active_execution(c.id) else {
            return 0;
        };
        let Some(entry) = self.view.job(&active.job) else {
            return 0;
        };
        let attempt = active.attempt;
        if attempt >= entry.spec.retry.max_attempts {
            return 0;
        }
        let delay = entry.spec.retry.delay_before(attempt + 1);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let delay_ms = (delay.as_millis() as f64 * jitter) as i64;
        now_ms(self.clock.as_ref()) + delay_ms.max(1)
    }

    /// After an executor (re)registers with this leader: stops the runs it reports that
    /// the state says are over (cancelled, replaced or deleted while it was away),
    /// repeats skip requests for runs of jobs paused since, and sends again the
    /// assignments this very executor process never received
    /// ([`crate::executors::never_received`]: the leader that committed them died
    /// before sending, or the stream broke). A pending execution held by an earlier
    /// process of the executor is not sent again — it may have run before that
    /// process died — and is left to its lease (`lost`, then the retry policy).
    pub fn reconcile_executor(&self, hello: &pb::Hello) {
        let executor = hello.executor_id.as_str();
        let running: BTreeSet<u64> = hello
            .running
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        let active = self.view.active();
        // The records of the runs the state gives this executor, read once.
        let records: BTreeMap<u64, pb::Execution> = active
            .iter()
            .filter(|a| a.executor == executor)
            .filter_map(|a| Some((a.id, self.view.execution(a.id).ok().flatten()?)))
            .collect();
        let resent = self.resend_never_received(hello, &records);
        let known: BTreeSet<u64> = active.iter().map(|a| a.id).collect();
        let over: Vec<ActiveExecution> = running
            .iter()
            .filter(|id| !known.contains(id))
            .map(|id| ActiveExecution {
                id: *id,
                job: String::new(),
                executor: executor.to_string(),
                scheduled_at_ms: 0,
                attempt: 0,
                backfill: 0,
            })
            .collect();
        if !over.is_empty() {
            info!(%executor, count = over.len(), "stopping runs that ended while the executor was away");
            self.cancel_on_executors(
                &over,
                "the execution already ended (cancelled, replaced or deleted)",
            );
        }
        // Runs committed ahead for a job paused since (held, or just sent again): the
        // skip request may have been sent by an earlier leader, or while this executor
        // was away. It follows the assignment on the same stream.
        let ahead_of_pause: Vec<ActiveExecution> = active
            .iter()
            .filter(|a| {
                a.executor == executor && (running.contains(&a.id) || resent.contains(&a.id))
            })
            .filter(|a| {
                self.view.job(&a.job).is_some_and(|entry| {
                    let job = entry.record.job.as_ref();
                    entry.spec.paused
                        && job
                            .and_then(|j| j.updated_at.as_ref())
                            .is_some_and(|at| a.scheduled_at_ms > ms_from_ts(at))
                })
            })
            .filter(|a| {
                records
                    .get(&a.id)
                    .is_some_and(crate::state::skipped_by_pause)
            })
            .cloned()
            .collect();
        if !ahead_of_pause.is_empty() {
            self.skip_unless_started(&ahead_of_pause);
        }
    }

    /// Sends again what `hello`'s executor process never received (see
    /// [`reconcile_executor`](Core::reconcile_executor)), under this leader's term;
    /// returns the ids sent.
    fn resend_never_received(
        &self,
        hello: &pb::Hello,
        records: &BTreeMap<u64, pb::Execution>,
    ) -> BTreeSet<u64> {
        let missing = crate::executors::never_received(hello, records.values());
        let mut sent = BTreeSet::new();
        if missing.is_empty() {
            return sent;
        }
        let term = self.raft.status().term;
        for exec in missing {
            let Some(entry) = self.view.job(&exec.job) else {
                continue;
            };
            let start_at_ms = exec.scheduled_at.as_ref().map_or(0, ms_from_ts);
            let mut assignment = crate::state::assignment_for(
                &entry,
                exec,
                start_at_ms,
                self.config.max_output_bytes,
            );
            // Committed under an earlier term maybe; handed over under this one, which
            // the executor has just been told (an older one it would refuse).
            assignment.term = term;
            let id: u64 = exec.id.parse().expect("invariant: ids are numbers");
            let msg = pb::SchedulerMessage {
                kind: Some(pb::scheduler_message::Kind::Assignment(assignment)),
            };
            if self.executors.send(&hello.executor_id, msg).is_ok() {
                self.executors.note_assigned(&hello.executor_id, id);
                sent.insert(id);
            }
        }
        info!(executor = %hello.executor_id, count = sent.len(), "sent again the assignments this executor never received");
        sent
    }

    /// Stops a pending or running execution: recorded `cancelled` at once, and its
    /// executor told to kill the process group.
    pub async fn cancel_execution(&self, id: &str) -> Result<pb::Execution> {
        let id: ExecutionId = id.parse()?;
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::CancelExecution(ipb::CancelExecution {
            id: id.0,
            reason: "cancelled on request".into(),
            now_ms: now_ms(self.clock.as_ref()),
        });
        match self.propose(cmd).await? {
            Applied::Cancelled { execution, active } => {
                info!(execution = %execution.id, job = %execution.job, "execution cancelled");
                self.cancel_on_executors(std::slice::from_ref(&active), "cancelled on request");
                Ok(*execution)
            }
            other => Err(unexpected(other)),
        }
    }

    // ---- schedules ----

    pub async fn preview(
        &self,
        subject: Option<pb::preview_schedule_request::Subject>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<(Vec<DateTime<Utc>>, String)> {
        use pb::preview_schedule_request::Subject;
        let (schedule_src, tz) = match subject {
            Some(Subject::Name(name)) => {
                self.read_barrier().await?;
                let entry = self
                    .view
                    .job(&name)
                    .ok_or_else(|| Error::NotFound(format!("job {name}")))?;
                let job = entry
                    .record
                    .job
                    .clone()
                    .expect("invariant: records hold a job");
                (job.schedule, job.timezone)
            }
            Some(Subject::Job(job)) => (job.schedule, job.timezone),
            None => {
                return Err(Error::invalid(
                    "subject",
                    "give a job name or a job document",
                ));
            }
        };
        let schedule = Schedule::parse(&schedule_src, &tz)?;
        let limit = match limit {
            0 => 10,
            n if n > MAX_PAGE => {
                return Err(Error::invalid("limit", format!("at most {MAX_PAGE}")));
            }
            n => n as usize,
        };
        let from = from.unwrap_or_else(|| self.clock.now());
        if to.is_some_and(|to| to < from) {
            return Err(Error::invalid("to", "is before from"));
        }
        Ok((
            schedule.instants(from, to, limit),
            schedule.timezone().name().to_string(),
        ))
    }

    // ---- executions ----

    pub async fn get_execution(&self, id: &str) -> Result<pb::Execution> {
        let id: ExecutionId = id.parse()?;
        self.read_barrier().await?;
        let mut e = self
            .view
            .execution(id.0)?
            .ok_or_else(|| Error::NotFound(format!("execution {id}")))?;
        if !e.group.is_empty() {
            e.group_status = self.view.group_status(&e.job, &e.group)?;
        }
        Ok(e)
    }

    pub async fn list_executions(
        &self,
        job: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<pb::Execution>, String)> {
        self.read_barrier().await?;
        self.list_executions_local(job, page_size, page_token)
    }

    /// Executions as this node has them, without a read barrier (status page).
    pub fn list_executions_local(
        &self,
        job: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<pb::Execution>, String)> {
        let limit = page_size_or(page_size, DEFAULT_EXECUTION_PAGE)?;
        let before =
            if page_token.is_empty() {
                None
            } else {
                Some(page_token.parse::<u64>().map_err(|_| {
                    Error::invalid("page_token", "not a token from a previous page")
                })?)
            };
        let job = if job.is_empty() {
            None
        } else {
            JobName::parse(job)?;
            Some(job)
        };
        let mut page = self.view.executions_page(job, before, limit)?;
        let mut groups: BTreeMap<(String, String), String> = Default::default();
        for e in page.executions.iter_mut().filter(|e| !e.group.is_empty()) {
            let key = (e.job.clone(), e.group.clone());
            if !groups.contains_key(&key) {
                let status = self.view.group_status(&e.job, &e.group)?;
                groups.insert(key.clone(), status);
            }
            e.group_status = groups[&key].clone();
        }
        Ok((
            page.executions,
            page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        ))
    }

    // ---- cluster ----

    /// This node's own row of the cluster status.
    pub fn local_status(&self) -> pb::SchedulerStatus {
        let s = self.raft.status();
        pb::SchedulerStatus {
            id: s.id,
            addr: self.my_addr.clone(),
            role: s.role.as_str().to_string(),
            term: s.term,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            reachable: true,
            log_first_index: s.log_first_index,
        }
    }

    /// The group as this node sees it, with each member's own figures (asked of it;
    /// `reachable` false when it did not answer in time).
    pub async fn cluster_status(&self) -> pb::ClusterStatus {
        let s = self.raft.status();
        let mut ids: Vec<u64> = s.voters.iter().chain(s.learners.iter()).copied().collect();
        if !ids.contains(&s.id) {
            ids.push(s.id);
        }
        ids.sort_unstable();
        ids.dedup();
        let asks = ids.iter().map(|id| async move {
            if *id == s.id {
                return self.local_status();
            }
            let addr = self.book.get(*id).unwrap_or_default();
            match crate::grpc::peer_status(&self.forwarder, &addr).await {
                Some(mut st) => {
                    st.id = *id;
                    st
                }
                None => pb::SchedulerStatus {
                    id: *id,
                    addr,
                    role: "unknown".into(),
                    reachable: false,
                    ..Default::default()
                },
            }
        });
        let schedulers = futures::future::join_all(asks).await;
        // Executors connect to the leader only.
        let executors = if s.leader_id == s.id || s.leader_id == 0 {
            self.executors.statuses()
        } else {
            let addr = self.book.get(s.leader_id).unwrap_or_default();
            crate::grpc::leader_executors(&self.forwarder, &addr)
                .await
                .unwrap_or_default()
        };
        pb::ClusterStatus {
            leader_id: s.leader_id,
            leader_addr: self.leader_addr().unwrap_or_default(),
            schedulers,
            executors,
            answered_by: s.id,
        }
    }

    /// The address peers and executors should use for this node.
    pub fn advertised_addr(&self) -> String {
        self.my_addr.clone()
    }

    /// The leader's gRPC address, when known.
    pub fn leader_addr(&self) -> Option<String> {
        let s = self.raft.status();
        if s.leader_id == 0 {
            None
        } else {
            self.book.get(s.leader_id)
        }
    }

    /// Admits a scheduler (started with `--join`) as a voter.
    pub async fn add_scheduler(&self, id: u64, addr: &str) -> Result<()> {
        if id == 0 {
            return Err(Error::invalid("id", "must be a positive number"));
        }
        if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
            return Err(Error::invalid("addr", format!("{addr:?} is not HOST:PORT")));
        }
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if s.voters.contains(&id) {
            return Err(Error::AlreadyExists(format!("scheduler {id}")));
        }
        self.book.set(id, addr.to_string());
        self.raft
            .change_membership(crate::raft::MemberChange::Add {
                id,
                addr: addr.to_string(),
            })
            .await?;
        info!(node = id, %addr, "scheduler added");
        Ok(())
    }

    /// Admits the scheduler `id` at `addr` as a voter, for a node that found the
    /// group by itself ([`crate::join`]). Idempotent: a voter already known at that
    /// address is answered at once. When the node is a voter but says it has no data
    /// (`empty`), it is removed and added again, so it never counts as the member it
    /// no longer remembers being; that needs the other voters to hold a live quorum
    /// without it, else FAILED_PRECONDITION (the node asks again later).
    pub async fn join(&self, id: u64, addr: &str, empty: bool) -> Result<Vec<u64>> {
        if id == 0 {
            return Err(Error::invalid("id", "must be a positive number"));
        }
        if !addr.contains(':') {
            return Err(Error::invalid("addr", format!("{addr:?} is not HOST:PORT")));
        }
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if s.voters.contains(&id) {
            if id == s.id {
                return Err(Error::FailedPrecondition(format!(
                    "scheduler {id} is this leader; a running node cannot join again"
                )));
            }
            if !empty {
                if self.book.get(id).as_deref() != Some(addr) {
                    self.book.set(id, addr.to_string());
                }
                return Ok(s.voters);
            }
            let progress = self.raft.progress().await?;
            let quorum = s.voters.len() / 2 + 1;
            let others = progress.active_except(id);
            if others < quorum {
                return Err(Error::FailedPrecondition(format!(
                    "cannot replace scheduler {id} now: {others} of the other voters are active, and removing it then adding it back needs {quorum}"
                )));
            }
            info!(node = id, %addr, "scheduler lost its data: replacing it (remove, then add)");
            self.raft
                .change_membership(crate::raft::MemberChange::Remove { id })
                .await?;
        }
        self.book.set(id, addr.to_string());
        self.raft
            .change_membership(crate::raft::MemberChange::Add {
                id,
                addr: addr.to_string(),
            })
            .await?;
        info!(node = id, %addr, "scheduler joined");
        Ok(self.raft.status().voters)
    }

    /// Removes a voter. Removing the leader first hands leadership to another voter,
    /// which then removes it. Refused (FAILED_PRECONDITION) when the voters left
    /// would not hold a live quorum: a removal must never take the group down.
    pub async fn remove_scheduler(&self, id: u64) -> Result<()> {
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if !s.voters.contains(&id) {
            return Err(Error::NotFound(format!("scheduler {id}")));
        }
        if s.voters.len() == 1 {
            return Err(Error::FailedPrecondition(
                "cannot remove the last scheduler".into(),
            ));
        }
        let progress = self.raft.progress().await?;
        let left = s.voters.len() - 1;
        let quorum = left / 2 + 1;
        let active = progress.active_except(id);
        if active < quorum {
            return Err(Error::FailedPrecondition(format!(
                "removing scheduler {id} would leave {left} voters of which only {active} are active; they need {quorum} for a quorum"
            )));
        }
        if id == s.id {
            let next = progress
                .best_successor(id)
                .expect("invariant: a quorum of other active voters exists");
            info!(
                to = next,
                "handing leadership over before removing this node"
            );
            self.transfer_leader(next).await?;
            let addr = self
                .book
                .get(next)
                .ok_or_else(|| Error::Unavailable(format!("no address for scheduler {next}")))?;
            return crate::grpc::remove_via(&self.forwarder, self.config.node_id, &addr, id).await;
        }
        self.raft
            .change_membership(crate::raft::MemberChange::Remove { id })
            .await?;
        info!(node = id, "scheduler removed");
        Ok(())
    }

    /// On shutdown: when this node leads a group of several, hands leadership to
    /// the most caught-up active follower and waits (bounded) until it leads, so a
    /// rolling restart costs the group a leadership transfer (tens of milliseconds)
    /// instead of an election timeout. True when the handoff happened.
    pub async fn hand_over_leadership(&self) -> bool {
        let s = self.raft.status();
        if s.role != crate::raft::Role::Leader || s.voters.len() < 2 {
            return false;
        }
        let Ok(progress) = self.raft.progress().await else {
            return false;
        };
        let Some(next) = progress.best_successor(s.id) else {
            warn!("shutting down the leader with no active follower to hand leadership to");
            return false;
        };
        info!(to = next, "shutting down: handing leadership over");
        match tokio::time::timeout(HANDOFF_TIMEOUT, self.transfer_leader(next)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(to = next, error = %e, "leadership handoff failed; stopping anyway");
                false
            }
            Err(_) => {
                warn!(
                    to = next,
                    "leadership handoff did not finish in time; stopping anyway"
                );
                false
            }
        }
    }

    /// Hands leadership to `id` and waits until it has it.
    pub async fn transfer_leader(&self, id: u64) -> Result<()> {
        self.leader_or_wait().await?;
        let s = self.raft.status();
        if !s.voters.contains(&id) {
            return Err(Error::NotFound(format!("scheduler {id}")));
        }
        if id == s.id {
            return Ok(());
        }
        self.raft.transfer_leader(id)?;
        let mut status = self.raft.watch_status();
        let wait = async {
            loop {
                if status.borrow_and_update().leader_id == id {
                    return;
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .map_err(|_| {
                Error::Unavailable(format!("scheduler {id} did not take leadership within 10s"))
            })?;
        info!(node = id, "leadership transferred");
        Ok(())
    }

    /// Makes sure the replicated address book holds every voter this leader knows an
    /// address for (the initial voters are only in the flags of the first leader).
    pub async fn ensure_member_addrs(&self) -> Result<()> {
        let known = self.view.members();
        let s = self.raft.status();
        let missing: std::collections::HashMap<u64, String> = s
            .voters
            .iter()
            .filter(|id| !known.contains_key(id))
            .filter_map(|id| self.book.get(*id).map(|a| (*id, a)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        match self
            .propose(ipb::command::Kind::SetMemberAddrs(ipb::SetMemberAddrs {
                addrs: missing,
            }))
            .await?
        {
            Applied::Members(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub fn ms_of(ts: &kairos_proto::Timestamp) -> i64 {
        ms_from_ts(ts)
    }
}

fn page_size_or(page_size: u32, default: u32) -> Result<usize> {
    match page_size {
        0 => Ok(default as usize),
        n if n > MAX_PAGE => Err(Error::invalid("page_size", format!("at most {MAX_PAGE}"))),
        n => Ok(n as usize),
    }
}

fn unexpected(applied: Applied) -> Error {
    Error::Internal(format!("unexpected state-machine answer: {applied:?}"))
}
