//! Execution reports: started, finished (with the retry it may schedule, the
//! children it may start, an ephemeral job it may end), and cancellation; and
//! `finish`, the one way an active execution becomes final.

use kairos_common::status::ExecutionStatus;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::machine::{Applied, StateMachine};
use super::records::{parse_status, word};
use super::{JobEntry, keys};
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};
use crate::time::ts_from_ms;

impl StateMachine {
    pub(super) fn apply_started(
        &mut self,
        batch: &mut Batch,
        c: ipb::ExecutionStarted,
    ) -> Result<Applied, StorageError> {
        let Some(mut exec) = self.load_execution(batch, c.id)? else {
            return Ok(Applied::Execution(None));
        };
        if exec.status == ExecutionStatus::Pending.as_str() {
            exec.status = word(ExecutionStatus::Running);
            exec.started_at = Some(ts_from_ms(c.started_at_ms));
            if !c.executor.is_empty() {
                exec.executor = c.executor;
            }
            self.put_execution(batch, c.id, &exec);
        }
        Ok(Applied::Execution(Some(Box::new(exec))))
    }

    pub(super) fn apply_finished(
        &mut self,
        batch: &mut Batch,
        c: ipb::ExecutionFinished,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let status: ExecutionStatus = match c.status.parse::<ExecutionStatus>() {
            Ok(s) if s.is_final() => s,
            _ => {
                return Ok(Err(Error::invalid(
                    "status",
                    format!("{:?} is not a final status", c.status),
                )));
            }
        };
        let Some(mut exec) = self.load_execution(batch, c.id)? else {
            return Ok(Ok(Applied::Execution(None)));
        };
        let current = parse_status(&exec.status, c.id)?;
        if current.is_final() {
            // The first final outcome stands. When the process really ran after all
            // (its lease had expired, or a pause or cancel did not reach it in time),
            // what it did is kept as a late result.
            // (A `cancelled` report means the executor dropped or killed it: nothing to add.)
            let ran = status.ran_to_an_end();
            if exec.late_status.is_empty() && status != current && ran {
                exec.late_status = word(status);
                exec.exit_code = c.exit_code;
                exec.output = c.output;
                exec.output_truncated = c.output_truncated;
                if exec.started_at.is_none() && c.started_at_ms != 0 {
                    exec.started_at = Some(ts_from_ms(c.started_at_ms));
                }
                self.put_execution(batch, c.id, &exec);
            }
            return Ok(Ok(Applied::Execution(Some(Box::new(exec)))));
        }
        let Some(entry) = self.jobs.get(&exec.job).cloned() else {
            // An execution outliving its job cannot happen (delete removes both).
            return Ok(Ok(Applied::Execution(None)));
        };
        let mut entry = (*entry).clone();
        exec.exit_code = c.exit_code;
        exec.output = c.output;
        exec.output_truncated = c.output_truncated;
        if exec.started_at.is_none() && c.started_at_ms != 0 {
            exec.started_at = Some(ts_from_ms(c.started_at_ms));
        }
        exec.finished_at = Some(ts_from_ms(c.finished_at_ms));
        if !c.executor.is_empty() {
            exec.executor = c.executor;
        }
        self.finish(
            batch,
            &mut entry,
            c.id,
            &mut exec,
            status,
            c.error,
            c.finished_at_ms,
        );

        let retryable = status.is_failure();
        let retrying =
            retryable && c.retry_at_ms > 0 && exec.attempt < entry.spec.retry.max_attempts;
        self.prune_history(batch, &mut entry, Some(c.id))?;
        let ephemeral_done = status == ExecutionStatus::Succeeded
            && entry.spec.ephemeral
            && !self.children.contains_key(&exec.job);
        if retrying {
            let id = c.id;
            let record = ipb::RetryRecord {
                job: exec.job.clone(),
                scheduled_at_ms: exec
                    .scheduled_at
                    .as_ref()
                    .map(crate::time::ms_from_ts)
                    .unwrap_or(0),
                attempt: exec.attempt + 1,
                trigger: exec.trigger.clone(),
                retry_of: id,
                previous_executor: exec.executor.clone(),
                due_ms: c.retry_at_ms,
            };
            batch.put(
                Cf::State,
                keys::retry(c.retry_at_ms, id),
                record.encode_to_vec(),
            );
            self.retries.insert((c.retry_at_ms, id), record);
            self.changes.retries = true;
        }
        self.put_record(batch, entry);
        if !retrying {
            self.settle(batch, c.id, &exec)?;
        }
        if ephemeral_done {
            // An ephemeral job has done its work (jobs that others depend on stay).
            self.delete_one_job(batch, &exec.job)?;
        }
        Ok(Ok(Applied::Execution(Some(Box::new(exec)))))
    }

    pub(super) fn apply_cancel(
        &mut self,
        batch: &mut Batch,
        c: ipb::CancelExecution,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(mut exec) = self.load_execution(batch, c.id)? else {
            return Ok(Err(Error::NotFound(format!("execution {}", c.id))));
        };
        let Some(active) = self.active.get(&c.id).cloned() else {
            return Ok(Err(Error::FailedPrecondition(format!(
                "execution {} already ended ({})",
                c.id, exec.status
            ))));
        };
        let Some(entry) = self.jobs.get(&exec.job).cloned() else {
            return Ok(Err(Error::NotFound(format!("job {}", exec.job))));
        };
        let mut entry = (*entry).clone();
        let reason = if c.reason.is_empty() {
            "cancelled on request".to_string()
        } else {
            c.reason
        };
        self.finish(
            batch,
            &mut entry,
            c.id,
            &mut exec,
            ExecutionStatus::Cancelled,
            reason,
            c.now_ms,
        );
        self.put_record(batch, entry);
        Ok(Ok(Applied::Cancelled {
            execution: Box::new(exec),
            active,
        }))
    }

    /// Makes active execution `id` final and updates its job's figures.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        id: u64,
        exec: &mut pb::Execution,
        status: ExecutionStatus,
        error: String,
        now_ms: i64,
    ) {
        exec.status = word(status);
        if !error.is_empty() {
            exec.error = error;
        }
        if exec.finished_at.is_none() {
            exec.finished_at = Some(ts_from_ms(now_ms));
        }
        self.put_execution(batch, id, exec);
        if self.deactivate(id).is_some() {
            batch.delete(Cf::State, keys::active(id));
            self.changes.active = true;
        }
        let st = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job")
            .status
            .get_or_insert_with(Default::default);
        st.running = st.running.saturating_sub(1);
        *st.outcome_counts.entry(exec.status.clone()).or_default() += 1;
        super::machine::note_outcome(st, &exec.status, exec.finished_at);
    }
}
