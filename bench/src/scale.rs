//! `kairos-bench scale`: whether a group holding many jobs still writes, reads, fires
//! on time and fails over.
//!
//! Setup: 3 `kairos scheduler` processes and 2 `kairos executor` agents on 127.0.0.1
//! in a temporary directory. `--jobs` jobs (default 100 000) are created through
//! `JobService.PutJob` on the leader, `--in-flight` calls at a time. Job `i` has the
//! 6-field schedule `S M * * * *` with `(M, S)` = the `i mod 3600`-th second of the
//! hour, so the jobs fire evenly, `jobs / 3600` per second (28 at 100 000), and every
//! job fires once an hour. The command appends `$KAIROS_JOB $KAIROS_SCHEDULED_AT
//! $(date +%s.%N)` to one shared file.
//!
//! Measured, in order:
//! 1. **create**: wall time and PutJob latency (each call is one raft commit on a
//!    majority, fsynced);
//! 2. **list**: paging through every job with `ListJobs` (1000 per page) on the leader
//!    and on a follower; **get**: `GetJob` latency of 1000 random jobs on a follower;
//! 3. **memory and disk**: each scheduler's resident set and data directory size;
//! 4. **firing**: for `--secs` seconds after a warm-up, the lateness of every fire
//!    (the time `date` printed in the command minus the instant) and whether every
//!    instant of the window ran exactly once — with the leader SIGKILLed in the middle
//!    of the window, so a new leader must take over all the jobs' timers;
//! 5. **failover**: SIGKILL → a new leader agreed, and how long the restarted node
//!    takes to catch up.
//!
//! Every wait is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use futures::StreamExt as _;
use kairos_client::{Client, ClientConfig, RetryPolicy};
use kairos_integration_tests::{Cluster, ClusterOptions, wait_until};
use kairos_proto::v1 as pb;

use crate::{lines, stats};

/// Fires before the measured window begins.
const WARMUP: TimeDelta = TimeDelta::seconds(5);
/// How long after the window the last fires may take to run.
const SETTLE: Duration = Duration::from_secs(60);
/// Jobs per `ListJobs` page.
const PAGE: u32 = 1000;
/// How many `GetJob` calls are timed.
const GETS: u32 = 1000;
/// Seconds in the hour the schedules spread over.
const SLOTS: u32 = 3600;

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub kairos: PathBuf,
    pub jobs: u32,
    pub in_flight: usize,
    pub secs: u32,
    pub keep: bool,
}

pub fn run(options: &Options) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kairos-bench-scale-")
        .tempdir()?;
    println!(
        "kairos-bench scale: 3 schedulers, 2 executors, {} jobs (each hourly, {:.1} fires per second), {} PutJob calls in flight, {} s of firing measured",
        options.jobs,
        f64::from(options.jobs) / f64::from(SLOTS),
        options.in_flight,
        options.secs
    );
    println!(
        "binary: {} ({} build)",
        options.kairos.display(),
        crate::build_kind(&options.kairos)
    );
    println!("directory: {}", dir.path().display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = measure(options, dir.path(), &runtime);
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    result
}

fn job_name(i: u32) -> String {
    format!("scale-{i:06}")
}

/// Minute and second of the hour job `i` fires at.
fn slot(i: u32) -> (u32, u32) {
    let s = i % SLOTS;
    (s / 60, s % 60)
}

fn job(i: u32, file: &Path) -> pb::Job {
    let (minute, second) = slot(i);
    pb::Job {
        name: job_name(i),
        schedule: format!("{second} {minute} * * * *"),
        action: Some(pb::job::Action::Shell(pb::ShellAction {
            command: format!(
                "echo \"$KAIROS_JOB $KAIROS_SCHEDULED_AT $(date +%s.%N)\" >> '{}'",
                file.display()
            ),
            ..Default::default()
        })),
        history: Some(pb::History { keep: 5 }),
        ..Default::default()
    }
}

/// A client of the one scheduler at `addr`, making each call once: a latency
/// measured is one call's, never a call and its retries. The client's defaults
/// (5 s to connect, 30 s per call, 64 MiB responses) suit a large group.
fn client(addr: &str) -> Result<Client> {
    let mut config = ClientConfig::new([addr]);
    config.retry = RetryPolicy::ONCE;
    Client::new(config).with_context(|| format!("a client for {addr}"))
}

fn measure(options: &Options, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<()> {
    let mut cluster = Cluster::start(
        &options.kairos,
        dir,
        // A benchmark writes as fast as it can: no per-caller write limit.
        ClusterOptions::new(3, 2).scheduler_flag("--write-rate", "0"),
    )?;
    let file = dir.join("ran");
    let leader = cluster.wait_for_leader()?;
    let follower = cluster
        .scheduler_ids()
        .into_iter()
        .find(|id| *id != leader)
        .ok_or_else(|| anyhow!("no follower"))?;

    // 1. Create.
    let started = Instant::now();
    let latencies = rt.block_on(create(
        cluster.addr(leader),
        0..options.jobs,
        options.in_flight,
        &file,
    ))?;
    let took = started.elapsed();
    let created_at = Utc::now();
    let s = stats::Summary::of(&latencies);
    println!();
    println!(
        "create: {} jobs in {:.1} s = {:.0} jobs/s; PutJob latency ms p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        options.jobs,
        took.as_secs_f64(),
        f64::from(options.jobs) / took.as_secs_f64(),
        s.p50,
        s.p90,
        s.p99,
        s.max
    );

    // 2. Read.
    cluster.wait_caught_up(follower)?;
    for (what, id) in [("leader", leader), ("follower", follower)] {
        let started = Instant::now();
        let (count, pages) = rt.block_on(list_all(cluster.addr(id)))?;
        ensure!(
            count == u64::from(options.jobs),
            "ListJobs on the {what} returned {count} jobs, not {}",
            options.jobs
        );
        println!(
            "list: all {count} jobs in {pages} pages from the {what} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let gets = rt.block_on(get_some(cluster.addr(follower), options.jobs))?;
    let s = stats::Summary::of(&gets);
    println!(
        "get: {GETS} random jobs from a follower, GetJob latency ms p50 {:.2}, p99 {:.2}, max {:.2}",
        s.p50, s.p99, s.max
    );

    // 3. Memory and disk.
    print_footprint(&cluster, dir, "after creating the jobs")?;

    // 4 and 5. Fire for a window, killing the leader in its middle.
    let first = created_at.duration_trunc(TimeDelta::seconds(1))? + WARMUP;
    let last = first + TimeDelta::seconds(i64::from(options.secs)) - TimeDelta::seconds(1);
    let kill_at = first + TimeDelta::seconds(i64::from(options.secs / 2));
    println!(
        "firing: measuring the instants {} ..= {}, leader {leader} killed at {}",
        first.format("%H:%M:%S"),
        last.format("%H:%M:%S"),
        kill_at.format("%H:%M:%S")
    );
    let until_kill = (kill_at - Utc::now()).to_std().unwrap_or_default();
    wait_until(until_kill + Duration::from_secs(5), "the kill time", || {
        (Utc::now() >= kill_at).then_some(())
    })?;
    let killed = Instant::now();
    cluster.kill_scheduler(leader)?;
    let new_leader = cluster.wait_for_leader_where("a new leader", |id| id != leader)?;
    let elected = killed.elapsed();
    cluster.restart_scheduler(leader)?;
    cluster.wait_caught_up(leader)?;
    let caught_up = killed.elapsed();
    println!(
        "failover: leader {leader} SIGKILLed; scheduler {new_leader} leads after {:.2} s; the restarted node caught up {:.2} s after the kill",
        elected.as_secs_f64(),
        caught_up.as_secs_f64()
    );

    wait_until(
        SETTLE + Duration::from_secs(u64::from(options.secs)),
        "the window to pass",
        || (Utc::now() > last + TimeDelta::seconds(3)).then_some(()),
    )?;
    let expected = expected_fires(options.jobs, first, last);
    let ran = wait_until(SETTLE, "every fire of the window to run", || {
        let ran = read_runs(&file, first, last).ok()?;
        (ran.len() >= expected.len()).then_some(ran)
    })
    .or_else(|_| read_runs(&file, first, last))?;
    let mut seen: BTreeMap<(u32, DateTime<Utc>), u32> = BTreeMap::new();
    let mut lateness = Vec::new();
    let mut after_kill = Vec::new();
    let kill_time = kill_at;
    for r in &ran {
        *seen.entry((r.job, r.scheduled)).or_default() += 1;
        let late = lines::ms(r.at - r.scheduled);
        lateness.push(late);
        if r.scheduled >= kill_time && r.scheduled < kill_time + TimeDelta::seconds(5) {
            after_kill.push(late);
        }
    }
    let missing = expected.iter().filter(|k| !seen.contains_key(k)).count();
    let unexpected = seen.keys().filter(|k| !expected.contains(k)).count();
    let twice = seen.values().filter(|n| **n > 1).count();
    let s = stats::Summary::of(&lateness);
    println!(
        "lateness (ms, process start after the instant): count {}, p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        s.count, s.p50, s.p90, s.p99, s.max
    );
    let k = stats::Summary::of(&after_kill);
    println!(
        "  of those, the 5 s from the kill: count {}, p50 {:.1}, p99 {:.1}, max {:.1}",
        k.count, k.p50, k.p99, k.max
    );
    println!(
        "  by lateness (ms): {}",
        stats::histogram(&lateness, &[10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0])
    );
    println!(
        "instants in the window: {} expected, {} ran, {missing} did not run, {twice} ran twice, {unexpected} not expected",
        expected.len(),
        seen.len()
    );
    print_footprint(&cluster, dir, "at the end")?;
    Ok(())
}

/// Creates jobs `range` (see [`job`]) through PutJob, `in_flight` calls at a time;
/// each call's latency in milliseconds.
pub(crate) async fn create(
    addr: &str,
    range: std::ops::Range<u32>,
    in_flight: usize,
    file: &Path,
) -> Result<Vec<f64>> {
    let client = client(addr)?;
    let file = Arc::new(file.to_path_buf());
    let jobs = range.len();
    let calls = futures::stream::iter(range).map(|i| {
        let client = client.clone();
        let file = Arc::clone(&file);
        async move {
            let started = Instant::now();
            client
                .put_job(job(i, &file))
                .await
                .with_context(|| format!("PutJob {}", job_name(i)))?;
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        }
    });
    let mut results = calls.buffer_unordered(in_flight.max(1));
    let mut latencies = Vec::with_capacity(jobs);
    let mut last_report = Instant::now();
    while let Some(r) = results.next().await {
        latencies.push(r?);
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!("  ... {} jobs created", latencies.len());
        }
    }
    Ok(latencies)
}

/// Pages through every job; returns how many and in how many pages.
async fn list_all(addr: &str) -> Result<(u64, u32)> {
    let client = client(addr)?;
    let mut token = String::new();
    let mut count = 0u64;
    // Bounded: far more pages than the jobs could fill.
    for page in 1..=10_000u32 {
        let response = client
            .list_jobs_page(pb::ListJobsRequest {
                page_size: PAGE,
                page_token: token.clone(),
                filter: String::new(),
            })
            .await?;
        count += response.jobs.len() as u64;
        if response.next_page_token.is_empty() {
            return Ok((count, page));
        }
        token = response.next_page_token;
    }
    bail!("ListJobs did not end after 10000 pages")
}

async fn get_some(addr: &str, jobs: u32) -> Result<Vec<f64>> {
    let client = client(addr)?;
    let mut latencies = Vec::with_capacity(GETS as usize);
    // A fixed stride through the names: spread over the whole key range.
    let stride = 7919u32;
    for k in 0..GETS {
        let i = k.wrapping_mul(stride) % jobs.max(1);
        let started = Instant::now();
        client
            .get_job(&job_name(i))
            .await
            .with_context(|| format!("GetJob {}", job_name(i)))?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(latencies)
}

/// The (job index, instant) pairs due in `first ..= last`.
fn expected_fires(
    jobs: u32,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> std::collections::BTreeSet<(u32, DateTime<Utc>)> {
    let mut due = std::collections::BTreeSet::new();
    let mut t = first;
    while t <= last {
        let second_of_hour = t.minute() * 60 + t.second();
        let mut i = second_of_hour;
        while i < jobs {
            due.insert((i, t));
            i += SLOTS;
        }
        t += TimeDelta::seconds(1);
    }
    due
}

/// One line of the shared file.
struct Ran {
    job: u32,
    scheduled: DateTime<Utc>,
    at: DateTime<Utc>,
}

/// The lines of the file whose instant is in `first ..= last` (an incomplete last
/// line is left out).
fn read_runs(file: &Path, first: DateTime<Utc>, last: DateTime<Utc>) -> Result<Vec<Ran>> {
    let mut runs = Vec::new();
    for line in lines::complete(file) {
        let line = line.as_str();
        let r = parse_run(line).with_context(|| format!("line {line:?}"))?;
        if r.scheduled >= first && r.scheduled <= last {
            runs.push(r);
        }
    }
    Ok(runs)
}

fn parse_run(line: &str) -> Result<Ran> {
    let mut words = line.split_whitespace();
    let (Some(job), Some(scheduled), Some(at), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        bail!("not three words");
    };
    let job = job
        .strip_prefix("scale-")
        .ok_or_else(|| anyhow!("not a scale job"))?
        .parse()?;
    Ok(Ran {
        job,
        scheduled: lines::instant(scheduled, line)?,
        at: lines::clock(at, line)?,
    })
}

/// Prints each running scheduler's resident memory and data directory size.
fn print_footprint(cluster: &Cluster, dir: &Path, when: &str) -> Result<()> {
    let mut parts = Vec::new();
    for id in cluster.running_schedulers() {
        let rss = cluster
            .scheduler_pid(id)
            .and_then(|pid| resident_mib(pid).ok())
            .map_or("?".to_string(), |m| format!("{m:.0} MiB"));
        let disk = dir_size(&dir.join(format!("scheduler-{id}")))? as f64 / (1 << 20) as f64;
        parts.push(format!("scheduler {id}: rss {rss}, data {disk:.0} MiB"));
    }
    println!("footprint {when}: {}", parts.join("; "));
    Ok(())
}

fn resident_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow!("no VmRSS"))?
        .parse()?;
    Ok(kib / 1024.0)
}

fn dir_size(path: &Path) -> Result<u64> {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_spread_over_the_seconds_of_the_hour() {
        assert_eq!(slot(0), (0, 0));
        assert_eq!(slot(61), (1, 1));
        assert_eq!(slot(3599), (59, 59));
        assert_eq!(slot(3600), (0, 0));
        let first = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Two seconds, 7300 jobs: the second 0 has jobs 0, 3600, 7200; the second 1
        // has 1, 3601, 7201.
        let due = expected_fires(7300, first, first + TimeDelta::seconds(1));
        assert_eq!(due.len(), 6);
        assert!(due.contains(&(7201, first + TimeDelta::seconds(1))));
        assert!(!due.contains(&(7201, first)));
    }

    #[test]
    fn a_line_holds_the_job_the_instant_and_when_it_ran() -> Result<()> {
        let r = parse_run("scale-000042 2026-01-01T10:00:42Z 1767261642.012345678")?;
        assert_eq!(r.job, 42);
        assert_eq!(r.scheduled.second(), 42);
        assert_eq!((r.at - r.scheduled).num_milliseconds(), 12);
        assert!(parse_run("late-0001 2026-01-01T10:00:42Z 1.0").is_err());
        Ok(())
    }
}
