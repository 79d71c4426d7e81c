//! Deterministic tests of the state machine: commands applied directly, no raft,
//! no clock.

use std::sync::Arc;

use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

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
        job_version: version,
        no_target_reason: String::new(),
        max_output_bytes: 1024,
    }
}

fn fire_batch(fires: Vec<ipb::Fire>) -> ipb::command::Kind {
    ipb::command::Kind::FireBatch(ipb::FireBatch {
        fires,
        term: 1,
        now_ms: 10_000,
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
        Applied::Fired(v) => v,
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
    let status = f
        .view
        .job("a")
        .unwrap()
        .record
        .job
        .clone()
        .unwrap()
        .status
        .unwrap();
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
    let status = f
        .view
        .job("a")
        .unwrap()
        .record
        .job
        .clone()
        .unwrap()
        .status
        .unwrap();
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
    let ids: Vec<String> = f
        .view
        .executions_page(Some("a"), None, 100)
        .unwrap()
        .executions
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids,
        ["10", "9", "1"],
        "the running one is kept although it is the oldest"
    );
    f.apply(finished(1, "succeeded")).unwrap();
    f.apply(fire_batch(vec![fire("a", 11_000, v, &["e1"])]))
        .unwrap();
    let ids: Vec<String> = f
        .view
        .executions_page(Some("a"), None, 100)
        .unwrap()
        .executions
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["11", "10", "9"]);
    assert!(f.view.execution(1).unwrap().is_none());
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
    let Applied::JobDeleted { cancelled } = f
        .apply(ipb::command::Kind::DeleteJob(ipb::DeleteJob {
            name: "a".into(),
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
            name: "a".into()
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
