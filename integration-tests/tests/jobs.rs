//! The job features end to end, against the real `kairos` binary: what a user checks
//! after writing a job document.
//!
//! - Targeting: selectors pick executors by tag, `count: 0` fans one fire out to every
//!   match (one group), a selector nobody matches is `no_target`, `hash` sticks,
//!   `least_loaded` weighs load against capacity, `random` picks among the matches
//!   in no fixed order.
//! - HTTP jobs against a server in the test: status, body regex, timeout.
//! - Chaining: success and failure edges, the `dependency` trigger and the parent's
//!   instant, cycles refused, deleting a parent needs `--cascade`.
//! - History: `history.keep` keeps the newest runs; `--max-executions` caps them
//!   across all jobs; a long output keeps its tail.
//! - Live output: `exec logs --follow` shows lines while the run is still running.
//! - Schedules: a preview across the spring-forward in Europe/Berlin; backfills (and
//!   their dry runs); `starts_at` and `expires_at` bound what fires.
//! - Optimistic concurrency: two `PutJob`s with one `expected_version`, one wins.
//! - Webhooks: a failure is announced with its payload; the global `--notify` hears
//!   every job's successes and failures; a webhook that cannot be reached does not
//!   hold up firing.
//!
//! Each test starts its own `kairos dev` in its own temporary directory (plus, where it
//! needs them, a second tagged `kairos executor` and a small HTTP server on 127.0.0.1
//! port 0), waits only for conditions against deadlines, and derives what it expects
//! from what was recorded (ids, instants, times), not from assumed timings.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use kairos_integration_tests::server::TestServer;
use kairos_integration_tests::{CliOutput, Dev, executions, field, num, wait_until, write_file};
use kairos_proto::v1 as pb;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long a quick run may take to be recorded final, and a few fires to happen:
/// generous, because the tests run side by side on a busy machine.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// How long the scheduler gives one webhook delivery try before it gives up on it.
const WEBHOOK_TRY_LIMIT: TimeDelta = TimeDelta::seconds(5);

// ---- the deployment under test ----

/// One `kairos dev` (a one-node group and its local executor) in its own temporary
/// directory. The process is killed before the directory goes (field order).
struct Node {
    dev: Dev,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts `kairos dev` with `extra` flags and waits until its executor is connected.
    fn start(extra: &[&str]) -> Result<Node> {
        let dir = tempfile::tempdir()?;
        let dev = Dev::start_with(BIN.as_ref(), &dir.path().join("data"), extra)?;
        let node = Node { dev, dir };
        node.dev
            .wait_for_executors(1)
            .map_err(|e| node.with_log(e))?;
        Ok(node)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cli(&self, args: &[&str]) -> Result<CliOutput> {
        self.dev.cli(args)
    }

    /// `e` with the tail of the server's log.
    fn with_log(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n--- kairos dev log ---\n{}", self.dev.log_tail())
    }

    /// `job apply -f FILE` for `yaml` (written to `NAME.yaml`), whatever its outcome.
    fn try_apply(&self, name: &str, yaml: &str) -> Result<CliOutput> {
        let file = write_file(self.path(), &format!("{name}.yaml"), yaml)?;
        self.cli(&["job", "apply", "-f", &file])
    }

    /// `job apply`, which must succeed.
    fn apply(&self, name: &str, yaml: &str) -> Result<()> {
        let out = self.try_apply(name, yaml)?;
        if !out.success() {
            return Err(self.with_log(anyhow!("job apply {name} failed: {out:?}")));
        }
        Ok(())
    }

    /// `job run NAME -o json`: the execution it started.
    fn run(&self, job: &str) -> Result<Value> {
        let out = self.cli(&["job", "run", job, "-o", "json"])?.ok()?.json()?;
        out.get("execution")
            .cloned()
            .ok_or_else(|| anyhow!("job run {job} returned no execution: {out}"))
    }

    /// `job run NAME --wait -o json`: the execution once final. The command exits
    /// non-zero unless the run succeeded, but prints the execution either way.
    fn run_wait(&self, job: &str) -> Result<Value> {
        let out = self.cli(&["job", "run", job, "--wait", "-o", "json"])?;
        let e = out.json().map_err(|e| self.with_log(e))?;
        ensure!(
            out.success() == (field(&e, "status") == "succeeded"),
            "the exit code does not match the outcome: {out:?}"
        );
        Ok(e)
    }

    /// `exec get ID -o json`.
    fn execution(&self, id: &str) -> Result<Value> {
        self.cli(&["exec", "get", id, "-o", "json"])?.ok()?.json()
    }

    /// Polls `exec get ID` until the execution is final.
    fn wait_final(&self, id: &str) -> Result<Value> {
        wait_until(RUN_DEADLINE, &format!("execution {id} to end"), || {
            self.execution(id)
                .ok()
                .filter(|e| is_final(field(e, "status")))
        })
        .map_err(|e| self.with_log(e))
    }

    /// The job's executions, oldest first.
    fn executions(&self, job: &str) -> Result<Vec<Value>> {
        executions(&self.dev, job)
    }

    /// Waits until `job` has at least `n` final executions that `keep` accepts, and
    /// returns them (oldest first).
    fn wait_for_finished(
        &self,
        job: &str,
        n: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>> {
        wait_until(
            RUN_DEADLINE,
            &format!("{n} finished executions of {job}"),
            || {
                let list: Vec<Value> = self
                    .executions(job)
                    .ok()?
                    .into_iter()
                    .filter(|e| is_final(field(e, "status")) && keep(e))
                    .collect();
                (list.len() >= n).then_some(list)
            },
        )
        .map_err(|e| self.with_log(e))
    }
}

/// A `kairos executor` agent started by a test; SIGKILLed and reaped when dropped.
struct Agent {
    child: Child,
}

impl Agent {
    /// Starts an executor named `id` with `tags` (`KEY=VALUE`), dialling `node`.
    fn start(node: &Node, id: &str, tags: &[&str]) -> Result<Agent> {
        Agent::start_with(node, id, tags, &[])
    }

    /// Like [`Agent::start`], with `flags` added to its command line.
    fn start_with(node: &Node, id: &str, tags: &[&str], flags: &[&str]) -> Result<Agent> {
        let log = std::fs::File::create(node.path().join(format!("{id}.log")))?;
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
            &node.dev.grpc_addr,
            "--id",
            id,
        ]);
        for tag in tags {
            cmd.args(["--tag", tag]);
        }
        cmd.args(flags);
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning kairos executor")?;
        Ok(Agent { child })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.0 GET (for the scheduler's `/metrics`): the whole response.
fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// The value of the Prometheus sample `name` in `metrics` (0 when absent).
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---- reading records ----

fn is_final(status: &str) -> bool {
    !matches!(status, "" | "pending" | "running")
}

fn time(e: &Value, name: &str) -> DateTime<Utc> {
    field(e, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not RFC 3339 in {e}"))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The instants of a `PreviewScheduleResponse` or `BackfillResponse` in JSON.
fn instants(v: &Value) -> Vec<DateTime<Utc>> {
    v.get("instants")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|t| {
                    t.as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("not an RFC 3339 instant: {t}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn executors_of(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|e| field(e, "executor").to_string())
        .collect()
}

// ---- 1. targeting ----

#[test]
fn selectors_fan_out_and_hashing_choose_executors_by_tag() -> Result<()> {
    let node = Node::start(&[
        "--executor-id",
        "web-1",
        "--tag",
        "role=web",
        "--tag",
        "region=eu",
    ])?;
    let _db = Agent::start(&node, "db-1", &["role=db", "region=us"])?;
    node.dev
        .wait_for_executors(2)
        .map_err(|e| node.with_log(e))?;
    let listed = node.cli(&["executors", "-o", "json"])?.ok()?.json()?;
    let tags: BTreeMap<String, Value> = listed
        .get("executors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| (field(e, "id").to_string(), e["tags"].clone()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("db-1".to_string(), json!({"role": "db", "region": "us"})),
            // `kairos dev`'s own executor is a server, as Dkron's are.
            (
                "web-1".to_string(),
                json!({"role": "web", "region": "eu", "server": "true"})
            ),
        ]),
        "{listed}"
    );

    // Two every-second jobs both executors match: `hash` must keep one executor;
    // `spread` shows that both were eligible. They fire while the rest runs.
    for (name, strategy) in [("sticky", "hash"), ("spread", "spread")] {
        node.apply(
            name,
            &format!(
                "name: {name}\nschedule: \"@every 1s\"\ntarget: {{selector: \"region in (eu,us)\", strategy: {strategy}}}\nshell: {{command: \"echo $KAIROS_JOB\"}}\n"
            ),
        )?;
    }
    node.apply(
        "web-only",
        "name: web-only\nschedule: \"@manual\"\ntarget: {selector: \"role=web\"}\nshell: {command: \"echo web\"}\n",
    )?;
    node.apply(
        "everywhere",
        "name: everywhere\nschedule: \"@manual\"\ntarget: {selector: \"region in (eu,us)\", count: 0}\nshell: {command: \"echo everywhere\"}\n",
    )?;
    node.apply(
        "nowhere",
        "name: nowhere\nschedule: \"@manual\"\ntarget: {selector: \"role=cache\"}\nshell: {command: \"echo never\"}\n",
    )?;

    // `role=web` runs only on web-1, however often.
    for _ in 0..4 {
        let e = node.run_wait("web-only")?;
        assert_eq!(field(&e, "status"), "succeeded", "{e}");
        assert_eq!(field(&e, "executor"), "web-1", "{e}");
    }

    // `count: 0`: one fire, one execution on each match, one group.
    let first = node.run("everywhere")?;
    let group = wait_until(RUN_DEADLINE, "the fan-out group to settle", || {
        let list = node.executions("everywhere").ok()?;
        let settled = list.len() >= 2
            && list.iter().all(|e| {
                is_final(field(e, "status")) && !matches!(field(e, "groupStatus"), "" | "running")
            });
        settled.then_some(list)
    })
    .map_err(|e| node.with_log(e))?;
    assert_eq!(group.len(), 2, "one fire, two executions: {group:?}");
    assert_eq!(
        executors_of(&group),
        BTreeSet::from(["db-1".to_string(), "web-1".to_string()]),
        "{group:?}"
    );
    let group_id = field(&first, "group");
    assert!(!group_id.is_empty(), "a fan-out run has a group: {first}");
    for e in &group {
        assert_eq!(field(e, "status"), "succeeded", "{e}");
        assert_eq!(field(e, "trigger"), "manual", "{e}");
        assert_eq!(field(e, "group"), group_id, "{e}");
        assert_eq!(field(e, "groupStatus"), "succeeded", "{e}");
        assert_eq!(field(e, "scheduledAt"), field(&first, "scheduledAt"), "{e}");
        assert_eq!(field(e, "output").trim(), "everywhere", "{e}");
    }

    // Nobody matches `role=cache`.
    let e = node.run_wait("nowhere")?;
    assert_eq!(field(&e, "status"), "no_target", "{e}");
    assert_eq!(field(&e, "executor"), "", "{e}");
    assert!(field(&e, "error").contains("role=cache"), "{e}");

    let schedule = |e: &Value| field(e, "trigger") == "schedule";
    let sticky = node.wait_for_finished("sticky", 10, schedule)?;
    let sticky = &sticky[..10];
    assert!(
        sticky.iter().all(|e| field(e, "status") == "succeeded"),
        "{sticky:?}"
    );
    let chosen = executors_of(sticky);
    assert_eq!(chosen.len(), 1, "hash moved between executors: {chosen:?}");
    let spread = node.wait_for_finished("spread", 10, schedule)?;
    assert_eq!(
        executors_of(&spread[..10]),
        BTreeSet::from(["db-1".to_string(), "web-1".to_string()]),
        "spread did not use both executors: {spread:?}"
    );
    Ok(())
}

/// Waits until execution `id` runs and returns it (its executor is then known to
/// the leader as running it).
fn wait_running(node: &Node, id: &str) -> Result<Value> {
    wait_until(RUN_DEADLINE, &format!("execution {id} to run"), || {
        node.execution(id)
            .ok()
            .filter(|e| field(e, "status") == "running")
    })
    .map_err(|e| node.with_log(e))
}

/// Cancels every execution of `jobs` still going on and waits until they are final,
/// so that no process outlives the test.
fn cancel_all(node: &Node, jobs: &[&str]) -> Result<()> {
    for job in jobs {
        for e in node.executions(job)? {
            if !is_final(field(&e, "status")) {
                node.cli(&["exec", "cancel", field(&e, "id")])?.ok()?;
            }
        }
        for e in node.executions(job)? {
            node.wait_final(field(&e, "id"))?;
        }
    }
    Ok(())
}

// `least_loaded` picks the executor with the smallest share of its capacity in use,
// where `spread` would count runs: `big` (capacity 10) runs two long runs of another
// job, `small` (capacity 2) none. The first run goes to `small` (0/2 < 2/10); then
// `small` is at 1/2 and `big` at 2/10, so the next two go to `big` (spread would have
// sent the second to `small`, which runs fewer).
#[test]
fn least_loaded_weighs_the_runs_of_each_executor_against_its_capacity() -> Result<()> {
    let node = Node::start(&[
        "--executor-id",
        "big",
        "--capacity",
        "10",
        "--tag",
        "size=big",
    ])?;
    let _small = Agent::start_with(&node, "small", &["size=small"], &["--capacity", "2"])?;
    node.dev
        .wait_for_executors(2)
        .map_err(|e| node.with_log(e))?;
    node.apply(
        "hog",
        "name: hog\nschedule: \"@manual\"\ntarget: {selector: \"size=big\"}\nshell: {command: \"sleep 60\"}\n",
    )?;
    node.apply(
        "light",
        "name: light\nschedule: \"@manual\"\ntarget: {strategy: least_loaded}\nshell: {command: \"sleep 60\"}\n",
    )?;
    let check = || -> Result<Vec<String>> {
        for _ in 0..2 {
            let e = node.run("hog")?;
            let e = wait_running(&node, field(&e, "id"))?;
            assert_eq!(field(&e, "executor"), "big", "{e}");
        }
        let mut chosen = Vec::new();
        for _ in 0..3 {
            let e = node.run("light")?;
            let e = wait_running(&node, field(&e, "id"))?;
            chosen.push(field(&e, "executor").to_string());
        }
        Ok(chosen)
    };
    let chosen = check();
    cancel_all(&node, &["hog", "light"])?;
    let chosen = chosen?;
    assert_eq!(
        chosen,
        ["small", "big", "big"],
        "least_loaded chose by run count or at random, not by share of capacity"
    );
    Ok(())
}

// `random`: 20 quick runs, one after another, land only on the executors the
// selector matches, on both of them, and not in the strict rotation `spread` keeps
// (each of those two happens by chance with odds of 2 in 2^20).
#[test]
fn random_picks_among_the_matching_executors_in_no_fixed_order() -> Result<()> {
    let node = Node::start(&["--executor-id", "a", "--tag", "pool=dice"])?;
    let _b = Agent::start(&node, "b", &["pool=dice"])?;
    let _c = Agent::start(&node, "c", &["pool=other"])?;
    node.dev
        .wait_for_executors(3)
        .map_err(|e| node.with_log(e))?;
    node.apply(
        "dice",
        "name: dice\nschedule: \"@manual\"\ntarget: {selector: \"pool=dice\", strategy: random}\nshell: {command: \"true\"}\n",
    )?;
    let mut chosen = Vec::new();
    for _ in 0..20 {
        let e = node.run_wait("dice")?;
        assert_eq!(field(&e, "status"), "succeeded", "{e}");
        chosen.push(field(&e, "executor").to_string());
    }
    eprintln!("random chose {chosen:?}");
    assert!(
        chosen.iter().all(|e| e == "a" || e == "b"),
        "a run went to an executor the selector does not match: {chosen:?}"
    );
    assert!(
        chosen.iter().any(|e| e == "a") && chosen.iter().any(|e| e == "b"),
        "random used one executor only: {chosen:?}"
    );
    assert!(
        chosen.windows(2).any(|w| w[0] == w[1]),
        "random took turns strictly, as spread does: {chosen:?}"
    );
    Ok(())
}

// ---- 2. HTTP jobs ----

#[test]
fn http_jobs_are_judged_by_status_body_and_timeout() -> Result<()> {
    let server = TestServer::start()?;
    let node = Node::start(&[])?;
    let jobs = [
        ("fetch-ok", "/ok", "  expected_status: [\"200\"]\n"),
        ("fetch-broken", "/broken", "  expected_status: [\"200\"]\n"),
        ("fetch-mismatch", "/ok", "  body_regex: \"^goodbye\"\n"),
        ("fetch-slow", "/slow", ""),
    ];
    for (name, path, extra) in jobs {
        node.apply(
            name,
            &format!(
                "name: {name}\nschedule: \"@manual\"\ntimeout: 1s\nhttp:\n  method: GET\n  url: {}\n{extra}",
                server.url(path)
            ),
        )?;
    }
    // All four at once, then their outcomes.
    let ids: Vec<(&str, String)> = jobs
        .iter()
        .map(|(name, _, _)| Ok((*name, field(&node.run(name)?, "id").to_string())))
        .collect::<Result<_>>()?;
    let done: BTreeMap<&str, Value> = ids
        .iter()
        .map(|(name, id)| Ok((*name, node.wait_final(id)?)))
        .collect::<Result<_>>()?;

    let ok = &done["fetch-ok"];
    assert_eq!(field(ok, "status"), "succeeded", "{ok}");
    let output = field(ok, "output");
    assert!(output.starts_with("HTTP/1.1 200 OK"), "{output:?}");
    assert!(output.contains("hello from the test server"), "{output:?}");

    let broken = &done["fetch-broken"];
    assert_eq!(field(broken, "status"), "failed", "{broken}");
    assert!(field(broken, "error").contains("500"), "{broken}");
    assert!(
        field(broken, "output").contains("something broke"),
        "{broken}"
    );

    let mismatch = &done["fetch-mismatch"];
    assert_eq!(field(mismatch, "status"), "failed", "{mismatch}");
    let error = field(mismatch, "error");
    assert!(
        error.contains("does not match") && error.contains("goodbye"),
        "{mismatch}"
    );

    let slow = &done["fetch-slow"];
    assert_eq!(field(slow, "status"), "timed_out", "{slow}");
    assert!(field(slow, "error").contains("1s"), "{slow}");
    let took = time(slow, "finishedAt") - time(slow, "startedAt");
    assert!(
        took < TimeDelta::seconds(10),
        "the 1s timeout did not cut the run short: it took {took} ({slow})"
    );

    // The server saw each request once (no retries are configured).
    assert_eq!(server.hits("/ok").len(), 2);
    assert_eq!(server.hits("/broken").len(), 1);
    assert_eq!(server.hits("/slow").len(), 1);
    Ok(())
}

// ---- 3. chaining ----

#[test]
fn chains_follow_success_and_failure_refuse_cycles_and_delete_with_cascade() -> Result<()> {
    let node = Node::start(&[])?;
    node.apply(
        "chain",
        "name: a\nschedule: \"@manual\"\nshell: {command: \"echo a ran\"}\n\
         ---\n\
         name: b\nparent: a\nparent_on: success\nshell: {command: \"echo b fails; exit 3\"}\n\
         ---\n\
         name: c\nparent: b\nparent_on: failure\nshell: {command: \"echo c ran\"}\n\
         ---\n\
         name: d\nparent: a\nparent_on: failure\nshell: {command: \"echo d must not run\"}\n",
    )?;

    let a = node.run_wait("a")?;
    assert_eq!(field(&a, "status"), "succeeded", "{a}");
    let b = node.wait_for_finished("b", 1, |_| true)?.remove(0);
    assert_eq!(field(&b, "trigger"), "dependency", "{b}");
    assert_eq!(field(&b, "parentExecution"), field(&a, "id"), "{b}");
    assert_eq!(time(&b, "scheduledAt"), time(&a, "scheduledAt"), "{b}");
    assert_eq!(field(&b, "status"), "failed", "{b}");
    assert_eq!(b.get("exitCode"), Some(&json!(3)), "{b}");
    let c = node.wait_for_finished("c", 1, |_| true)?.remove(0);
    assert_eq!(field(&c, "trigger"), "dependency", "{c}");
    assert_eq!(field(&c, "parentExecution"), field(&b, "id"), "{c}");
    assert_eq!(time(&c, "scheduledAt"), time(&a, "scheduledAt"), "{c}");
    assert_eq!(field(&c, "status"), "succeeded", "{c}");
    assert_eq!(field(&c, "output").trim(), "c ran");
    // `d` waits for a failure of `a`, which did not happen; it would have been
    // started with `b`, long before `c` ended.
    let d = node.executions("d")?;
    assert!(d.is_empty(), "d ran after a succeeded: {d:?}");
    for job in ["a", "b", "c"] {
        assert_eq!(node.executions(job)?.len(), 1, "{job} ran more than once");
    }

    // A loop is refused, and nothing of it is stored.
    node.apply(
        "x",
        "name: x\nschedule: \"@manual\"\nshell: {command: \"true\"}\n",
    )?;
    node.apply("y", "name: y\nparent: x\nshell: {command: \"true\"}\n")?;
    let out = node.try_apply(
        "x-loop",
        "name: x\nschedule: \"@manual\"\nparent: y\nshell: {command: \"true\"}\n",
    )?;
    assert!(!out.success(), "a cycle x -> y -> x was accepted: {out:?}");
    assert!(out.stderr.contains("parent"), "{out:?}");
    let x = node.cli(&["job", "get", "x", "-o", "json"])?.ok()?.json()?;
    assert_eq!(field(&x, "parent"), "", "{x}");

    // A parent with dependents is deleted only with --cascade, and then with them.
    let out = node.cli(&["job", "delete", "a"])?;
    assert!(!out.success(), "a was deleted without --cascade: {out:?}");
    assert!(out.stderr.contains("--cascade"), "{out:?}");
    node.cli(&["job", "get", "a"])?.ok()?;
    let out = node
        .cli(&["job", "delete", "a", "--cascade", "-o", "json"])?
        .ok()?
        .json()?;
    let deleted: Vec<&str> = out["deleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(deleted.first(), Some(&"a"), "{out}");
    assert_eq!(
        deleted.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["a", "b", "c", "d"]),
        "{out}"
    );
    let left = node.cli(&["job", "list", "-o", "json"])?.ok()?.json()?;
    let names: BTreeSet<&str> = left["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| field(j, "name"))
        .collect();
    assert_eq!(names, BTreeSet::from(["x", "y"]), "{left}");
    // Their history went with them.
    let out = node.cli(&["exec", "get", field(&a, "id")])?;
    assert!(
        !out.success() && out.stderr.contains("not_found"),
        "a's execution outlived a: {out:?}"
    );
    Ok(())
}

// ---- 4. history and output caps ----

#[test]
fn history_keep_holds_exactly_the_newest_executions() -> Result<()> {
    let node = Node::start(&[])?;
    node.apply(
        "keep5",
        "name: keep5\nschedule: \"@manual\"\nhistory: {keep: 5}\nshell: {command: \"echo run $KAIROS_EXECUTION_ID\"}\n",
    )?;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let e = node.run_wait("keep5")?;
        assert_eq!(field(&e, "status"), "succeeded", "{e}");
        ids.push(num(&e, "id"));
    }
    ids.sort_unstable();
    let kept: Vec<u64> = {
        let mut kept: Vec<u64> = node
            .executions("keep5")?
            .iter()
            .map(|e| num(e, "id"))
            .collect();
        kept.sort_unstable();
        kept
    };
    assert_eq!(kept, ids[15..], "not the 5 newest of {ids:?}");
    let out = node.cli(&["exec", "get", &ids[0].to_string()])?;
    assert!(
        !out.success() && out.stderr.contains("not_found"),
        "the oldest execution is still there: {out:?}"
    );
    // The counts still cover every run.
    let job = node
        .cli(&["job", "get", "keep5", "-o", "json"])?
        .ok()?
        .json()?;
    assert_eq!(
        num(&job["status"]["outcomeCounts"], "succeeded"),
        20,
        "{job}"
    );
    Ok(())
}

// `--max-executions 5`: across two jobs that each keep 100, only the 5 newest
// executions are stored, whatever job they belong to; each job still counts all of
// its outcomes.
#[test]
fn max_executions_keeps_only_the_newest_across_all_jobs() -> Result<()> {
    let node = Node::start(&["--max-executions", "5"])?;
    for name in ["left", "right"] {
        node.apply(
            name,
            &format!(
                "name: {name}\nschedule: \"@manual\"\nhistory: {{keep: 100}}\nshell: {{command: \"echo {name}\"}}\n"
            ),
        )?;
    }
    let mut ids = Vec::new();
    for name in [
        "left", "right", "left", "right", "left", "right", "left", "right",
    ] {
        let e = node.run_wait(name)?;
        assert_eq!(field(&e, "status"), "succeeded", "{e}");
        ids.push(num(&e, "id"));
    }
    let stored: Vec<Value> =
        kairos_integration_tests::every_execution_at(node.dev.bin(), &node.dev.endpoint())?;
    let mut stored_ids: Vec<u64> = stored.iter().map(|e| num(e, "id")).collect();
    stored_ids.sort_unstable();
    let newest = ids[ids.len() - 5..].to_vec();
    assert_eq!(
        stored_ids, newest,
        "the stored executions are not the 5 newest of {ids:?}"
    );
    for name in ["left", "right"] {
        assert!(
            stored.iter().any(|e| field(e, "job") == name),
            "none of {name}'s newest runs is kept: {stored:?}"
        );
        let job = node
            .cli(&["job", "get", name, "-o", "json"])?
            .ok()?
            .json()?;
        let counts = job
            .get("status")
            .and_then(|s| s.get("outcomeCounts"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(num(&counts, "succeeded"), 4, "{name}: {job}");
    }
    Ok(())
}

#[test]
fn a_long_output_keeps_its_last_64_kib() -> Result<()> {
    let node = Node::start(&[])?;
    node.apply(
        "big",
        "name: big\nschedule: \"@manual\"\nshell:\n  command: |\n    head -c 1048576 /dev/zero | tr '\\0' x; echo END\n",
    )?;
    let e = node.run_wait("big")?;
    assert_eq!(field(&e, "status"), "succeeded", "{e}");
    let e = node.execution(field(&e, "id"))?;
    assert_eq!(e.get("outputTruncated"), Some(&json!(true)));
    let output = field(&e, "output");
    assert!(
        output.len() <= 65536,
        "{} bytes of output kept",
        output.len()
    );
    // The tail: x… up to the cap, then END.
    let body = output.strip_suffix("END\n").unwrap_or_else(|| {
        panic!(
            "the output does not end with END: …{:?}",
            &output[output.len().saturating_sub(40)..]
        )
    });
    assert!(body.bytes().all(|b| b == b'x'), "not the tail of the x run");
    assert!(
        output.len() > 60000,
        "only {} bytes kept of 1 MiB",
        output.len()
    );
    // `exec logs` prints the same stored output.
    let logs = node.cli(&["exec", "logs", field(&e, "id")])?.ok()?;
    assert_eq!(logs.stdout, output);
    Ok(())
}

// ---- 5. live output ----

#[test]
fn exec_logs_follow_shows_lines_while_the_run_goes_on() -> Result<()> {
    let node = Node::start(&[])?;
    node.apply(
        "lines",
        "name: lines\nschedule: \"@manual\"\nshell: {command: \"for i in 1 2 3 4 5; do echo line $i; sleep 1; done\"}\n",
    )?;
    let id = field(&node.run("lines")?, "id").to_string();
    let mut follower = KillOnDrop(
        Command::new(BIN)
            .args([
                "--endpoint",
                &node.dev.endpoint(),
                "exec",
                "logs",
                &id,
                "--follow",
            ])
            .env_remove("KAIROS_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let stdout = follower.0.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Utc::now(), line)).is_err() {
                break;
            }
        }
    });

    let (first_at, first) = rx
        .recv_timeout(RUN_DEADLINE)
        .map_err(|e| node.with_log(anyhow!("no line from exec logs --follow: {e}")))?;
    let status_then = field(&node.execution(&id)?, "status").to_string();
    assert_eq!(first, "line 1");
    assert_eq!(
        status_then, "running",
        "line 1 was not shown while the run was still running"
    );

    let mut seen = vec![(first_at, first)];
    let end = Instant::now() + RUN_DEADLINE;
    while seen.len() < 5 {
        let left = end.saturating_duration_since(Instant::now());
        let next = rx
            .recv_timeout(left)
            .map_err(|e| anyhow!("after {seen:?}: {e}"))?;
        seen.push(next);
    }
    let exit = wait_until(RUN_DEADLINE, "exec logs --follow to exit", || {
        follower.0.try_wait().ok().flatten()
    })?;
    assert!(exit.success(), "exec logs --follow exited with {exit}");
    // Nothing else was printed.
    let rest: Vec<String> = rx.iter().map(|(_, line)| line).collect();
    assert!(rest.is_empty(), "more lines: {rest:?}");
    let lines: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);

    // The lines came as they were printed, not all at the end.
    let e = node.wait_final(&id)?;
    assert_eq!(field(&e, "status"), "succeeded", "{e}");
    let finished = time(&e, "finishedAt");
    assert!(
        finished - first_at >= TimeDelta::seconds(3),
        "line 1 arrived at {first_at}, only just before the run ended at {finished}"
    );
    assert!(
        seen[4].0 - first_at >= TimeDelta::seconds(3),
        "the lines arrived in a burst: {seen:?}"
    );
    Ok(())
}

// ---- 6. previews and backfills ----

#[test]
fn a_preview_across_the_spring_forward_moves_the_skipped_instant() -> Result<()> {
    let node = Node::start(&[])?;
    let file = write_file(
        node.path(),
        "berlin.yaml",
        "name: berlin\nschedule: \"0 30 2 * * *\"\ntimezone: Europe/Berlin\nshell: {command: \"true\"}\n",
    )?;
    let out = node
        .cli(&[
            "job",
            "preview",
            "-f",
            &file,
            "--from",
            "2026-03-27T00:00:00Z",
            "--limit",
            "4",
            "-o",
            "json",
        ])?
        .ok()?
        .json()?;
    let expected: Vec<DateTime<Utc>> = [
        "2026-03-27T01:30:00Z", // 02:30 CET
        "2026-03-28T01:30:00Z", // 02:30 CET
        "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
        "2026-03-30T00:30:00Z", // 02:30 CEST
    ]
    .iter()
    .map(|t| t.parse())
    .collect::<Result<_, _>>()?;
    assert_eq!(instants(&out), expected, "{out}");
    assert_eq!(field(&out, "timezone"), "Europe/Berlin", "{out}");
    // Previewing a file stores nothing.
    assert!(!node.cli(&["job", "get", "berlin"])?.success());
    Ok(())
}

// `starts_at` and `expires_at`: an `@every 1s` job fires at exactly the instants
// from the one to the other, both included — none before, none after — and once
// it has expired it says no next fire.
#[test]
fn starts_at_and_expires_at_bound_the_instants_that_fire() -> Result<()> {
    let node = Node::start(&[])?;
    // Far enough ahead that the first instant is committed on time, not as a misfire.
    let starts = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("in range")
        + TimeDelta::seconds(5);
    let expires = starts + TimeDelta::seconds(3);
    node.apply(
        "windowed",
        &format!(
            "name: windowed\nschedule: \"@every 1s\"\nstarts_at: {}\nexpires_at: {}\nshell: {{command: \"echo $KAIROS_SCHEDULED_AT\"}}\n",
            rfc3339(starts),
            rfc3339(expires)
        ),
    )?;
    // Past the expiry by more than the lookahead, and everything final.
    let list = wait_until(
        RUN_DEADLINE,
        "the window to pass and its runs to end",
        || {
            if Utc::now() < expires + TimeDelta::seconds(4) {
                return None;
            }
            let list = node.executions("windowed").ok()?;
            list.iter()
                .all(|e| is_final(field(e, "status")))
                .then_some(list)
        },
    )
    .map_err(|e| node.with_log(e))?;
    let fired: Vec<DateTime<Utc>> = list.iter().map(|e| time(e, "scheduledAt")).collect();
    let expected: Vec<DateTime<Utc>> = (0..=3).map(|s| starts + TimeDelta::seconds(s)).collect();
    assert_eq!(
        fired, expected,
        "the instants fired are not those from starts_at to expires_at"
    );
    for e in &list {
        assert_eq!(field(e, "status"), "succeeded", "{e}");
        assert_eq!(field(e, "trigger"), "schedule", "{e}");
        assert_eq!(
            field(e, "output").trim().parse::<DateTime<Utc>>().ok(),
            Some(time(e, "scheduledAt")),
            "the run does not see its own instant: {e}"
        );
    }
    let job = node
        .cli(&["job", "get", "windowed", "-o", "json"])?
        .ok()?
        .json()?;
    assert!(
        job.get("status")
            .is_none_or(|s| field(s, "nextFireAt").is_empty()),
        "an expired job still says when it fires next: {job}"
    );
    Ok(())
}

#[test]
fn a_backfill_runs_every_past_instant_once_and_a_dry_run_none() -> Result<()> {
    let node = Node::start(&[])?;
    node.apply(
        "minutely",
        "name: minutely\nschedule: \"0 * * * * *\"\nshell: {command: \"echo $KAIROS_TRIGGER $KAIROS_SCHEDULED_AT; sleep 1\"}\n",
    )?;
    let to = Utc::now();
    let from = to - TimeDelta::minutes(10);
    let (from, to) = (rfc3339(from), rfc3339(to));
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let backfill = |extra: &[&str]| -> Result<Value> {
        let args: Vec<&str> = ["job", "backfill", "minutely"]
            .iter()
            .chain(&range)
            .chain(extra)
            .chain(&["-o", "json"])
            .copied()
            .collect();
        node.cli(&args)?.ok()?.json()
    };

    let dry = backfill(&["--dry-run"])?;
    let planned = instants(&dry);
    assert_eq!(planned.len(), 10, "{dry}");
    assert_eq!(field(&dry, "id"), "", "a dry run has no id: {dry}");
    let (from_t, to_t): (DateTime<Utc>, DateTime<Utc>) = (from.parse()?, to.parse()?);
    for (i, t) in planned.iter().enumerate() {
        assert!(*t > from_t && *t <= to_t, "{t} outside ({from}, {to}]");
        assert_eq!(t.timestamp() % 60, 0, "{t} is not on a minute");
        if i > 0 {
            assert_eq!(*t - planned[i - 1], TimeDelta::minutes(1), "{planned:?}");
        }
    }

    let real = backfill(&["--parallel", "2", "--rate", "20"])?;
    let backfill_id = field(&real, "id").to_string();
    assert!(!backfill_id.is_empty(), "{real}");
    assert_eq!(instants(&real), planned, "{real}");

    let is_backfill = |e: &Value| field(e, "trigger") == "backfill";
    node.wait_for_finished("minutely", 10, is_backfill)?;
    // Done: the job no longer lists the backfill as running.
    wait_until(RUN_DEADLINE, "the backfill to be removed", || {
        let job = node
            .cli(&["job", "get", "minutely", "-o", "json"])
            .ok()?
            .json()
            .ok()?;
        (num(&job["status"], "backfills") == 0).then_some(())
    })
    .map_err(|e| node.with_log(e))?;
    let runs: Vec<Value> = node
        .executions("minutely")?
        .into_iter()
        .filter(is_backfill)
        .collect();
    // Ten, not twenty: the dry run ran nothing.
    assert_eq!(runs.len(), 10, "{runs:?}");
    let mut ran: Vec<DateTime<Utc>> = runs.iter().map(|e| time(e, "scheduledAt")).collect();
    ran.sort();
    assert_eq!(ran, planned);
    for e in &runs {
        assert_eq!(field(e, "status"), "succeeded", "{e}");
        assert_eq!(field(e, "backfill"), backfill_id, "{e}");
        let said: Vec<&str> = field(e, "output").split_whitespace().collect();
        assert_eq!(said.len(), 2, "{e}");
        assert_eq!(said[0], "backfill", "{e}");
        assert_eq!(
            said[1].parse::<DateTime<Utc>>()?,
            time(e, "scheduledAt"),
            "{e}"
        );
    }
    // --parallel 2: never more than two of its runs at once.
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
        .iter()
        .map(|e| (time(e, "startedAt"), time(e, "finishedAt")))
        .collect();
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, f)| s <= start && start < f)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "{most} backfill runs at once: {spans:?}");
    Ok(())
}

// ---- 7. optimistic concurrency ----

/// `PutJob` of `name` running `command`, with `expected_version`.
async fn put(
    mut client: pb::job_service_client::JobServiceClient<tonic::transport::Channel>,
    name: &str,
    command: &str,
    expected_version: Option<u64>,
) -> Result<pb::PutJobResponse, tonic::Status> {
    let job = pb::Job {
        name: name.into(),
        schedule: "@manual".into(),
        action: Some(pb::job::Action::Shell(pb::ShellAction {
            command: command.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    client
        .put_job(pb::PutJobRequest {
            job: Some(job),
            expected_version,
        })
        .await
        .map(tonic::Response::into_inner)
}

fn command_of(job: &pb::Job) -> &str {
    match &job.action {
        Some(pb::job::Action::Shell(shell)) => &shell.command,
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_puts_with_one_expected_version_exactly_one_wins() -> Result<()> {
    let node = tokio::task::spawn_blocking(|| Node::start(&[])).await??;
    let connect = || async {
        let channel = tonic::transport::Endpoint::from_shared(node.dev.endpoint())?
            .connect()
            .await?;
        anyhow::Ok(pb::job_service_client::JobServiceClient::new(channel))
    };
    // Two connections, so neither request waits behind the other.
    let (left, right) = (connect().await?, connect().await?);
    let mut expected = 0; // 0: the job must not exist yet
    for round in 0..6 {
        let (left_command, right_command) =
            (format!("echo left {round}"), format!("echo right {round}"));
        let (l, r) = tokio::join!(
            put(left.clone(), "contested", &left_command, Some(expected)),
            put(right.clone(), "contested", &right_command, Some(expected)),
        );
        let (won, lost) = match (l, r) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (Ok(a), Ok(b)) => {
                panic!("round {round}: both writes with version {expected} won: {a:?} {b:?}")
            }
            (Err(a), Err(b)) => panic!("round {round}: both writes failed: {a:?} {b:?}"),
        };
        assert_eq!(
            lost.code(),
            tonic::Code::FailedPrecondition,
            "round {round}: {lost:?}"
        );
        let won_job = won.job.clone().expect("PutJob returns the job");
        assert!(won_job.version > expected, "round {round}: {won:?}");
        assert_eq!(
            won.result,
            if round == 0 { "created" } else { "updated" },
            "{won:?}"
        );
        // The stored job is the winner's.
        let stored = left
            .clone()
            .get_job(pb::GetJobRequest {
                name: "contested".into(),
            })
            .await?
            .into_inner();
        assert_eq!(stored.version, won_job.version, "round {round}");
        assert_eq!(command_of(&stored), command_of(&won_job), "round {round}");
        expected = stored.version;
    }
    Ok(())
}

// ---- 8. webhooks ----

#[test]
fn a_failure_webhook_receives_the_execution_and_its_output() -> Result<()> {
    let server = TestServer::start()?;
    let node = Node::start(&[])?;
    for (name, command) in [("fine", "echo fine"), ("failing", "echo boom; exit 1")] {
        node.apply(
            name,
            &format!(
                "name: {name}\nschedule: \"@manual\"\nshell: {{command: \"{command}\"}}\nnotify:\n  - url: {}\n    events: [failure]\n",
                server.url("/hook")
            ),
        )?;
    }
    // A success is not a failure: `fine` is not announced.
    let fine = node.run_wait("fine")?;
    assert_eq!(field(&fine, "status"), "succeeded", "{fine}");
    let e = node.run_wait("failing")?;
    assert_eq!(field(&e, "status"), "failed", "{e}");

    let hook = wait_until(RUN_DEADLINE, "the failure webhook", || {
        server.hits("/hook").into_iter().next()
    })
    .map_err(|e| node.with_log(e))?;
    let payload: Value = serde_json::from_str(&hook.body)
        .with_context(|| format!("the webhook body is not JSON: {:?}", hook.body))?;
    assert_eq!(field(&payload, "event"), "failure", "{payload}");
    assert_eq!(field(&payload, "job"), "failing", "{payload}");
    assert_eq!(field(&payload, "status"), "failed", "{payload}");
    assert_eq!(
        field(&payload["execution"], "id"),
        field(&e, "id"),
        "{payload}"
    );
    assert_eq!(
        field(&payload["execution"], "status"),
        "failed",
        "{payload}"
    );
    assert_eq!(field(&payload, "outputTail").trim(), "boom", "{payload}");
    let all = server.hits("/hook");
    assert_eq!(all.len(), 1, "only the failure was asked for: {all:?}");
    Ok(())
}

// The global `--notify` webhook hears the successes and failures of every job, none
// of which names a webhook of its own, and not their starts.
#[test]
fn the_global_notify_webhook_hears_every_job_s_successes_and_failures() -> Result<()> {
    let server = TestServer::start()?;
    let hook = server.url("/hook");
    let node = Node::start(&["--notify", &hook])?;
    for (name, command) in [("fine", "echo fine"), ("failing", "echo boom; exit 1")] {
        node.apply(
            name,
            &format!("name: {name}\nschedule: \"@manual\"\nshell: {{command: \"{command}\"}}\n"),
        )?;
    }
    let fine = node.run_wait("fine")?;
    assert_eq!(field(&fine, "status"), "succeeded", "{fine}");
    let failing = node.run_wait("failing")?;
    assert_eq!(field(&failing, "status"), "failed", "{failing}");

    let hits = wait_until(RUN_DEADLINE, "both runs announced", || {
        let hits = server.hits("/hook");
        (hits.len() >= 2).then_some(hits)
    })
    .map_err(|e| node.with_log(e))?;
    let mut heard: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for hit in &hits {
        let payload: Value = serde_json::from_str(&hit.body)
            .with_context(|| format!("the webhook body is not JSON: {:?}", hit.body))?;
        heard.insert(
            field(&payload, "job").to_string(),
            (
                field(&payload, "event").to_string(),
                field(&payload["execution"], "id").to_string(),
                field(&payload, "outputTail").trim().to_string(),
            ),
        );
    }
    assert_eq!(
        heard,
        BTreeMap::from([
            (
                "failing".to_string(),
                (
                    "failure".to_string(),
                    field(&failing, "id").to_string(),
                    "boom".to_string()
                )
            ),
            (
                "fine".to_string(),
                (
                    "success".to_string(),
                    field(&fine, "id").to_string(),
                    "fine".to_string()
                )
            ),
        ]),
        "what the global webhook heard: {hits:?}"
    );
    assert_eq!(
        hits.len(),
        2,
        "starts are not for the global webhook: {hits:?}"
    );
    Ok(())
}

#[test]
fn an_unreachable_webhook_does_not_delay_firing() -> Result<()> {
    let server = TestServer::start()?;
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // nothing listens now
    let node = Node::start(&[])?;
    node.apply(
        "steady",
        &format!(
            "name: steady\nschedule: \"@every 1s\"\nshell: {{command: \"echo tick\"}}\nnotify:\n  - {{url: \"http://{closed}/hook\", events: [start, success, failure]}}\n  - {{url: \"{}\", events: [start, success, failure]}}\n",
            server.url("/hang")
        ),
    )?;
    // Long enough for the hanging deliveries to fill every delivery slot.
    let runs = node.wait_for_finished("steady", 15, |e| field(e, "trigger") == "schedule")?;
    let instants: Vec<DateTime<Utc>> = runs.iter().map(|e| time(e, "scheduledAt")).collect();
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            TimeDelta::seconds(1),
            "a gap or a repeat in the instants: {instants:?}"
        );
    }
    let mut worst = TimeDelta::zero();
    for e in &runs {
        assert_eq!(field(e, "status"), "succeeded", "{e}");
        worst = worst.max(time(e, "startedAt") - time(e, "scheduledAt"));
    }
    // A delivery that held up firing would cost a fire its whole time limit (5 s a
    // try); a loaded CI machine starts a run up to a second or so late by itself.
    // (How late runs start when nothing is wrong: `kairos-bench lateness`.)
    assert!(
        worst < WEBHOOK_TRY_LIMIT - TimeDelta::seconds(2),
        "a run started {worst} after its instant"
    );
    // The webhooks really were failing meanwhile.
    assert!(
        server.hits("/hang").len() >= 10,
        "the hanging webhook was hardly tried: {} requests",
        server.hits("/hang").len()
    );
    let metrics = wait_until(RUN_DEADLINE, "a failed delivery to be counted", || {
        let text = http_get(&node.dev.http_addr, "/metrics").ok()?;
        (metric(&text, "kairos_webhooks_total{result=\"failed\"}") >= 1.0).then_some(text)
    })
    .map_err(|e| node.with_log(e))?;
    assert_eq!(
        metric(&metrics, "kairos_webhooks_total{result=\"delivered\"}"),
        0.0,
        "nothing could be delivered"
    );
    Ok(())
}

// ---- 9. metrics ----

/// Scheduled executions of `name` that have started, as the API lists them.
fn started_scheduled(node: &Node, name: &str) -> Result<usize> {
    Ok(executions(&node.dev, name)?
        .iter()
        .filter(|e| field(e, "trigger") == "schedule" && !field(e, "startedAt").is_empty())
        .count())
}

// `/metrics` is valid Prometheus text by promtool's own parser and linter, has the
// series an operator graphs, and the fire-lateness histogram counts every scheduled
// start: after each fire its count has grown by one.
#[test]
fn metrics_pass_promtool_and_lateness_counts_every_scheduled_start() -> Result<()> {
    let node = Node::start(&[])?;
    let job = "name: metered\nschedule: \"@every 1s\"\nshell: {command: \"true\"}\n";
    let file = write_file(node.path(), "metered.yaml", job)?;
    node.cli(&["job", "apply", "-f", &file])?.ok()?;
    let promtool = kairos_integration_tests::deploy::tool("promtool")?;

    let mut last = 0.0;
    for round in 0..3 {
        // Between two listings of the started runs, the histogram's count lies
        // between the two numbers (every start observed once, none twice).
        let before = started_scheduled(&node, "metered")?;
        let text = http_get(&node.dev.http_addr, "/metrics")?;
        let after = started_scheduled(&node, "metered")?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .ok_or_else(|| anyhow!("no body in {text}"))?;
        let count = metric(body, "kairos_fire_lateness_seconds_count");
        assert!(
            before as f64 <= count && count <= after as f64,
            "round {round}: lateness count {count}, started runs {before}..{after}"
        );
        assert!(count >= last, "the count went down: {last} → {count}");
        last = count;

        let path = node.path().join(format!("metrics-{round}.txt"));
        std::fs::write(&path, body)?;
        let check = kairos_integration_tests::deploy::run(
            Command::new("sh")
                .arg("-c")
                .arg("\"$0\" check metrics < \"$1\"")
                .arg(&promtool)
                .arg(&path),
            Duration::from_secs(30),
        )?;
        assert!(
            check.success(),
            "promtool check metrics: {}{}\n{body}",
            check.stdout,
            check.stderr
        );
        for series in [
            "kairos_fire_lateness_seconds_bucket{le=\"0.005\"}",
            "kairos_executions_created_total{status=\"pending\",trigger=\"schedule\"}",
            "kairos_raft_term",
            "kairos_raft_apply_lag",
            "kairos_raft_proposal_commit_seconds_count",
            "kairos_raft_proposals_total{result=\"committed\"}",
            "kairos_raft_leader_changes_total",
            "kairos_raft_snapshots_made_total",
            "kairos_executors_connected",
            "kairos_dispatch_queue_depth",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(
                body.lines().any(|l| l.starts_with(&format!("{series} "))),
                "no {series} in /metrics:\n{body}"
            );
        }
        // The Grafana dashboard graphs only series that exist.
        let dashboard = std::fs::read_to_string(
            kairos_integration_tests::deploy::repo_root()
                .join("deploy/grafana/kairos-dashboard.json"),
        )?;
        let names: BTreeSet<&str> = dashboard
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("kairos_") || w.starts_with("process_"))
            .collect();
        assert!(names.len() >= 15, "the dashboard uses only {names:?}");
        for name in names {
            assert!(
                body.lines().any(|l| l.starts_with(name)),
                "the dashboard graphs {name}, which /metrics does not have"
            );
        }
        // Wait for the next fire's start before looking again.
        let seen = after;
        wait_until(RUN_DEADLINE, "the next scheduled start", || {
            (started_scheduled(&node, "metered").ok()? > seen).then_some(())
        })
        .map_err(|e| node.with_log(e))?;
    }
    assert!(last >= 2.0, "only {last} starts observed over three fires");
    assert_eq!(
        metric(
            &http_get(&node.dev.http_addr, "/metrics")?,
            "kairos_raft_leader_changes_total"
        ),
        1.0,
        "a one-node group elects itself once"
    );
    Ok(())
}

// ---- 10. the Dkron-compatible API ----

// Dkron's getting-started call, as its documentation writes it: `curl -XPOST
// /v1/jobs -d '{...}'`, which sends the JSON as `application/x-www-form-urlencoded`.
// The job is created (201) and runs; a body that is not JSON is refused naming it.
#[test]
fn dkron_s_getting_started_post_creates_a_job_whatever_the_content_type() -> Result<()> {
    use kairos_integration_tests::web::Request;
    let node = Node::start(&[])?;
    let body = r#"{"name":"job1","schedule":"@every 10s","timezone":"Europe/Berlin","owner":"Platform Team","owner_email":"platform@example.com","disabled":false,"concurrency":"allow","executor":"shell","executor_config":{"command":"date"}}"#;
    let (code, answer) =
        Request::form("/v1/jobs?runoncreate=true", body).send(&node.dev.http_addr)?;
    assert_eq!(code, 201, "{answer}");
    let job: Value = serde_json::from_str(&answer)?;
    assert_eq!(job["name"], "job1", "{answer}");
    let runs = wait_until(RUN_DEADLINE, "the run on create", || {
        let list = executions(&node.dev, "job1").ok()?;
        list.iter()
            .any(|e| field(e, "status") == "succeeded")
            .then_some(list)
    })
    .map_err(|e| node.with_log(e))?;
    assert!(
        runs.iter().any(|e| field(e, "trigger") == "manual"),
        "runoncreate started no manual run: {runs:?}"
    );
    let (code, answer) =
        Request::form("/v1/jobs", "name=job2&schedule=@daily").send(&node.dev.http_addr)?;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("not a Dkron job document"), "{answer}");
    Ok(())
}
