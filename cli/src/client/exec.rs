//! `kairos exec ...`: the history of runs, their output, and stopping them.
//!
//! - `list [--job NAME] [--limit N]` pages through `ListExecutions` (newest first)
//!   until it has N executions or the history ends; `--limit 0` means all. JSON/YAML
//!   mode prints one merged `ListExecutionsResponse` whose `nextPageToken` is the
//!   last page's: empty when the history was read to the end.
//! - `get ID` prints the fields, then the stored output.
//! - `logs ID [--follow]` prints output chunks as they arrive (`TailOutput`); in JSON
//!   mode one `OutputChunk` object per line, in YAML mode one document per chunk. A
//!   scheduler that does not implement `TailOutput` gets the output stored with the
//!   execution instead (with `--follow`, once the execution has ended).
//! - `cancel ID` prints the execution as the scheduler returned it; cancelling is
//!   asynchronous, so it may still say `running`.
//!
//! [`wait`] is the engine of `kairos job run --wait`: it polls `GetExecution` every
//! [`POLL_INTERVAL`] until the status is final, and when a failed, timed-out or lost
//! attempt has retries left under the job's policy it follows the next attempt of
//! the same scheduled instant, so "did my run succeed?" gets the final answer.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Client, unary};
use crate::args::ExecCommand;
use crate::output::{self, Fields, OutputFormat, Table};

/// Time between two polls while waiting for a run.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The most executions asked for in one page (the server's cap).
const MAX_PAGE_SIZE: u32 = 1000;

/// Executions looked at when searching for the next attempt of a run.
const RETRY_SEARCH_PAGE_SIZE: u32 = 100;

pub async fn run(client: &Client, command: ExecCommand) -> anyhow::Result<()> {
    match command {
        ExecCommand::List { job, limit } => {
            let list = list(client, job.unwrap_or_default(), limit).await?;
            output::emit(client.output(), &list, |list| {
                executions_table(&list.executions, Utc::now())
            })
        }
        ExecCommand::Get { id } => {
            let execution = get(client, &id).await?;
            output::emit(client.output(), &execution, |e| {
                execution_detail(e, Utc::now())
            })
        }
        ExecCommand::Logs { id, follow } => logs(client, id, follow).await,
        ExecCommand::Cancel { id } => {
            let execution = client
                .executions()
                .cancel_execution(unary(pb::CancelExecutionRequest { id }))
                .await?
                .into_inner();
            output::emit(client.output(), &execution, |e| {
                if is_final(&e.status) {
                    format!("execution {} {}\n", e.id, e.status)
                } else {
                    format!(
                        "execution {}: cancel requested (status {})\n",
                        e.id,
                        output::or_none(&e.status)
                    )
                }
            })
        }
    }
}

async fn get(client: &Client, id: &str) -> anyhow::Result<pb::Execution> {
    Ok(client
        .executions()
        .get_execution(unary(pb::GetExecutionRequest { id: id.to_string() }))
        .await?
        .into_inner())
}

/// Up to `limit` executions (0 = all), newest first, as one response.
async fn list(
    client: &Client,
    job: String,
    limit: u32,
) -> anyhow::Result<pb::ListExecutionsResponse> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut executions = client.executions();
    let mut all = pb::ListExecutionsResponse::default();
    let mut token = String::new();
    loop {
        let remaining = if limit == 0 {
            usize::MAX
        } else {
            limit.saturating_sub(all.executions.len())
        };
        let page_size = u32::try_from(remaining)
            .unwrap_or(u32::MAX)
            .min(MAX_PAGE_SIZE);
        let page = executions
            .list_executions(unary(pb::ListExecutionsRequest {
                job: job.clone(),
                page_size,
                page_token: token.clone(),
            }))
            .await?
            .into_inner();
        all.executions.extend(page.executions);
        all.next_page_token = page.next_page_token.clone();
        let enough = limit != 0 && all.executions.len() >= limit;
        if page.next_page_token.is_empty() || enough {
            break;
        }
        if page.next_page_token == token {
            bail!("the scheduler returned the same page token twice ({token:?})");
        }
        token = page.next_page_token;
    }
    if limit != 0 {
        all.executions.truncate(limit);
    }
    Ok(all)
}

async fn logs(client: &Client, id: String, follow: bool) -> anyhow::Result<()> {
    let mut request = tonic::Request::new(pb::TailOutputRequest {
        id: id.clone(),
        follow,
    });
    if !follow {
        request.set_timeout(super::REQUEST_TIMEOUT);
    }
    let mut stream = match client.executions().tail_output(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            return stored_output(client, &id, follow).await;
        }
        Err(status) => return Err(status.into()),
    };
    while let Some(chunk) = stream.message().await? {
        print_chunk(client.output(), chunk)?;
    }
    Ok(())
}

/// `exec logs` against a scheduler without `TailOutput`: the output stored with the
/// execution, once it has ended when following.
async fn stored_output(client: &Client, id: &str, follow: bool) -> anyhow::Result<()> {
    let mut execution = get(client, id).await?;
    if follow {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !is_final(&execution.status) {
            ticker.tick().await;
            execution = get(client, id).await?;
        }
    }
    if execution.output.is_empty() {
        return Ok(());
    }
    print_chunk(
        client.output(),
        pb::OutputChunk {
            data: execution.output,
        },
    )
}

/// One chunk: raw text for tables, one JSON line, or one YAML document.
fn print_chunk(format: OutputFormat, chunk: pb::OutputChunk) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Table => chunk.data,
        OutputFormat::Json => format!("{}\n", serde_json::to_string(&chunk)?),
        OutputFormat::Yaml => format!("---\n{}", output::to_yaml(&chunk)?),
    };
    output::print(&text)
}

/// Polls `execution` until it ends, following its retries, for at most `timeout`.
pub async fn wait(
    client: &Client,
    execution: pb::Execution,
    timeout: Duration,
) -> anyhow::Result<pb::Execution> {
    let deadline = Instant::now() + timeout;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut max_attempts: Option<u32> = None;
    let mut current = execution;
    loop {
        if is_final(&current.status) {
            if !retryable(&current.status) {
                return Ok(current);
            }
            let max = match max_attempts {
                Some(max) => max,
                None => {
                    let job = client
                        .jobs()
                        .get_job(unary(pb::GetJobRequest {
                            name: current.job.clone(),
                        }))
                        .await?
                        .into_inner();
                    let max = job.retry.map_or(1, |r| r.max_attempts.max(1));
                    max_attempts = Some(max);
                    max
                }
            };
            if current.attempt >= max {
                return Ok(current);
            }
            eprintln!(
                "execution {} (attempt {}) {}; waiting for attempt {} of {max}",
                current.id,
                current.attempt,
                current.status,
                current.attempt + 1
            );
            current = loop {
                if Instant::now() >= deadline {
                    return Err(still_running(&current, timeout));
                }
                ticker.tick().await;
                if let Some(next) = next_attempt(client, &current).await? {
                    break next;
                }
            };
            continue;
        }
        if Instant::now() >= deadline {
            return Err(still_running(&current, timeout));
        }
        ticker.tick().await;
        current = get(client, &current.id).await?;
    }
}

/// The attempt after `execution` for the same scheduled instant, once it exists.
async fn next_attempt(
    client: &Client,
    execution: &pb::Execution,
) -> anyhow::Result<Option<pb::Execution>> {
    let page = client
        .executions()
        .list_executions(unary(pb::ListExecutionsRequest {
            job: execution.job.clone(),
            page_size: RETRY_SEARCH_PAGE_SIZE,
            page_token: String::new(),
        }))
        .await?
        .into_inner();
    Ok(page
        .executions
        .into_iter()
        .find(|e| e.scheduled_at == execution.scheduled_at && e.attempt == execution.attempt + 1))
}

fn still_running(execution: &pb::Execution, timeout: Duration) -> anyhow::Error {
    anyhow!(
        "execution {} of job/{} is still {} after {}; it goes on (see `kairos exec get {}`)",
        execution.id,
        execution.job,
        output::or_none(&execution.status),
        kairos_common::duration::format_duration(timeout),
        execution.id
    )
}

/// Ok for a succeeded execution; otherwise an error saying how it ended.
pub fn require_success(execution: &pb::Execution) -> anyhow::Result<()> {
    if execution.status == ExecutionStatus::Succeeded.as_str() {
        return Ok(());
    }
    let mut reason = String::new();
    if !execution.error.is_empty() {
        reason.push_str(&format!(": {}", execution.error));
    }
    if let Some(code) = execution.exit_code {
        reason.push_str(&format!(" (exit code {code})"));
    }
    bail!(
        "execution {} of job/{} ended {}{reason}",
        execution.id,
        execution.job,
        output::or_none(&execution.status)
    )
}

/// Only `pending` and `running` are transient; a word this client does not know is
/// taken as final, since the contract adds outcomes, never transient states.
pub fn is_final(status: &str) -> bool {
    ExecutionStatus::from_str(status).map_or(true, ExecutionStatus::is_final)
}

/// Outcomes the retry policy acts on.
fn retryable(status: &str) -> bool {
    matches!(
        ExecutionStatus::from_str(status),
        Ok(ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Lost)
    )
}

/// How long a run took, or has been running; `None` before it started.
fn run_time(execution: &pb::Execution, now: DateTime<Utc>) -> Option<Duration> {
    let started = execution.started_at.as_ref()?;
    match execution.finished_at.as_ref() {
        Some(finished) => output::elapsed(Some(started), Some(finished)),
        None if !is_final(&execution.status) => {
            let now = output::timestamp(now);
            output::elapsed(Some(started), Some(&now))
        }
        None => None,
    }
}

/// `exec list` as a table.
pub fn executions_table(executions: &[pb::Execution], now: DateTime<Utc>) -> String {
    let mut table = Table::new(&[
        "ID",
        "JOB",
        "SCHEDULED",
        "ATTEMPT",
        "TRIGGER",
        "EXECUTOR",
        "STATUS",
        "DURATION",
    ]);
    for e in executions {
        table.row(vec![
            e.id.clone(),
            e.job.clone(),
            output::utc(e.scheduled_at.as_ref()),
            e.attempt.to_string(),
            output::or_none(&e.trigger),
            output::or_none(&e.executor),
            output::or_none(&e.status),
            run_time(e, now).map_or_else(|| output::NONE.to_string(), output::human_duration),
        ]);
    }
    table.render()
}

/// What the process reported after its lease had expired, said as such.
fn late_status(status: &str) -> String {
    if status.is_empty() {
        String::new()
    } else {
        format!("{status} (reported after the lease expired)")
    }
}

/// `exec get` (and `job run --wait`): the fields, then the output.
pub fn execution_detail(e: &pb::Execution, now: DateTime<Utc>) -> String {
    let mut fields = Fields::new();
    fields
        .add("ID", e.id.as_str())
        .add("Job", e.job.as_str())
        .add("Status", output::or_none(&e.status))
        .add_nonempty("Late status", late_status(&e.late_status))
        .add("Trigger", output::or_none(&e.trigger))
        .add("Attempt", e.attempt.to_string())
        .add_nonempty("Previous attempt", e.previous_attempt.as_str())
        .add_nonempty("Group", e.group.as_str())
        .add_nonempty("Parent execution", e.parent_execution.as_str())
        .add_nonempty("Backfill", e.backfill.as_str())
        .add("Scheduled", output::utc(e.scheduled_at.as_ref()))
        .add("Executor", output::or_none(&e.executor));
    if let Some(code) = e.exit_code {
        fields.add("Exit code", code.to_string());
    }
    fields
        .add_nonempty("Error", e.error.as_str())
        .add("Created", output::utc(e.created_at.as_ref()))
        .add("Started", output::utc(e.started_at.as_ref()))
        .add("Finished", output::utc(e.finished_at.as_ref()))
        .add(
            "Duration",
            run_time(e, now).map_or_else(|| output::NONE.to_string(), output::human_duration),
        );
    if e.term > 0 {
        fields.add("Term", e.term.to_string());
    }
    let mut text = fields.render();
    if e.output.is_empty() {
        text.push_str("\nOutput: none\n");
    } else {
        if e.output_truncated {
            text.push_str("\nOutput (truncated, the beginning was dropped):\n");
        } else {
            text.push_str("\nOutput:\n");
        }
        text.push_str(&e.output);
        if !e.output.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> anyhow::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
    }

    fn execution(
        status: &str,
        started: Option<&str>,
        finished: Option<&str>,
    ) -> anyhow::Result<pb::Execution> {
        Ok(pb::Execution {
            id: "42".into(),
            job: "nightly".into(),
            scheduled_at: Some(output::timestamp(at("2026-11-29T01:30:00Z")?)),
            attempt: 1,
            trigger: "schedule".into(),
            executor: "local".into(),
            status: status.into(),
            started_at: started.map(at).transpose()?.map(output::timestamp),
            finished_at: finished.map(at).transpose()?.map(output::timestamp),
            ..Default::default()
        })
    }

    #[test]
    fn durations_in_the_execution_table() -> anyhow::Result<()> {
        let now = at("2026-11-29T01:32:00Z")?;
        let executions = vec![
            execution(
                "succeeded",
                Some("2026-11-29T01:30:00Z"),
                Some("2026-11-29T01:30:01.250Z"),
            )?,
            execution("running", Some("2026-11-29T01:30:00Z"), None)?,
            execution("pending", None, None)?,
            execution(
                "succeeded",
                Some("2026-11-29T01:30:00Z"),
                Some("2026-11-29T01:30:00.040Z"),
            )?,
        ];
        let text = executions_table(&executions, now);
        let durations: Vec<&str> = text
            .lines()
            .map(|line| line.split_whitespace().last().unwrap_or_default())
            .collect();
        assert_eq!(durations, ["DURATION", "1.2s", "2m", "-", "40ms"], "{text}");
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("42 ") && l.contains("2026-11-29T01:30:00Z"))
        );
        Ok(())
    }

    #[test]
    fn detail_ends_with_the_output() -> anyhow::Result<()> {
        let mut e = execution(
            "failed",
            Some("2026-11-29T01:30:00Z"),
            Some("2026-11-29T01:31:30Z"),
        )?;
        e.exit_code = Some(3);
        e.error = "exit status 3".into();
        e.output = "line one\nline two".into();
        let text = execution_detail(&e, Utc::now());
        assert!(text.contains("Exit code:  3"), "{text}");
        assert!(text.contains("Duration:   1m30s"), "{text}");
        assert!(text.ends_with("\nOutput:\nline one\nline two\n"), "{text}");
        Ok(())
    }

    #[test]
    fn detail_shows_where_an_execution_came_from() -> anyhow::Result<()> {
        let mut e = execution(
            "lost",
            Some("2026-11-29T01:30:00Z"),
            Some("2026-11-29T01:31:00Z"),
        )?;
        e.late_status = "succeeded".into();
        e.previous_attempt = "41".into();
        e.group = "40".into();
        e.parent_execution = "39".into();
        e.backfill = "bf-3".into();
        let text = execution_detail(&e, Utc::now());
        for line in [
            "Late status:       succeeded (reported after the lease expired)",
            "Previous attempt:  41",
            "Group:             40",
            "Parent execution:  39",
            "Backfill:          bf-3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        let plain = execution_detail(&execution("succeeded", None, None)?, Utc::now());
        for label in [
            "Late status:",
            "Previous attempt:",
            "Group:",
            "Parent execution:",
            "Backfill:",
        ] {
            assert!(!plain.contains(label), "{label} shown unset:\n{plain}");
        }
        Ok(())
    }

    #[test]
    fn success_and_failure() -> anyhow::Result<()> {
        assert!(require_success(&execution("succeeded", None, None)?).is_ok());
        let mut failed = execution("failed", None, None)?;
        failed.exit_code = Some(2);
        let err = require_success(&failed)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "execution 42 of job/nightly ended failed (exit code 2)"
        );
        Ok(())
    }

    #[test]
    fn final_statuses() {
        assert!(!is_final("pending") && !is_final("running"));
        assert!(is_final("succeeded") && is_final("no_target") && is_final("some_future_outcome"));
        assert!(retryable("lost") && !retryable("cancelled") && !retryable("succeeded"));
    }
}
