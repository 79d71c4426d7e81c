//! Kairos's Dkron-compatible `/v1` API (scheduler/src/http/dkron/) held to Dkron's
//! own word: every example job of Dkron's documentation, posted the way the
//! documentation posts it (curl's `-d`, a form content type with a JSON body), gives
//! the result the documentation describes; Dkron's API tests (`dkron/api_test.go`)
//! pass where they test behaviour Kairos has; the two Dkron clients on PyPI work
//! unchanged; and `kairos import --from-dkron` brings a Dkron export over.
//!
//! - Documentation: getting started (`job1` on one `server` node, `date`'s output),
//!   the shell executor's examples (a pipe through a shell, env, cwd, timeouts, the
//!   refused `mem_limit`), the http executor's (seconds, `expectCode`), metadata and
//!   its filter, chaining, `concurrency: forbid`, retries, the cron spec (six fields
//!   with seconds, descriptors, `@every`, `@at`), and the target nodes spec (a tag
//!   without a count means every matching executor, `web:1` one of them).
//! - Dkron's API tests: create then overwrite, the parent rules, names, schedules,
//!   concurrency, time zones and shell timeouts refused, 404s, restore of an export
//!   with a chain, output truncation, the leader endpoints, pause and unpause; and
//!   the list's filters, sort and slice with `X-Total-Count`, `PUT`, `run`, clearing
//!   a job's executions, `/health`, an export full of Dkron's nulls, `ephemeral`.
//! - `pydkron` 0.2.4 and `dkron` 0.0.5 (integration-tests/python/dkron_clients.py,
//!   with the tool venv's python and the packages scripts/setup-test-deps unpacks).
//! - `kairos import --from-dkron` from a URL (dry run first) and from a file.
//!
//! Each test starts its own `kairos dev` (whose embedded executor carries the tag
//! `server=true`, as Dkron's servers do) and, where a test needs tagged executors,
//! `kairos executor` processes beside it; HTTP jobs call a server of the test on
//! 127.0.0.1 port 0. Waits poll what was recorded against deadlines; expectations
//! come from the records (ids, groups, attempts, instants), not from timings. A
//! failure shows the last request and answer and the tail of the node's log.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use kairos_integration_tests::deploy::{repo_root, run, tools_dir};
use kairos_integration_tests::server::TestServer;
use kairos_integration_tests::web::{Request, multipart_file};
use kairos_integration_tests::{CliOutput, Dev, executions, field, num, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long a few quick runs may take to be recorded final: generous, because the
/// tests run side by side on a busy machine.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// How long the Python clients' script may take (it waits for two runs itself).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);
/// How much of an answer's body a failure message shows.
const BODY_SHOWN: usize = 3000;

// ---- the deployment under test ----

/// One exchange with the API: what was sent and what came back.
#[derive(Debug, Clone)]
struct Answer {
    request: String,
    code: u16,
    headers: Vec<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON:\n{self}"))
    }

    /// The value of the header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `error` of a Dkron-shaped error body ("" when there is none).
    fn error(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body: String = self.body.chars().take(BODY_SHOWN).collect();
        writeln!(f, "request: {}", self.request)?;
        writeln!(f, "answer: {}", self.code)?;
        for h in &self.headers {
            writeln!(f, "  {h}")?;
        }
        write!(f, "  {body}")
    }
}

/// A `kairos executor` agent beside the dev node; SIGKILLed and reaped when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `kairos dev` in its own temporary directory, the executors a test added, and
/// the last exchange with the API (shown by every failure). The processes are killed
/// before the directory goes (field order).
struct Node {
    dev: Dev,
    agents: Vec<Agent>,
    last: RefCell<Option<Answer>>,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts `kairos dev` and waits until its executor (tag `server=true`) is connected.
    fn start() -> Result<Node> {
        let dir = tempfile::tempdir()?;
        let dev = Dev::start(BIN.as_ref(), &dir.path().join("data"))?;
        let node = Node {
            dev,
            agents: Vec::new(),
            last: RefCell::new(None),
            dir,
        };
        node.dev
            .wait_for_executors(1)
            .map_err(|e| node.fail(format!("{e:#}")))?;
        Ok(node)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts a `kairos executor` named `id` with `tags` (`KEY=VALUE`) and waits until
    /// the leader counts it.
    fn add_executor(&mut self, id: &str, tags: &[&str]) -> Result<()> {
        let log = std::fs::File::create(self.path().join(format!("{id}.log")))?;
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KAIROS_") {
                cmd.env_remove(key);
            }
        }
        cmd.args([
            "executor",
            "--insecure",
            "--schedulers",
            &self.dev.grpc_addr,
            "--id",
            id,
        ]);
        for tag in tags {
            cmd.args(["--tag", tag]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning kairos executor")?;
        self.agents.push(Agent(child));
        let n = 1 + self.agents.len();
        self.dev
            .wait_for_executors(n)
            .map_err(|e| self.fail(format!("{e:#}")))
    }

    /// `what`, the last exchange with the API and the tail of the node's log.
    fn fail(&self, what: impl fmt::Display) -> anyhow::Error {
        let last = match &*self.last.borrow() {
            Some(a) => a.to_string(),
            None => "(none)".into(),
        };
        anyhow!(
            "{what}\n--- last exchange with /v1 ---\n{last}\n--- kairos dev log ---\n{}",
            self.dev.log_tail()
        )
    }

    fn ensure(&self, cond: bool, what: impl fmt::Display) -> Result<()> {
        if cond { Ok(()) } else { Err(self.fail(what)) }
    }

    /// Sends `req` to the node's HTTP port.
    fn send(&self, req: &Request) -> Result<Answer> {
        let body = req.body.unwrap_or("");
        let kind = match (req.content_type, req.form, req.body.is_some()) {
            (Some(kind), _, _) => format!(" ({kind})"),
            (None, true, _) => " (application/x-www-form-urlencoded)".into(),
            (None, false, true) => " (application/json)".into(),
            (None, false, false) => String::new(),
        };
        let shown: String = body.chars().take(BODY_SHOWN).collect();
        let request = format!("{} {}{kind} {shown}", req.method, req.path);
        let (code, headers, body) = req
            .exchange(&self.dev.http_addr)
            .map_err(|e| self.fail(format!("{request}: {e:#}")))?;
        let answer = Answer {
            request,
            code,
            headers,
            body,
        };
        *self.last.borrow_mut() = Some(answer.clone());
        Ok(answer)
    }

    /// Sends `req` and fails unless the answer has status `code`.
    fn expect(&self, req: Request, code: u16) -> Result<Answer> {
        let answer = self.send(&req)?;
        self.ensure(answer.code == code, format!("expected HTTP {code}"))?;
        Ok(answer)
    }

    /// Posts a job as Dkron's documentation does, `curl localhost:8080/v1/jobs -XPOST
    /// -d '{...}'` (so with curl's form content type); expects 201 and the job back.
    fn post_job(&self, doc: &str) -> Result<Value> {
        self.expect(Request::form("/v1/jobs", doc), 201)?.json()
    }

    /// Like [`Node::post_job`] with `?runoncreate`: the job runs at once.
    fn post_and_run(&self, doc: &str) -> Result<Value> {
        self.expect(Request::form("/v1/jobs?runoncreate=true", doc), 201)?
            .json()
    }

    fn get_job(&self, name: &str) -> Result<Value> {
        self.expect(Request::get(&format!("/v1/jobs/{name}")), 200)?
            .json()
    }

    /// `POST /v1/jobs/{name}/run` (202).
    fn run(&self, name: &str) -> Result<()> {
        let path = format!("/v1/jobs/{name}/run");
        self.expect(Request::post(&path, ""), 202).map(|_| ())
    }

    /// `GET /v1/jobs/{name}/executions`: Dkron's executions, newest first.
    fn executions(&self, name: &str) -> Result<Vec<Value>> {
        let path = format!("/v1/jobs/{name}/executions");
        let answer = self.expect(Request::get(&path), 200)?;
        list(&answer)
    }

    /// Polls `check` until it gives a value; fails with the last exchange and the log.
    fn poll<T>(&self, what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let mut last_error = String::new();
        wait_until(RUN_DEADLINE, what, || match check() {
            Ok(v) => v,
            Err(e) => {
                last_error = format!("{e:#}");
                None
            }
        })
        .map_err(|e| self.fail(format!("{e}\nlast error: {last_error}")))
    }

    /// Waits until `name` has `n` final executions (Dkron's listing) and returns
    /// them, newest first.
    fn wait_final(&self, name: &str, n: usize) -> Result<Vec<Value>> {
        self.poll(&format!("{n} finished executions of {name}"), || {
            let done: Vec<Value> = self
                .executions(name)?
                .into_iter()
                .filter(is_final)
                .collect();
            Ok((done.len() >= n).then_some(done))
        })
    }

    /// Waits until `name` has a successful execution; returns the newest one.
    fn wait_success(&self, name: &str) -> Result<Value> {
        self.poll(&format!("a successful execution of {name}"), || {
            Ok(self
                .executions(name)?
                .into_iter()
                .find(|e| e["success"] == json!(true)))
        })
    }

    /// The executions of `name` as the native API records them (trigger, group,
    /// attempt), oldest first.
    fn records(&self, name: &str) -> Result<Vec<Value>> {
        executions(&self.dev, name).map_err(|e| self.fail(format!("{e:#}")))
    }

    /// Waits for the first manual run of `name` with an id above `after` to end (every
    /// execution of its group, retries and fan-out included, and the group's outcome
    /// final) and returns the group's executions, oldest first. A run that went
    /// nowhere (`no_target`) has no group: it is returned alone.
    fn wait_group_after(&self, name: &str, after: u64) -> Result<Vec<Value>> {
        self.poll(
            &format!("a finished manual run of {name} after #{after}"),
            || {
                let new: Vec<Value> = self
                    .records(name)?
                    .into_iter()
                    .filter(|e| num(e, "id") > after)
                    .collect();
                let Some(first) = new.iter().find(|e| field(e, "trigger") == "manual") else {
                    return Ok(None);
                };
                let group = field(first, "group").to_string();
                if group.is_empty() {
                    return Ok(is_final(first).then(|| vec![first.clone()]));
                }
                let members: Vec<Value> = new
                    .iter()
                    .filter(|e| field(e, "group") == group)
                    .cloned()
                    .collect();
                let settled = members
                    .iter()
                    .all(|e| is_final(e) && is_final_status(field(e, "groupStatus")));
                Ok(settled.then_some(members))
            },
        )
    }

    /// The highest execution id `name` has so far (0 when none).
    fn last_id(&self, name: &str) -> Result<u64> {
        Ok(self
            .records(name)?
            .iter()
            .map(|e| num(e, "id"))
            .max()
            .unwrap_or(0))
    }

    fn cli(&self, args: &[&str]) -> Result<CliOutput> {
        self.dev.cli(args)
    }
}

/// The JSON array of a list answer.
fn list(answer: &Answer) -> Result<Vec<Value>> {
    answer
        .json()?
        .as_array()
        .cloned()
        .ok_or_else(|| anyhow!("not a JSON array:\n{answer}"))
}

fn names(answer: &Answer) -> Result<Vec<String>> {
    Ok(list(answer)?
        .iter()
        .map(|j| field(j, "name").to_string())
        .collect())
}

fn is_final_status(status: &str) -> bool {
    !matches!(status, "" | "pending" | "running")
}

/// A Dkron execution that has ended (run or skipped).
fn is_final(e: &Value) -> bool {
    is_final_status(field(e, "status"))
}

fn time(e: &Value, name: &str) -> Result<DateTime<Utc>> {
    field(e, name)
        .parse()
        .with_context(|| format!("{name} is not RFC 3339 in {e}"))
}

/// The Dkron job document `doc` with `extra` members added (the documentation's
/// executor examples are fragments: they need a name and a schedule to be a job).
fn job_with(doc: Value, extra: Value) -> String {
    let mut doc = doc;
    if let (Some(d), Some(x)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            d.insert(k.clone(), v.clone());
        }
    }
    doc.to_string()
}

// ---- Dkron's documentation, example by example ----

/// basics/getting-started.md: `job1`, posted with curl's `-d`, runs on one node with
/// the tag `server=true` (kairos dev's executor) every 10 s and records `date`'s output.
#[test]
fn getting_started_job1_runs_date_on_one_server_node() -> Result<()> {
    let node = Node::start()?;
    let doc = r#"{
  "name": "job1",
  "schedule": "@every 10s",
  "timezone": "Europe/Berlin",
  "owner": "Platform Team",
  "owner_email": "platform@example.com",
  "disabled": false,
  "tags": {
    "server": "true:1"
  },
  "metadata": {
    "user": "12345"
  },
  "concurrency": "allow",
  "executor": "shell",
  "executor_config": {
    "command": "date"
  }
}"#;
    let answer = node.expect(Request::form("/v1/jobs", doc), 201)?;
    node.ensure(
        answer.header("location") == Some("/v1/jobs/job1"),
        "Location names the new job",
    )?;
    let job = answer.json()?;
    for (name, want) in [
        ("name", "job1"),
        ("schedule", "@every 10s"),
        ("timezone", "Europe/Berlin"),
        ("owner", "Platform Team"),
        ("owner_email", "platform@example.com"),
        ("concurrency", "allow"),
        ("executor", "shell"),
    ] {
        node.ensure(field(&job, name) == want, format!("{name} is {want:?}"))?;
    }
    node.ensure(job["tags"] == json!({"server": "true:1"}), "tags as posted")?;
    node.ensure(
        job["metadata"] == json!({"user": "12345"}),
        "metadata as posted",
    )?;
    node.ensure(
        job["executor_config"]["command"] == json!("date"),
        "the command",
    )?;
    // `@every 10s` is anchored to the epoch: the next fire is on a 10 s boundary.
    let next = time(&job, "next")?;
    node.ensure(
        next.second().is_multiple_of(10) && next.nanosecond() == 0,
        "next is on a 10 s boundary",
    )?;

    let run = node.wait_success("job1")?;
    node.ensure(
        field(&run, "node_name") == "local",
        "job1 ran on the server node",
    )?;
    // `date`'s output: "Tue Dec  8 03:59:20 UTC 2026\n", the year of the run last.
    let started = time(&run, "started_at")?;
    let out = field(&run, "output");
    let words: Vec<&str> = out.split_whitespace().collect();
    let clock = words
        .iter()
        .filter(|w| w.len() == 8 && w.matches(':').count() == 2);
    node.ensure(
        out.ends_with('\n')
            && words.len() >= 5
            && words.last() == Some(&started.year().to_string().as_str())
            && clock.count() == 1,
        format!("{out:?} is not date's output for a run started at {started}"),
    )?;
    let job = node.get_job("job1")?;
    node.ensure(
        num(&job, "success_count") >= 1 && !field(&job, "last_success").is_empty(),
        "the job counts its success",
    )?;
    // One server node, "true:1": each fire ran once, not as a fan-out group.
    for e in node.records("job1")? {
        node.ensure(
            matches!(field(&e, "group"), "" | "0") || field(&e, "group") == field(&e, "id"),
            format!("a fire with more than one execution: {e}"),
        )?;
    }
    Ok(())
}

/// usage/executors/shell.md: each example, given a name and a schedule, runs as
/// documented (the paths of the examples that name files on Dkron's hosts are made
/// in the test's directory); `timeout` takes a Go duration and stops the run;
/// `mem_limit` is refused by name, and nothing is created.
#[test]
fn shell_executor_examples_run_as_documented() -> Result<()> {
    let node = Node::start()?;
    let dir = node.path().to_string_lossy().into_owned();
    let named = |name: &str| json!({"name": name, "schedule": "@every 1h"});

    // Simple command execution: the words, no shell.
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {"command": "echo Hello Dkron"}}),
        named("simple"),
    ))?;
    let run = node.wait_success("simple")?;
    node.ensure(field(&run, "output") == "Hello Dkron\n", "echo's words")?;

    // Using shell features: a pipe, counted by wc.
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {
            "shell": "true", "command": "ps aux | grep nginx | wc -l"}}),
        named("pipe"),
    ))?;
    let run = node.wait_success("pipe")?;
    let out = field(&run, "output").trim().to_string();
    node.ensure(
        out.parse::<u32>().is_ok_and(|n| n >= 1),
        format!("wc -l counted the pipe's lines: {out:?}"),
    )?;

    // Setting environment variables (the script reads them; here echo does).
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {
            "shell": "true", "command": "echo $DATA_PATH $LOG_LEVEL $API_KEY",
            "env": "DATA_PATH=/data/incoming,LOG_LEVEL=info,API_KEY=secret123"}}),
        named("env"),
    ))?;
    let run = node.wait_success("env")?;
    node.ensure(
        field(&run, "output") == "/data/incoming info secret123\n",
        "the env reached the command",
    )?;

    // Changing the working directory: ./run_backup.sh found in cwd.
    let backups = node.path().join("backups");
    std::fs::create_dir_all(&backups)?;
    let script = backups.join("run_backup.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"backup in $(pwd)\"\n")?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {
            "shell": "true", "command": "./run_backup.sh",
            "cwd": backups.to_string_lossy()}}),
        named("cwd"),
    ))?;
    let run = node.wait_success("cwd")?;
    node.ensure(
        field(&run, "output") == format!("backup in {}\n", backups.display()),
        "the script ran in cwd",
    )?;

    // Setting a timeout: "1h30m" is taken and read back.
    let job = node.post_job(&job_with(
        json!({"executor": "shell", "executor_config": {
            "command": "/opt/scripts/long_running_task.sh", "timeout": "1h30m"}}),
        named("timeout-doc"),
    ))?;
    node.ensure(
        job["executor_config"]["timeout"] == json!("1h30m"),
        "the timeout reads back",
    )?;
    // ... and a timeout stops a run that outlives it.
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {"command": "sleep 30", "timeout": "1s"}}),
        named("timeout-short"),
    ))?;
    let [run] = <[Value; 1]>::try_from(node.wait_final("timeout-short", 1)?)
        .map_err(|v| node.fail(format!("one run expected: {v:?}")))?;
    let took = time(&run, "finished_at")? - time(&run, "started_at")?;
    node.ensure(
        run["success"] == json!(false)
            && field(&run, "status") == "timed_out"
            && took < chrono::TimeDelta::seconds(20),
        format!("a 1s timeout did not stop sleep 30: {run}"),
    )?;

    // Setting a memory limit, alone or with a timeout: refused, naming the field.
    for (name, config) in [
        (
            "mem",
            json!({"command": "/opt/scripts/memory_intensive_task.sh", "mem_limit": "512MB"}),
        ),
        (
            "mem-timeout",
            json!({"command": "/opt/scripts/resource_intensive_task.sh",
                "timeout": "30m", "mem_limit": "1GB"}),
        ),
    ] {
        let doc = job_with(
            json!({"executor": "shell", "executor_config": config}),
            named(name),
        );
        let answer = node.expect(Request::form("/v1/jobs", &doc), 400)?;
        node.ensure(
            answer.error().contains("executor_config.mem_limit"),
            "the refusal names executor_config.mem_limit",
        )?;
        node.expect(Request::get(&format!("/v1/jobs/{name}")), 404)?;
    }

    // Running a multi-line script (its `cd /tmp` moved to the test's directory).
    let command = format!(
        "#!/bin/bash\necho 'Starting job'\ncd {dir}\ndate > last_run.txt\necho 'Job completed'"
    );
    node.post_and_run(&job_with(
        json!({"executor": "shell", "executor_config": {"shell": "true", "command": command}}),
        named("multiline"),
    ))?;
    let run = node.wait_success("multiline")?;
    node.ensure(
        field(&run, "output") == "Starting job\nJob completed\n",
        "both lines of the script",
    )?;
    node.ensure(
        node.path().join("last_run.txt").exists(),
        "the script wrote last_run.txt",
    )?;
    Ok(())
}

/// usage/executors/http.md: the example against a server of the test. `timeout` is in
/// seconds; a code outside `expectCode` ("200,206") is a failure.
#[test]
fn http_executor_example_checks_the_code_and_counts_seconds() -> Result<()> {
    let node = Node::start()?;
    let server = TestServer::start()?;
    let http = |name: &str, url: String, timeout: &str| {
        json!({
            "name": name,
            "schedule": "@every 1h",
            "executor": "http",
            "executor_config": {
                "method": "GET",
                "url": url,
                "headers": "[]",
                "body": "",
                "timeout": timeout,
                "expectCode": "200,206",
                "expectBody": "",
                "debug": "true"
            }
        })
        .to_string()
    };
    let job = node.post_and_run(&http("http-ok", server.url("/ok"), "30"))?;
    node.ensure(
        job["executor_config"]["timeout"] == json!("30")
            && job["executor_config"]["expectCode"] == json!("200,206"),
        "timeout and expectCode read back as posted",
    )?;
    let run = node.wait_success("http-ok")?;
    node.ensure(
        field(&run, "output").contains("hello from the test server"),
        "the response body is the output",
    )?;
    node.ensure(
        server.hits("/ok").len() == 1,
        "one request reached the server",
    )?;

    node.post_and_run(&http("http-broken", server.url("/broken"), "30"))?;
    let [run] = <[Value; 1]>::try_from(node.wait_final("http-broken", 1)?)
        .map_err(|v| node.fail(format!("one run expected: {v:?}")))?;
    node.ensure(
        run["success"] == json!(false) && field(&run, "status") == "failed",
        "a 500 is a failure when 200,206 are expected",
    )?;
    let job = node.get_job("http-broken")?;
    node.ensure(
        num(&job, "error_count") == 1 && field(&job, "status") == "failed",
        "the job counts the failure",
    )?;

    // "1" is one second: /slow answers after 30.
    node.post_and_run(&http("http-slow", server.url("/slow"), "1"))?;
    let [run] = <[Value; 1]>::try_from(node.wait_final("http-slow", 1)?)
        .map_err(|v| node.fail(format!("one run expected: {v:?}")))?;
    let took = time(&run, "finished_at")? - time(&run, "started_at")?;
    node.ensure(
        run["success"] == json!(false) && took < chrono::TimeDelta::seconds(20),
        format!("a timeout of \"1\" did not stop the request within seconds: {run}"),
    )?;
    Ok(())
}

/// usage/metatags.md: the job with `metadata`, found with the `metadata[user_id]`
/// filter. The page's curl line lacks `-G`, so curl POSTs the pair as a form: that is
/// no job document, refused (400) without creating anything; as a GET query it filters.
#[test]
fn metadata_is_kept_and_filters_the_job_list() -> Result<()> {
    let node = Node::start()?;
    node.post_job(
        r#"{
    "name": "job_name",
    "command": "/bin/true",
    "schedule": "@every 2m",
    "metadata": {
        "user_id": "12345"
    }
}"#,
    )?;
    node.post_job(
        r#"{"name": "other_job", "command": "/bin/true", "schedule": "@every 2m",
            "metadata": {"user_id": "67890"}}"#,
    )?;
    node.post_job(r#"{"name": "plain_job", "command": "/bin/true", "schedule": "@every 2m"}"#)?;

    // curl http://localhost:8080/v1/jobs --data-urlencode "metadata[user_id]=12345"
    let answer = node.expect(
        Request::form("/v1/jobs", "metadata%5Buser_id%5D=12345"),
        400,
    )?;
    node.ensure(answer.error().contains("job"), "the refusal says why")?;

    // With -G: the filter.
    let answer = node.expect(Request::get("/v1/jobs?metadata%5Buser_id%5D=12345"), 200)?;
    node.ensure(
        names(&answer)? == ["job_name"],
        "only job_name has user_id 12345",
    )?;
    node.ensure(
        answer.header("x-total-count") == Some("1"),
        "X-Total-Count 1",
    )?;
    let job = &list(&answer)?[0];
    node.ensure(
        job["metadata"] == json!({"user_id": "12345"}) && field(job, "executor") == "shell",
        "the metadata as posted; a top-level command is a shell job",
    )?;
    // Every pair must match.
    let answer = node.expect(
        Request::get("/v1/jobs?metadata%5Buser_id%5D=12345&metadata%5Bteam%5D=x"),
        200,
    )?;
    node.ensure(names(&answer)?.is_empty(), "no job has both pairs")?;
    let answer = node.expect(Request::get("/v1/jobs"), 200)?;
    node.ensure(
        answer.header("x-total-count") == Some("3"),
        "the refused form post created nothing",
    )?;
    Ok(())
}

/// usage/chaining.md: the parent and the child, posted in that order; the child
/// runs after each successful run of its parent and never on a schedule of its own
/// (a schedule given to a child is ignored, as the page says).
#[test]
fn a_child_job_runs_after_its_parent_succeeds() -> Result<()> {
    let node = Node::start()?;
    node.post_job(
        r#"{
  "name": "job1",
  "schedule": "@every 10s",
  "executor": "shell",
  "executor_config": {
    "command": "echo \"Hello from parent\""
  }
}"#,
    )?;
    node.post_job(
        r#"{
  "name": "child_job",
  "parent_job": "job1",
  "executor": "shell",
  "executor_config": {
    "command": "echo \"Hello from child\""
  }
}"#,
    )?;
    node.post_job(
        r#"{"name": "child_with_schedule", "parent_job": "job1", "schedule": "@every 1s",
            "executor": "shell", "executor_config": {"command": "echo scheduled child"}}"#,
    )?;
    let parent = node.get_job("job1")?;
    let mut dependents: Vec<String> = parent["dependent_jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    dependents.sort();
    node.ensure(
        dependents == ["child_job", "child_with_schedule"],
        "the parent lists its dependents",
    )?;
    let child = node.get_job("child_job")?;
    node.ensure(
        field(&child, "parent_job") == "job1" && child["next"].is_null(),
        "the child has its parent and no next fire of its own",
    )?;

    let run = node.wait_success("child_job")?;
    node.ensure(
        field(&run, "output") == "Hello from child\n",
        "the child's words, quotes removed as Dkron's word split does",
    )?;
    node.wait_success("child_with_schedule")?;
    let parents = node.records("job1")?;
    for name in ["child_job", "child_with_schedule"] {
        for e in node.records(name)? {
            node.ensure(
                field(&e, "trigger") == "dependency",
                format!("{name} started other than by its parent: {e}"),
            )?;
            if field(&e, "startedAt").is_empty() {
                continue;
            }
            let started = time(&e, "startedAt")?;
            let after_success = parents.iter().any(|p| {
                field(p, "status") == "succeeded"
                    && time(p, "finishedAt").is_ok_and(|f| f <= started)
            });
            node.ensure(
                after_success,
                format!("{name} started before any parent success: {e}\nparent: {parents:?}"),
            )?;
        }
    }
    let parent_run = node.wait_success("job1")?;
    node.ensure(
        field(&parent_run, "output") == "Hello from parent\n",
        "the parent's words",
    )?;
    Ok(())
}

/// usage/concurrency.md: the example is taken; with `forbid` a fire while a run is
/// still going is skipped (Kairos records it as `skipped_overlap`), and runs never
/// overlap.
#[test]
fn concurrency_forbid_skips_fires_while_a_run_goes_on() -> Result<()> {
    let node = Node::start()?;
    let job = node.post_job(
        r#"{
  "name": "job1",
  "schedule": "@every 10s",
  "executor": "shell",
  "executor_config": {
    "command": "echo \"Hello from parent\""
  },
  "concurrency": "forbid"
}"#,
    )?;
    node.ensure(field(&job, "concurrency") == "forbid", "forbid reads back")?;
    node.post_job(
        r#"{"name": "slow", "schedule": "@every 1s", "concurrency": "forbid",
            "executor": "shell", "executor_config": {"command": "sleep 3"}}"#,
    )?;
    let records = node.poll("two runs and a skipped fire of slow", || {
        let records = node.records("slow")?;
        let ran = records
            .iter()
            .filter(|e| field(e, "status") == "succeeded")
            .count();
        let skipped = records
            .iter()
            .any(|e| field(e, "status") == "skipped_overlap");
        Ok((ran >= 2 && skipped).then_some(records))
    })?;
    node.expect(Request::post("/v1/jobs/slow/toggle", ""), 200)?;
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = records
        .iter()
        .filter(|e| field(e, "status") == "succeeded")
        .map(|e| Ok((time(e, "startedAt")?, time(e, "finishedAt")?)))
        .collect::<Result<_>>()?;
    spans.sort();
    for pair in spans.windows(2) {
        node.ensure(
            pair[1].0 >= pair[0].1,
            format!("two runs overlapped: {pair:?}"),
        )?;
    }
    Ok(())
}

/// usage/retries.md: the example is taken; a failing command with `retries: 2` runs
/// three times in all (attempts 1, 2 and 3) and then stops, failed.
#[test]
fn retries_run_a_failing_job_again_and_then_stop() -> Result<()> {
    let node = Node::start()?;
    let job = node.post_job(
        r#"{
  "name": "job1",
  "schedule": "@every 10s",
  "executor": "shell",
  "executor_config": {
    "command": "echo \"Hello from parent\""
  },
  "retries": 5
}"#,
    )?;
    node.ensure(job["retries"] == json!(5), "retries reads back")?;
    node.post_and_run(
        r#"{"name": "flaky", "schedule": "@every 1h", "retries": 2,
            "executor": "shell", "executor_config": {"shell": "true",
            "command": "echo attempt $KAIROS_ATTEMPT; exit 3"}}"#,
    )?;
    // The third attempt's end ends the run: it is the last one `retries: 2` allows.
    let third_done = |after: u64| -> Result<Vec<Value>> {
        node.poll("the third attempt of flaky to end", || {
            let new: Vec<Value> = node
                .records("flaky")?
                .into_iter()
                .filter(|e| num(e, "id") > after)
                .collect();
            let done = new.iter().any(|e| {
                num(e, "attempt") == 3 && is_final(e) && is_final_status(field(e, "groupStatus"))
            });
            Ok(done.then_some(new))
        })
    };
    let attempts = third_done(0)?;
    let numbers: Vec<u64> = attempts.iter().map(|e| num(e, "attempt")).collect();
    node.ensure(
        numbers == [1, 2, 3],
        format!("attempts 1, 2, 3: {attempts:?}"),
    )?;
    let triggers: Vec<&str> = attempts.iter().map(|e| field(e, "trigger")).collect();
    node.ensure(
        triggers == ["manual", "retry", "retry"],
        format!("a run and two retries: {triggers:?}"),
    )?;
    for e in &attempts {
        node.ensure(
            field(e, "status") == "failed"
                && field(e, "output") == format!("attempt {}\n", num(e, "attempt")),
            format!("each attempt ran and failed: {e}"),
        )?;
    }
    let job = node.get_job("flaky")?;
    node.ensure(
        field(&job, "status") == "failed"
            && num(&job, "success_count") == 0
            && num(&job, "error_count") == 3,
        "the job ends failed, three errors counted",
    )?;
    // A second run goes through its own three attempts; the first gained none.
    let last = attempts.iter().map(|e| num(e, "id")).max().unwrap_or(0);
    node.run("flaky")?;
    let second = third_done(last)?;
    node.ensure(
        second.len() == 3,
        format!("the second run's three attempts: {second:?}"),
    )?;
    let listed = node.executions("flaky")?;
    node.ensure(
        listed.len() == 6,
        "Dkron's listing has the six attempts, three per run",
    )?;
    Ok(())
}

/// usage/cron-spec.md: six fields with seconds, the special characters, the
/// descriptors, `@every` and `@at` are taken, and the next fire is where the page
/// says; a six-field expression fires on its seconds.
#[test]
fn cron_spec_examples_are_accepted_and_fire_on_their_seconds() -> Result<()> {
    let node = Node::start()?;
    let accepted = [
        "* * * * * *",
        "0 */15 * * * *",
        "0 0 0 * * MON,WED,FRI",
        "0 0 9-17 * * *",
        "0 0 0 1 * ?",
        "0 0 8 * * 1-5",
        "0 */10 9-17 * * 1-5",
        "0 0 3 1 * *",
        "0 0 0 1 1,4,7,10 *",
        "0 0 22 * * 0,6",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@minutely",
        "@every 1h30m10s",
        "@at 2023-12-31T23:59:00Z",
    ];
    for (i, schedule) in accepted.iter().enumerate() {
        let doc = json!({"name": format!("cron-{i}"), "schedule": schedule, "disabled": true,
            "executor": "shell", "executor_config": {"command": "true"}});
        let job = node.post_job(&doc.to_string())?;
        node.ensure(
            field(&job, "schedule") == *schedule,
            format!("{schedule:?} reads back"),
        )?;
    }
    // Where the next fire falls (the jobs are enabled for it).
    let next_of = |name: &str, schedule: &str, tz: &str| -> Result<DateTime<Utc>> {
        let doc = json!({"name": name, "schedule": schedule, "timezone": tz,
            "executor": "shell", "executor_config": {"command": "true"}});
        time(&node.post_job(&doc.to_string())?, "next")
    };
    let now = Utc::now();
    let weekday = next_of("weekday-8am", "0 0 8 * * 1-5", "UTC")?;
    node.ensure(
        (weekday.hour(), weekday.minute(), weekday.second()) == (8, 0, 0)
            && !matches!(weekday.weekday(), Weekday::Sat | Weekday::Sun)
            && weekday > now,
        format!("0 0 8 * * 1-5: next {weekday}"),
    )?;
    let business = next_of("business", "0 */10 9-17 * * 1-5", "UTC")?;
    node.ensure(
        business.minute().is_multiple_of(10)
            && business.second() == 0
            && (9..=17).contains(&business.hour())
            && !matches!(business.weekday(), Weekday::Sat | Weekday::Sun),
        format!("0 */10 9-17 * * 1-5: next {business}"),
    )?;
    // 8 AM in New York is 12:00 UTC in summer (EDT) and 13:00 in winter (EST).
    let ny = next_of("new-york-8am", "0 0 8 * * *", "America/New_York")?;
    node.ensure(
        matches!(ny.hour(), 12 | 13) && (ny.minute(), ny.second()) == (0, 0),
        format!("8 AM New York time: next {ny}"),
    )?;
    let at = next_of("at-once", "@at 2030-01-01T00:00:00Z", "UTC")?;
    node.ensure(
        at == "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>()?,
        format!("@at: next {at}"),
    )?;

    // "*/2 * * * * *" fires on even seconds.
    node.post_job(
        r#"{"name": "even-seconds", "schedule": "*/2 * * * * *", "executor": "shell",
            "executor_config": {"shell": "true", "command": "echo $KAIROS_SCHEDULED_AT"}}"#,
    )?;
    let runs = node.poll("two runs of even-seconds", || {
        let done: Vec<Value> = node
            .executions("even-seconds")?
            .into_iter()
            .filter(|e| e["success"] == json!(true))
            .collect();
        Ok((done.len() >= 2).then_some(done))
    })?;
    node.expect(Request::post("/v1/jobs/even-seconds/toggle", ""), 200)?;
    for run in &runs {
        let at: DateTime<Utc> = field(run, "output")
            .trim()
            .parse()
            .with_context(|| format!("not an instant: {run}"))?;
        node.ensure(
            at.second().is_multiple_of(2) && at.nanosecond() == 0,
            format!("fired off an even second: {run}"),
        )?;
    }
    Ok(())
}

/// usage/cron-spec.md's own forms: the tilde (a minute derived from the job's name)
/// and `@manually`, taken and read back as written.
#[test]
fn cron_spec_tilde_and_manually_are_accepted() -> Result<()> {
    let node = Node::start()?;
    for (name, schedule) in [
        ("tilde", "0 ~ * * * *"),
        ("tilde-step", "0 ~/15 * * * *"),
        ("manually", "@manually"),
    ] {
        let doc = json!({"name": name, "schedule": schedule,
            "executor": "shell", "executor_config": {"command": "true"}});
        let job = node.post_job(&doc.to_string())?;
        node.ensure(
            field(&job, "schedule") == schedule,
            format!("{schedule:?} reads back"),
        )?;
    }
    // The tilde's minute is the job's own and stays put.
    let first = time(&node.get_job("tilde")?, "next")?;
    node.ensure(first.second() == 0, "on a whole minute")?;
    let again = node.post_job(
        &json!({"name": "tilde", "schedule": "0 ~ * * * *",
            "executor": "shell", "executor_config": {"command": "true"}})
        .to_string(),
    )?;
    node.ensure(
        time(&again, "next")? == first,
        "the same name, the same minute",
    )?;
    node.ensure(
        node.get_job("manually")?["next"].is_null(),
        "@manually never fires by itself",
    )?;
    Ok(())
}

/// usage/target-nodes-spec.md with two executors tagged `my_role=web` (and
/// `role=dkron`) beside kairos dev's `server=true` one: a tag without a count runs a
/// fire on every match, `web:1` on one, several counts take the smallest, tags are
/// ANDed, and a job nobody matches does not run.
#[test]
fn target_tags_pick_every_match_or_a_count() -> Result<()> {
    let mut node = Node::start()?;
    node.add_executor("web-1", &["my_role=web", "role=dkron"])?;
    node.add_executor("web-2", &["my_role=web", "role=dkron"])?;
    let fire = |node: &Node, tags: Value| -> Result<Vec<Value>> {
        let mut doc = json!({
            "name": "job_name",
            "command": "/bin/true",
            "schedule": "@every 2m",
        });
        doc["tags"] = tags;
        node.post_job(&doc.to_string())?;
        let after = node.last_id("job_name")?;
        node.run("job_name")?;
        node.wait_group_after("job_name", after)
    };
    let ran_on = |runs: &[Value]| -> BTreeSet<String> {
        runs.iter()
            .filter(|e| field(e, "status") == "succeeded")
            .map(|e| field(e, "executor").to_string())
            .collect()
    };
    let web: BTreeSet<String> = ["web-1", "web-2"].map(String::from).into();

    let runs = fire(&node, json!({"my_role": "web"}))?;
    node.ensure(
        runs.len() == 2 && ran_on(&runs) == web,
        format!("\"web\" runs on every web node: {runs:?}"),
    )?;
    let runs = fire(&node, json!({"my_role": "web:1"}))?;
    node.ensure(
        runs.len() == 1 && ran_on(&runs).is_subset(&web) && ran_on(&runs).len() == 1,
        format!("\"web:1\" runs on one web node: {runs:?}"),
    )?;
    let runs = fire(&node, json!({"my_role": "web:1", "role": "dkron:2"}))?;
    node.ensure(
        runs.len() == 1 && ran_on(&runs).len() == 1,
        format!("the lowest count, one: {runs:?}"),
    )?;
    let runs = fire(&node, json!({"my_role": "web", "role": "dkron"}))?;
    node.ensure(
        ran_on(&runs) == web,
        format!("both tags, every node that has both: {runs:?}"),
    )?;
    let runs = fire(&node, json!({"server": "true:1"}))?;
    node.ensure(
        ran_on(&runs) == BTreeSet::from(["local".to_string()]),
        format!("\"server\": \"true:1\" runs on the server node only: {runs:?}"),
    )?;
    let runs = fire(&node, json!({"my_role": "db"}))?;
    node.ensure(
        runs.len() == 1 && field(&runs[0], "status") == "no_target" && ran_on(&runs).is_empty(),
        format!("no matching node, no run: {runs:?}"),
    )?;
    Ok(())
}

// ---- Dkron's API tests (dkron/api_test.go), ported ----

/// Posts `body` as Dkron's Go tests do (`http.Post(url, "encoding/json", ...)`).
fn go_post(body: &str) -> Request<'_> {
    Request::post("/v1/jobs", body).with_content_type("encoding/json")
}

/// TestAPIJobCreateUpdate, the parent tests, KeepDependents, the validation tests and
/// TestAPIGetNonExistentJobReturnsNotFound. A parent that does not exist is Dkron's
/// 404 (with Kairos's JSON error naming `parent_job`), and nothing is written.
#[test]
fn dkron_api_tests_for_job_writes() -> Result<()> {
    let node = Node::start()?;

    // TestAPIJobCreateUpdate: a second post of the same name overwrites.
    let orig = node
        .expect(
            go_post(
                r#"{"name": "test_job", "schedule": "@every 1m", "executor": "shell",
                "executor_config": {"command": "date"}, "owner": "mec",
                "owner_email": "foo@bar.com", "disabled": true}"#,
            ),
            201,
        )?
        .json()?;
    let over = node
        .expect(
            go_post(
                r#"{"name": "test_job", "schedule": "@every 1m", "executor": "shell",
                "executor_config": {"command": "test"}, "disabled": false}"#,
            ),
            201,
        )?
        .json()?;
    node.ensure(
        field(&orig, "name") == field(&over, "name")
            && over["disabled"] == json!(false)
            && over["executor_config"]["command"] == json!("test")
            && orig["executor_config"]["command"] == json!("date"),
        "the second post overwrote the first",
    )?;
    node.ensure(
        node.get_job("test_job")?["executor_config"]["command"] == json!("test"),
        "stored as overwritten",
    )?;

    // TestAPIJobCreateUpdateParentJob_SameParent.
    let answer = node.expect(
        go_post(
            r#"{"name": "self_job", "schedule": "@every 1m", "command": "date",
            "owner": "mec", "owner_email": "foo@bar.com", "disabled": true,
            "parent_job": "self_job"}"#,
        ),
        400,
    )?;
    node.ensure(
        answer.error().contains("parent") && answer.error().contains("own parent"),
        "the refusal says a job cannot be its own parent",
    )?;

    // _NoParent and TestAPIJobCreateUpdateJobWithInvalidParentIsNotCreated.
    let answer = node.expect(
        go_post(
            r#"{"name": "orphan_job", "schedule": "@every 1m", "command": "date",
            "owner": "mec", "owner_email": "foo@bar.com", "disabled": true,
            "parent_job": "parent_test_job"}"#,
        ),
        404,
    )?;
    node.ensure(
        answer.error().contains("parent_job") && answer.error().contains("parent_test_job"),
        "the refusal names parent_job and the missing job",
    )?;
    node.expect(Request::get("/v1/jobs/orphan_job"), 404)?;

    // _KeepDependents: re-posting the parent keeps its child.
    for doc in [
        r#"{"name": "parentjobkeep", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}"#,
        r#"{"name": "childjobkeep", "parent_job": "parentjobkeep", "schedule": "@every 1m",
            "executor": "shell", "executor_config": {"command": "date"}, "disabled": true}"#,
        r#"{"name": "parentjobkeep", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}"#,
    ] {
        node.expect(go_post(doc), 201)?;
    }
    node.ensure(
        node.get_job("parentjobkeep")?["dependent_jobs"] == json!(["childjobkeep"]),
        "the parent keeps its dependent",
    )?;

    // ValidName, the part Kairos's names allow (ASCII; see the report on unicode).
    node.expect(
        go_post(
            r#"{"name": "abcdefghijklmnopqrstuvwxyz0123456789-_", "schedule": "@every 1m",
            "executor": "shell", "executor_config": {"command": "date"}, "disabled": true}"#,
        ),
        201,
    )?;

    // The refusals, each naming its field; nothing is written.
    let refused = [
        (
            "BadName",
            r#"{"name": "BAD JOB NAME!", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}"#,
            "name",
        ),
        (
            "EmptyName",
            r#"{"name": "", "parent_job": "test_job", "schedule": "@every 1m",
            "executor": "shell", "executor_config": {"command": "date"}, "disabled": true}"#,
            "name",
        ),
        (
            "BadSchedule",
            r#"{"name": "testjob", "schedule": "@at badtime", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true}"#,
            "schedule",
        ),
        (
            "BadConcurrency",
            r#"{"name": "testjob", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "concurrency": "badvalue",
            "disabled": true}"#,
            "concurrency",
        ),
        (
            "BadTimezone",
            r#"{"name": "testjob", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date"}, "disabled": true,
            "timezone": "notatimezone"}"#,
            "timezone",
        ),
        (
            "BadShellExecutorTimeout",
            r#"{"name": "testjob", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"command": "date", "timeout": "foreverandever"},
            "disabled": true}"#,
            "executor_config.timeout",
        ),
    ];
    for (case, doc, field_name) in refused {
        let answer = node.expect(go_post(doc), 400)?;
        node.ensure(
            answer
                .error()
                .starts_with(&format!("invalid {field_name}:")),
            format!("{case}: the refusal names {field_name}"),
        )?;
    }
    node.expect(Request::get("/v1/jobs/testjob"), 404)?;

    // TestAPIGetNonExistentJobReturnsNotFound.
    node.expect(Request::get("/v1/jobs/notajob"), 404)?;
    let answer = node.expect(Request::get("/v1/jobs"), 200)?;
    node.ensure(
        names(&answer)?
            == [
                "abcdefghijklmnopqrstuvwxyz0123456789-_",
                "childjobkeep",
                "parentjobkeep",
                "test_job",
            ],
        "exactly the jobs that were accepted",
    )?;
    Ok(())
}

/// TestAPIJobRestore with Dkron's own fixture (scripts/testBackupJobs.json: eight
/// http jobs, two chains, an export's nulls and counts), its `url`s pointed at a
/// server of the test: every job is restored, parents before children, restoring
/// again overwrites, and a restored chain fires.
#[test]
fn restore_takes_a_dkron_export_with_its_chains() -> Result<()> {
    let node = Node::start()?;
    let server = TestServer::start()?;
    let export = dkron_backup_fixture(&server.url("/hook"));
    let form = multipart_file("file", "testBackupJobs.json", &export.to_string());
    for round in ["first", "second"] {
        let answer = node.expect(Request::multipart("/v1/restore", &form), 200)?;
        // Dkron answers a JSON string that holds a JSON array of lines.
        let lines: Vec<String> = answer
            .json()?
            .as_str()
            .map(serde_json::from_str)
            .transpose()?
            .ok_or_else(|| node.fail("the answer is not a JSON string"))?;
        node.ensure(
            lines.len() == 8 && lines.iter().all(|l| l.starts_with("success create task")),
            format!("{round} restore: every job restored: {lines:?}"),
        )?;
    }
    let answer = node.expect(Request::get("/v1/jobs"), 200)?;
    node.ensure(
        names(&answer)? == (1..=8).map(|i| format!("task{i}")).collect::<Vec<_>>(),
        "the eight jobs",
    )?;
    for (name, parent, dependents) in [
        ("task2", "", json!(["task3"])),
        ("task3", "task2", json!([])),
        ("task5", "task4", json!(["task6", "task7"])),
        ("task8", "task6", json!([])),
    ] {
        let job = node.get_job(name)?;
        node.ensure(
            field(&job, "parent_job") == parent && job["dependent_jobs"] == dependents,
            format!("{name}'s chain"),
        )?;
        node.ensure(
            job["success_count"] == json!(0) && field(&job, "concurrency") == "forbid",
            format!("{name}: the export's counts are not taken, its settings are"),
        )?;
    }
    // task2 runs, then task3 after it: two POSTs with the body of the export.
    node.run("task2")?;
    let hits = node.poll("task2 and task3 to call the server", || {
        let hits = server.hits("/hook");
        Ok((hits.len() >= 2).then_some(hits))
    })?;
    node.ensure(
        hits.iter()
            .all(|h| h.body.contains("\"partner_id\": \"3123\"")),
        "each call carried the export's body",
    )?;
    node.wait_success("task3")?;
    Ok(())
}

/// scripts/testBackupJobs.json of Dkron's repository, as it is there but for `url`
/// (`xxxxxxxxxxxxx` in the original, which Kairos refuses as not a URL).
fn dkron_backup_fixture(url: &str) -> Value {
    let chain: [(&str, &str, Value); 8] = [
        ("task1", "", Value::Null),
        ("task2", "", json!(["task3"])),
        ("task3", "task2", Value::Null),
        ("task4", "", json!(["task5"])),
        ("task5", "task4", json!(["task6", "task7"])),
        ("task6", "task5", json!(["task8"])),
        ("task7", "task5", Value::Null),
        ("task8", "task6", Value::Null),
    ];
    Value::Array(
        chain
            .into_iter()
            .map(|(name, parent, dependents)| {
                json!({
                    "name": name,
                    "displayname": "",
                    "timezone": "",
                    "schedule": "0 0 17 * * *",
                    "owner": "",
                    "owner_email": "",
                    "success_count": 26,
                    "error_count": 6,
                    "last_success": "2019-11-04T04:37:12.396866367Z",
                    "last_error": "2019-11-27T15:17:47.925761Z",
                    "disabled": false,
                    "tags": null,
                    "metadata": null,
                    "retries": 0,
                    "dependent_jobs": dependents,
                    "parent_job": parent,
                    "processors": {},
                    "concurrency": "forbid",
                    "executor": "http",
                    "executor_config": {
                        "body": "{\"partner_id\": \"3123\",\"user_id\": \"14123\"}",
                        "debug": "true",
                        "expectBody": "",
                        "expectCode": "200",
                        "headers": "[]",
                        "method": "POST",
                        "timeout": "30",
                        "url": url
                    },
                    "status": "success",
                    "next": "2019-12-09T09:00:00Z"
                })
            })
            .collect(),
    )
}

/// TestAPIJobOutputTruncate: the executions of a job with none are `[]`; then a run
/// that printed `test` and one that printed 1705 bytes; `output_size_limit=200` keeps
/// the last 200 bytes of the long one (`output_truncated`), the single execution's
/// endpoint has it whole.
#[test]
fn output_size_limit_truncates_the_listing_only() -> Result<()> {
    let node = Node::start()?;
    let job = |command: &str| {
        json!({"name": "test_job", "schedule": "@every 1m", "executor": "shell",
            "executor_config": {"shell": "true", "command": command},
            "owner": "mec", "owner_email": "foo@bar.com", "disabled": true})
        .to_string()
    };
    node.expect(go_post(&job("printf test")), 201)?;
    let answer = node.expect(Request::get("/v1/jobs/test_job/executions"), 200)?;
    node.ensure(answer.body == "[]", "no executions: []")?;

    node.run("test_job")?;
    node.wait_final("test_job", 1)?;
    let long = format!("test {}", "longer output... ".repeat(100));
    node.expect(
        go_post(&job(
            "printf 'test '; i=0; while [ $i -lt 100 ]; do printf 'longer output... '; i=$((i+1)); done",
        )),
        201,
    )?;
    node.run("test_job")?;
    node.wait_final("test_job", 2)?;

    let answer = node.expect(Request::get("/v1/jobs/test_job/executions"), 200)?;
    let execs = list(&answer)?;
    node.ensure(execs.len() == 2, "two executions")?;
    node.ensure(
        execs[0]["output_truncated"] == json!(false)
            && field(&execs[0], "output") == long
            && long.len() == 1705
            && execs[1]["output_truncated"] == json!(false)
            && field(&execs[1], "output") == "test",
        "whole outputs, newest first",
    )?;

    let answer = node.expect(
        Request::get("/v1/jobs/test_job/executions?output_size_limit=200"),
        200,
    )?;
    let execs = list(&answer)?;
    node.ensure(
        execs.len() == 2
            && execs[0]["output_truncated"] == json!(true)
            && field(&execs[0], "output") == &long[long.len() - 200..]
            && execs[1]["output_truncated"] == json!(false)
            && field(&execs[1], "output") == "test",
        "the long output cut to its last 200 bytes",
    )?;
    let id = field(&execs[0], "id").to_string();
    let one = node
        .expect(
            Request::get(&format!("/v1/jobs/test_job/executions/{id}")),
            200,
        )?
        .json()?;
    node.ensure(
        field(&one, "output").len() == 1705,
        "the single execution has its whole output",
    )?;
    node.expect(
        Request::get(&format!("/v1/jobs/notajob/executions/{id}")),
        404,
    )?;
    Ok(())
}

/// TestAPILeaderEndpointsNoRaftNoPanic (asked as soon as the HTTP port listens) and
/// TestAPIPauseUnpause; with `/health`, `/v1` and `/v1/members`.
#[test]
fn leader_endpoints_and_pausing_new_jobs() -> Result<()> {
    let node = Node::start()?;
    // Dkron's test asks before the group is ready: any of these, never a crash.
    let answer = node.send(&Request::get("/v1/isleader"))?;
    node.ensure(
        matches!(answer.code, 200 | 404),
        "isleader answers 200 or 404",
    )?;
    let answer = node.send(&Request::get("/v1/leader"))?;
    node.ensure(
        matches!(answer.code, 200 | 404 | 500 | 503),
        "leader answers",
    )?;
    // Once the node leads.
    node.poll("the node to lead", || {
        Ok((node.send(&Request::get("/v1/isleader"))?.code == 200).then_some(()))
    })?;
    let leader = node.expect(Request::get("/v1/leader"), 200)?.json()?;
    let answer = node.expect(Request::get("/v1/members"), 200)?;
    let members = list(&answer)?;
    node.ensure(
        members.len() == 1
            && members[0]["Name"] == leader["Name"]
            && members[0]["Tags"]["server"] == json!("true")
            && answer.header("x-total-count") == Some("1"),
        "one member, the leader, a server",
    )?;
    let index = node.expect(Request::get("/v1"), 200)?.json()?;
    node.ensure(
        index["tags"]["leader"] == json!("true") && index["agent"]["name"] == leader["Name"],
        "the index names this node, the leader",
    )?;
    let health = node.expect(Request::get("/health"), 200)?.json()?;
    node.ensure(health == json!({"status": "healthy"}), "/health")?;

    // TestAPIPauseUnpause.
    let answer = node.expect(Request::get("/v1/pause"), 200)?;
    node.ensure(
        answer.body.contains(r#""paused":false"#),
        "not paused at first",
    )?;
    let answer = node.expect(Request::post("/v1/pause", ""), 200)?;
    node.ensure(answer.body.contains(r#""paused":true"#), "paused")?;
    let answer = node.expect(Request::get("/v1/pause"), 200)?;
    node.ensure(answer.body.contains(r#""paused":true"#), "still paused")?;
    let doc = r#"{"name": "test_job_paused", "schedule": "@every 1m", "executor": "shell",
        "executor_config": {"command": "date"}}"#;
    let answer = node.expect(Request::post("/v1/jobs", doc), 503)?;
    node.ensure(answer.body.contains("paused"), "the refusal says paused")?;
    node.expect(Request::get("/v1/jobs/test_job_paused"), 404)?;
    let answer = node.expect(Request::post("/v1/unpause", ""), 200)?;
    node.ensure(answer.body.contains(r#""paused":false"#), "unpaused")?;
    let answer = node.expect(Request::get("/v1/pause"), 200)?;
    node.ensure(answer.body.contains(r#""paused":false"#), "still unpaused")?;
    node.expect(Request::post("/v1/jobs", doc), 201)?;
    Ok(())
}

// ---- the rest of the API ----

/// `GET /v1/jobs` with Dkron's `q`, `status`, `disabled`, `_sort`, `_order`, `_start`
/// and `_end`; `X-Total-Count` counts the matches before the slice.
#[test]
fn the_job_list_filters_sorts_and_slices() -> Result<()> {
    let node = Node::start()?;
    let shell = |name: &str, command: &str, extra: Value| {
        job_with(
            json!({"name": name, "schedule": "@every 1h", "executor": "shell",
                "executor_config": {"command": command}}),
            extra,
        )
    };
    node.post_job(&shell(
        "alpha",
        "true",
        json!({"displayname": "Alpha Report"}),
    ))?;
    node.post_job(&shell("beta", "true", json!({})))?;
    node.post_job(&shell("delta", "false", json!({})))?;
    node.post_job(&shell("gamma", "true", json!({"disabled": true})))?;
    // alpha succeeds twice, beta once, delta fails once, gamma never runs.
    for (name, n) in [("alpha", 1), ("alpha", 2), ("beta", 1), ("delta", 1)] {
        node.run(name)?;
        node.wait_final(name, n)?;
    }
    let query = |q: &str| -> Result<(Vec<String>, String)> {
        let answer = node.expect(Request::get(&format!("/v1/jobs?{q}")), 200)?;
        let total = answer.header("x-total-count").unwrap_or("").to_string();
        Ok((names(&answer)?, total))
    };
    let cases: [(&str, &[&str], &str); 12] = [
        ("q=alp", &["alpha"], "1"),
        ("q=Report", &["alpha"], "1"),
        ("status=success", &["alpha", "beta"], "2"),
        ("status=failed", &["delta"], "1"),
        ("status=untriggered", &["gamma"], "1"),
        ("disabled=true", &["gamma"], "1"),
        ("disabled=false", &["alpha", "beta", "delta"], "3"),
        (
            "_sort=name&_order=DESC",
            &["gamma", "delta", "beta", "alpha"],
            "4",
        ),
        (
            "_sort=id&_order=DESC&_start=1&_end=3",
            &["delta", "beta"],
            "4",
        ),
        ("_start=0&_end=2&status=success", &["alpha", "beta"], "2"),
        ("_start=3", &["gamma"], "4"),
        ("_start=9&_end=12", &[], "4"),
    ];
    for (q, want, total) in cases {
        let (got, got_total) = query(q)?;
        node.ensure(
            got == want && got_total == total,
            format!("?{q}: {got:?} (X-Total-Count {got_total}), expected {want:?} ({total})"),
        )?;
    }
    let (got, _) = query("_sort=success_count&_order=DESC")?;
    node.ensure(
        got.first().map(String::as_str) == Some("alpha")
            && got.get(1).map(String::as_str) == Some("beta"),
        format!("by success count, most first: {got:?}"),
    )?;
    let (got, _) = query("_sort=error_count&_order=DESC&_end=1")?;
    node.ensure(got == ["delta"], format!("by error count: {got:?}"))?;
    let answer = node.expect(Request::get("/v1/jobs?_start=x"), 400)?;
    node.ensure(answer.error().contains("_start"), "a bad _start is named")?;
    Ok(())
}

/// `PUT /v1/jobs/{job}` (and `PATCH /v1/jobs`), both runs, toggle and delete,
/// `ephemeral`, and a job as Dkron's `GET` prints it — every member, nulls and the
/// read-only counts included — posted back.
#[test]
fn put_run_toggle_delete_ephemeral_and_an_export_with_nulls() -> Result<()> {
    let node = Node::start()?;
    let doc = r#"{"schedule": "@every 1h", "executor": "shell",
        "executor_config": {"command": "echo put"}}"#;
    let answer = node.expect(Request::put("/v1/jobs/put_job", doc), 201)?;
    node.ensure(
        field(&answer.json()?, "name") == "put_job",
        "the path names the job",
    )?;
    let answer = node.expect(
        Request::put(
            "/v1/jobs/put_job",
            r#"{"name": "another", "schedule": "@every 1h", "executor": "shell",
                "executor_config": {"command": "echo put"}}"#,
        ),
        400,
    )?;
    node.ensure(answer.error().contains("name"), "a body naming another job")?;
    node.expect(
        Request::patch(
            "/v1/jobs",
            r#"{"name": "put_job", "schedule": "@every 2h", "executor": "shell",
                "executor_config": {"command": "echo patched"}}"#,
        ),
        201,
    )?;
    node.ensure(
        field(&node.get_job("put_job")?, "schedule") == "@every 2h",
        "PATCH updated it",
    )?;

    // Both run paths: 202 and a manual execution each.
    node.expect(Request::post("/v1/jobs/put_job/run", ""), 202)?;
    node.expect(Request::post("/v1/jobs/put_job", ""), 202)?;
    let runs = node.wait_final("put_job", 2)?;
    node.ensure(
        runs.iter().all(|e| field(e, "output") == "patched\n"),
        "both runs ran the patched command",
    )?;
    node.ensure(
        node.records("put_job")?
            .iter()
            .all(|e| field(e, "trigger") == "manual"),
        "both runs are manual",
    )?;
    node.expect(Request::post("/v1/jobs/nojob/run", ""), 404)?;

    // Toggle twice.
    let off = node
        .expect(Request::post("/v1/jobs/put_job/toggle", ""), 200)?
        .json()?;
    let on = node
        .expect(Request::post("/v1/jobs/put_job/toggle", ""), 200)?
        .json()?;
    node.ensure(
        off["disabled"] == json!(true) && on["disabled"] == json!(false),
        "toggle disables, then enables",
    )?;

    // A job as Dkron's GET prints it, posted back as it is.
    let export = json!({
        "id": "exported", "name": "exported", "displayname": null, "timezone": "",
        "schedule": "@every 1h", "owner": null, "owner_email": null,
        "success_count": 12, "error_count": 3,
        "last_success": "2026-01-02T03:04:05.123456789Z", "last_error": null,
        "disabled": false, "tags": null, "metadata": null, "retries": 1,
        "dependent_jobs": null, "parent_job": "", "processors": null,
        "concurrency": "allow", "executor": "shell",
        "executor_config": {"command": "echo exported", "env": null, "timeout": null},
        "status": "success", "next": "0001-01-01T00:00:00Z", "ephemeral": false,
        "starts_at": null, "expires_at": null
    });
    let job = node.post_and_run(&export.to_string())?;
    node.ensure(
        job["success_count"] == json!(0) && job["retries"] == json!(1),
        "the read-only counts are not taken; retries is",
    )?;
    let run = node.wait_success("exported")?;
    node.ensure(field(&run, "output") == "exported\n", "the export runs")?;
    // ... and what Kairos's GET prints goes back in unchanged.
    let printed = node.get_job("exported")?;
    node.post_job(&printed.to_string())?;

    // Delete: the job comes back one last time, then is gone.
    let gone = node
        .expect(Request::delete("/v1/jobs/put_job"), 200)?
        .json()?;
    node.ensure(field(&gone, "name") == "put_job", "delete answers the job")?;
    node.expect(Request::get("/v1/jobs/put_job"), 404)?;
    node.expect(Request::delete("/v1/jobs/put_job"), 404)?;

    // Ephemeral: a failure keeps the job; the first success deletes it (with its
    // history, so the scheduler's log is where the success shows afterwards).
    node.post_and_run(
        r#"{"name": "once-failing", "schedule": "@every 1h", "ephemeral": true,
            "executor": "shell", "executor_config": {"command": "false"}}"#,
    )?;
    let [run] = <[Value; 1]>::try_from(node.wait_final("once-failing", 1)?)
        .map_err(|v| node.fail(format!("one run expected: {v:?}")))?;
    node.ensure(field(&run, "status") == "failed", "the run failed")?;
    node.get_job("once-failing")?;
    node.post_and_run(
        r#"{"name": "once", "schedule": "@every 1h", "ephemeral": true,
            "executor": "shell", "executor_config": {"command": "echo once"}}"#,
    )?;
    node.poll("the ephemeral job to be deleted", || {
        Ok((node.send(&Request::get("/v1/jobs/once"))?.code == 404).then_some(()))
    })?;
    let succeeded = node
        .dev
        .log_lines()
        .iter()
        .any(|l| l.contains("execution finished job=once ") && l.contains("status=succeeded"));
    node.ensure(succeeded, "the job was deleted after its run succeeded")?;
    node.ensure(
        node.send(&Request::get("/v1/jobs/once-failing"))?.code == 200,
        "the failing ephemeral job is still there",
    )?;
    Ok(())
}

/// `DELETE /v1/jobs/{job}/executions`: the history is emptied and the job's counts and
/// last times go back to nothing, as Dkron's store does (`DeleteExecutions` resets
/// `success_count`, `error_count`, `last_success` and `last_error`).
#[test]
fn clearing_executions_forgets_history_and_counts() -> Result<()> {
    let node = Node::start()?;
    node.post_and_run(
        r#"{"name": "counted", "schedule": "@every 1h", "executor": "shell",
            "executor_config": {"command": "echo hi"}}"#,
    )?;
    node.wait_success("counted")?;
    let job = node.get_job("counted")?;
    node.ensure(
        job["success_count"] == json!(1) && !job["last_success"].is_null(),
        "one success counted",
    )?;
    let job = node
        .expect(Request::delete("/v1/jobs/counted/executions"), 200)?
        .json()?;
    node.ensure(
        field(&job, "name") == "counted" && job["success_count"] == json!(0),
        "the answer is the job, its count back to 0",
    )?;
    let answer = node.expect(Request::get("/v1/jobs/counted/executions"), 200)?;
    node.ensure(answer.body == "[]", "the history is empty")?;
    let job = node.get_job("counted")?;
    node.ensure(
        job["success_count"] == json!(0) && job["error_count"] == json!(0),
        format!("the counts are reset: {job}"),
    )?;
    node.expect(Request::delete("/v1/jobs/nojob/executions"), 404)?;
    Ok(())
}

/// `DELETE /v1/jobs/{job}/executions` resets `last_success` and `last_error` too, as
/// Dkron's store does.
#[test]
fn clearing_executions_resets_the_last_times() -> Result<()> {
    let node = Node::start()?;
    node.post_and_run(
        r#"{"name": "ok_job", "schedule": "@every 1h", "executor": "shell",
            "executor_config": {"command": "true"}}"#,
    )?;
    node.post_and_run(
        r#"{"name": "bad_job", "schedule": "@every 1h", "executor": "shell",
            "executor_config": {"command": "false"}}"#,
    )?;
    node.wait_success("ok_job")?;
    node.wait_final("bad_job", 1)?;
    for (name, last) in [("ok_job", "last_success"), ("bad_job", "last_error")] {
        node.ensure(
            !node.get_job(name)?[last].is_null(),
            format!("{name} has a {last}"),
        )?;
        node.expect(Request::delete(&format!("/v1/jobs/{name}/executions")), 200)?;
        let job = node.get_job(name)?;
        node.ensure(
            job["last_success"].is_null() && job["last_error"].is_null(),
            format!("{name}: last_success and last_error reset, as Dkron does: {job}"),
        )?;
    }
    Ok(())
}

// ---- the Dkron clients on PyPI ----

/// integration-tests/python/dkron_clients.py: `pydkron` and `dkron` create, list,
/// update, run, read executions, toggle (or disable) and delete jobs.
#[test]
fn the_pypi_dkron_clients_manage_jobs() -> Result<()> {
    let node = Node::start()?;
    let python = tools_dir().join("venv/bin/python");
    let clients = tools_dir().join("python-clients");
    for needed in [&python, &clients.join("pydkron"), &clients.join("dkron")] {
        if !needed.exists() {
            bail!("no {}: run scripts/setup-test-deps", needed.display());
        }
    }
    let script = repo_root().join("integration-tests/python/dkron_clients.py");
    let out = run(
        Command::new(&python)
            .arg(&script)
            .arg(&node.dev.http_addr)
            .env("PYTHONPATH", &clients)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(node.path()),
        SCRIPT_DEADLINE,
    )?;
    if !out.success() || !out.stdout.lines().any(|l| l == "ok all") {
        return Err(node.fail(format!("the Dkron clients' script failed: {out}")));
    }
    Ok(())
}

// ---- kairos import --from-dkron ----

/// A Dkron export as `GET /v1/jobs` answers it: a parent every 2 s, its child, and an
/// unrelated job, with Dkron's nulls and zero times.
fn dkron_export(prefix: &str) -> Value {
    let job = |name: String, schedule: &str, parent: String, command: &str| {
        json!({
            "id": name, "name": name, "displayname": "", "timezone": "",
            "schedule": schedule, "owner": "ops", "owner_email": "ops@example.com",
            "success_count": 7, "error_count": 0,
            "last_success": "2026-01-02T03:04:05Z", "last_error": null,
            "disabled": false, "tags": {"server": "true:1"}, "metadata": null,
            "retries": 0, "dependent_jobs": null, "parent_job": parent,
            "processors": {}, "concurrency": "allow", "executor": "shell",
            "executor_config": {"command": command}, "status": "success",
            "next": "0001-01-01T00:00:00Z", "ephemeral": false,
            "starts_at": null, "expires_at": null
        })
    };
    json!([
        job(
            format!("{prefix}-child"),
            "",
            format!("{prefix}-parent"),
            "echo child"
        ),
        job(
            format!("{prefix}-parent"),
            "@every 2s",
            String::new(),
            "echo parent"
        ),
        job(
            format!("{prefix}-other"),
            "@every 1h",
            String::new(),
            "echo other"
        ),
    ])
}

/// Serves `body` as JSON to every request on 127.0.0.1 (port 0), on a thread that
/// stops when dropped; the requests' first lines are kept.
struct ExportServer {
    addr: String,
    stop: Arc<AtomicBool>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ExportServer {
    fn start(body: String) -> Result<ExportServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            // Bounded: stops when dropped, or after a few minutes whatever happens.
            let end = std::time::Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut buf = [0u8; 8192];
                        let n = stream.read(&mut buf).unwrap_or(0);
                        let head = String::from_utf8_lossy(&buf[..n]);
                        if let Some(line) = head.lines().next()
                            && let Ok(mut r) = requests2.lock()
                        {
                            r.push(line.to_string());
                        }
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(ExportServer {
            addr,
            stop,
            requests,
        })
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for ExportServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// `kairos import --from-dkron URL --dry-run` writes nothing; without `--dry-run` the
/// three jobs exist and the chain fires (parent, then child); the FILE form imports
/// another export the same way.
#[test]
fn kairos_import_copies_a_dkron_export_from_a_url_or_a_file() -> Result<()> {
    let node = Node::start()?;
    let server = ExportServer::start(dkron_export("url").to_string())?;
    let url = format!("http://{}/v1/jobs", server.addr);

    let import = |args: &[&str]| -> Result<CliOutput> {
        let mut all = vec!["import", "--from-dkron"];
        all.extend_from_slice(args);
        let out = node.cli(&all)?;
        if !out.success() {
            return Err(node.fail(format!("kairos {all:?} failed: {out:?}")));
        }
        Ok(out)
    };
    let out = import(&[&url, "--dry-run"])?;
    node.ensure(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /v1/jobs")),
        format!("the export was fetched: {:?}", server.requests()),
    )?;
    for name in ["url-parent", "url-child", "url-other"] {
        node.ensure(
            out.stdout.contains(name),
            format!("the dry run names {name}: {out:?}"),
        )?;
    }
    let answer = node.expect(Request::get("/v1/jobs"), 200)?;
    node.ensure(names(&answer)?.is_empty(), "the dry run created nothing")?;

    import(&[&url])?;
    let answer = node.expect(Request::get("/v1/jobs"), 200)?;
    node.ensure(
        names(&answer)? == ["url-child", "url-other", "url-parent"],
        "the three jobs",
    )?;
    let child = node.get_job("url-child")?;
    node.ensure(
        field(&child, "parent_job") == "url-parent"
            && field(&child, "owner") == "ops"
            && child["success_count"] == json!(0),
        "the child's parent and owner; no counts carried over",
    )?;
    node.wait_success("url-parent")?;
    let run = node.wait_success("url-child")?;
    node.ensure(
        field(&run, "output") == "child\n",
        "the child ran its command",
    )?;
    node.ensure(
        node.records("url-child")?
            .iter()
            .all(|e| field(e, "trigger") == "dependency"),
        "the child runs after its parent only",
    )?;

    // The FILE form.
    let file = node.path().join("export.json");
    std::fs::write(&file, dkron_export("file").to_string())?;
    let file = file.to_string_lossy().into_owned();
    import(&[&file, "--dry-run"])?;
    node.expect(Request::get("/v1/jobs/file-parent"), 404)?;
    import(&[&file])?;
    for name in ["file-parent", "file-child", "file-other"] {
        node.get_job(name)?;
    }
    node.wait_success("file-child")?;
    Ok(())
}
