//! `kairos import --from-dkron URL|FILE [--dry-run]`: a Dkron cluster's jobs, copied
//! into Kairos.
//!
//! The source is Dkron's own export, the JSON array `GET /v1/jobs` answers: a URL
//! (`http://dkron:8080` alone means its `/v1/jobs`), a file, or `-` for stdin. Each
//! job is translated exactly as Kairos's Dkron API translates a posted job
//! (`kairos_scheduler::http::dkron::job`), and written with `PutJob`, parents before
//! their children.
//!
//! Nothing is half-imported by a bad export: every job is read, translated and
//! checked (as the scheduler would check it) before the first write, and one that
//! cannot be imported stops the import with every such job named, field and reason.
//! A write the scheduler refuses (a parent that exists in neither the export nor
//! Kairos, say) stops the import there, and the error says which jobs were written
//! before it and which were not tried. Importing the same export twice changes
//! nothing the second time (`unchanged`): `PutJob` is an upsert.
//!
//! `--dry-run` writes nothing: it prints, per job, `job/NAME would be created` or
//! `job/NAME would be updated` (the job exists in Kairos), after the same checks.
//!
//! Deliberately not here: reading a Dkron behind a private CA (fetch the export with
//! `curl --cacert` and import the file) and copying execution history (a new
//! history starts in Kairos).

use anyhow::{Context, anyhow, bail};
use kairos_proto::v1 as pb;
use kairos_scheduler::http::dkron::{job as dkron_job, parents_first};
use serde_json::Value;

use super::Client;
use super::job::job_list;
use crate::args::ImportArgs;
use crate::output;

/// How long fetching the export may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The largest export read (Dkron jobs are small; 10 000 of them fit many times).
const MAX_EXPORT_BYTES: usize = 256 * 1024 * 1024;

pub async fn run(client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let (source, text) = read_export(&args.from_dkron).await?;
    let jobs = translate(&source, &text)?;
    let api = client.api();
    if args.dry_run {
        for job in &jobs {
            let verb = match api.get_job(&job.name).await {
                Ok(_) => "would be updated",
                Err(e) if e.code() == Some(tonic::Code::NotFound) => "would be created",
                Err(e) => return Err(e.into()),
            };
            output::print(&format!("job/{} {verb}\n", job.name))?;
        }
        return Ok(());
    }
    for (index, job) in jobs.iter().enumerate() {
        match api.put_job(job.clone()).await {
            Ok(response) => {
                output::print(&format!("job/{} {}\n", job.name, response.result))?;
            }
            Err(error) => {
                let names = |jobs: &[pb::Job]| job_list(jobs.iter().map(|j| &j.name));
                return Err(anyhow::Error::new(error).context(format!(
                    "job/{} was refused (imported before it: {}; not tried: {})",
                    job.name,
                    names(&jobs[..index]),
                    names(&jobs[index + 1..])
                )));
            }
        }
    }
    Ok(())
}

/// The export's text, and a name for it in messages.
async fn read_export(from: &str) -> anyhow::Result<(String, String)> {
    if !(from.starts_with("http://") || from.starts_with("https://")) {
        return Ok(kairos_client::documents::read(from).await?);
    }
    let url = match from.split_once("://") {
        Some((_, rest)) if !rest.trim_end_matches('/').contains('/') => {
            format!("{}/v1/jobs", from.trim_end_matches('/'))
        }
        _ => from.to_string(),
    };
    let http = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .context("an HTTP client")?;
    let response = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("--from-dkron {url}: could not fetch the export"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("--from-dkron {url}: reading the export"))?;
    if !status.is_success() {
        bail!(
            "--from-dkron {url}: answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    if body.len() > MAX_EXPORT_BYTES {
        bail!("--from-dkron {url}: the export is larger than {MAX_EXPORT_BYTES} bytes");
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| anyhow!("--from-dkron {url}: the export is not UTF-8 text"))?;
    Ok((url, text))
}

/// Every job of the export as Kairos's document, parents first; an error names
/// every job that cannot be imported.
fn translate(source: &str, text: &str) -> anyhow::Result<Vec<pb::Job>> {
    let export: Value = serde_json::from_str(text)
        .with_context(|| format!("{source}: not JSON (a Dkron export is GET /v1/jobs's answer)"))?;
    let Value::Array(items) = export else {
        bail!("{source}: a Dkron export is a JSON array of jobs (GET /v1/jobs's answer)");
    };
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, parsed) in parents_first(items) {
        let label = if name.is_empty() {
            "a job without a name".to_string()
        } else {
            format!("job/{name}")
        };
        if !name.is_empty() && !seen.insert(name.clone()) {
            problems.push(format!("{label}: twice in the export"));
            continue;
        }
        match parsed.and_then(dkron_job::to_kairos).and_then(|doc| {
            kairos_common::job::normalize(&doc)
                .map(|_| doc)
                .map_err(Into::into)
        }) {
            Ok(doc) => jobs.push(doc),
            Err(e) => problems.push(format!("{label}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{source}: {} of {} jobs cannot be imported, so none was:\n  {}",
            problems.len(),
            problems.len() + jobs.len(),
            problems.join("\n  ")
        );
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_translates_parents_first_with_dkron_s_nulls() -> anyhow::Result<()> {
        let export = r#"[
          {"id": "child", "name": "child", "parent_job": "parent", "schedule": "",
           "executor": "shell", "executor_config": {"command": "echo child"},
           "tags": null, "metadata": null, "processors": null, "last_success": null,
           "dependent_jobs": null, "next": "0001-01-01T00:00:00Z"},
          {"id": "parent", "name": "parent", "schedule": "@every 10s", "timezone": "",
           "executor": "shell", "executor_config": {"command": "echo parent"},
           "dependent_jobs": ["child"], "disabled": false, "retries": 1}
        ]"#;
        let jobs = translate("export.json", export)?;
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["parent", "child"]);
        assert_eq!(jobs[1].parent, "parent");
        Ok(())
    }

    #[test]
    fn one_bad_job_stops_the_import_and_every_bad_one_is_named() {
        let export = r#"[
          {"name": "good", "schedule": "@daily", "executor": "shell", "executor_config": {"command": "true"}},
          {"name": "mem", "schedule": "@daily", "executor": "shell",
           "executor_config": {"command": "true", "mem_limit": "1GB"}},
          {"name": "tz", "schedule": "@daily", "timezone": "Mars/Olympus", "executor": "shell",
           "executor_config": {"command": "true"}}
        ]"#;
        let err = translate("export.json", export).unwrap_err().to_string();
        assert!(err.contains("2 of 3 jobs cannot be imported"), "{err}");
        assert!(
            err.contains("job/mem: invalid executor_config.mem_limit"),
            "{err}"
        );
        assert!(err.contains("job/tz: invalid timezone"), "{err}");
        assert!(
            translate("x", r#"{"name": "a"}"#)
                .unwrap_err()
                .to_string()
                .contains("JSON array")
        );
    }
}
