//! Job chaining: a job with a `parent` runs (trigger `dependency`) after its parent's
//! execution ends as `parent_on` asks — `success`, `failure` (failed, timed out or
//! lost, after the last attempt), or `always` (either). A fan-out fire counts once,
//! when its whole group has ended: succeeded if every member succeeded, failed if
//! every one failed, partially failed otherwise (which counts as a failure).
//! Cancelled, skipped, missed and no-target outcomes start no children.
//!
//! The decision is replicated state: settling a parent's instant records one pending
//! start per matching child (key `p/…`), which the leader fires with executors it
//! picks; the fire consumes the record, so each child runs once per parent instant,
//! whatever leader changes happen in between. The child's run stands for the parent's
//! instant (same `scheduled_at`).
//!
//! Apply-time rules: a parent must exist, and a chain must not loop back; deleting a
//! job that has children is refused unless the delete cascades to them.

use std::collections::BTreeSet;

use kairos_common::status::{ExecutionStatus, ParentOn};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::keys;
use super::machine::StateMachine;
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};

/// How an instant (or a fan-out group) ended, for choosing children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Success,
    Failure,
}

fn classify(status: &str) -> Option<Settled> {
    match status.parse::<ExecutionStatus>().ok()? {
        ExecutionStatus::Succeeded => Some(Settled::Success),
        s if s.is_failure() => Some(Settled::Failure),
        _ => None,
    }
}

impl StateMachine {
    /// Refuses a parent that does not exist or that would close a cycle.
    pub(super) fn check_parent(&self, job: &str, parent: Option<&str>) -> crate::Result<()> {
        let Some(parent) = parent else {
            return Ok(());
        };
        if !self.jobs.contains_key(parent) {
            return Err(Error::invalid(
                "parent",
                format!("job {parent} does not exist"),
            ));
        }
        let mut chain = vec![job.to_string(), parent.to_string()];
        let mut current = parent.to_string();
        // At most one step per job: a longer walk would already have looped.
        for _ in 0..=self.jobs.len() {
            let Some(next) = self
                .jobs
                .get(&current)
                .and_then(|e| e.spec.parent.as_ref())
                .map(|p| p.name.to_string())
            else {
                return Ok(());
            };
            chain.push(next.clone());
            if next == job {
                return Err(Error::invalid(
                    "parent",
                    format!("it would make a cycle: {}", chain.join(" → ")),
                ));
            }
            current = next;
        }
        Ok(())
    }

    /// Keeps the children index in step with a job's parent.
    pub(super) fn index_parent(&mut self, job: &str, old: Option<String>, new: Option<String>) {
        if old == new {
            return;
        }
        if let Some(old) = old
            && let Some(set) = self.children.get_mut(&old)
        {
            set.remove(job);
            if set.is_empty() {
                self.children.remove(&old);
            }
        }
        if let Some(new) = new {
            self.children
                .entry(new)
                .or_default()
                .insert(job.to_string());
        }
    }

    /// Every job whose parent chain leads to `job`, nearest first.
    pub(super) fn descendants(&self, job: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut frontier = vec![job.to_string()];
        while let Some(current) = frontier.pop() {
            for child in self.children.get(&current).into_iter().flatten() {
                if seen.insert(child.clone()) {
                    out.push(child.clone());
                    frontier.push(child.clone());
                }
            }
        }
        out
    }

    /// Drops the pending dependency starts of a job being deleted (as parent or child).
    pub(super) fn forget_dependencies_of(&mut self, batch: &mut Batch, job: &str) {
        let keys: Vec<(u64, String)> = self
            .dependencies
            .iter()
            .filter(|(_, d)| d.child == job || d.parent == job)
            .map(|(k, _)| k.clone())
            .collect();
        for (parent_execution, child) in keys {
            self.dependencies.remove(&(parent_execution, child.clone()));
            batch.delete(Cf::State, keys::dependency(parent_execution, &child));
            self.changes.dependencies = true;
        }
    }

    /// Called when `exec`'s attempt is final and no retry follows: its instant (or its
    /// group) may now be settled, and children started.
    pub(super) fn settle(
        &mut self,
        batch: &mut Batch,
        id: u64,
        exec: &pb::Execution,
    ) -> Result<(), StorageError> {
        if !self.children.contains_key(&exec.job) {
            return Ok(());
        }
        let (anchor, outcome) = if exec.group.is_empty() {
            (id, classify(&exec.status))
        } else {
            match self.group_outcome(batch, exec)? {
                Some(found) => found,
                None => return Ok(()), // members still running or retrying
            }
        };
        let Some(outcome) = outcome else {
            return Ok(());
        };
        let scheduled_at_ms = exec
            .scheduled_at
            .as_ref()
            .map(crate::time::ms_from_ts)
            .unwrap_or(0);
        let children: Vec<String> = self
            .children
            .get(&exec.job)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        for child in children {
            let Some(entry) = self.jobs.get(&child) else {
                continue;
            };
            let wanted = match entry.spec.parent.as_ref().map(|p| p.on) {
                Some(ParentOn::Success) => outcome == Settled::Success,
                Some(ParentOn::Failure) => outcome == Settled::Failure,
                Some(ParentOn::Always) => true,
                None => false,
            };
            if !wanted || self.dependencies.contains_key(&(anchor, child.clone())) {
                continue;
            }
            let record = ipb::DependencyRecord {
                child: child.clone(),
                parent: exec.job.clone(),
                parent_execution: anchor,
                scheduled_at_ms,
            };
            batch.put(
                Cf::State,
                keys::dependency(anchor, &child),
                record.encode_to_vec(),
            );
            self.dependencies.insert((anchor, child), record);
            self.changes.dependencies = true;
        }
        Ok(())
    }

    /// The outcome of a fan-out group once every member's latest attempt has ended
    /// (and none will be retried): `(group id, outcome)`; `None` while unsettled.
    fn group_outcome(
        &self,
        batch: &Batch,
        exec: &pb::Execution,
    ) -> Result<Option<(u64, Option<Settled>)>, StorageError> {
        let group: u64 = exec.group.parse().map_err(|_| {
            StorageError::corrupt(format!(
                "execution {} names group {:?}, not an execution id",
                exec.id, exec.group
            ))
        })?;
        let prefix = keys::job_executions_prefix(&exec.job);
        let mut members = Vec::new();
        for (key, _) in batch.scan_prefix(&self.db, Cf::State, &prefix, usize::MAX)? {
            let Some(id) = keys::id_suffix(&key) else {
                continue;
            };
            if id < group {
                continue;
            }
            if let Some(bytes) = batch.get(&self.db, Cf::State, &keys::execution(id))? {
                let e = super::records::decode_execution(&bytes)?;
                if e.group == exec.group {
                    members.push(e);
                }
            }
        }
        let superseded: BTreeSet<String> =
            members.iter().map(|e| e.previous_attempt.clone()).collect();
        let mut successes = 0usize;
        let mut failures = 0usize;
        let mut current = 0usize;
        for m in members.iter().filter(|m| !superseded.contains(&m.id)) {
            current += 1;
            let id: u64 = m.id.parse().map_err(|_| {
                StorageError::corrupt(format!(
                    "execution {:?} of group {}: not a number",
                    m.id, m.group
                ))
            })?;
            let retrying = self.retries.values().any(|r| r.retry_of == id);
            if self.active.contains_key(&id) || retrying {
                return Ok(None);
            }
            match classify(&m.status) {
                Some(Settled::Success) => successes += 1,
                Some(Settled::Failure) => failures += 1,
                None => {}
            }
        }
        let outcome = if current > 0 && successes == current {
            Some(Settled::Success)
        } else if failures > 0 {
            Some(Settled::Failure)
        } else {
            None
        };
        Ok(Some((group, outcome)))
    }

    /// Consumes the pending start of `child` after `parent_execution`.
    pub(super) fn take_dependency(
        &mut self,
        batch: &mut Batch,
        parent_execution: u64,
        child: &str,
    ) -> Result<(), String> {
        let key = (parent_execution, child.to_string());
        if self.dependencies.remove(&key).is_none() {
            return Err(format!(
                "job {child} has no pending start after execution {parent_execution}"
            ));
        }
        batch.delete(Cf::State, keys::dependency(parent_execution, child));
        self.changes.dependencies = true;
        Ok(())
    }
}

/// Words for a group's end, as `Execution.group` readers see it.
pub fn group_status(statuses: &[&str]) -> &'static str {
    let typed: Vec<Option<ExecutionStatus>> = statuses.iter().map(|s| s.parse().ok()).collect();
    if typed.iter().flatten().any(|s| s.is_active()) {
        return ExecutionStatus::Running.as_str();
    }
    let ok = typed
        .iter()
        .filter(|s| **s == Some(ExecutionStatus::Succeeded))
        .count();
    if ok == statuses.len() {
        ExecutionStatus::Succeeded.as_str()
    } else if ok == 0 {
        ExecutionStatus::Failed.as_str()
    } else {
        "partially_failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_words() {
        assert_eq!(group_status(&["succeeded", "succeeded"]), "succeeded");
        assert_eq!(group_status(&["failed", "lost"]), "failed");
        assert_eq!(group_status(&["succeeded", "failed"]), "partially_failed");
        assert_eq!(group_status(&["succeeded", "running"]), "running");
    }
}
