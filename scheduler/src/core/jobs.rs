//! Jobs: create or update (validated before they reach raft), read, list (paged,
//! filtered), delete, pause and resume, run now, backfill, and schedule previews.

use chrono::{DateTime, Utc};
use kairos_common::clock::Clock;
use kairos_common::job::JobName;
use kairos_common::schedule::Schedule;
use kairos_common::status::{ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::info;

use crate::state::{Applied, PutResult};
use crate::time::{dt_from_ms, ts_from_dt};
use crate::{Error, Result};

use super::{Core, DEFAULT_JOB_PAGE, MAX_PAGE, now_ms, page_size_or, unexpected};

impl Core {
    pub async fn put_job(
        &self,
        job: pb::Job,
        expected_version: Option<u64>,
    ) -> Result<(pb::Job, PutResult)> {
        let (normalized, _) = kairos_common::job::normalize(&job)?;
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

    /// The answer form of a stored job: secret values hidden (every API answer that
    /// carries a job comes through here), read-time fields (the next fire instant)
    /// filled in.
    pub fn decorate(&self, mut job: pb::Job) -> pb::Job {
        kairos_common::job::redact(&mut job);
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
        let after = (!page_token.is_empty()).then_some(page_token);
        // In name order until a page (and one more) matched.
        let mut matched: Vec<std::sync::Arc<crate::state::JobEntry>> = self
            .view
            .jobs_in_order(after)
            .filter(|e| selector.matches(&e.spec.metadata))
            .take(limit + 1)
            .collect();
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

    /// Forgets the job's finished executions, outcome counts and last outcome
    /// (running executions and the cursor stay); see `state::history`.
    pub async fn clear_history(&self, name: &str) -> Result<pb::Job> {
        JobName::parse(name)?;
        self.leader_or_wait().await?;
        let cmd = ipb::command::Kind::ClearHistory(ipb::ClearHistory {
            job: name.to_string(),
        });
        match self.propose(cmd).await? {
            Applied::Job { job, .. } => {
                info!(job = %name, "job history cleared");
                Ok(self.decorate(*job))
            }
            other => Err(unexpected(other)),
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
}
