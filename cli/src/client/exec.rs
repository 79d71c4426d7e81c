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
//! [`wait`] is `kairos job run --wait`: [`kairos_client::Client::wait`] polls the
//! execution until it ends, following its retries, and this module says on stderr
//! when it moves on to the next attempt.

use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use kairos_client::WaitEvent;
pub use kairos_client::executions::is_final;
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;

use super::Client;
use crate::args::ExecCommand;
use crate::output::{self, Fields, OutputFormat, Table};

pub async fn run(client: &Client, command: ExecCommand) -> anyhow::Result<()> {
    match command {
        ExecCommand::List { job, limit } => {
            let list = client
                .api()
                .list_executions(&job.unwrap_or_default(), limit)
                .await?;
            output::emit(client.output(), &list, |list| {
                executions_table(&list.executions, Utc::now())
            })
        }
        ExecCommand::Get { id } => {
            let execution = client.api().get_execution(&id).await?;
            output::emit(client.output(), &execution, |e| {
                execution_detail(e, Utc::now())
            })
        }
        ExecCommand::Logs { id, follow } => logs(client, id, follow).await,
        ExecCommand::Cancel { id } => {
            let execution = client.api().cancel_execution(&id).await?;
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

/// `exec logs`: the chunks as they arrive (the stored output from a scheduler
/// without `TailOutput`).
async fn logs(client: &Client, id: String, follow: bool) -> anyhow::Result<()> {
    let mut output = client.api().tail_output(&id, follow).await?;
    while let Some(chunk) = output.next().await? {
        print_chunk(client.output(), chunk)?;
    }
    Ok(())
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

/// Waits for `execution` to end, following its retries, for at most `timeout`;
/// says on stderr when it moves on to the next attempt.
pub async fn wait(
    client: &Client,
    execution: pb::Execution,
    timeout: Duration,
) -> anyhow::Result<pb::Execution> {
    let finished = client
        .api()
        .wait(execution, timeout, |event| match event {
            WaitEvent::Retrying {
                execution,
                max_attempts,
            } => eprintln!(
                "execution {} (attempt {}) {}; waiting for attempt {} of {max_attempts}",
                execution.id,
                execution.attempt,
                execution.status,
                execution.attempt + 1
            ),
        })
        .await?;
    Ok(finished)
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
}
