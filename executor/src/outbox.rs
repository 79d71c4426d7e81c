//! The outbox: finished reports waiting for the leader's acknowledgement.
//!
//! A run's result is the one thing the executor must not lose to a reconnect: the
//! leader commits it through raft and only then answers `FinishedAck`. Until that
//! answer arrives the report stays here, and every new connection sends all of them
//! again right after the handshake. The leader therefore sees a report at least once
//! and must treat repeats of the same execution id as no-ops (and ack them again).
//!
//! The outbox also serves deduplication: an execution id whose result is still here
//! is not run again if the leader assigns it again.
//!
//! It is memory only (the executor holds no durable state) and bounded: past
//! [`MAX_REPORTS`] the oldest report is dropped with a warning. By then the leader
//! has been unreachable for a long time, and its leases have already marked those
//! runs lost.

use std::collections::VecDeque;
use std::sync::Mutex;

use kairos_proto::v1 as pb;
use tokio::sync::watch;

/// Most unacknowledged reports kept; the oldest goes first beyond this.
pub(crate) const MAX_REPORTS: usize = 1024;

/// Unacknowledged finished reports, oldest first.
pub(crate) struct Outbox {
    reports: Mutex<VecDeque<pb::ExecutionFinished>>,
    /// Bumped on every change, so a session can wait for new reports and shutdown
    /// can wait for the outbox to drain.
    changes: watch::Sender<u64>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Outbox {
            reports: Mutex::new(VecDeque::new()),
            changes: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<pb::ExecutionFinished>> {
        // A panic while holding this lock leaves a plain queue behind; nothing is
        // half-updated, so the poison carries no information.
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Files a report (replacing one with the same execution id).
    pub(crate) fn push(&self, report: pb::ExecutionFinished) {
        {
            let mut reports = self.lock();
            reports.retain(|r| r.execution_id != report.execution_id);
            if reports.len() >= MAX_REPORTS
                && let Some(dropped) = reports.pop_front()
            {
                tracing::warn!(
                    execution_id = %dropped.execution_id,
                    "outbox full, dropping the oldest unacknowledged report"
                );
            }
            reports.push_back(report);
        }
        self.bump();
    }

    /// Forgets the report the leader acknowledged. False if it was not here (a
    /// repeated ack).
    pub(crate) fn ack(&self, execution_id: &str) -> bool {
        let removed = {
            let mut reports = self.lock();
            let before = reports.len();
            reports.retain(|r| r.execution_id != execution_id);
            reports.len() != before
        };
        if removed {
            self.bump();
        }
        removed
    }

    /// The ids of the reports waiting for their ack, oldest first.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.lock().iter().map(|r| r.execution_id.clone()).collect()
    }

    /// True while a report for this execution waits for its ack.
    pub(crate) fn contains(&self, execution_id: &str) -> bool {
        self.lock().iter().any(|r| r.execution_id == execution_id)
    }

    /// Copies of the reports whose id `skip` rejects, oldest first.
    pub(crate) fn pending_except(
        &self,
        mut skip: impl FnMut(&str) -> bool,
    ) -> Vec<pb::ExecutionFinished> {
        self.lock()
            .iter()
            .filter(|r| !skip(&r.execution_id))
            .cloned()
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A receiver that changes whenever a report is filed or acknowledged.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Returns once every report has been acknowledged.
    pub(crate) async fn wait_empty(&self) {
        let mut changes = self.subscribe();
        loop {
            if self.len() == 0 {
                return;
            }
            if changes.changed().await.is_err() {
                // Unreachable while `self` is alive (it owns the sender).
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> pb::ExecutionFinished {
        pb::ExecutionFinished {
            execution_id: id.into(),
            status: "succeeded".into(),
            ..Default::default()
        }
    }

    #[test]
    fn reports_stay_until_acked() {
        let outbox = Outbox::new();
        outbox.push(report("a"));
        outbox.push(report("b"));
        assert!(outbox.contains("a"));
        assert!(outbox.ack("a"));
        assert!(!outbox.ack("a"), "a second ack finds nothing");
        assert!(!outbox.contains("a"));
        let ids: Vec<_> = outbox
            .pending_except(|_| false)
            .into_iter()
            .map(|r| r.execution_id)
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn pending_except_skips_what_was_sent() {
        let outbox = Outbox::new();
        outbox.push(report("a"));
        outbox.push(report("b"));
        let ids: Vec<_> = outbox
            .pending_except(|id| id == "a")
            .into_iter()
            .map(|r| r.execution_id)
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn a_repeated_report_replaces_the_first() {
        let outbox = Outbox::new();
        outbox.push(report("a"));
        let mut again = report("a");
        again.status = "failed".into();
        outbox.push(again);
        let pending = outbox.pending_except(|_| false);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].status, "failed");
    }

    #[test]
    fn the_oldest_report_goes_when_full() {
        let outbox = Outbox::new();
        for i in 0..=MAX_REPORTS {
            outbox.push(report(&i.to_string()));
        }
        assert_eq!(outbox.len(), MAX_REPORTS);
        assert!(!outbox.contains("0"));
        assert!(outbox.contains(&MAX_REPORTS.to_string()));
    }

    #[tokio::test]
    async fn wait_empty_returns_after_the_last_ack() {
        let outbox = std::sync::Arc::new(Outbox::new());
        outbox.push(report("a"));
        let waiter = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.wait_empty().await }
        });
        outbox.ack("a");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("wait_empty returns once empty")
            .unwrap();
    }
}
