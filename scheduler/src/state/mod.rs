//! The replicated state machine: jobs, fire intents, executions, per-job cursors,
//! pending retries and queued starts.
//!
//! Every scheduler applies the same committed commands in the same order and ends in
//! the same state. To keep that true:
//! - `apply` is deterministic: times and choices (which executors, which instant,
//!   when a retry is due) come inside the command from the leader; ids are assigned
//!   here, in apply order, from a replicated counter. No clock, no randomness, no
//!   network.
//! - A command is judged against the state alone, so a refusal (unknown job, stale
//!   version, an instant already handled, a retry already taken) is the same on every
//!   replica and is returned to the proposer instead of changing anything.
//!
//! # Exactly one outcome per scheduled instant
//! Each job has a durable *cursor*: scheduled instants at or before it are handled.
//! A scheduled or catch-up fire, and a miss, are accepted only for instants strictly
//! after the cursor, and move it. A fire planned twice (two leaders, a retried
//! proposal, a replayed log) is therefore refused, whatever the clocks say. Creating
//! a job, changing its schedule, and resuming it move the cursor to "now" (the
//! leader's time in the command): instants before that are not owed. Every accepted
//! instant ends with exactly one final record: run (then `succeeded`, `failed`,
//! `timed_out`, `lost` or `cancelled`), or `missed`, `skipped_overlap`,
//! `skipped_paused`, `no_target`. Retries are further *attempts* of the same
//! instant (same `scheduled_at`, `attempt` + 1), each its own execution.
//!
//! # Misses
//! A `Miss` records instants that passed while no leader could fire them and that the
//! job's misfire policy does not run: it moves the cursor to the last of them and
//! counts them all as `missed`; execution records are written for the newest ones
//! only (as many as history keeps — older ones would be pruned at once anyway).
//!
//! # Concurrency, decided here for every start
//! Scheduled, catch-up, manual, dependency and retry starts all pass the job's
//! `concurrency` against its active (pending or running) executions, atomically:
//! `allow` starts; `forbid` records the fire `skipped_overlap`; `queue` keeps the
//! fire as the job's one queued start (a second one while queued is
//! `skipped_overlap`) — when the last active execution ends, the leader is told (the
//! job changes) and proposes the queued start, which then bypasses the cursor;
//! `replace` records the active ones `cancelled` (the leader then kills them) and
//! starts the new one.
//!
//! # Retries
//! When an attempt ends `failed`, `timed_out` or `lost` and the job allows more
//! attempts, the leader writes the retry's due time into the finishing command; apply
//! records a pending retry (key `r/…`), which survives leader changes. The leader
//! fires it when due with trigger `retry`, and apply accepts it once (the record is
//! consumed), so a retry also happens exactly once.
//!
//! # Late and repeated reports
//! The first final status of an execution stands. A report that arrives after the
//! lease expired (the attempt is `lost`) is kept on the record as `late_status` with
//! its output, without reviving the attempt or cancelling its retry.
//!
//! # Fires ahead of their instant
//! The leader commits fires a little before their instant; the executor waits for
//! `start_at`. What happens in that window: a pause returns the scheduled runs
//! committed ahead that are still pending, and the leader asks their executors to
//! skip each one *if it has not started* — only the executor knows, so the run stays
//! pending until it reports `skipped_paused` (or, having started, what it did), and
//! the record never says "skipped" of a process that ran. An update leaves them
//! alone (they run the definition they were committed with; the cursor is past their
//! instant, so no instant runs twice). A delete removes them with the job and returns
//! them for the leader to cancel.
//!
//! History is bounded: a job keeps its newest `history.keep` finished executions plus
//! those still running; the oldest finished ones are deleted in the applies that add
//! or finish one (never the one just finished).
//!
//! Jobs, active executions and pending retries live in memory (the leader needs all
//! of them) and in RocksDB; executions live only in RocksDB. Changes are staged in the
//! raft loop's batch and published to readers ([`StateView`]) after the batch is on
//! disk.
//!
//! Deliberately absent: picking executors, reading clocks, talking to executors —
//! the leader does those and records its decisions through commands.

mod backfill;
mod chain;
mod fires;
mod history;
mod jobs;
pub mod keys;
mod machine;
mod records;
mod reports;
mod tokens;
mod view;

pub use backfill::MAX_BACKFILL_INSTANTS;
pub use chain::group_status;
pub use fires::assignment_for;
pub use jobs::skipped_by_pause;
pub use machine::{Applied, Dispatch, FireOutcome, FireResult, PutResult, StateMachine};
pub use view::{ExecutionPage, JobsInOrder, StateView};

use kairos_common::ids::{ExecutionId, ExecutorId};
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
    pub id: ExecutionId,
    pub job: String,
    pub executor: ExecutorId,
    /// The instant it stands for (fires committed ahead have it in the future).
    pub scheduled_at_ms: i64,
    pub attempt: u32,
    /// The backfill it belongs to (0 = none).
    pub backfill: u64,
}

#[cfg(test)]
mod tests;
