//! See the crate documentation in main.rs.
//! The OpenAPI document of the HTTP port (`scheduler/assets/openapi.yaml`, served
//! at `/openapi.yaml`) held against the server it describes, with schemathesis from
//! the project's tool venv (`scripts/setup-test-deps`).
//!
//! `openapi_document_holds_against_the_server` starts `kairos dev`, checks that the
//! node serves the committed document (`application/yaml`, without credentials),
//! gives it data the document's examples name (`report`, with a child
//! `report-child` and one finished run; `scratch` for the destructive calls), then
//! runs `schemathesis run http://NODE/openapi.yaml` with the checks
//! [`CHECKS`]: no 5xx, every answer's status, content type, headers and body as the
//! document says. schemathesis generates valid and invalid requests from the
//! document (its examples, boundary values, random data, and chains of calls linked
//! by the names and ids the answers carry).
//!
//! What schemathesis may not reorder is split in two runs, so that the first one
//! sees the data it was given: the first runs every operation but the destructive
//! ones; the second, last, deletes jobs, clears a job's history and pauses new job
//! submissions (after which every job write would be a 503). `POST /v1/leave` is
//! left out of both: it answers 501 by design (documented), which the
//! "no server error" check would count as a failure.
//!
//! schemathesis is bounded per operation ([`MAX_EXAMPLES`]), per request
//! ([`REQUEST_TIMEOUT_SECONDS`]) and per run (killed at its deadline), and kept
//! under the node's per-caller write limit ([`RATE_LIMIT`]) so that no case is
//! spent on a 429. Its seed is random unless `KAIROS_OPENAPI_SEED` gives one; a
//! failure shows its whole report (the seed, each failing request as a curl
//! command) and the node's log.
//!
//! schemathesis runs the jobs it manages to create: its generated commands run on
//! this machine through the local executor. A document with a shell command needs
//! a valid schedule and a name of the job-name pattern to be stored, so random
//! documents are almost always refused; the ones stored are the document's examples
//! (`echo`) and their variations.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kairos_integration_tests::deploy::{Output, SETUP, repo_root, run, tools_dir};
use kairos_integration_tests::web::Request;
use kairos_integration_tests::{Dev, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");
/// The document, from the repository root.
const DOCUMENT: &str = "scheduler/assets/openapi.yaml";
/// What schemathesis checks on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";
/// Test cases schemathesis generates per operation and phase: enough for every
/// operation's examples, boundaries and a few random cases, within a minute on a
/// debug build.
const MAX_EXAMPLES: &str = "25";
/// How long one request may take (a run forwarded, a read barrier: far less).
const REQUEST_TIMEOUT_SECONDS: &str = "10";
/// Requests per second schemathesis sends: below the node's default write rate
/// (200 per second per caller), so its burst is never spent.
const RATE_LIMIT: &str = "150/s";
/// The operations whose effect would empty the rest of a run of meaning.
const DESTRUCTIVE: &[&str] = &["deleteJob", "deleteExecutionsByJob", "pauseSubmissions"];
/// The operation answered 501 by design.
const UNSUPPORTED: &str = "leave";
/// How long the first run (every other operation) may take before it is killed.
const MAIN_RUN_DEADLINE: Duration = Duration::from_secs(80);
/// How long the second run (the destructive operations) may take.
const LAST_RUN_DEADLINE: Duration = Duration::from_secs(30);
/// How long the seeded run may take to finish.
const SEED_RUN_DEADLINE: Duration = Duration::from_secs(30);
/// Lines of the node's log shown on failure.
const LOG_LINES: usize = 40;

/// The venv's schemathesis, or an error naming the set-up script.
fn schemathesis() -> Result<PathBuf> {
    let path = tools_dir().join("venv/bin/schemathesis");
    ensure!(
        path.exists(),
        "no {}: run {SETUP} (schemathesis is pinned in scripts/lib/test-tools-requirements.txt)",
        path.display()
    );
    Ok(path)
}

/// `(status, headers, body)` of one request to the node.
fn call(dev: &Dev, request: &Request) -> Result<(u16, Vec<String>, String)> {
    request
        .exchange(&dev.http_addr)
        .with_context(|| format!("{} {}", request.method, request.path))
}

/// The value of header `name` among `headers` (`Name: value` lines).
fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Stores one job through `/v1` and checks the answer is the 201 Dkron gives.
fn put_job(dev: &Dev, body: &str) -> Result<()> {
    let (code, _, answer) = call(dev, &Request::post("/v1/jobs", body))?;
    ensure!(code == 201, "POST /v1/jobs {body}: {code} {answer}");
    Ok(())
}

/// The jobs and the finished run the document's examples name.
fn seed(dev: &Dev) -> Result<()> {
    put_job(
        dev,
        r#"{"name": "report", "displayname": "Report", "schedule": "@every 1h",
            "metadata": {"team": "ops"}, "executor": "shell",
            "executor_config": {"command": "echo hello report"}}"#,
    )?;
    put_job(
        dev,
        r#"{"name": "report-child", "parent_job": "report", "executor": "shell",
            "executor_config": {"command": "echo child"}}"#,
    )?;
    put_job(
        dev,
        r#"{"name": "scratch", "schedule": "@manual", "executor": "shell",
            "executor_config": {"command": "echo scratch"}}"#,
    )?;
    let (code, _, answer) = call(dev, &Request::post("/v1/jobs/report/run", ""))?;
    ensure!(code == 202, "POST /v1/jobs/report/run: {code} {answer}");
    wait_until(SEED_RUN_DEADLINE, "the run of `report` to succeed", || {
        let (code, _, body) = call(dev, &Request::get("/v1/jobs/report/executions")).ok()?;
        let executions: Value = serde_json::from_str(&body).ok()?;
        let done = executions
            .as_array()?
            .iter()
            .any(|e| e["success"] == Value::Bool(true) && e["output"] == "hello report\n");
        (code == 200 && done).then_some(())
    })
}

/// One schemathesis run against the node's document; `filters` selects operations.
fn schemathesis_run(
    tool: &Path,
    dev: &Dev,
    dir: &Path,
    filters: &[String],
    deadline: Duration,
) -> Result<Output> {
    let mut cmd = Command::new(tool);
    cmd.arg("run")
        .arg(format!("http://{}/openapi.yaml", dev.http_addr))
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--request-timeout", REQUEST_TIMEOUT_SECONDS])
        .args(["--rate-limit", RATE_LIMIT])
        // One worker: the machine is shared, and the order of the calls stays simple.
        .args(["--workers", "1"])
        // Nothing kept between runs, nothing written beside the test.
        .args(["--generation-database", "none"])
        // kairos dev is open; random credentials would only test the refusal.
        .args(["--generation-with-security-parameters", "false"])
        .arg("--no-color")
        .args(filters)
        .current_dir(dir)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1");
    if let Some(seed) = std::env::var_os("KAIROS_OPENAPI_SEED") {
        cmd.arg("--seed").arg(seed);
    }
    run(&mut cmd, deadline)
}

/// The number after `label` in schemathesis's summary (`Selected: 26/30`).
fn summary_count(report: &str, label: &str) -> Option<u64> {
    report.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(label)?.trim();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// Fails with the report unless the run passed and tested every operation it
/// selected (a crashed worker leaves some untested and still exits 0).
fn passed(what: &str, out: &Output, dev: &Dev) -> Result<()> {
    let report = format!("{}\n{}", out.stdout, out.stderr);
    let selected = summary_count(&report, "Selected:");
    let tested = summary_count(&report, "Tested:");
    let whole = selected.is_some() && selected == tested && !report.contains("Traceback");
    if !out.success() || !whole {
        bail!(
            "schemathesis ({what}) found the document and the server disagree \
             (selected {selected:?} operations, tested {tested:?}):\n{out}\n--- kairos dev log ---\n{}",
            dev_log_tail(dev)
        );
    }
    Ok(())
}

fn dev_log_tail(dev: &Dev) -> String {
    let lines = dev.log_lines();
    lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
}

#[test]
fn openapi_document_holds_against_the_server() -> Result<()> {
    let tool = schemathesis()?;
    let committed = std::fs::read_to_string(repo_root().join(DOCUMENT))
        .with_context(|| format!("reading {DOCUMENT}"))?;
    let root = tempfile::tempdir()?;
    let work = root.path().join("work");
    std::fs::create_dir_all(&work)?;
    let dev = Dev::start(BIN.as_ref(), &root.path().join("dev"))?;
    // A run asked for before the local executor is connected would be no_target.
    dev.wait_for_executors(1)?;

    let (code, headers, served) = call(&dev, &Request::get("/openapi.yaml"))?;
    ensure!(code == 200, "GET /openapi.yaml: {code} {served}");
    ensure!(
        header(&headers, "content-type") == Some("application/yaml"),
        "GET /openapi.yaml answered with {headers:?}"
    );
    ensure!(
        served == committed,
        "the node serves another document than {DOCUMENT} (a binary built before the last change?)"
    );

    seed(&dev)?;

    let mut main_filters = vec!["--exclude-method".to_string(), "DELETE".to_string()];
    for id in DESTRUCTIVE.iter().chain([&UNSUPPORTED]) {
        main_filters.extend(["--exclude-operation-id".to_string(), id.to_string()]);
    }
    let out = schemathesis_run(&tool, &dev, &work, &main_filters, MAIN_RUN_DEADLINE)?;
    passed("every operation but the destructive ones", &out, &dev)?;

    let mut last_filters = Vec::new();
    for id in DESTRUCTIVE {
        last_filters.extend(["--include-operation-id".to_string(), id.to_string()]);
    }
    let out = schemathesis_run(&tool, &dev, &work, &last_filters, LAST_RUN_DEADLINE)?;
    passed("the destructive operations", &out, &dev)?;

    let (code, _, body) = call(&dev, &Request::get("/healthz"))?;
    ensure!(
        code == 200,
        "GET /healthz after schemathesis: {code} {body}"
    );
    Ok(())
}
