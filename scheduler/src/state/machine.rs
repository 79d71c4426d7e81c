//! The state machine itself: its tables, loading them from disk, the dispatch of
//! each committed command to its family (`jobs`, `fires`, `reports`, `backfill`,
//! `chain`), and publishing what changed to readers once a batch is on disk. The
//! rules are in the module essay (`state/mod.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kairos_common::ids::{ExecutionId, ExecutorId};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::records::{decode_execution, decode_job_record};
use super::view::StateView;
use super::{ActiveExecution, JobEntry, keys};
use crate::storage::{Batch, Cf, Db, StorageError};

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
    pub id: ExecutionId,
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
    /// A token created or revoked.
    Token(Box<ipb::TokenRecord>),
}

/// What applies changed since the last publish: what [`StateMachine`] hands the
/// readers ([`StateView`]) once the batch holding it is on disk.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Jobs written or deleted.
    pub(super) jobs: BTreeSet<String>,
    /// The active executions, pending retries, address book, dependency starts and
    /// backfills are republished whole when they changed at all.
    pub(super) active: bool,
    pub(super) retries: bool,
    pub(super) members: bool,
    pub(super) dependencies: bool,
    pub(super) backfills: bool,
    pub(super) tokens: bool,
    /// Executions written, for watchers.
    pub(super) executions: Vec<pb::Execution>,
}

/// Applies committed commands to RocksDB and the in-memory tables.
pub struct StateMachine {
    pub(super) db: Arc<Db>,
    pub(super) view: Arc<StateView>,
    /// Schedulers' addresses (replicated); published to the transport's book.
    pub(super) members: BTreeMap<u64, String>,
    pub(super) book: crate::raft::AddressBook,
    pub(super) jobs: BTreeMap<String, Arc<JobEntry>>,
    pub(super) active: BTreeMap<u64, ActiveExecution>,
    /// Pending retries by (due, retried execution id).
    pub(super) retries: BTreeMap<(i64, u64), ipb::RetryRecord>,
    pub(super) applied: u64,
    pub(super) next_execution_id: u64,
    /// What changed since the last publish.
    pub(super) changes: Changes,
    /// Jobs by parent: who to start when a parent's run ends.
    pub(super) children: BTreeMap<String, BTreeSet<String>>,
    /// Dependency starts waiting for the leader, by (parent execution, child).
    pub(super) dependencies: BTreeMap<(u64, String), ipb::DependencyRecord>,
    /// Backfills in progress, by id.
    pub(super) backfills: BTreeMap<u64, ipb::BackfillRecord>,
    pub(super) next_backfill_id: u64,
    /// Active execution ids by job (the concurrency and history checks of a fire).
    pub(super) active_by_job: BTreeMap<String, BTreeSet<u64>>,
    /// Executions stored across all jobs (for the global cap).
    pub(super) execution_count: u64,
    /// Bearer tokens by id.
    pub(super) tokens: BTreeMap<String, ipb::TokenRecord>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("applied", &self.applied)
            .field("jobs", &self.jobs.len())
            .finish()
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
            book,
            jobs: BTreeMap::new(),
            active: BTreeMap::new(),
            retries: BTreeMap::new(),
            applied: 0,
            next_execution_id: 1,
            changes: Changes::default(),
            children: BTreeMap::new(),
            dependencies: BTreeMap::new(),
            backfills: BTreeMap::new(),
            next_backfill_id: 1,
            execution_count: 0,
            active_by_job: BTreeMap::new(),
            tokens: BTreeMap::new(),
        };
        sm.load()?;
        Ok(sm)
    }

    /// (Re)loads everything from disk and publishes it.
    pub(super) fn load(&mut self) -> Result<(), StorageError> {
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
                    id: ExecutionId(id),
                    job,
                    executor: ExecutorId(executor),
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
        let mut tokens = BTreeMap::new();
        for (_, value) in db.scan_prefix(Cf::State, keys::TOKEN_PREFIX, false, None, usize::MAX)? {
            let t = ipb::TokenRecord::decode(value.as_slice())
                .map_err(|e| StorageError::corrupt(format!("token: {e}")))?;
            tokens.insert(t.id.clone(), t);
        }
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
        self.changes.dependencies = true;
        self.backfills = backfills;
        self.changes.backfills = true;
        self.tokens = tokens;
        self.changes.tokens = true;
        self.next_backfill_id = next_backfill_id;
        self.execution_count = execution_count;
        self.jobs = jobs;
        let mut by_job: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for a in active.values() {
            by_job.entry(a.job.clone()).or_default().insert(a.id.0);
        }
        self.active_by_job = by_job;
        self.active = active;
        self.retries = retries;
        self.applied = applied;
        self.next_execution_id = next_execution_id;
        self.members = members;
        self.changes.members = true;
        self.changes.jobs = changed_jobs;
        self.changes.active = true;
        self.changes.retries = true;
        crate::raft::StateMachine::publish(self);
        Ok(())
    }

    /// The replicated address book.
    pub fn members(&self) -> &BTreeMap<u64, String> {
        &self.members
    }

    pub(super) fn put_members(&mut self, batch: &mut Batch) {
        let encoded = ipb::Members {
            addrs: self.members.clone().into_iter().collect(),
        }
        .encode_to_vec();
        batch.put(Cf::State, keys::MEMBERS.to_vec(), encoded);
        self.changes.members = true;
    }

    pub(super) fn next_id(&mut self, batch: &mut Batch) -> u64 {
        let id = self.next_execution_id;
        self.next_execution_id += 1;
        batch.put(
            Cf::State,
            keys::NEXT_EXECUTION_ID.to_vec(),
            keys::encode_u64(self.next_execution_id),
        );
        id
    }

    pub(super) fn active_of(&self, job: &str) -> Vec<ActiveExecution> {
        self.active_by_job
            .get(job)
            .into_iter()
            .flatten()
            .filter_map(|id| self.active.get(id).cloned())
            .collect()
    }

    pub(super) fn activate(&mut self, id: u64, a: ActiveExecution) {
        self.active_by_job
            .entry(a.job.clone())
            .or_default()
            .insert(id);
        self.active.insert(id, a);
        self.changes.active = true;
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
        self.changes.active = true;
        Some(a)
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
}

/// Records a job's newest final outcome in its status: the last outcome and when it
/// ended, and the last success or failure time.
pub(super) fn note_outcome(
    status: &mut pb::JobStatus,
    outcome: &str,
    finished_at: Option<kairos_proto::Timestamp>,
) {
    status.last_outcome = outcome.to_string();
    status.last_finished_at = finished_at;
    match outcome.parse::<kairos_common::status::ExecutionStatus>() {
        Ok(kairos_common::status::ExecutionStatus::Succeeded) => {
            status.last_success_at = finished_at;
        }
        Ok(s) if s.is_failure() => status.last_failure_at = finished_at,
        _ => {}
    }
}

impl StateMachine {
    pub(super) fn put_record(&mut self, batch: &mut Batch, entry: JobEntry) {
        let name = entry.name().to_string();
        batch.put(Cf::State, keys::job(&name), entry.record.encode_to_vec());
        self.changes.jobs.insert(name.clone());
        self.jobs.insert(name, Arc::new(entry));
    }

    /// Writes an execution record; `id` is its number (the record's `id` field is
    /// the same in decimal, written by whoever built the record from it).
    pub(super) fn put_execution(&mut self, batch: &mut Batch, id: u64, exec: &pb::Execution) {
        batch.put(Cf::State, keys::execution(id), exec.encode_to_vec());
        self.changes.executions.push(exec.clone());
    }

    pub(super) fn load_execution(
        &self,
        batch: &Batch,
        id: u64,
    ) -> Result<Option<pb::Execution>, StorageError> {
        batch
            .get(&self.db, Cf::State, &keys::execution(id))?
            .map(|b| decode_execution(&b))
            .transpose()
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
            Kind::PutToken(c) => self.apply_put_token(batch, c)?,
            Kind::RevokeToken(c) => self.apply_revoke_token(batch, c)?,
            Kind::ClearHistory(c) => self.apply_clear_history(batch, c)?,
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
        let changes = std::mem::take(&mut self.changes);
        let changed: Vec<(String, Option<Arc<JobEntry>>)> = changes
            .jobs
            .into_iter()
            .map(|name| {
                let entry = self.jobs.get(&name).cloned();
                (name, entry)
            })
            .collect();
        let active = if changes.active {
            Some(self.active.clone())
        } else {
            None
        };
        let retries = if changes.retries {
            Some(self.retries.clone())
        } else {
            None
        };
        let executions = changes.executions;
        if changes.members {
            for (id, addr) in &self.members {
                self.book.set(*id, addr.clone());
            }
            self.view.set_members(self.members.clone());
        }
        if changes.dependencies {
            self.view
                .set_dependencies(self.dependencies.values().cloned().collect());
        }
        if changes.tokens {
            self.view.set_tokens(self.tokens.clone());
        }
        if changes.backfills {
            self.view
                .set_backfills(self.backfills.values().cloned().collect());
        }
        self.view.publish(changed, active, retries, executions);
    }
}
