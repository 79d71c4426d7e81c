//! Executors' reports: started and finished become commands; a finished attempt
//! that may be retried gets its retry's due time here (backoff with jitter), since
//! apply may not read a clock or draw a random number; webhooks after commit.

use kairos_common::ids::ExecutionId;
use kairos_common::job::NotifyEvent;
use kairos_common::status::ExecutionStatus;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::info;

use crate::Result;
use crate::state::Applied;
use crate::time::ms_from_ts;

use super::{Core, now_ms, unexpected};

impl Core {
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
    pub(super) fn notify(
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
                self.executors.note_finished(&executor, ExecutionId(id));
                self.live.end(id);
                if let Some(e) = &e
                    && e.status == reported
                    && e.finished_at.as_ref().map(ms_from_ts) == Some(finished_at_ms)
                {
                    let event = match ExecutionStatus::of(e) {
                        Some(ExecutionStatus::Succeeded) => Some(NotifyEvent::Success),
                        Some(s) if s.is_failure() => Some(NotifyEvent::Failure),
                        _ => None,
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

    pub(super) fn retry_at_ms(&self, c: &ipb::ExecutionFinished) -> i64 {
        let retryable = c
            .status
            .parse::<ExecutionStatus>()
            .is_ok_and(ExecutionStatus::is_failure);
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
}
