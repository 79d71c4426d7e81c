//! The replicated state machine: jobs, fire intents, executions and per-job cursors.
//!
//! Every scheduler applies the same committed commands in the same order and ends in
//! the same state. To keep that true:
//! - `apply` is deterministic: times and choices (which executors, which instant) come
//!   inside the command from the leader; ids are assigned here, in apply order, from a
//!   replicated counter. No clock, no randomness, no network.
//! - A command is judged against the state alone, so a refusal (unknown job, stale
//!   version, an instant already handled) is the same on every replica and is
//!   returned to the proposer instead of changing anything.
//! - **Exactly one fire per scheduled instant**: each job has a durable cursor, the
//!   last scheduled instant handled. A scheduled fire is accepted only for an instant
//!   strictly after the cursor, and moves the cursor to it. Replays of a fire (a new
//!   leader re-planning, a retried proposal) are therefore refused, whatever the
//!   clocks say. Creating a job, changing its schedule, and resuming it move the
//!   cursor to "now" (the leader's time in the command): instants before that are not
//!   owed.
//! - History is bounded: a job keeps at most `history.keep` executions; the oldest
//!   finished ones are deleted in the same apply that adds a new one.
//!
//! Jobs live in memory (the schedule loop needs all of them) and in RocksDB;
//! executions live only in RocksDB. Changes are staged in the raft loop's batch and
//! published to readers ([`StateView`]) after the batch is on disk.
//!
//! Deliberately absent: picking executors, reading clocks, talking to executors —
//! the leader does those and records its decisions through commands.

mod apply;
pub mod keys;
mod view;

pub use apply::{Applied, Dispatch, FireResult, PutResult, StateMachine};
pub use view::{ExecutionPage, StateView};

use kairos_common::job::Job;
use kairos_proto::internal as ipb;

/// A stored job: its record and its parsed, validated form.
#[derive(Debug, Clone)]
pub struct JobEntry {
    pub record: ipb::JobRecord,
    pub spec: Job,
}

impl JobEntry {
    pub fn name(&self) -> &str {
        self.spec.name.as_str()
    }

    pub fn version(&self) -> u64 {
        self.record.job.as_ref().map(|j| j.version).unwrap_or(0)
    }
}

/// An execution that is pending or running, as the leader tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveExecution {
    pub id: u64,
    pub job: String,
    pub executor: String,
}

#[cfg(test)]
mod tests;
