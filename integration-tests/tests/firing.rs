//! The firing guarantees of DESIGN §5, end to end, against the real `kairos` binary:
//! what a user of a fault-tolerant cron checks after something died.
//!
//! - a. The leader is SIGKILLed while 20 jobs fire every second (`misfire: run_all`):
//!   every instant from the first to well after the failover ran exactly once.
//! - b. Every scheduler is down for over 30 s: a `run_once` job runs the newest missed
//!   instant once (trigger `catchup`) and records the others `missed`; a `skip` job
//!   runs none and records all `missed`; every instant has exactly one outcome.
//! - c. An executor is SIGKILLed in the middle of a run: the attempt is `lost` within
//!   the lease, and the retry runs on the other executor and succeeds.
//! - d. `forbid`: overlapping instants and a manual run are `skipped_overlap` (the
//!   manual run is refused); after a leader crash in the middle of a run, the run
//!   ends final and later instants run again; no two runs overlap. d'. The same when
//!   the scheduler and the executor die together (`kairos dev`): the run is `lost`
//!   through the lease and the job fires again.
//! - e. `replace`: the running execution is `cancelled` and its processes are gone,
//!   the new one runs — for a scheduled and for a manual start.
//! - f. `exec cancel`: recorded `cancelled`, the whole process group is gone.
//! - g. `queue`: the next start waits (`status.queuedAt`) and starts right after the
//!   running one ends; a third start meanwhile is `skipped_overlap`, and its refusal
//!   names the `queue` policy (g').
//! - h. A job updated, through a new leader, while an executor the leader cannot
//!   reach holds fires sent ahead: no instant runs twice.
//! - i. After a failover, fires sent ahead to an executor that died and came back at
//!   once (a new process, without them) are not sent to the new process: they end
//!   `lost` through the lease and the retry policy runs them as attempt 2.
//! - j. An executor that ran an instant and died before the leader committed its
//!   report, and came back at once to the same leader: the instant does not run
//!   again as the same attempt.
//! - k. A pause reaches the fires committed ahead: the ones not started yet are
//!   `skipped_paused` and never ran; whatever ran is recorded with what it did.
//! - l. An assignment the executor process never received (its stream broke) is sent
//!   again, same execution, when that process says Hello again; one handed to an
//!   earlier process of the executor is not — it ends `lost` through the lease. A
//!   scripted executor speaks the protocol here, so "never received" is certain.
//!
//! Jobs append `$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID` to a file,
//! so the checks are about what really ran as well as what was recorded; expected
//! figures are derived from the record (which instant was the last before a stop),
//! never from assumed timings. Every wait is bounded. With `KAIROS_KEEP_TEST_DIRS`
//! set, each test keeps its directory (every process's data and log) and prints
//! its path.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use kairos_integration_tests::check::{
    Exec, Ran, Window, check_instants, check_runs, is_final, outcome_counts, read_runs,
};
use kairos_integration_tests::{
    CliOutput, Cluster, ClusterOptions, Dev, field, process_gone, wait_until, write_file,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long a wait for a few fires may take (a fire per second, plus room for a
/// failover and a slow, busy machine).
const FIRE_DEADLINE: Duration = Duration::from_secs(45);
/// How long after an executor's death its attempt must be final: the 10 s lease, the
/// leader's once-a-second check, and generous room for a loaded machine.
const LOST_BOUND: Duration = Duration::from_secs(20);
/// How long a cancelled or replaced run's processes may take to disappear.
const KILL_BOUND: Duration = Duration::from_secs(10);
/// The period of the `@every 1s` jobs.
const SECOND: TimeDelta = TimeDelta::seconds(1);

/// The line every job here appends to its file.
const RAN_LINE: &str =
    "echo \"$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID $KAIROS_TRIGGER\"";

/// A directory for one test; kept (and its path printed) when the environment sets
/// `KAIROS_KEEP_TEST_DIRS`, for the logs of every process after a failure.
fn test_dir() -> Result<tempfile::TempDir> {
    let mut dir = tempfile::Builder::new()
        .prefix("kairos-firing-")
        .tempdir()?;
    if std::env::var_os("KAIROS_KEEP_TEST_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

fn cluster(schedulers: u64, executors: usize) -> Result<(tempfile::TempDir, Cluster)> {
    let dir = test_dir()?;
    let cluster = Cluster::start(
        BIN.as_ref(),
        dir.path(),
        ClusterOptions::new(schedulers, executors),
    )?;
    Ok((dir, cluster))
}

fn dev() -> Result<(tempfile::TempDir, Dev)> {
    let dir = test_dir()?;
    let dev = Dev::start(BIN.as_ref(), &dir.path().join("data"))?;
    dev.wait_for_executors(1)?;
    Ok((dir, dev))
}

fn dev_apply(dev: &Dev, dir: &Path, name: &str, yaml: &str) -> Result<()> {
    let file = write_file(dir, &format!("{name}.yaml"), yaml)?;
    dev.cli(&["job", "apply", "-f", &file])?
        .ok()
        .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    Ok(())
}

/// `t` rounded down to the second.
fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(SECOND).expect("in range")
}

/// A shell job document: `@every` or `@manual` schedule, the command, extra lines.
fn job(name: &str, schedule: &str, command: &str, extra: &str) -> String {
    format!(
        "name: {name}\nschedule: \"{schedule}\"\nhistory: {{keep: 5000}}\n{extra}shell:\n  command: '{}'\n",
        command.replace('\'', "''")
    )
}

/// The command that records a run in `file` and then does `then`.
fn recording(file: &Path, then: &str) -> String {
    let mut cmd = format!("{RAN_LINE} >> \"{}\"", file.display());
    if !then.is_empty() {
        cmd.push_str("; ");
        cmd.push_str(then);
    }
    cmd
}

/// A command that writes its shell's pid to `DIR/ID.pid` and a background child's
/// to `DIR/ID.child`, then waits for the child (`sleep 60`): a process group of two.
fn pid_writing(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "echo $$ > \"{d}/$KAIROS_EXECUTION_ID.pid\"; sleep 60 & echo $! > \"{d}/$KAIROS_EXECUTION_ID.child\"; wait"
    )
}

/// The two pids [`pid_writing`] wrote for execution `id`, once both are there.
fn pids(dir: &Path, id: u64) -> Option<[u32; 2]> {
    let read = |ext: &str| -> Option<u32> {
        std::fs::read_to_string(dir.join(format!("{id}.{ext}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some([read("pid")?, read("child")?])
}

/// Waits until every pid in `pids` is gone.
fn wait_gone(pids: [u32; 2], what: &str) -> Result<()> {
    wait_until(KILL_BOUND, what, || {
        pids.iter().all(|p| process_gone(*p)).then_some(())
    })
}

/// The execution a `job run -o json` answer holds.
fn started(out: &Value) -> Result<Exec> {
    Exec::parse(out.get("execution").unwrap_or(out))
}

/// The sorted, distinct instants of `runs`, after checking none ran twice.
fn instants_once(runs: &[Ran], job: &str) -> Result<Vec<DateTime<Utc>>> {
    let mut seen = BTreeSet::new();
    let twice: Vec<DateTime<Utc>> = runs
        .iter()
        .filter(|r| !seen.insert((r.scheduled_at, r.attempt)))
        .map(|r| r.scheduled_at)
        .collect();
    ensure!(
        twice.is_empty(),
        "{job}: instants that ran twice: {twice:?}"
    );
    Ok(seen.into_iter().map(|(t, _)| t).collect())
}

/// `records` and `runs` restricted to instants at or before `last` (manual runs kept
/// out): what a check may compare once everything up to `last` is final.
fn upto(records: &[Exec], runs: &[Ran], last: DateTime<Utc>) -> (Vec<Exec>, Vec<Ran>) {
    (
        records
            .iter()
            .filter(|e| e.trigger != "manual" && e.scheduled_at <= last)
            .cloned()
            .collect(),
        runs.iter()
            .filter(|r| r.scheduled_at <= last)
            .cloned()
            .collect(),
    )
}

// a. The leader is SIGKILLed while 20 `@every 1s` jobs fire: in each job's file,
//    every instant from the first to well after the failover is there exactly once.
#[test]
fn a_killed_leader_neither_misses_nor_doubles_an_instant_of_twenty_jobs() -> Result<()> {
    let (dir, mut cluster) = cluster(3, 2)?;
    let leader = cluster.wait_for_leader()?;
    let names: Vec<String> = (1..=20).map(|i| format!("tick-{i:02}")).collect();
    let file = |name: &str| dir.path().join(format!("{name}.ran"));
    let docs: Vec<String> = names
        .iter()
        .map(|n| {
            job(
                n,
                "@every 1s",
                &recording(&file(n), ""),
                "misfire: {policy: run_all}\n",
            )
        })
        .collect();
    cluster.apply(leader, "ticks", &docs.join("---\n"))?;
    wait_until(FIRE_DEADLINE, "3 runs of every job", || {
        names
            .iter()
            .all(|n| read_runs(&file(n)).is_ok_and(|r| r.len() >= 3))
            .then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    let killed_at = Utc::now();
    cluster.kill_scheduler(leader)?;
    let new_leader = cluster.wait_for_leader_where("a new leader", |id| id != leader)?;
    let elected_after = Utc::now() - killed_at;
    // Well after the failover: 8 s of schedule past the kill.
    let last = floor_second(killed_at) + TimeDelta::seconds(8);
    wait_until(
        FIRE_DEADLINE,
        &format!("every job to run an instant after {last}"),
        || {
            names
                .iter()
                .all(|n| {
                    read_runs(&file(n))
                        .is_ok_and(|r| r.iter().any(|r| r.scheduled_at > last + SECOND))
                })
                .then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;

    let mut catchups = 0;
    for name in &names {
        let records = wait_until(
            FIRE_DEADLINE,
            &format!("{name}'s executions up to {last} to be final"),
            || {
                let records = cluster.records(new_leader, name).ok()?;
                records
                    .iter()
                    .filter(|e| e.scheduled_at <= last)
                    .all(|e| is_final(&e.status))
                    .then_some(records)
            },
        )
        .map_err(|e| cluster.with_logs(e))?;
        let runs = read_runs(&file(name))?;
        let ran = instants_once(&runs, name)?;
        let first = *ran.first().expect("waited for runs");
        ensure!(
            first < killed_at - SECOND,
            "{name}: nothing ran before the kill"
        );
        let window = Window {
            first,
            last,
            period: SECOND,
        };
        // What ran: every instant of the window, once.
        let missing: Vec<DateTime<Utc>> = window
            .instants()
            .into_iter()
            .filter(|t| !ran.contains(t))
            .collect();
        ensure!(
            missing.is_empty(),
            "{name}: instants that never ran (leader {leader} killed at {killed_at}): {missing:?}"
        );
        // What was recorded: one outcome per instant, and it succeeded.
        let outcomes = check_instants(&records, &window)?;
        let failed: Vec<String> = outcomes
            .values()
            .filter(|o| o.status() != "succeeded" || o.attempts.len() != 1)
            .map(|o| o.first().brief())
            .collect();
        ensure!(
            failed.is_empty(),
            "{name}: not simply succeeded: {failed:?}"
        );
        catchups += outcomes
            .values()
            .filter(|o| o.first().trigger == "catchup")
            .count();
        let (records, runs) = upto(&records, &runs, last);
        check_runs(&records, &runs)?;
    }
    eprintln!(
        "leader {leader} killed at {killed_at}; {new_leader} agreed on after {:.2} s; \
         20 jobs checked up to {last}; {catchups} instants ran as catch-up",
        elected_after.as_seconds_f64()
    );
    Ok(())
}

// b. All three schedulers are SIGKILLed for over 30 s. A `run_once` job runs the
//    newest missed instant (trigger `catchup`) and records the others `missed`; a
//    `skip` job records them all `missed` and runs none. Every instant of each job
//    has exactly one outcome, and what ran matches what was recorded.
#[test]
fn after_a_full_outage_run_once_runs_the_newest_missed_instant_and_skip_runs_none() -> Result<()> {
    const OUTAGE: Duration = Duration::from_secs(34);
    let (dir, mut cluster) = cluster(3, 1)?;
    let leader = cluster.wait_for_leader()?;
    let file = |name: &str| dir.path().join(format!("{name}.ran"));
    let names = ["once", "skip"];
    let docs = [
        job(
            "once",
            "@every 1s",
            &recording(&file("once"), ""),
            "misfire: {policy: run_once, window: 5m}\n",
        ),
        job(
            "skip",
            "@every 1s",
            &recording(&file("skip"), ""),
            "misfire: {policy: skip}\n",
        ),
    ];
    cluster.apply(leader, "jobs", &docs.join("---\n"))?;
    wait_until(FIRE_DEADLINE, "3 runs of each job", || {
        names
            .iter()
            .all(|n| read_runs(&file(n)).is_ok_and(|r| r.len() >= 3))
            .then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    let stopped_at = Utc::now();
    for id in cluster.scheduler_ids() {
        cluster.kill_scheduler(id)?;
    }
    // The outage itself: nothing to wait for, time has to pass.
    std::thread::sleep(OUTAGE);
    for id in cluster.scheduler_ids() {
        cluster.restart_scheduler(id)?;
    }
    let restarted_at = Utc::now();
    let leader = cluster.wait_for_leader()?;
    wait_until(
        FIRE_DEADLINE,
        "3 scheduled runs of each job after the restart",
        || {
            names
                .iter()
                .all(|n| {
                    read_runs(&file(n)).is_ok_and(|r| {
                        r.iter()
                            .filter(|r| r.scheduled_at > restarted_at && r.rest == ["schedule"])
                            .count()
                            >= 3
                    })
                })
                .then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;

    for name in names {
        // Everything up to a few instants after the restart is final.
        let last = floor_second(restarted_at) + TimeDelta::seconds(2);
        let records = wait_until(
            FIRE_DEADLINE,
            &format!("{name}'s executions up to {last} to be final"),
            || {
                let records = cluster.records(leader, name).ok()?;
                records
                    .iter()
                    .filter(|e| e.scheduled_at <= last)
                    .all(|e| is_final(&e.status))
                    .then_some(records)
            },
        )
        .map_err(|e| cluster.with_logs(e))?;
        let runs = read_runs(&file(name))?;
        let (records, runs) = upto(&records, &runs, last);

        // The stop shows as the one gap between instants fired by schedule (missed
        // instants are recorded with trigger `schedule` too): from the last one
        // fired before the stop to the first one fired normally after.
        let scheduled: Vec<DateTime<Utc>> = records
            .iter()
            .filter(|e| e.trigger == "schedule" && e.status != "missed")
            .map(|e| e.scheduled_at)
            .collect();
        let gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = scheduled
            .windows(2)
            .filter(|w| w[1] - w[0] > SECOND)
            .map(|w| (w[0], w[1]))
            .collect();
        let [(before, after)] = gaps[..] else {
            return Err(anyhow!(
                "{name}: expected one gap in the scheduled instants, found {gaps:?} \
                 (stopped {stopped_at}, restarted {restarted_at})"
            ));
        };
        ensure!(
            before <= stopped_at + TimeDelta::seconds(3) && after >= restarted_at - SECOND,
            "{name}: the gap {before}..{after} is not the outage {stopped_at}..{restarted_at}"
        );
        let window = Window {
            first: scheduled[0],
            last,
            period: SECOND,
        };
        let outcomes = check_instants(&records, &window)?;
        let gap: Vec<&Exec> = outcomes
            .range(before + SECOND..after)
            .map(|(_, o)| o.first())
            .collect();
        let missed = gap.iter().filter(|e| e.status == "missed").count();
        let catchup: Vec<&&Exec> = gap.iter().filter(|e| e.trigger == "catchup").collect();
        eprintln!(
            "{name}: last instant before the stop {before}, first after {after}: {} instants \
             between, {missed} missed, catch-up {:?}",
            gap.len(),
            catchup.iter().map(|e| e.brief()).collect::<Vec<_>>()
        );
        ensure!(
            gap.len() >= 30,
            "{name}: only {} instants between {before} and {after}",
            gap.len()
        );
        match name {
            "once" => {
                let [c] = catchup[..] else {
                    return Err(anyhow!(
                        "once: {} catch-up runs in the gap, not 1",
                        catchup.len()
                    ));
                };
                ensure!(
                    c.scheduled_at == after - SECOND && c.status == "succeeded",
                    "once: the catch-up is not the newest missed instant, succeeded: {}",
                    c.brief()
                );
                ensure!(
                    missed + 1 == gap.len() && missed >= 29,
                    "once: {missed} missed + 1 catch-up != {} instants in the gap",
                    gap.len()
                );
            }
            _ => ensure!(
                catchup.is_empty() && missed == gap.len(),
                "skip: the gap of {} instants has {missed} missed and catch-ups {:?}",
                gap.len(),
                catchup.iter().map(|e| e.brief()).collect::<Vec<_>>()
            ),
        }
        // Outside the gap, everything ran and succeeded.
        let odd: Vec<String> = outcomes
            .iter()
            .filter(|(t, _)| **t <= before || **t >= after)
            .filter(|(_, o)| o.status() != "succeeded")
            .map(|(_, o)| o.first().brief())
            .collect();
        ensure!(odd.is_empty(), "{name}: outside the gap: {odd:?}");
        check_runs(&records, &runs)?;
        // Every missed instant is counted, and (history being large) recorded.
        let job = cluster.job(leader, name)?;
        let counted = outcome_counts(&job).get("missed").copied().unwrap_or(0);
        ensure!(
            counted == u64::try_from(missed)?,
            "{name}: status.outcomeCounts.missed is {counted}, {missed} missed records"
        );
    }
    Ok(())
}

// c. An executor is SIGKILLed in the middle of a 10 s run of a job with
//    `retry.max_attempts: 2`: the attempt is recorded `lost` within the lease, and
//    attempt 2 (trigger `retry`, previousAttempt the lost one) runs on the other
//    executor — even though the killed one is back by then — and succeeds.
#[test]
fn a_killed_executor_s_run_is_lost_within_the_lease_and_retried_on_the_other() -> Result<()> {
    let (dir, mut cluster) = cluster(3, 2)?;
    let leader = cluster.wait_for_leader()?;
    let file = dir.path().join("slow.ran");
    cluster.apply(
        leader,
        "slow",
        &job(
            "slow",
            "@manual",
            &recording(&file, "sleep 10"),
            "retry: {max_attempts: 2, backoff: 1s}\n",
        ),
    )?;
    let first = started(
        &cluster
            .cli(leader, &["job", "run", "slow", "-o", "json"])?
            .ok()?
            .json()?,
    )?;
    wait_until(FIRE_DEADLINE, "attempt 1 to be running", || {
        let e = cluster.execution(leader, first.id).ok()?;
        let ran = read_runs(&file).ok()?;
        (e.status == "running" && ran.iter().any(|r| r.execution == Some(first.id))).then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;
    let victim = cluster
        .executor_index(&first.executor)
        .ok_or_else(|| anyhow!("attempt 1 runs on an unknown executor: {}", first.brief()))?;
    let other = cluster.executor_names()[1 - victim].clone();

    let killed = Instant::now();
    cluster.kill_executor(victim)?;
    // It comes back at once: the retry must still prefer the other executor.
    cluster.restart_executor(victim)?;
    let lost = wait_until(
        LOST_BOUND,
        "attempt 1 to be final after its executor died",
        || {
            let e = cluster.execution(leader, first.id).ok()?;
            is_final(&e.status).then_some(e)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let lost_after = killed.elapsed();
    ensure!(lost.status == "lost", "attempt 1: {}", lost.brief());

    let retry = wait_until(FIRE_DEADLINE, "attempt 2 to be final", || {
        let records = cluster.records(leader, "slow").ok()?;
        records
            .into_iter()
            .find(|e| e.attempt == 2 && is_final(&e.status))
    })
    .map_err(|e| cluster.with_logs(e))?;
    eprintln!(
        "attempt 1 {} after {:.1} s; attempt 2 {}",
        lost.brief(),
        lost_after.as_secs_f64(),
        retry.brief()
    );
    ensure!(
        retry.trigger == "retry"
            && retry.previous_attempt == first.id
            && retry.scheduled_at == first.scheduled_at,
        "attempt 2 is not the retry of attempt 1: {}",
        retry.raw
    );
    ensure!(
        retry.executor == other,
        "attempt 2 ran on {}, not on the other executor {other}",
        retry.executor
    );
    ensure!(retry.status == "succeeded", "attempt 2: {}", retry.raw);
    let ran = read_runs(&file)?;
    ensure!(
        ran.iter()
            .any(|r| r.attempt == 2 && r.execution == Some(retry.id)),
        "attempt 2's command left no line: {ran:?}"
    );
    let records = cluster.records(leader, "slow")?;
    ensure!(
        records.len() == 2,
        "more than two executions: {:?}",
        records.iter().map(Exec::brief).collect::<Vec<_>>()
    );
    Ok(())
}

// d. `forbid` with runs (5 s) longer than the interval (2 s): overlapping instants
//    are `skipped_overlap`; a manual run meanwhile is refused naming forbid and
//    recorded `skipped_overlap`; the leader is SIGKILLed in the middle of a run, the
//    run still ends `succeeded` (its executor survived) and later instants run
//    again. At no time do two runs overlap.
#[test]
fn forbid_skips_overlaps_refuses_manual_runs_and_is_not_stuck_after_a_leader_crash() -> Result<()> {
    let (dir, mut cluster) = cluster(3, 1)?;
    let leader = cluster.wait_for_leader()?;
    let file = dir.path().join("forbidden.ran");
    cluster.apply(
        leader,
        "forbidden",
        &job(
            "forbidden",
            "@every 2s",
            &recording(&file, "sleep 5"),
            "concurrency: forbid\n",
        ),
    )?;
    let running = |cluster: &Cluster| -> Option<Exec> {
        let leader = cluster.leader()?;
        cluster
            .records(leader, "forbidden")
            .ok()?
            .into_iter()
            .find(|e| e.status == "running")
    };
    wait_until(FIRE_DEADLINE, "a run to be going on", || running(&cluster))
        .map_err(|e| cluster.with_logs(e))?;

    // A manual run through a follower while it runs: refused, and recorded.
    let follower = cluster
        .running_schedulers()
        .into_iter()
        .find(|&id| id != leader)
        .expect("three nodes");
    let out = cluster.cli(follower, &["job", "run", "forbidden"])?;
    ensure!(
        !out.success(),
        "a manual run during a run was accepted: {out:?}"
    );
    ensure!(
        out.stderr.contains("forbid"),
        "the refusal does not mention forbid: {:?}",
        out.stderr
    );
    let records = cluster.records(leader, "forbidden")?;
    ensure!(
        records
            .iter()
            .any(|e| e.trigger == "manual" && e.status == "skipped_overlap"),
        "the refused manual run is not recorded skipped_overlap: {:?}",
        records.iter().map(Exec::brief).collect::<Vec<_>>()
    );
    wait_until(FIRE_DEADLINE, "2 scheduled instants skipped", || {
        let records = cluster.records(leader, "forbidden").ok()?;
        (records
            .iter()
            .filter(|e| e.trigger == "schedule" && e.status == "skipped_overlap")
            .count()
            >= 2)
            .then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    // Kill the leader in the middle of a run (at least 1 s into it).
    let victim = wait_until(FIRE_DEADLINE, "a run 1 s old", || {
        let e = running(&cluster)?;
        (Utc::now() - e.started_at? >= SECOND).then_some(e)
    })
    .map_err(|e| cluster.with_logs(e))?;
    let leader = cluster.wait_for_leader()?;
    let killed_at = Utc::now();
    cluster.kill_scheduler(leader)?;
    let new_leader = cluster.wait_for_leader_where("a new leader", |id| id != leader)?;
    let ended = wait_until(FIRE_DEADLINE, "the run of the crash to end", || {
        let e = cluster.execution(new_leader, victim.id).ok()?;
        is_final(&e.status).then_some(e)
    })
    .map_err(|e| cluster.with_logs(e))?;
    ensure!(
        ended.status == "succeeded",
        "the run going on at the crash (its executor survived): {}",
        ended.raw
    );
    let records = wait_until(
        Duration::from_secs(60),
        "2 instants after the crash to succeed",
        || {
            let records = cluster.records(new_leader, "forbidden").ok()?;
            (records
                .iter()
                .filter(|e| e.scheduled_at > killed_at && e.status == "succeeded")
                .count()
                >= 2)
                .then_some(records)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;

    // One outcome per instant, each succeeded or skipped (or missed while no
    // leader could fire), and no two runs overlapping.
    let last = records
        .iter()
        .filter(|e| e.trigger != "manual" && is_final(&e.status))
        .map(|e| e.scheduled_at)
        .max()
        .expect("waited for records");
    let first = records
        .iter()
        .find(|e| e.trigger == "schedule")
        .map(|e| e.scheduled_at)
        .expect("waited for records");
    let runs = read_runs(&file)?;
    let outcomes = check_instants(
        &records,
        &Window {
            first,
            last,
            period: TimeDelta::seconds(2),
        },
    )?;
    let odd: Vec<String> = outcomes
        .values()
        .filter(|o| !matches!(o.status(), "succeeded" | "skipped_overlap" | "missed"))
        .map(|o| o.first().brief())
        .collect();
    ensure!(odd.is_empty(), "unexpected outcomes: {odd:?}");
    let (upto_records, upto_runs) = upto(&records, &runs, last);
    check_runs(&upto_records, &upto_runs)?;
    let mut ran: Vec<&Exec> = records.iter().filter(|e| e.status == "succeeded").collect();
    ran.sort_by_key(|e| e.started_at);
    for pair in ran.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        ensure!(
            b.started_at >= a.finished_at,
            "two runs overlap: {} ({:?}..{:?}) and {} (from {:?})",
            a.brief(),
            a.started_at,
            a.finished_at,
            b.brief(),
            b.started_at
        );
    }
    eprintln!(
        "{} instants: {} succeeded, {} skipped_overlap; run {} at the crash ended {}",
        outcomes.len(),
        outcomes
            .values()
            .filter(|o| o.status() == "succeeded")
            .count(),
        outcomes
            .values()
            .filter(|o| o.status() == "skipped_overlap")
            .count(),
        victim.id,
        ended.status
    );
    Ok(())
}

// d'. `forbid` when the scheduler and the executor die together (`kairos dev`
//     SIGKILLed in the middle of a run and restarted): the run that was going on
//     ends `lost` through the lease, not "running" for ever, and the job fires
//     again afterwards.
#[test]
fn forbid_is_not_stuck_when_the_scheduler_and_its_executor_die_together() -> Result<()> {
    let (dir, mut dev) = dev()?;
    let file = dir.path().join("forbidden.ran");
    dev_apply(
        &dev,
        dir.path(),
        "forbidden",
        &job(
            "forbidden",
            "@every 2s",
            &recording(&file, "sleep 5"),
            "concurrency: forbid\n",
        ),
    )?;
    let victim = wait_until(FIRE_DEADLINE, "a run 1 s old", || {
        let e = dev
            .records("forbidden")
            .ok()?
            .into_iter()
            .find(|e| e.status == "running")?;
        (Utc::now() - e.started_at? >= SECOND).then_some(e)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    dev.restart()?;
    let restarted = Instant::now();
    let ended = wait_until(LOST_BOUND, "the run of the crash to be final", || {
        let e = dev.execution(victim.id).ok()?;
        is_final(&e.status).then_some(e)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    eprintln!(
        "the run going on at the crash ended {} {:.1} s after the restart",
        ended.status,
        restarted.elapsed().as_secs_f64()
    );
    ensure!(
        ended.status == "lost",
        "the run whose executor died with the scheduler: {}",
        ended.raw
    );
    let ended_at = Utc::now();
    let records = wait_until(FIRE_DEADLINE, "2 instants after it to succeed", || {
        let records = dev.records("forbidden").ok()?;
        (records
            .iter()
            .filter(|e| e.scheduled_at > ended_at && e.status == "succeeded")
            .count()
            >= 2)
            .then_some(records)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    let last = records
        .iter()
        .filter(|e| is_final(&e.status))
        .map(|e| e.scheduled_at)
        .max()
        .expect("waited for records");
    let outcomes = check_instants(
        &records,
        &Window {
            first: records[0].scheduled_at,
            last,
            period: TimeDelta::seconds(2),
        },
    )?;
    let odd: Vec<String> = outcomes
        .values()
        .filter(|o| {
            !matches!(
                o.status(),
                "succeeded" | "skipped_overlap" | "missed" | "lost"
            )
        })
        .map(|o| o.first().brief())
        .collect();
    ensure!(odd.is_empty(), "unexpected outcomes: {odd:?}");
    Ok(())
}

// e. `replace`: a new start, scheduled or manual, records the running execution
//    `cancelled`, kills its whole process group, and runs.
#[test]
fn replace_cancels_the_running_execution_kills_its_processes_and_starts_the_new_one() -> Result<()>
{
    let (dir, dev) = dev()?;
    let pid_dir = dir.path().join("pids");
    std::fs::create_dir_all(&pid_dir)?;
    dev_apply(
        &dev,
        dir.path(),
        "replacing",
        &job(
            "replacing",
            "@every 4s",
            &pid_writing(&pid_dir),
            "concurrency: replace\n",
        ),
    )?;
    // A run going on, with its processes.
    let running_with_pids = |after: u64| -> Option<(Exec, [u32; 2])> {
        let e = dev
            .records("replacing")
            .ok()?
            .into_iter()
            .find(|e| e.id > after && e.status == "running")?;
        let pids = pids(&pid_dir, e.id)?;
        Some((e, pids))
    };
    let (a, a_pids) = wait_until(FIRE_DEADLINE, "a scheduled run going on", || {
        running_with_pids(0)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    let (b, b_pids) = wait_until(FIRE_DEADLINE, "the next instant's run", || {
        running_with_pids(a.id)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    ensure!(
        b.scheduled_at > a.scheduled_at && b.trigger == "schedule",
        "{} after {}",
        b.brief(),
        a.brief()
    );
    let a = dev.execution(a.id)?;
    ensure!(a.status == "cancelled", "the replaced run: {}", a.raw);
    wait_gone(a_pids, "the replaced run's processes to be gone")?;

    // A manual start replaces the scheduled run the same way.
    let out = dev.cli(&["job", "run", "replacing", "-o", "json"])?.ok()?;
    let m = started(&out.json()?)?;
    ensure!(m.trigger == "manual", "{}", m.raw);
    let b_now = wait_until(KILL_BOUND, "the scheduled run to be final", || {
        let e = dev.execution(b.id).ok()?;
        is_final(&e.status).then_some(e)
    })?;
    ensure!(
        b_now.status == "cancelled",
        "the run replaced by a manual start: {}",
        b_now.raw
    );
    wait_gone(b_pids, "the replaced scheduled run's processes to be gone")?;
    let m_pids = wait_until(FIRE_DEADLINE, "the manual run's processes", || {
        pids(&pid_dir, m.id)
    })?;

    // Tidy up: no more starts, and the last run stopped.
    dev.cli(&["job", "pause", "replacing"])?.ok()?;
    for e in dev.records("replacing")? {
        if !is_final(&e.status) {
            dev.cli(&["exec", "cancel", &e.id.to_string()])?.ok()?;
        }
    }
    wait_gone(m_pids, "the manual run's processes to be gone")?;
    Ok(())
}

// f. `kairos exec cancel ID` on a running `sleep 60`: recorded `cancelled`, and its
//    process group (the shell and its background child) is gone.
#[test]
fn exec_cancel_records_cancelled_and_kills_the_process_group() -> Result<()> {
    let (dir, dev) = dev()?;
    let pid_dir = dir.path().join("pids");
    std::fs::create_dir_all(&pid_dir)?;
    dev_apply(
        &dev,
        dir.path(),
        "sleeper",
        &job("sleeper", "@manual", &pid_writing(&pid_dir), ""),
    )?;
    let e = started(
        &dev.cli(&["job", "run", "sleeper", "-o", "json"])?
            .ok()?
            .json()?,
    )?;
    let pids = wait_until(FIRE_DEADLINE, "the run's processes", || {
        let now = dev.execution(e.id).ok()?;
        if now.status != "running" {
            return None;
        }
        pids(&pid_dir, e.id)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    ensure!(
        pids.iter().all(|p| !process_gone(*p)),
        "the processes died on their own"
    );

    let asked = Instant::now();
    dev.cli(&["exec", "cancel", &e.id.to_string()])?.ok()?;
    let cancelled = wait_until(KILL_BOUND, "the execution to be final", || {
        let now = dev.execution(e.id).ok()?;
        is_final(&now.status).then_some(now)
    })?;
    ensure!(cancelled.status == "cancelled", "{}", cancelled.raw);
    wait_gone(pids, "the shell and its child to be gone")?;
    eprintln!(
        "cancelled and gone within {:.2} s",
        asked.elapsed().as_secs_f64()
    );
    // And it stays cancelled: the killed process's report, once the scheduler has
    // taken it in (it logs every report it applies), does not overwrite it.
    let report = format!(" execution={} ", e.id);
    wait_until(
        KILL_BOUND,
        "the scheduler to apply the killed run's report",
        || {
            dev.log_lines()
                .iter()
                .any(|l| {
                    l.contains("kairos_scheduler")
                        && l.contains("execution finished")
                        && l.contains(&report)
                })
                .then_some(())
        },
    )
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    let later = dev.execution(e.id)?;
    ensure!(later.status == "cancelled", "{}", later.raw);
    Ok(())
}

/// A `queue` job (`@manual`, runs of 4 s) with a run going on, a second start
/// queued behind it (checked: the answer says `queued`, `status.queuedAt` is set)
/// and a third start asked for; returns the first run and the third's answer.
fn queue_with_a_run_and_a_queued_start(dev: &Dev, dir: &Path) -> Result<(Exec, CliOutput)> {
    let file = dir.join("queued.ran");
    dev_apply(
        dev,
        dir,
        "queued",
        &job(
            "queued",
            "@manual",
            &recording(&file, "sleep 4"),
            "concurrency: queue\n",
        ),
    )?;
    let first = started(
        &dev.cli(&["job", "run", "queued", "-o", "json"])?
            .ok()?
            .json()?,
    )?;
    wait_until(FIRE_DEADLINE, "the first run to be going on", || {
        (dev.execution(first.id).ok()?.status == "running").then_some(())
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;

    let second = dev
        .cli(&["job", "run", "queued", "-o", "json"])?
        .ok()?
        .json()?;
    ensure!(
        second.get("queued") == Some(&Value::Bool(true)) && second.get("execution").is_none(),
        "the second start is not queued: {second}"
    );
    let status = dev.job("queued")?;
    let queued_at = status
        .get("status")
        .map(|s| field(s, "queuedAt").to_string())
        .unwrap_or_default();
    ensure!(
        !queued_at.is_empty(),
        "status.queuedAt is not set: {status}"
    );

    let third = dev.cli(&["job", "run", "queued", "-o", "json"])?;
    Ok((first, third))
}

// g. `queue`: with a run going on, the next start waits (`status.queuedAt` set)
//    and starts right after the first ends; a third start meanwhile is
//    `skipped_overlap` (and refused).
#[test]
fn queue_holds_one_start_until_the_run_ends_and_skips_a_third() -> Result<()> {
    let (dir, dev) = dev()?;
    let (first, third) = queue_with_a_run_and_a_queued_start(&dev, dir.path())?;
    ensure!(!third.success(), "the third start was accepted: {third:?}");
    let records = dev.records("queued")?;
    let skipped: Vec<&Exec> = records
        .iter()
        .filter(|e| e.status == "skipped_overlap")
        .collect();
    ensure!(
        skipped.len() == 1 && skipped[0].trigger == "manual",
        "the third start is not recorded skipped_overlap: {:?} (answer {third:?})",
        records.iter().map(Exec::brief).collect::<Vec<_>>()
    );
    ensure!(
        records.iter().filter(|e| e.status == "running").count() == 1,
        "more than one run going on: {:?}",
        records.iter().map(Exec::brief).collect::<Vec<_>>()
    );

    let records = wait_until(
        Duration::from_secs(30),
        "the queued start to run and finish",
        || {
            let records = dev.records("queued").ok()?;
            let done = records.iter().filter(|e| e.status == "succeeded").count();
            (done >= 2).then_some(records)
        },
    )
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    let ran: Vec<&Exec> = records.iter().filter(|e| e.status == "succeeded").collect();
    let (a, b) = (ran[0], ran[1]);
    ensure!(a.id == first.id, "the first run: {}", a.brief());
    let (a_end, b_start) = (
        a.finished_at.context("finishedAt")?,
        b.started_at.context("startedAt")?,
    );
    let waited = b_start - a_end;
    eprintln!(
        "queued start began {:.3} s after the first ended",
        waited.as_seconds_f64()
    );
    ensure!(
        waited >= TimeDelta::zero() && waited < TimeDelta::seconds(2),
        "the queued start began {waited} after the first ended: {} then {}",
        a.brief(),
        b.brief()
    );
    let status = dev.job("queued")?;
    ensure!(
        status
            .get("status")
            .is_none_or(|s| field(s, "queuedAt").is_empty()),
        "status.queuedAt still set after the queued start ran: {status}"
    );
    Ok(())
}

// g'. The refusal of that third start tells the caller the job's own policy
//     (`queue`), not another one.
#[test]
fn a_start_refused_by_queue_names_the_queue_policy() -> Result<()> {
    let (dir, dev) = dev()?;
    let (_, third) = queue_with_a_run_and_a_queued_start(&dev, dir.path())?;
    ensure!(
        !third.success() && third.stderr.contains("queue") && !third.stderr.contains("forbid"),
        "the refusal of a start of a `queue` job names another policy: {:?}",
        third.stderr
    );
    Ok(())
}

/// Waits until the clock is 50–150 ms past a second boundary and returns that
/// second: the fires of the next two seconds are then committed (and sent) ahead.
fn just_past_a_second() -> Result<DateTime<Utc>> {
    wait_until(Duration::from_secs(3), "50 ms past a second", || {
        let now = Utc::now();
        let ms = now.timestamp_subsec_millis();
        (50..150).contains(&ms).then(|| floor_second(now))
    })
}

// h. A job updated while fires committed ahead of their instant are held by an
//    executor the leader cannot reach (frozen across a change of leader): the update
//    must not make those instants run twice — once from the assignment the executor
//    already holds, once more re-fired under the new definition. The leadership is
//    handed over (`cluster transfer-leader`) rather than lost to a kill, so that the
//    new leader takes the update well before the held instants fall due even on a
//    loaded machine: an election alone takes 0.7–1.2 s of the 2 s they are held.
#[test]
fn an_update_while_an_executor_holds_fires_sent_ahead_does_not_run_them_twice() -> Result<()> {
    let (dir, cluster) = cluster(3, 1)?;
    let file = dir.path().join("edited.ran");
    let doc = |rev: u32| {
        job(
            "edited",
            "@every 1s",
            &recording(&file, ""),
            &format!("metadata: {{rev: \"{rev}\"}}\n"),
        )
    };
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "edited", &doc(0))?;
    wait_until(FIRE_DEADLINE, "3 runs", || {
        (read_runs(&file).ok()?.len() >= 3).then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;
    let next = cluster
        .running_schedulers()
        .into_iter()
        .find(|&id| id != leader)
        .expect("three nodes");
    let yaml = write_file(dir.path(), "edited-1.yaml", &doc(1))?;

    // Just past second t the executor holds the fires of t+1 and t+2. Freeze it,
    // hand the leadership to another node, and update the job through it before t+2.
    let t = just_past_a_second()?;
    cluster.stop_executor(0)?;
    cluster
        .cli(leader, &["cluster", "transfer-leader", &next.to_string()])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let new_leader = cluster.wait_for_leader_where("the new leader", |id| id != leader)?;
    let out = cluster.cli(new_leader, &["job", "apply", "-f", &yaml])?;
    let updated_at = Utc::now();
    out.ok().map_err(|e| cluster.with_logs(e))?;
    eprintln!(
        "executor frozen and leadership moved from {leader} to {new_leader} at {t} + ~0.1 s; update acknowledged at {updated_at}"
    );
    ensure!(
        updated_at < t + TimeDelta::milliseconds(1900),
        "inconclusive: the update came after the instants held by the executor ({updated_at})"
    );
    // Let the executor go once t+2 is overdue: it runs what it holds at once.
    let resume_at = t + TimeDelta::milliseconds(2500);
    if let Ok(wait) = (resume_at - Utc::now()).to_std() {
        std::thread::sleep(wait);
    }
    cluster.continue_executor(0)?;
    let last = t + TimeDelta::seconds(6);
    wait_until(
        FIRE_DEADLINE,
        &format!("an instant after {last} to run"),
        || {
            read_runs(&file)
                .ok()?
                .iter()
                .any(|r| r.scheduled_at > last)
                .then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let records = wait_until(
        FIRE_DEADLINE,
        "the executions up to the last to be final",
        || {
            let records = cluster.records(new_leader, "edited").ok()?;
            records
                .iter()
                .filter(|e| e.scheduled_at <= last)
                .all(|e| is_final(&e.status))
                .then_some(records)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let runs = read_runs(&file)?;
    let (records, runs) = upto(&records, &runs, last);
    let ran = instants_once(&runs, "edited")?;
    check_instants(
        &records,
        &Window {
            first: ran[0],
            last,
            period: SECOND,
        },
    )?;
    check_runs(&records, &runs)?;
    Ok(())
}

// i. After a failover, fires committed ahead whose executor died (and came back at
//    once, as a new process without them) are not sent to it again: the earlier
//    process may already have run them. They end `lost` once the lease runs out, and
//    the job's retry policy runs them again as attempt 2 — so nothing is lost, and no
//    attempt of an instant runs twice.
#[test]
fn fires_held_by_an_executor_that_died_are_lost_then_retried_never_run_twice() -> Result<()> {
    let (dir, mut cluster) = cluster(3, 1)?;
    let file = dir.path().join("resent.ran");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(
        leader,
        "resent",
        &job(
            "resent",
            "@every 1s",
            &recording(&file, ""),
            "retry: {max_attempts: 2, backoff: 1s}\n",
        ),
    )?;
    wait_until(FIRE_DEADLINE, "3 runs", || {
        (read_runs(&file).ok()?.len() >= 3).then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    // Just past second t the executor holds the fires of t+1 and t+2: kill it and
    // the leader, then bring the executor back to the new leader.
    let t = just_past_a_second()?;
    cluster.kill_executor(0)?;
    cluster.kill_scheduler(leader)?;
    let new_leader = cluster.wait_for_leader_where("a new leader", |id| id != leader)?;
    cluster.restart_executor(0)?;
    cluster.wait_for_executors(1)?;
    let last = t + TimeDelta::seconds(5);
    let records = wait_until(
        Duration::from_secs(60),
        "every instant up to t+5 to have a final outcome",
        || {
            let records = cluster.records(new_leader, "resent").ok()?;
            let upto: Vec<Exec> = records
                .into_iter()
                .filter(|e| e.scheduled_at <= last)
                .collect();
            let settled = upto.iter().all(|e| is_final(&e.status))
                && !upto.iter().any(|e| {
                    e.status == "lost"
                        && e.attempt == 1
                        && !upto.iter().any(|r| r.previous_attempt == e.id)
                });
            settled.then_some(upto)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let outcomes = check_instants(
        &records,
        &Window {
            first: records[0].scheduled_at,
            last,
            period: SECOND,
        },
    )?;
    let held: Vec<String> = outcomes
        .range(t + SECOND..=t + TimeDelta::seconds(2))
        .flat_map(|(_, o)| o.attempts.iter().map(Exec::brief))
        .collect();
    eprintln!("killed at {t} + ~0.1 s; the fires the executor held and their attempts: {held:?}");
    let runs = read_runs(&file)?;
    // The scenario itself: t+1 was committed (a second ahead) and held by the process
    // that died, so its attempt 1 never ran, ended `lost` through the lease, and
    // attempt 2 (trigger `retry`) ran it. t+2 may have been committed before the
    // leader died (then the same), or fired by the new leader (then simply run).
    for (at, o) in outcomes.range(t + SECOND..=t + TimeDelta::seconds(2)) {
        let attempts: Vec<String> = o.attempts.iter().map(Exec::brief).collect();
        let ran = |attempt: u64| {
            runs.iter()
                .filter(|r| r.scheduled_at == *at && r.attempt == attempt)
                .count()
        };
        let lost_then_retried = matches!(
            &o.attempts[..],
            [first, retry] if first.status == "lost"
                && retry.trigger == "retry"
                && retry.previous_attempt == first.id
                && retry.status == "succeeded"
        );
        if lost_then_retried {
            ensure!(
                ran(1) == 0 && ran(2) == 1,
                "{at}: attempt 1 was held by the process that died, yet the file shows attempt 1 ran {} time(s), attempt 2 {} time(s): {attempts:?}",
                ran(1),
                ran(2)
            );
        } else {
            ensure!(
                *at != t + SECOND,
                "{at}, held by the executor that died, was not lost then retried: {attempts:?}"
            );
        }
    }
    // Every instant ends well: the held ones through their retry.
    let not_run: Vec<String> = outcomes
        .values()
        .filter(|o| o.status() != "succeeded")
        .map(|o| format!("{} ({})", o.first().brief(), o.first().error))
        .collect();
    ensure!(
        not_run.is_empty(),
        "instants that did not end succeeded: {not_run:?}"
    );
    // And no attempt ran twice.
    let (records, runs) = upto(&records, &runs, last);
    check_runs(&records, &runs)?;
    Ok(())
}

// j. An executor runs an instant and dies before the leader has committed its
//    report; it comes back at once, under the same name, to the same leader. The
//    instant must not run a second time as the same attempt: the leader may not
//    know whether the run happened, but re-sending the assignment makes the
//    record (one execution, succeeded) hide a second run.
//
//    The scenario needs the instant to have run before the kill, and the leader to
//    stay leader while its followers are frozen; the test checks both, and when a
//    slow machine spoils either, plays the scenario again (at most `ROUNDS` times)
//    rather than passing without it.
#[test]
fn an_instant_run_by_an_executor_that_died_before_its_report_was_committed_is_not_run_again()
-> Result<()> {
    const ROUNDS: usize = 3;
    let (dir, mut cluster) = cluster(3, 1)?;
    let file = dir.path().join("reported.ran");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(
        leader,
        "reported",
        &job("reported", "@every 1s", &recording(&file, ""), ""),
    )?;
    wait_until(FIRE_DEADLINE, "3 runs", || {
        (read_runs(&file).ok()?.len() >= 3).then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    let mut spoiled = Vec::new();
    let mut played = None;
    for round in 1..=ROUNDS {
        cluster.wait_for_executors(1)?;
        let leader = cluster.wait_for_leader()?;
        let followers: Vec<u64> = cluster
            .running_schedulers()
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        // Just before second T, freeze the followers: the leader can commit nothing
        // (for less than an election timeout, so it stays leader). The executor runs
        // T and reports it; the leader cannot commit the report. Once T's line is in
        // the file, kill the executor, start it again (it registers with the same
        // leader), then let the followers go.
        let t = wait_until(Duration::from_secs(3), "50 ms before a second", || {
            let now = Utc::now();
            (900..950)
                .contains(&now.timestamp_subsec_millis())
                .then(|| floor_second(now) + SECOND)
        })?;
        for id in &followers {
            cluster.stop_scheduler(*id)?;
        }
        let frozen = Instant::now();
        let ran_t = wait_until(Duration::from_millis(300), "T's run in the file", || {
            read_runs(&file)
                .ok()?
                .iter()
                .any(|r| r.scheduled_at == t)
                .then_some(())
        });
        cluster.kill_executor(0)?;
        cluster.restart_executor(0)?;
        let thaw_at = frozen + Duration::from_millis(350);
        if let Some(wait) = thaw_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for id in &followers {
            cluster.continue_scheduler(*id)?;
        }
        let frozen_for = frozen.elapsed();
        let still = cluster.wait_for_leader()?;
        eprintln!(
            "round {round}: followers {followers:?} frozen for {:.2} s around {t}; T ran before the kill: {}; executor killed and restarted; leader {leader} then {still}",
            frozen_for.as_secs_f64(),
            ran_t.is_ok()
        );
        match (ran_t, still == leader) {
            (Ok(()), true) => {
                played = Some(t);
                break;
            }
            (Err(_), _) => spoiled.push(format!("round {round}: {t} had not run 300 ms after the freeze")),
            (_, false) => spoiled.push(format!(
                "round {round}: the leader changed from {leader} to {still} while its followers were frozen for {:.2} s",
                frozen_for.as_secs_f64()
            )),
        }
    }
    let t = played.ok_or_else(|| {
        cluster.with_logs(anyhow!(
            "the scenario never happened in {ROUNDS} rounds: {spoiled:?}"
        ))
    })?;

    let last = t + TimeDelta::seconds(5);
    wait_until(
        FIRE_DEADLINE,
        &format!("an instant after {last} to run"),
        || {
            read_runs(&file)
                .ok()?
                .iter()
                .any(|r| r.scheduled_at > last)
                .then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let runs = read_runs(&file)?;
    let around: Vec<String> = runs
        .iter()
        .filter(|r| r.scheduled_at >= t - SECOND && r.scheduled_at <= t + SECOND)
        .map(|r| format!("{} #{:?}", r.scheduled_at.format("%H:%M:%S"), r.execution))
        .collect();
    eprintln!("runs around {t}: {around:?}");
    instants_once(&runs, "reported")?;
    // T has one execution, final, and it is the one that ran.
    let leader = cluster.wait_for_leader()?;
    let at_t = wait_until(FIRE_DEADLINE, "T's execution to be final", || {
        let at_t: Vec<Exec> = cluster
            .records(leader, "reported")
            .ok()?
            .into_iter()
            .filter(|e| e.scheduled_at == t)
            .collect();
        at_t.iter().all(|e| is_final(&e.status)).then_some(at_t)
    })
    .map_err(|e| cluster.with_logs(e))?;
    let t_runs: Vec<Ran> = runs.into_iter().filter(|r| r.scheduled_at == t).collect();
    eprintln!(
        "T's record: {:?}",
        at_t.iter().map(Exec::brief).collect::<Vec<_>>()
    );
    ensure!(
        at_t.len() == 1,
        "{t} has {} executions: {:?}",
        at_t.len(),
        at_t.iter().map(Exec::brief).collect::<Vec<_>>()
    );
    check_runs(&at_t, &t_runs)?;
    Ok(())
}

// k. A pause reaches the fires committed ahead of their instant: those that had not
//    started are `skipped_paused` and never ran, anything that did run is recorded
//    with what it did, and nothing is left pending.
#[test]
fn a_pause_skips_the_fires_sent_ahead_that_had_not_started_and_only_those() -> Result<()> {
    let (dir, dev) = dev()?;
    let file = dir.path().join("paused.ran");
    dev_apply(
        &dev,
        dir.path(),
        "paused",
        &job("paused", "@every 1s", &recording(&file, ""), ""),
    )?;
    wait_until(FIRE_DEADLINE, "3 runs", || {
        (read_runs(&file).ok()?.len() >= 3).then_some(())
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;

    // Just past a second, the next instants are committed and held by the executor.
    let t = just_past_a_second()?;
    dev.cli(&["job", "pause", "paused"])?.ok()?;
    let paused_at = Utc::now();
    let records = wait_until(FIRE_DEADLINE, "every execution to be final", || {
        let records = dev.records("paused").ok()?;
        records
            .iter()
            .all(|e| is_final(&e.status))
            .then_some(records)
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    let runs = read_runs(&file)?;
    check_runs(&records, &runs)?;
    instants_once(&runs, "paused")?;

    let skipped: Vec<&Exec> = records
        .iter()
        .filter(|e| e.status == "skipped_paused")
        .collect();
    eprintln!(
        "paused at {paused_at} (second {t}); skipped: {:?}",
        skipped.iter().map(|e| e.brief()).collect::<Vec<_>>()
    );
    ensure!(
        !skipped.is_empty(),
        "no fire committed ahead was skipped: {:?}",
        records.iter().map(|e| e.brief()).collect::<Vec<_>>()
    );
    for e in &skipped {
        ensure!(
            e.started_at.is_none() && e.scheduled_at > t,
            "{} is skipped but started or was due before the pause",
            e.brief()
        );
    }
    let job = dev.job("paused")?;
    ensure!(
        outcome_counts(&job).get("skipped_paused") == Some(&(skipped.len() as u64)),
        "the job's counts disagree with its executions: {job}"
    );
    Ok(())
}

/// A scripted executor's connection: what it sends, what it receives.
struct FakeConn {
    tx: tokio::sync::mpsc::Sender<kairos_proto::v1::ExecutorMessage>,
    inbound: tonic::Streaming<kairos_proto::v1::SchedulerMessage>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl FakeConn {
    /// Says Hello as executor `fake` of process `boot`, holding nothing, and waits
    /// for the Welcome; heartbeats (holding nothing) until dropped.
    async fn open(addr: &str, boot: &str) -> Result<(FakeConn, u64)> {
        use kairos_proto::v1 as pb;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let kind = |k| pb::ExecutorMessage { kind: Some(k) };
        tx.send(kind(pb::executor_message::Kind::Hello(pb::Hello {
            executor_id: "fake".into(),
            capacity: 8,
            protocol_version: kairos_proto::EXECUTOR_PROTOCOL_VERSION,
            boot_id: boot.into(),
            version: "test".into(),
            ..Default::default()
        })))
        .await?;
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let mut client =
            kairos_proto::v1::executor_gateway_client::ExecutorGatewayClient::new(channel);
        let mut inbound = client
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .context("no welcome in time")??
            .and_then(|m| m.kind);
        let Some(pb::scheduler_message::Kind::Welcome(welcome)) = first else {
            return Err(anyhow!("expected a welcome, got {first:?}"));
        };
        let beat = tx.clone();
        let heartbeats = tokio::spawn(async move {
            for _ in 0..240 {
                let hb = kind(pb::executor_message::Kind::Heartbeat(
                    pb::Heartbeat::default(),
                ));
                if beat.send(hb).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Ok((
            FakeConn {
                tx,
                inbound,
                heartbeats,
            },
            welcome.term,
        ))
    }

    /// The next assignment within `wait`, if any (other messages skipped).
    async fn assignment(&mut self, wait: Duration) -> Result<Option<kairos_proto::v1::Assignment>> {
        use kairos_proto::v1::scheduler_message::Kind;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inbound.message()).await {
                Err(_) => return Ok(None),
                Ok(message) => {
                    if let Some(Kind::Assignment(a)) = message?.and_then(|m| m.kind) {
                        return Ok(Some(a));
                    }
                }
            }
        }
    }

    /// Closes the stream, as a broken connection would.
    fn close(self) {
        self.heartbeats.abort();
        drop(self.tx);
        drop(self.inbound);
    }
}

// l. An assignment the executor process never received is sent again to that
//    process; what an earlier process of the executor held is left to the lease.
#[test]
fn an_assignment_never_received_is_sent_again_to_the_same_process_only() -> Result<()> {
    let (_dir, cluster) = cluster(1, 0)?;
    let leader = cluster.wait_for_leader()?;
    let addr = cluster.addr(leader).to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // Process b1 gets the first assignment of a job, then its stream breaks before
    // it does anything with it.
    let (mut conn, term) = rt.block_on(FakeConn::open(&addr, "b1"))?;
    cluster.apply(leader, "resent", &job("resent", "@every 1s", "true", ""))?;
    let first = rt
        .block_on(conn.assignment(FIRE_DEADLINE))?
        .ok_or_else(|| anyhow!("no assignment\n{}", cluster.logs()))?;
    conn.close();

    // The same process says Hello again: it gets that very execution again, under
    // the leader's current term.
    let (mut conn, _) = rt.block_on(FakeConn::open(&addr, "b1"))?;
    let mut seen = Vec::new();
    let again = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match conn.assignment(Duration::from_secs(1)).await? {
                Some(a) if a.execution_id == first.execution_id => return Ok(Some(a)),
                Some(a) => seen.push(a.execution_id),
                None => {}
            }
        }
        Ok::<_, anyhow::Error>(None)
    })?;
    let again = again.ok_or_else(|| {
        anyhow!(
            "execution {} was not sent again (got {seen:?})\n{}",
            first.execution_id,
            cluster.logs()
        )
    })?;
    ensure!(again.term >= term && again.scheduled_at == first.scheduled_at);
    eprintln!(
        "execution {} sent again to the same process (term {})",
        again.execution_id, again.term
    );

    // A new process of the executor (b2): what b1 held is not sent to it; it ends
    // `lost` when the lease runs out.
    conn.close();
    let held_by_b1: u64 = first.execution_id.parse()?;
    let (mut conn, _) = rt.block_on(FakeConn::open(&addr, "b2"))?;
    let lost = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + LOST_BOUND;
        while tokio::time::Instant::now() < deadline {
            if let Some(a) = conn.assignment(Duration::from_millis(500)).await? {
                ensure!(
                    a.execution_id != first.execution_id,
                    "execution {} was sent to a new process of the executor",
                    a.execution_id
                );
            }
            let e = cluster.execution(leader, held_by_b1)?;
            if is_final(&e.status) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    })?;
    conn.close();
    let lost = lost.ok_or_else(|| anyhow!("execution {held_by_b1} never ended"))?;
    ensure!(lost.status == "lost", "{}", lost.raw);
    Ok(())
}
