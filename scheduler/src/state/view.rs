//! The read side of the state machine: what readers (gRPC, HTTP, the schedule loop)
//! see. It changes only when the raft loop publishes a batch that is already on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use kairos_common::status::ExecutionStatus;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tokio::sync::{Notify, broadcast};

use super::records::decode_execution;
use super::{ActiveExecution, JobEntry, keys};
use crate::storage::{Cf, Db, StorageError};

/// Executions buffered for slow watchers before they miss some (they are told).
const EXECUTION_EVENTS_CAPACITY: usize = 1024;

/// One page of executions, newest first.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    pub executions: Vec<pb::Execution>,
    /// The id to continue after, when there may be more.
    pub next_after: Option<u64>,
}

/// Jobs a chunk at a time ([`StateView::jobs_in_order`]).
pub struct JobsInOrder<'a> {
    view: &'a StateView,
    cursor: Option<String>,
    chunk: std::vec::IntoIter<Arc<JobEntry>>,
    done: bool,
}

/// Jobs read under the lock at once while walking them.
const JOB_CHUNK: usize = 1000;

impl Iterator for JobsInOrder<'_> {
    type Item = Arc<JobEntry>;

    fn next(&mut self) -> Option<Arc<JobEntry>> {
        if let Some(e) = self.chunk.next() {
            return Some(e);
        }
        if self.done {
            return None;
        }
        let chunk = self.view.jobs_page(self.cursor.as_deref(), JOB_CHUNK);
        self.done = chunk.len() < JOB_CHUNK;
        self.cursor = chunk.last().map(|e| e.name().to_string());
        self.chunk = chunk.into_iter();
        self.chunk.next()
    }
}

/// The state as of the last published batch.
pub struct StateView {
    db: Arc<Db>,
    jobs: RwLock<BTreeMap<String, Arc<JobEntry>>>,
    active: RwLock<BTreeMap<u64, ActiveExecution>>,
    retries: RwLock<BTreeMap<(i64, u64), ipb::RetryRecord>>,
    dependencies: RwLock<Vec<ipb::DependencyRecord>>,
    backfills: RwLock<Vec<ipb::BackfillRecord>>,
    /// Jobs changed since the schedule loop last looked.
    dirty_jobs: Mutex<BTreeSet<String>>,
    jobs_changed: Notify,
    executions: broadcast::Sender<pb::Execution>,
    members: RwLock<BTreeMap<u64, String>>,
    /// Bearer tokens by id.
    tokens: RwLock<BTreeMap<String, ipb::TokenRecord>>,
}

impl std::fmt::Debug for StateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView").finish_non_exhaustive()
    }
}

impl StateView {
    pub fn new(db: Arc<Db>) -> Arc<StateView> {
        Arc::new(StateView {
            db,
            jobs: RwLock::new(BTreeMap::new()),
            active: RwLock::new(BTreeMap::new()),
            retries: RwLock::new(BTreeMap::new()),
            dependencies: RwLock::new(Vec::new()),
            backfills: RwLock::new(Vec::new()),
            dirty_jobs: Mutex::new(BTreeSet::new()),
            jobs_changed: Notify::new(),
            executions: broadcast::channel(EXECUTION_EVENTS_CAPACITY).0,
            members: RwLock::new(BTreeMap::new()),
            tokens: RwLock::new(BTreeMap::new()),
        })
    }

    /// The token with this id, if it exists (not revoked).
    pub fn token(&self, id: &str) -> Option<ipb::TokenRecord> {
        self.tokens
            .read()
            .expect("invariant: view lock is never poisoned")
            .get(id)
            .cloned()
    }

    /// Every token, by id.
    pub fn tokens(&self) -> Vec<ipb::TokenRecord> {
        self.tokens
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn set_tokens(&self, t: BTreeMap<String, ipb::TokenRecord>) {
        *self
            .tokens
            .write()
            .expect("invariant: view lock is never poisoned") = t;
    }

    pub(super) fn publish(
        &self,
        jobs: Vec<(String, Option<Arc<JobEntry>>)>,
        active: Option<BTreeMap<u64, ActiveExecution>>,
        retries: Option<BTreeMap<(i64, u64), ipb::RetryRecord>>,
        executions: Vec<pb::Execution>,
    ) {
        let retries_changed = retries.is_some();
        if let Some(r) = retries {
            *self
                .retries
                .write()
                .expect("invariant: view lock is never poisoned") = r;
        }
        if !jobs.is_empty() {
            let mut map = self
                .jobs
                .write()
                .expect("invariant: view lock is never poisoned");
            let mut dirty = self
                .dirty_jobs
                .lock()
                .expect("invariant: view lock is never poisoned");
            for (name, entry) in jobs {
                match entry {
                    Some(e) => map.insert(name.clone(), e),
                    None => map.remove(&name),
                };
                dirty.insert(name);
            }
            drop(dirty);
            drop(map);
            self.jobs_changed.notify_one();
        }
        if let Some(active) = active {
            *self
                .active
                .write()
                .expect("invariant: view lock is never poisoned") = active;
        }
        if retries_changed {
            // The schedule loop waits on the same notification for retries.
            self.jobs_changed.notify_one();
        }
        for e in executions {
            // No receivers is fine: nobody is watching.
            let _ = self.executions.send(e);
        }
    }

    pub(super) fn set_members(&self, members: BTreeMap<u64, String>) {
        *self
            .members
            .write()
            .expect("invariant: view lock is never poisoned") = members;
    }

    /// The replicated address book: scheduler id → gRPC address.
    pub fn members(&self) -> BTreeMap<u64, String> {
        self.members
            .read()
            .expect("invariant: view lock is never poisoned")
            .clone()
    }

    pub fn job(&self, name: &str) -> Option<Arc<JobEntry>> {
        self.jobs
            .read()
            .expect("invariant: view lock is never poisoned")
            .get(name)
            .cloned()
    }

    /// Up to `limit` jobs in name order, after `after`.
    pub fn jobs_page(&self, after: Option<&str>, limit: usize) -> Vec<Arc<JobEntry>> {
        let map = self
            .jobs
            .read()
            .expect("invariant: view lock is never poisoned");
        let iter: Box<dyn Iterator<Item = (&String, &Arc<JobEntry>)>> = match after {
            Some(a) => Box::new(
                map.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            ),
            None => Box::new(map.iter()),
        };
        iter.take(limit).map(|(_, e)| e.clone()).collect()
    }

    /// Every job in name order after `after`, read a chunk at a time (the lock is
    /// held for one chunk, never for the whole walk), so a caller that stops early
    /// pays only for what it read.
    pub fn jobs_in_order<'a>(&'a self, after: Option<&str>) -> JobsInOrder<'a> {
        JobsInOrder {
            view: self,
            cursor: after.map(str::to_string),
            chunk: Vec::new().into_iter(),
            done: false,
        }
    }

    pub fn job_count(&self) -> usize {
        self.jobs
            .read()
            .expect("invariant: view lock is never poisoned")
            .len()
    }

    pub fn all_jobs(&self) -> Vec<Arc<JobEntry>> {
        self.jobs
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Names of jobs changed since the last call.
    pub fn take_dirty_jobs(&self) -> BTreeSet<String> {
        std::mem::take(
            &mut *self
                .dirty_jobs
                .lock()
                .expect("invariant: view lock is never poisoned"),
        )
    }

    /// Resolves when a job changed (possibly before this call, since the last wait).
    pub async fn jobs_changed(&self) {
        self.jobs_changed.notified().await;
    }

    pub fn active(&self) -> Vec<ActiveExecution> {
        self.active
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn set_dependencies(&self, d: Vec<ipb::DependencyRecord>) {
        *self
            .dependencies
            .write()
            .expect("invariant: view lock is never poisoned") = d;
        self.jobs_changed.notify_one();
    }

    pub(super) fn set_backfills(&self, b: Vec<ipb::BackfillRecord>) {
        *self
            .backfills
            .write()
            .expect("invariant: view lock is never poisoned") = b;
        self.jobs_changed.notify_one();
    }

    /// Children waiting to start after their parent's run.
    pub fn dependencies(&self) -> Vec<ipb::DependencyRecord> {
        self.dependencies
            .read()
            .expect("invariant: view lock is never poisoned")
            .clone()
    }

    /// Backfills in progress.
    pub fn backfills(&self) -> Vec<ipb::BackfillRecord> {
        self.backfills
            .read()
            .expect("invariant: view lock is never poisoned")
            .clone()
    }

    /// One pending or running execution.
    pub fn active_execution(&self, id: u64) -> Option<ActiveExecution> {
        self.active
            .read()
            .expect("invariant: view lock is never poisoned")
            .get(&id)
            .cloned()
    }

    /// Pending retries, earliest due first.
    pub fn retries(&self) -> Vec<ipb::RetryRecord> {
        self.retries
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// The earliest due time of a pending retry.
    pub fn next_retry_ms(&self) -> Option<i64> {
        self.retries
            .read()
            .expect("invariant: view lock is never poisoned")
            .keys()
            .next()
            .map(|(due, _)| *due)
    }

    /// Pending retries of one job.
    pub fn retries_of(&self, job: &str) -> usize {
        self.retries
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .filter(|r| r.job == job)
            .count()
    }

    pub fn subscribe_executions(&self) -> broadcast::Receiver<pb::Execution> {
        self.executions.subscribe()
    }

    pub fn execution(&self, id: u64) -> Result<Option<pb::Execution>, StorageError> {
        self.db
            .get(Cf::State, &keys::execution(id))?
            .map(|b| decode_execution(&b))
            .transpose()
    }

    /// The status of a fan-out group of `job` (see `Execution.group_status`).
    pub fn group_status(&self, job: &str, group: &str) -> Result<String, StorageError> {
        let first: u64 = group.parse().unwrap_or(0);
        let prefix = keys::job_executions_prefix(job);
        let after = keys::job_execution(job, first.saturating_sub(1));
        let mut members = Vec::new();
        for (key, _) in self
            .db
            .scan_prefix(Cf::State, &prefix, false, Some(&after), usize::MAX)?
        {
            if let Some(e) = keys::id_suffix(&key)
                .map(|id| self.execution(id))
                .transpose()?
                .flatten()
                && e.group == group
            {
                members.push(e);
            }
        }
        let superseded: BTreeSet<&str> = members
            .iter()
            .map(|e| e.previous_attempt.as_str())
            .collect();
        // A member whose retry is due but not yet started has not ended: the group
        // is still running until that attempt reports.
        let retrying: BTreeSet<String> = self
            .retries
            .read()
            .expect("invariant: view lock is never poisoned")
            .values()
            .filter(|r| r.job == job)
            .map(|r| r.retry_of.to_string())
            .collect();
        let latest: Vec<&str> = members
            .iter()
            .filter(|e| !superseded.contains(e.id.as_str()))
            .map(|e| {
                if retrying.contains(&e.id) {
                    ExecutionStatus::Running.as_str()
                } else {
                    e.status.as_str()
                }
            })
            .collect();
        Ok(super::group_status(&latest).to_string())
    }

    /// Executions newest first, of one job or all, continuing before id `before`.
    pub fn executions_page(
        &self,
        job: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<ExecutionPage, StorageError> {
        let mut executions = Vec::with_capacity(limit);
        let fetch = limit + 1;
        let keys: Vec<u64> = match job {
            Some(name) => {
                let prefix = keys::job_executions_prefix(name);
                let after = before.map(|id| keys::job_execution(name, id));
                self.db
                    .scan_prefix(Cf::State, &prefix, true, after.as_deref(), fetch)?
                    .into_iter()
                    .filter_map(|(k, _)| keys::id_suffix(&k))
                    .collect()
            }
            None => {
                let after = before.map(keys::execution);
                self.db
                    .scan_prefix(
                        Cf::State,
                        keys::EXECUTION_PREFIX,
                        true,
                        after.as_deref(),
                        fetch,
                    )?
                    .into_iter()
                    .filter_map(|(k, _)| keys::id_suffix(&k))
                    .collect()
            }
        };
        let more = keys.len() > limit;
        for id in keys.into_iter().take(limit) {
            if let Some(e) = self.execution(id)? {
                executions.push(e);
            }
        }
        let next_after = if more {
            executions.last().and_then(|e| e.id.parse().ok())
        } else {
            None
        };
        Ok(ExecutionPage {
            executions,
            next_after,
        })
    }
}
