//! Multi-node scheduler groups end to end: three (or four) `kairos scheduler`
//! processes and separate `kairos executor` agents on 127.0.0.1, killed with SIGKILL
//! and restarted on their data directories, driven through the real CLI.
//!
//! What a user of a fault-tolerant cron checks, and what these tests assert:
//! - a dead leader is replaced and the jobs keep firing, each instant at most once,
//!   with no gap in the instants that ran longer than the acceptance bound (3 s);
//! - a node that comes back catches up and answers exactly what the leader answers;
//! - without a quorum writes fail promptly with `unavailable`, and nothing that was
//!   acknowledged is lost once the quorum is back;
//! - the group grows (a `--join` node catches up, from the log or by snapshot after
//!   the log was compacted, and knows every member) and shrinks (a follower or the
//!   leader itself is removed) while it keeps firing;
//! - a write through any node is visible through every node at once;
//! - a leadership transfer neither misses nor doubles a fire;
//! - `/healthz` answers while the process runs; `/readyz` only on a voter that has
//!   applied what the leader committed (not on a node waiting to be added, nor on
//!   one cut off from its quorum).
//!
//! The instants that ran are read from a file the job appends `$KAIROS_SCHEDULED_AT`
//! to, so the checks are about what really ran, not about what was recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use chrono::{DateTime, Timelike as _, Utc};
use kairos_integration_tests::{
    Cluster, ClusterOptions, LEADER_DEADLINE, field, http_get, num, read_lines, scheduler_ids,
    ticker_job, wait_until, write_file,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// The acceptance bound on the gap between two consecutive instants that ran.
const MAX_GAP: chrono::TimeDelta = chrono::TimeDelta::seconds(3);
/// How long a wait for a few fires may take (a fire per second, plus room for a
/// failover and a slow machine).
const FIRE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a write may take to fail when there is no quorum: the server's own
/// waits are a few seconds; this is generous.
const UNAVAILABLE_BOUND: Duration = Duration::from_secs(20);

fn start(options: ClusterOptions) -> Result<(tempfile::TempDir, Cluster)> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(BIN.as_ref(), dir.path(), options)?;
    Ok((dir, cluster))
}

fn is_final(status: &str) -> bool {
    !matches!(status, "" | "pending" | "running")
}

/// The instants in the file, in the order they were written.
fn instants(file: &Path) -> Result<Vec<DateTime<Utc>>> {
    read_lines(file)
        .iter()
        .map(|l| {
            l.parse::<DateTime<Utc>>()
                .with_context(|| format!("line {l:?} of {} is not an instant", file.display()))
        })
        .collect()
}

/// Waits until the file holds at least `n` instants later than `after`.
fn wait_for_instants_after(
    cluster: &Cluster,
    file: &Path,
    after: DateTime<Utc>,
    n: usize,
) -> Result<()> {
    wait_until(
        FIRE_DEADLINE,
        &format!("{n} instants after {after} in {}", file.display()),
        || {
            let ran = instants(file).ok()?;
            (ran.iter().filter(|t| **t > after).count() >= n).then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))
}

/// Waits until the file holds at least `n` instants.
fn wait_for_instants(cluster: &Cluster, file: &Path, n: usize) -> Result<()> {
    wait_for_instants_after(cluster, file, DateTime::<Utc>::MIN_UTC, n)
}

/// The instants that ran, sorted, after checking that none ran twice.
fn ran_once_each(file: &Path) -> Result<Vec<DateTime<Utc>>> {
    let ran = instants(file)?;
    let mut seen = BTreeSet::new();
    let twice: Vec<&DateTime<Utc>> = ran.iter().filter(|t| !seen.insert(**t)).collect();
    ensure!(twice.is_empty(), "instants that ran twice: {twice:?}");
    Ok(seen.into_iter().collect())
}

/// The largest gap between consecutive instants of a sorted list.
fn largest_gap(sorted: &[DateTime<Utc>]) -> chrono::TimeDelta {
    sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Checks that no instant has two records among the executions of `job` as node
/// `id` lists them (manual runs aside, which have no instant of their own).
fn recorded_once_each(cluster: &Cluster, id: u64, job: &str) -> Result<()> {
    let recorded: Vec<String> = cluster
        .executions(id, job)?
        .iter()
        .filter(|e| field(e, "trigger") != "manual")
        .map(|e| field(e, "scheduledAt").to_string())
        .collect();
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = recorded.iter().filter(|t| !seen.insert(*t)).collect();
    ensure!(twice.is_empty(), "instants recorded twice: {twice:?}");
    Ok(())
}

/// `job list -o json` through node `id`.
fn job_list(cluster: &Cluster, id: u64) -> Result<Value> {
    cluster
        .cli(id, &["job", "list", "-o", "json"])?
        .ok()?
        .json()
}

fn job_names(list: &Value) -> BTreeSet<String> {
    list.get("jobs")
        .and_then(Value::as_array)
        .map(|jobs| jobs.iter().map(|j| field(j, "name").to_string()).collect())
        .unwrap_or_default()
}

/// Waits until `job list` through `a` and through `b` are equal. A job's status
/// (next fire, last outcome) moves every second while a job fires, so the two
/// answers are compared until a pair taken close together is equal; a node that
/// really differs never gets there.
fn wait_for_equal_job_lists(cluster: &Cluster, a: u64, b: u64) -> Result<Value> {
    let mut last = (Value::Null, Value::Null);
    wait_until(
        Duration::from_secs(20),
        &format!("job list through {a} and {b} to be equal"),
        || {
            let (x, y) = (job_list(cluster, a).ok()?, job_list(cluster, b).ok()?);
            if x == y {
                return Some(x);
            }
            last = (x, y);
            None
        },
    )
    .map_err(|e| anyhow!("{e}\nthrough {a}: {}\nthrough {b}: {}", last.0, last.1))
}

/// Checks that every running node lists exactly `members` in `cluster status`.
fn members_everywhere(cluster: &Cluster, members: &[u64]) -> Result<()> {
    for id in cluster.running_schedulers() {
        let status = cluster.status(id)?;
        ensure!(
            scheduler_ids(&status) == members,
            "through {id}, the group is {:?}, not {members:?}: {status}",
            scheduler_ids(&status)
        );
    }
    Ok(())
}

/// The nodes other than `id` that are running, in order.
fn others(cluster: &Cluster, id: u64) -> Vec<u64> {
    cluster
        .running_schedulers()
        .into_iter()
        .filter(|&n| n != id)
        .collect()
}

// 1. A SIGKILLed leader is replaced, and the job keeps firing, each instant at most
//    once, with no gap over the acceptance bound.
#[test]
fn when_the_leader_is_killed_a_new_one_keeps_firing_each_instant_once() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("instants");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &ticker_job("ticker", &file))?;
    wait_for_instants(&cluster, &file, 3)?;

    let killed_at = Utc::now();
    cluster.kill_scheduler(leader)?;
    let new_leader =
        cluster.wait_for_leader_where("a leader other than the killed one", |id| id != leader)?;
    wait_for_instants_after(&cluster, &file, killed_at, 5)?;

    let ran = ran_once_each(&file)?;
    let gap = largest_gap(&ran);
    eprintln!(
        "killed leader {leader} at {killed_at}; {new_leader} leads; {} instants, largest gap {gap}",
        ran.len()
    );
    ensure!(
        gap < MAX_GAP,
        "a gap of {gap} between instants (killed {leader} at {killed_at}): {ran:?}"
    );
    recorded_once_each(&cluster, new_leader, "ticker")?;
    Ok(())
}

// 2. The killed leader restarts on its data directory, rejoins as a follower, and
//    answers what the leader answers.
#[test]
fn a_restarted_node_catches_up_and_answers_what_the_leader_answers() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("instants");
    let old = cluster.wait_for_leader()?;
    cluster.apply(old, "ticker", &ticker_job("ticker", &file))?;
    cluster.apply(
        old,
        "before",
        "name: before\nschedule: \"@manual\"\nshell: {command: \"true\"}\n",
    )?;
    wait_for_instants(&cluster, &file, 3)?;
    let term_before = num(&cluster.own_status(old)?, "term");

    cluster.kill_scheduler(old)?;
    let leader = cluster.wait_for_leader_where("a new leader", |id| id != old)?;
    // What happens while it is down: a new job, and fires the new leader records
    // (an execution carries the term of the leader that created it).
    cluster.apply(
        leader,
        "while-down",
        "name: while-down\nschedule: \"@every 1h\"\nshell: {command: \"true\"}\n",
    )?;
    let while_down: BTreeSet<u64> = wait_until(
        FIRE_DEADLINE,
        "3 finished executions created by the new leader",
        || {
            let list = cluster.executions(leader, "ticker").ok()?;
            let ids: BTreeSet<u64> = list
                .iter()
                .filter(|e| num(e, "term") > term_before && is_final(field(e, "status")))
                .map(|e| num(e, "id"))
                .collect();
            (ids.len() >= 3).then_some(ids)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;

    cluster.restart_scheduler(old)?;
    let row = cluster.wait_caught_up(old)?;
    ensure!(field(&row, "role") == "follower", "after restart: {row}");

    let leader = cluster.wait_for_leader()?;
    ensure!(leader != old, "the restarted node took the lead back");
    let jobs = wait_for_equal_job_lists(&cluster, old, leader)?;
    ensure!(
        job_names(&jobs) == BTreeSet::from(["before", "ticker", "while-down"].map(String::from)),
        "{jobs}"
    );

    // Executions: the same ids over the range both still hold, and each execution
    // that is final on both nodes is the same record on both.
    let through_old = cluster.executions(old, "ticker")?;
    let through_leader = cluster.executions(leader, "ticker")?;
    let by_id = |list: &[Value]| -> BTreeMap<u64, Value> {
        list.iter().map(|e| (num(e, "id"), e.clone())).collect()
    };
    let (a, b) = (by_id(&through_old), by_id(&through_leader));
    let lo = *a
        .keys()
        .next()
        .unwrap_or(&0)
        .max(b.keys().next().unwrap_or(&0));
    let hi = *a
        .keys()
        .next_back()
        .unwrap_or(&0)
        .min(b.keys().next_back().unwrap_or(&0));
    let range =
        |m: &BTreeMap<u64, Value>| -> BTreeSet<u64> { m.range(lo..=hi).map(|(k, _)| *k).collect() };
    ensure!(
        range(&a) == range(&b),
        "execution ids differ in {lo}..={hi}: through {old}: {:?}, through {leader}: {:?}",
        range(&a),
        range(&b)
    );
    let mut compared = 0;
    for (id, e) in &a {
        let Some(other) = b.get(id) else { continue };
        if !(is_final(field(e, "status")) && is_final(field(other, "status"))) {
            continue;
        }
        ensure!(
            e == other,
            "execution {id} differs: through {old}: {e}, through {leader}: {other}"
        );
        compared += 1;
    }
    let missing: Vec<&u64> = while_down.iter().filter(|id| !a.contains_key(id)).collect();
    ensure!(
        missing.is_empty(),
        "{old} lacks executions recorded while it was down: {missing:?}"
    );
    eprintln!(
        "{compared} executions final on both, {} recorded while {old} was down",
        while_down.len()
    );
    ensure!(
        compared >= 5,
        "too little to compare: {compared} final on both"
    );
    ran_once_each(&file)?;
    Ok(())
}

// 3. With two of three nodes dead, a write through the survivor fails promptly with
//    `unavailable`; with one back, writes succeed and nothing acknowledged is lost.
#[test]
fn without_a_quorum_writes_fail_unavailable_and_acknowledged_jobs_survive() -> Result<()> {
    let (_dir, mut cluster) = start(ClusterOptions::new(3, 0))?;
    let survivor = cluster.wait_for_leader()?;
    let mut acknowledged = BTreeSet::new();
    for (i, via) in cluster.scheduler_ids().into_iter().enumerate() {
        let name = format!("acked-{i}");
        cluster.apply(
            via,
            &name,
            &format!("name: {name}\nschedule: \"@manual\"\nshell: {{command: \"true\"}}\n"),
        )?;
        acknowledged.insert(name);
    }

    // Kill both followers: the survivor is the leader, and must notice it lost its
    // quorum rather than hold the write.
    let dead = others(&cluster, survivor);
    for id in &dead {
        cluster.kill_scheduler(*id)?;
    }
    for attempt in ["refused-1", "refused-2"] {
        let file = write_file(
            cluster.dir(),
            &format!("{attempt}.yaml"),
            &format!("name: {attempt}\nschedule: \"@manual\"\nshell: {{command: \"true\"}}\n"),
        )?;
        let began = Instant::now();
        let out = cluster.cli_within(
            survivor,
            &["job", "apply", "-f", &file],
            Duration::from_secs(60),
        )?;
        let took = began.elapsed();
        ensure!(
            !out.success(),
            "{attempt} was accepted without a quorum: {out:?}"
        );
        let stderr = out.stderr.trim_end();
        ensure!(
            stderr.lines().count() == 1 && stderr.to_lowercase().contains("unavailable"),
            "{attempt}: not one line saying unavailable: {stderr:?}"
        );
        eprintln!("{attempt}: failed after {took:?}: {stderr}");
        ensure!(took < UNAVAILABLE_BOUND, "{attempt} took {took:?} to fail");
    }
    // A read cannot be served either: the survivor cannot confirm it is current.
    let began = Instant::now();
    let out = cluster.cli_within(survivor, &["job", "list"], Duration::from_secs(60))?;
    ensure!(
        !out.success() && out.stderr.to_lowercase().contains("unavailable"),
        "a read without a quorum: {out:?}"
    );
    ensure!(
        began.elapsed() < UNAVAILABLE_BOUND,
        "the read took {:?}",
        began.elapsed()
    );

    let back = dead[0];
    cluster.restart_scheduler(back)?;
    cluster.wait_for_leader()?;
    cluster.apply(
        survivor,
        "after",
        "name: after\nschedule: \"@manual\"\nshell: {command: \"true\"}\n",
    )?;
    acknowledged.insert("after".to_string());
    for id in [survivor, back] {
        let names = job_names(&job_list(&cluster, id)?);
        let lost: Vec<&String> = acknowledged.difference(&names).collect();
        ensure!(
            lost.is_empty(),
            "through {id}, acknowledged jobs are missing: {lost:?}"
        );
    }
    Ok(())
}

// 4. The group grows by a `--join` node that catches up by snapshot (the log it
//    would need was compacted away), and shrinks, while a job keeps firing.
#[test]
fn a_joining_node_catches_up_by_snapshot_and_a_node_is_removed_while_firing_goes_on() -> Result<()>
{
    let (dir, mut cluster) =
        start(ClusterOptions::new(3, 2).scheduler_flag("--snapshot-interval", "20"))?;
    let file = dir.path().join("instants");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &ticker_job("ticker", &file))?;
    wait_for_instants(&cluster, &file, 2)?;

    // 60 creations and 60 updates, ten jobs to a file, through every node in turn.
    let ids = cluster.scheduler_ids();
    for round in ["first", "second"] {
        for batch in 0..6 {
            let yaml: Vec<String> = (0..10)
                .map(|i| {
                    format!(
                        "name: bulk-{batch}-{i}\nschedule: \"@manual\"\ndescription: {round}\nshell: {{command: \"true\"}}\n"
                    )
                })
                .collect();
            cluster.apply(
                ids[batch % ids.len()],
                &format!("bulk-{batch}"),
                &yaml.join("---\n"),
            )?;
        }
    }
    let leader = cluster.wait_for_leader()?;
    wait_until(
        Duration::from_secs(20),
        "the leader to compact its log",
        || (num(&cluster.own_status(leader).ok()?, "logFirstIndex") > 1).then_some(()),
    )
    .map_err(|e| cluster.with_logs(e))?;

    // Grow: node 4 starts empty with --join and is admitted through a follower.
    let addr = cluster.start_joining_scheduler(4)?;
    let via = others(&cluster, leader)[0];
    cluster
        .cli(via, &["cluster", "add-scheduler", "4", &addr])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let row = cluster.wait_caught_up(4)?;
    eprintln!("node 4 caught up: {row}");
    ensure!(field(&row, "role") == "follower", "node 4: {row}");
    ensure!(
        num(&row, "logFirstIndex") > 1,
        "node 4 holds the log from the start, so it did not get a snapshot: {row}"
    );
    let leader = cluster.wait_for_leader()?;
    let jobs = wait_for_equal_job_lists(&cluster, 4, leader)?;
    ensure!(job_names(&jobs).len() == 61, "{jobs}");
    members_everywhere(&cluster, &[1, 2, 3, 4])?;

    // Shrink: remove a node that is not the leader.
    let removed = *others(&cluster, leader)
        .iter()
        .find(|&&id| id != 4)
        .ok_or_else(|| anyhow!("no follower to remove"))?;
    cluster
        .cli(4, &["cluster", "remove-scheduler", &removed.to_string()])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let expected: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != removed)
        .collect();
    wait_until(
        Duration::from_secs(20),
        &format!("the group to be {expected:?}"),
        || {
            let leader = cluster.leader()?;
            let status = cluster.status(leader).ok()?;
            (scheduler_ids(&status) == expected).then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    // An operator stops the node once it is out; the others all know it is out.
    cluster.kill_scheduler(removed)?;
    members_everywhere(&cluster, &expected)?;
    let removed_at = Utc::now();
    wait_for_instants_after(&cluster, &file, removed_at, 3)?;

    let ran = ran_once_each(&file)?;
    let gap = largest_gap(&ran);
    ensure!(gap < MAX_GAP, "a gap of {gap} between instants: {ran:?}");
    let leader = cluster.wait_for_leader()?;
    recorded_once_each(&cluster, leader, "ticker")?;
    Ok(())
}

// 4b. The usual way to grow a group: the new node joins while the leader still holds
//     its whole log (nothing was compacted). It must learn every member — the initial
//     membership is part of the group's first snapshot, which a joining node always
//     receives; a node that believed it was alone would elect itself once the leader
//     died, and the group would stop firing.
#[test]
fn a_node_that_joins_an_uncompacted_group_knows_it_and_survives_a_failover() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("instants");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &ticker_job("ticker", &file))?;
    wait_for_instants(&cluster, &file, 2)?;

    let addr = cluster.start_joining_scheduler(4)?;
    cluster
        .cli(leader, &["cluster", "add-scheduler", "4", &addr])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let leader_row = cluster.own_status(leader)?;
    ensure!(
        num(&leader_row, "logFirstIndex") <= 2,
        "the leader compacted its log; this test is about an uncompacted group: {leader_row}"
    );
    cluster.wait_caught_up(4)?;
    // Collect what is wrong rather than stop at the first problem: the membership
    // view explains the failover's outcome.
    let mut problems = Vec::new();
    if let Err(e) = members_everywhere(&cluster, &[1, 2, 3, 4]) {
        problems.push(format!("{e:#}"));
    }

    let killed_at = Utc::now();
    cluster.kill_scheduler(leader)?;
    let failover = cluster
        .wait_for_leader_where("a leader the group agrees on", |id| id != leader)
        .and_then(|_| wait_for_instants_after(&cluster, &file, killed_at, 3));
    if let Err(e) = failover {
        let views: Vec<String> = cluster
            .running_schedulers()
            .into_iter()
            .map(|id| match cluster.own_status(id) {
                Ok(row) => format!("{id}: {} term {}", field(&row, "role"), num(&row, "term")),
                Err(e) => format!("{id}: {e:#}"),
            })
            .collect();
        problems.push(format!(
            "after killing leader {leader}: {e:#}
roles: {views:?}"
        ));
    }
    ran_once_each(&file)?;
    ensure!(problems.is_empty(), "{}", problems.join("\n\n"));
    Ok(())
}

// 4c. Removing the leader itself: the remaining members elect a leader among
//     themselves, and writes and fires go on, even while the removed process still
//     runs (as it does until the operator stops it).
#[test]
fn after_the_leader_is_removed_the_others_elect_one_and_firing_goes_on() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("instants");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &ticker_job("ticker", &file))?;
    wait_for_instants(&cluster, &file, 2)?;

    let via = others(&cluster, leader)[0];
    cluster
        .cli(via, &["cluster", "remove-scheduler", &leader.to_string()])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let removed_at = Utc::now();
    let new_leader = cluster
        .wait_for_leader_where(&format!("a leader other than the removed {leader}"), |id| {
            id != leader
        })?;
    let rest: Vec<u64> = others(&cluster, leader);
    for id in &rest {
        let status = cluster.status(*id)?;
        ensure!(
            scheduler_ids(&status) == rest,
            "through {id}, the group is {:?}, not {rest:?}: {status}",
            scheduler_ids(&status)
        );
    }
    cluster.apply(
        via,
        "after-removal",
        "name: after-removal\nschedule: \"@manual\"\nshell: {command: \"true\"}\n",
    )?;
    wait_for_instants_after(&cluster, &file, removed_at, 3)?;
    let ran = ran_once_each(&file)?;
    let gap = largest_gap(&ran);
    ensure!(gap < MAX_GAP, "a gap of {gap} between instants: {ran:?}");
    recorded_once_each(&cluster, new_leader, "ticker")?;
    Ok(())
}

// 5. A write through a follower is visible through every node, at once.
#[test]
fn a_job_written_through_a_follower_is_visible_through_every_node() -> Result<()> {
    let (_dir, cluster) = start(ClusterOptions::new(3, 0))?;
    let leader = cluster.wait_for_leader()?;
    let followers = others(&cluster, leader);
    let mut versions = Vec::new();
    for (via, description) in [(followers[0], "first"), (followers[1], "second")] {
        cluster.apply(
            via,
            "shared",
            &format!(
                "name: shared\nschedule: \"@every 1h\"\ndescription: {description}\nshell: {{command: \"true\"}}\n"
            ),
        )?;
        // No waiting: a read anywhere after an acknowledged write sees it.
        let mut seen = BTreeSet::new();
        for id in cluster.scheduler_ids() {
            let out = cluster.cli(id, &["job", "get", "shared", "-o", "json"])?;
            ensure!(
                out.success(),
                "job get through {id} after writing through {via}: {out:?}"
            );
            let job = out.json()?;
            ensure!(
                field(&job, "description") == description,
                "through {id}, after writing {description:?} through {via}: {job}"
            );
            seen.insert(num(&job, "version"));
        }
        ensure!(seen.len() == 1, "nodes disagree on the version: {seen:?}");
        versions.extend(seen);
    }
    ensure!(
        versions[1] > versions[0],
        "the update did not move the version: {versions:?}"
    );
    Ok(())
}

// 6. `cluster transfer-leader` moves leadership, and no fire is missed or doubled:
//    the instants that ran are consecutive seconds.
#[test]
fn a_leadership_transfer_neither_misses_nor_doubles_a_fire() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("instants");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &ticker_job("ticker", &file))?;
    wait_for_instants(&cluster, &file, 3)?;

    let target = others(&cluster, leader)[0];
    let transferred_at = Utc::now();
    cluster
        .cli(leader, &["cluster", "transfer-leader", &target.to_string()])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    cluster.wait_for_leader_where(&format!("scheduler {target} to lead"), |id| id == target)?;
    wait_for_instants_after(&cluster, &file, transferred_at, 4)?;

    let ran = ran_once_each(&file)?;
    let holes: Vec<(DateTime<Utc>, DateTime<Utc>)> = ran
        .windows(2)
        .filter(|w| w[1] - w[0] != chrono::TimeDelta::seconds(1))
        .map(|w| (w[0], w[1]))
        .collect();
    ensure!(
        holes.is_empty(),
        "instants missing between {holes:?} (transfer at {transferred_at}): {ran:?}"
    );

    // And the record says the same: one execution per instant, each succeeded.
    let last = *ran.last().expect("instants were waited for");
    let records = wait_until(
        FIRE_DEADLINE,
        "the executions up to the last instant to be final",
        || {
            let list = cluster.executions(target, "ticker").ok()?;
            let upto: Vec<Value> = list
                .into_iter()
                .filter(|e| {
                    field(e, "scheduledAt")
                        .parse::<DateTime<Utc>>()
                        .is_ok_and(|t| t <= last)
                })
                .collect();
            upto.iter()
                .all(|e| is_final(field(e, "status")))
                .then_some(upto)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let mut recorded: Vec<DateTime<Utc>> = records
        .iter()
        .map(|e| field(e, "scheduledAt").parse())
        .collect::<Result<_, _>>()?;
    recorded.sort();
    ensure!(
        recorded == ran,
        "recorded instants differ from the ones that ran:\nrecorded {recorded:?}\nran {ran:?}"
    );
    let not_ok: Vec<&Value> = records
        .iter()
        .filter(|e| field(e, "status") != "succeeded")
        .collect();
    ensure!(
        not_ok.is_empty(),
        "executions that did not succeed: {not_ok:?}"
    );
    Ok(())
}

/// A job that appends `$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID` to
/// `file` every second and then keeps running a little, so that stopping an
/// executor usually finds a run in progress.
fn slow_ticker_job(name: &str, file: &Path) -> String {
    format!(
        "name: {name}\nschedule: \"@every 1s\"\nhistory: {{ keep: 1000 }}\nshell:\n  command: echo \"$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID\" >> '{}'; sleep 0.4\n",
        file.display()
    )
}

/// Every instant from the first that ran to `last` ran once and is recorded once,
/// `succeeded`, as its first attempt: nothing `lost`, `missed`, retried or doubled.
fn every_instant_succeeded_once(
    cluster: &Cluster,
    id: u64,
    job: &str,
    file: &Path,
    last: DateTime<Utc>,
) -> Result<usize> {
    use kairos_integration_tests::check::{Window, check_instants, check_runs, read_runs};
    let runs = read_runs(file)?;
    let first = runs
        .iter()
        .map(|r| r.scheduled_at)
        .min()
        .ok_or_else(|| anyhow!("nothing ran"))?;
    let records = cluster.records(id, job)?;
    let window = Window {
        first,
        last,
        period: chrono::TimeDelta::seconds(1),
    };
    let outcomes = check_instants(&records, &window)?;
    check_runs(&records, &runs)?;
    let not_ok: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| o.attempts.len() != 1 || o.status() != "succeeded")
        .map(|(t, o)| {
            format!(
                "{t}: {}",
                o.attempts
                    .iter()
                    .map(|e| e.brief())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .collect();
    ensure!(
        not_ok.is_empty(),
        "instants that did not simply succeed once: {not_ok:?}"
    );
    Ok(outcomes.len())
}

// 9. A rolling restart, as Kubernetes does it: each scheduler in turn gets SIGTERM
//    (the leader hands leadership over before it exits), is started again and waited
//    for until ready; then each executor (it drains: runs it holds finish and are
//    reported). A job fires every second throughout: every instant runs once and
//    ends `succeeded` — none `lost`, none `missed`, none retried.
#[test]
fn a_rolling_restart_with_sigterm_runs_every_instant_once_and_loses_none() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 2))?;
    let file = dir.path().join("runs");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "slow", &slow_ticker_job("slow", &file))?;
    wait_for_runs(&cluster, &file, Utc::now(), 3)?;

    // Followers first, the leader last, as a StatefulSet's reverse ordinal order may
    // or may not give; the leader's turn is the handoff.
    let mut order = others(&cluster, leader);
    order.push(leader);
    for id in order {
        let was_leader = cluster.leader() == Some(id);
        let term_before = num(&cluster.own_status(id)?, "term");
        cluster.terminate_scheduler(id)?;
        if was_leader {
            let next = cluster.wait_for_leader_where("a leader after the handoff", |l| l != id)?;
            let term = num(&cluster.own_status(next)?, "term");
            eprintln!("scheduler {id} handed leadership to {next} (term {term_before} -> {term})");
            ensure!(
                std::fs::read_to_string(dir.path().join(format!("logs/scheduler-{id}.log")))?
                    .contains("leadership handed over"),
                "the leader stopped without handing over:\n{}",
                cluster.log_tail(id)
            );
        }
        cluster.restart_scheduler(id)?;
        cluster.wait_ready(id)?;
        wait_for_runs(&cluster, &file, Utc::now(), 2)?;
    }
    for index in 0..2 {
        cluster.terminate_executor(index)?;
        cluster.restart_executor(index)?;
        cluster.wait_for_executors(2)?;
        wait_for_runs(&cluster, &file, Utc::now(), 2)?;
    }
    // Enough instants after the last restart that the judged window covers it.
    wait_for_runs(&cluster, &file, Utc::now(), 5)?;
    let (leader, last) = pause_and_settle(&cluster, "slow")?;
    let n = every_instant_succeeded_once(&cluster, leader, "slow", &file, last)?;
    eprintln!("{n} instants through the rolling restart, each run once and succeeded");
    Ok(())
}

// 10. The group grows and shrinks as a StatefulSet scaled 3 → 5 → 3 makes it: two
//     new nodes with empty data and a longer `--peers` find the running group and
//     are admitted by its leader with no `add-scheduler`; `remove-scheduler --above
//     3` removes them again, highest first; a node that lost its data is replaced
//     (removed and added again) and catches up. The job fires throughout.
#[test]
fn nodes_listed_in_peers_join_by_themselves_and_remove_above_shrinks_the_group() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 1))?;
    let file = dir.path().join("runs");
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "slow", &slow_ticker_job("slow", &file))?;
    wait_for_runs(&cluster, &file, Utc::now(), 2)?;

    cluster.start_listed_schedulers(&[4, 5])?;
    for id in [4, 5] {
        cluster.wait_ready(id)?;
    }
    wait_members_everywhere(&cluster, &[1, 2, 3, 4, 5])?;
    wait_for_runs(&cluster, &file, Utc::now(), 2)?;

    let out = cluster.cli(leader, &["cluster", "remove-scheduler", "--above", "3"])?;
    ensure!(
        out.success() && out.stdout.contains("removed scheduler(s) 5, 4"),
        "remove-scheduler --above 3: {out:?}"
    );
    for id in [4, 5] {
        cluster.terminate_scheduler(id)?;
    }
    wait_members_everywhere(&cluster, &[1, 2, 3])?;
    wait_for_runs(&cluster, &file, Utc::now(), 2)?;

    // Node 3 loses its volume and comes back empty: it must not take part as the
    // member it no longer remembers being, so the leader replaces it.
    cluster.wipe_scheduler(3)?;
    cluster.restart_scheduler(3)?;
    cluster.wait_ready(3)?;
    wait_members_everywhere(&cluster, &[1, 2, 3])?;
    let leader = cluster.wait_for_leader()?;
    let log = std::fs::read_to_string(dir.path().join(format!("logs/scheduler-{leader}.log")))?;
    ensure!(
        log.contains("scheduler lost its data: replacing it"),
        "the leader did not replace the wiped node:\n{}",
        cluster.log_tail(leader)
    );
    // Enough instants after the replacement that the judged window covers it.
    wait_for_runs(&cluster, &file, Utc::now(), 5)?;
    let (leader, last) = pause_and_settle(&cluster, "slow")?;
    let n = every_instant_succeeded_once(&cluster, leader, "slow", &file, last)?;
    eprintln!("{n} instants through 3 -> 5 -> 3 and a replaced node, each run once");
    Ok(())
}

/// Pauses `job` and waits until every record of it is final; returns the leader and
/// the last instant that was surely fired before the pause (fires are committed up
/// to two seconds ahead, and those not started when the pause came are
/// `skipped_paused`).
// 11. `/healthz` and `/readyz`, as a load balancer or Kubernetes reads them: every
//     member of a healthy group is alive and ready (its answer names the leader); a
//     node started with `--join` is alive but not ready until it has been added and
//     has applied what the leader had committed; with the quorum gone the survivors
//     are alive but not ready, and ready again once it is back.
#[test]
fn healthz_says_alive_and_readyz_only_a_voter_caught_up_with_the_leader() -> Result<()> {
    let (_dir, mut cluster) = start(ClusterOptions::new(3, 0))?;
    let leader = cluster.wait_for_leader()?;
    let get = |cluster: &Cluster, id: u64, path: &str| http_get(cluster.http_addr(id), path);
    let alive = |cluster: &Cluster, id: u64| -> Result<()> {
        let (code, body) = get(cluster, id, "/healthz")?;
        ensure!(
            code == 200 && body.trim() == "ok",
            "/healthz of scheduler {id}: {code} {body:?}"
        );
        Ok(())
    };
    // Polls `/readyz` of `id` until it answers `want`; returns the body.
    let readyz_becomes = |cluster: &Cluster, id: u64, want: u16| -> Result<String> {
        wait_until(
            LEADER_DEADLINE,
            &format!("/readyz of scheduler {id} to answer {want}"),
            || {
                get(cluster, id, "/readyz")
                    .ok()
                    .filter(|(code, _)| *code == want)
                    .map(|(_, body)| body)
            },
        )
        .map_err(|e| cluster.with_logs(e))
    };
    for id in cluster.scheduler_ids() {
        alive(&cluster, id)?;
        let body = readyz_becomes(&cluster, id, 200)?;
        ensure!(
            body.contains(&format!("leader {leader}")),
            "/readyz of scheduler {id} does not name the leader {leader}: {body:?}"
        );
    }

    // A node waiting to join: alive, not ready.
    let addr = cluster.start_joining_scheduler(4)?;
    alive(&cluster, 4)?;
    let (code, body) = get(&cluster, 4, "/readyz")?;
    ensure!(
        code == 503 && body.starts_with("not ready"),
        "/readyz of a node not yet added: {code} {body:?}"
    );
    // Added, it is ready once it has applied what the leader had committed.
    let committed = num(&cluster.own_status(leader)?, "commitIndex");
    cluster
        .cli(leader, &["cluster", "add-scheduler", "4", &addr])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    // The answer says how far the node had applied when it said so.
    let body = readyz_becomes(&cluster, 4, 200)?;
    let applied: u64 = body
        .trim()
        .rsplit_once("applied ")
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("/readyz of scheduler 4 names no applied index: {body:?}"))?;
    ensure!(
        applied >= committed,
        "scheduler 4 said ready at applied index {applied}, before the leader's commit {committed}: {body:?}"
    );

    // Two of the four voters gone: no quorum. The survivors live, and are not ready.
    let other = cluster
        .scheduler_ids()
        .into_iter()
        .find(|&id| id != leader && id != 4)
        .expect("four nodes");
    cluster.kill_scheduler(leader)?;
    cluster.kill_scheduler(other)?;
    let survivors = cluster.running_schedulers();
    for &id in &survivors {
        alive(&cluster, id)?;
        let body = readyz_becomes(&cluster, id, 503)?;
        ensure!(
            body.starts_with("not ready"),
            "/readyz of scheduler {id} without a quorum: {body:?}"
        );
    }
    // One back: a quorum of three, and every running node is ready again.
    cluster.restart_scheduler(leader)?;
    for id in cluster.running_schedulers() {
        readyz_becomes(&cluster, id, 200)?;
        alive(&cluster, id)?;
    }
    eprintln!(
        "survivors {survivors:?} were not ready without a quorum, ready again with {leader} back"
    );
    Ok(())
}

fn pause_and_settle(cluster: &Cluster, job: &str) -> Result<(u64, DateTime<Utc>)> {
    let leader = cluster.wait_for_leader()?;
    let paused_at = Utc::now();
    cluster.cli(leader, &["job", "pause", job])?.ok()?;
    wait_until(
        FIRE_DEADLINE,
        &format!("every record of {job} to be final"),
        || {
            let records = cluster.records(leader, job).ok()?;
            records.iter().all(|e| is_final(&e.status)).then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let last = (paused_at - chrono::TimeDelta::seconds(3))
        .with_nanosecond(0)
        .ok_or_else(|| anyhow!("no whole second before {paused_at}"))?;
    Ok((leader, last))
}

/// Waits until the file (lines starting with an instant) holds `n` instants later
/// than `after`.
fn wait_for_runs(cluster: &Cluster, file: &Path, after: DateTime<Utc>, n: usize) -> Result<()> {
    use kairos_integration_tests::check::read_runs;
    wait_until(
        FIRE_DEADLINE,
        &format!("{n} runs of instants after {after} in {}", file.display()),
        || {
            let runs = read_runs(file).ok()?;
            (runs.iter().filter(|r| r.scheduled_at > after).count() >= n).then_some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))
}

/// Waits until every running node lists exactly `members` in `cluster status`.
fn wait_members_everywhere(cluster: &Cluster, members: &[u64]) -> Result<()> {
    wait_until(
        FIRE_DEADLINE,
        &format!("every running node to list the members {members:?}"),
        || members_everywhere(cluster, members).ok(),
    )
    .map_err(|e| cluster.with_logs(e))
}
