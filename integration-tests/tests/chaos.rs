//! Chaos: a 3-scheduler group with 3 executors runs five `@every 1s` jobs while
//! schedulers and executors are SIGKILLed and restarted at random; then, once all is
//! quiet again, a checker holds the record and what really ran to DESIGN §5 and to
//! each job's own policy.
//!
//! The jobs: `@every 1s`, `misfire: {policy: run_all, window: 5m}`, `retry:
//! {max_attempts: 3, backoff: 1s}`, `history: {keep: 10000}`, and a command that
//! appends `$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID` to a file of
//! its own and then fails when it is a first attempt whose execution id is a multiple
//! of 7: besides the `lost` attempts the leases find, `failed` ones that executors
//! report across the faults must be retried too.
//!
//! The faults, one at a time, every 0.3–2 s, from a seeded generator:
//! - SIGKILL the leader (most often), or a follower; it is restarted on its data
//!   directory 0.5–6 s later. At most one scheduler is down at a time, so the group
//!   keeps its quorum — except for
//! - short full outages: all three schedulers SIGKILLed for 1–6 s, then restarted
//!   (instants that fall due meanwhile are misfires, run by `run_all`);
//! - SIGKILL an executor, restarted 0.5–15 s later (past the 10 s lease sometimes);
//!   at least one executor is always up;
//! - writes during the faults: new `@manual` jobs applied through a random node
//!   (every acknowledged one must survive), and updates of the firing jobs (a new
//!   `metadata.rev`), which rewind what was committed ahead
//!   (`KAIROS_CHAOS_UPDATES=0` leaves the updates out, to exercise the rest alone).
//!
//! Two faults are not left to chance: a full outage longer than the lookahead (2 s:
//! the fires committed ahead run out, so instants fall due with no leader) and a kill
//! of the agreed leader are forced at a seeded moment of the run if the draw has not
//! produced them by then, and the test fails unless its own log of faults shows both.
//!
//! Then: everything restarted, the leases of the dead given time to expire (no
//! execution of an instant before the quiet period still active, no retry
//! pending), and the checker:
//! - every acknowledged update survived: each firing job's stored `metadata.rev` and
//!   `version` are those of its last acknowledged `job apply` (or of a later write
//!   whose answer was lost: a refused write may have been committed all the same);
//! - the five jobs paused so the history stops moving;
//! - every instant of each job from its first to its cursor has exactly one first
//!   attempt (trigger `schedule` or `catchup`), attempts 1, 2, … each once, each
//!   retry naming a previous attempt that failed, timed out or was lost, and a final
//!   outcome ([`check_instants`]);
//! - the job's policy held ([`check_policy`]): an attempt that failed, timed out or
//!   was lost with attempts left was retried, no instant has more than 3 attempts,
//!   and no instant was recorded `missed` inside the 5 min window of `run_all`;
//! - no (instant, attempt) ran twice, every line in the file is a record that may
//!   have run with that execution id, every `succeeded` record left its line
//!   ([`check_runs`]);
//! - `status.outcomeCounts` equal the records' statuses; nothing pending or
//!   running; every acknowledged job still exists; the outages left misfires (run as
//!   catch-ups), so the misfire path was exercised.
//!
//! It prints the seed first, each fault as it happens, and the figures at the end
//! (faults by kind, the longest outage, instants, outcomes and execution statuses).
//!
//! When the checker finds a problem, the test keeps its directory (every node's data
//! and full log, the files of runs) and prints its path.
//!
//! CI runs 60 s of faults (about 85 s in all, debug build, 2 cores). The long
//! variant, and a replay:
//!
//! ```text
//! KAIROS_CHAOS_SECS=600 cargo test -p kairos --test chaos -- --nocapture
//! KAIROS_CHAOS_SEED=12345 cargo test -p kairos --test chaos -- --nocapture
//! ```
//!
//! A seed replays the same sequence of decisions; the timing of a real cluster does
//! not replay, so a replay is a close rerun, not an identical one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use kairos_integration_tests::check::{
    Exec, Misfire, Policy, Window, check_counts, check_instants, check_policy, check_runs,
    is_final, read_runs,
};
use kairos_integration_tests::{Cluster, ClusterOptions, field, num, wait_until, write_file};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// Seconds of faults when `KAIROS_CHAOS_SECS` is not set.
const DEFAULT_SECS: u64 = 60;
/// The firing jobs.
const JOBS: usize = 5;
/// Executor agents.
const EXECUTORS: usize = 3;
/// How long a CLI call made during the faults may take (a write that finds no
/// leader fails after a few seconds by design).
const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// How long the cluster may take to become quiet after the faults: every
/// execution of a dead executor must reach its lease (10 s) and its retries run.
const QUIET_DEADLINE: Duration = Duration::from_secs(120);
/// The period of the jobs.
const SECOND: TimeDelta = TimeDelta::seconds(1);
/// How far ahead of its instant the leader commits a fire (the scheduler's
/// `LOOKAHEAD`): an outage longer than this leaves instants due with no leader.
const LOOKAHEAD: Duration = Duration::from_secs(2);
/// The forced full outage lasts this long (in ms, drawn): clearly past the
/// lookahead and a period, so at least one instant falls due with no leader.
const FORCED_OUTAGE_MS: (u64, u64) = (3000, 6000);
/// `misfire.window` of the firing jobs, in minutes.
const MISFIRE_WINDOW_MINUTES: i64 = 5;
/// `retry.max_attempts` of the firing jobs.
const MAX_ATTEMPTS: u64 = 3;
/// A first attempt whose execution id is a multiple of this fails (exit 1).
const FAIL_EVERY: u64 = 7;
/// What the firing jobs' documents ask for, as the checker holds them to it.
const POLICY: Policy = Policy {
    misfire: Misfire::RunAll,
    misfire_window: TimeDelta::minutes(MISFIRE_WINDOW_MINUTES),
    max_attempts: MAX_ATTEMPTS,
};

/// A small deterministic generator (xorshift64*): the seed replays the decisions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration between `lo_ms` and `hi_ms` milliseconds.
    fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.below(hi_ms - lo_ms + 1))
    }

    /// One of `items`.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).expect("small")]
    }
}

/// What a fault did to which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// The scheduler the group agreed on as leader, SIGKILLed.
    LeaderKill,
    /// Another scheduler (or any, while the group agreed on no leader) SIGKILLed.
    FollowerKill,
    /// Every scheduler SIGKILLed at once.
    FullOutage,
    ExecutorKill,
}

/// One entry of the test's own log of faults, which the end of the test reads to
/// prove the faults it promises happened.
#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: FaultKind,
    /// When, from the start of the faults.
    at: Duration,
    /// How long the process stayed down: planned for a single kill, measured (from
    /// the last kill to the first restart) for a full outage.
    down_for: Duration,
    /// Forced rather than drawn.
    forced: bool,
}

/// The writes made during the faults, for the figures.
#[derive(Debug, Default)]
struct Writes {
    jobs_created: u32,
    creations_refused: u32,
    jobs_updated: u32,
    updates_refused: u32,
}

/// The revisions of one firing job written during the faults.
#[derive(Debug, Clone)]
struct Revisions {
    /// The last revision whose `job apply` was acknowledged, and the version the
    /// acknowledgement carried.
    acked_rev: u32,
    acked_version: u64,
    /// Revisions tried after it whose answer said refused (or never came): each may
    /// have been committed all the same.
    unacknowledged: Vec<u32>,
    /// The highest revision tried so far.
    last_tried: u32,
}

fn job_name(i: usize) -> String {
    format!("chaos-{i}")
}

fn ran_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{}.ran", job_name(i)))
}

/// The document of firing job `i`, revision `rev`.
fn firing_job(dir: &Path, i: usize, rev: u32) -> String {
    format!(
        "name: {}\nschedule: \"@every 1s\"\nmisfire: {{policy: run_all, window: {MISFIRE_WINDOW_MINUTES}m}}\nretry: {{max_attempts: {MAX_ATTEMPTS}, backoff: 1s}}\nhistory: {{keep: 10000}}\nmetadata: {{rev: \"{rev}\"}}\nshell:\n  command: |\n    echo \"$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT $KAIROS_EXECUTION_ID\" >> '{}'\n    [ \"$KAIROS_ATTEMPT\" -gt 1 ] || [ $((KAIROS_EXECUTION_ID % {FAIL_EVERY})) -ne 0 ]\n",
        job_name(i),
        ran_file(dir, i).display()
    )
}

/// Elapsed seconds, for the log of faults.
fn at(began: Instant) -> String {
    format!("[{:7.2} s]", began.elapsed().as_secs_f64())
}

/// `job apply -o json` of `yaml` through a random running scheduler: which one,
/// and the acknowledged job (`PutJobResponse.job`), if it was acknowledged.
fn try_apply(
    cluster: &Cluster,
    rng: &mut Rng,
    name: &str,
    yaml: &str,
) -> Result<(u64, Option<Value>)> {
    let running = cluster.running_schedulers();
    if running.is_empty() {
        return Ok((0, None));
    }
    let via = rng.pick(&running);
    let file = write_file(cluster.dir(), &format!("{name}.yaml"), yaml)?;
    let out = cluster.cli_within(
        via,
        &["job", "apply", "-f", &file, "-o", "json"],
        CALL_DEADLINE,
    );
    match out {
        Ok(o) if o.success() => {
            let answer = o.json()?;
            let job = answer
                .get("job")
                .cloned()
                .ok_or_else(|| anyhow!("an acknowledged apply without the job: {answer}"))?;
            Ok((via, Some(job)))
        }
        _ => Ok((via, None)),
    }
}

/// The stored `metadata.rev` of a job (`job get -o json`).
fn rev_of(job: &Value) -> Result<u32> {
    let rev = job.get("metadata").map(|m| field(m, "rev")).unwrap_or("");
    rev.parse().with_context(|| {
        format!(
            "metadata.rev {rev:?} of {} is not a number",
            field(job, "name")
        )
    })
}

/// SIGKILLs the leader the group agrees on (waiting for one, bounded); returns its
/// id. The caller restarts it.
fn kill_agreed_leader(cluster: &mut Cluster) -> Result<u64> {
    let leader = cluster.wait_for_leader()?;
    cluster.kill_scheduler(leader)?;
    Ok(leader)
}

/// SIGKILLs every scheduler, waits `down_for`, restarts them all; returns how long
/// no scheduler ran (from the last kill to the first restart).
fn full_outage(cluster: &mut Cluster, down_for: Duration) -> Result<Duration> {
    for id in cluster.scheduler_ids() {
        cluster.kill_scheduler(id)?;
    }
    let all_down = Instant::now();
    // The outage itself: nothing to wait for, time has to pass.
    std::thread::sleep(down_for);
    let measured = all_down.elapsed();
    for id in cluster.scheduler_ids() {
        cluster.restart_scheduler(id)?;
    }
    Ok(measured)
}

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("{name}={v:?} is not a number")
            })?))
        }
        Err(_) => Ok(None),
    }
}

#[test]
fn under_random_kills_every_instant_has_exactly_one_outcome() -> Result<()> {
    let test_began = Instant::now();
    let secs = env_u64("KAIROS_CHAOS_SECS")?.unwrap_or(DEFAULT_SECS);
    let updates = env_u64("KAIROS_CHAOS_UPDATES")? != Some(0);
    let seed = match env_u64("KAIROS_CHAOS_SEED")? {
        Some(s) => s,
        None => u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
                % u128::from(u64::MAX),
        )?,
    };
    eprintln!(
        "chaos: seed {seed} (replay with KAIROS_CHAOS_SEED={seed}), {secs} s of faults, \
         3 schedulers with TLS, {EXECUTORS} executors, {JOBS} jobs @every 1s{}",
        if updates { "" } else { ", no job updates" }
    );
    let mut rng = Rng::new(seed);
    let faults_for = Duration::from_secs(secs);
    // When the two promised faults are forced if the draw has not produced them.
    let force_leader_kill_at = faults_for.mul_f64(0.1 + 0.3 * rng.below(1000) as f64 / 1000.0);
    let force_outage_at = faults_for.mul_f64(0.4 + 0.3 * rng.below(1000) as f64 / 1000.0);

    let tmp = tempfile::Builder::new().prefix("kairos-chaos-").tempdir()?;
    let dir = tmp.path();
    // As in production: TLS on every connection, each process its own certificate.
    let mut cluster = Cluster::start(
        BIN.as_ref(),
        dir,
        ClusterOptions::new(3, EXECUTORS).secure(),
    )?;
    let leader = cluster.wait_for_leader()?;
    let docs: Vec<String> = (0..JOBS).map(|i| firing_job(dir, i, 0)).collect();
    cluster.apply(leader, "chaos-jobs", &docs.join("---\n"))?;
    let applied_at = Utc::now();
    let mut acknowledged: BTreeSet<String> = (0..JOBS).map(job_name).collect();
    let mut revisions: Vec<Revisions> = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let job = cluster.job(leader, &job_name(i))?;
        revisions.push(Revisions {
            acked_rev: rev_of(&job)?,
            acked_version: num(&job, "version"),
            unacknowledged: Vec::new(),
            last_tried: 0,
        });
    }
    wait_until(Duration::from_secs(30), "every job to run twice", || {
        (0..JOBS)
            .all(|i| read_runs(&ran_file(dir, i)).is_ok_and(|r| r.len() >= 2))
            .then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    // ---- faults ----
    let began = Instant::now();
    let mut faults: Vec<Fault> = Vec::new();
    let mut writes = Writes::default();
    let mut scheduler_down: Option<(u64, Instant)> = None;
    let mut executors_down: BTreeMap<usize, Instant> = BTreeMap::new();
    let leader_killed = |faults: &[Fault]| faults.iter().any(|f| f.kind == FaultKind::LeaderKill);
    let long_outage = |faults: &[Fault]| {
        faults
            .iter()
            .any(|f| f.kind == FaultKind::FullOutage && f.down_for > LOOKAHEAD)
    };
    while began.elapsed() < faults_for {
        std::thread::sleep(rng.millis(300, 2000));
        let now = Instant::now();
        if let Some((id, due)) = scheduler_down
            && now >= due
        {
            cluster.restart_scheduler(id)?;
            eprintln!("{} scheduler {id} restarted", at(began));
            scheduler_down = None;
            continue;
        }
        let due: Vec<usize> = executors_down
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            cluster.restart_executor(i)?;
            executors_down.remove(&i);
            eprintln!("{} executor exec-{} restarted", at(began), i + 1);
        }

        // A promised fault whose moment has come goes first; otherwise a weighted
        // choice among what the state allows.
        let elapsed = began.elapsed();
        let forced = if scheduler_down.is_some() {
            None
        } else if !long_outage(&faults) && elapsed >= force_outage_at {
            Some("outage")
        } else if !leader_killed(&faults) && elapsed >= force_leader_kill_at {
            Some("leader")
        } else {
            None
        };
        let action = match forced {
            Some(action) => action,
            None => {
                let mut choices: Vec<(&str, u64)> = vec![("create", 2)];
                if updates {
                    choices.push(("update", 1));
                }
                if scheduler_down.is_none() {
                    choices.extend([("leader", 4), ("follower", 2), ("outage", 1)]);
                }
                if EXECUTORS - executors_down.len() >= 2 {
                    choices.push(("executor", 3));
                }
                let total: u64 = choices.iter().map(|(_, w)| w).sum();
                let mut roll = rng.below(total);
                choices
                    .iter()
                    .find(|(_, w)| {
                        if roll < *w {
                            true
                        } else {
                            roll -= w;
                            false
                        }
                    })
                    .map(|(a, _)| *a)
                    .expect("weights cover the roll")
            }
        };
        let forced = forced.is_some();
        let forced_word = if forced { " (forced)" } else { "" };
        match action {
            "leader" | "follower" => {
                let down_for = rng.millis(500, 6000);
                let (victim, was_leader) = if forced {
                    (kill_agreed_leader(&mut cluster)?, true)
                } else {
                    let running = cluster.running_schedulers();
                    let leader = cluster.leader();
                    let victim = match (action, leader) {
                        ("leader", Some(l)) => l,
                        (_, Some(l)) => {
                            let followers: Vec<u64> =
                                running.iter().copied().filter(|&id| id != l).collect();
                            rng.pick(&followers)
                        }
                        // No agreed leader right now: any node.
                        _ => rng.pick(&running),
                    };
                    cluster.kill_scheduler(victim)?;
                    (victim, Some(victim) == leader)
                };
                faults.push(Fault {
                    kind: if was_leader {
                        FaultKind::LeaderKill
                    } else {
                        FaultKind::FollowerKill
                    },
                    at: began.elapsed(),
                    down_for,
                    forced,
                });
                eprintln!(
                    "{} SIGKILL scheduler {victim} ({}) for {:.1} s{forced_word}",
                    at(began),
                    if was_leader { "leader" } else { "follower" },
                    down_for.as_secs_f64()
                );
                scheduler_down = Some((victim, Instant::now() + down_for));
            }
            "outage" => {
                let down_for = if forced {
                    rng.millis(FORCED_OUTAGE_MS.0, FORCED_OUTAGE_MS.1)
                } else {
                    rng.millis(1000, 6000)
                };
                eprintln!(
                    "{} SIGKILL all schedulers for {:.1} s{forced_word}",
                    at(began),
                    down_for.as_secs_f64()
                );
                let fault_at = began.elapsed();
                let measured = full_outage(&mut cluster, down_for)?;
                faults.push(Fault {
                    kind: FaultKind::FullOutage,
                    at: fault_at,
                    down_for: measured,
                    forced,
                });
                eprintln!(
                    "{} all schedulers restarted (none ran for {:.2} s)",
                    at(began),
                    measured.as_secs_f64()
                );
            }
            "executor" => {
                let up: Vec<usize> = (0..EXECUTORS)
                    .filter(|i| !executors_down.contains_key(i))
                    .collect();
                let victim = rng.pick(&up);
                let down_for = rng.millis(500, 15000);
                cluster.kill_executor(victim)?;
                faults.push(Fault {
                    kind: FaultKind::ExecutorKill,
                    at: began.elapsed(),
                    down_for,
                    forced,
                });
                executors_down.insert(victim, now + down_for);
                eprintln!(
                    "{} SIGKILL executor exec-{} for {:.1} s",
                    at(began),
                    victim + 1,
                    down_for.as_secs_f64()
                );
            }
            "create" => {
                let name = format!("acked-{}", writes.jobs_created + writes.creations_refused);
                let yaml =
                    format!("name: {name}\nschedule: \"@manual\"\nshell: {{command: \"true\"}}\n");
                let (via, ok) = try_apply(&cluster, &mut rng, &name, &yaml)?;
                eprintln!(
                    "{} create {name} via {via}: {}",
                    at(began),
                    if ok.is_some() {
                        "acknowledged"
                    } else {
                        "refused"
                    }
                );
                if ok.is_some() {
                    writes.jobs_created += 1;
                    acknowledged.insert(name);
                } else {
                    writes.creations_refused += 1;
                }
            }
            "update" => {
                let i = usize::try_from(rng.below(JOBS as u64))?;
                let revs = &mut revisions[i];
                revs.last_tried += 1;
                let rev = revs.last_tried;
                let yaml = firing_job(dir, i, rev);
                let (via, acked) = try_apply(&cluster, &mut rng, &job_name(i), &yaml)?;
                let revs = &mut revisions[i];
                match &acked {
                    Some(job) => {
                        ensure!(
                            rev_of(job)? == rev,
                            "the acknowledgement of rev {rev} of {} carries another revision: {job}",
                            job_name(i)
                        );
                        revs.acked_rev = rev;
                        revs.acked_version = num(job, "version");
                        revs.unacknowledged.clear();
                        writes.jobs_updated += 1;
                    }
                    None => {
                        revs.unacknowledged.push(rev);
                        writes.updates_refused += 1;
                    }
                }
                eprintln!(
                    "{} update {} to rev {rev} via {via}: {}",
                    at(began),
                    job_name(i),
                    match &acked {
                        Some(job) => format!("acknowledged (version {})", num(job, "version")),
                        None => "refused".to_string(),
                    }
                );
            }
            other => unreachable!("action {other}"),
        }
    }
    // A run too short to reach the forced moments still gets the promised faults.
    if let Some((id, _)) = scheduler_down.take() {
        cluster.restart_scheduler(id)?;
        eprintln!("{} scheduler {id} restarted", at(began));
    }
    if !leader_killed(&faults) {
        let fault_at = began.elapsed();
        let victim = kill_agreed_leader(&mut cluster)?;
        eprintln!(
            "{} SIGKILL scheduler {victim} (leader) until a new leader is agreed (forced)",
            at(began)
        );
        let killed = Instant::now();
        cluster.wait_for_leader()?;
        cluster.restart_scheduler(victim)?;
        faults.push(Fault {
            kind: FaultKind::LeaderKill,
            at: fault_at,
            down_for: killed.elapsed(),
            forced: true,
        });
    }
    if !long_outage(&faults) {
        let down_for = rng.millis(FORCED_OUTAGE_MS.0, FORCED_OUTAGE_MS.1);
        eprintln!(
            "{} SIGKILL all schedulers for {:.1} s (forced)",
            at(began),
            down_for.as_secs_f64()
        );
        let fault_at = began.elapsed();
        let measured = full_outage(&mut cluster, down_for)?;
        faults.push(Fault {
            kind: FaultKind::FullOutage,
            at: fault_at,
            down_for: measured,
            forced: true,
        });
    }
    let faults_took = began.elapsed();

    // ---- quiet ----
    for (i, _) in std::mem::take(&mut executors_down) {
        cluster.restart_executor(i)?;
    }
    let quiet_from = Utc::now();
    eprintln!(
        "{} faults over; everything restarted at {quiet_from}",
        at(began)
    );
    cluster.wait_for_leader()?;
    cluster.wait_for_executors(EXECUTORS)?;
    // The dead's leases expire and their retries run: nothing of an instant before
    // the quiet period is still active, and no retry waits.
    wait_until(
        QUIET_DEADLINE,
        "the executions from before the quiet period to be final",
        || {
            let leader = cluster.leader()?;
            for i in 0..JOBS {
                let job = cluster.job(leader, &job_name(i)).ok()?;
                let status = job.get("status").cloned().unwrap_or(Value::Null);
                if num(&status, "pendingRetries") > 0 {
                    return None;
                }
                let records = cluster.records(leader, &job_name(i)).ok()?;
                if records
                    .iter()
                    .any(|e| e.scheduled_at < quiet_from && !is_final(&e.status))
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .map_err(|e| cluster.with_logs(e))?;

    // ---- check: the faults promised, and every acknowledged update ----
    let mut problems = Vec::new();
    let longest_outage = faults
        .iter()
        .filter(|f| f.kind == FaultKind::FullOutage)
        .map(|f| f.down_for)
        .max()
        .unwrap_or_default();
    if longest_outage <= LOOKAHEAD {
        problems.push(format!(
            "no full outage outlasted the lookahead of {LOOKAHEAD:?} (longest {longest_outage:?}): {faults:?}"
        ));
    }
    if !leader_killed(&faults) {
        problems.push(format!("the agreed leader was never killed: {faults:?}"));
    }
    let leader = cluster.wait_for_leader()?;
    for (i, revs) in revisions.iter().enumerate() {
        let name = job_name(i);
        let job = cluster.job(leader, &name)?;
        let (rev, version) = (rev_of(&job)?, num(&job, "version"));
        let survived = if revs.unacknowledged.is_empty() {
            rev == revs.acked_rev && version == revs.acked_version
        } else {
            // A later write whose answer was lost may have been committed after it.
            version >= revs.acked_version
                && (rev == revs.acked_rev || revs.unacknowledged.contains(&rev))
        };
        if !survived {
            problems.push(format!(
                "{name}: an acknowledged update was lost: the last acknowledged one is rev {} \
                 (version {}; tried since without an answer: {:?}), the stored job has rev {rev} \
                 (version {version})",
                revs.acked_rev, revs.acked_version, revs.unacknowledged
            ));
        }
    }

    // Stop the history from moving: pause every firing job.
    let paused_at = Utc::now();
    for i in 0..JOBS {
        cluster
            .cli_any(&["job", "pause", &job_name(i)], CALL_DEADLINE)?
            .ok()
            .map_err(|e| cluster.with_logs(e))?;
    }
    let leader = cluster.wait_for_leader()?;
    wait_until(QUIET_DEADLINE, "every execution to be final", || {
        for i in 0..JOBS {
            let job = cluster.job(leader, &job_name(i)).ok()?;
            let status = job.get("status").cloned().unwrap_or(Value::Null);
            if num(&status, "pendingRetries") > 0 || num(&status, "running") > 0 {
                return None;
            }
            let records = cluster.records(leader, &job_name(i)).ok()?;
            if records.iter().any(|e| !is_final(&e.status)) {
                return None;
            }
        }
        Some(())
    })
    .map_err(|e| cluster.with_logs(e))?;

    // ---- check: every instant, against the record, what ran and the policy ----
    let mut instants = 0;
    let mut executions = 0;
    let mut outcomes_by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let (mut retries, mut catchups, mut late) = (0, 0, 0);
    for i in 0..JOBS {
        let name = job_name(i);
        let job = cluster.job(leader, &name)?;
        let records = cluster.records(leader, &name)?;
        let runs = read_runs(&ran_file(dir, i))?;
        let cursor: DateTime<Utc> = job
            .get("status")
            .map(|s| field(s, "lastScheduledAt"))
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{name} has no status.lastScheduledAt: {job}"))?;
        let first = records
            .iter()
            .filter(|e| e.is_scheduled_first())
            .map(|e| e.scheduled_at)
            .min()
            .ok_or_else(|| anyhow!("{name} never fired"))?;
        let mut check = || -> Result<()> {
            let latest_first = applied_at.duration_trunc(SECOND)? + SECOND;
            ensure!(
                first <= latest_first,
                "{name}: the first recorded instant {first} is after the first one due \
                 after the job was created ({latest_first})"
            );
            ensure!(
                cursor >= paused_at - TimeDelta::seconds(3),
                "{name}: the cursor {cursor} stopped well before the pause at {paused_at}"
            );
            let outcomes = check_instants(
                &records,
                &Window {
                    first,
                    last: cursor,
                    period: SECOND,
                },
            )?;
            // Each check below reports on its own: one failing does not hide another.
            let mut failed = Vec::new();
            for result in [
                check_policy(&outcomes, &POLICY),
                check_runs(&records, &runs),
                check_counts(&job, &records),
            ] {
                if let Err(e) = result {
                    failed.push(format!("{e:#}"));
                }
            }
            let stray: Vec<String> = records
                .iter()
                .filter(|e| e.scheduled_at > cursor && e.trigger != "manual")
                .map(Exec::brief)
                .collect();
            if !stray.is_empty() {
                failed.push(format!(
                    "{name}: records after the cursor {cursor}: {stray:?}"
                ));
            }
            instants += outcomes.len();
            for o in outcomes.values() {
                *outcomes_by_status
                    .entry(o.status().to_string())
                    .or_default() += 1;
                if o.first().trigger == "catchup" {
                    catchups += 1;
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
            Ok(())
        };
        if let Err(e) = check() {
            problems.push(format!("{e:#}"));
        }
        executions += records.len();
        for e in &records {
            *statuses.entry(e.status.clone()).or_default() += 1;
            if e.attempt > 1 {
                retries += 1;
            }
            if !e.late_status.is_empty() {
                late += 1;
            }
        }
    }
    // The outages left instants due with no leader: run_all ran them as catch-ups
    // (an instant recorded `missed` instead is a problem of its own above).
    let missed = outcomes_by_status.get("missed").copied().unwrap_or(0);
    if catchups + missed == 0 {
        problems.push(format!(
            "the outages (the longest {:.1} s) left no misfire: the misfire path went untested",
            longest_outage.as_secs_f64()
        ));
    }
    let leader = cluster.wait_for_leader()?;
    let list = cluster
        .cli(leader, &["job", "list", "-o", "json"])?
        .ok()?
        .json()?;
    let present: BTreeSet<String> = list
        .get("jobs")
        .and_then(Value::as_array)
        .map(|jobs| jobs.iter().map(|j| field(j, "name").to_string()).collect())
        .unwrap_or_default();
    let lost_jobs: Vec<&String> = acknowledged.difference(&present).collect();
    if !lost_jobs.is_empty() {
        problems.push(format!("acknowledged jobs that are gone: {lost_jobs:?}"));
    }

    let count = |kind: FaultKind| faults.iter().filter(|f| f.kind == kind).count();
    let forced: Vec<String> = faults
        .iter()
        .filter(|f| f.forced)
        .map(|f| format!("{:?} at {:.1} s", f.kind, f.at.as_secs_f64()))
        .collect();
    eprintln!(
        "chaos figures (seed {seed}): {:.0} s of faults: {} leader kills, {} follower kills, \
         {} full outages (longest {:.1} s), {} executor kills; forced: {forced:?}; \
         {} jobs created ({} refused), {} updates ({} refused)",
        faults_took.as_secs_f64(),
        count(FaultKind::LeaderKill),
        count(FaultKind::FollowerKill),
        count(FaultKind::FullOutage),
        longest_outage.as_secs_f64(),
        count(FaultKind::ExecutorKill),
        writes.jobs_created,
        writes.creations_refused,
        writes.jobs_updated,
        writes.updates_refused
    );
    eprintln!(
        "  {instants} instants checked, outcomes {outcomes_by_status:?}; {catchups} ran as catch-up"
    );
    eprintln!(
        "  {executions} executions, statuses {statuses:?}; {retries} retries, {late} late reports"
    );
    eprintln!("  whole test {:.0} s", test_began.elapsed().as_secs_f64());
    if problems.is_empty() {
        return Ok(());
    }
    let logs = cluster.logs();
    drop(cluster);
    // Keep every node's data and full log for the post-mortem.
    let kept = tmp.keep();
    Err(anyhow!(
        "seed {seed}:\n{}\n{logs}\nkept {} (data, logs, files of runs)",
        problems.join("\n"),
        kept.display()
    ))
}
