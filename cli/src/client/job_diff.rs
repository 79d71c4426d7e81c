//! `kairos job diff -f FILE`: what `job apply` would change, changing nothing.
//!
//! The file is read and checked exactly as `apply` reads it (same parser, same
//! refusal of nameless and repeated jobs), then every job is validated and
//! normalized locally with [`kairos_common::job::normalize`], the function the
//! server applies before storing, so defaults are written out on both sides and a
//! job the server would refuse is reported, naming its document, before anything
//! is fetched. Each job is then read with `GetJob` and compared with the stored one,
//! whose output-only fields (`version`, `createdAt`, `updatedAt`, `status`) are
//! dropped first. "Unchanged" means the two documents are equal, the same test the
//! server makes before answering `unchanged` to `PutJob`.
//!
//! Table mode prints, per job in file order: `job/NAME unchanged`; `job/NAME would
//! be created` and the whole document with `+ ` before each line; or `job/NAME` and
//! a line diff of the two documents as YAML ([`kairos_common::line_diff`]). JSON/YAML mode
//! prints `{"jobs": [{"name", "result", "current", "desired"}]}` with `result` one of
//! `created | updated | unchanged` (the words `apply` would answer) and `current`
//! absent for a job that does not exist. A difference is not an error: the exit
//! code is 0 unless something failed.
//!
//! Documents are rendered as the YAML of their proto3 JSON form: top-level fields in
//! the proto's order (the action last), the keys of nested messages and maps sorted (a map's own
//! order is a hash map's, and would show changes that are not there).
//!
//! Not here: checks that need the other stored jobs (an unknown parent, a dependency
//! cycle); those only `apply` can meet.

use anyhow::{Context as _, anyhow};
use kairos_proto::v1 as pb;
use serde::Serialize;

use kairos_client::documents::{self, JobDoc};

use super::Client;
use crate::output::{self, OutputFormat};
use kairos_common::line_diff;

/// `job diff -f FILE`.
pub async fn run(client: &Client, file: &str) -> anyhow::Result<()> {
    let (source, docs) = documents::load(file).await?;
    documents::check(&source, &docs)?;
    let desired = docs
        .iter()
        .map(|doc| normalize(&source, doc))
        .collect::<anyhow::Result<Vec<pb::Job>>>()?;

    let table = client.output() == OutputFormat::Table;
    let mut diffs = Vec::with_capacity(desired.len());
    for job in desired {
        let name = job.name.clone();
        let stored = match client.api().get_job(&name).await {
            Ok(job) => Some(job),
            Err(e) if e.code() == Some(tonic::Code::NotFound) => None,
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("reading job/{}", job.name));
            }
        };
        let diff = JobDiff::new(stored, job);
        if table {
            output::print(&diff.render()?)?;
        }
        diffs.push(diff);
    }
    if !table {
        let report = DiffReport {
            jobs: diffs.iter().map(JobDiff::entry).collect(),
        };
        output::emit(client.output(), &report, |_| String::new())?;
    }
    Ok(())
}

/// The document as the server would store it, or the refusal it would answer.
fn normalize(source: &str, doc: &JobDoc) -> anyhow::Result<pb::Job> {
    kairos_common::job::normalize(&doc.job)
        .map(|(job, _)| job)
        .map_err(|e| {
            anyhow!(
                "{source}: job/{} ({}) would be refused: {e}",
                doc.job.name,
                doc.origin
            )
        })
}

/// One job of the file beside the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDiff {
    /// The stored job without its output-only fields; `None` when there is none.
    current: Option<pb::Job>,
    /// The file's job, normalized.
    desired: pb::Job,
}

/// What `apply` would do to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl Change {
    /// The word `PutJob` answers for this change.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

impl JobDiff {
    /// `stored` as `GetJob` returned it (output-only fields are dropped here), and
    /// the normalized `desired` document.
    pub fn new(stored: Option<pb::Job>, desired: pb::Job) -> Self {
        let current = stored.map(|mut job| {
            documents::strip_output_only(&mut job);
            job
        });
        JobDiff { current, desired }
    }

    pub fn change(&self) -> Change {
        match &self.current {
            None => Change::Created,
            Some(current) if *current == self.desired => Change::Unchanged,
            Some(_) => Change::Updated,
        }
    }

    /// The table-mode text: a header line, then the document or the diff.
    pub fn render(&self) -> anyhow::Result<String> {
        let name = &self.desired.name;
        let desired = job_yaml(&self.desired)?;
        let text = match (&self.current, self.change()) {
            (_, Change::Unchanged) => format!("job/{name} unchanged\n"),
            (None, _) => format!(
                "job/{name} would be created\n{}",
                line_diff::render(&line_diff::diff("", &desired))
            ),
            (Some(current), _) => {
                let current = job_yaml(current)?;
                format!(
                    "job/{name}\n{}",
                    line_diff::render(&line_diff::diff(&current, &desired))
                )
            }
        };
        Ok(text)
    }

    fn entry(&self) -> DiffEntry<'_> {
        DiffEntry {
            name: &self.desired.name,
            result: self.change().as_str(),
            current: self.current.as_ref(),
            desired: &self.desired,
        }
    }
}

/// `job diff -o json|yaml`.
#[derive(Debug, Serialize)]
struct DiffReport<'a> {
    jobs: Vec<DiffEntry<'a>>,
}

#[derive(Debug, Serialize)]
struct DiffEntry<'a> {
    name: &'a str,
    /// created | updated | unchanged
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<&'a pb::Job>,
    desired: &'a pb::Job,
}

/// A job document as YAML ([`kairos_common::job::to_yaml`]).
pub fn job_yaml(job: &pb::Job) -> anyhow::Result<String> {
    kairos_common::job::to_yaml(job).map_err(|e| anyhow!("encoding the job as YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;

    use super::*;

    /// A job as `normalize` leaves it: what the server stores and `diff` compares.
    fn normalized(schedule: &str, metadata: &[(&str, &str)]) -> anyhow::Result<pb::Job> {
        let job = pb::Job {
            name: "nightly-report".into(),
            schedule: schedule.into(),
            timezone: "Europe/Berlin".into(),
            action: Some(pb::job::Action::Shell(pb::ShellAction {
                command: "report --daily".into(),
                ..Default::default()
            })),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        Ok(kairos_common::job::normalize(&job)?.0)
    }

    /// The stored form: what `GetJob` returns, output-only fields included.
    fn stored(mut job: pb::Job) -> pb::Job {
        job.version = 7;
        job.created_at = Some(output::timestamp(Utc::now()));
        job.updated_at = job.created_at;
        job.status = Some(pb::JobStatus {
            running: 1,
            ..Default::default()
        });
        job
    }

    const DOCUMENT: &str = "\
name: nightly-report
schedule: 0 30 2 * * *
timezone: Europe/Berlin
target:
  count: 1
  strategy: spread
retry:
  backoff: 1s
  maxAttempts: 1
  maxBackoff: 1m
concurrency: allow
misfire:
  policy: run_once
  window: 1m
metadata:
  team: billing
  tier: '1'
history:
  keep: 100
shell:
  command: report --daily
";

    #[test]
    fn yaml_follows_the_proto_and_sorts_maps() -> anyhow::Result<()> {
        let job = normalized("0 30 2 * * *", &[("tier", "1"), ("team", "billing")])?;
        assert_eq!(job_yaml(&job)?, DOCUMENT);
        // However the map was filled, the text is the same.
        let mut other = job.clone();
        other.metadata = [("team", "billing"), ("tier", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>();
        assert_eq!(job_yaml(&other)?, DOCUMENT);
        Ok(())
    }

    #[test]
    fn a_new_job_would_be_created() -> anyhow::Result<()> {
        let diff = JobDiff::new(
            None,
            normalized("0 30 2 * * *", &[("team", "billing"), ("tier", "1")])?,
        );
        assert_eq!(diff.change(), Change::Created);
        let text = diff.render()?;
        let want: String = std::iter::once("job/nightly-report would be created\n".to_string())
            .chain(DOCUMENT.lines().map(|l| format!("+ {l}\n")))
            .collect();
        assert_eq!(text, want);
        Ok(())
    }

    #[test]
    fn a_stored_job_equal_but_for_output_only_fields_is_unchanged() -> anyhow::Result<()> {
        let job = normalized("0 30 2 * * *", &[("team", "billing")])?;
        let diff = JobDiff::new(Some(stored(job.clone())), job);
        assert_eq!(diff.change(), Change::Unchanged);
        assert_eq!(diff.render()?, "job/nightly-report unchanged\n");
        Ok(())
    }

    #[test]
    fn a_changed_job_is_shown_as_a_line_diff() -> anyhow::Result<()> {
        let current = stored(normalized("0 30 2 * * *", &[("team", "billing")])?);
        let mut desired = normalized("0 0 3 * * *", &[("team", "billing"), ("tier", "1")])?;
        desired.paused = true;
        let diff = JobDiff::new(Some(current), desired);
        assert_eq!(diff.change(), Change::Updated);
        assert_eq!(
            diff.render()?,
            "\
job/nightly-report
  name: nightly-report
- schedule: 0 30 2 * * *
+ schedule: 0 0 3 * * *
  timezone: Europe/Berlin
  target:
    count: 1
    strategy: spread
  retry:
    backoff: 1s
    maxAttempts: 1
    maxBackoff: 1m
  concurrency: allow
  misfire:
    policy: run_once
    window: 1m
  metadata:
    team: billing
+   tier: '1'
+ paused: true
  history:
    keep: 100
  shell:
    command: report --daily
"
        );
        Ok(())
    }

    #[test]
    fn json_reports_the_result_and_both_documents() -> anyhow::Result<()> {
        let job = normalized("@daily", &[])?;
        let created = JobDiff::new(None, job.clone());
        let unchanged = JobDiff::new(Some(stored(job.clone())), job);
        let report = DiffReport {
            jobs: vec![created.entry(), unchanged.entry()],
        };
        let json: serde_json::Value = serde_json::from_str(&output::to_json(&report)?)?;
        assert_eq!(json["jobs"][0]["result"], "created");
        assert!(json["jobs"][0].get("current").is_none());
        assert_eq!(json["jobs"][1]["result"], "unchanged");
        assert_eq!(json["jobs"][1]["current"]["schedule"], "@daily");
        assert!(
            json["jobs"][1]["current"].get("version").is_none(),
            "output-only fields are dropped"
        );
        Ok(())
    }

    #[test]
    fn a_job_the_server_would_refuse_is_named_with_its_document() -> anyhow::Result<()> {
        let docs = documents::parse(
            "jobs.yaml",
            "name: a\nschedule: '@daily'\nshell: {command: 'true'}\n---\nname: b\nschedule: '61 * * * *'\nshell: {command: 'true'}\n",
        )?;
        assert!(normalize("jobs.yaml", &docs[0]).is_ok());
        let err = normalize("jobs.yaml", &docs[1])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("jobs.yaml: job/b (document 2) would be refused: invalid schedule"),
            "{err}"
        );
        Ok(())
    }
}
