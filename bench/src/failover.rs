//! `kairos-bench failover`: how long a scheduler group stops firing when its leader
//! is SIGKILLed.
//!
//! Setup: 3 `kairos scheduler` processes and 2 `kairos executor` agents on
//! 127.0.0.1, in a temporary directory, and one job `@every 1s` whose command appends
//! `$KAIROS_SCHEDULED_AT` and the wall-clock time it ran (`date +%s.%N`) to a file.
//!
//! Each round: wait until firing is steady (both executors connected to the leader,
//! three instants run since the round began); wait for the round's kill phase (round
//! i of n kills at (i + ½)/n of a second past a second boundary, so the kills sample
//! the whole second evenly and reproducibly); SIGKILL the leader; wait until the
//! group agrees on a new leader and three instants after the kill have run; restart
//! the killed node on its data directory and wait until it has caught up. Per round:
//!
//! - **failover gap**: the first instant that ran after the last one run before the
//!   kill, minus that last one, minus 1 s; that is, the seconds of schedule that did
//!   not run. 0 s when no instant was lost.
//! - **kill → leader**: from the SIGKILL until a majority of the surviving nodes name
//!   the same leader and it says it leads (`kairos cluster status`, polled every
//!   50 ms; each poll costs a few CLI calls, so the figure is ~0.1 s coarse).
//! - **worst lateness**: among the instants from the last one before the kill to the
//!   third one after it, the largest delay between an instant and the moment its
//!   command ran — how late the failover made a fire.
//!
//! Every wait has a deadline and the number of rounds is bounded; a round that
//! times out ends the bench with an error and the tail of every process's log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use chrono::{DateTime, TimeDelta, Utc};
use kairos_integration_tests::{Cluster, ClusterOptions, wait_until};

use crate::{lines, stats};

/// How long firing may take to become steady after a restart.
const STEADY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the instants after a kill may take to appear.
const FIRE_DEADLINE: Duration = Duration::from_secs(60);
/// The width of the window a kill waits for; wider than the harness's 50 ms poll,
/// so the window cannot be stepped over.
const PHASE_WINDOW_MS: u32 = 60;

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub kairos: PathBuf,
    pub kills: u32,
    pub keep: bool,
}

/// One run of the job, as the job wrote it into the file.
#[derive(Debug, Clone, Copy)]
struct Ran {
    /// `$KAIROS_SCHEDULED_AT`.
    scheduled: DateTime<Utc>,
    /// When the command ran (the executor's wall clock, which is this machine's).
    at: DateTime<Utc>,
}

/// The measurements of one round.
#[derive(Debug)]
struct Round {
    killed_at: DateTime<Utc>,
    killed: u64,
    new_leader: u64,
    leader_after: Duration,
    last_before: DateTime<Utc>,
    first_after: DateTime<Utc>,
    gap: Duration,
    worst_late: Duration,
}

pub fn run(options: &Options) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kairos-bench-failover-")
        .tempdir()?;
    let build = crate::build_kind(&options.kairos);
    println!(
        "kairos-bench failover: 3 schedulers, 2 executors, one job @every 1s, {} kills",
        options.kills
    );
    println!("binary: {} ({build} build)", options.kairos.display());
    println!("directory: {}", dir.path().display());

    let result = rounds(options, dir.path());
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    result
}

fn rounds(options: &Options, dir: &Path) -> Result<()> {
    let mut cluster = Cluster::start(&options.kairos, dir, ClusterOptions::new(3, 2))?;
    let file = dir.join("instants");
    let job = format!(
        "name: ticker\nschedule: \"@every 1s\"\nshell:\n  command: echo \"$KAIROS_SCHEDULED_AT $(date +%s.%N)\" >> '{}'\n",
        file.display()
    );
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "ticker", &job)?;

    println!();
    println!(
        "{:>5}  {:>12}  {:>6}  {:>10}  {:>13}  {:>16}  {:>11}  {:>6}  {:>12}",
        "round",
        "kill at",
        "killed",
        "new leader",
        "kill → leader",
        "last before kill",
        "first after",
        "gap",
        "worst late"
    );
    let mut done = Vec::new();
    for round in 0..options.kills {
        let r = one_round(&mut cluster, &file, round, options.kills)
            .map_err(|e| cluster.with_logs(e.context(format!("round {}", round + 1))))?;
        println!(
            "{:>5}  {:>12}  {:>6}  {:>10}  {:>13}  {:>16}  {:>11}  {:>6}  {:>12}",
            round + 1,
            r.killed_at.format("%H:%M:%S%.3f").to_string(),
            r.killed,
            r.new_leader,
            stats::secs(r.leader_after),
            r.last_before.format("%H:%M:%S").to_string(),
            r.first_after.format("%H:%M:%S").to_string(),
            format!("{} s", r.gap.as_secs()),
            stats::secs(r.worst_late)
        );
        done.push(r);
    }

    let gaps: Vec<Duration> = done.iter().map(|r| r.gap).collect();
    let leaders: Vec<Duration> = done.iter().map(|r| r.leader_after).collect();
    let late: Vec<Duration> = done.iter().map(|r| r.worst_late).collect();
    println!();
    println!(
        "failover gap (schedule seconds not run):  median {}, max {}",
        stats::secs(stats::median(&gaps)),
        stats::secs(stats::max(&gaps))
    );
    println!(
        "kill → new leader:                        median {}, max {}",
        stats::secs(stats::median(&leaders)),
        stats::secs(stats::max(&leaders))
    );
    println!(
        "worst lateness of a fire per failover:    median {}, max {}",
        stats::secs(stats::median(&late)),
        stats::secs(stats::max(&late))
    );

    let all = read_runs(&file)?;
    let distinct: BTreeSet<DateTime<Utc>> = all.iter().map(|r| r.scheduled).collect();
    let twice = all.len() - distinct.len();
    let missing = match (distinct.first(), distinct.last()) {
        (Some(first), Some(last)) => {
            let span = usize::try_from((*last - *first).num_seconds())? + 1;
            span - distinct.len()
        }
        _ => 0,
    };
    println!(
        "instants run: {}; run twice: {twice}; missing between the first and the last: {missing}",
        all.len()
    );
    Ok(())
}

fn one_round(cluster: &mut Cluster, file: &Path, round: u32, kills: u32) -> Result<Round> {
    // Steady: both executors on the leader, and three instants run this round.
    let began = Utc::now();
    cluster.wait_for_executors(2)?;
    wait_until(STEADY_DEADLINE, "three instants run this round", || {
        let runs = read_runs(file).ok()?;
        (runs.iter().filter(|r| r.at > began).count() >= 3).then_some(())
    })?;
    let leader = cluster.wait_for_leader()?;

    // Kill at this round's phase of the second.
    let phase_ms = (round * 1000 + 500) / kills % 1000;
    wait_until(
        Duration::from_secs(3),
        &format!("{phase_ms} ms past a second"),
        || {
            let ms = Utc::now().timestamp_subsec_millis() % 1000;
            ((ms + 1000 - phase_ms) % 1000 < PHASE_WINDOW_MS).then_some(())
        },
    )?;
    let killed_at = Utc::now();
    let clock = Instant::now();
    cluster.kill_scheduler(leader)?;
    let new_leader = cluster.wait_for_leader_where("a new leader", |id| id != leader)?;
    let leader_after = clock.elapsed();

    let runs = wait_until(FIRE_DEADLINE, "three instants after the kill", || {
        let runs = read_runs(file).ok()?;
        let after = runs.iter().filter(|r| r.scheduled > killed_at).count();
        (after >= 3).then_some(runs)
    })?;
    let last_before = runs
        .iter()
        .filter(|r| r.at < killed_at)
        .map(|r| r.scheduled)
        .max()
        .ok_or_else(|| anyhow!("nothing ran before the kill"))?;
    let mut after: Vec<Ran> = runs
        .iter()
        .filter(|r| r.scheduled > last_before)
        .copied()
        .collect();
    after.sort_by_key(|r| r.scheduled);
    let first_after = after
        .first()
        .map(|r| r.scheduled)
        .ok_or_else(|| anyhow!("nothing ran after the kill"))?;
    let third_after_kill = after
        .iter()
        .filter(|r| r.scheduled > killed_at)
        .nth(2)
        .map(|r| r.scheduled)
        .ok_or_else(|| anyhow!("fewer than three instants after the kill"))?;
    let gap = (first_after - last_before - TimeDelta::seconds(1))
        .to_std()
        .unwrap_or_default();
    let worst_late = runs
        .iter()
        .filter(|r| r.scheduled >= last_before && r.scheduled <= third_after_kill)
        .map(|r| (r.at - r.scheduled).to_std().unwrap_or_default())
        .max()
        .unwrap_or_default();

    // Bring the killed node back before the next round.
    cluster.restart_scheduler(leader)?;
    cluster.wait_caught_up(leader)?;

    Ok(Round {
        killed_at,
        killed: leader,
        new_leader,
        leader_after,
        last_before,
        first_after,
        gap,
        worst_late,
    })
}

/// Every run the job recorded, in file order.
fn read_runs(file: &Path) -> Result<Vec<Ran>> {
    lines::complete(file).iter().map(|l| parse_run(l)).collect()
}

/// Parses `2026-11-29T10:00:05Z 1795946405.012345678`.
fn parse_run(line: &str) -> Result<Ran> {
    let (scheduled, at) = line
        .split_once(' ')
        .ok_or_else(|| anyhow!("not `instant time`: {line:?}"))?;
    Ok(Ran {
        scheduled: lines::instant(scheduled, line)?,
        at: lines::clock(at, line)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_the_instant_and_when_it_ran() -> Result<()> {
        let r = parse_run("2026-11-29T10:00:05Z 1795946405.25")?;
        assert_eq!(r.scheduled.to_rfc3339(), "2026-11-29T10:00:05+00:00");
        assert_eq!(r.at.timestamp(), 1_795_946_405);
        assert_eq!(r.at.timestamp_subsec_millis(), 250);
        assert!(parse_run("2026-11-29T10:00:05Z").is_err());
        assert!(parse_run("2026-11-29T10:00:05Z 17.x").is_err());
        Ok(())
    }
}
