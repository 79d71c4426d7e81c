//! Jobs: creating, updating (`PutJob`), pausing and resuming (`SetPaused`) and
//! deleting them (`DeleteJob`, with their history, retries, dependency starts and
//! backfills).

use kairos_common::status::{ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;

use super::machine::{Applied, PutResult, StateMachine};
use super::records::spec_of;
use super::{ActiveExecution, JobEntry, keys};
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};
use crate::time::ts_from_ms;

/// Whether a pause asks `exec`'s executor to skip it (if it has not started): a
/// scheduled run still pending. Manual runs, retries and the rest of a paused job go on.
pub fn skipped_by_pause(exec: &pb::Execution) -> bool {
    exec.status == ExecutionStatus::Pending.as_str()
        && (exec.trigger == Trigger::Schedule.as_str() || exec.trigger == Trigger::Catchup.as_str())
}

impl StateMachine {
    pub(super) fn apply_put_job(
        &mut self,
        batch: &mut Batch,
        index: u64,
        c: ipb::PutJob,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(doc) = c.job else {
            return Ok(Err(Error::invalid("job", "missing")));
        };
        let (mut normalized, mut spec) = match kairos_common::job::normalize(&doc) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e.into())),
        };
        let name = spec.name.as_str().to_string();
        // `stored: true` secrets keep the source stored now, in log order: a write
        // racing another sees the one raft applied before it.
        if spec.keeps_stored_secrets() {
            let stored = self.jobs.get(&name).and_then(|e| e.record.job.as_ref());
            if let Err(e) = kairos_common::job::keep_stored_secrets(&mut normalized, stored) {
                return Ok(Err(e.into()));
            }
            spec = match kairos_common::job::validate(&normalized) {
                Ok(spec) => spec,
                Err(e) => return Ok(Err(e.into())),
            };
        }
        let new_parent = spec.parent.as_ref().map(|p| p.name.to_string());
        if let Err(e) = self.check_parent(&name, new_parent.as_deref()) {
            return Ok(Err(e));
        }
        let existing = self.jobs.get(&name).cloned();
        let old_parent = existing
            .as_ref()
            .and_then(|e| e.spec.parent.as_ref())
            .map(|p| p.name.to_string());
        let current_version = existing.as_ref().map(|e| e.version()).unwrap_or(0);
        if let Some(expected) = c.expected_version
            && expected != current_version
        {
            return Ok(Err(Error::FailedPrecondition(if current_version == 0 {
                format!("job {name} does not exist (expected version {expected})")
            } else {
                format!("job {name} is at version {current_version}, not {expected}")
            })));
        }
        if let Some(e) = &existing {
            let stored = e
                .record
                .job
                .as_ref()
                .expect("invariant: records hold a job");
            if spec_of(stored) == normalized {
                return Ok(Ok(Applied::Job {
                    job: Box::new(stored.clone()),
                    result: PutResult::Unchanged,
                    cancels: Vec::new(),
                }));
            }
        }
        let mut job = normalized;
        job.version = index;
        job.updated_at = Some(ts_from_ms(c.now_ms));
        let cancels = Vec::new();
        let (record, result) = match existing {
            None => {
                job.created_at = Some(ts_from_ms(c.now_ms));
                let mut status = pb::JobStatus::default();
                if job.paused {
                    status.paused_reason = "created paused".into();
                }
                job.status = Some(status);
                let record = ipb::JobRecord {
                    job: Some(job),
                    history_len: 0,
                    cursor_ms: c.now_ms,
                    queued: None,
                };
                (record, PutResult::Created)
            }
            Some(e) => {
                let old = e
                    .record
                    .job
                    .as_ref()
                    .expect("invariant: records hold a job");
                job.created_at = old.created_at;
                let mut status = old.status.clone().unwrap_or_default();
                if !job.paused {
                    status.paused_reason.clear();
                } else if status.paused_reason.is_empty() {
                    status.paused_reason = "paused".into();
                }
                let schedule_changed = old.schedule != job.schedule || old.timezone != job.timezone;
                let resumed = old.paused && !job.paused;
                let mut record = ipb::JobRecord {
                    job: None,
                    history_len: e.record.history_len,
                    cursor_ms: e.record.cursor_ms,
                    queued: e.record.queued.clone(),
                };
                // Fires committed ahead of their instant keep the definition they
                // were committed with: their executor may hold them already, so
                // re-firing them under the new one could run an instant twice.
                if schedule_changed || resumed {
                    record.cursor_ms = record.cursor_ms.max(c.now_ms);
                }
                job.status = Some(status);
                record.job = Some(job);
                (record, PutResult::Updated)
            }
        };
        let job = record.job.clone().expect("invariant: just set");
        self.put_record(batch, JobEntry { record, spec });
        self.index_parent(&name, old_parent, new_parent);
        Ok(Ok(Applied::Job {
            job: Box::new(job),
            result,
            cancels,
        }))
    }

    pub(super) fn apply_delete_job(
        &mut self,
        batch: &mut Batch,
        c: ipb::DeleteJob,
    ) -> Result<crate::Result<Applied>, StorageError> {
        if !self.jobs.contains_key(&c.name) {
            return Ok(Err(Error::NotFound(format!("job {}", c.name))));
        }
        let descendants = self.descendants(&c.name);
        if !descendants.is_empty() && !c.cascade {
            return Ok(Err(Error::FailedPrecondition(format!(
                "job {} has dependent jobs ({}); delete them first, or delete with cascade",
                c.name,
                descendants.join(", ")
            ))));
        }
        let mut deleted = vec![c.name.clone()];
        deleted.extend(descendants);
        let mut cancelled = Vec::new();
        for name in &deleted {
            cancelled.extend(self.delete_one_job(batch, name)?);
        }
        Ok(Ok(Applied::JobDeleted { deleted, cancelled }))
    }

    /// Deletes a job with its history, pending retries, dependency starts and
    /// backfills; returns its active executions (to cancel on executors).
    pub(super) fn delete_one_job(
        &mut self,
        batch: &mut Batch,
        name: &str,
    ) -> Result<Vec<ActiveExecution>, StorageError> {
        let prefix = keys::job_executions_prefix(name);
        let mut cancelled = Vec::new();
        for (key, _) in batch.scan_prefix(&self.db, Cf::State, &prefix, usize::MAX)? {
            let id =
                keys::id_suffix(&key).ok_or_else(|| StorageError::corrupt("job execution key"))?;
            batch.delete(Cf::State, key);
            batch.delete(Cf::State, keys::execution(id));
            self.count_executions(batch, -1);
            if let Some(a) = self.deactivate(id) {
                batch.delete(Cf::State, keys::active(id));
                self.changes.active = true;
                cancelled.push(a);
            }
        }
        let retries: Vec<(i64, u64)> = self
            .retries
            .iter()
            .filter(|(_, r)| r.job == name)
            .map(|(k, _)| *k)
            .collect();
        for (due, id) in retries {
            self.retries.remove(&(due, id));
            batch.delete(Cf::State, keys::retry(due, id));
            self.changes.retries = true;
        }
        self.forget_dependencies_of(batch, name);
        self.forget_backfills_of(batch, name);
        let old_parent = self
            .jobs
            .get(name)
            .and_then(|e| e.spec.parent.as_ref())
            .map(|p| p.name.to_string());
        self.index_parent(name, old_parent, None);
        batch.delete(Cf::State, keys::job(name));
        self.jobs.remove(name);
        self.changes.jobs.insert(name.to_string());
        Ok(cancelled)
    }

    pub(super) fn apply_set_paused(
        &mut self,
        batch: &mut Batch,
        index: u64,
        c: ipb::SetPaused,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(entry) = self.jobs.get(&c.name).cloned() else {
            return Ok(Err(Error::NotFound(format!("job {}", c.name))));
        };
        let mut entry = (*entry).clone();
        let job = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job");
        if job.paused == c.paused {
            return Ok(Ok(Applied::Job {
                job: Box::new(job.clone()),
                result: PutResult::Unchanged,
                cancels: Vec::new(),
            }));
        }
        job.paused = c.paused;
        job.version = index;
        job.updated_at = Some(ts_from_ms(c.now_ms));
        let mut cancels = Vec::new();
        if c.paused {
            let status = job.status.get_or_insert_with(Default::default);
            status.paused_reason = if c.reason.is_empty() {
                "paused".into()
            } else {
                c.reason
            };
            // Instants committed ahead that may not have started: only their
            // executor knows, so they stay pending and the leader asks it to skip
            // them if they have not started (they then end `skipped_paused`); one
            // that started goes on and reports what it did.
            for a in self.active_of(&c.name) {
                if a.scheduled_at_ms <= c.now_ms {
                    continue;
                }
                let Some(exec) = self.load_execution(batch, a.id.0)? else {
                    continue;
                };
                if skipped_by_pause(&exec) {
                    cancels.push(a);
                }
            }
        } else {
            job.status
                .get_or_insert_with(Default::default)
                .paused_reason
                .clear();
            entry.record.cursor_ms = entry.record.cursor_ms.max(c.now_ms);
        }
        entry.spec.paused = c.paused;
        let job = entry.record.job.clone().expect("invariant");
        self.put_record(batch, entry);
        Ok(Ok(Applied::Job {
            job: Box::new(job),
            result: PutResult::Updated,
            cancels,
        }))
    }
}
