//! What a job recorded and what it really ran, and checks of the firing guarantees
//! (DESIGN §5) over the two.
//!
//! The record is the job's executions as `kairos exec list -o json` prints them,
//! parsed into [`Exec`]. What really ran is a file the job's command appends a line
//! to, `$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT [$KAIROS_EXECUTION_ID] [...]`, parsed
//! into [`Ran`]. The checks compare them:
//!
//! - [`check_instants`]: every scheduled instant of a window has exactly one
//!   first attempt (trigger `schedule` or `catchup`), its attempts are numbered
//!   1, 2, … each once, each retry follows an attempt that failed, timed out or was
//!   lost, and the last attempt ended with a final status;
//! - [`check_runs`]: no (instant, attempt) ran twice, every line matches a record
//!   of an attempt that may have run (not `missed`, `no_target`, `skipped_*`), and
//!   every `succeeded` attempt left its line;
//! - [`check_policy`]: the outcomes obey the job's own [`Policy`]: an attempt that
//!   failed, timed out or was lost with attempts left was retried, no instant has
//!   more attempts than allowed, and instants missed while no leader could fire them
//!   were handled as the misfire policy says (`run_all` runs every one inside its
//!   window, `run_once` the newest, `skip` none);
//! - [`check_counts`]: the job's `status.outcomeCounts` equal the statuses of its
//!   records (valid while nothing was pruned: tests that count set `history.keep`
//!   high).
//!
//! Each check collects every problem it finds rather than stopping at the first, so
//! a failure shows the whole picture. Nothing here waits or talks to a process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::{field, num};

/// The outcomes an execution can end with; anything else (`pending`, `running`, or
/// a word the product should not print) is not final.
pub const FINAL_STATUSES: [&str; 9] = [
    "succeeded",
    "failed",
    "timed_out",
    "lost",
    "cancelled",
    "skipped_overlap",
    "skipped_paused",
    "missed",
    "no_target",
];

/// Final statuses of an attempt whose command was never started.
pub const NOT_RUN_STATUSES: [&str; 4] =
    ["missed", "no_target", "skipped_overlap", "skipped_paused"];

/// Final statuses a retry may follow.
pub const RETRYABLE_STATUSES: [&str; 3] = ["failed", "timed_out", "lost"];

/// True for one of the [`FINAL_STATUSES`].
pub fn is_final(status: &str) -> bool {
    FINAL_STATUSES.contains(&status)
}

/// How many problems a failed check lists.
const SHOWN_PROBLEMS: usize = 40;

/// One execution record, as `exec list -o json` / `exec get -o json` print it.
#[derive(Debug, Clone)]
pub struct Exec {
    pub id: u64,
    pub job: String,
    pub scheduled_at: DateTime<Utc>,
    pub attempt: u64,
    pub trigger: String,
    pub executor: String,
    pub status: String,
    /// The id of the previous attempt for a retry; 0 for none.
    pub previous_attempt: u64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub late_status: String,
    pub error: String,
    /// The record as printed, for messages.
    pub raw: Value,
}

impl Exec {
    /// Parses one execution (proto3 JSON: absent fields are defaults).
    pub fn parse(v: &Value) -> Result<Exec> {
        let time = |name: &str| -> Result<Option<DateTime<Utc>>> {
            match field(v, name) {
                "" => Ok(None),
                t => t
                    .parse()
                    .map(Some)
                    .with_context(|| format!("{name} of {v} is not RFC 3339")),
            }
        };
        let scheduled_at = time("scheduledAt")?.ok_or_else(|| anyhow!("no scheduledAt: {v}"))?;
        let id = num(v, "id");
        if id == 0 {
            bail!("an execution without an id: {v}");
        }
        Ok(Exec {
            id,
            job: field(v, "job").to_string(),
            scheduled_at,
            attempt: num(v, "attempt"),
            trigger: field(v, "trigger").to_string(),
            executor: field(v, "executor").to_string(),
            status: field(v, "status").to_string(),
            previous_attempt: match field(v, "previousAttempt") {
                "" => 0,
                id => id
                    .parse()
                    .with_context(|| format!("previousAttempt of {v} is not an id"))?,
            },
            started_at: time("startedAt")?,
            finished_at: time("finishedAt")?,
            late_status: field(v, "lateStatus").to_string(),
            error: field(v, "error").to_string(),
            raw: v.clone(),
        })
    }

    /// Parses a list of executions.
    pub fn parse_all(list: &[Value]) -> Result<Vec<Exec>> {
        list.iter().map(Exec::parse).collect()
    }

    /// True for a first attempt of a scheduled instant (not a manual run or a retry).
    pub fn is_scheduled_first(&self) -> bool {
        self.attempt == 1 && matches!(self.trigger.as_str(), "schedule" | "catchup")
    }

    /// A short description for messages: id, instant, attempt, trigger, status.
    pub fn brief(&self) -> String {
        format!(
            "#{} {} attempt {} {} {}{}",
            self.id,
            self.scheduled_at.format("%H:%M:%S%.3f"),
            self.attempt,
            self.trigger,
            self.status,
            if self.executor.is_empty() {
                String::new()
            } else {
                format!(" on {}", self.executor)
            }
        )
    }
}

/// One line a job's command appended to its file:
/// `$KAIROS_SCHEDULED_AT $KAIROS_ATTEMPT [$KAIROS_EXECUTION_ID] [more words…]`.
#[derive(Debug, Clone)]
pub struct Ran {
    pub scheduled_at: DateTime<Utc>,
    pub attempt: u64,
    /// The execution id, when the command wrote it.
    pub execution: Option<u64>,
    /// Whatever followed, split on whitespace.
    pub rest: Vec<String>,
}

impl Ran {
    /// Parses one line.
    pub fn parse(line: &str) -> Result<Ran> {
        let mut words = line.split_whitespace();
        let scheduled_at = words
            .next()
            .ok_or_else(|| anyhow!("empty line"))?
            .parse()
            .with_context(|| format!("no instant first in {line:?}"))?;
        let attempt = words
            .next()
            .ok_or_else(|| anyhow!("no attempt in {line:?}"))?
            .parse()
            .with_context(|| format!("bad attempt in {line:?}"))?;
        let execution = match words.next() {
            None => None,
            Some(w) => Some(
                w.parse()
                    .with_context(|| format!("bad execution id in {line:?}"))?,
            ),
        };
        Ok(Ran {
            scheduled_at,
            attempt,
            execution,
            rest: words.map(str::to_string).collect(),
        })
    }
}

/// Every line of `path` parsed as a [`Ran`]; none while the file does not exist. A
/// last line without its newline (being written right now) is ignored.
pub fn read_runs(path: &Path) -> Result<Vec<Ran>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|l| Ran::parse(l).with_context(|| format!("in {}", path.display())))
        .collect()
}

/// The instants of a schedule `@every period` (anchored to the epoch) from `first` to
/// `last`, both included.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub period: TimeDelta,
}

impl Window {
    /// Every instant of the window, in order.
    pub fn instants(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.first;
        while t <= self.last {
            out.push(t);
            t += self.period;
        }
        out
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        t >= self.first && t <= self.last
    }
}

/// What became of one scheduled instant: its attempts, in order.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempts: Vec<Exec>,
}

impl Outcome {
    /// The status of the last attempt: the instant's outcome.
    pub fn status(&self) -> &str {
        self.attempts.last().map_or("", |e| e.status.as_str())
    }

    /// The first attempt.
    pub fn first(&self) -> &Exec {
        &self.attempts[0]
    }
}

fn fail_with(what: &str, problems: &[String]) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<&String> = problems.iter().take(SHOWN_PROBLEMS).collect();
    bail!(
        "{what}: {} problem(s){}:\n  {}",
        problems.len(),
        if problems.len() > SHOWN_PROBLEMS {
            format!(" (first {SHOWN_PROBLEMS})")
        } else {
            String::new()
        },
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    )
}

/// Checks that every instant of `window` has exactly one outcome in `records` (the
/// executions of one job), and returns the outcomes by instant:
///
/// - exactly one first attempt, with trigger `schedule` or `catchup`;
/// - attempts numbered 1, 2, … each exactly once, every attempt after the first a
///   `retry` whose `previousAttempt` is the attempt before it, which ended `failed`,
///   `timed_out` or `lost`;
/// - the last attempt final.
///
/// Records of instants outside the window are ignored, except that a scheduled
/// record between two window instants (off the schedule's grid) is a problem.
pub fn check_instants(
    records: &[Exec],
    window: &Window,
) -> Result<BTreeMap<DateTime<Utc>, Outcome>> {
    let mut problems = Vec::new();
    let mut by_instant: BTreeMap<DateTime<Utc>, Vec<Exec>> = BTreeMap::new();
    for e in records {
        if e.trigger == "manual" || !window.contains(e.scheduled_at) {
            continue;
        }
        by_instant
            .entry(e.scheduled_at)
            .or_default()
            .push(e.clone());
    }
    let expected: BTreeSet<DateTime<Utc>> = window.instants().into_iter().collect();
    for (t, list) in &by_instant {
        if !expected.contains(t) {
            problems.push(format!(
                "records at {t}, which is not an instant of the schedule: {}",
                list.iter().map(Exec::brief).collect::<Vec<_>>().join("; ")
            ));
        }
    }
    let mut outcomes = BTreeMap::new();
    for t in &expected {
        let Some(list) = by_instant.get(t) else {
            problems.push(format!("instant {t} has no record at all"));
            continue;
        };
        let mut list = list.clone();
        list.sort_by_key(|e| (e.attempt, e.id));
        let brief = || list.iter().map(Exec::brief).collect::<Vec<_>>().join("; ");
        let firsts = list.iter().filter(|e| e.is_scheduled_first()).count();
        if firsts != 1 {
            problems.push(format!(
                "instant {t} has {firsts} first attempts (schedule or catchup): {}",
                brief()
            ));
        }
        for (i, e) in list.iter().enumerate() {
            let want = u64::try_from(i).expect("small") + 1;
            if e.attempt != want {
                problems.push(format!(
                    "instant {t}: attempts are not 1, 2, … each once: {}",
                    brief()
                ));
                break;
            }
            if i == 0 {
                continue;
            }
            let prev = &list[i - 1];
            if e.trigger != "retry" {
                problems.push(format!(
                    "instant {t}: attempt {} has trigger {:?}, not retry: {}",
                    e.attempt,
                    e.trigger,
                    brief()
                ));
            }
            if e.previous_attempt != prev.id {
                problems.push(format!(
                    "instant {t}: attempt {} names previous attempt {}, not {}: {}",
                    e.attempt,
                    e.previous_attempt,
                    prev.id,
                    brief()
                ));
            }
            if !RETRYABLE_STATUSES.contains(&prev.status.as_str()) {
                problems.push(format!(
                    "instant {t}: attempt {} follows an attempt that ended {:?}: {}",
                    e.attempt,
                    prev.status,
                    brief()
                ));
            }
        }
        let outcome = Outcome { attempts: list };
        if !is_final(outcome.status()) {
            problems.push(format!(
                "instant {t} has no final outcome: {}",
                outcome
                    .attempts
                    .iter()
                    .map(Exec::brief)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        outcomes.insert(*t, outcome);
    }
    fail_with(
        &format!(
            "instants {}..={} of {}",
            window.first,
            window.last,
            records.first().map_or("?", |e| e.job.as_str())
        ),
        &problems,
    )?;
    Ok(outcomes)
}

/// Checks what ran (`runs`, the job's file) against what was recorded (`records`,
/// every execution of the job, none pruned):
///
/// - no (instant, attempt) ran twice;
/// - every line matches a record of that instant and attempt (and that execution
///   id, when the line has one) whose status says it may have run (not `missed`,
///   `no_target`, `skipped_overlap`, `skipped_paused`, and final);
/// - every `succeeded` record has its line.
///
/// Records of manual runs are left out (they have no instant of their own).
pub fn check_runs(records: &[Exec], runs: &[Ran]) -> Result<()> {
    let mut problems = Vec::new();
    let mut by_key: BTreeMap<(DateTime<Utc>, u64), Vec<&Exec>> = BTreeMap::new();
    for e in records.iter().filter(|e| e.trigger != "manual") {
        by_key
            .entry((e.scheduled_at, e.attempt))
            .or_default()
            .push(e);
    }
    let mut ran: BTreeMap<(DateTime<Utc>, u64), Vec<&Ran>> = BTreeMap::new();
    for r in runs {
        ran.entry((r.scheduled_at, r.attempt)).or_default().push(r);
    }
    for ((t, attempt), lines) in &ran {
        if lines.len() > 1 {
            problems.push(format!(
                "instant {t} attempt {attempt} ran {} times (executions {:?})",
                lines.len(),
                lines.iter().map(|r| r.execution).collect::<Vec<_>>()
            ));
        }
        let recs = by_key.get(&(*t, *attempt)).cloned().unwrap_or_default();
        for line in lines {
            let matching: Vec<&&Exec> = recs
                .iter()
                .filter(|e| line.execution.is_none_or(|id| id == e.id))
                .collect();
            match matching.as_slice() {
                [] => problems.push(format!(
                    "instant {t} attempt {attempt} ran (execution {:?}) but no record matches it; records: {}",
                    line.execution,
                    recs.iter().map(|e| e.brief()).collect::<Vec<_>>().join("; ")
                )),
                [e] => {
                    if NOT_RUN_STATUSES.contains(&e.status.as_str()) || !is_final(&e.status) {
                        problems.push(format!(
                            "instant {t} attempt {attempt} ran but is recorded {}",
                            e.brief()
                        ));
                    }
                }
                many => problems.push(format!(
                    "instant {t} attempt {attempt}: several records match one run: {}",
                    many.iter().map(|e| e.brief()).collect::<Vec<_>>().join("; ")
                )),
            }
        }
    }
    for e in records
        .iter()
        .filter(|e| e.trigger != "manual" && e.status == "succeeded")
    {
        let found = ran.get(&(e.scheduled_at, e.attempt)).is_some_and(|lines| {
            lines
                .iter()
                .any(|r| r.execution.is_none_or(|id| id == e.id))
        });
        if !found {
            problems.push(format!(
                "{} succeeded but its command left no line",
                e.brief()
            ));
        }
    }
    fail_with(
        &format!(
            "runs of {} against its record",
            records.first().map_or("?", |e| e.job.as_str())
        ),
        &problems,
    )
}

/// What a job does about instants missed while no leader could fire them
/// (`misfire.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfire {
    /// Records every missed instant `missed`, runs none.
    Skip,
    /// Runs the newest missed instant inside the window (trigger `catchup`), records
    /// the rest `missed`.
    RunOnce,
    /// Runs every missed instant inside the window, oldest first.
    RunAll,
}

/// The parts of a job's document that decide what its record must show when
/// instants are missed or attempts fail: what [`check_policy`] holds it to.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub misfire: Misfire,
    /// `misfire.window`: missed instants older than this are `missed` whatever the
    /// policy.
    pub misfire_window: TimeDelta,
    /// `retry.max_attempts`: attempts in all (1 = no retry).
    pub max_attempts: u64,
}

/// How close to the edge of the misfire window a `missed` record may be and still
/// count as outside it: the leader measures the window from its own clock when it
/// takes over, and stamps the record a moment later.
const WINDOW_EDGE: TimeDelta = TimeDelta::seconds(2);

/// Checks that `outcomes` (from [`check_instants`]) obey `policy`:
///
/// - no instant has more attempts than `max_attempts`;
/// - an instant whose last attempt ended `failed`, `timed_out` or `lost` used every
///   attempt the policy allows (otherwise a retry was dropped);
/// - a first attempt recorded `missed` inside the misfire window (its `finishedAt`,
///   when the leader recorded it, less than the window after its instant): under
///   `run_all` that is a problem (run_all runs it); under `run_once` the next
///   instant not `missed` must be its catch-up run; under `skip` it is expected;
/// - under `skip`, no instant ran as a catch-up.
pub fn check_policy(outcomes: &BTreeMap<DateTime<Utc>, Outcome>, policy: &Policy) -> Result<()> {
    let mut problems = Vec::new();
    let brief = |o: &Outcome| {
        o.attempts
            .iter()
            .map(Exec::brief)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let list: Vec<(&DateTime<Utc>, &Outcome)> = outcomes.iter().collect();
    for (i, (t, o)) in list.iter().enumerate() {
        let attempts = o.attempts.len() as u64;
        if attempts > policy.max_attempts {
            problems.push(format!(
                "instant {t} has {attempts} attempts, the policy allows {}: {}",
                policy.max_attempts,
                brief(o)
            ));
        }
        let Some(last) = o.attempts.last() else {
            continue;
        };
        if RETRYABLE_STATUSES.contains(&last.status.as_str()) && last.attempt < policy.max_attempts
        {
            problems.push(format!(
                "instant {t}: attempt {} ended {} with {} attempt(s) left (max_attempts {}) and was never retried: {}",
                last.attempt,
                last.status,
                policy.max_attempts - last.attempt,
                policy.max_attempts,
                brief(o)
            ));
        }
        let first = o.first();
        if policy.misfire == Misfire::Skip && first.trigger == "catchup" {
            problems.push(format!(
                "instant {t} ran as a catch-up under misfire policy skip: {}",
                brief(o)
            ));
        }
        if first.status != "missed" {
            continue;
        }
        let Some(recorded) = first.finished_at else {
            problems.push(format!(
                "instant {t} is missed with no finishedAt: {}",
                first.raw
            ));
            continue;
        };
        let age = recorded - first.scheduled_at;
        if age + WINDOW_EDGE >= policy.misfire_window {
            continue; // older than the window: missed whatever the policy
        }
        match policy.misfire {
            Misfire::Skip => {}
            Misfire::RunAll => problems.push(format!(
                "instant {t} was recorded missed {:.1} s after it, inside the run_all window of {} s, which runs it: {}",
                age.as_seconds_f64(),
                policy.misfire_window.num_seconds(),
                brief(o)
            )),
            Misfire::RunOnce => {
                let next = list[i + 1..]
                    .iter()
                    .map(|(_, o)| o.first())
                    .find(|e| e.status != "missed");
                if next.is_none_or(|e| e.trigger != "catchup") {
                    problems.push(format!(
                        "instant {t} was recorded missed inside the run_once window, and the next instant not missed is not its catch-up: {}",
                        next.map_or("none".to_string(), Exec::brief)
                    ));
                }
            }
        }
    }
    fail_with(
        &format!(
            "the policy ({:?}, window {} s, max_attempts {}) of {}",
            policy.misfire,
            policy.misfire_window.num_seconds(),
            policy.max_attempts,
            list.first().map_or("?", |(_, o)| o.first().job.as_str())
        ),
        &problems,
    )
}

/// The statuses of `records` counted, final ones only.
pub fn count_statuses(records: &[Exec]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in records.iter().filter(|e| is_final(&e.status)) {
        *counts.entry(e.status.clone()).or_default() += 1;
    }
    counts
}

/// A job's `status.outcomeCounts` (from `job get -o json`), as numbers.
pub fn outcome_counts(job: &Value) -> BTreeMap<String, u64> {
    job.get("status")
        .and_then(|s| s.get("outcomeCounts"))
        .filter(|m| m.is_object())
        .map(|m| {
            m.as_object()
                .expect("checked")
                .keys()
                .map(|k| (k.clone(), num(m, k)))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that a job's `status.outcomeCounts` equal the final statuses of its
/// records. Only meaningful while the job has pruned nothing (`history.keep` above
/// the number of records).
pub fn check_counts(job: &Value, records: &[Exec]) -> Result<()> {
    let counted = count_statuses(records);
    let reported = outcome_counts(job);
    if counted != reported {
        bail!(
            "job {}: status.outcomeCounts {reported:?} differ from the records' statuses {counted:?}",
            field(job, "name")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(id: u64, at: &str, attempt: u64, trigger: &str, status: &str, prev: u64) -> Exec {
        Exec::parse(&json!({
            "id": id.to_string(),
            "job": "j",
            "scheduledAt": at,
            "attempt": attempt,
            "trigger": trigger,
            "status": status,
            "previousAttempt": if prev == 0 { String::new() } else { prev.to_string() },
        }))
        .unwrap()
    }

    fn window(first: &str, last: &str) -> Window {
        Window {
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
            period: TimeDelta::seconds(1),
        }
    }

    #[test]
    fn a_clean_history_passes_and_a_retry_chain_is_followed() {
        let records = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "succeeded", 0),
            exec(2, "2026-01-01T00:00:01Z", 1, "schedule", "lost", 0),
            exec(3, "2026-01-01T00:00:02Z", 1, "catchup", "missed", 0),
            exec(4, "2026-01-01T00:00:01Z", 2, "retry", "succeeded", 2),
            exec(5, "2026-01-01T00:00:03Z", 1, "manual", "succeeded", 0),
        ];
        let w = window("2026-01-01T00:00:00Z", "2026-01-01T00:00:02Z");
        let outcomes = check_instants(&records, &w).unwrap();
        assert_eq!(outcomes.len(), 3);
        let t1: DateTime<Utc> = "2026-01-01T00:00:01Z".parse().unwrap();
        assert_eq!(outcomes[&t1].status(), "succeeded");
        let runs = vec![
            Ran::parse("2026-01-01T00:00:00Z 1 1").unwrap(),
            Ran::parse("2026-01-01T00:00:01Z 2 4").unwrap(),
        ];
        check_runs(&records, &runs).unwrap();
    }

    #[test]
    fn a_missing_instant_a_double_and_a_stray_retry_are_all_reported() {
        let records = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "succeeded", 0),
            exec(2, "2026-01-01T00:00:00Z", 1, "catchup", "succeeded", 0),
            exec(3, "2026-01-01T00:00:02Z", 1, "schedule", "succeeded", 0),
            exec(4, "2026-01-01T00:00:02Z", 2, "retry", "succeeded", 3),
            exec(5, "2026-01-01T00:00:03Z", 1, "schedule", "running", 0),
        ];
        let w = window("2026-01-01T00:00:00Z", "2026-01-01T00:00:03Z");
        let err = check_instants(&records, &w).unwrap_err().to_string();
        assert!(err.contains("00:00:01 UTC has no record"), "{err}");
        assert!(err.contains("has 2 first attempts"), "{err}");
        assert!(
            err.contains("follows an attempt that ended \"succeeded\""),
            "{err}"
        );
        assert!(err.contains("no final outcome"), "{err}");
    }

    #[test]
    fn a_double_run_and_a_run_of_a_skipped_instant_are_reported() {
        let records = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "succeeded", 0),
            exec(
                2,
                "2026-01-01T00:00:01Z",
                1,
                "schedule",
                "skipped_paused",
                0,
            ),
            exec(3, "2026-01-01T00:00:02Z", 1, "schedule", "succeeded", 0),
        ];
        let runs = vec![
            Ran::parse("2026-01-01T00:00:00Z 1 1").unwrap(),
            Ran::parse("2026-01-01T00:00:00Z 1 1").unwrap(),
            Ran::parse("2026-01-01T00:00:01Z 1 2").unwrap(),
        ];
        let err = check_runs(&records, &runs).unwrap_err().to_string();
        assert!(err.contains("ran 2 times"), "{err}");
        assert!(err.contains("skipped_paused"), "{err}");
        assert!(err.contains("#3") && err.contains("left no line"), "{err}");
    }

    /// A missed first attempt at `at`, recorded (finishedAt) at `recorded`.
    fn missed(id: u64, at: &str, recorded: &str) -> Exec {
        Exec::parse(&json!({
            "id": id.to_string(),
            "job": "j",
            "scheduledAt": at,
            "attempt": 1,
            "trigger": "schedule",
            "status": "missed",
            "finishedAt": recorded,
        }))
        .unwrap()
    }

    fn policy(misfire: Misfire, max_attempts: u64) -> Policy {
        Policy {
            misfire,
            misfire_window: TimeDelta::minutes(5),
            max_attempts,
        }
    }

    fn outcomes_of(records: &[Exec], last: &str) -> BTreeMap<DateTime<Utc>, Outcome> {
        check_instants(records, &window("2026-01-01T00:00:00Z", last)).unwrap()
    }

    #[test]
    fn a_dropped_retry_and_an_attempt_too_many_break_the_policy() {
        let records = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "lost", 0),
            exec(2, "2026-01-01T00:00:01Z", 1, "schedule", "failed", 0),
            exec(3, "2026-01-01T00:00:01Z", 2, "retry", "failed", 2),
            exec(4, "2026-01-01T00:00:02Z", 1, "schedule", "timed_out", 0),
            exec(5, "2026-01-01T00:00:02Z", 2, "retry", "succeeded", 4),
        ];
        let outcomes = outcomes_of(&records, "2026-01-01T00:00:02Z");
        // Three attempts allowed: the lost attempt 1 and the failed attempt 2 each
        // had one left.
        let err = check_policy(&outcomes, &policy(Misfire::RunAll, 3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(
            err.contains("attempt 1 ended lost with 2 attempt(s) left"),
            "{err}"
        );
        assert!(
            err.contains("attempt 2 ended failed with 1 attempt(s) left"),
            "{err}"
        );
        // Two allowed: only the lost attempt 1 had one left.
        let err = check_policy(&outcomes, &policy(Misfire::RunAll, 2))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 problem(s)") && err.contains("ended lost"),
            "{err}"
        );
        // One allowed: every retry is one too many.
        let err = check_policy(&outcomes, &policy(Misfire::RunAll, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has 2 attempts, the policy allows 1"), "{err}");
        assert!(!err.contains("never retried"), "{err}");
    }

    #[test]
    fn missed_inside_the_window_breaks_run_all_and_run_once_without_its_catchup() {
        let outage = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "succeeded", 0),
            missed(2, "2026-01-01T00:00:01Z", "2026-01-01T00:00:05Z"),
            missed(3, "2026-01-01T00:00:02Z", "2026-01-01T00:00:05Z"),
            exec(4, "2026-01-01T00:00:03Z", 1, "catchup", "succeeded", 0),
            exec(5, "2026-01-01T00:00:04Z", 1, "schedule", "succeeded", 0),
        ];
        let outcomes = outcomes_of(&outage, "2026-01-01T00:00:04Z");
        let err = check_policy(&outcomes, &policy(Misfire::RunAll, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(
            err.contains("instant 2026-01-01 00:00:01 UTC was recorded missed 4.0 s after it, inside the run_all window"),
            "{err}"
        );
        check_policy(&outcomes, &policy(Misfire::RunOnce, 1)).unwrap();
        let err = check_policy(&outcomes, &policy(Misfire::Skip, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ran as a catch-up under misfire policy skip"),
            "{err}"
        );

        // run_once without the catch-up: the newest missed instant did not run.
        let mut no_catchup = outage.clone();
        no_catchup[3] = missed(4, "2026-01-01T00:00:03Z", "2026-01-01T00:00:05Z");
        let outcomes = outcomes_of(&no_catchup, "2026-01-01T00:00:04Z");
        let err = check_policy(&outcomes, &policy(Misfire::RunOnce, 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not its catch-up"), "{err}");
        check_policy(&outcomes, &policy(Misfire::Skip, 1)).unwrap();
    }

    #[test]
    fn missed_older_than_the_window_passes_every_policy() {
        let records = vec![
            missed(1, "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"),
            exec(2, "2026-01-01T00:00:01Z", 1, "schedule", "succeeded", 0),
        ];
        let outcomes = outcomes_of(&records, "2026-01-01T00:00:01Z");
        for misfire in [Misfire::Skip, Misfire::RunOnce, Misfire::RunAll] {
            check_policy(&outcomes, &policy(misfire, 1)).unwrap();
        }
    }

    #[test]
    fn outcome_counts_accept_strings_and_numbers() {
        let job = json!({"name": "j", "status": {"outcomeCounts": {"succeeded": "2", "lost": 1}}});
        let records = vec![
            exec(1, "2026-01-01T00:00:00Z", 1, "schedule", "succeeded", 0),
            exec(2, "2026-01-01T00:00:01Z", 1, "schedule", "succeeded", 0),
            exec(3, "2026-01-01T00:00:02Z", 1, "schedule", "lost", 0),
            exec(4, "2026-01-01T00:00:03Z", 1, "schedule", "running", 0),
        ];
        check_counts(&job, &records).unwrap();
    }
}
