//! Reconciling an executor that says Hello: what it still runs, what it reports
//! late, and the assignments its process never received (sent again).

use std::collections::{BTreeMap, BTreeSet};

use kairos_common::ids::{ExecutionId, ExecutorId};
use kairos_proto::v1 as pb;
use tracing::{info, warn};

use crate::state::ActiveExecution;
use crate::time::ms_from_ts;

use super::Core;

impl Core {
    /// After an executor (re)registers with this leader: stops the runs it reports that
    /// the state says are over (cancelled, replaced or deleted while it was away),
    /// repeats skip requests for runs of jobs paused since, and sends again the
    /// assignments this very executor process never received
    /// ([`crate::executors::never_received`]: the leader that committed them died
    /// before sending, or the stream broke). A pending execution held by an earlier
    /// process of the executor is not sent again — it may have run before that
    /// process died — and is left to its lease (`lost`, then the retry policy).
    pub fn reconcile_executor(&self, hello: &pb::Hello) {
        let executor = hello.executor_id.as_str();
        let running: BTreeSet<ExecutionId> = hello
            .running
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        let active = self.view.active();
        // The records of the runs the state gives this executor, read once.
        let records: BTreeMap<ExecutionId, pb::Execution> = active
            .iter()
            .filter(|a| a.executor.as_str() == executor)
            .filter_map(|a| Some((a.id, self.view.execution(a.id.0).ok().flatten()?)))
            .collect();
        let resent = self.resend_never_received(hello, &records);
        let known: BTreeSet<ExecutionId> = active.iter().map(|a| a.id).collect();
        let over: Vec<ActiveExecution> = running
            .iter()
            .filter(|id| !known.contains(id))
            .map(|id| ActiveExecution {
                id: *id,
                job: String::new(),
                executor: ExecutorId::from(executor),
                scheduled_at_ms: 0,
                attempt: 0,
                backfill: 0,
            })
            .collect();
        if !over.is_empty() {
            info!(%executor, count = over.len(), "stopping runs that ended while the executor was away");
            self.cancel_on_executors(
                &over,
                "the execution already ended (cancelled, replaced or deleted)",
            );
        }
        // Runs committed ahead for a job paused since (held, or just sent again): the
        // skip request may have been sent by an earlier leader, or while this executor
        // was away. It follows the assignment on the same stream.
        let ahead_of_pause: Vec<ActiveExecution> = active
            .iter()
            .filter(|a| {
                a.executor.as_str() == executor
                    && (running.contains(&a.id) || resent.contains(&a.id))
            })
            .filter(|a| {
                self.view.job(&a.job).is_some_and(|entry| {
                    let job = entry.record.job.as_ref();
                    entry.spec.paused
                        && job
                            .and_then(|j| j.updated_at.as_ref())
                            .is_some_and(|at| a.scheduled_at_ms > ms_from_ts(at))
                })
            })
            .filter(|a| {
                records
                    .get(&a.id)
                    .is_some_and(crate::state::skipped_by_pause)
            })
            .cloned()
            .collect();
        if !ahead_of_pause.is_empty() {
            self.skip_unless_started(&ahead_of_pause);
        }
    }

    /// Sends again what `hello`'s executor process never received (see
    /// [`reconcile_executor`](Core::reconcile_executor)), under this leader's term;
    /// returns the ids sent.
    pub(super) fn resend_never_received(
        &self,
        hello: &pb::Hello,
        records: &BTreeMap<ExecutionId, pb::Execution>,
    ) -> BTreeSet<ExecutionId> {
        let missing = crate::executors::never_received(hello, records.values());
        let mut sent = BTreeSet::new();
        if missing.is_empty() {
            return sent;
        }
        let term = self.raft.status().term;
        for exec in missing {
            let Some(entry) = self.view.job(&exec.job) else {
                continue;
            };
            let start_at_ms = exec.scheduled_at.as_ref().map_or(0, ms_from_ts);
            let mut assignment = crate::state::assignment_for(
                &entry,
                exec,
                start_at_ms,
                self.config.max_output_bytes,
            );
            // Committed under an earlier term maybe; handed over under this one, which
            // the executor has just been told (an older one it would refuse).
            assignment.term = term;
            let Ok(id) = exec.id.parse::<ExecutionId>() else {
                warn!(execution = %exec.id, "a stored execution id that is not a number; not sent again");
                continue;
            };
            let msg = pb::SchedulerMessage {
                kind: Some(pb::scheduler_message::Kind::Assignment(assignment)),
            };
            if self.executors.send(&hello.executor_id, msg).is_ok() {
                self.executors.note_assigned(&hello.executor_id, id);
                sent.insert(id);
            }
        }
        info!(executor = %hello.executor_id, count = sent.len(), "sent again the assignments this executor never received");
        sent
    }
}
