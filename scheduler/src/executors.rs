//! The leader's soft state about executors: who is connected, with which tags, what
//! each is running, and the lease of every execution handed out.
//!
//! Nothing here is replicated. A new leader starts empty; executors re-register with
//! it and report what they still run, and every active execution gets a fresh lease
//! from the moment the leader became ready.
//!
//! Leases: an execution is alive while its executor keeps confirming it — by our
//! assignment, then by listing it in heartbeats. When no confirmation came for
//! `lease` (the executor died, was cut off, or never got the assignment), the leader
//! records the attempt `lost`.
//!
//! Choosing executors for a fire happens here too, because it reads this state.
//!
//! # Sending an assignment again
//! A committed execution can miss its executor: the leader dies between the commit
//! and the send, or the stream breaks with the assignment in flight. Sending it again
//! is safe only if the run cannot have started anywhere, so the rule is narrow:
//! every execution records the *boot id* of the executor process it was handed to
//! (random, fixed for the life of that process), and when an executor registers, the
//! still-pending executions recorded for its id **and its boot id** that its Hello
//! does not list — neither among the runs it holds nor among its unacknowledged
//! reports — are sent to it again ([`never_received`]). That process never got them:
//! its memory is continuous, it lists everything it got (a run files its report
//! before leaving the registry, and the Hello lists runs before reports), and its
//! earlier streams are closed before it says Hello again. A restarted executor has a
//! new boot id: what its earlier process held may have run before it died, so those
//! executions are left to their lease (`lost`, then the retry policy).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kairos_common::ids::{ExecutionId, ExecutorId};
use kairos_common::selector::Selector;
use kairos_common::status::TargetStrategy;
use kairos_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::time::ts_from_dt;

/// Messages buffered per executor stream. When full, the send fails rather than
/// blocking, and the execution waits for its lease: sent again if the same executor
/// process says Hello again in time, else recorded `lost`.
pub const EXECUTOR_QUEUE: usize = 1024;

struct Conn {
    session: u64,
    /// The executor process's boot id (`Hello.boot_id`).
    boot: String,
    tags: BTreeMap<String, String>,
    capacity: u32,
    version: String,
    tx: mpsc::Sender<pb::SchedulerMessage>,
    token: CancellationToken,
    connected_at: DateTime<Utc>,
    last_heartbeat_at: DateTime<Utc>,
    /// Executions this executor runs, as far as we know (assigned or reported).
    running: BTreeSet<ExecutionId>,
    /// It is shutting down: it finishes what it holds and is chosen for nothing new.
    draining: bool,
}

#[derive(Default)]
struct Inner {
    conns: BTreeMap<ExecutorId, Conn>,
    next_session: u64,
    /// Last confirmation of each execution's lease.
    confirmed: HashMap<ExecutionId, Instant>,
    /// Rotates ties for the spread strategy.
    round_robin: u64,
}

/// Why an assignment could not be handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    NotConnected,
    QueueFull,
}

/// Connected executors (leader only).
pub struct ExecutorRegistry {
    inner: Mutex<Inner>,
    scheduler_id: u64,
}

impl std::fmt::Debug for ExecutorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorRegistry").finish_non_exhaustive()
    }
}

impl ExecutorRegistry {
    pub fn new(scheduler_id: u64) -> ExecutorRegistry {
        ExecutorRegistry {
            inner: Mutex::new(Inner::default()),
            scheduler_id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("invariant: registry lock is never poisoned")
    }

    /// Registers an executor's stream, replacing (and closing) an older stream of the
    /// same executor. Returns the session number and the token that ends the session.
    pub fn register(
        &self,
        hello: &pb::Hello,
        tx: mpsc::Sender<pb::SchedulerMessage>,
        now: DateTime<Utc>,
    ) -> (u64, CancellationToken) {
        let mut inner = self.lock();
        inner.next_session += 1;
        let session = inner.next_session;
        let token = CancellationToken::new();
        let running: BTreeSet<ExecutionId> = hello
            .running
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        let at = Instant::now();
        for id in &running {
            inner.confirmed.insert(*id, at);
        }
        let conn = Conn {
            session,
            boot: hello.boot_id.clone(),
            tags: hello.tags.clone().into_iter().collect(),
            capacity: hello.capacity.max(1),
            version: hello.version.clone(),
            tx,
            token: token.clone(),
            connected_at: now,
            last_heartbeat_at: now,
            running,
            draining: hello.draining,
        };
        if let Some(old) = inner
            .conns
            .insert(ExecutorId::from(hello.executor_id.as_str()), conn)
        {
            old.token.cancel();
        }
        (session, token)
    }

    /// Removes the executor if `session` is still its current one.
    pub fn unregister(&self, executor: &str, session: u64) {
        let mut inner = self.lock();
        if inner
            .conns
            .get(executor)
            .is_some_and(|c| c.session == session)
            && let Some(c) = inner.conns.remove(executor)
        {
            c.token.cancel();
        }
    }

    /// Drops every executor (this node stopped leading); their streams end.
    pub fn clear(&self) {
        let mut inner = self.lock();
        for (_, c) in std::mem::take(&mut inner.conns) {
            c.token.cancel();
        }
        inner.confirmed.clear();
    }

    /// A heartbeat: renews the lease of every execution it lists.
    pub fn heartbeat(&self, executor: &str, session: u64, running: &[String], now: DateTime<Utc>) {
        let mut inner = self.lock();
        let at = Instant::now();
        let ids: BTreeSet<ExecutionId> = running.iter().filter_map(|id| id.parse().ok()).collect();
        for id in &ids {
            inner.confirmed.insert(*id, at);
        }
        if let Some(c) = inner.conns.get_mut(executor)
            && c.session == session
        {
            c.last_heartbeat_at = now;
            c.running = ids;
        }
    }

    /// The executor said it is shutting down: choose it for nothing new.
    pub fn set_draining(&self, executor: &str, session: u64) {
        let mut inner = self.lock();
        if let Some(c) = inner.conns.get_mut(executor)
            && c.session == session
        {
            c.draining = true;
        }
    }

    /// Hands `msg` to the executor's stream without waiting.
    pub fn send(&self, executor: &str, msg: pb::SchedulerMessage) -> Result<(), SendError> {
        let inner = self.lock();
        let conn = inner.conns.get(executor).ok_or(SendError::NotConnected)?;
        conn.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendError::NotConnected,
        })
    }

    /// Records that `id` was handed to `executor`: its lease starts now.
    pub fn note_assigned(&self, executor: &str, id: ExecutionId) {
        let mut inner = self.lock();
        inner.confirmed.insert(id, Instant::now());
        if let Some(c) = inner.conns.get_mut(executor) {
            c.running.insert(id);
        }
    }

    /// Forgets a finished execution.
    pub fn note_finished(&self, executor: &str, id: ExecutionId) {
        let mut inner = self.lock();
        inner.confirmed.remove(&id);
        if let Some(c) = inner.conns.get_mut(executor) {
            c.running.remove(&id);
        }
    }

    /// True while the execution's lease holds. Executions this leader has never heard
    /// of are leased from `leader_since`, giving executors time to reconnect.
    pub fn lease_holds(&self, id: ExecutionId, leader_since: Instant, lease: Duration) -> bool {
        let inner = self.lock();
        let last = inner
            .confirmed
            .get(&id)
            .copied()
            .unwrap_or(leader_since)
            .max(leader_since);
        last.elapsed() < lease
    }

    /// The boot id of the process connected as `executor`; empty if none.
    pub fn boot_of(&self, executor: &str) -> String {
        self.lock()
            .conns
            .get(executor)
            .map(|c| c.boot.clone())
            .unwrap_or_default()
    }

    /// Picks up to `count` matching executors (0 = all) for a fire of `job`; an
    /// executor that is draining (shutting down) is never chosen.
    /// Executors with free capacity come first; when every match is full, the
    /// least loaded are used anyway (capacity is advice, not a hard limit).
    pub fn choose(
        &self,
        selector: &Selector,
        count: u32,
        strategy: TargetStrategy,
        job: &str,
        avoid: Option<&str>,
    ) -> Vec<ExecutorId> {
        let mut inner = self.lock();
        let mut matches: Vec<(&ExecutorId, &Conn)> = inner
            .conns
            .iter()
            .filter(|(_, c)| !c.draining && selector.matches(&c.tags))
            .collect();
        if matches.is_empty() {
            return Vec::new();
        }
        // A retry goes elsewhere when anywhere else will do.
        if let Some(avoid) = avoid
            && matches.iter().any(|(n, _)| n.as_str() != avoid)
        {
            matches.retain(|(n, _)| n.as_str() != avoid);
        }
        let want = if count == 0 {
            matches.len()
        } else {
            (count as usize).min(matches.len())
        };
        let chosen: Vec<ExecutorId> = match strategy {
            TargetStrategy::Hash => {
                // Rendezvous hashing: the same job keeps the same executor while it is
                // connected, and only its jobs move when it leaves.
                matches.sort_by_key(|(name, _)| std::cmp::Reverse(rendezvous(job, name.as_str())));
                matches
                    .iter()
                    .take(want)
                    .map(|(n, _)| (*n).clone())
                    .collect()
            }
            TargetStrategy::Random => {
                use rand::seq::SliceRandom;
                matches.shuffle(&mut rand::rng());
                matches
                    .iter()
                    .take(want)
                    .map(|(n, _)| (*n).clone())
                    .collect()
            }
            TargetStrategy::LeastLoaded => {
                matches.sort_by(|(an, a), (bn, b)| {
                    let la = a.running.len() as f64 / f64::from(a.capacity);
                    let lb = b.running.len() as f64 / f64::from(b.capacity);
                    la.total_cmp(&lb).then_with(|| an.cmp(bn))
                });
                matches
                    .iter()
                    .take(want)
                    .map(|(n, _)| (*n).clone())
                    .collect()
            }
            TargetStrategy::Spread => {
                // Fewest running first; ties rotate so equal executors take turns.
                let offset = (inner.round_robin as usize) % matches.len();
                matches.rotate_left(offset);
                matches.sort_by_key(|(_, c)| {
                    (c.running.len() >= c.capacity as usize, c.running.len())
                });
                matches
                    .iter()
                    .take(want)
                    .map(|(n, _)| (*n).clone())
                    .collect()
            }
        };
        if strategy == TargetStrategy::Spread {
            inner.round_robin = inner.round_robin.wrapping_add(1);
        }
        chosen
    }

    /// What every connected executor looks like, for status pages.
    pub fn statuses(&self) -> Vec<pb::ExecutorStatus> {
        let inner = self.lock();
        inner
            .conns
            .iter()
            .map(|(id, c)| pb::ExecutorStatus {
                id: id.to_string(),
                tags: c.tags.clone().into_iter().collect(),
                capacity: c.capacity,
                running: c.running.len() as u32,
                connected_at: Some(ts_from_dt(c.connected_at)),
                last_heartbeat_at: Some(ts_from_dt(c.last_heartbeat_at)),
                scheduler_id: self.scheduler_id,
                version: c.version.clone(),
                draining: c.draining,
            })
            .collect()
    }

    pub fn connected(&self) -> usize {
        self.lock().conns.len()
    }

    /// Messages waiting in every executor's outbound stream.
    pub fn queued(&self) -> usize {
        self.lock()
            .conns
            .values()
            .map(|c| c.tx.max_capacity() - c.tx.capacity())
            .sum()
    }
}

/// A stable pseudo-random weight of (job, executor) for rendezvous hashing (FNV-1a).
fn rendezvous(job: &str, executor: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes().chain([0u8]).chain(executor.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The executions to send again to an executor that has just said `hello`: pending,
/// assigned to this executor id and to this very process (boot id), and not listed by
/// it as held or as awaiting an ack. See the module documentation for why that is
/// exactly the set it never received. `candidates` are the leader's active
/// executions' records.
pub fn never_received<'a>(
    hello: &pb::Hello,
    candidates: impl IntoIterator<Item = &'a pb::Execution>,
) -> Vec<&'a pb::Execution> {
    if hello.boot_id.is_empty() {
        return Vec::new();
    }
    let held: BTreeSet<&str> = hello
        .running
        .iter()
        .chain(&hello.unreported)
        .map(String::as_str)
        .collect();
    candidates
        .into_iter()
        .filter(|e| {
            e.executor == hello.executor_id
                && e.executor_boot == hello.boot_id
                && e.status == kairos_common::status::ExecutionStatus::Pending.as_str()
                && !held.contains(e.id.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str, executor: &str, boot: &str, status: &str) -> pb::Execution {
        pb::Execution {
            id: id.into(),
            executor: executor.into(),
            executor_boot: boot.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn hello(boot: &str, running: &[&str], unreported: &[&str]) -> pb::Hello {
        pb::Hello {
            executor_id: "e1".into(),
            boot_id: boot.into(),
            running: running.iter().map(|s| s.to_string()).collect(),
            unreported: unreported.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn ids(v: Vec<&pb::Execution>) -> Vec<&str> {
        v.into_iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn only_what_this_very_process_never_got_is_sent_again() {
        let active = [
            exec("1", "e1", "b1", "pending"), // never got it: sent again
            exec("2", "e1", "b1", "pending"), // holds it (waiting or running)
            exec("3", "e1", "b1", "pending"), // ran it, report not acked
            exec("4", "e1", "b1", "running"), // started: never again
            exec("5", "e1", "b0", "pending"), // an earlier process: maybe ran
            exec("6", "e2", "b1", "pending"), // another executor
            exec("7", "e1", "", "pending"),   // no boot recorded
        ];
        assert_eq!(
            ids(never_received(&hello("b1", &["2"], &["3"]), &active)),
            ["1"]
        );
        // A restarted process (new boot id) gets nothing again.
        assert!(never_received(&hello("b2", &[], &[]), &active).is_empty());
        // An executor that does not say its boot id gets nothing again.
        assert!(never_received(&hello("", &[], &[]), &active).is_empty());
    }
}
