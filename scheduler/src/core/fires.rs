//! Fires on the leader: planning a fire (choosing executors, writing the choice
//! into the command), committing a batch of them, handing each execution to its
//! executor, and telling executors to stop runs (cancel, replace, pause, delete).

use kairos_common::ids::{ExecutionId, ExecutorId};
use kairos_common::status::{ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::{debug, info, warn};

use crate::Result;
use crate::executors::SendError;
use crate::state::{ActiveExecution, Applied, Dispatch, FireResult};
use crate::time::dt_from_ms;

use super::{Core, now_ms, unexpected};

impl Core {
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
            .map(|e| self.executors.boot_of(e.as_str()))
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
            executors: executors.iter().map(ExecutorId::to_string).collect(),
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
        let missed_instants: Vec<(String, u64)> =
            misses.iter().map(|m| (m.job.clone(), m.total)).collect();
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
        for (job, instants) in &missed_instants {
            if !refused_misses.iter().any(|(refused, _)| refused == job) {
                self.metrics
                    .created_by(ExecutionStatus::Missed.as_str(), "schedule", *instants);
            }
        }
        for (job, reason) in refused_misses {
            debug!(%job, %reason, "miss refused");
        }
        for r in &results {
            match &r.outcome {
                Ok(outcome) => {
                    for e in &outcome.executions {
                        self.metrics.created(&e.status, &e.trigger);
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
        let id = d.id.0;
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
        self.executors.note_assigned(&executor, ExecutionId(id));
    }

    /// Records an attempt as lost (its executor is gone).
    pub async fn finish_lost(
        &self,
        id: ExecutionId,
        executor: &ExecutorId,
        why: &str,
    ) -> Result<()> {
        let now = now_ms(self.clock.as_ref());
        self.report_finished(ipb::ExecutionFinished {
            id: id.0,
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

    /// Asks executors to skip runs of a paused job that they have not started yet;
    /// each ends `skipped_paused` (or, if it had started, with what it did) when its
    /// executor reports. The runs stay tracked until then.
    pub(super) fn skip_unless_started(&self, executions: &[ActiveExecution]) {
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
            self.executors.note_finished(a.executor.as_str(), a.id);
        }
    }

    /// Sends one `CancelAssignment` (see its `if_not_started_status`); an executor
    /// that is gone has nothing to stop.
    pub(super) fn send_cancel(
        &self,
        a: &ActiveExecution,
        reason: &str,
        if_not_started_status: &str,
    ) {
        let msg = pb::SchedulerMessage {
            kind: Some(pb::scheduler_message::Kind::Cancel(pb::CancelAssignment {
                execution_id: a.id.to_string(),
                reason: reason.to_string(),
                if_not_started_status: if_not_started_status.to_string(),
            })),
        };
        if self.executors.send(a.executor.as_str(), msg).is_err() {
            debug!(execution = %a.id, executor = %a.executor, "cancel not delivered: executor gone");
        }
    }
}
