//! Prometheus metrics. Counters are bumped where things happen; gauges that mirror
//! state (jobs, executors, raft figures) are read at scrape time.

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The node's metric registry.
pub struct Metrics {
    registry: Registry,
    fires: IntCounterVec,
    finished: IntCounterVec,
    webhooks: IntCounterVec,
    pub jobs: IntGauge,
    pub executors: IntGauge,
    pub active_executions: IntGauge,
    pub raft_term: IntGauge,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
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

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let fires = IntCounterVec::new(
            Opts::new(
                "kairos_executions_created_total",
                "Executions recorded by fires, by initial status",
            ),
            &["status"],
        )
        .expect("invariant: metric definitions are valid");
        let finished = IntCounterVec::new(
            Opts::new(
                "kairos_executions_finished_total",
                "Executions that reached a final status, by status",
            ),
            &["status"],
        )
        .expect("invariant: metric definitions are valid");
        let webhooks = IntCounterVec::new(
            Opts::new(
                "kairos_webhooks_total",
                "Webhook notifications by result: delivered, failed (after retries), dropped (queue full)",
            ),
            &["result"],
        )
        .expect("invariant: metric definitions are valid");
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).expect("invariant: metric definitions are valid")
        };
        let m = Metrics {
            fires,
            finished,
            webhooks,
            jobs: gauge("kairos_jobs", "Jobs stored"),
            executors: gauge(
                "kairos_executors_connected",
                "Executors connected to this node (leader only)",
            ),
            active_executions: gauge("kairos_executions_active", "Executions pending or running"),
            raft_term: gauge("kairos_raft_term", "Current raft term"),
            raft_commit_index: gauge("kairos_raft_commit_index", "Raft commit index"),
            raft_applied_index: gauge("kairos_raft_applied_index", "Raft applied index"),
            is_leader: gauge("kairos_raft_is_leader", "1 when this node is the leader"),
            registry,
        };
        for c in [&m.fires, &m.finished, &m.webhooks] {
            m.registry
                .register(Box::new(c.clone()))
                .expect("invariant: metric names are unique");
        }
        for g in [
            &m.jobs,
            &m.executors,
            &m.active_executions,
            &m.raft_term,
            &m.raft_commit_index,
            &m.raft_applied_index,
            &m.is_leader,
        ] {
            m.registry
                .register(Box::new(g.clone()))
                .expect("invariant: metric names are unique");
        }
        m
    }

    pub fn fired(&self, status: &str) {
        self.fires.with_label_values(&[status]).inc();
    }

    pub fn webhook(&self, result: &str) {
        self.webhooks.with_label_values(&[result]).inc();
    }

    pub fn finished(&self, status: &str) {
        self.finished.with_label_values(&[status]).inc();
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
