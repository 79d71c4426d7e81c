//! Deterministic tests of the state machine: commands applied directly, no raft,
//! no clock.

use std::sync::Arc;

use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::machine::FireOutcome;
use super::*;
use crate::raft::StateMachine as _;
use crate::storage::{Batch, Db};

struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<Db>,
    view: Arc<StateView>,
    sm: StateMachine,
    index: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let view = StateView::new(db.clone());
        let sm = StateMachine::open(
            db.clone(),
            view.clone(),
            crate::raft::AddressBook::default(),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            db,
            view,
            sm,
            index: 0,
        }
    }

    /// Applies commands as one raft Ready would: one batch, then publish.
    fn apply_all(&mut self, kinds: Vec<ipb::command::Kind>) -> Vec<crate::Result<Applied>> {
        let mut batch = Batch::new();
        let mut out = Vec::new();
        for kind in kinds {
            self.index += 1;
            let data = ipb::Command { kind: Some(kind) }.encode_to_vec();
            out.push(self.sm.apply(&mut batch, self.index, &data).unwrap());
        }
        self.sm.stage_applied(&mut batch, self.index);
        self.db.write(batch, false).unwrap();
        self.sm.publish();
        out
    }

    fn apply(&mut self, kind: ipb::command::Kind) -> crate::Result<Applied> {
        self.apply_all(vec![kind]).pop().unwrap()
    }

    fn reopen(&mut self) {
        self.view = StateView::new(self.db.clone());
        self.sm = StateMachine::open(
            self.db.clone(),
            self.view.clone(),
            crate::raft::AddressBook::default(),
        )
        .unwrap();
    }
}

fn job(name: &str, schedule: &str) -> pb::Job {
    pb::Job {
        name: name.into(),
        schedule: schedule.into(),
        action: Some(pb::job::Action::Shell(pb::ShellAction {
            command: "true".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn put(j: pb::Job, now_ms: i64) -> ipb::command::Kind {
    ipb::command::Kind::PutJob(ipb::PutJob {
        job: Some(j),
        expected_version: None,
        now_ms,
    })
}

fn fire(job: &str, at_ms: i64, version: u64, executors: &[&str]) -> ipb::Fire {
    ipb::Fire {
        job: job.into(),
        scheduled_at_ms: at_ms,
        trigger: "schedule".into(),
        attempt: 1,
        executors: executors.iter().map(|s| s.to_string()).collect(),
        executor_boots: executors.iter().map(|s| format!("{s}-boot")).collect(),
        job_version: version,
        no_target_reason: String::new(),
        max_output_bytes: 1024,
        retry_of: 0,
        dequeue: false,
        start_at_ms: at_ms,
        parent_execution: 0,
        backfill: 0,
        group: false,
    }
}

fn fire_batch(fires: Vec<ipb::Fire>) -> ipb::command::Kind {
    ipb::command::Kind::FireBatch(ipb::FireBatch {
        fires,
        term: 1,
        now_ms: 10_000,
        misses: Vec::new(),
        global_keep: 0,
    })
}

fn finished(id: u64, status: &str) -> ipb::command::Kind {
    ipb::command::Kind::ExecutionFinished(ipb::ExecutionFinished {
        id,
        executor: "e1".into(),
        status: status.into(),
        exit_code: Some(0),
        output: "ok".into(),
        finished_at_ms: 20_000,
        ..Default::default()
    })
}

fn fired(r: crate::Result<Applied>) -> Vec<FireResult> {
    match r.unwrap() {
        Applied::Fired { results, .. } => results,
        other => panic!("{other:?}"),
    }
}

#[test]
fn put_job_creates_then_updates_then_is_unchanged() {
    let mut f = Fixture::new();
    let r = f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let Applied::Job {
        job: created,
        result,
        ..
    } = r
    else {
        panic!()
    };
    assert_eq!(result, PutResult::Created);
    assert_eq!(created.version, 1);
    assert_eq!(created.timezone, "UTC", "defaults are written out");

    let Applied::Job { result, .. } = f.apply(put(job("a", "@every 1s"), 2_000)).unwrap() else {
        panic!()
    };
    assert_eq!(result, PutResult::Unchanged);
    let Applied::Job {
        job: updated,
        result,
        ..
    } = f.apply(put(job("a", "@every 2s"), 3_000)).unwrap()
    else {
        panic!()
    };
    assert_eq!(result, PutResult::Updated);
    assert_eq!(updated.version, 3);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        f.view.job("a").unwrap().record.cursor_ms,
        3_000,
        "a new schedule owes nothing before it"
    );
}

#[test]
fn expected_version_guards_concurrent_writers() {
    let mut f = Fixture::new();
    let with_version = |v: u64| {
        ipb::command::Kind::PutJob(ipb::PutJob {
            job: Some(job("a", "@every 1s")),
            expected_version: Some(v),
            now_ms: 1,
        })
    };
    assert!(f.apply(with_version(0)).is_ok(), "0 = must not exist");
    assert!(matches!(
        f.apply(with_version(0)),
        Err(crate::Error::FailedPrecondition(_))
    ));
    assert!(matches!(
        f.apply(with_version(7)),
        Err(crate::Error::FailedPrecondition(_))
    ));
}

#[test]
fn an_instant_fires_once_even_if_proposed_twice() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let v = f.view.job("a").unwrap().version();
    // Two leaders (or a retried proposal) plan the same instant; both commit.
    let mut results = f.apply_all(vec![
        fire_batch(vec![fire("a", 2_000, v, &["e1"])]),
        fire_batch(vec![fire("a", 2_000, v, &["e2"])]),
    ]);
    let second = fired(results.pop().unwrap());
    let first = fired(results.pop().unwrap());
    assert_eq!(first[0].outcome.as_ref().unwrap().executions.len(), 1);
    assert!(second[0].outcome.is_err(), "the replay must be refused");
    // An older instant is refused too.
    let older = fired(f.apply(fire_batch(vec![fire("a", 1_500, v, &["e1"])])));
    assert!(older[0].outcome.is_err());
    let page = f.view.executions_page(Some("a"), None, 10).unwrap();
    assert_eq!(page.executions.len(), 1);
    assert_eq!(f.view.job("a").unwrap().record.cursor_ms, 2_000);
}

#[test]
fn instants_before_the_job_existed_are_refused() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 5_000)).unwrap();
    let v = f.view.job("a").unwrap().version();
    let r = fired(f.apply(fire_batch(vec![fire("a", 4_000, v, &["e1"])])));
    assert!(r[0].outcome.is_err());
}

#[test]
fn a_fire_planned_for_an_older_version_is_refused() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let old = f.view.job("a").unwrap().version();
    f.apply(put(job("a", "@every 3s"), 1_000)).unwrap();
    let r = fired(f.apply(fire_batch(vec![fire("a", 3_000, old, &["e1"])])));
    assert!(r[0].outcome.as_ref().unwrap_err().contains("changed"));
}

#[test]
fn no_executor_records_no_target_as_the_final_outcome() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let v = f.view.job("a").unwrap().version();
    let r = fired(f.apply(fire_batch(vec![fire("a", 2_000, v, &[])])));
    let outcome = r[0].outcome.as_ref().unwrap();
    assert!(outcome.dispatches.is_empty());
    assert_eq!(outcome.executions[0].status, "no_target");
    let status = job_status(&f, "a");
    assert_eq!(status.outcome_counts.get("no_target"), Some(&1));
    assert!(f.view.active().is_empty());
}

#[test]
fn ids_increase_and_a_fan_out_creates_one_execution_per_executor() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    f.apply(put(job("b", "@every 1s"), 1_000)).unwrap();
    let (va, vb) = (
        f.view.job("a").unwrap().version(),
        f.view.job("b").unwrap().version(),
    );
    let r = fired(f.apply(fire_batch(vec![
        fire("a", 2_000, va, &["e1", "e2"]),
        fire("b", 2_000, vb, &["e1"]),
    ])));
    let ids: Vec<u64> = r
        .iter()
        .flat_map(|x| x.outcome.as_ref().unwrap().executions.iter())
        .map(|e| e.id.parse().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(f.view.active().len(), 3);
    let d = &r[0].outcome.as_ref().unwrap().dispatches[1];
    assert_eq!(d.assignment.execution_id, "2");
    assert_eq!(d.assignment.term, 1);
    assert!(matches!(
        d.assignment.action,
        Some(pb::assignment::Action::Shell(_))
    ));
}

#[test]
fn finishing_records_the_outcome_once_and_updates_the_job() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let v = f.view.job("a").unwrap().version();
    f.apply(fire_batch(vec![fire("a", 2_000, v, &["e1"])]))
        .unwrap();
    let Applied::Execution(Some(e)) = f.apply(finished(1, "succeeded")).unwrap() else {
        panic!()
    };
    assert_eq!(e.status, "succeeded");
    assert_eq!(e.output, "ok");
    // A late second report does not change the first outcome.
    let Applied::Execution(Some(e)) = f.apply(finished(1, "failed")).unwrap() else {
        panic!()
    };
    assert_eq!(e.status, "succeeded");
    let status = job_status(&f, "a");
    assert_eq!(status.outcome_counts.get("succeeded"), Some(&1));
    assert_eq!(status.outcome_counts.get("failed"), None);
    assert_eq!(status.running, 0);
    assert_eq!(status.last_outcome, "succeeded");
    assert!(f.view.active().is_empty());
    // A transient status is not a final report.
    assert!(f.apply(finished(1, "running")).is_err());
}

#[test]
fn history_keeps_the_newest_and_never_drops_running_ones() {
    let mut f = Fixture::new();
    let mut j = job("a", "@every 1s");
    j.history = Some(pb::History { keep: 3 });
    f.apply(put(j, 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    // Execution 1 keeps running throughout; 2..=10 finish.
    for at in 1..=10 {
        f.apply(fire_batch(vec![fire("a", at * 1_000, v, &["e1"])]))
            .unwrap();
        if at > 1 {
            f.apply(finished(at as u64, "succeeded")).unwrap();
        }
    }
    let ids = |f: &Fixture| -> Vec<String> {
        f.view
            .executions_page(Some("a"), None, 100)
            .unwrap()
            .executions
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    // The newest 3 finished, plus the running one, kept although it is the oldest.
    assert_eq!(ids(&f), ["10", "9", "8", "1"]);
    // When the old one finishes, its result stays (a newer one makes room)...
    f.apply(finished(1, "succeeded")).unwrap();
    assert_eq!(ids(&f), ["10", "9", "1"]);
    // ... until the next execution is added and finishes: then it is the oldest.
    f.apply(fire_batch(vec![fire("a", 11_000, v, &["e1"])]))
        .unwrap();
    f.apply(finished(11, "succeeded")).unwrap();
    assert_eq!(ids(&f), ["11", "10", "9"]);
    assert!(f.view.execution(1).unwrap().is_none());
}

#[test]
fn clearing_history_keeps_running_executions_and_what_fires_next() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    // 1 and 2 finish, 3 is still running.
    for at in 1..=3 {
        f.apply(fire_batch(vec![fire("a", at * 1_000, v, &["e1"])]))
            .unwrap();
    }
    f.apply(finished(1, "succeeded")).unwrap();
    f.apply(finished(2, "failed")).unwrap();
    let before = f.view.job("a").unwrap().record.clone();
    let cursor = before.cursor_ms;
    // A failure after a success keeps the success's time, as Dkron's last_success.
    let st = job_status(&f, "a");
    assert_eq!(st.last_outcome, "failed");
    assert!(
        st.last_success_at.is_some() && st.last_failure_at.is_some(),
        "{st:?}"
    );

    let clear = |name: &str| {
        ipb::command::Kind::ClearHistory(ipb::ClearHistory {
            job: name.to_string(),
        })
    };
    let Applied::Job { job, .. } = f.apply(clear("a")).unwrap() else {
        panic!()
    };
    let status = job.status.unwrap_or_default();
    assert!(status.outcome_counts.is_empty(), "{status:?}");
    assert_eq!(status.last_outcome, "", "the last outcome is forgotten too");
    assert_eq!(status.last_finished_at, None);
    assert_eq!(
        (status.last_success_at, status.last_failure_at),
        (None, None)
    );
    let ids: Vec<String> = f
        .view
        .executions_page(Some("a"), None, 100)
        .unwrap()
        .executions
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["3"], "only the running execution is left");
    assert!(f.view.execution(1).unwrap().is_none());
    let after = &f.view.job("a").unwrap().record;
    assert_eq!(after.cursor_ms, cursor);
    assert_eq!(after.history_len, 1);
    assert_eq!(
        job.version, v,
        "clearing history is not a new version of the job"
    );

    // The running one still reports, and its instant ends with its outcome.
    let Applied::Execution(Some(e)) = f.apply(finished(3, "succeeded")).unwrap() else {
        panic!()
    };
    assert_eq!(e.status, "succeeded");
    assert_eq!(
        job_status(&f, "a").outcome_counts.get("succeeded"),
        Some(&1)
    );
    // An instant already handled is still refused: the cursor did not move back.
    let replay = fired(f.apply(fire_batch(vec![fire("a", 2_000, v, &["e1"])])));
    assert!(replay[0].outcome.is_err(), "a handled instant fired again");
    assert!(matches!(
        f.apply(clear("nope")),
        Err(crate::Error::NotFound(_))
    ));
}

#[test]
fn deleting_a_job_removes_its_history_and_reports_what_was_running() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    f.apply(put(job("b", "@every 1s"), 0)).unwrap();
    let va = f.view.job("a").unwrap().version();
    let vb = f.view.job("b").unwrap().version();
    f.apply(fire_batch(vec![
        fire("a", 1_000, va, &["e1"]),
        fire("b", 1_000, vb, &["e1"]),
    ]))
    .unwrap();
    let Applied::JobDeleted { cancelled, .. } = f
        .apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
            name: "a".into(),
            cascade: false,
        }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(cancelled.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
    assert!(f.view.job("a").is_none());
    assert!(f.view.execution(1).unwrap().is_none());
    assert!(
        f.view.execution(2).unwrap().is_some(),
        "other jobs keep theirs"
    );
    assert!(matches!(
        f.apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
            name: "a".into(),
            cascade: false
        })),
        Err(crate::Error::NotFound(_))
    ));
    // A report for the deleted job's execution is accepted and changes nothing.
    assert!(matches!(
        f.apply(finished(1, "succeeded")).unwrap(),
        Applied::Execution(None)
    ));
}

#[test]
fn resuming_moves_the_cursor_so_paused_instants_are_not_owed() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let pause = |paused: bool, now_ms: i64| {
        ipb::command::Kind::SetPaused(ipb::SetPaused {
            name: "a".into(),
            paused,
            reason: "maintenance".into(),
            now_ms,
        })
    };
    let Applied::Job { job, .. } = f.apply(pause(true, 2_000)).unwrap() else {
        panic!()
    };
    assert!(job.paused);
    assert_eq!(job.status.unwrap().paused_reason, "maintenance");
    f.apply(pause(false, 60_000)).unwrap();
    let entry = f.view.job("a").unwrap();
    assert!(!entry.spec.paused);
    assert_eq!(entry.record.cursor_ms, 60_000);
}

#[test]
fn state_survives_reopen_and_ids_continue() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 1_000)).unwrap();
    let v = f.view.job("a").unwrap().version();
    f.apply(fire_batch(vec![fire("a", 2_000, v, &["e1"])]))
        .unwrap();
    f.reopen();
    assert_eq!(f.sm.applied_index(), f.index);
    assert_eq!(f.view.job("a").unwrap().record.cursor_ms, 2_000);
    assert_eq!(
        f.view.active().len(),
        1,
        "the running execution is still tracked"
    );
    let r = fired(f.apply(fire_batch(vec![fire("a", 3_000, v, &["e1"])])));
    assert_eq!(r[0].outcome.as_ref().unwrap().executions[0].id, "2");
}

#[test]
fn listing_all_executions_pages_newest_first() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    for at in 1..=5 {
        f.apply(fire_batch(vec![fire("a", at * 1_000, v, &["e1"])]))
            .unwrap();
    }
    let p1 = f.view.executions_page(None, None, 2).unwrap();
    assert_eq!(
        p1.executions
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["5", "4"]
    );
    let p2 = f.view.executions_page(None, p1.next_after, 2).unwrap();
    assert_eq!(
        p2.executions
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["3", "2"]
    );
    let p3 = f.view.executions_page(None, p2.next_after, 2).unwrap();
    assert_eq!(
        p3.executions
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    assert_eq!(p3.next_after, None);
}

// ---- firing guarantees ----

fn job_with(name: &str, f: impl FnOnce(&mut pb::Job)) -> pb::Job {
    let mut j = job(name, "@every 1s");
    f(&mut j);
    j
}

fn finished_with(id: u64, status: &str, retry_at_ms: i64) -> ipb::command::Kind {
    ipb::command::Kind::ExecutionFinished(ipb::ExecutionFinished {
        id,
        executor: "e1".into(),
        status: status.into(),
        finished_at_ms: 20_000,
        retry_at_ms,
        ..Default::default()
    })
}

fn outcome(r: crate::Result<Applied>) -> FireOutcome {
    fired(r).pop().unwrap().outcome.unwrap()
}

/// A job's status block.
fn job_status(f: &Fixture, name: &str) -> pb::JobStatus {
    let entry = f.view.job(name).unwrap();
    entry.record.job.clone().unwrap().status.unwrap()
}

fn status_of(f: &Fixture, id: u64) -> String {
    f.view.execution(id).unwrap().unwrap().status
}

#[test]
fn each_execution_records_the_executor_process_it_was_handed_to() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    let o = outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1", "e2"])])));
    let boots: Vec<(&str, &str)> = o
        .executions
        .iter()
        .map(|e| (e.executor.as_str(), e.executor_boot.as_str()))
        .collect();
    assert_eq!(boots, [("e1", "e1-boot"), ("e2", "e2-boot")]);
    let stored = f.view.execution(2).unwrap().unwrap();
    assert_eq!(stored.executor_boot, "e2-boot");
}

#[test]
fn forbid_records_an_overlapping_fire_as_skipped_overlap() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.concurrency = "forbid".into()), 0))
        .unwrap();
    let v = f.view.job("a").unwrap().version();
    let first = outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    assert_eq!(first.dispatches.len(), 1);
    let second = outcome(f.apply(fire_batch(vec![fire("a", 2_000, v, &["e1"])])));
    assert!(second.dispatches.is_empty());
    assert_eq!(second.executions[0].status, "skipped_overlap");
    assert!(second.executions[0].error.contains("forbid"));
    // The overlapping instant is handled: it does not fire again later.
    assert_eq!(f.view.job("a").unwrap().record.cursor_ms, 2_000);
    // Once the first ends, the next instant starts normally.
    f.apply(finished(1, "succeeded")).unwrap();
    let third = outcome(f.apply(fire_batch(vec![fire("a", 3_000, v, &["e1"])])));
    assert_eq!(third.dispatches.len(), 1);
}

#[test]
fn queue_buffers_one_start_and_releases_it_when_the_run_ends() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.concurrency = "queue".into()), 0))
        .unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    let queued = outcome(f.apply(fire_batch(vec![fire("a", 2_000, v, &["e1"])])));
    assert!(queued.queued);
    assert!(queued.executions.is_empty());
    let overflow = outcome(f.apply(fire_batch(vec![fire("a", 3_000, v, &["e1"])])));
    assert_eq!(
        overflow.executions[0].status, "skipped_overlap",
        "only one start is buffered"
    );
    let entry = f.view.job("a").unwrap();
    assert_eq!(entry.record.queued.as_ref().unwrap().scheduled_at_ms, 2_000);
    // A dequeue before the run ended would not pass concurrency… but the leader only
    // proposes it once the job has nothing running.
    f.apply(finished(1, "succeeded")).unwrap();
    let mut dq = fire("a", 2_000, 0, &["e2"]);
    dq.dequeue = true;
    let started = outcome(f.apply(fire_batch(vec![dq.clone()])));
    assert_eq!(started.dispatches.len(), 1);
    assert_eq!(
        started.executions[0]
            .scheduled_at
            .as_ref()
            .map(crate::time::ms_from_ts),
        Some(2_000)
    );
    assert!(f.view.job("a").unwrap().record.queued.is_none());
    // The queued start happens once.
    assert!(
        fired(f.apply(fire_batch(vec![dq])))
            .pop()
            .unwrap()
            .outcome
            .is_err()
    );
}

#[test]
fn replace_cancels_the_running_execution_and_starts_the_new_one() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.concurrency = "replace".into()), 0))
        .unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    let second = outcome(f.apply(fire_batch(vec![fire("a", 2_000, v, &["e2"])])));
    assert_eq!(second.cancels.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
    assert_eq!(second.dispatches.len(), 1);
    assert_eq!(status_of(&f, 1), "cancelled");
    assert_eq!(status_of(&f, 2), "pending");
    // The replaced run's late report does not change its outcome.
    f.apply(finished(1, "succeeded")).unwrap();
    assert_eq!(status_of(&f, 1), "cancelled");
}

#[test]
fn a_manual_start_obeys_concurrency_too() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.concurrency = "forbid".into()), 0))
        .unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    let mut manual = fire("a", 1_500, v, &["e1"]);
    manual.trigger = "manual".into();
    let o = outcome(f.apply(fire_batch(vec![manual])));
    assert_eq!(o.executions[0].status, "skipped_overlap");
    assert_eq!(o.executions[0].trigger, "manual");
    assert_eq!(
        f.view.job("a").unwrap().record.cursor_ms,
        1_000,
        "manual runs do not move the cursor"
    );
}

#[test]
fn a_failed_attempt_is_retried_once_as_its_own_execution() {
    let mut f = Fixture::new();
    f.apply(put(
        job_with("a", |j| {
            j.retry = Some(pb::RetryPolicy {
                max_attempts: 2,
                backoff: "1s".into(),
                max_backoff: "1m".into(),
            })
        }),
        0,
    ))
    .unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    f.apply(finished_with(1, "failed", 21_000)).unwrap();
    let retries = f.view.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(
        (retries[0].attempt, retries[0].retry_of, retries[0].due_ms),
        (2, 1, 21_000)
    );
    assert_eq!(retries[0].previous_executor, "e1");
    let group = f.view.execution(1).unwrap().unwrap().group;
    assert_eq!(
        f.view.group_status("a", &group).unwrap(),
        "running",
        "a group with a retry due has not ended"
    );

    let mut retry = fire("a", 1_000, 0, &["e2"]);
    retry.trigger = "retry".into();
    retry.attempt = 2;
    retry.retry_of = 1;
    let o = outcome(f.apply(fire_batch(vec![retry.clone()])));
    let e = &o.executions[0];
    assert_eq!(
        (e.attempt, e.trigger.as_str(), e.previous_attempt.as_str()),
        (2, "retry", "1")
    );
    assert_eq!(
        e.scheduled_at.as_ref().map(crate::time::ms_from_ts),
        Some(1_000),
        "same instant"
    );
    assert!(f.view.retries().is_empty());
    assert!(
        fired(f.apply(fire_batch(vec![retry])))
            .pop()
            .unwrap()
            .outcome
            .is_err(),
        "a retry fires once"
    );
    // The last attempt failing asks for no more.
    f.apply(finished_with(2, "failed", 30_000)).unwrap();
    assert!(f.view.retries().is_empty(), "attempts are exhausted");
}

#[test]
fn success_and_cancellation_are_not_retried() {
    let mut f = Fixture::new();
    f.apply(put(
        job_with("a", |j| {
            j.retry = Some(pb::RetryPolicy {
                max_attempts: 3,
                ..Default::default()
            })
        }),
        0,
    ))
    .unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![
        fire("a", 1_000, v, &["e1"]),
        fire("a", 2_000, v, &["e1"]),
    ])));
    f.apply(finished_with(1, "succeeded", 21_000)).unwrap();
    f.apply(finished_with(2, "cancelled", 21_000)).unwrap();
    assert!(f.view.retries().is_empty());
}

#[test]
fn a_report_after_the_lease_expired_is_kept_without_reviving_the_attempt() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    f.apply(finished_with(1, "lost", 0)).unwrap();
    f.apply(ipb::command::Kind::ExecutionFinished(
        ipb::ExecutionFinished {
            id: 1,
            executor: "e1".into(),
            status: "succeeded".into(),
            exit_code: Some(0),
            output: "done\n".into(),
            finished_at_ms: 30_000,
            ..Default::default()
        },
    ))
    .unwrap();
    let e = f.view.execution(1).unwrap().unwrap();
    assert_eq!(e.status, "lost");
    assert_eq!(e.late_status, "succeeded");
    assert_eq!(e.output, "done\n");
    let counts = job_status(&f, "a").outcome_counts;
    assert_eq!(counts.get("lost"), Some(&1));
    assert_eq!(counts.get("succeeded"), None);
}

#[test]
fn a_miss_moves_the_cursor_counts_every_instant_and_records_the_newest() {
    let mut f = Fixture::new();
    f.apply(put(
        job_with("a", |j| j.history = Some(pb::History { keep: 3 })),
        0,
    ))
    .unwrap();
    let v = f.view.job("a").unwrap().version();
    let miss = ipb::Miss {
        job: "a".into(),
        job_version: v,
        up_to_ms: 29_000,
        total: 29,
        recorded_ms: (1..=29).map(|s| s * 1_000).collect(),
        policy: "run_once".into(),
    };
    let mut batch = ipb::FireBatch {
        fires: Vec::new(),
        term: 1,
        now_ms: 31_000,
        misses: vec![miss.clone()],
        global_keep: 0,
    };
    let mut catchup = fire("a", 30_000, v, &["e1"]);
    catchup.trigger = "catchup".into();
    batch.fires.push(catchup);
    let results = fired(f.apply(ipb::command::Kind::FireBatch(batch)));
    assert_eq!(
        results[0].outcome.as_ref().unwrap().executions[0].trigger,
        "catchup"
    );
    let entry = f.view.job("a").unwrap();
    assert_eq!(entry.record.cursor_ms, 30_000);
    let status = entry.record.job.clone().unwrap().status.unwrap();
    assert_eq!(status.outcome_counts.get("missed"), Some(&29));
    let listed = f
        .view
        .executions_page(Some("a"), None, 100)
        .unwrap()
        .executions;
    assert_eq!(
        listed.len(),
        4,
        "history keeps the 3 newest finished, plus the running catch-up"
    );
    assert_eq!(listed[0].trigger, "catchup");
    assert!(listed[1..].iter().all(|e| e.status == "missed"));
    // The same miss again is refused: those instants are handled.
    let again = f.apply(ipb::command::Kind::FireBatch(ipb::FireBatch {
        fires: Vec::new(),
        term: 1,
        now_ms: 32_000,
        misses: vec![miss],
        global_keep: 0,
    }));
    match again.unwrap() {
        Applied::Fired { refused_misses, .. } => assert_eq!(refused_misses.len(), 1),
        other => panic!("{other:?}"),
    }
}

fn pause_at(now_ms: i64) -> ipb::command::Kind {
    ipb::command::Kind::SetPaused(ipb::SetPaused {
        name: "a".into(),
        paused: true,
        reason: String::new(),
        now_ms,
    })
}

#[test]
fn pausing_asks_the_executor_to_skip_the_runs_committed_ahead() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    // Committed at 9 s for the instant at 10 s, another for 9 s; paused at 9.5 s.
    outcome(f.apply(fire_batch(vec![fire("a", 10_000, v, &["e1"])])));
    let Applied::Job { cancels, .. } = f.apply(pause_at(9_500)).unwrap() else {
        panic!()
    };
    assert_eq!(cancels.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
    // Only the executor knows whether it started: the run stays pending until it says.
    assert_eq!(status_of(&f, 1), "pending");
    assert_eq!(f.view.active().len(), 1);
    let skipped = ipb::command::Kind::ExecutionFinished(ipb::ExecutionFinished {
        id: 1,
        executor: "e1".into(),
        status: "skipped_paused".into(),
        error: "the job was paused before the run started".into(),
        finished_at_ms: 9_600,
        ..Default::default()
    });
    let Applied::Execution(Some(e)) = f.apply(skipped).unwrap() else {
        panic!()
    };
    assert_eq!(e.status, "skipped_paused");
    assert_eq!(e.started_at, None);
    assert!(f.view.active().is_empty());
    let status = job_status(&f, "a");
    assert_eq!(status.outcome_counts.get("skipped_paused"), Some(&1));
    assert_eq!(status.running, 0);
}

#[test]
fn a_run_that_started_before_the_pause_reached_its_executor_keeps_its_result() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 10_000, v, &["e1"])])));
    f.apply(pause_at(9_999)).unwrap();
    // The executor had started it when the skip request came: it reports the run.
    let Applied::Execution(Some(e)) = f.apply(finished(1, "succeeded")).unwrap() else {
        panic!()
    };
    assert_eq!(e.status, "succeeded", "what ran is what is recorded");
    assert_eq!(e.late_status, "");
    assert!(f.view.active().is_empty());
}

#[test]
fn an_update_leaves_the_runs_committed_ahead_alone_so_no_instant_runs_twice() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 10_000, v, &["e1"])])));
    // The command changes at 9.5 s: the executor may hold the 10 s fire already.
    let mut changed = job("a", "@every 1s");
    changed.action = Some(pb::job::Action::Shell(pb::ShellAction {
        command: "echo v2".into(),
        ..Default::default()
    }));
    let Applied::Job { cancels, .. } = f
        .apply(ipb::command::Kind::PutJob(ipb::PutJob {
            job: Some(changed),
            expected_version: None,
            now_ms: 9_500,
        }))
        .unwrap()
    else {
        panic!()
    };
    assert!(cancels.is_empty());
    assert_eq!(status_of(&f, 1), "pending", "the committed fire stands");
    let entry = f.view.job("a").unwrap();
    assert_eq!(
        entry.record.cursor_ms, 10_000,
        "the instant is not owed again"
    );
    let again = fired(f.apply(fire_batch(vec![fire(
        "a",
        10_000,
        entry.version(),
        &["e1"],
    )])));
    assert!(
        again[0].outcome.is_err(),
        "the instant cannot fire a second time"
    );
    // The next instant runs the new definition.
    let next = outcome(f.apply(fire_batch(vec![fire(
        "a",
        11_000,
        entry.version(),
        &["e1"],
    )])));
    match &next.dispatches[0].assignment.action {
        Some(pb::assignment::Action::Shell(s)) => assert_eq!(s.command, "echo v2"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancelling_records_cancelled_once() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    let cancel = || {
        ipb::command::Kind::CancelExecution(ipb::CancelExecution {
            id: 1,
            reason: String::new(),
            now_ms: 1_500,
        })
    };
    let Applied::Cancelled { execution, active } = f.apply(cancel()).unwrap() else {
        panic!()
    };
    assert_eq!(execution.status, "cancelled");
    assert_eq!(active.executor, "e1");
    assert!(matches!(
        f.apply(cancel()),
        Err(crate::Error::FailedPrecondition(_))
    ));
    assert!(matches!(
        f.apply(ipb::command::Kind::CancelExecution(ipb::CancelExecution {
            id: 99,
            reason: String::new(),
            now_ms: 1,
        })),
        Err(crate::Error::NotFound(_))
    ));
}

#[test]
fn a_paused_job_records_a_scheduled_fire_as_skipped_paused_but_runs_a_manual_one() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.paused = true), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    let o = outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    assert_eq!(o.executions[0].status, "skipped_paused");
    let mut manual = fire("a", 1_500, v, &["e1"]);
    manual.trigger = "manual".into();
    let o = outcome(f.apply(fire_batch(vec![manual])));
    assert_eq!(o.dispatches.len(), 1);
}

// ---- chaining, backfill, lifecycle ----

fn child(name: &str, parent: &str, on: &str) -> pb::Job {
    let mut j = job(name, "");
    j.parent = parent.into();
    j.parent_on = on.into();
    j
}

fn dependency_fire(child: &str, parent_execution: u64, at_ms: i64) -> ipb::Fire {
    let mut f = fire(child, at_ms, 0, &["e1"]);
    f.trigger = "dependency".into();
    f.parent_execution = parent_execution;
    f
}

fn pending_children(f: &Fixture) -> Vec<(String, u64)> {
    f.view
        .dependencies()
        .into_iter()
        .map(|d| (d.child, d.parent_execution))
        .collect()
}

#[test]
fn a_parent_must_exist_and_a_chain_must_not_loop() {
    let mut f = Fixture::new();
    let err = f.apply(put(child("b", "a", "success"), 0)).unwrap_err();
    assert!(
        matches!(&err, crate::Error::InvalidArgument { field, .. } if field == "parent"),
        "{err:?}"
    );
    f.apply(put(job("x", "@every 1s"), 0)).unwrap();
    f.apply(put(child("y", "x", "success"), 0)).unwrap();
    // x → y → x
    let mut x = job("x", "@every 1s");
    x.parent = "y".into();
    let err = f.apply(put(x, 0)).unwrap_err();
    match err {
        crate::Error::InvalidArgument { field, reason } => {
            assert_eq!(field, "parent");
            assert!(reason.contains("x → y → x"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn children_start_once_as_their_parent_ended() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    f.apply(put(child("b", "a", "success"), 0)).unwrap();
    f.apply(put(child("c", "b", "failure"), 0)).unwrap();
    f.apply(put(child("d", "a", "always"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    f.apply(finished(1, "succeeded")).unwrap();
    assert_eq!(pending_children(&f), vec![("b".into(), 1), ("d".into(), 1)]);
    // b runs (trigger dependency, the parent's instant) and fails: c starts.
    let o = outcome(f.apply(fire_batch(vec![dependency_fire("b", 1, 1_000)])));
    let b = &o.executions[0];
    assert_eq!(
        (b.trigger.as_str(), b.parent_execution.as_str()),
        ("dependency", "1")
    );
    assert_eq!(
        b.scheduled_at.as_ref().map(crate::time::ms_from_ts),
        Some(1_000)
    );
    assert!(
        fired(f.apply(fire_batch(vec![dependency_fire("b", 1, 1_000)])))
            .pop()
            .unwrap()
            .outcome
            .is_err(),
        "a child starts once per parent run"
    );
    let b_id: u64 = b.id.parse().unwrap();
    f.apply(finished(b_id, "failed")).unwrap();
    assert!(pending_children(&f).contains(&("c".into(), b_id)));
}

#[test]
fn a_failure_child_waits_for_the_last_attempt() {
    let mut f = Fixture::new();
    f.apply(put(
        job_with("a", |j| {
            j.retry = Some(pb::RetryPolicy {
                max_attempts: 2,
                ..Default::default()
            })
        }),
        0,
    ))
    .unwrap();
    f.apply(put(child("on-fail", "a", "failure"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("a", 1_000, v, &["e1"])])));
    f.apply(finished_with(1, "failed", 21_000)).unwrap();
    assert!(
        pending_children(&f).is_empty(),
        "a retry follows: not settled yet"
    );
    let mut retry = fire("a", 1_000, 0, &["e2"]);
    retry.trigger = "retry".into();
    retry.attempt = 2;
    retry.retry_of = 1;
    outcome(f.apply(fire_batch(vec![retry])));
    f.apply(finished_with(2, "failed", 0)).unwrap();
    assert_eq!(pending_children(&f), vec![("on-fail".into(), 2)]);
}

#[test]
fn a_fan_out_group_starts_its_children_once_when_all_members_ended() {
    let mut f = Fixture::new();
    f.apply(put(
        job_with("a", |j| {
            j.target = Some(pb::Target {
                count: Some(0),
                ..Default::default()
            })
        }),
        0,
    ))
    .unwrap();
    f.apply(put(child("after", "a", "failure"), 0)).unwrap();
    let v = f.view.job("a").unwrap().version();
    let mut fan = fire("a", 1_000, v, &["e1", "e2"]);
    fan.group = true;
    let o = outcome(f.apply(fire_batch(vec![fan])));
    assert!(
        o.executions.iter().all(|e| e.group == "1"),
        "{:?}",
        o.executions
    );
    f.apply(finished(1, "succeeded")).unwrap();
    assert!(pending_children(&f).is_empty(), "the group is not over");
    f.apply(finished(2, "failed")).unwrap();
    // One succeeded, one failed: partially failed counts as a failure.
    assert_eq!(pending_children(&f), vec![("after".into(), 1)]);
}

#[test]
fn deleting_a_parent_needs_cascade_which_takes_the_descendants() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    f.apply(put(child("b", "a", "success"), 0)).unwrap();
    f.apply(put(child("c", "b", "success"), 0)).unwrap();
    let refused = f.apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
        name: "a".into(),
        cascade: false,
    }));
    assert!(
        matches!(&refused, Err(crate::Error::FailedPrecondition(m)) if m.contains('b')),
        "{refused:?}"
    );
    let Applied::JobDeleted { deleted, .. } = f
        .apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
            name: "a".into(),
            cascade: true,
        }))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(deleted, ["a", "b", "c"]);
    assert_eq!(f.view.job_count(), 0);
    // A leaf can go alone.
    f.apply(put(job("p", "@every 1s"), 0)).unwrap();
    f.apply(put(child("q", "p", "success"), 0)).unwrap();
    f.apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
        name: "q".into(),
        cascade: false,
    }))
    .unwrap();
    // And then its parent has no children any more.
    f.apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
        name: "p".into(),
        cascade: false,
    }))
    .unwrap();
}

fn start_backfill(job: &str, from_ms: i64, to_ms: i64) -> ipb::command::Kind {
    ipb::command::Kind::StartBackfill(ipb::StartBackfill {
        job: job.into(),
        from_ms,
        to_ms,
        parallel: 2,
        rate: 5.0,
        now_ms: 100_000,
    })
}

fn backfill_fire(job: &str, id: u64, at_ms: i64) -> ipb::Fire {
    let mut f = fire(job, at_ms, 0, &["e1"]);
    f.trigger = "backfill".into();
    f.backfill = id;
    f
}

#[test]
fn a_backfill_runs_each_instant_of_its_range_once_and_ends() {
    let mut f = Fixture::new();
    f.apply(put(job_with("a", |j| j.concurrency = "forbid".into()), 0))
        .unwrap();
    let Applied::Backfill { id } = f.apply(start_backfill("a", 10_000, 13_000)).unwrap() else {
        panic!()
    };
    assert_eq!(f.view.backfills().len(), 1);
    // Instants 11, 12, 13 s; concurrency forbid does not apply to backfill runs.
    let first = outcome(f.apply(fire_batch(vec![backfill_fire("a", id, 11_000)])));
    let second = outcome(f.apply(fire_batch(vec![backfill_fire("a", id, 12_000)])));
    assert_eq!(
        second.dispatches.len(),
        1,
        "its own parallelism, not the job's policy"
    );
    assert_eq!(first.executions[0].trigger, "backfill");
    assert_eq!(first.executions[0].backfill, id.to_string());
    assert!(
        fired(f.apply(fire_batch(vec![backfill_fire("a", id, 12_000)])))
            .pop()
            .unwrap()
            .outcome
            .is_err()
    );
    outcome(f.apply(fire_batch(vec![backfill_fire("a", id, 13_000)])));
    assert!(f.view.backfills().is_empty(), "over after the last instant");
    assert_eq!(
        f.view.job("a").unwrap().record.cursor_ms,
        0,
        "the schedule's cursor is untouched"
    );
    // A range without an instant is refused.
    assert!(matches!(
        f.apply(start_backfill("a", 10_100, 10_200)),
        Err(crate::Error::FailedPrecondition(_))
    ));
}

#[test]
fn an_ephemeral_job_goes_after_its_first_success() {
    let mut f = Fixture::new();
    f.apply(put(job_with("once", |j| j.ephemeral = true), 0))
        .unwrap();
    let v = f.view.job("once").unwrap().version();
    outcome(f.apply(fire_batch(vec![fire("once", 1_000, v, &["e1"])])));
    f.apply(finished(1, "failed")).unwrap();
    assert!(f.view.job("once").is_some(), "a failure keeps it");
    outcome(f.apply(fire_batch(vec![fire("once", 2_000, v, &["e1"])])));
    f.apply(finished(2, "succeeded")).unwrap();
    assert!(f.view.job("once").is_none());
}

#[test]
fn the_global_cap_drops_the_oldest_finished_executions_of_any_job() {
    let mut f = Fixture::new();
    f.apply(put(job("a", "@every 1s"), 0)).unwrap();
    f.apply(put(job("b", "@every 1s"), 0)).unwrap();
    let (va, vb) = (
        f.view.job("a").unwrap().version(),
        f.view.job("b").unwrap().version(),
    );
    for at in 1..=3 {
        outcome(f.apply(fire_batch(vec![
            fire("a", at * 1_000, va, &["e1"]),
            fire("b", at * 1_000, vb, &["e1"]),
        ])));
    }
    for id in 1..=6 {
        f.apply(finished(id, "succeeded")).unwrap();
    }
    let mut capped = fire_batch(vec![fire("a", 4_000, va, &["e1"])]);
    if let ipb::command::Kind::FireBatch(b) = &mut capped {
        b.global_keep = 4;
    }
    outcome(f.apply(capped));
    let left: Vec<String> = f
        .view
        .executions_page(None, None, 100)
        .unwrap()
        .executions
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["7", "6", "5", "4"]);
    assert_eq!(
        f.view.job("a").unwrap().record.history_len + f.view.job("b").unwrap().record.history_len,
        4
    );
}

#[test]
fn jobs_in_order_walks_every_job_across_chunks_and_starts_after_a_name() {
    let mut f = Fixture::new();
    // More than two chunks, and a count that is not a multiple of one.
    let names: Vec<String> = (0..2500).map(|i| format!("job-{i:05}")).collect();
    f.apply_all(names.iter().map(|n| put(job(n, "@daily"), 1)).collect());
    let walked: Vec<String> = f
        .view
        .jobs_in_order(None)
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(walked, names);
    let after: Vec<String> = f
        .view
        .jobs_in_order(Some("job-00999"))
        .take(3)
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(after, ["job-01000", "job-01001", "job-01002"]);
    assert_eq!(f.view.jobs_in_order(Some("job-02499")).count(), 0);
}
