//! Fires: a batch of scheduled, catch-up, manual, retry, dependency and backfill
//! starts (`FireBatch`), and misses. A fire is admitted (the instant is after the
//! cursor, the retry or dependency or backfill instant is still owed), judged (paused,
//! or the job's concurrency against what runs), then started (one execution per
//! chosen executor, or `no_target`).

use kairos_common::ids::{ExecutionId, ExecutorId};
use kairos_common::status::{Concurrency, ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;

use super::machine::{Applied, Dispatch, FireOutcome, FireResult, StateMachine};
use super::records::word;
use super::{ActiveExecution, JobEntry, keys};
use crate::storage::{Batch, Cf, StorageError};
use crate::time::ts_from_ms;

/// The assignment an executor gets for `exec` of `job`.
pub fn assignment_for(
    job: &JobEntry,
    exec: &pb::Execution,
    start_at_ms: i64,
    max_output_bytes: u64,
) -> pb::Assignment {
    let doc = job
        .record
        .job
        .as_ref()
        .expect("invariant: records hold a job");
    let action = match &doc.action {
        Some(pb::job::Action::Shell(s)) => Some(pb::assignment::Action::Shell(s.clone())),
        Some(pb::job::Action::Http(h)) => Some(pb::assignment::Action::Http(h.clone())),
        None => None,
    };
    pb::Assignment {
        execution_id: exec.id.clone(),
        job: exec.job.clone(),
        scheduled_at: exec.scheduled_at,
        attempt: exec.attempt,
        trigger: exec.trigger.clone(),
        action,
        timeout_ms: job.spec.timeout.map(|d| d.as_millis() as u64).unwrap_or(0),
        start_at: Some(ts_from_ms(start_at_ms)),
        term: exec.term,
        max_output_bytes,
    }
}

/// What the executions of a fire inherit: a retry stays in its attempt's fan-out
/// group, dependency and backfill; a dependency start names its parent's execution;
/// a backfill run its backfill. Empty strings for none (the record's form).
#[derive(Debug, Default)]
struct Lineage {
    group: String,
    parent_execution: String,
    backfill: String,
}

/// An admitted fire: the job as it will be stored, and what the executions carry.
struct Admitted {
    entry: JobEntry,
    previous_attempt: String,
    lineage: Lineage,
}

impl StateMachine {
    pub(super) fn apply_fire_batch(
        &mut self,
        batch: &mut Batch,
        c: ipb::FireBatch,
    ) -> Result<Applied, StorageError> {
        let mut refused_misses = Vec::new();
        for miss in c.misses {
            let job = miss.job.clone();
            if let Err(reason) = self.apply_miss(batch, miss, c.now_ms)? {
                refused_misses.push((job, reason));
            }
        }
        let mut results = Vec::with_capacity(c.fires.len());
        for fire in c.fires {
            let job = fire.job.clone();
            let scheduled_at_ms = fire.scheduled_at_ms;
            let outcome = self.apply_fire(batch, fire, c.term, c.now_ms)?;
            results.push(FireResult {
                job,
                scheduled_at_ms,
                outcome,
            });
        }
        self.prune_globally(batch, c.global_keep)?;
        Ok(Applied::Fired {
            results,
            refused_misses,
        })
    }

    pub(super) fn apply_miss(
        &mut self,
        batch: &mut Batch,
        miss: ipb::Miss,
        now_ms: i64,
    ) -> Result<Result<(), String>, StorageError> {
        let Some(entry) = self.jobs.get(&miss.job).cloned() else {
            return Ok(Err(format!("job {} no longer exists", miss.job)));
        };
        if miss.job_version != entry.version() {
            return Ok(Err(format!(
                "job {} changed since the miss was planned",
                miss.job
            )));
        }
        if miss.up_to_ms <= entry.record.cursor_ms {
            return Ok(Err(format!(
                "instants of job {} up to {} were already handled",
                miss.job, miss.up_to_ms
            )));
        }
        let mut entry = (*entry).clone();
        entry.record.cursor_ms = miss.up_to_ms;
        let keep = u64::from(entry.spec.history_keep.max(1)) as usize;
        let recorded: Vec<i64> = {
            let mut r: Vec<i64> = miss
                .recorded_ms
                .iter()
                .copied()
                .filter(|at| *at > 0 && *at <= miss.up_to_ms)
                .collect();
            r.sort_unstable();
            r.dedup();
            let skip = r.len().saturating_sub(keep);
            r.split_off(skip)
        };
        let total = miss.total.max(recorded.len() as u64);
        let policy = if miss.policy.is_empty() {
            "run_once".to_string()
        } else {
            miss.policy
        };
        for at in recorded {
            let id = self.next_id(batch);
            self.count_executions(batch, 1);
            let exec = pb::Execution {
                id: id.to_string(),
                job: miss.job.clone(),
                scheduled_at: Some(ts_from_ms(at)),
                attempt: 1,
                trigger: Trigger::Schedule.as_str().to_string(),
                status: word(ExecutionStatus::Missed),
                error: format!(
                    "no leader could fire it in time; misfire policy {policy} did not run it"
                ),
                created_at: Some(ts_from_ms(now_ms)),
                finished_at: Some(ts_from_ms(now_ms)),
                ..Default::default()
            };
            batch.put(Cf::State, keys::job_execution(&miss.job, id), Vec::new());
            self.put_execution(batch, id, &exec);
            entry.record.history_len += 1;
        }
        let status = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job")
            .status
            .get_or_insert_with(Default::default);
        *status
            .outcome_counts
            .entry(word(ExecutionStatus::Missed))
            .or_default() += total;
        status.last_scheduled_at = Some(ts_from_ms(miss.up_to_ms));
        super::machine::note_outcome(
            status,
            &word(ExecutionStatus::Missed),
            Some(ts_from_ms(now_ms)),
        );
        self.prune_history(batch, &mut entry, None)?;
        self.put_record(batch, entry);
        Ok(Ok(()))
    }

    /// One fire: admitted (see [`StateMachine::admit`]), judged against the job's
    /// pause and concurrency ([`StateMachine::judge`]), then started.
    pub(super) fn apply_fire(
        &mut self,
        batch: &mut Batch,
        fire: ipb::Fire,
        term: u64,
        now_ms: i64,
    ) -> Result<Result<FireOutcome, String>, StorageError> {
        let trigger: Trigger = match fire.trigger.parse() {
            Ok(t) => t,
            Err(e) => return Ok(Err(format!("trigger {e}"))),
        };
        let Admitted {
            mut entry,
            previous_attempt,
            lineage,
        } = match self.admit(batch, &fire, trigger)? {
            Ok(admitted) => admitted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let base = pb::Execution {
            job: fire.job.clone(),
            scheduled_at: Some(ts_from_ms(fire.scheduled_at_ms)),
            attempt: fire.attempt.max(1),
            trigger: trigger.as_str().to_string(),
            created_at: Some(ts_from_ms(now_ms)),
            term,
            previous_attempt,
            group: lineage.group,
            parent_execution: lineage.parent_execution,
            backfill: lineage.backfill,
            ..Default::default()
        };
        let mut outcome = FireOutcome::default();
        let blocked = self.judge(
            batch,
            &mut entry,
            &fire,
            trigger,
            &base,
            now_ms,
            &mut outcome,
        )?;
        if !blocked {
            self.start(batch, &mut entry, base, &fire, now_ms, &mut outcome);
        }
        self.prune_history(batch, &mut entry, None)?;
        self.put_record(batch, entry);
        Ok(Ok(outcome))
    }

    /// Whether the fire is still owed, consuming what it stands for: the job exists
    /// at the planned version, and a scheduled or catch-up instant is after the
    /// cursor (which moves to it); a queued start, a pending retry, a dependency
    /// start or a backfill instant is taken (a second fire for it is refused). The
    /// job comes back as it will be stored, with what the new executions inherit.
    fn admit(
        &mut self,
        batch: &mut Batch,
        fire: &ipb::Fire,
        trigger: Trigger,
    ) -> Result<Result<Admitted, String>, StorageError> {
        let Some(entry) = self.jobs.get(&fire.job).cloned() else {
            return Ok(Err(format!("job {} no longer exists", fire.job)));
        };
        if fire.job_version != 0 && fire.job_version != entry.version() {
            return Ok(Err(format!(
                "job {} changed (version {} → {}) since the fire was planned",
                fire.job,
                fire.job_version,
                entry.version()
            )));
        }
        let mut entry = (*entry).clone();
        let mut previous_attempt = String::new();
        let mut lineage = Lineage::default();
        if fire.dequeue {
            match &entry.record.queued {
                Some(q) if q.scheduled_at_ms == fire.scheduled_at_ms => {
                    entry.record.queued = None;
                    if let Some(st) = entry.record.job.as_mut().and_then(|j| j.status.as_mut()) {
                        st.queued_at = None;
                    }
                }
                _ => {
                    return Ok(Err(format!(
                        "job {} has no queued start at {}",
                        fire.job, fire.scheduled_at_ms
                    )));
                }
            }
        } else if trigger == Trigger::Retry {
            let key = self
                .retries
                .iter()
                .find(|(_, r)| r.retry_of == fire.retry_of)
                .map(|(k, _)| *k);
            let Some(key) = key else {
                return Ok(Err(format!(
                    "execution {} has no pending retry",
                    fire.retry_of
                )));
            };
            self.retries.remove(&key);
            batch.delete(Cf::State, keys::retry(key.0, key.1));
            self.changes.retries = true;
            previous_attempt = fire.retry_of.to_string();
            // A retry stays in its attempt's group, dependency and backfill.
            if let Some(prev) = self.load_execution(batch, fire.retry_of)? {
                lineage = Lineage {
                    group: prev.group,
                    parent_execution: prev.parent_execution,
                    backfill: prev.backfill,
                };
            }
        } else if trigger == Trigger::Dependency {
            if let Err(reason) = self.take_dependency(batch, fire.parent_execution, &fire.job) {
                return Ok(Err(reason));
            }
            lineage.parent_execution = fire.parent_execution.to_string();
        } else if trigger == Trigger::Backfill {
            if let Err(reason) =
                self.take_backfill_instant(batch, fire.backfill, &fire.job, fire.scheduled_at_ms)
            {
                return Ok(Err(reason));
            }
            lineage.backfill = fire.backfill.to_string();
        } else if matches!(trigger, Trigger::Schedule | Trigger::Catchup) {
            if fire.scheduled_at_ms <= entry.record.cursor_ms {
                return Ok(Err(format!(
                    "instant {} of job {} was already handled",
                    fire.scheduled_at_ms, fire.job
                )));
            }
            entry.record.cursor_ms = fire.scheduled_at_ms;
            if let Some(st) = entry.record.job.as_mut().and_then(|j| j.status.as_mut()) {
                st.last_scheduled_at = Some(ts_from_ms(fire.scheduled_at_ms));
            }
        }
        Ok(Ok(Admitted {
            entry,
            previous_attempt,
            lineage,
        }))
    }

    /// Whether an admitted fire may start now: a paused job skips scheduled work
    /// (manual runs and retries go on); while the job runs, its concurrency decides
    /// (`forbid` skips, `queue` keeps one start waiting, `replace` cancels what runs;
    /// backfills and dequeued starts are not judged). Records what it decided in
    /// `outcome`; true when the fire is not to start.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        fire: &ipb::Fire,
        trigger: Trigger,
        base: &pb::Execution,
        now_ms: i64,
        outcome: &mut FireOutcome,
    ) -> Result<bool, StorageError> {
        let paused_skip = entry.spec.paused
            && matches!(
                trigger,
                Trigger::Schedule | Trigger::Catchup | Trigger::Dependency
            );
        let active = self.active_of(&fire.job);
        if paused_skip {
            let exec = self.record_final(
                batch,
                entry,
                base.clone(),
                ExecutionStatus::SkippedPaused,
                "the job is paused".into(),
                now_ms,
            );
            outcome.executions.push(exec);
        } else if !active.is_empty() && !fire.dequeue && trigger != Trigger::Backfill {
            match entry.spec.concurrency {
                Concurrency::Allow => {}
                Concurrency::Forbid => {
                    let exec = self.record_final(
                        batch,
                        entry,
                        base.clone(),
                        ExecutionStatus::SkippedOverlap,
                        format!(
                            "execution {} was still running (concurrency: forbid)",
                            active
                                .iter()
                                .map(|a| a.id.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        now_ms,
                    );
                    outcome.executions.push(exec);
                }
                Concurrency::Queue => {
                    if entry.record.queued.is_none() {
                        entry.record.queued = Some(ipb::QueuedStart {
                            scheduled_at_ms: fire.scheduled_at_ms,
                            trigger: trigger.as_str().to_string(),
                            attempt: fire.attempt.max(1),
                        });
                        if let Some(st) = entry.record.job.as_mut().and_then(|j| j.status.as_mut())
                        {
                            st.queued_at = Some(ts_from_ms(fire.scheduled_at_ms));
                        }
                        outcome.queued = true;
                    } else {
                        let exec = self.record_final(
                            batch,
                            entry,
                            base.clone(),
                            ExecutionStatus::SkippedOverlap,
                            "a start is already queued behind the running execution (concurrency: queue)".into(),
                            now_ms,
                        );
                        outcome.executions.push(exec);
                    }
                }
                Concurrency::Replace => {
                    for a in active {
                        if let Some(mut old) = self.load_execution(batch, a.id.0)? {
                            let cancelled_by = format!(
                                "replaced by a new start of the job (instant {})",
                                crate::time::dt_from_ms(fire.scheduled_at_ms)
                                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                            );
                            self.finish(
                                batch,
                                entry,
                                a.id.0,
                                &mut old,
                                ExecutionStatus::Cancelled,
                                cancelled_by,
                                now_ms,
                            );
                        }
                        outcome.cancels.push(a);
                    }
                }
            }
        }
        Ok(paused_skip || outcome.queued || !outcome.executions.is_empty())
    }

    /// Creates the executions of a fire that starts: one per chosen executor, or a
    /// `no_target` record.
    pub(super) fn start(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        base: pb::Execution,
        fire: &ipb::Fire,
        now_ms: i64,
        outcome: &mut FireOutcome,
    ) {
        if fire.executors.is_empty() {
            let reason = if fire.no_target_reason.is_empty() {
                "no executor matches the job's target".to_string()
            } else {
                fire.no_target_reason.clone()
            };
            let exec = self.record_final(
                batch,
                entry,
                base,
                ExecutionStatus::NoTarget,
                reason,
                now_ms,
            );
            outcome.executions.push(exec);
            return;
        }
        let start_at_ms = if fire.start_at_ms > 0 {
            fire.start_at_ms
        } else {
            fire.scheduled_at_ms.max(now_ms)
        };
        // A fan-out fire is one group, named after its first execution.
        let group = if !base.group.is_empty() {
            base.group.clone()
        } else if fire.group || fire.executors.len() > 1 {
            self.next_execution_id.to_string()
        } else {
            String::new()
        };
        for (i, executor) in fire.executors.iter().enumerate() {
            let id = self.next_id(batch);
            self.count_executions(batch, 1);
            let exec = pb::Execution {
                id: id.to_string(),
                executor: executor.clone(),
                executor_boot: fire.executor_boots.get(i).cloned().unwrap_or_default(),
                status: word(ExecutionStatus::Pending),
                group: group.clone(),
                ..base.clone()
            };
            let st = entry
                .record
                .job
                .as_mut()
                .expect("invariant: records hold a job")
                .status
                .get_or_insert_with(Default::default);
            st.running += 1;
            batch.put(Cf::State, keys::active(id), fire.job.as_bytes().to_vec());
            self.activate(
                id,
                ActiveExecution {
                    id: ExecutionId(id),
                    job: fire.job.clone(),
                    executor: ExecutorId::from(executor.as_str()),
                    scheduled_at_ms: fire.scheduled_at_ms,
                    attempt: exec.attempt,
                    backfill: fire.backfill,
                },
            );
            self.changes.active = true;
            batch.put(Cf::State, keys::job_execution(&fire.job, id), Vec::new());
            self.put_execution(batch, id, &exec);
            entry.record.history_len += 1;
            outcome.dispatches.push(Dispatch {
                id: ExecutionId(id),
                assignment: assignment_for(entry, &exec, start_at_ms, fire.max_output_bytes),
                execution: exec.clone(),
            });
            outcome.executions.push(exec);
        }
    }

    /// Writes a new execution that is final at once (skipped, missed, no target).
    pub(super) fn record_final(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        base: pb::Execution,
        status: ExecutionStatus,
        error: String,
        now_ms: i64,
    ) -> pb::Execution {
        let id = self.next_id(batch);
        self.count_executions(batch, 1);
        let exec = pb::Execution {
            id: id.to_string(),
            status: word(status),
            error,
            finished_at: Some(ts_from_ms(now_ms)),
            ..base
        };
        let st = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job")
            .status
            .get_or_insert_with(Default::default);
        *st.outcome_counts.entry(exec.status.clone()).or_default() += 1;
        super::machine::note_outcome(st, &exec.status, exec.finished_at);
        batch.put(Cf::State, keys::job_execution(&exec.job, id), Vec::new());
        self.put_execution(batch, id, &exec);
        entry.record.history_len += 1;
        exec
    }
}
