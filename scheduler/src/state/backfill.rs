//! Backfills: running a job for every instant of a past range (trigger `backfill`).
//!
//! A backfill is replicated state (key `b/<id>`) with its own cursor: the leader fires
//! the next instant after the cursor when fewer than `parallel` of the backfill's runs
//! are active and its rate allows, and apply accepts each instant once, in order,
//! moving the cursor; the record goes away after the last instant of the range. So a
//! backfill survives leader changes and runs each instant exactly once. Backfill runs
//! do not touch the job's schedule cursor, and the job's concurrency policy does not
//! apply to them: the backfill's own `parallel` does.

use kairos_proto::internal as ipb;
use prost::Message as _;

use super::keys;
use super::machine::{Applied, StateMachine};
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};
use crate::time::dt_from_ms;

/// Instants one backfill may cover.
pub const MAX_BACKFILL_INSTANTS: usize = 100_000;

impl StateMachine {
    pub(super) fn apply_start_backfill(
        &mut self,
        batch: &mut Batch,
        c: ipb::StartBackfill,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(entry) = self.jobs.get(&c.job) else {
            return Ok(Err(Error::NotFound(format!("job {}", c.job))));
        };
        if c.to_ms <= c.from_ms {
            return Ok(Err(Error::invalid("to", "is not after from")));
        }
        let first = entry.spec.schedule.next_after(dt_from_ms(c.from_ms));
        if first.is_none_or(|f| f.timestamp_millis() > c.to_ms) {
            return Ok(Err(Error::FailedPrecondition(format!(
                "the schedule of job {} has no instant in that range",
                c.job
            ))));
        }
        let id = self.next_backfill_id;
        self.next_backfill_id += 1;
        batch.put(
            Cf::State,
            keys::NEXT_BACKFILL_ID.to_vec(),
            keys::encode_u64(self.next_backfill_id),
        );
        let record = ipb::BackfillRecord {
            id,
            job: c.job,
            cursor_ms: c.from_ms,
            to_ms: c.to_ms,
            parallel: c.parallel.max(1),
            rate: if c.rate > 0.0 { c.rate } else { 1.0 },
            created_ms: c.now_ms,
        };
        batch.put(Cf::State, keys::backfill(id), record.encode_to_vec());
        self.backfills.insert(id, record);
        self.changes.backfills = true;
        Ok(Ok(Applied::Backfill { id }))
    }

    /// Accepts instant `at_ms` of backfill `id` once, in order; ends the backfill after
    /// its last instant.
    pub(super) fn take_backfill_instant(
        &mut self,
        batch: &mut Batch,
        id: u64,
        job: &str,
        at_ms: i64,
    ) -> Result<(), String> {
        let Some(mut record) = self.backfills.get(&id).cloned() else {
            return Err(format!("backfill {id} is over"));
        };
        if record.job != job {
            return Err(format!("backfill {id} is of job {}, not {job}", record.job));
        }
        if at_ms <= record.cursor_ms || at_ms > record.to_ms {
            return Err(format!(
                "instant {at_ms} of backfill {id} was already started or is out of range"
            ));
        }
        record.cursor_ms = at_ms;
        let more = self
            .jobs
            .get(job)
            .and_then(|e| e.spec.schedule.next_after(dt_from_ms(at_ms)))
            .is_some_and(|next| next.timestamp_millis() <= record.to_ms);
        if more {
            batch.put(Cf::State, keys::backfill(id), record.encode_to_vec());
            self.backfills.insert(id, record);
        } else {
            batch.delete(Cf::State, keys::backfill(id));
            self.backfills.remove(&id);
        }
        self.changes.backfills = true;
        Ok(())
    }

    pub(super) fn forget_backfills_of(&mut self, batch: &mut Batch, job: &str) {
        let ids: Vec<u64> = self
            .backfills
            .values()
            .filter(|b| b.job == job)
            .map(|b| b.id)
            .collect();
        for id in ids {
            self.backfills.remove(&id);
            batch.delete(Cf::State, keys::backfill(id));
            self.changes.backfills = true;
        }
    }
}
