//! The leader's duties: turning instants into committed fires (ahead of time),
//! handling instants missed while no leader existed, firing due retries and queued
//! starts, and turning silent executions into `lost` ones.
//!
//! A watcher follows the raft status. When this node becomes a *ready* leader (it
//! has applied an entry of its own term, so its state holds everything committed
//! before), it starts the duties with a fresh cancellation token; when it stops being
//! leader, it cancels them at once and drops every executor stream, so executors go
//! and find the new leader.
//!
//! # The schedule loop
//! Every schedulable job sits in a timer keyed by `instant - LOOKAHEAD`: fires are
//! committed [`LOOKAHEAD`] before their instant, so raft is off the hot path of a fire;
//! the assignment carries `start_at` and the executor starts the process on a precise
//! local timer. Jobs whose concurrency is not `allow` are committed at the instant
//! instead: their policy is judged against what runs when the fire is committed.
//! Everything due at one wake-up is proposed as ONE `FireBatch` (one raft
//! entry, one fsync). The state machine accepts a scheduled fire only for an instant
//! after the job's cursor, so a fire planned twice is recorded once.
//!
//! # Misfires
//! Instants after a job's cursor and before the moment this node became leader
//! passed while no leader could fire them. They are handled once, when the duties
//! start (or when such a job is first seen), by the job's misfire policy: `skip`
//! records them all `missed`; `run_once` runs the newest one inside the window
//! (trigger `catchup`) and records the rest `missed`; `run_all` runs every one inside
//! the window, oldest first. Instants older than the window are `missed` whatever the
//! policy. Instants after the takeover are never misfires: they fire, late if need be.
//!
//! # Executors reconnecting
//! For [`RECONNECT_GRACE`] after taking over, a fire that finds no matching executor
//! is held and retried rather than recorded `no_target`: the executors were connected
//! to the old leader and are on their way.
//!
//! # Leases
//! An active execution whose executor has confirmed nothing for [`LEASE`] (no
//! heartbeat listing it; the lease starts with the assignment, or with the takeover)
//! is recorded `lost`, and the retry policy decides what happens next.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kairos_common::status::{Concurrency, MisfirePolicy, Trigger};
use kairos_proto::internal as ipb;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::core::Core;
use crate::state::JobEntry;
use crate::time::dt_from_ms;

/// Fires are committed this long before their instant.
pub const LOOKAHEAD: Duration = Duration::from_secs(2);
/// Longest sleep of the loop, so lease checks and clock jumps are noticed.
const MAX_IDLE: Duration = Duration::from_millis(500);
/// An execution whose executor confirmed nothing for this long is recorded lost.
pub const LEASE: Duration = Duration::from_secs(10);
/// After becoming leader, a fire that finds no matching executor waits up to this
/// long for executors to reconnect instead of being recorded `no_target` at once.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(5);
/// How often a fire held for reconnecting executors is retried.
const HOLD_RETRY: Duration = Duration::from_millis(100);
/// Fires per raft entry; larger due sets are split into several entries.
const MAX_FIRES_PER_BATCH: usize = 2048;
/// Missed instants looked at per job per pass (a longer outage takes several passes).
const MAX_MISSED_SCAN: usize = 100_000;
/// Catch-up runs per job per pass under `run_all`; older instants are missed.
const MAX_CATCHUP_RUNS: usize = 1000;

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
                core.live.clear();
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

struct Duties {
    /// When each backfill last started a run (its rate limit).
    backfill_starts: BTreeMap<u64, Instant>,
    core: Arc<Core>,
    timer: Timer,
    /// Jobs with instants missed before the takeover, to handle by misfire policy.
    misfired: BTreeMap<String, i64>,
    /// When this node became leader (Unix ms): the misfire boundary.
    leader_since_ms: i64,
    started: Instant,
}

async fn run_duties(core: Arc<Core>, token: CancellationToken) {
    if let Err(e) = core.ensure_member_addrs().await {
        warn!(error = %e, "could not record the members' addresses");
    }
    let mut d = Duties {
        leader_since_ms: core.clock.now().timestamp_millis(),
        core: core.clone(),
        timer: Timer::default(),
        misfired: BTreeMap::new(),
        started: Instant::now(),
        backfill_starts: BTreeMap::new(),
    };
    for entry in core.view.all_jobs() {
        d.update(&entry);
    }
    // Anything that changed before the rebuild is already in it.
    let _ = core.view.take_dirty_jobs();
    let mut last_lease_check = Instant::now();
    loop {
        if token.is_cancelled() {
            return;
        }
        let mut dequeue = Vec::new();
        for name in core.view.take_dirty_jobs() {
            match core.view.job(&name) {
                Some(entry) => {
                    d.update(&entry);
                    if queued_ready(&entry) {
                        dequeue.push(entry);
                    }
                }
                None => {
                    d.timer.remove(&name);
                    d.misfired.remove(&name);
                }
            }
        }
        let now_ms = core.clock.now().timestamp_millis();
        let mut worked = false;
        if !d.misfired.is_empty() {
            worked |= d.handle_misfires(now_ms).await;
        }
        if !dequeue.is_empty() {
            d.start_queued(dequeue).await;
            worked = true;
        }
        let due = d.timer.take_due(now_ms);
        if !due.is_empty() {
            d.fire_due(due).await;
            worked = true;
        }
        if core
            .view
            .next_retry_ms()
            .is_some_and(|due| due - LOOKAHEAD.as_millis() as i64 <= now_ms)
        {
            d.fire_retries(now_ms).await;
            worked = true;
        }
        let dependencies = core.view.dependencies();
        if !dependencies.is_empty() {
            worked |= d.start_dependencies(dependencies).await;
        }
        let backfills = core.view.backfills();
        let mut backfill_wake = None;
        if !backfills.is_empty() {
            let (fired, wake) = d.advance_backfills(backfills).await;
            worked |= fired;
            backfill_wake = wake;
        }
        if last_lease_check.elapsed() >= Duration::from_secs(1) {
            check_leases(&core).await;
            last_lease_check = Instant::now();
        }
        if worked {
            continue;
        }
        let mut wake = d.timer.next_ms().unwrap_or(i64::MAX);
        if let Some(retry) = core.view.next_retry_ms() {
            wake = wake.min(retry - LOOKAHEAD.as_millis() as i64);
        }
        if !d.misfired.is_empty() || !core.view.dependencies().is_empty() {
            wake = wake.min(now_ms + HOLD_RETRY.as_millis() as i64);
        }
        if let Some(b) = backfill_wake {
            wake = wake.min(b);
        }
        let wait = Duration::from_millis(wake.saturating_sub(now_ms).max(0) as u64).min(MAX_IDLE);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = core.view.jobs_changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A queued start can go once nothing of the job is running.
fn queued_ready(entry: &JobEntry) -> bool {
    entry.record.queued.is_some()
        && entry
            .record
            .job
            .as_ref()
            .and_then(|j| j.status.as_ref())
            .is_none_or(|s| s.running == 0)
}

impl Duties {
    fn in_grace(&self) -> bool {
        self.started.elapsed() < RECONNECT_GRACE
    }

    /// (Re)computes the job's next instant from its stored cursor.
    fn update(&mut self, entry: &JobEntry) {
        let name = entry.name().to_string();
        if entry.spec.paused || entry.spec.schedule.is_manual() {
            self.timer.remove(&name);
            self.misfired.remove(&name);
            return;
        }
        match entry
            .spec
            .next_fire_after(dt_from_ms(entry.record.cursor_ms))
        {
            Some(at) if at.timestamp_millis() < self.leader_since_ms => {
                self.timer.remove(&name);
                self.misfired.insert(name, entry.version() as i64);
            }
            Some(at) => {
                self.misfired.remove(&name);
                let at = at.timestamp_millis();
                // A concurrency policy other than allow is judged when the fire is
                // committed: commit at the instant itself, so a run that ends just
                // before it does not count as an overlap.
                let lookahead = if entry.spec.concurrency == Concurrency::Allow {
                    LOOKAHEAD.as_millis() as i64
                } else {
                    0
                };
                self.timer.set(name, at - lookahead, at);
            }
            None => {
                self.timer.remove(&name);
                self.misfired.remove(&name);
            }
        }
    }

    /// Applies each misfired job's policy in one batch. Returns whether anything was
    /// proposed.
    async fn handle_misfires(&mut self, now_ms: i64) -> bool {
        let core = self.core.clone();
        let mut fires = Vec::new();
        let mut misses = Vec::new();
        let mut planned = Vec::new();
        let names: Vec<String> = self.misfired.keys().cloned().collect();
        for name in names {
            let Some(entry) = core.view.job(&name) else {
                self.misfired.remove(&name);
                continue;
            };
            let plan = plan_misfire(&entry, self.leader_since_ms, now_ms);
            if plan.runs.is_empty() && plan.miss.is_none() {
                self.misfired.remove(&name);
                self.update(&entry);
                continue;
            }
            let mut run_fires = Vec::new();
            let mut held = false;
            for at in &plan.runs {
                let fire = core.plan_fire(&entry, *at, Trigger::Catchup, None);
                if fire.executors.is_empty() && self.in_grace() {
                    held = true;
                    break;
                }
                run_fires.push(fire);
            }
            if held {
                continue; // try again shortly
            }
            self.misfired.remove(&name);
            info!(
                job = %name,
                policy = %entry.spec.misfire.policy,
                missed = plan.miss.as_ref().map_or(0, |m| m.total),
                catchup = run_fires.len(),
                "instants missed while no leader could fire them"
            );
            fires.extend(run_fires);
            misses.extend(plan.miss);
            planned.push(name);
        }
        if fires.is_empty() && misses.is_empty() {
            return false;
        }
        if let Err(e) = core.fire(fires, misses).await {
            warn!(error = %e, "misfire batch not committed");
        }
        for name in planned {
            if let Some(entry) = core.view.job(&name) {
                self.update(&entry);
            }
        }
        true
    }

    async fn fire_due(&mut self, due: Vec<(String, i64)>) {
        let core = self.core.clone();
        let mut fires = Vec::with_capacity(due.len());
        let mut planned: Vec<(String, i64)> = Vec::with_capacity(due.len());
        let now_ms = core.clock.now().timestamp_millis();
        for (name, at_ms) in due {
            let Some(entry) = core.view.job(&name) else {
                self.timer.remove(&name);
                continue;
            };
            let fire = core.plan_fire(&entry, at_ms, Trigger::Schedule, None);
            // Executors are probably still finding this new leader, or the job asked to
            // wait for a matching one (`target.wait`): hold the fire.
            let waiting = entry
                .spec
                .target
                .wait
                .is_some_and(|w| now_ms < at_ms + w.as_millis() as i64);
            if fire.executors.is_empty() && (self.in_grace() || waiting) {
                self.timer
                    .set(name, now_ms + HOLD_RETRY.as_millis() as i64, at_ms);
                continue;
            }
            fires.push(fire);
            planned.push((name, at_ms));
        }
        for chunk in fires.chunks(MAX_FIRES_PER_BATCH) {
            if let Err(e) = core.fire(chunk.to_vec(), Vec::new()).await {
                warn!(error = %e, fires = chunk.len(), "fire batch not committed");
            }
        }
        // The state now says where each job stands: a committed fire moved its
        // cursor, a refused one did not. Re-plan from the stored state.
        for (name, at_ms) in planned {
            match core.view.job(&name) {
                Some(entry) if entry.record.cursor_ms < at_ms && entry.version() != 0 => {
                    // Not committed (no quorum, deposed): come back to it.
                    let retry = core.clock.now().timestamp_millis() + MAX_IDLE.as_millis() as i64;
                    self.timer.set(name, retry, at_ms);
                }
                Some(entry) => self.update(&entry),
                None => self.timer.remove(&name),
            }
        }
    }

    /// Fires every retry due within the lookahead.
    async fn fire_retries(&mut self, now_ms: i64) {
        let core = self.core.clone();
        let horizon = now_ms + LOOKAHEAD.as_millis() as i64;
        let mut fires = Vec::new();
        for r in core.view.retries() {
            if r.due_ms > horizon {
                break;
            }
            let Some(entry) = core.view.job(&r.job) else {
                continue;
            };
            let mut fire = core.plan_fire(
                &entry,
                r.scheduled_at_ms,
                Trigger::Retry,
                Some(&r.previous_executor),
            );
            if fire.executors.is_empty() && self.in_grace() {
                continue;
            }
            fire.attempt = r.attempt;
            fire.retry_of = r.retry_of;
            fire.job_version = 0;
            fire.start_at_ms = r.due_ms.max(now_ms);
            fires.push(fire);
        }
        if fires.is_empty() {
            // Held for reconnecting executors: look again shortly.
            tokio::time::sleep(HOLD_RETRY).await;
            return;
        }
        if let Err(e) = core.fire(fires, Vec::new()).await {
            warn!(error = %e, "retry batch not committed");
            tokio::time::sleep(HOLD_RETRY).await;
        }
    }

    /// Starts the children whose parent's run ended as they asked. Returns whether
    /// anything was proposed.
    async fn start_dependencies(&mut self, pending: Vec<ipb::DependencyRecord>) -> bool {
        let core = self.core.clone();
        let mut fires = Vec::new();
        for d in pending {
            let Some(entry) = core.view.job(&d.child) else {
                continue;
            };
            let mut fire = core.plan_fire(&entry, d.scheduled_at_ms, Trigger::Dependency, None);
            if fire.executors.is_empty() && self.in_grace() {
                continue;
            }
            fire.parent_execution = d.parent_execution;
            fire.job_version = 0;
            fire.start_at_ms = core.clock.now().timestamp_millis();
            fires.push(fire);
        }
        if fires.is_empty() {
            return false;
        }
        if let Err(e) = core.fire(fires, Vec::new()).await {
            warn!(error = %e, "dependency starts not committed");
        }
        true
    }

    /// Starts the next instant of each backfill that has room (fewer than `parallel`
    /// runs active) and whose rate allows it. Returns whether anything was proposed
    /// and when to look again.
    async fn advance_backfills(
        &mut self,
        backfills: Vec<ipb::BackfillRecord>,
    ) -> (bool, Option<i64>) {
        let core = self.core.clone();
        let now_ms = core.clock.now().timestamp_millis();
        let active = core.view.active();
        let mut fires = Vec::new();
        let mut wake: Option<i64> = None;
        for b in &backfills {
            let running = active.iter().filter(|a| a.backfill == b.id).count() as u32;
            if running >= b.parallel {
                continue;
            }
            let period = Duration::from_secs_f64(1.0 / b.rate.max(0.001));
            if let Some(last) = self.backfill_starts.get(&b.id)
                && last.elapsed() < period
            {
                let left = (period - last.elapsed()).as_millis() as i64;
                wake = Some(wake.map_or(now_ms + left, |w| w.min(now_ms + left)));
                continue;
            }
            let Some(entry) = core.view.job(&b.job) else {
                continue;
            };
            let Some(at) = entry.spec.schedule.next_after(dt_from_ms(b.cursor_ms)) else {
                continue;
            };
            let mut fire = core.plan_fire(&entry, at.timestamp_millis(), Trigger::Backfill, None);
            if fire.executors.is_empty() && self.in_grace() {
                continue;
            }
            fire.backfill = b.id;
            fire.job_version = 0;
            fire.start_at_ms = now_ms;
            self.backfill_starts.insert(b.id, Instant::now());
            fires.push(fire);
        }
        let live: std::collections::BTreeSet<u64> = backfills.iter().map(|b| b.id).collect();
        self.backfill_starts.retain(|id, _| live.contains(id));
        if fires.is_empty() {
            return (false, wake);
        }
        if let Err(e) = core.fire(fires, Vec::new()).await {
            warn!(error = %e, "backfill starts not committed");
        }
        (true, wake)
    }

    /// Starts the queued start of each job whose running execution ended.
    async fn start_queued(&mut self, entries: Vec<Arc<JobEntry>>) {
        let core = self.core.clone();
        let mut fires = Vec::new();
        for entry in entries {
            let Some(q) = entry.record.queued.clone() else {
                continue;
            };
            let trigger = q.trigger.parse().unwrap_or(Trigger::Schedule);
            let mut fire = core.plan_fire(&entry, q.scheduled_at_ms, trigger, None);
            fire.dequeue = true;
            fire.attempt = q.attempt.max(1);
            fire.job_version = 0;
            fires.push(fire);
        }
        if let Err(e) = core.fire(fires, Vec::new()).await {
            warn!(error = %e, "queued starts not committed");
        }
    }
}

/// What to do about a job's instants missed before the takeover.
struct MisfirePlan {
    /// Instants to run now (trigger catchup), oldest first.
    runs: Vec<i64>,
    miss: Option<ipb::Miss>,
}

fn plan_misfire(entry: &JobEntry, leader_since_ms: i64, now_ms: i64) -> MisfirePlan {
    let spec = &entry.spec;
    let mut instants: Vec<i64> = Vec::new();
    let mut after: DateTime<Utc> = dt_from_ms(entry.record.cursor_ms);
    while instants.len() < MAX_MISSED_SCAN {
        match spec.next_fire_after(after) {
            Some(at) if at.timestamp_millis() < leader_since_ms => {
                instants.push(at.timestamp_millis());
                after = at;
            }
            _ => break,
        }
    }
    let window_start = now_ms - spec.misfire.window.as_millis() as i64;
    let split = instants.partition_point(|at| *at < window_start);
    let (old, in_window) = instants.split_at(split);
    let (mut missed, runs): (Vec<i64>, Vec<i64>) = match spec.misfire.policy {
        MisfirePolicy::Skip => (instants.clone(), Vec::new()),
        MisfirePolicy::RunOnce => match in_window.split_last() {
            Some((last, rest)) => {
                let mut m = old.to_vec();
                m.extend_from_slice(rest);
                (m, vec![*last])
            }
            None => (instants.clone(), Vec::new()),
        },
        MisfirePolicy::RunAll => {
            let cut = in_window.len().saturating_sub(MAX_CATCHUP_RUNS);
            let mut m = old.to_vec();
            m.extend_from_slice(&in_window[..cut]);
            (m, in_window[cut..].to_vec())
        }
    };
    missed.sort_unstable();
    let miss = missed.last().map(|up_to| {
        let keep = spec.history_keep.max(1) as usize;
        ipb::Miss {
            job: entry.name().to_string(),
            job_version: entry.version(),
            up_to_ms: *up_to,
            total: missed.len() as u64,
            recorded_ms: missed[missed.len().saturating_sub(keep)..].to_vec(),
            policy: spec.misfire.policy.as_str().to_string(),
        }
    });
    MisfirePlan { runs, miss }
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
        warn!(execution = %a.id, job = %a.job, executor = %a.executor, "lease expired: execution lost");
        if let Err(e) = core.finish_lost(a.id, &a.executor, &why).await {
            debug!(execution = %a.id, error = %e, "could not record the lost execution");
        }
    }
}

/// Jobs ordered by when to wake for them. Entries are replaced lazily: the heap may
/// hold stale wake-ups for a job; only the one equal to `next[job].0` counts.
#[derive(Default)]
struct Timer {
    heap: BinaryHeap<Reverse<(i64, String)>>,
    /// job → (wake-up, instant to fire).
    next: BTreeMap<String, (i64, i64)>,
}

impl Timer {
    fn set(&mut self, name: String, wake_ms: i64, at_ms: i64) {
        if self.next.get(&name) == Some(&(wake_ms, at_ms)) {
            return;
        }
        self.next.insert(name.clone(), (wake_ms, at_ms));
        self.heap.push(Reverse((wake_ms, name)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_returns_due_jobs_in_order_and_forgets_replaced_wakeups() {
        let mut t = Timer::default();
        t.set("a".into(), 100, 102);
        t.set("b".into(), 50, 52);
        t.set("a".into(), 200, 202); // replaces a's first wake-up
        assert_eq!(t.next_ms(), Some(50));
        assert_eq!(t.take_due(150), vec![("b".to_string(), 52)]);
        assert_eq!(t.take_due(199), vec![]);
        assert_eq!(t.take_due(200), vec![("a".to_string(), 202)]);
        t.set("c".into(), 10, 12);
        t.remove("c");
        assert_eq!(t.next_ms(), None);
    }

    fn entry(policy: &str, window: &str, cursor_ms: i64) -> JobEntry {
        let doc = kairos_proto::v1::Job {
            name: "j".into(),
            schedule: "@every 1s".into(),
            action: Some(kairos_proto::v1::job::Action::Shell(
                kairos_proto::v1::ShellAction {
                    command: "true".into(),
                    ..Default::default()
                },
            )),
            misfire: Some(kairos_proto::v1::Misfire {
                policy: policy.into(),
                window: window.into(),
            }),
            history: Some(kairos_proto::v1::History { keep: 10 }),
            version: 7,
            ..Default::default()
        };
        let spec = kairos_common::job::validate(&doc).unwrap();
        JobEntry {
            record: ipb::JobRecord {
                job: Some(doc),
                history_len: 0,
                cursor_ms,
                queued: None,
            },
            spec,
        }
    }

    // All schedulers were down from 1_000_000 (the cursor) to 1_030_500: thirty
    // instants (1_001_000 ..= 1_030_000) passed with no leader.
    const CURSOR: i64 = 1_000_000;
    const TAKEOVER: i64 = 1_030_500;

    #[test]
    fn run_once_runs_the_newest_missed_instant_and_records_the_rest() {
        let plan = plan_misfire(&entry("run_once", "1m", CURSOR), TAKEOVER, TAKEOVER);
        assert_eq!(plan.runs, vec![1_030_000]);
        let miss = plan.miss.unwrap();
        assert_eq!(miss.total, 29);
        assert_eq!(miss.up_to_ms, 1_029_000);
        assert_eq!(
            miss.recorded_ms.len(),
            10,
            "records only what history keeps"
        );
        assert_eq!(miss.job_version, 7);
    }

    #[test]
    fn skip_records_every_missed_instant_and_runs_none() {
        let plan = plan_misfire(&entry("skip", "1m", CURSOR), TAKEOVER, TAKEOVER);
        assert!(plan.runs.is_empty());
        let miss = plan.miss.unwrap();
        assert_eq!(miss.total, 30);
        assert_eq!(miss.up_to_ms, 1_030_000);
    }

    #[test]
    fn run_all_runs_every_instant_inside_the_window_oldest_first() {
        let plan = plan_misfire(&entry("run_all", "1m", CURSOR), TAKEOVER, TAKEOVER);
        assert_eq!(plan.runs.len(), 30);
        assert_eq!(plan.runs.first(), Some(&1_001_000));
        assert!(plan.runs.windows(2).all(|w| w[0] < w[1]));
        assert!(plan.miss.is_none());
    }

    #[test]
    fn instants_older_than_the_window_are_missed_whatever_the_policy() {
        // Window 10s: only 1_021_000..=1_030_000 are recent enough to run.
        let plan = plan_misfire(&entry("run_all", "10s", CURSOR), TAKEOVER, TAKEOVER);
        assert_eq!(plan.runs.first(), Some(&1_021_000));
        assert_eq!(plan.runs.len(), 10);
        assert_eq!(plan.miss.unwrap().total, 20);
        // With nothing inside the window, run_once runs nothing.
        let plan = plan_misfire(
            &entry("run_once", "1s", CURSOR),
            TAKEOVER,
            TAKEOVER + 60_000,
        );
        assert!(plan.runs.is_empty());
        assert_eq!(plan.miss.unwrap().total, 30);
    }

    #[test]
    fn instants_after_the_takeover_are_not_misfires() {
        let plan = plan_misfire(&entry("skip", "1m", TAKEOVER - 100), TAKEOVER, TAKEOVER);
        assert!(plan.runs.is_empty());
        assert!(plan.miss.is_none());
    }
}
