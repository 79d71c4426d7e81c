//! Job documents: YAML or JSON, one job or many, from a file or standard input.
//!
//! A file holds one job, a YAML stream of several documents (`---` between them),
//! a list of jobs, or `{"jobs": [...]}` (what `kairos job list -o json` prints, so a
//! listing can be applied back). Each job is a `kairos.v1.Job` in its proto3 JSON
//! mapping; keys may be lowerCamelCase or the proto's snake_case, and the action is
//! the oneof's field name: `shell: {command: ...}` or `http: {...}`.
//!
//! YAML is read through `serde_yaml_ng` into a `serde_json::Value` and handed to the
//! generated pbjson deserialiser, so YAML and JSON are held to exactly the rules
//! grpcurl and the HTTP API use (unknown fields are errors; durations and policies
//! are strings). Input starting with `{` or `[` is read as JSON first (concatenated
//! or newline-delimited values allowed), falling back to YAML.
//!
//! Output-only fields (`version`, `createdAt`, `updatedAt`, `status`) are dropped, so
//! `kairos job get NAME -o yaml` can be edited and applied back.
//!
//! Every error names the file, the position of the offending job (`document 2`, or
//! `item 3` inside a list) and the problem. Besides reading, it holds the file-level
//! rules of applying a file ([`check`]: some job, every job named, no name twice);
//! names, schedules and everything else are the server's to check
//! (`kairos_common::job::normalize` checks them locally, as the server does).

use std::collections::BTreeMap;

use kairos_proto::v1 as pb;
use serde::Deserialize as _;
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt as _;

use crate::error::{Error, Result};

/// One job read from a file, and where it was.
#[derive(Debug, Clone)]
pub struct JobDoc {
    /// `document 2`, `item 3` or `document 2, item 3`: for error messages.
    pub origin: String,
    /// The job, without the fields only the server fills in.
    pub job: pb::Job,
}

/// The text of `path`, or of stdin for `-`, with the name to use in messages.
pub async fn read(path: &str) -> Result<(String, String)> {
    if path == "-" {
        let mut text = String::new();
        tokio::io::stdin()
            .read_to_string(&mut text)
            .await
            .map_err(|source| Error::Read {
                path: "stdin".into(),
                source,
            })?;
        return Ok(("<stdin>".to_string(), text));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
    Ok((path.to_string(), text))
}

/// Reads and parses `path` (see [`read`] and [`parse`]): the file's name for
/// messages and its jobs.
pub async fn load(path: &str) -> Result<(String, Vec<JobDoc>)> {
    let (source, text) = read(path).await?;
    let docs = parse(&source, &text)?;
    Ok((source, docs))
}

fn invalid(file: &str, reason: impl std::fmt::Display) -> Error {
    Error::InvalidDocument {
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

/// Every job in `text`, in file order; `name` is the file's name for messages.
pub fn parse(name: &str, text: &str) -> Result<Vec<JobDoc>> {
    let documents = documents(name, text)?;
    let several = documents.len() > 1;
    let mut jobs = Vec::new();
    for (index, value) in documents.into_iter().enumerate() {
        let document = format!("document {}", index + 1);
        let (items, is_list) = match value {
            Value::Null => continue,
            Value::Array(items) => (items, true),
            Value::Object(map) => match listing(map) {
                Ok(items) => (items, true),
                Err(map) => (vec![Value::Object(map)], false),
            },
            other => (vec![other], false),
        };
        for (item_index, item) in items.into_iter().enumerate() {
            let origin = match (is_list, several) {
                (false, _) => document.clone(),
                (true, false) => format!("item {}", item_index + 1),
                (true, true) => format!("{document}, item {}", item_index + 1),
            };
            let job = to_job(item).map_err(|e| invalid(name, format!("{origin}: {e}")))?;
            jobs.push(JobDoc { origin, job });
        }
    }
    Ok(jobs)
}

/// The top-level values of the file (YAML documents or JSON values).
fn documents(name: &str, text: &str) -> Result<Vec<Value>> {
    let looks_like_json = matches!(text.trim_start().chars().next(), Some('{' | '['));
    if looks_like_json {
        let json: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect();
        return match json {
            Ok(values) => Ok(values),
            // A YAML flow mapping (`{name: a, ...}`) also starts with a brace.
            Err(json_err) => match yaml_documents(name, text) {
                Ok(values) => Ok(values),
                Err(_) => Err(invalid(
                    name,
                    format!(
                        "document {}: {json_err}",
                        json_document_number(text, json_err.line())
                    ),
                )),
            },
        };
    }
    yaml_documents(name, text)
}

/// The jobs of a `{"jobs": [...]}` listing, or the mapping back when it is not one.
fn listing(mut map: Map<String, Value>) -> Result<Vec<Value>, Map<String, Value>> {
    if map.len() == 1
        && map.get("jobs").is_some_and(Value::is_array)
        && let Some(Value::Array(items)) = map.remove("jobs")
    {
        return Ok(items);
    }
    Err(map)
}

fn yaml_documents(name: &str, text: &str) -> Result<Vec<Value>> {
    let mut values = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| invalid(name, format!("document {}: {e}", index + 1)))?;
        values.push(value);
    }
    Ok(values)
}

/// Which top-level JSON value the error line falls in (1-based), for messages.
fn json_document_number(text: &str, error_line: usize) -> usize {
    let mut count = 0;
    let head = text
        .lines()
        .take(error_line.max(1))
        .collect::<Vec<_>>()
        .join("\n");
    for value in serde_json::Deserializer::from_str(&head).into_iter::<Value>() {
        if value.is_err() {
            break;
        }
        count += 1;
    }
    count + 1
}

/// One JSON value as a job, without its output-only fields.
fn to_job(value: Value) -> std::result::Result<pb::Job, String> {
    if !value.is_object() {
        return Err(format!(
            "a job must be a mapping of fields, found {}",
            kind(&value)
        ));
    }
    let mut job: pb::Job = serde_json::from_value(value).map_err(|e| e.to_string())?;
    strip_output_only(&mut job);
    Ok(job)
}

/// Clears the fields the server fills in (`version`, `createdAt`, `updatedAt`,
/// `status`), leaving what a user writes.
pub fn strip_output_only(job: &mut pb::Job) {
    job.version = 0;
    job.created_at = None;
    job.updated_at = None;
    job.status = None;
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The file-level rules of applying a file (and of diffing it): at least one job,
/// every job named, no name twice.
pub fn check(source: &str, docs: &[JobDoc]) -> Result<()> {
    if docs.is_empty() {
        return Err(invalid(source, "no jobs found"));
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for doc in docs {
        if doc.job.name.is_empty() {
            return Err(invalid(
                source,
                format!("{}: the job has no name", doc.origin),
            ));
        }
        if let Some(first) = seen.insert(&doc.job.name, &doc.origin) {
            return Err(invalid(
                source,
                format!(
                    "job {} appears twice ({first} and {})",
                    doc.job.name, doc.origin
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(jobs: &[JobDoc]) -> Vec<&str> {
        jobs.iter().map(|d| d.job.name.as_str()).collect()
    }

    fn shell_command(job: &pb::Job) -> Option<&str> {
        match &job.action {
            Some(pb::job::Action::Shell(shell)) => Some(shell.command.as_str()),
            _ => None,
        }
    }

    #[test]
    fn a_single_yaml_job() -> anyhow::Result<()> {
        let jobs = parse(
            "job.yaml",
            r#"
name: nightly-report
schedule: "0 30 2 * * *"
timezone: Europe/Berlin
shell: { command: "report --daily", env: {MODE: full}, cwd: /srv }
target: { selector: "role=web", count: 1, strategy: spread }
timeout: 30m
retry: { max_attempts: 3, backoff: 2s, max_backoff: 1m }
misfire: { policy: run_once, window: 10m }
metadata: { team: billing }
"#,
        )?;
        assert_eq!(names(&jobs), ["nightly-report"]);
        assert_eq!(jobs[0].origin, "document 1");
        let job = &jobs[0].job;
        assert_eq!(job.schedule, "0 30 2 * * *");
        assert_eq!(shell_command(job), Some("report --daily"));
        assert_eq!(job.target.as_ref().and_then(|t| t.count), Some(1));
        assert_eq!(job.retry.as_ref().map(|r| r.max_attempts), Some(3));
        assert_eq!(
            job.retry.as_ref().map(|r| r.max_backoff.as_str()),
            Some("1m")
        );
        assert_eq!(
            job.metadata.get("team").map(String::as_str),
            Some("billing")
        );
        Ok(())
    }

    #[test]
    fn snake_case_and_camel_case_keys_are_the_same_field() -> anyhow::Result<()> {
        let snake = parse(
            "a.yaml",
            "name: a\nparent_on: failure\nretry: {max_attempts: 2}\nhttp: {url: 'http://x', body_regex: ok}\n",
        )?;
        let camel = parse(
            "b.yaml",
            "name: a\nparentOn: failure\nretry: {maxAttempts: 2}\nhttp: {url: 'http://x', bodyRegex: ok}\n",
        )?;
        assert_eq!(snake[0].job, camel[0].job);
        assert_eq!(snake[0].job.parent_on, "failure");
        match &snake[0].job.action {
            Some(pb::job::Action::Http(http)) => assert_eq!(http.body_regex, "ok"),
            other => anyhow::bail!("expected an http action, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_yaml_stream_of_several_documents() -> anyhow::Result<()> {
        let jobs = parse(
            "jobs.yaml",
            "name: a\nschedule: '@daily'\nshell: {command: 'echo a'}\n---\nname: b\nshell:\n  command: echo b\n---\n",
        )?;
        assert_eq!(names(&jobs), ["a", "b"]);
        assert_eq!(jobs[1].origin, "document 2");
        assert_eq!(shell_command(&jobs[1].job), Some("echo b"));
        Ok(())
    }

    #[test]
    fn a_json_list() -> anyhow::Result<()> {
        let jobs = parse(
            "jobs.json",
            r#"[{"name": "a", "shell": {"command": "true"}}, {"name": "b", "schedule": "@every 10s"}]"#,
        )?;
        assert_eq!(names(&jobs), ["a", "b"]);
        assert_eq!(jobs[1].origin, "item 2");
        assert_eq!(jobs[1].job.schedule, "@every 10s");
        Ok(())
    }

    #[test]
    fn a_yaml_list_and_a_listing() -> anyhow::Result<()> {
        let jobs = parse("jobs.yaml", "- name: a\n- name: b\n")?;
        assert_eq!(names(&jobs), ["a", "b"]);
        let jobs = parse(
            "list.json",
            r#"{"jobs": [{"name": "a", "version": "4", "createdAt": "2026-01-01T00:00:00Z", "status": {"running": 1}}]}"#,
        )?;
        assert_eq!(names(&jobs), ["a"]);
        assert_eq!(jobs[0].job.version, 0, "output-only fields are dropped");
        assert!(jobs[0].job.created_at.is_none() && jobs[0].job.status.is_none());
        Ok(())
    }

    #[test]
    fn a_bad_document_is_named() {
        let err = parse(
            "jobs.yaml",
            "name: a\nshell: {command: 'true'}\n---\nname: b\nshedule: '@daily'\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.starts_with("jobs.yaml: document 2: "), "{err}");
        assert!(err.contains("shedule"), "the unknown field is named: {err}");

        let err = parse("jobs.yaml", "name: a\n---\nname: [b\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("jobs.yaml: document 2: "),
            "YAML syntax: {err}"
        );

        let err = parse("jobs.json", "[{\"name\": \"a\"}, {\"name\": 5}]")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("jobs.json: item 2: "), "{err}");

        let err = parse("jobs.json", "{\"name\": \"a\"}\n{\"name\": \"b\",}\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("jobs.json: document 2: "),
            "JSON syntax: {err}"
        );

        let err = parse("x.yaml", "just a string\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("must be a mapping"), "{err}");
    }

    #[test]
    fn a_file_must_name_each_job_once() -> anyhow::Result<()> {
        let message = |text: &str| -> anyhow::Result<String> {
            let docs = parse("jobs.yaml", text)?;
            Ok(check("jobs.yaml", &docs)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default())
        };
        assert_eq!(message("")?, "jobs.yaml: no jobs found");
        assert_eq!(
            message("name: a\n---\nschedule: '@daily'\n")?,
            "jobs.yaml: document 2: the job has no name"
        );
        assert_eq!(
            message("- name: a\n- name: a\n")?,
            "jobs.yaml: job a appears twice (item 1 and item 2)"
        );
        assert_eq!(message("name: a\n---\nname: b\n")?, "");
        Ok(())
    }

    #[test]
    fn empty_input_has_no_jobs() -> anyhow::Result<()> {
        assert!(parse("empty.yaml", "")?.is_empty());
        assert!(parse("empty.yaml", "---\n# nothing\n")?.is_empty());
        Ok(())
    }
}
