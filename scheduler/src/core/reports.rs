//! Executors' reports: started and finished become commands; a finished attempt
//! that may be retried gets its retry's due time here (backoff with jitter), since
//! apply may not read a clock or draw a random number; webhooks after commit.

use kairos_common::ids::ExecutionId;
use kairos_common::job::NotifyEvent;
use kairos_common::status::{ExecutionStatus, Trigger};
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
                    if e.trigger == Trigger::Schedule.as_str()
                        && let Some(instant) = e.scheduled_at.as_ref().map(ms_from_ts)
                    {
                        self.metrics
                            .lateness((started_at_ms - instant) as f64 / 1000.0);
                    }
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
        let retrying = c.retry_at_ms > 0;
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
                    if retrying {
                        self.metrics.retry_scheduled();
                    }
                }
                if let Some(e) = &e {
                    self.metrics.finished(&e.status, &e.trigger);
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
        now_ms(self.clock.as_ref())
            + retry_delay_ms(&entry.spec.retry, attempt + 1, rand::random::<f64>())
    }
}

/// The wait before attempt `next` of a retry policy: its backoff doubled for each
/// attempt after the second, capped at `max_backoff`, times a jitter of ±20%
/// (`unit` in [0, 1) picks where in that range), at least 1 ms. The jitter keeps
/// the retries of many jobs that failed together from all landing at once.
pub(super) fn retry_delay_ms(
    policy: &kairos_common::job::RetryPolicy,
    next: u32,
    unit: f64,
) -> i64 {
    let delay = policy.delay_before(next);
    let jitter = 0.8 + unit.clamp(0.0, 1.0) * 0.4;
    ((delay.as_millis() as f64 * jitter) as i64).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_delay_ms;

    #[test]
    fn the_delay_doubles_to_the_cap_within_twenty_percent() {
        let policy = kairos_common::job::RetryPolicy {
            max_attempts: 6,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        };
        // (next attempt, nominal delay)
        for (next, nominal) in [(2, 2_000), (3, 4_000), (4, 5_000), (5, 5_000)] {
            assert_eq!(
                retry_delay_ms(&policy, next, 0.0),
                nominal * 8 / 10,
                "attempt {next}"
            );
            assert_eq!(
                retry_delay_ms(&policy, next, 0.5),
                nominal,
                "attempt {next}"
            );
            assert_eq!(
                retry_delay_ms(&policy, next, 1.0),
                nominal * 12 / 10,
                "attempt {next}"
            );
        }
        // Jitter outside [0, 1] is clamped, and a zero backoff still waits 1 ms.
        assert_eq!(retry_delay_ms(&policy, 2, 7.0), 2_400);
        let instant = kairos_common::job::RetryPolicy {
            max_attempts: 3,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        assert_eq!(retry_delay_ms(&instant, 2, 0.5), 1);
    }
}
