//! The leader's duties: the schedule loop that turns instants into committed fires,
//! and the lease checker that turns silent executions into `lost` ones.
//!
//! A watcher follows the raft status. When this node becomes a *ready* leader (it
//! has applied an entry of its own term, so its state holds everything committed
//! before), it starts the duties with a fresh cancellation token; when it stops being
//! leader, it cancels them at once and drops every executor stream, so executors go
//! and find the new leader.
//!
//! The schedule loop keeps every schedulable job in a timer ordered by next instant.
//! It wakes at the earliest instant (or when a job changes), takes every job due by
//! then, and proposes their fires as ONE `FireBatch` (one raft entry, one fsync). The
//! state machine accepts a scheduled fire only for an instant after the job's cursor,
//! so a fire planned twice (by two leaders, or after a retry) is recorded once.
//! Only after the batch is committed are assignments sent.
//!
//! Instants that fell due while no leader existed are fired if they are at most
//! [`LATE_FIRE_TOLERANCE`] old; older ones are skipped (the misfire policies that
//! record or catch them up are not part of this version).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kairos_common::status::Trigger;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::core::Core;
use crate::state::JobEntry;
use crate::time::dt_from_ms;

/// How late an instant may be and still fire as scheduled (a new leader taking over).
pub const LATE_FIRE_TOLERANCE: Duration = Duration::from_secs(5);
/// Longest sleep of the loop, so lease checks and clock jumps are noticed.
const MAX_IDLE: Duration = Duration::from_millis(500);
/// An execution whose executor confirmed nothing for this long is recorded lost.
pub const LEASE: Duration = Duration::from_secs(10);
/// After becoming leader, a fire that finds no matching executor waits up to this
/// long for executors to reconnect (they were connected to the old leader) instead
/// of being recorded `no_target` at once.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(3);
/// How often a fire held for reconnecting executors is retried.
const HOLD_RETRY: Duration = Duration::from_millis(100);
/// Fires per raft entry; larger due sets are split into several entries.
const MAX_FIRES_PER_BATCH: usize = 2048;

/// Follows leadership and runs the leader's duties while this node leads.
pub async fn watch_leadership(core: Arc<Core>, shutdown: CancellationToken) {
    let mut status = core.raft.watch_status();
    let mut duties: Option<(u64, CancellationToken, tokio::task::JoinHandle<()>)> = None;
    loop {
        let s = status.borrow_and_update().clone();
        let leading = s.is_ready_leader();
        match (&duties, leading) {
            (None, true) => {
                info!(term = s.term, "leading: starting the schedule loop");
                *core
                    .leader_since
                    .lock()
                    .expect("invariant: lock is never poisoned") = Some(Instant::now());
                let token = shutdown.child_token();
                let handle = tokio::spawn(run_duties(core.clone(), token.clone()));
                duties = Some((s.term, token, handle));
            }
            (Some((term, _, _)), still) if !still || *term != s.term => {
                info!(
                    term = s.term,
                    "no longer leading: stopping the schedule loop"
                );
                if let Some((_, token, handle)) = duties.take() {
                    token.cancel();
                    let _ = handle.await;
                }
                core.executors.clear();
                *core
                    .leader_since
                    .lock()
                    .expect("invariant: lock is never poisoned") = None;
                continue;
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = status.changed() => if changed.is_err() { break },
        }
    }
    if let Some((_, token, handle)) = duties.take() {
        token.cancel();
        let _ = handle.await;
    }
    core.executors.clear();
}

async fn run_duties(core: Arc<Core>, token: CancellationToken) {
    if let Err(e) = core.ensure_member_addrs().await {
        warn!(error = %e, "could not record the members' addresses");
    }
    let mut timer = Timer::default();
    for entry in core.view.all_jobs() {
        timer.update(&core, &entry);
    }
    // Anything that changed before the rebuild is already in it.
    let _ = core.view.take_dirty_jobs();
    let mut last_lease_check = Instant::now();
    loop {
        if token.is_cancelled() {
            return;
        }
        for name in core.view.take_dirty_jobs() {
            match core.view.job(&name) {
                Some(entry) => timer.update(&core, &entry),
                None => timer.remove(&name),
            }
        }
        let now_ms = core.clock.now().timestamp_millis();
        let due = timer.take_due(now_ms);
        if !due.is_empty() {
            fire_due(&core, &mut timer, due).await;
            continue;
        }
        if last_lease_check.elapsed() >= Duration::from_secs(1) {
            check_leases(&core).await;
            last_lease_check = Instant::now();
        }
        let wait = timer
            .next_ms()
            .map(|next| Duration::from_millis((next - now_ms).max(0) as u64))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = core.view.jobs_changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn fire_due(core: &Core, timer: &mut Timer, due: Vec<(String, i64)>) {
    let mut fires = Vec::with_capacity(due.len());
    let mut planned: Vec<(String, i64)> = Vec::with_capacity(due.len());
    let in_grace = core
        .leader_since
        .lock()
        .expect("invariant: lock is never poisoned")
        .is_some_and(|since| since.elapsed() < RECONNECT_GRACE);
    let now_ms = core.clock.now().timestamp_millis();
    for (name, at_ms) in due {
        let Some(entry) = core.view.job(&name) else {
            timer.remove(&name);
            continue;
        };
        let fire = core.plan_fire(&entry, at_ms, Trigger::Schedule);
        if fire.executors.is_empty() && in_grace {
            // Executors are probably still finding this new leader: hold the fire.
            timer.retry_later(&name, at_ms, now_ms, HOLD_RETRY);
            continue;
        }
        fires.push(fire);
        planned.push((name, at_ms));
    }
    for chunk in fires.chunks(MAX_FIRES_PER_BATCH) {
        if let Err(e) = core.fire(chunk.to_vec()).await {
            warn!(error = %e, fires = chunk.len(), "fire batch not committed");
        }
    }
    // Whatever happened, the state now says where each job stands: a committed fire
    // moved its cursor, a refused one did not. Re-plan from the stored state.
    for (name, at_ms) in planned {
        match core.view.job(&name) {
            Some(entry) => {
                if entry.record.cursor_ms < at_ms {
                    // Not committed (no quorum, deposed): do not spin on it.
                    timer.retry_later(&name, at_ms, core.clock.now().timestamp_millis(), MAX_IDLE);
                } else {
                    timer.update(core, &entry);
                }
            }
            None => timer.remove(&name),
        }
    }
}

/// Records `lost` for every execution whose lease ran out.
async fn check_leases(core: &Core) {
    let Some(since) = *core
        .leader_since
        .lock()
        .expect("invariant: lock is never poisoned")
    else {
        return;
    };
    for a in core.view.active() {
        if core.executors.lease_holds(a.id, since, LEASE) {
            continue;
        }
        let why = format!(
            "executor {} did not confirm the execution for {}s (it died, was cut off, or never got it)",
            a.executor,
            LEASE.as_secs()
        );
        warn!(execution = a.id, job = %a.job, executor = %a.executor, "lease expired: execution lost");
        if let Err(e) = core.finish_lost(a.id, &a.executor, &why).await {
            debug!(execution = a.id, error = %e, "could not record the lost execution");
        }
    }
}

/// Jobs ordered by when to wake for them. Entries are replaced lazily: the heap may
/// hold stale wake-ups for a job; only the one equal to `next[job].0` counts.
#[derive(Default)]
struct Timer {
    heap: BinaryHeap<Reverse<(i64, String)>>,
    /// job → (wake-up, instant to fire). They differ only for a fire being retried.
    next: BTreeMap<String, (i64, i64)>,
}

impl Timer {
    /// (Re)computes the job's next instant from its stored cursor.
    fn update(&mut self, core: &Core, entry: &JobEntry) {
        let name = entry.name().to_string();
        if entry.spec.paused || entry.spec.schedule.is_manual() {
            self.remove(&name);
            return;
        }
        let now_ms = core.clock.now().timestamp_millis();
        let floor_ms = now_ms - LATE_FIRE_TOLERANCE.as_millis() as i64;
        let after_ms = entry.record.cursor_ms.max(floor_ms);
        match entry.spec.schedule.next_after(dt_from_ms(after_ms)) {
            Some(at) => self.set(name, at.timestamp_millis(), at.timestamp_millis()),
            None => self.remove(&name),
        }
    }

    fn set(&mut self, name: String, wake_ms: i64, at_ms: i64) {
        if self.next.get(&name) == Some(&(wake_ms, at_ms)) {
            return;
        }
        self.next.insert(name.clone(), (wake_ms, at_ms));
        self.heap.push(Reverse((wake_ms, name)));
    }

    /// Keeps the instant but comes back to it after the idle period.
    fn retry_later(&mut self, name: &str, at_ms: i64, now_ms: i64, after: Duration) {
        let wake = now_ms + after.as_millis() as i64;
        self.set(name.to_string(), wake, at_ms);
    }

    fn remove(&mut self, name: &str) {
        self.next.remove(name);
    }

    fn next_ms(&mut self) -> Option<i64> {
        while let Some(Reverse((wake, name))) = self.heap.peek() {
            if self.next.get(name).is_some_and(|(w, _)| w == wake) {
                return Some(*wake);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns every (job, instant) whose wake-up is at or before `now_ms`.
    fn take_due(&mut self, now_ms: i64) -> Vec<(String, i64)> {
        let mut due = Vec::new();
        while let Some(wake) = self.next_ms() {
            if wake > now_ms {
                break;
            }
            let Reverse((_, name)) = self.heap.pop().expect("invariant: peeked");
            if let Some((_, at)) = self.next.remove(&name) {
                due.push((name, at));
            }
        }
        due
    }
}
