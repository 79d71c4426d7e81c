//! Applying commands: the only code that changes replicated state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kairos_common::status::{ExecutionStatus, Trigger};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::view::StateView;
use super::{ActiveExecution, JobEntry, keys};
use crate::Error;
use crate::storage::{Batch, Cf, Db, StorageError};
use crate::time::ts_from_ms;

/// What `PutJob` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutResult {
    Created,
    Updated,
    Unchanged,
}

impl PutResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PutResult::Created => "created",
            PutResult::Updated => "updated",
            PutResult::Unchanged => "unchanged",
        }
    }
}

/// An execution to hand to an executor, built in apply from committed state.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub execution: pb::Execution,
    pub assignment: pb::Assignment,
}

/// The fate of one fire of a batch.
#[derive(Debug, Clone)]
pub struct FireResult {
    pub job: String,
    pub scheduled_at_ms: i64,
    /// The executions created (a no_target record has no dispatch), or why the fire
    /// was refused.
    pub outcome: Result<FireOutcome, String>,
}

#[derive(Debug, Clone, Default)]
pub struct FireOutcome {
    /// Every execution recorded for the fire.
    pub executions: Vec<pb::Execution>,
    /// Those among them to send to executors.
    pub dispatches: Vec<Dispatch>,
}

/// What applying a command produced, for its proposer.
#[derive(Debug, Clone)]
pub enum Applied {
    Job {
        job: Box<pb::Job>,
        result: PutResult,
    },
    /// A deleted job; the executions it still had running, to cancel.
    JobDeleted {
        cancelled: Vec<ActiveExecution>,
    },
    Fired(Vec<FireResult>),
    /// The execution after the change (None: it no longer exists).
    Execution(Option<Box<pb::Execution>>),
    /// The address book after the change.
    Members(BTreeMap<u64, String>),
}

/// Applies committed commands to RocksDB and the in-memory job table.
pub struct StateMachine {
    db: Arc<Db>,
    view: Arc<StateView>,
    /// Schedulers' addresses (replicated); published to the transport's book.
    members: BTreeMap<u64, String>,
    members_changed: bool,
    book: crate::raft::AddressBook,
    jobs: BTreeMap<String, Arc<JobEntry>>,
    active: BTreeMap<u64, ActiveExecution>,
    applied: u64,
    next_execution_id: u64,
    /// Jobs changed since the last publish (None value = deleted).
    changed_jobs: BTreeSet<String>,
    active_changed: bool,
    /// Executions changed since the last publish, for watchers.
    changed_executions: Vec<pb::Execution>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("applied", &self.applied)
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

fn decode_job_record(bytes: &[u8]) -> Result<JobEntry, StorageError> {
    let record = ipb::JobRecord::decode(bytes)
        .map_err(|e| StorageError::corrupt(format!("job record: {e}")))?;
    let job = record
        .job
        .as_ref()
        .ok_or_else(|| StorageError::corrupt("job record without a job"))?;
    // Stored jobs were validated when written; failing now means a newer version
    // wrote them or the disk is damaged.
    let spec = kairos_common::job::validate(job).map_err(|e| {
        StorageError::corrupt(format!(
            "stored job {:?} no longer validates: {e}",
            job.name
        ))
    })?;
    Ok(JobEntry { record, spec })
}

pub(crate) fn decode_execution(bytes: &[u8]) -> Result<pb::Execution, StorageError> {
    pb::Execution::decode(bytes).map_err(|e| StorageError::corrupt(format!("execution: {e}")))
}

/// The document without its output-only fields, for "did anything change".
fn spec_of(job: &pb::Job) -> pb::Job {
    pb::Job {
        version: 0,
        created_at: None,
        updated_at: None,
        status: None,
        ..job.clone()
    }
}

fn status_word(s: ExecutionStatus) -> String {
    s.as_str().to_string()
}

impl StateMachine {
    /// Loads the state from disk and publishes it to `view` (and its member
    /// addresses to `book`).
    pub fn open(
        db: Arc<Db>,
        view: Arc<StateView>,
        book: crate::raft::AddressBook,
    ) -> Result<StateMachine, StorageError> {
        let mut sm = StateMachine {
            db,
            view,
            members: BTreeMap::new(),
            members_changed: false,
            book,
            jobs: BTreeMap::new(),
            active: BTreeMap::new(),
            applied: 0,
            next_execution_id: 1,
            changed_jobs: BTreeSet::new(),
            active_changed: false,
            changed_executions: Vec::new(),
        };
        sm.load()?;
        Ok(sm)
    }

    /// (Re)loads everything from disk and publishes it.
    fn load(&mut self) -> Result<(), StorageError> {
        let db = self.db.clone();
        let applied = db
            .get(Cf::State, keys::APPLIED)?
            .map(|b| keys::decode_u64(&b).ok_or_else(|| StorageError::corrupt("applied index")))
            .transpose()?
            .unwrap_or(0);
        let next_execution_id = db
            .get(Cf::State, keys::NEXT_EXECUTION_ID)?
            .map(|b| keys::decode_u64(&b).ok_or_else(|| StorageError::corrupt("execution counter")))
            .transpose()?
            .unwrap_or(1);
        let mut jobs = BTreeMap::new();
        for (_, value) in db.scan_prefix(Cf::State, keys::JOB_PREFIX, false, None, usize::MAX)? {
            let entry = decode_job_record(&value)?;
            jobs.insert(entry.name().to_string(), Arc::new(entry));
        }
        let mut active = BTreeMap::new();
        for (key, value) in
            db.scan_prefix(Cf::State, keys::ACTIVE_PREFIX, false, None, usize::MAX)?
        {
            let id = keys::id_suffix(&key).ok_or_else(|| StorageError::corrupt("active key"))?;
            let exec = db
                .get(Cf::State, &keys::execution(id))?
                .map(|b| decode_execution(&b))
                .transpose()?;
            let executor = exec.map(|e| e.executor).unwrap_or_default();
            let job =
                String::from_utf8(value).map_err(|_| StorageError::corrupt("active job name"))?;
            active.insert(id, ActiveExecution { id, job, executor });
        }
        let members = match db.get(Cf::State, keys::MEMBERS)? {
            Some(b) => ipb::Members::decode(b.as_slice())
                .map_err(|e| StorageError::corrupt(format!("members: {e}")))?
                .addrs
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        // Jobs that vanished (a snapshot replaced the state) must be unpublished too.
        let mut changed_jobs: BTreeSet<String> = self.jobs.keys().cloned().collect();
        changed_jobs.extend(jobs.keys().cloned());
        self.jobs = jobs;
        self.active = active;
        self.applied = applied;
        self.next_execution_id = next_execution_id;
        self.members = members;
        self.members_changed = true;
        self.changed_jobs = changed_jobs;
        self.active_changed = true;
        crate::raft::StateMachine::publish(self);
        Ok(())
    }

    /// The replicated address book.
    pub fn members(&self) -> &BTreeMap<u64, String> {
        &self.members
    }

    fn put_members(&mut self, batch: &mut Batch) {
        let encoded = ipb::Members {
            addrs: self.members.clone().into_iter().collect(),
        }
        .encode_to_vec();
        batch.put(Cf::State, keys::MEMBERS.to_vec(), encoded);
        self.members_changed = true;
    }

    fn put_record(&mut self, batch: &mut Batch, entry: JobEntry) {
        let name = entry.name().to_string();
        batch.put(Cf::State, keys::job(&name), entry.record.encode_to_vec());
        self.changed_jobs.insert(name.clone());
        self.jobs.insert(name, Arc::new(entry));
    }

    fn put_execution(&mut self, batch: &mut Batch, exec: &pb::Execution, id: u64) {
        batch.put(Cf::State, keys::execution(id), exec.encode_to_vec());
        self.changed_executions.push(exec.clone());
    }

    fn apply_put_job(
        &mut self,
        batch: &mut Batch,
        index: u64,
        c: ipb::PutJob,
    ) -> crate::Result<Applied> {
        let doc = c.job.ok_or_else(|| Error::invalid("job", "missing"))?;
        let (normalized, spec) = kairos_common::job::normalize(&doc)?;
        let name = spec.name.as_str().to_string();
        let existing = self.jobs.get(&name).cloned();
        let current_version = existing.as_ref().map(|e| e.version()).unwrap_or(0);
        if let Some(expected) = c.expected_version
            && expected != current_version
        {
            return Err(Error::FailedPrecondition(if current_version == 0 {
                format!("job {name} does not exist (expected version {expected})")
            } else {
                format!("job {name} is at version {current_version}, not {expected}")
            }));
        }
        if let Some(e) = &existing {
            let stored = e
                .record
                .job
                .as_ref()
                .expect("invariant: records hold a job");
            if spec_of(stored) == normalized {
                return Ok(Applied::Job {
                    job: Box::new(stored.clone()),
                    result: PutResult::Unchanged,
                });
            }
        }
        let mut job = normalized;
        job.version = index;
        job.updated_at = Some(ts_from_ms(c.now_ms));
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
                }
                job.status = Some(status);
                // Instants owed under the old schedule are not owed under a new one,
                // and instants that passed while paused are not owed at all.
                let schedule_changed = old.schedule != job.schedule || old.timezone != job.timezone;
                let resumed = old.paused && !job.paused;
                let cursor_ms = if schedule_changed || resumed {
                    e.record.cursor_ms.max(c.now_ms)
                } else {
                    e.record.cursor_ms
                };
                let record = ipb::JobRecord {
                    job: Some(job),
                    history_len: e.record.history_len,
                    cursor_ms,
                };
                (record, PutResult::Updated)
            }
        };
        let job = record.job.clone().expect("invariant: just set");
        self.put_record(batch, JobEntry { record, spec });
        Ok(Applied::Job {
            job: Box::new(job),
            result,
        })
    }

    fn apply_delete_job(
        &mut self,
        batch: &mut Batch,
        c: ipb::DeleteJob,
    ) -> Result<crate::Result<Applied>, StorageError> {
        if !self.jobs.contains_key(&c.name) {
            return Ok(Err(Error::NotFound(format!("job {}", c.name))));
        }
        let prefix = keys::job_executions_prefix(&c.name);
        let mut cancelled = Vec::new();
        for (key, _) in batch.scan_prefix(&self.db, Cf::State, &prefix, usize::MAX)? {
            let id =
                keys::id_suffix(&key).ok_or_else(|| StorageError::corrupt("job execution key"))?;
            batch.delete(Cf::State, key);
            batch.delete(Cf::State, keys::execution(id));
            if let Some(a) = self.active.remove(&id) {
                batch.delete(Cf::State, keys::active(id));
                self.active_changed = true;
                cancelled.push(a);
            }
        }
        batch.delete(Cf::State, keys::job(&c.name));
        self.jobs.remove(&c.name);
        self.changed_jobs.insert(c.name);
        Ok(Ok(Applied::JobDeleted { cancelled }))
    }

    fn apply_set_paused(
        &mut self,
        batch: &mut Batch,
        index: u64,
        c: ipb::SetPaused,
    ) -> crate::Result<Applied> {
        let entry = self
            .jobs
            .get(&c.name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("job {}", c.name)))?;
        let mut entry = (*entry).clone();
        let job = entry
            .record
            .job
            .as_mut()
            .expect("invariant: records hold a job");
        if job.paused == c.paused {
            return Ok(Applied::Job {
                job: Box::new(job.clone()),
                result: PutResult::Unchanged,
            });
        }
        job.paused = c.paused;
        job.version = index;
        job.updated_at = Some(ts_from_ms(c.now_ms));
        let status = job.status.get_or_insert_with(Default::default);
        if c.paused {
            status.paused_reason = if c.reason.is_empty() {
                "paused".into()
            } else {
                c.reason
            };
        } else {
            status.paused_reason.clear();
            entry.record.cursor_ms = entry.record.cursor_ms.max(c.now_ms);
        }
        entry.spec.paused = c.paused;
        let job = job.clone();
        self.put_record(batch, entry);
        Ok(Applied::Job {
            job: Box::new(job),
            result: PutResult::Updated,
        })
    }

    fn apply_fire_batch(
        &mut self,
        batch: &mut Batch,
        c: ipb::FireBatch,
    ) -> Result<Applied, StorageError> {
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
        Ok(Applied::Fired(results))
    }

    fn apply_fire(
        &mut self,
        batch: &mut Batch,
        fire: ipb::Fire,
        term: u64,
        now_ms: i64,
    ) -> Result<Result<FireOutcome, String>, StorageError> {
        let Some(entry) = self.jobs.get(&fire.job).cloned() else {
            return Ok(Err(format!("job {} no longer exists", fire.job)));
        };
        let trigger: Trigger = match fire.trigger.parse() {
            Ok(t) => t,
            Err(e) => return Ok(Err(format!("trigger {e}"))),
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
        let scheduled = matches!(trigger, Trigger::Schedule | Trigger::Catchup);
        if scheduled {
            if fire.scheduled_at_ms <= entry.record.cursor_ms {
                return Ok(Err(format!(
                    "instant {} of job {} was already handled",
                    fire.scheduled_at_ms, fire.job
                )));
            }
            entry.record.cursor_ms = fire.scheduled_at_ms;
        }

        let job_doc = entry
            .record
            .job
            .clone()
            .expect("invariant: records hold a job");
        let mut outcome = FireOutcome::default();
        let targets: Vec<Option<String>> = if fire.executors.is_empty() {
            vec![None]
        } else {
            fire.executors.iter().cloned().map(Some).collect()
        };
        for executor in targets {
            let id = self.next_execution_id;
            self.next_execution_id += 1;
            let mut exec = pb::Execution {
                id: id.to_string(),
                job: fire.job.clone(),
                scheduled_at: Some(ts_from_ms(fire.scheduled_at_ms)),
                attempt: fire.attempt.max(1),
                trigger: trigger.as_str().to_string(),
                executor: executor.clone().unwrap_or_default(),
                created_at: Some(ts_from_ms(now_ms)),
                term,
                ..Default::default()
            };
            let status = entry
                .record
                .job
                .as_mut()
                .expect("invariant")
                .status
                .get_or_insert_with(Default::default);
            if scheduled {
                status.last_scheduled_at = Some(ts_from_ms(fire.scheduled_at_ms));
            }
            match executor {
                None => {
                    exec.status = status_word(ExecutionStatus::NoTarget);
                    exec.error = if fire.no_target_reason.is_empty() {
                        "no executor matches the job's target".into()
                    } else {
                        fire.no_target_reason.clone()
                    };
                    exec.finished_at = Some(ts_from_ms(now_ms));
                    *status
                        .outcome_counts
                        .entry(exec.status.clone())
                        .or_default() += 1;
                    status.last_outcome = exec.status.clone();
                    status.last_finished_at = exec.finished_at;
                }
                Some(executor) => {
                    exec.status = status_word(ExecutionStatus::Pending);
                    status.running += 1;
                    batch.put(Cf::State, keys::active(id), fire.job.as_bytes().to_vec());
                    self.active.insert(
                        id,
                        ActiveExecution {
                            id,
                            job: fire.job.clone(),
                            executor: executor.clone(),
                        },
                    );
                    self.active_changed = true;
                    outcome.dispatches.push(Dispatch {
                        execution: exec.clone(),
                        assignment: assignment_for(&job_doc, &entry, &exec, &fire, term),
                    });
                }
            }
            batch.put(Cf::State, keys::job_execution(&fire.job, id), Vec::new());
            self.put_execution(batch, &exec, id);
            entry.record.history_len += 1;
            outcome.executions.push(exec);
        }
        batch.put(
            Cf::State,
            keys::NEXT_EXECUTION_ID.to_vec(),
            keys::encode_u64(self.next_execution_id),
        );
        self.prune_history(batch, &mut entry)?;
        self.put_record(batch, entry);
        Ok(Ok(outcome))
    }

    /// Deletes the job's oldest finished executions beyond `history.keep`.
    fn prune_history(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
    ) -> Result<(), StorageError> {
        let keep = u64::from(entry.spec.history_keep.max(1));
        if entry.record.history_len <= keep {
            return Ok(());
        }
        let excess = (entry.record.history_len - keep) as usize;
        let name = entry.name().to_string();
        let prefix = keys::job_executions_prefix(&name);
        let active_here = self.active.values().filter(|a| a.job == name).count();
        let oldest = batch.scan_prefix(&self.db, Cf::State, &prefix, excess + active_here)?;
        let mut removed = 0u64;
        for (key, _) in oldest {
            if removed as usize >= excess {
                break;
            }
            let id =
                keys::id_suffix(&key).ok_or_else(|| StorageError::corrupt("job execution key"))?;
            if self.active.contains_key(&id) {
                continue;
            }
            batch.delete(Cf::State, key);
            batch.delete(Cf::State, keys::execution(id));
            removed += 1;
        }
        entry.record.history_len -= removed;
        Ok(())
    }

    fn load_execution(
        &self,
        batch: &Batch,
        id: u64,
    ) -> Result<Option<pb::Execution>, StorageError> {
        batch
            .get(&self.db, Cf::State, &keys::execution(id))?
            .map(|b| decode_execution(&b))
            .transpose()
    }

    fn apply_started(
        &mut self,
        batch: &mut Batch,
        c: ipb::ExecutionStarted,
    ) -> Result<Applied, StorageError> {
        let Some(mut exec) = self.load_execution(batch, c.id)? else {
            return Ok(Applied::Execution(None));
        };
        if exec.status == ExecutionStatus::Pending.as_str() {
            exec.status = status_word(ExecutionStatus::Running);
            exec.started_at = Some(ts_from_ms(c.started_at_ms));
            if !c.executor.is_empty() {
                exec.executor = c.executor;
            }
            self.put_execution(batch, &exec, c.id);
        }
        Ok(Applied::Execution(Some(Box::new(exec))))
    }

    fn apply_finished(
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
        let current: ExecutionStatus = exec
            .status
            .parse()
            .map_err(|e| StorageError::corrupt(format!("execution {}: {e}", c.id)))?;
        if current.is_final() {
            // A late or repeated report: the first final outcome stands.
            return Ok(Ok(Applied::Execution(Some(Box::new(exec)))));
        }
        exec.status = status_word(status);
        exec.exit_code = c.exit_code;
        exec.output = c.output;
        exec.output_truncated = c.output_truncated;
        exec.error = c.error;
        if exec.started_at.is_none() && c.started_at_ms != 0 {
            exec.started_at = Some(ts_from_ms(c.started_at_ms));
        }
        exec.finished_at = Some(ts_from_ms(c.finished_at_ms));
        if !c.executor.is_empty() {
            exec.executor = c.executor;
        }
        self.put_execution(batch, &exec, c.id);
        if self.active.remove(&c.id).is_some() {
            batch.delete(Cf::State, keys::active(c.id));
            self.active_changed = true;
        }
        if let Some(entry) = self.jobs.get(&exec.job).cloned() {
            let mut entry = (*entry).clone();
            let job = entry
                .record
                .job
                .as_mut()
                .expect("invariant: records hold a job");
            let st = job.status.get_or_insert_with(Default::default);
            st.running = st.running.saturating_sub(1);
            *st.outcome_counts.entry(exec.status.clone()).or_default() += 1;
            st.last_outcome = exec.status.clone();
            st.last_finished_at = exec.finished_at;
            self.put_record(batch, entry);
        }
        Ok(Ok(Applied::Execution(Some(Box::new(exec)))))
    }
}

/// The assignment an executor gets for `exec`.
fn assignment_for(
    job: &pb::Job,
    entry: &JobEntry,
    exec: &pb::Execution,
    fire: &ipb::Fire,
    term: u64,
) -> pb::Assignment {
    let action = match &job.action {
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
        timeout_ms: entry
            .spec
            .timeout
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        start_at: Some(ts_from_ms(fire.scheduled_at_ms)),
        term,
        max_output_bytes: fire.max_output_bytes,
    }
}

impl crate::raft::StateMachine for StateMachine {
    type Output = crate::Result<Applied>;

    fn applied_index(&self) -> u64 {
        self.applied
    }

    fn apply(
        &mut self,
        batch: &mut Batch,
        index: u64,
        data: &[u8],
    ) -> Result<Self::Output, StorageError> {
        let cmd = ipb::Command::decode(data)
            .map_err(|e| StorageError::corrupt(format!("command at index {index}: {e}")))?;
        let Some(kind) = cmd.kind else {
            return Err(StorageError::corrupt(format!(
                "command at index {index} has no kind this version knows (written by a newer version?)"
            )));
        };
        use ipb::command::Kind;
        Ok(match kind {
            Kind::PutJob(c) => self.apply_put_job(batch, index, c),
            Kind::DeleteJob(c) => self.apply_delete_job(batch, c)?,
            Kind::SetPaused(c) => self.apply_set_paused(batch, index, c),
            Kind::FireBatch(c) => Ok(self.apply_fire_batch(batch, c)?),
            Kind::ExecutionStarted(c) => Ok(self.apply_started(batch, c)?),
            Kind::ExecutionFinished(c) => self.apply_finished(batch, c)?,
            Kind::SetMemberAddrs(c) => {
                for (id, addr) in c.addrs {
                    if id != 0 && !addr.is_empty() {
                        self.members.insert(id, addr);
                    }
                }
                self.put_members(batch);
                Ok(Applied::Members(self.members.clone()))
            }
        })
    }

    fn apply_member_change(
        &mut self,
        batch: &mut Batch,
        _index: u64,
        change: &crate::raft::MemberChange,
    ) -> Result<(), StorageError> {
        match change {
            crate::raft::MemberChange::Add { id, addr } => {
                if !addr.is_empty() {
                    self.members.insert(*id, addr.clone());
                }
            }
            crate::raft::MemberChange::Remove { id } => {
                self.members.remove(id);
            }
        }
        self.put_members(batch);
        Ok(())
    }

    fn restore(&mut self) -> Result<(), StorageError> {
        self.load()
    }

    fn stage_applied(&mut self, batch: &mut Batch, index: u64) {
        self.applied = index;
        batch.put(Cf::State, keys::APPLIED.to_vec(), keys::encode_u64(index));
    }

    fn publish(&mut self) {
        let changed: Vec<(String, Option<Arc<JobEntry>>)> = std::mem::take(&mut self.changed_jobs)
            .into_iter()
            .map(|name| {
                let entry = self.jobs.get(&name).cloned();
                (name, entry)
            })
            .collect();
        let active = if std::mem::take(&mut self.active_changed) {
            Some(self.active.clone())
        } else {
            None
        };
        let executions = std::mem::take(&mut self.changed_executions);
        if std::mem::take(&mut self.members_changed) {
            for (id, addr) in &self.members {
                self.book.set(*id, addr.clone());
            }
            self.view.set_members(self.members.clone());
        }
        self.view.publish(changed, active, executions);
    }
}
