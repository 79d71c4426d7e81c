//! Prometheus metrics. Counters and histograms are bumped where things happen;
//! gauges that mirror state (jobs, executors, raft figures) and the raft layer's own
//! counts are brought up to date at scrape time ([`Metrics::scrape`]).
//!
//! Series (every name starts with `kairos_`):
//! - `fire_lateness_seconds` (histogram): a scheduled fire's instant → its process
//!   start, as the executor reports it; observed by the leader for trigger `schedule`.
//! - `executions_created_total{status,trigger}`: executions recorded by fires —
//!   `pending`, or an outcome decided at once (`missed` = a misfire, `skipped_*`,
//!   `no_target`); `executions_finished_total{status,trigger}`: final statuses;
//!   `retries_scheduled_total`: failed attempts given another.
//! - `raft_*`: term, commit and applied index, `apply_lag` (commit − applied),
//!   `is_leader`, `leader_changes_total`, `proposals_total{result}`,
//!   `proposal_commit_seconds` (propose → applied, on the proposing node),
//!   `snapshots_made_total`, `snapshot_seconds_total` (time spent making them),
//!   `snapshots_installed_total`.
//! - `jobs`, `executions_active`, `executors_connected`, `dispatch_queue_depth`
//!   (messages waiting in executors' streams), `webhooks_total{result}`.
//! - `process_*` (resident memory, CPU seconds, open and max file descriptors, start
//!   time), from /proc.

use std::sync::Mutex;

use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use kairos_common::status::{ExecutionStatus, Trigger};

use crate::raft::RaftCounters;

/// Lateness buckets: from a fraction of a millisecond (a start on time) to a minute.
const LATENESS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Commit latency buckets: one fsync on a fast disk to a slow election.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The node's metric registry.
pub struct Metrics {
    registry: Registry,
    lateness: Histogram,
    created: IntCounterVec,
    finished: IntCounterVec,
    retries: IntCounter,
    webhooks: IntCounterVec,
    proposals: IntCounterVec,
    commit_seconds: Histogram,
    leader_changes: IntCounter,
    snapshots_made: IntCounter,
    snapshot_seconds: Counter,
    snapshots_installed: IntCounter,
    /// The raft counts as of the last scrape, to add only what is new.
    raft_seen: Mutex<RaftCounters>,
    pub jobs: IntGauge,
    pub executors: IntGauge,
    pub active_executions: IntGauge,
    pub dispatch_queue: IntGauge,
    pub raft_term: IntGauge,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_apply_lag: IntGauge,
    pub is_leader: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .expect("invariant: metric definitions are valid")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("invariant: metric definitions are valid")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("invariant: metric definitions are valid")
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("invariant: metric definitions are valid")
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            lateness: histogram(
                "kairos_fire_lateness_seconds",
                "Scheduled instant to process start of scheduled runs, as executors report it",
                LATENESS_BUCKETS,
            ),
            created: counter_vec(
                "kairos_executions_created_total",
                "Executions recorded by fires, by initial status and trigger (missed = a misfire)",
                &["status", "trigger"],
            ),
            finished: counter_vec(
                "kairos_executions_finished_total",
                "Executions that reached a final status, by status and trigger",
                &["status", "trigger"],
            ),
            retries: counter(
                "kairos_retries_scheduled_total",
                "Failed, timed-out or lost attempts given another attempt",
            ),
            webhooks: counter_vec(
                "kairos_webhooks_total",
                "Webhook notifications by result: delivered, failed (after retries), dropped (queue full)",
                &["result"],
            ),
            proposals: counter_vec(
                "kairos_raft_proposals_total",
                "Commands proposed by this node, by result: committed, dropped (leadership moved before they entered the log), failed",
                &["result"],
            ),
            commit_seconds: histogram(
                "kairos_raft_proposal_commit_seconds",
                "Time from proposing a command to its being applied, on the proposing node",
                COMMIT_BUCKETS,
            ),
            leader_changes: counter(
                "kairos_raft_leader_changes_total",
                "Times this node saw a new leader",
            ),
            snapshots_made: counter(
                "kairos_raft_snapshots_made_total",
                "Snapshots made for followers that were behind the compacted log",
            ),
            snapshot_seconds: Counter::new(
                "kairos_raft_snapshot_seconds_total",
                "Time spent making snapshots",
            )
            .expect("invariant: metric definitions are valid"),
            snapshots_installed: counter(
                "kairos_raft_snapshots_installed_total",
                "Snapshots received from a leader and installed",
            ),
            raft_seen: Mutex::new(RaftCounters::default()),
            jobs: gauge("kairos_jobs", "Jobs stored"),
            executors: gauge(
                "kairos_executors_connected",
                "Executors connected to this node (leader only)",
            ),
            active_executions: gauge("kairos_executions_active", "Executions pending or running"),
            dispatch_queue: gauge(
                "kairos_dispatch_queue_depth",
                "Messages (assignments, cancels, acks) waiting to be sent down executors' streams",
            ),
            raft_term: gauge("kairos_raft_term", "Current raft term"),
            raft_commit_index: gauge("kairos_raft_commit_index", "Raft commit index"),
            raft_applied_index: gauge("kairos_raft_applied_index", "Raft applied index"),
            raft_apply_lag: gauge(
                "kairos_raft_apply_lag",
                "Entries committed but not yet applied on this node",
            ),
            is_leader: gauge("kairos_raft_is_leader", "1 when this node is the leader"),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.lateness.clone()),
            Box::new(m.created.clone()),
            Box::new(m.finished.clone()),
            Box::new(m.retries.clone()),
            Box::new(m.webhooks.clone()),
            Box::new(m.proposals.clone()),
            Box::new(m.commit_seconds.clone()),
            Box::new(m.leader_changes.clone()),
            Box::new(m.snapshots_made.clone()),
            Box::new(m.snapshot_seconds.clone()),
            Box::new(m.snapshots_installed.clone()),
            Box::new(m.jobs.clone()),
            Box::new(m.executors.clone()),
            Box::new(m.active_executions.clone()),
            Box::new(m.dispatch_queue.clone()),
            Box::new(m.raft_term.clone()),
            Box::new(m.raft_commit_index.clone()),
            Box::new(m.raft_applied_index.clone()),
            Box::new(m.raft_apply_lag.clone()),
            Box::new(m.is_leader.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry
                .register(c)
                .expect("invariant: metric names are unique");
        }
        // Every label set exists from the start at 0, so that a rate over it is
        // defined before the first event (and dashboards show a line, not a gap).
        for trigger in Trigger::ALL {
            for status in ExecutionStatus::ALL {
                if status.is_final() {
                    m.finished
                        .with_label_values(&[status.as_str(), trigger.as_str()]);
                }
                // A fire records `pending`, or an outcome decided at once.
                if status.is_final() || *status == ExecutionStatus::Pending {
                    m.created
                        .with_label_values(&[status.as_str(), trigger.as_str()]);
                }
            }
        }
        for result in ["delivered", "failed", "dropped"] {
            m.webhooks.with_label_values(&[result]);
        }
        for result in ["committed", "dropped", "failed"] {
            m.proposals.with_label_values(&[result]);
        }
        m
    }

    /// An execution recorded by a fire, with its initial status.
    pub fn created(&self, status: &str, trigger: &str) {
        self.created_by(status, trigger, 1);
    }

    /// `n` instants recorded with `status` at once (misses of an outage).
    pub fn created_by(&self, status: &str, trigger: &str, n: u64) {
        self.created.with_label_values(&[status, trigger]).inc_by(n);
    }

    pub fn webhook(&self, result: &str) {
        self.webhooks.with_label_values(&[result]).inc();
    }

    pub fn finished(&self, status: &str, trigger: &str) {
        self.finished.with_label_values(&[status, trigger]).inc();
    }

    pub fn retry_scheduled(&self) {
        self.retries.inc();
    }

    /// A scheduled run started `seconds` after its instant (negative: early, as 0).
    pub fn lateness(&self, seconds: f64) {
        self.lateness.observe(seconds.max(0.0));
    }

    /// A proposal's end: `result` is committed, dropped or failed.
    pub fn proposal(&self, result: &str, seconds: Option<f64>) {
        self.proposals.with_label_values(&[result]).inc();
        if let Some(s) = seconds {
            self.commit_seconds.observe(s);
        }
    }

    /// Brings the raft layer's counts into the registry (they only grow).
    pub fn raft_counters(&self, now: RaftCounters) {
        let mut seen = self
            .raft_seen
            .lock()
            .expect("invariant: the metrics lock is never poisoned");
        let add = |c: &IntCounter, now: u64, before: u64| c.inc_by(now.saturating_sub(before));
        add(
            &self.leader_changes,
            now.leader_changes,
            seen.leader_changes,
        );
        add(
            &self.snapshots_made,
            now.snapshots_made,
            seen.snapshots_made,
        );
        self.snapshot_seconds
            .inc_by(now.snapshot_micros.saturating_sub(seen.snapshot_micros) as f64 / 1e6);
        add(
            &self.snapshots_installed,
            now.snapshots_installed,
            seen.snapshots_installed,
        );
        *seen = now;
    }

    /// Fire lateness on this node (the leader observes it): the number of starts and
    /// the p50 and p99 in seconds, read off the histogram (the upper bound of the
    /// bucket the quantile falls in). `None` before the first start.
    pub fn lateness_summary(&self) -> Option<(u64, f64, f64)> {
        use prometheus::core::Metric as _;
        let h = self.lateness.metric();
        let h = h.get_histogram();
        let count = h.get_sample_count();
        if count == 0 {
            return None;
        }
        let quantile = |q: f64| {
            let rank = (q * count as f64).ceil() as u64;
            h.get_bucket()
                .iter()
                .find(|b| b.cumulative_count() >= rank)
                .map_or(f64::INFINITY, |b| b.upper_bound())
        };
        Some((count, quantile(0.5), quantile(0.99)))
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("invariant: encoding to memory cannot fail");
        String::from_utf8(buf).expect("invariant: the text format is UTF-8")
    }
}
