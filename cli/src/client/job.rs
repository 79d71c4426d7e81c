//! `kairos job ...`: jobs as documents, and the handles on them.
//!
//! - `apply -f FILE` upserts each job in the file with `PutJob`, in file order, and
//!   stops at the first refusal. Table mode prints `job/NAME created|updated|unchanged`
//!   as each one lands; JSON/YAML mode prints the `PutJobResponse` (a list of them
//!   when the file had several jobs). The error line says which jobs were applied
//!   before the failure and which were not tried, so a partial apply is never a
//!   surprise. The file is read and checked completely before the first call, and
//!   two jobs with the same name in one file are refused.
//! - `diff -f FILE` shows what `apply` would change; see [`super::job_diff`].
//! - `list [--filter SELECTOR]` follows `next_page_token` to the end and prints one
//!   merged `ListJobsResponse` (empty token) in JSON/YAML mode; the server applies
//!   the metadata selector.
//! - `delete NAME [--cascade]` prints `job/NAME deleted` for every job the server
//!   deleted (with `--cascade`, the dependents too), the named one first.
//! - `run --wait` polls the execution (see [`super::exec::wait`]) and exits non-zero
//!   unless it, or one of its retries, succeeded.
//! - `preview` shows each instant in UTC and in the job's zone.
//! - `backfill NAME --from T --to T` checks that the range is not empty, then asks
//!   the server to run (or, with `--dry-run`, list) the instants in (from, to];
//!   table mode prints the count and the first [`BACKFILL_LISTED`] instants in UTC.
//!
//! Not here: validation of job fields; the server owns it and its
//! `InvalidArgument` messages are passed on untouched (`diff`, which must not
//! write, runs the same checks locally through `kairos_common::job::normalize`).

use anyhow::bail;
use chrono::{DateTime, Utc};
use kairos_proto::v1 as pb;

use kairos_client::documents;

use super::{Client, exec, job_diff};
use crate::args::JobCommand;
use crate::output::{self, Fields, OutputFormat, Table};

/// Instants `job backfill` lists in table mode; the rest are counted.
const BACKFILL_LISTED: usize = 50;

pub async fn run(client: &Client, command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Apply { file } => apply(client, &file).await,
        JobCommand::Diff { file } => job_diff::run(client, &file).await,
        JobCommand::Get { name } => {
            let job = client.api().get_job(&name).await?;
            output::emit(client.output(), &job, |job| job_detail(job, Utc::now()))
        }
        JobCommand::List { filter } => {
            let jobs = client.api().list_jobs(&filter.unwrap_or_default()).await?;
            let list = pb::ListJobsResponse {
                jobs,
                next_page_token: String::new(),
            };
            output::emit(client.output(), &list, |list| jobs_table(&list.jobs))
        }
        JobCommand::Delete { name, cascade } => {
            let response = client.api().delete_job(&name, cascade).await.map_err(|e| {
                let refused = e.code() == Some(tonic::Code::FailedPrecondition) && !cascade;
                let err = anyhow::Error::new(e);
                if refused {
                    // The usual reason: the job has dependents.
                    err.context(format!(
                        "job/{name} not deleted (--cascade deletes its dependents too)"
                    ))
                } else {
                    err
                }
            })?;
            output::emit(client.output(), &response, |response| {
                deleted_text(&name, response)
            })
        }
        JobCommand::Backfill {
            name,
            from,
            to,
            dry_run,
            parallel,
            rate,
        } => {
            let request = backfill_request(name, from, to, dry_run, parallel, rate)?;
            let response = client.api().backfill(request).await?;
            output::emit(client.output(), &response, |response| {
                backfill_text(response, dry_run)
            })
        }
        JobCommand::Run {
            name,
            wait,
            timeout,
        } => {
            let response = client.api().run_job(&name).await.map_err(|e| {
                let ambiguous = matches!(e, kairos_client::Error::Ambiguous { .. });
                let err = anyhow::Error::new(e);
                if ambiguous {
                    // Never run it again blindly: it may be running already.
                    err.context(format!(
                        "job/{name} may have started (see `kairos exec list --job {name}` before running it again)"
                    ))
                } else {
                    err
                }
            })?;
            if response.queued {
                // Concurrency `queue`: the run starts when the current one ends.
                return output::emit(client.output(), &response, |_| {
                    format!("job/{name}: queued behind the running execution\n")
                });
            }
            let Some(execution) = response.execution.clone() else {
                bail!("the scheduler started job/{name} but returned no execution");
            };
            if !wait {
                return output::emit(client.output(), &response, |_| {
                    format!(
                        "job/{name}: execution {} {}\n",
                        execution.id,
                        output::or_none(&execution.status)
                    )
                });
            }
            let finished = exec::wait(client, execution, timeout).await?;
            output::emit(client.output(), &finished, |e| {
                exec::execution_detail(e, Utc::now())
            })?;
            exec::require_success(&finished)
        }
        JobCommand::Pause { name, reason } => {
            let job = client
                .api()
                .pause_job(&name, &reason.unwrap_or_default())
                .await?;
            output::emit(client.output(), &job, |_| format!("job/{name} paused\n"))
        }
        JobCommand::Resume { name } => {
            let job = client.api().resume_job(&name).await?;
            output::emit(client.output(), &job, |job| {
                let next = job.status.as_ref().and_then(|s| s.next_fire_at.as_ref());
                match next {
                    Some(at) => {
                        format!("job/{name} resumed; next fire {}\n", output::utc(Some(at)))
                    }
                    None => format!("job/{name} resumed\n"),
                }
            })
        }
        JobCommand::Preview {
            name,
            file,
            from,
            to,
            limit,
        } => {
            let subject = match (name, file) {
                (Some(name), None) => pb::preview_schedule_request::Subject::Name(name),
                (None, Some(file)) => {
                    pb::preview_schedule_request::Subject::Job(single_job(&file).await?)
                }
                _ => bail!("give either a job name or -f FILE"),
            };
            let response = client
                .api()
                .preview_schedule(pb::PreviewScheduleRequest {
                    subject: Some(subject),
                    from: from.map(output::timestamp),
                    to: to.map(output::timestamp),
                    limit: limit.unwrap_or_default(),
                })
                .await?;
            output::emit(client.output(), &response, preview_table)
        }
    }
}

/// `job apply`: every job in the file, in order, stopping at the first refusal.
async fn apply(client: &Client, file: &str) -> anyhow::Result<()> {
    let (source, docs) = documents::load(file).await?;
    documents::check(&source, &docs)?;

    let table = client.output() == OutputFormat::Table;
    let mut printed: anyhow::Result<()> = Ok(());
    let applied = client
        .api()
        .apply(&docs, |doc, response| {
            if table && printed.is_ok() {
                let verb = if response.result.is_empty() {
                    "applied"
                } else {
                    response.result.as_str()
                };
                printed = output::print(&format!("job/{} {verb}\n", doc.job.name));
            }
        })
        .await;
    printed?;
    let responses = applied.responses;
    if let Some((index, error)) = applied.refused {
        if !table && docs.len() > 1 {
            print_responses(client.output(), &responses)?;
        }
        let doc = &docs[index];
        let applied = job_list(docs[..index].iter().map(|d| &d.job.name));
        let not_tried = job_list(docs[index + 1..].iter().map(|d| &d.job.name));
        return Err(anyhow::Error::new(error).context(format!(
            "job/{} ({}) was refused (applied before it: {applied}; not tried: {not_tried})",
            doc.job.name, doc.origin
        )));
    }
    if !table {
        if let [only] = responses.as_slice() {
            output::emit(client.output(), only, |_| String::new())?;
        } else {
            print_responses(client.output(), &responses)?;
        }
    }
    Ok(())
}

fn print_responses(format: OutputFormat, responses: &[pb::PutJobResponse]) -> anyhow::Result<()> {
    output::emit(format, &responses, |_| String::new())
}

/// `job/a, job/b`, or `none`.
pub(super) fn job_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("job/{n}")).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The one job in a file (for `preview -f`).
async fn single_job(file: &str) -> anyhow::Result<pb::Job> {
    let (source, mut docs) = documents::load(file).await?;
    match docs.len() {
        1 => Ok(docs.remove(0).job),
        0 => bail!("{source}: no job found"),
        n => bail!("{source}: holds {n} jobs; preview takes one"),
    }
}

/// `job delete` in table mode: one line per deleted job, the named one first.
fn deleted_text(name: &str, response: &pb::DeleteJobResponse) -> String {
    if response.deleted.is_empty() {
        // A scheduler that does not list what it deleted deleted the one job.
        return format!("job/{name} deleted\n");
    }
    response
        .deleted
        .iter()
        .map(|job| format!("job/{job} deleted\n"))
        .collect()
}

/// The `Backfill` request for `job backfill`, after the checks the flags cannot make
/// alone.
fn backfill_request(
    name: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
    parallel: Option<u32>,
    rate: Option<f64>,
) -> anyhow::Result<pb::BackfillRequest> {
    if to <= from {
        bail!(
            "--to ({}) must be after --from ({}): a backfill runs the instants after --from, up to and including --to",
            output::format_utc(to),
            output::format_utc(from)
        );
    }
    if parallel == Some(0) {
        bail!("--parallel must be at least 1");
    }
    if let Some(rate) = rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a number above 0, not {rate}");
    }
    Ok(pb::BackfillRequest {
        name,
        from: Some(output::timestamp(from)),
        to: Some(output::timestamp(to)),
        dry_run,
        // 0 asks for the server's defaults (one at a time, one start per second).
        parallel: parallel.unwrap_or(0),
        rate: rate.unwrap_or(0.0),
    })
}

/// `job backfill` in table mode: the count, then the instants (at most
/// [`BACKFILL_LISTED`] of them).
fn backfill_text(response: &pb::BackfillResponse, dry_run: bool) -> String {
    let count = response.instants.len();
    let instants = if count == 1 { "instant" } else { "instants" };
    let mut text = if dry_run {
        format!("would run {count} {instants}")
    } else {
        format!(
            "backfill {} started: {count} {instants}",
            output::or_none(&response.id)
        )
    };
    if count == 0 {
        text.push('\n');
        return text;
    }
    text.push_str(":\n");
    for instant in response.instants.iter().take(BACKFILL_LISTED) {
        text.push_str(&format!("  {}\n", output::utc(Some(instant))));
    }
    if count > BACKFILL_LISTED {
        text.push_str(&format!("  … and {} more\n", count - BACKFILL_LISTED));
    }
    text
}

/// `job list` as a table.
pub fn jobs_table(jobs: &[pb::Job]) -> String {
    let mut table = Table::new(&[
        "NAME",
        "SCHEDULE",
        "TZ",
        "PAUSED",
        "NEXT FIRE",
        "LAST OUTCOME",
    ]);
    for job in jobs {
        let status = job.status.as_ref();
        table.row(vec![
            job.name.clone(),
            output::or_none(&job.schedule),
            zone(&job.timezone).to_string(),
            yes_no(job.paused).to_string(),
            output::utc(status.and_then(|s| s.next_fire_at.as_ref())),
            output::or_none(status.map_or("", |s| s.last_outcome.as_str())),
        ]);
    }
    table.render()
}

/// `job get` as `Label: value` lines.
pub fn job_detail(job: &pb::Job, now: chrono::DateTime<Utc>) -> String {
    let mut fields = Fields::new();
    fields
        .add("Name", job.name.as_str())
        .add_nonempty("Description", job.description.as_str())
        .add("Schedule", output::or_none(&job.schedule))
        .add("Timezone", zone(&job.timezone));
    if job.starts_at.is_some() {
        fields.add("Starts", output::utc(job.starts_at.as_ref()));
    }
    if job.expires_at.is_some() {
        fields.add("Expires", output::utc(job.expires_at.as_ref()));
    }
    fields
        .add("Action", action(job))
        .add("Target", target(job.target.as_ref()));
    fields
        .add_nonempty("Timeout", job.timeout.as_str())
        .add_nonempty("Retry", retry(job.retry.as_ref()))
        .add_nonempty("Concurrency", job.concurrency.as_str())
        .add_nonempty("Misfire", misfire(job.misfire.as_ref()));
    if !job.parent.is_empty() {
        let on = if job.parent_on.is_empty() {
            "success"
        } else {
            job.parent_on.as_str()
        };
        fields.add("Parent", format!("{} (on {on})", job.parent));
    }
    if job.ephemeral {
        fields.add("Ephemeral", "yes (deleted after its first success)");
    }
    if !job.notify.is_empty() {
        fields.add("Webhooks", job.notify.len().to_string());
    }
    if !job.metadata.is_empty() {
        fields.add("Metadata", output::pairs(&job.metadata));
    }
    if let Some(keep) = job.history.as_ref().map(|h| h.keep).filter(|k| *k > 0) {
        fields.add("History", format!("keep {keep}"));
    }
    let status = job.status.as_ref();
    let paused = match status.map(|s| s.paused_reason.as_str()) {
        Some(reason) if job.paused && !reason.is_empty() => format!("yes ({reason})"),
        _ => yes_no(job.paused).to_string(),
    };
    fields
        .add("Paused", paused)
        .add("Version", job.version.to_string())
        .add("Created", output::utc(job.created_at.as_ref()))
        .add("Updated", output::utc(job.updated_at.as_ref()));
    if let Some(status) = status {
        let next = status.next_fire_at.as_ref();
        let next = match next {
            Some(at) => format!(
                "{} ({})",
                output::utc(Some(at)),
                output::relative(Some(at), now)
            ),
            None => output::NONE.to_string(),
        };
        fields.add("Next fire", next).add(
            "Last scheduled",
            output::utc(status.last_scheduled_at.as_ref()),
        );
        let last = if status.last_outcome.is_empty() {
            output::NONE.to_string()
        } else {
            format!(
                "{} at {}",
                status.last_outcome,
                output::utc(status.last_finished_at.as_ref())
            )
        };
        fields
            .add("Last outcome", last)
            .add("Running", status.running.to_string());
        if status.queued_at.is_some() {
            fields.add("Queued at", output::utc(status.queued_at.as_ref()));
        }
        if status.pending_retries > 0 {
            fields.add("Pending retries", status.pending_retries.to_string());
        }
        if status.backfills > 0 {
            fields.add("Backfills", format!("{} running", status.backfills));
        }
        if !status.outcome_counts.is_empty() {
            let mut counts: Vec<(&String, &u64)> = status.outcome_counts.iter().collect();
            counts.sort();
            let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            fields.add("Outcomes", counts.join(", "));
        }
    }
    fields.render()
}

/// `job preview` as a table: each instant in UTC and in the schedule's zone.
fn preview_table(response: &pb::PreviewScheduleResponse) -> String {
    let zone_name = zone(&response.timezone).to_string();
    let mut table = Table::new(&["UTC", &zone_name]);
    for instant in &response.instants {
        let utc = output::utc(Some(instant));
        let local = output::instant(instant)
            .and_then(|t| output::in_zone(t, &zone_name))
            .unwrap_or_else(|| output::NONE.to_string());
        table.row(vec![utc, local]);
    }
    table.render()
}

fn zone(timezone: &str) -> &str {
    if timezone.is_empty() { "UTC" } else { timezone }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn action(job: &pb::Job) -> String {
    match &job.action {
        Some(pb::job::Action::Shell(shell)) => {
            let mut text = format!("shell: {}", shell.command);
            if !shell.cwd.is_empty() {
                text.push_str(&format!(" (in {})", shell.cwd));
            }
            if !shell.env.is_empty() {
                text.push_str(&format!(" [env {}]", output::pairs(&shell.env)));
            }
            text
        }
        Some(pb::job::Action::Http(http)) => {
            let method = if http.method.is_empty() {
                "GET"
            } else {
                http.method.as_str()
            };
            format!("http: {method} {}", http.url)
        }
        None => output::NONE.to_string(),
    }
}

fn target(target: Option<&pb::Target>) -> String {
    let Some(target) = target else {
        return "any executor (count 1)".to_string();
    };
    let selector = if target.selector.is_empty() {
        "any executor"
    } else {
        target.selector.as_str()
    };
    let count = match target.count {
        None => "count 1".to_string(),
        Some(0) => "every match".to_string(),
        Some(n) => format!("count {n}"),
    };
    let mut details = vec![count];
    if !target.strategy.is_empty() {
        details.push(target.strategy.clone());
    }
    if !target.wait.is_empty() {
        details.push(format!("wait {}", target.wait));
    }
    format!("{selector} ({})", details.join(", "))
}

fn retry(retry: Option<&pb::RetryPolicy>) -> String {
    let Some(retry) = retry.filter(|r| r.max_attempts > 1) else {
        return String::new();
    };
    let mut text = format!("{} attempts", retry.max_attempts);
    if !retry.backoff.is_empty() {
        text.push_str(&format!(", backoff {}", retry.backoff));
    }
    if !retry.max_backoff.is_empty() {
        text.push_str(&format!(", at most {}", retry.max_backoff));
    }
    text
}

fn misfire(misfire: Option<&pb::Misfire>) -> String {
    let Some(misfire) = misfire else {
        return String::new();
    };
    match (misfire.policy.as_str(), misfire.window.as_str()) {
        ("", "") => String::new(),
        (policy, "") => policy.to_string(),
        ("", window) => format!("window {window}"),
        (policy, window) => format!("{policy}, window {window}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> anyhow::Result<kairos_proto::Timestamp> {
        Ok(output::timestamp(
            chrono::DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc),
        ))
    }

    #[test]
    fn job_list_table() -> anyhow::Result<()> {
        let jobs = vec![
            pb::Job {
                name: "nightly-report".into(),
                schedule: "0 30 2 * * *".into(),
                timezone: "Europe/Berlin".into(),
                status: Some(pb::JobStatus {
                    next_fire_at: Some(ts("2026-11-29T01:30:00Z")?),
                    last_outcome: "succeeded".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            pb::Job {
                name: "adhoc".into(),
                schedule: "@manual".into(),
                paused: true,
                ..Default::default()
            },
        ];
        let text = jobs_table(&jobs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[0].contains("NEXT FIRE") && lines[0].ends_with("LAST OUTCOME"));
        assert!(lines[1].contains("Europe/Berlin") && lines[1].contains("2026-11-29T01:30:00Z"));
        assert!(lines[1].ends_with("succeeded"));
        assert!(
            lines[2].contains("UTC") && lines[2].contains("yes"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn preview_shows_utc_and_the_zone() -> anyhow::Result<()> {
        let response = pb::PreviewScheduleResponse {
            instants: vec![ts("2026-03-29T01:00:00Z")?],
            timezone: "Europe/Berlin".into(),
        };
        let text = preview_table(&response);
        assert_eq!(
            text,
            "UTC                    Europe/Berlin\n\
             2026-03-29T01:00:00Z   2026-03-29T03:00:00+02:00 CEST\n"
        );
        Ok(())
    }

    fn at(s: &str) -> anyhow::Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
    }

    #[test]
    fn a_backfill_range_must_not_be_empty() -> anyhow::Result<()> {
        let from = at("2026-03-08T00:00:00Z")?;
        for to in [at("2026-03-01T00:00:00Z")?, from] {
            let err = backfill_request("nightly".into(), from, to, false, None, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with(&format!(
                    "--to ({}) must be after --from (2026-03-08T00:00:00Z)",
                    output::format_utc(to)
                )),
                "{err}"
            );
        }
        let request = backfill_request(
            "nightly".into(),
            from,
            at("2026-03-09T00:00:00Z")?,
            true,
            Some(3),
            Some(2.5),
        )?;
        assert_eq!(request.from, Some(ts("2026-03-08T00:00:00Z")?));
        assert_eq!(request.to, Some(ts("2026-03-09T00:00:00Z")?));
        assert!(request.dry_run);
        assert_eq!((request.parallel, request.rate), (3, 2.5));
        let defaults = backfill_request(
            "nightly".into(),
            from,
            at("2026-03-09T00:00:00Z")?,
            false,
            None,
            None,
        )?;
        assert_eq!(
            (defaults.parallel, defaults.rate),
            (0, 0.0),
            "the server's defaults"
        );
        assert!(
            backfill_request(
                "n".into(),
                from,
                at("2026-03-09T00:00:00Z")?,
                false,
                Some(0),
                None
            )
            .is_err()
        );
        assert!(
            backfill_request(
                "n".into(),
                from,
                at("2026-03-09T00:00:00Z")?,
                false,
                None,
                Some(f64::NAN)
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn backfill_lists_the_instants() -> anyhow::Result<()> {
        let response = pb::BackfillResponse {
            instants: vec![
                ts("2026-03-01T02:30:00Z")?,
                ts("2026-03-02T02:30:00Z")?,
                ts("2026-03-03T02:30:00Z")?,
            ],
            id: String::new(),
        };
        assert_eq!(
            backfill_text(&response, true),
            "would run 3 instants:\n  2026-03-01T02:30:00Z\n  2026-03-02T02:30:00Z\n  2026-03-03T02:30:00Z\n"
        );
        let started = pb::BackfillResponse {
            instants: vec![ts("2026-03-01T02:30:00Z")?],
            id: "bf-17".into(),
        };
        assert_eq!(
            backfill_text(&started, false),
            "backfill bf-17 started: 1 instant:\n  2026-03-01T02:30:00Z\n"
        );
        let empty = pb::BackfillResponse::default();
        assert_eq!(backfill_text(&empty, true), "would run 0 instants\n");
        Ok(())
    }

    #[test]
    fn a_long_backfill_list_is_cut() -> anyhow::Result<()> {
        let start = at("2026-01-01T00:00:00Z")?;
        let response = pb::BackfillResponse {
            instants: (0..120)
                .map(|h| output::timestamp(start + chrono::Duration::hours(h)))
                .collect(),
            id: "bf-2".into(),
        };
        let text = backfill_text(&response, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + BACKFILL_LISTED + 1, "{text}");
        assert_eq!(lines[0], "backfill bf-2 started: 120 instants:");
        assert_eq!(lines[1], "  2026-01-01T00:00:00Z");
        assert_eq!(lines[BACKFILL_LISTED], "  2026-01-03T01:00:00Z");
        assert_eq!(lines[BACKFILL_LISTED + 1], "  … and 70 more");
        Ok(())
    }

    #[test]
    fn delete_names_every_job_it_deleted() {
        let response = pb::DeleteJobResponse {
            deleted: vec!["extract".into(), "transform".into(), "load".into()],
        };
        assert_eq!(
            deleted_text("extract", &response),
            "job/extract deleted\njob/transform deleted\njob/load deleted\n"
        );
        assert_eq!(
            deleted_text("extract", &pb::DeleteJobResponse::default()),
            "job/extract deleted\n"
        );
    }

    #[test]
    fn job_detail_shows_lifetime_webhooks_and_pending_work() -> anyhow::Result<()> {
        let job = pb::Job {
            name: "load".into(),
            schedule: "@hourly".into(),
            parent: "transform".into(),
            parent_on: "always".into(),
            starts_at: Some(ts("2026-04-01T00:00:00Z")?),
            expires_at: Some(ts("2026-05-01T00:00:00Z")?),
            ephemeral: true,
            notify: vec![
                pb::Notify {
                    url: "https://a.example".into(),
                    ..Default::default()
                },
                pb::Notify {
                    url: "https://b.example".into(),
                    ..Default::default()
                },
            ],
            status: Some(pb::JobStatus {
                queued_at: Some(ts("2026-04-02T10:00:00Z")?),
                pending_retries: 2,
                backfills: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = job_detail(&job, Utc::now());
        for line in [
            "Starts:           2026-04-01T00:00:00Z",
            "Expires:          2026-05-01T00:00:00Z",
            "Parent:           transform (on always)",
            "Ephemeral:        yes (deleted after its first success)",
            "Webhooks:         2",
            "Queued at:        2026-04-02T10:00:00Z",
            "Pending retries:  2",
            "Backfills:        1 running",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        let plain = job_detail(
            &pb::Job {
                name: "a".into(),
                status: Some(pb::JobStatus::default()),
                ..Default::default()
            },
            Utc::now(),
        );
        for label in [
            "Starts:",
            "Expires:",
            "Ephemeral:",
            "Webhooks:",
            "Queued at:",
            "Pending retries:",
            "Backfills:",
        ] {
            assert!(!plain.contains(label), "{label} shown unset:\n{plain}");
        }
        Ok(())
    }

    #[test]
    fn job_detail_mentions_what_matters() {
        let job = pb::Job {
            name: "a".into(),
            schedule: "@every 10s".into(),
            action: Some(pb::job::Action::Shell(pb::ShellAction {
                command: "echo hi".into(),
                ..Default::default()
            })),
            retry: Some(pb::RetryPolicy {
                max_attempts: 3,
                backoff: "2s".into(),
                max_backoff: String::new(),
            }),
            paused: true,
            status: Some(pb::JobStatus {
                paused_reason: "maintenance".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = job_detail(&job, Utc::now());
        assert!(
            text.contains("Action:") && text.contains("shell: echo hi"),
            "{text}"
        );
        assert!(text.contains("3 attempts, backoff 2s"), "{text}");
        assert!(text.contains("yes (maintenance)"), "{text}");
        assert!(text.contains("Timezone:") && text.contains("UTC"), "{text}");
    }
}
