//! Bounded history: a job keeps its newest `history.keep` finished executions (and
//! those still running); across all jobs at most `--max-executions` are stored.
//!
//! Clearing a job's history (`ClearHistory`, Dkron's `DELETE /v1/jobs/{job}/executions`)
//! deletes every finished execution of the job and forgets its outcome counts and its
//! last outcome, in one apply. Invariants: an execution still running (or committed
//! ahead of its instant) is never deleted, so its report still lands on a record and
//! the instant still ends with exactly one outcome; the job's cursor and version are
//! untouched, so what fires next is the same as if nothing had been cleared.

use kairos_proto::internal as ipb;

use super::machine::StateMachine;
use super::records::decode_execution;
use super::{Applied, JobEntry, PutResult, keys};
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};

/// Executions deleted by the global cap in one apply, at most.
const MAX_GLOBAL_PRUNE: usize = 1000;

impl StateMachine {
    /// Deletes every finished execution of a job and forgets its outcome counts and
    /// last outcome.
    pub(super) fn apply_clear_history(
        &mut self,
        batch: &mut Batch,
        c: ipb::ClearHistory,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(entry) = self.jobs.get(&c.job).cloned() else {
            return Ok(Err(Error::NotFound(format!("job {}", c.job))));
        };
        let mut entry = (*entry).clone();
        self.drop_finished_beyond(batch, &mut entry, 0, None)?;
        let job = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job");
        if let Some(status) = job.status.as_mut() {
            status.outcome_counts.clear();
            status.last_outcome.clear();
            status.last_finished_at = None;
            status.last_success_at = None;
            status.last_failure_at = None;
        }
        let job = job.clone();
        self.put_record(batch, entry);
        Ok(Ok(Applied::Job {
            job: Box::new(job),
            result: PutResult::Updated,
            cancels: Vec::new(),
        }))
    }

    /// Deletes the job's oldest finished executions beyond `history.keep`.
    /// `spare` is an execution that just finished: never the one pruned, so a result
    /// is not dropped the moment it arrives (it goes with the next addition).
    pub(super) fn prune_history(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        spare: Option<u64>,
    ) -> Result<(), StorageError> {
        let keep = u64::from(entry.spec.history_keep.max(1));
        self.drop_finished_beyond(batch, entry, keep, spare)
    }

    /// Deletes the job's oldest finished executions beyond the newest `keep`
    /// (0: all of them), never `spare`.
    fn drop_finished_beyond(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        keep: u64,
        spare: Option<u64>,
    ) -> Result<(), StorageError> {
        // `keep` counts finished executions: running ones are never pruned and do not
        // push newer finished ones out.
        let name = entry.name().to_string();
        let active_here = self.active_by_job.get(&name).map_or(0, |ids| ids.len());
        let finished = entry.record.history_len.saturating_sub(active_here as u64);
        if finished <= keep {
            return Ok(());
        }
        let excess = (finished - keep) as usize;
        let prefix = keys::job_executions_prefix(&name);
        let oldest = batch.scan_prefix(&self.db, Cf::State, &prefix, excess + active_here + 1)?;
        let mut removed = 0u64;
        for (key, _) in oldest {
            if removed as usize >= excess {
                break;
            }
            let id =
                keys::id_suffix(&key).ok_or_else(|| StorageError::corrupt("job execution key"))?;
            if self.active.contains_key(&id) || spare == Some(id) {
                continue;
            }
            batch.delete(Cf::State, key);
            batch.delete(Cf::State, keys::execution(id));
            self.count_executions(batch, -1);
            removed += 1;
        }
        entry.record.history_len -= removed;
        Ok(())
    }

    /// Deletes the oldest finished executions across all jobs while more than
    /// `global_keep` are stored (at most `MAX_GLOBAL_PRUNE` per call).
    pub(super) fn prune_globally(
        &mut self,
        batch: &mut Batch,
        global_keep: u64,
    ) -> Result<(), StorageError> {
        if global_keep == 0 || self.execution_count <= global_keep {
            return Ok(());
        }
        let excess = ((self.execution_count - global_keep) as usize).min(MAX_GLOBAL_PRUNE);
        let oldest = batch.scan_prefix(
            &self.db,
            Cf::State,
            keys::EXECUTION_PREFIX,
            excess + self.active.len(),
        )?;
        let mut removed = 0usize;
        for (key, value) in oldest {
            if removed >= excess {
                break;
            }
            let Some(id) = keys::id_suffix(&key) else {
                continue;
            };
            if self.active.contains_key(&id) {
                continue;
            }
            let exec = decode_execution(&value)?;
            batch.delete(Cf::State, key);
            batch.delete(Cf::State, keys::job_execution(&exec.job, id));
            self.count_executions(batch, -1);
            if let Some(entry) = self.jobs.get(&exec.job).cloned() {
                let mut entry = (*entry).clone();
                entry.record.history_len = entry.record.history_len.saturating_sub(1);
                self.put_record(batch, entry);
            }
            removed += 1;
        }
        Ok(())
    }
}
