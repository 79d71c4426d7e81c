//! The leader's duties, one node in process, with tokio's clock paused: misfire
//! policies, the takeover hold, leases that expire into `lost` and a retry
//! elsewhere, retry backoff with its jitter, queue and replace, dependency starts.
//! Time moves only when every task waits for a timer; a `sleep` here is the test
//! letting virtual time pass (an outage, a silent executor), never a wait for
//! something to have happened — those are [`eventually`] and the scripted
//! executor's reads, bounded in virtual time.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use kairos_common::clock::Clock as _;
use kairos_proto::v1 as pb;

use super::{Node, PausedClock, ScriptedExecutor, eventually};
use crate::time::ms_from_ts;

/// A fixed, whole-second starting instant, so instants and the clock line up.
fn clock() -> std::sync::Arc<PausedClock> {
    PausedClock::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .expect("a valid instant"),
    )
}

fn statuses(list: &[pb::Execution]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|e| (e.trigger.clone(), e.status.clone(), e.attempt))
        .collect()
}

fn scheduled_ms(e: &pb::Execution) -> i64 {
    e.scheduled_at.as_ref().map(ms_from_ts).unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn fires_wait_for_executors_during_the_takeover_grace_then_run_on_one() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    node.put(r#"{"name":"tick","schedule":"@every 1s","shell":{"command":"true"}}"#)
        .await;
    // Three seconds with no executor: within the 5 s grace nothing is recorded
    // no_target; the fires are held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        node.executions("tick").is_empty(),
        "held, not recorded: {:?}",
        statuses(&node.executions("tick"))
    );
    let mut exec = ScriptedExecutor::connect(&node, "exec-a", &[]).await;
    let first = exec.assignment().await;
    assert_eq!(first.job, "tick");
    let list = node.executions("tick");
    assert!(
        list.iter().all(|e| e.status != "no_target"),
        "{:?}",
        statuses(&list)
    );
    assert!(list.iter().all(|e| e.executor == "exec-a"));
}

#[tokio::test(start_paused = true)]
async fn after_the_takeover_grace_a_fire_with_no_executor_is_no_target() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = Node::start(dir.path(), clock()).await;
    node.put(r#"{"name":"tick","schedule":"@every 1s","shell":{"command":"true"}}"#)
        .await;
    let list = node
        .wait_executions("tick", "a no_target record", |l| {
            l.iter().any(|e| e.status == "no_target")
        })
        .await;
    // Nothing was recorded before the grace (5 s from the takeover) was over.
    let first = list.iter().map(scheduled_ms).min().expect("a record");
    let created = node
        .core
        .view
        .job("tick")
        .and_then(|j| j.record.job.as_ref().and_then(|d| d.created_at))
        .map(|t| ms_from_ts(&t))
        .expect("a creation time");
    assert!(
        list.iter()
            .all(|e| e.finished_at.as_ref().map(ms_from_ts).unwrap_or(0) >= created + 5_000),
        "recorded within the grace: {:?} (created {created}, first instant {first})",
        statuses(&list)
    );
}

#[tokio::test(start_paused = true)]
async fn instants_missed_while_down_follow_each_jobs_misfire_policy() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    for (name, policy) in [("skip", "skip"), ("once", "run_once"), ("all", "run_all")] {
        node.put(&format!(
            r#"{{"name":"{name}","schedule":"@every 1s","shell":{{"command":"true"}},"misfire":{{"policy":"{policy}","window":"1m"}},"history":{{"keep":1000}}}}"#
        ))
        .await;
    }
    // Down before anything could fire (the fires are held for executors): the
    // cursors stay at the creation time.
    let down_at = clock.now();
    let dir_path = node.stop().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let node = Node::start(&dir_path, clock.clone()).await;
    let up_at = clock.now();
    let mut exec = ScriptedExecutor::connect(&node, "exec-a", &[]).await;

    // Every instant of the outage gets exactly one outcome, by policy.
    let outage = |name: &str| -> Vec<pb::Execution> {
        node.executions(name)
            .into_iter()
            .filter(|e| {
                let at = scheduled_ms(e);
                at > down_at.timestamp_millis() && at < up_at.timestamp_millis()
            })
            .collect()
    };
    let catchups = |list: &[pb::Execution]| list.iter().filter(|e| e.trigger == "catchup").count();
    let missed = |list: &[pb::Execution]| list.iter().filter(|e| e.status == "missed").count();
    eventually("the misfire pass to record every job's outage", || {
        let (skip, once, all) = (outage("skip"), outage("once"), outage("all"));
        (missed(&skip) >= 29 && catchups(&once) == 1 && catchups(&all) >= 29).then_some(())
    })
    .await;
    let (skip, once, all) = (outage("skip"), outage("once"), outage("all"));
    assert_eq!(
        catchups(&skip),
        0,
        "skip runs nothing: {:?}",
        statuses(&skip)
    );
    assert_eq!(
        missed(&once),
        once.len() - 1,
        "run_once: one run, the rest missed"
    );
    let newest = once.iter().map(scheduled_ms).max().expect("instants");
    let run = once
        .iter()
        .find(|e| e.trigger == "catchup")
        .expect("a catch-up");
    assert_eq!(
        scheduled_ms(run),
        newest,
        "run_once runs the newest missed instant"
    );
    assert_eq!(missed(&all), 0, "run_all runs each one in the window");
    assert_eq!(catchups(&all), all.len());
    // The catch-ups reach the executor.
    let a = exec.assignment().await;
    assert_eq!(a.trigger, "catchup");
}

#[tokio::test(start_paused = true)]
async fn a_silent_executors_run_is_lost_when_its_lease_expires_and_retried_elsewhere() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    let mut a = ScriptedExecutor::connect(&node, "exec-a", &[]).await;
    let mut b = ScriptedExecutor::connect(&node, "exec-b", &[]).await;
    node.put(
        r#"{"name":"job","schedule":"@manual","shell":{"command":"true"},"retry":{"max_attempts":2,"backoff":"1s"}}"#,
    )
    .await;
    node.core.run_job("job").await.expect("the run starts");
    // Whichever executor got the first attempt goes silent after starting it.
    let (holder, other) = tokio::select! {
        got = a.assignment() => ((&mut a, got), &mut b),
        got = b.assignment() => ((&mut b, got), &mut a),
    };
    let (holder, first) = holder;
    holder.started(&first, &clock).await;
    let silent_from = clock.now();
    holder.go_silent();
    let list = node
        .wait_executions("job", "the first attempt to be lost", |l| {
            l.iter().any(|e| e.status == "lost")
        })
        .await;
    let lost = list.iter().find(|e| e.status == "lost").expect("lost");
    let lost_at = lost
        .finished_at
        .as_ref()
        .map(ms_from_ts)
        .expect("a finish time");
    let held = lost_at - silent_from.timestamp_millis();
    assert!(
        (crate::leader::LEASE.as_millis() as i64..crate::leader::LEASE.as_millis() as i64 + 2_000)
            .contains(&held),
        "lost {held} ms after the last heartbeat; the lease is {:?}",
        crate::leader::LEASE
    );
    let retry = other.assignment().await;
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.trigger, "retry");
    let list = node.executions("job");
    let second = list.iter().find(|e| e.attempt == 2).expect("attempt 2");
    assert_eq!(
        second.executor, other.id,
        "the retry went to the other executor"
    );
    assert_eq!(second.previous_attempt, lost.id);
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_doubling_to_the_cap_with_bounded_jitter() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    let mut exec = ScriptedExecutor::connect(&node, "exec-a", &[]).await;
    node.put(
        r#"{"name":"flaky","schedule":"@manual","shell":{"command":"false"},"retry":{"max_attempts":4,"backoff":"2s","max_backoff":"5s"}}"#,
    )
    .await;
    node.core.run_job("flaky").await.expect("the run starts");
    // Attempt n fails; the retry is due backoff·2^(n-1) later, capped, ±20%. It is
    // committed ahead like any fire: its assignment says when to start.
    let mut a = exec.assignment().await;
    for (attempt, nominal_ms) in [(1u32, 2_000i64), (2, 4_000), (3, 5_000)] {
        assert_eq!(a.attempt, attempt);
        exec.started(&a, &clock).await;
        exec.finished(&a, "failed", &clock).await;
        let failed_at = clock.now().timestamp_millis();
        a = exec.assignment().await;
        assert_eq!((a.attempt, a.trigger.as_str()), (attempt + 1, "retry"));
        let delay = a.start_at.as_ref().map(ms_from_ts).expect("a start time") - failed_at;
        assert!(
            (nominal_ms * 8 / 10..=nominal_ms * 12 / 10).contains(&delay),
            "attempt {} starts {delay} ms after the failure; nominal {nominal_ms} ms ±20%",
            attempt + 1
        );
    }
    let last = a;
    assert_eq!(last.attempt, 4);
    exec.started(&last, &clock).await;
    exec.finished(&last, "failed", &clock).await;
    node.wait_executions("flaky", "the last attempt to be final", |l| {
        l.iter().filter(|e| e.status == "failed").count() == 4
    })
    .await;
    assert!(
        node.core.view.retries().is_empty(),
        "no fifth attempt past max_attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn queue_waits_for_the_running_execution_and_replace_cancels_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    let mut exec = ScriptedExecutor::connect(&node, "exec-a", &[]).await;
    node.put(
        r#"{"name":"q","schedule":"@manual","shell":{"command":"true"},"concurrency":"queue"}"#,
    )
    .await;
    node.put(
        r#"{"name":"r","schedule":"@manual","shell":{"command":"true"},"concurrency":"replace"}"#,
    )
    .await;

    node.core.run_job("q").await.expect("a run");
    let first = exec.assignment().await;
    exec.started(&first, &clock).await;
    let (_, queued) = node.core.run_job("q").await.expect("a queued run");
    assert!(queued, "a second start while running is queued");
    exec.finished(&first, "succeeded", &clock).await;
    let second = exec.assignment().await;
    assert_eq!(second.job, "q");
    assert_ne!(second.execution_id, first.execution_id);

    node.core.run_job("r").await.expect("a run");
    let old = exec.assignment().await;
    exec.started(&old, &clock).await;
    node.core.run_job("r").await.expect("a replacing run");
    let cancel = exec.cancel().await;
    assert_eq!(cancel.execution_id, old.execution_id);
    let new = exec.assignment().await;
    assert_eq!(new.job, "r");
    let list = node.executions("r");
    assert_eq!(
        list.iter()
            .find(|e| e.id == old.execution_id)
            .map(|e| e.status.as_str()),
        Some("cancelled")
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_starts_once_when_its_parent_succeeds() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let clock = clock();
    let node = Node::start(dir.path(), clock.clone()).await;
    let mut exec = ScriptedExecutor::connect(&node, "exec-a", &[]).await;
    node.put(r#"{"name":"parent","schedule":"@manual","shell":{"command":"true"}}"#)
        .await;
    node.put(r#"{"name":"child","parent":"parent","shell":{"command":"true"}}"#)
        .await;
    node.core.run_job("parent").await.expect("a run");
    let p = exec.assignment().await;
    exec.started(&p, &clock).await;
    exec.finished(&p, "succeeded", &clock).await;
    let c = exec.assignment().await;
    assert_eq!(c.job, "child");
    assert_eq!(c.trigger, "dependency");
    assert_eq!(
        c.scheduled_at, p.scheduled_at,
        "the child stands for the parent's instant"
    );
    exec.started(&c, &clock).await;
    exec.finished(&c, "succeeded", &clock).await;
    // Ten more seconds: the child ran once for that parent run.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(node.executions("child").len(), 1);
}
