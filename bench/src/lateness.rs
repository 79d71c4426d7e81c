//! `kairos-bench lateness`: how late, after its scheduled instant, a fire's process
//! really starts when many jobs fire at the same instants.
//!
//! Setup: 3 `kairos scheduler` processes and 2 `kairos executor` agents on
//! 127.0.0.1 in a temporary directory; `--jobs` jobs (default 100), each `@every 1s`,
//! whose command appends `$KAIROS_JOB $KAIROS_SCHEDULED_AT $(date +%s.%N)` to one
//! shared file (one `write` per line, so lines do not interleave). Every job fires at
//! every second, so each second the executors start `--jobs` processes at once.
//!
//! After a warm-up of [`WARMUP`] (the first fires, executors' first spawns), the
//! instants of the next `--secs` seconds are measured:
//!
//! - **process start**: the time the command read (`date`, which runs a few
//!   milliseconds after the shell itself started: a fork and exec) minus the
//!   instant — what a job's script observes;
//! - **recorded start**: the execution's `startedAt` (the executor's clock when it
//!   spawned the process, as committed) minus its `scheduledAt` — what `exec list`
//!   shows.
//!
//! For each: count, p50, p90, p99, max, and how many instants of the window did not
//! run or ran twice. Every wait is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use kairos_integration_tests::check::Exec;
use kairos_integration_tests::{Cluster, ClusterOptions, every_execution_at, wait_until};

use crate::{lines, stats};

/// Fires before the measured window begins (executors warming up).
const WARMUP: TimeDelta = TimeDelta::seconds(5);
/// How long after the window the last fires may take to be final.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub kairos: PathBuf,
    pub jobs: u32,
    pub secs: u32,
    pub keep: bool,
}

/// One line of the shared file: which job, which instant, when its command ran.
#[derive(Debug, Clone)]
struct Ran {
    job: String,
    scheduled: DateTime<Utc>,
    at: DateTime<Utc>,
}

pub fn run(options: &Options) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kairos-bench-lateness-")
        .tempdir()?;
    let build = crate::build_kind(&options.kairos);
    println!(
        "kairos-bench lateness: 3 schedulers, 2 executors, {} jobs @every 1s, {} s measured after {} s of warm-up",
        options.jobs,
        options.secs,
        WARMUP.num_seconds()
    );
    println!("binary: {} ({build} build)", options.kairos.display());
    println!("directory: {}", dir.path().display());
    let result = measure(options, dir.path());
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    result
}

fn job_name(i: u32) -> String {
    format!("late-{i:04}")
}

fn measure(options: &Options, dir: &Path) -> Result<()> {
    let cluster = Cluster::start(&options.kairos, dir, ClusterOptions::new(3, 2))?;
    let file = dir.join("ran");
    let keep = options.secs + 2 * u32::try_from(WARMUP.num_seconds())? + 60;
    let docs: Vec<String> = (0..options.jobs)
        .map(|i| {
            format!(
                "name: {}\nschedule: \"@every 1s\"\nhistory: {{keep: {keep}}}\nshell:\n  command: echo \"$KAIROS_JOB $KAIROS_SCHEDULED_AT $(date +%s.%N)\" >> '{}'\n",
                job_name(i),
                file.display()
            )
        })
        .collect();
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "jobs", &docs.join("---\n"))?;
    let applied = Utc::now();
    let first = applied.duration_trunc(TimeDelta::seconds(1))? + WARMUP;
    let last = first + TimeDelta::seconds(i64::from(options.secs)) - TimeDelta::seconds(1);
    println!(
        "applied at {}; measuring the instants {} ..= {}",
        applied.format("%H:%M:%S%.3f"),
        first.format("%H:%M:%S"),
        last.format("%H:%M:%S")
    );

    // Wait for the window to pass, then for every job's executions in it to be
    // final (the last ones are a second or so behind).
    let window_ends = Duration::from_secs(u64::from(options.secs))
        + (first - Utc::now()).to_std().unwrap_or_default()
        + Duration::from_secs(2);
    wait_until(
        window_ends + SETTLE_DEADLINE,
        "the measured window to pass",
        || (Utc::now() > last + TimeDelta::seconds(2)).then_some(()),
    )?;
    let leader = cluster.wait_for_leader()?;
    let endpoint = format!("http://{}", cluster.addr(leader));
    let records = wait_until(
        SETTLE_DEADLINE,
        "the executions of the window to be final",
        || {
            let list = all_executions(cluster.bin(), &endpoint).ok()?;
            list.iter()
                .filter(|e| e.scheduled_at >= first && e.scheduled_at <= last)
                .all(|e| !matches!(e.status.as_str(), "pending" | "running"))
                .then_some(list)
        },
    )
    .map_err(|e| cluster.with_logs(e))?;
    let runs = read_runs(&file)?;

    // From the file: what the commands saw.
    let mut seen: BTreeMap<(String, DateTime<Utc>), u32> = BTreeMap::new();
    let mut process = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.scheduled >= first && r.scheduled <= last)
    {
        *seen.entry((r.job.clone(), r.scheduled)).or_default() += 1;
        process.push(lines::ms(r.at - r.scheduled));
    }
    let expected = u64::from(options.jobs) * u64::from(options.secs);
    let twice = seen.values().filter(|n| **n > 1).count();
    let missing = expected.saturating_sub(seen.len() as u64);

    // From the record: what the executors reported.
    let mut recorded = Vec::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for e in records
        .iter()
        .filter(|e| e.scheduled_at >= first && e.scheduled_at <= last && e.attempt == 1)
    {
        *outcomes.entry(e.status.clone()).or_default() += 1;
        if let Some(started) = e.started_at {
            recorded.push(lines::ms(started - e.scheduled_at));
        }
    }

    println!();
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "lateness (ms after the instant)", "count", "min", "p50", "p90", "p99", "max"
    );
    for (what, values) in [
        ("process start (date in the command)", &process),
        ("recorded start (startedAt)", &recorded),
    ] {
        let s = stats::Summary::of(values);
        println!(
            "{what:<34} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            s.count, s.min, s.p50, s.p90, s.p99, s.max
        );
    }
    println!();
    println!(
        "process starts by lateness (ms): {}",
        stats::histogram(&process, &[1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0])
    );
    println!(
        "instants in the window: {expected} expected, {} ran, {missing} did not run, {twice} ran twice; outcomes {outcomes:?}",
        seen.len()
    );
    Ok(())
}

/// Every execution of every job, as `endpoint` lists them.
fn all_executions(bin: &Path, endpoint: &str) -> Result<Vec<Exec>> {
    Exec::parse_all(&every_execution_at(bin, endpoint)?)
}

/// Every complete line of the shared file.
fn read_runs(file: &Path) -> Result<Vec<Ran>> {
    lines::complete(file).iter().map(|l| parse_run(l)).collect()
}

/// Parses `late-0001 2026-11-29T10:00:05Z 1795946405.012345678`.
fn parse_run(line: &str) -> Result<Ran> {
    let mut words = line.split_whitespace();
    let (Some(job), Some(scheduled), Some(at), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        bail!("not `job instant time`: {line:?}");
    };
    Ok(Ran {
        job: job.to_string(),
        scheduled: lines::instant(scheduled, line)?,
        at: lines::clock(at, line)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_the_job_the_instant_and_when_it_ran() -> Result<()> {
        let r = parse_run("late-0007 2026-11-29T10:00:05Z 1795946405.0125")?;
        assert_eq!(r.job, "late-0007");
        assert_eq!(r.scheduled.to_rfc3339(), "2026-11-29T10:00:05+00:00");
        assert!((lines::ms(r.at - r.scheduled) - 12.5).abs() < 1e-9);
        assert!(parse_run("late-0007 2026-11-29T10:00:05Z").is_err());
        assert!(parse_run("late-0007 2026-11-29T10:00:05Z 1.5 extra").is_err());
        Ok(())
    }
}
