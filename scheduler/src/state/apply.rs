//! Applying commands: the only code that changes replicated state. The rules are
//! in the module essay (`state/mod.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kairos_common::status::{Concurrency, ExecutionStatus, Trigger};
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
    /// What the fire recorded, or why it was refused.
    pub outcome: Result<FireOutcome, String>,
}

#[derive(Debug, Clone, Default)]
pub struct FireOutcome {
    /// Every execution recorded for the fire (none when it was queued).
    pub executions: Vec<pb::Execution>,
    /// Those among them to send to executors.
    pub dispatches: Vec<Dispatch>,
    /// Executions to stop on their executors (concurrency replace).
    pub cancels: Vec<ActiveExecution>,
    /// The fire waits for the running execution (concurrency queue).
    pub queued: bool,
}

/// What applying a command produced, for its proposer.
#[derive(Debug, Clone)]
pub enum Applied {
    Job {
        job: Box<pb::Job>,
        result: PutResult,
        /// Executions committed ahead that will not start (to cancel on executors).
        cancels: Vec<ActiveExecution>,
    },
    /// Deleted jobs (the named one first, then its descendants on cascade); the
    /// executions they still had running, to cancel.
    JobDeleted {
        deleted: Vec<String>,
        cancelled: Vec<ActiveExecution>,
    },
    /// A backfill started.
    Backfill { id: u64 },
    Fired {
        results: Vec<FireResult>,
        /// Misses refused (job gone, changed, or instants already handled).
        refused_misses: Vec<(String, String)>,
    },
    /// The execution after the change (None: it no longer exists).
    Execution(Option<Box<pb::Execution>>),
    /// A cancelled execution and where it ran.
    Cancelled {
        execution: Box<pb::Execution>,
        active: ActiveExecution,
    },
    /// The address book after the change.
    Members(BTreeMap<u64, String>),
}

/// Executions deleted by the global cap in one apply, at most.
const MAX_GLOBAL_PRUNE: usize = 1000;

/// Applies committed commands to RocksDB and the in-memory tables.
pub struct StateMachine {
    pub(super) db: Arc<Db>,
    pub(super) view: Arc<StateView>,
    /// Schedulers' addresses (replicated); published to the transport's book.
    pub(super) members: BTreeMap<u64, String>,
    pub(super) members_changed: bool,
    pub(super) book: crate::raft::AddressBook,
    pub(super) jobs: BTreeMap<String, Arc<JobEntry>>,
    pub(super) active: BTreeMap<u64, ActiveExecution>,
    /// Pending retries by (due, retried execution id).
    pub(super) retries: BTreeMap<(i64, u64), ipb::RetryRecord>,
    pub(super) applied: u64,
    pub(super) next_execution_id: u64,
    pub(super) changed_jobs: BTreeSet<String>,
    pub(super) active_changed: bool,
    pub(super) retries_changed: bool,
    /// Executions changed since the last publish, for watchers.
    pub(super) changed_executions: Vec<pb::Execution>,
    /// Jobs by parent: who to start when a parent's run ends.
    pub(super) children: BTreeMap<String, BTreeSet<String>>,
    /// Dependency starts waiting for the leader, by (parent execution, child).
    pub(super) dependencies: BTreeMap<(u64, String), ipb::DependencyRecord>,
    pub(super) dependencies_changed: bool,
    /// Backfills in progress, by id.
    pub(super) backfills: BTreeMap<u64, ipb::BackfillRecord>,
    pub(super) backfills_changed: bool,
    pub(super) next_backfill_id: u64,
    /// Active execution ids by job (the concurrency and history checks of a fire).
    pub(super) active_by_job: BTreeMap<String, BTreeSet<u64>>,
    /// Executions stored across all jobs (for the global cap).
    pub(super) execution_count: u64,
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

pub(super) fn decode_execution(bytes: &[u8]) -> Result<pb::Execution, StorageError> {
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

fn word(s: ExecutionStatus) -> String {
    s.as_str().to_string()
}

fn parse_status(s: &str, id: u64) -> Result<ExecutionStatus, StorageError> {
    s.parse()
        .map_err(|e| StorageError::corrupt(format!("execution {id}: {e}")))
}

fn id_of(exec: &pb::Execution) -> u64 {
    exec.id
        .parse()
        .expect("invariant: execution ids are numbers")
}

/// Whether a pause asks `exec`'s executor to skip it (if it has not started): a
/// scheduled run still pending. Manual runs, retries and the rest of a paused job go on.
pub fn skipped_by_pause(exec: &pb::Execution) -> bool {
    exec.status == ExecutionStatus::Pending.as_str()
        && (exec.trigger == Trigger::Schedule.as_str() || exec.trigger == Trigger::Catchup.as_str())
}

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
            retries: BTreeMap::new(),
            applied: 0,
            next_execution_id: 1,
            changed_jobs: BTreeSet::new(),
            active_changed: false,
            retries_changed: false,
            changed_executions: Vec::new(),
            children: BTreeMap::new(),
            dependencies: BTreeMap::new(),
            dependencies_changed: false,
            backfills: BTreeMap::new(),
            backfills_changed: false,
            next_backfill_id: 1,
            execution_count: 0,
            active_by_job: BTreeMap::new(),
        };
        sm.load()?;
        Ok(sm)
    }

    /// (Re)loads everything from disk and publishes it.
    fn load(&mut self) -> Result<(), StorageError> {
        let db = self.db.clone();
        let u64_key = |key: &[u8], what: &str| -> Result<Option<u64>, StorageError> {
            db.get(Cf::State, key)?
                .map(|b| {
                    keys::decode_u64(&b).ok_or_else(|| StorageError::corrupt(what.to_string()))
                })
                .transpose()
        };
        let applied = u64_key(keys::APPLIED, "applied index")?.unwrap_or(0);
        let next_execution_id = u64_key(keys::NEXT_EXECUTION_ID, "execution counter")?.unwrap_or(1);
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
            let (executor, scheduled_at_ms, attempt, backfill) = exec
                .map(|e| {
                    (
                        e.executor,
                        e.scheduled_at
                            .as_ref()
                            .map(crate::time::ms_from_ts)
                            .unwrap_or(0),
                        e.attempt,
                        e.backfill.parse().unwrap_or(0),
                    )
                })
                .unwrap_or_default();
            let job =
                String::from_utf8(value).map_err(|_| StorageError::corrupt("active job name"))?;
            active.insert(
                id,
                ActiveExecution {
                    id,
                    job,
                    executor,
                    scheduled_at_ms,
                    attempt,
                    backfill,
                },
            );
        }
        let mut retries = BTreeMap::new();
        for (_, value) in db.scan_prefix(Cf::State, keys::RETRY_PREFIX, false, None, usize::MAX)? {
            let r = ipb::RetryRecord::decode(value.as_slice())
                .map_err(|e| StorageError::corrupt(format!("retry: {e}")))?;
            retries.insert((r.due_ms, r.retry_of), r);
        }
        let mut dependencies = BTreeMap::new();
        for (_, value) in
            db.scan_prefix(Cf::State, keys::DEPENDENCY_PREFIX, false, None, usize::MAX)?
        {
            let d = ipb::DependencyRecord::decode(value.as_slice())
                .map_err(|e| StorageError::corrupt(format!("dependency start: {e}")))?;
            dependencies.insert((d.parent_execution, d.child.clone()), d);
        }
        let mut backfills = BTreeMap::new();
        for (_, value) in
            db.scan_prefix(Cf::State, keys::BACKFILL_PREFIX, false, None, usize::MAX)?
        {
            let b = ipb::BackfillRecord::decode(value.as_slice())
                .map_err(|e| StorageError::corrupt(format!("backfill: {e}")))?;
            backfills.insert(b.id, b);
        }
        let next_backfill_id = u64_key(keys::NEXT_BACKFILL_ID, "backfill counter")?.unwrap_or(1);
        let execution_count = u64_key(keys::EXECUTION_COUNT, "execution count")?.unwrap_or(0);
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
        let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, entry) in &jobs {
            if let Some(parent) = &entry.spec.parent {
                children
                    .entry(parent.name.to_string())
                    .or_default()
                    .insert(name.clone());
            }
        }
        self.children = children;
        self.dependencies = dependencies;
        self.dependencies_changed = true;
        self.backfills = backfills;
        self.backfills_changed = true;
        self.next_backfill_id = next_backfill_id;
        self.execution_count = execution_count;
        self.jobs = jobs;
        let mut by_job: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for a in active.values() {
            by_job.entry(a.job.clone()).or_default().insert(a.id);
        }
        self.active_by_job = by_job;
        self.active = active;
        self.retries = retries;
        self.applied = applied;
        self.next_execution_id = next_execution_id;
        self.members = members;
        self.members_changed = true;
        self.changed_jobs = changed_jobs;
        self.active_changed = true;
        self.retries_changed = true;
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

    fn put_execution(&mut self, batch: &mut Batch, exec: &pb::Execution) {
        batch.put(
            Cf::State,
            keys::execution(id_of(exec)),
            exec.encode_to_vec(),
        );
        self.changed_executions.push(exec.clone());
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

    fn next_id(&mut self, batch: &mut Batch) -> u64 {
        let id = self.next_execution_id;
        self.next_execution_id += 1;
        batch.put(
            Cf::State,
            keys::NEXT_EXECUTION_ID.to_vec(),
            keys::encode_u64(self.next_execution_id),
        );
        id
    }

    fn active_of(&self, job: &str) -> Vec<ActiveExecution> {
        self.active_by_job
            .get(job)
            .into_iter()
            .flatten()
            .filter_map(|id| self.active.get(id).cloned())
            .collect()
    }

    fn activate(&mut self, id: u64, a: ActiveExecution) {
        self.active_by_job
            .entry(a.job.clone())
            .or_default()
            .insert(id);
        self.active.insert(id, a);
        self.active_changed = true;
    }

    /// Forgets an active execution (it ended or was removed).
    pub(super) fn deactivate(&mut self, id: u64) -> Option<ActiveExecution> {
        let a = self.active.remove(&id)?;
        if let Some(ids) = self.active_by_job.get_mut(&a.job) {
            ids.remove(&id);
            if ids.is_empty() {
                self.active_by_job.remove(&a.job);
            }
        }
        self.active_changed = true;
        Some(a)
    }

    // ---- jobs ----

    fn apply_put_job(
        &mut self,
        batch: &mut Batch,
        index: u64,
        c: ipb::PutJob,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(doc) = c.job else {
            return Ok(Err(Error::invalid("job", "missing")));
        };
        let (normalized, spec) = match kairos_common::job::normalize(&doc) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e.into())),
        };
        let name = spec.name.as_str().to_string();
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

    fn apply_delete_job(
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
                self.active_changed = true;
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
            self.retries_changed = true;
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
        self.changed_jobs.insert(name.to_string());
        Ok(cancelled)
    }

    /// Keeps the stored count of executions (for the global cap).
    pub(super) fn count_executions(&mut self, batch: &mut Batch, delta: i64) {
        self.execution_count = self.execution_count.saturating_add_signed(delta);
        batch.put(
            Cf::State,
            keys::EXECUTION_COUNT.to_vec(),
            keys::encode_u64(self.execution_count),
        );
    }

    /// Deletes the oldest finished executions across all jobs while more than
    /// `global_keep` are stored (at most `MAX_GLOBAL_PRUNE` per call).
    fn prune_globally(&mut self, batch: &mut Batch, global_keep: u64) -> Result<(), StorageError> {
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

    fn apply_set_paused(
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
                let Some(exec) = self.load_execution(batch, a.id)? else {
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

    // ---- fires ----

    fn apply_fire_batch(
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

    fn apply_miss(
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
            self.put_execution(batch, &exec);
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
        status.last_outcome = word(ExecutionStatus::Missed);
        status.last_finished_at = Some(ts_from_ms(now_ms));
        self.prune_history(batch, &mut entry, None)?;
        self.put_record(batch, entry);
        Ok(Ok(()))
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
        let mut previous_attempt = String::new();
        // (group, parent execution, backfill) of the executions created.
        let mut inherited = (String::new(), String::new(), String::new());
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
            self.retries_changed = true;
            previous_attempt = fire.retry_of.to_string();
            // A retry stays in its attempt's group, dependency and backfill.
            if let Some(prev) = self.load_execution(batch, fire.retry_of)? {
                inherited = (prev.group, prev.parent_execution, prev.backfill);
            }
        } else if trigger == Trigger::Dependency {
            if let Err(reason) = self.take_dependency(batch, fire.parent_execution, &fire.job) {
                return Ok(Err(reason));
            }
            inherited.1 = fire.parent_execution.to_string();
        } else if trigger == Trigger::Backfill {
            if let Err(reason) =
                self.take_backfill_instant(batch, fire.backfill, &fire.job, fire.scheduled_at_ms)
            {
                return Ok(Err(reason));
            }
            inherited.2 = fire.backfill.to_string();
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

        let mut outcome = FireOutcome::default();
        let base = pb::Execution {
            job: fire.job.clone(),
            scheduled_at: Some(ts_from_ms(fire.scheduled_at_ms)),
            attempt: fire.attempt.max(1),
            trigger: trigger.as_str().to_string(),
            created_at: Some(ts_from_ms(now_ms)),
            term,
            previous_attempt,
            group: inherited.0,
            parent_execution: inherited.1,
            backfill: inherited.2,
            ..Default::default()
        };

        // A paused job does not start scheduled work (manual runs and retries go on).
        let paused_skip = entry.spec.paused
            && matches!(
                trigger,
                Trigger::Schedule | Trigger::Catchup | Trigger::Dependency
            );
        let active = self.active_of(&fire.job);
        if paused_skip {
            let exec = self.record_final(
                batch,
                &mut entry,
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
                        &mut entry,
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
                            &mut entry,
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
                        if let Some(mut old) = self.load_execution(batch, a.id)? {
                            let cancelled_by = format!(
                                "replaced by a new start of the job (instant {})",
                                crate::time::dt_from_ms(fire.scheduled_at_ms)
                                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                            );
                            self.finish(
                                batch,
                                &mut entry,
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
        let blocked = paused_skip || outcome.queued || !outcome.executions.is_empty();
        if !blocked {
            self.start(batch, &mut entry, base, &fire, now_ms, &mut outcome);
        }
        self.prune_history(batch, &mut entry, None)?;
        self.put_record(batch, entry);
        Ok(Ok(outcome))
    }

    /// Creates the executions of a fire that starts: one per chosen executor, or a
    /// `no_target` record.
    fn start(
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
                    id,
                    job: fire.job.clone(),
                    executor: executor.clone(),
                    scheduled_at_ms: fire.scheduled_at_ms,
                    attempt: exec.attempt,
                    backfill: fire.backfill,
                },
            );
            self.active_changed = true;
            batch.put(Cf::State, keys::job_execution(&fire.job, id), Vec::new());
            self.put_execution(batch, &exec);
            entry.record.history_len += 1;
            outcome.dispatches.push(Dispatch {
                assignment: assignment_for(entry, &exec, start_at_ms, fire.max_output_bytes),
                execution: exec.clone(),
            });
            outcome.executions.push(exec);
        }
    }

    /// Writes a new execution that is final at once (skipped, missed, no target).
    fn record_final(
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
        st.last_outcome = exec.status.clone();
        st.last_finished_at = exec.finished_at;
        batch.put(Cf::State, keys::job_execution(&exec.job, id), Vec::new());
        self.put_execution(batch, &exec);
        entry.record.history_len += 1;
        exec
    }

    /// Makes an active execution final and updates its job's figures.
    fn finish(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        exec: &mut pb::Execution,
        status: ExecutionStatus,
        error: String,
        now_ms: i64,
    ) {
        let id = id_of(exec);
        exec.status = word(status);
        if !error.is_empty() {
            exec.error = error;
        }
        if exec.finished_at.is_none() {
            exec.finished_at = Some(ts_from_ms(now_ms));
        }
        self.put_execution(batch, exec);
        if self.deactivate(id).is_some() {
            batch.delete(Cf::State, keys::active(id));
            self.active_changed = true;
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
        st.last_outcome = exec.status.clone();
        st.last_finished_at = exec.finished_at;
    }

    /// Deletes the job's oldest finished executions beyond `history.keep`.
    /// `spare` is an execution that just finished: never the one pruned, so a result
    /// is not dropped the moment it arrives (it goes with the next addition).
    fn prune_history(
        &mut self,
        batch: &mut Batch,
        entry: &mut JobEntry,
        spare: Option<u64>,
    ) -> Result<(), StorageError> {
        // `keep` counts finished executions: running ones are never pruned and do not
        // push newer finished ones out.
        let keep = u64::from(entry.spec.history_keep.max(1));
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

    // ---- execution reports ----

    fn apply_started(
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
            self.put_execution(batch, &exec);
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
        let current = parse_status(&exec.status, c.id)?;
        if current.is_final() {
            // The first final outcome stands. When the process really ran after all
            // (its lease had expired, or a pause or cancel did not reach it in time),
            // what it did is kept as a late result.
            // (A `cancelled` report means the executor dropped or killed it: nothing to add.)
            let ran = matches!(
                status,
                ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::TimedOut
            );
            if exec.late_status.is_empty() && status != current && ran {
                exec.late_status = word(status);
                exec.exit_code = c.exit_code;
                exec.output = c.output;
                exec.output_truncated = c.output_truncated;
                if exec.started_at.is_none() && c.started_at_ms != 0 {
                    exec.started_at = Some(ts_from_ms(c.started_at_ms));
                }
                self.put_execution(batch, &exec);
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
            &mut exec,
            status,
            c.error,
            c.finished_at_ms,
        );

        let retryable = matches!(
            status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Lost
        );
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
            self.retries_changed = true;
        }
        self.put_record(batch, entry);
        if !retrying {
            self.settle(batch, &exec)?;
        }
        if ephemeral_done {
            // An ephemeral job has done its work (jobs that others depend on stay).
            self.delete_one_job(batch, &exec.job)?;
        }
        Ok(Ok(Applied::Execution(Some(Box::new(exec)))))
    }

    fn apply_cancel(
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
            Kind::PutJob(c) => self.apply_put_job(batch, index, c)?,
            Kind::DeleteJob(c) => self.apply_delete_job(batch, c)?,
            Kind::SetPaused(c) => self.apply_set_paused(batch, index, c)?,
            Kind::FireBatch(c) => Ok(self.apply_fire_batch(batch, c)?),
            Kind::ExecutionStarted(c) => Ok(self.apply_started(batch, c)?),
            Kind::ExecutionFinished(c) => self.apply_finished(batch, c)?,
            Kind::CancelExecution(c) => self.apply_cancel(batch, c)?,
            Kind::StartBackfill(c) => self.apply_start_backfill(batch, c)?,
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
        let retries = if std::mem::take(&mut self.retries_changed) {
            Some(self.retries.clone())
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
        if std::mem::take(&mut self.dependencies_changed) {
            self.view
                .set_dependencies(self.dependencies.values().cloned().collect());
        }
        if std::mem::take(&mut self.backfills_changed) {
            self.view
                .set_backfills(self.backfills.values().cloned().collect());
        }
        self.view.publish(changed, active, retries, executions);
    }
}
