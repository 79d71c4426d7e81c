//! docs/grpcurl.md, run: every recipe in the guide, executed as a reader would run
//! it (bash, the real grpcurl 1.8.6 and jq) against a real `kairos dev`, in the
//! guide's order, each one's output checked for what the guide says it shows.
//!
//! A recipe is a fenced `sh` block under a heading; the heading names it. Each has a
//! check in [`CHECKS`] under the same heading, and the test fails when either side
//! has one the other lacks: a recipe added to the guide without a check, or a check
//! left behind by a recipe that is gone. Blocks in another shell dialect (`bash`,
//! `console`, ...) or with no language are refused, so that nothing runnable slips
//! past as an example; examples that are not run use `json` or `text`.
//!
//! The recipes share what a reader's shell would: the address in `$KAIROS`, a
//! working directory (the job file one recipe writes, the next reads), and the one
//! scheduler's state (the job created early is paused, resumed and deleted later).
//! The last recipe, the TLS and token form, runs against a one-node group started
//! with TLS and authentication, with the group's `ca.crt` in its directory and a
//! viewer token in `$KAIROS_TOKEN`.
//!
//! Each recipe runs in its own process group with its output in files, so that
//! neither a stream left open (the watch and tail recipes are bounded by grpcurl's
//! `-max-time`) nor a background child can hang the test: at [`RECIPE_DEADLINE`]
//! the whole group is killed and the recipe fails, and once a recipe has exited
//! whatever it left running is killed too.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use kairos_integration_tests::deploy::{repo_root, tool, tools_dir};
use kairos_integration_tests::{Cluster, ClusterOptions, Dev, field, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");
/// The guide, from the repository root.
const GUIDE: &str = "docs/grpcurl.md";
/// The fence language of a recipe.
const RECIPE_LANGUAGE: &str = "sh";
/// Fence languages that would hide a shell command from the test.
const OTHER_SHELLS: &[&str] = &[
    "bash",
    "shell",
    "console",
    "zsh",
    "shell-session",
    "sh-session",
    "shellscript",
];
/// How long one recipe may take before it is killed: the slowest by design is the
/// watch, bounded at 20 s by its `-max-time`.
const RECIPE_DEADLINE: Duration = Duration::from_secs(90);
/// grpcurl's exit code for a call answered `InvalidArgument` (64 + the code).
const EXIT_INVALID_ARGUMENT: i32 = 64 + 3;

/// One runnable block of the guide.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recipe {
    /// The heading it sits under, which names it.
    heading: String,
    /// The line of its opening fence (1-based), for messages.
    line: usize,
    script: String,
}

/// Every recipe in `doc`, in order. Fails on a block in another shell dialect or
/// without a language, on a recipe outside any heading or sharing its heading with
/// another, and on a fence left open.
fn recipes(doc: &str) -> Result<Vec<Recipe>> {
    let mut found: Vec<Recipe> = Vec::new();
    let mut heading: Option<String> = None;
    // The block being read: its language, first line and lines so far.
    let mut open: Option<(String, usize, Vec<&str>)> = None;
    for (index, line) in doc.lines().enumerate() {
        let number = index + 1;
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (Some((language, start, body)), Some(_)) => {
                if language == RECIPE_LANGUAGE {
                    let heading = heading.clone().ok_or_else(|| {
                        anyhow!("the sh block at line {start} is not under any heading")
                    })?;
                    if let Some(twin) = found.iter().find(|r| r.heading == heading) {
                        bail!(
                            "the sh blocks at lines {} and {start} share the heading {heading:?}: one recipe per heading",
                            twin.line
                        );
                    }
                    found.push(Recipe {
                        heading,
                        line: *start,
                        script: body.join("\n"),
                    });
                }
                open = None;
            }
            (Some((_, _, body)), None) => body.push(line),
            (None, Some(info)) => {
                let language = info.split_whitespace().next().unwrap_or("").to_string();
                if language.is_empty() {
                    bail!(
                        "the block at line {number} names no language (recipes are sh, examples json or text)"
                    );
                }
                if OTHER_SHELLS.contains(&language.as_str()) {
                    bail!(
                        "the block at line {number} is {language}: a recipe is a sh block, an example that is not run is text"
                    );
                }
                open = Some((language, number, Vec::new()));
            }
            (None, None) => {
                if let Some(title) = line.strip_prefix('#') {
                    heading = Some(title.trim_start_matches('#').trim().to_string());
                }
            }
        }
    }
    if let Some((_, start, _)) = open {
        bail!("the block opened at line {start} is never closed");
    }
    Ok(found)
}

/// What a recipe printed and how it ended.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

impl Ran {
    fn succeeded(&self) -> Result<()> {
        ensure!(self.code == Some(0), "the recipe failed");
        Ok(())
    }

    /// Every JSON value on stdout, in order (grpcurl and jq print one after another).
    fn json(&self) -> Result<Vec<Value>> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .context("stdout is not a sequence of JSON values")
    }

    /// The one JSON value on stdout.
    fn one(&self) -> Result<Value> {
        let mut all = self.json()?;
        ensure!(
            all.len() == 1,
            "expected one JSON answer, got {}",
            all.len()
        );
        Ok(all.remove(0))
    }

    /// The JSON value that ends stdout, after whatever text came before it.
    fn last_json(&self) -> Result<Value> {
        let start = self
            .stdout
            .rfind("\n{")
            .map(|i| i + 1)
            .or_else(|| self.stdout.starts_with('{').then_some(0))
            .context("no JSON object on stdout")?;
        serde_json::from_str(&self.stdout[start..]).context("the end of stdout is not JSON")
    }
}

/// Where a recipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against {
    /// The `kairos dev` process, plaintext.
    Dev,
    /// A one-node group with TLS and authentication.
    Secured,
}

type Check = fn(&Ran) -> Result<()>;

/// Every recipe's check, by heading, in the guide's order.
const CHECKS: &[(&str, Against, Check)] = &[
    ("List the services", Against::Dev, list_services),
    ("Describe a service", Against::Dev, describe_service),
    ("Describe a message", Against::Dev, describe_message),
    ("Create a job from a JSON file", Against::Dev, create_job),
    ("List jobs", Against::Dev, list_jobs),
    ("Get a job", Against::Dev, get_job),
    ("Preview a schedule", Against::Dev, preview_schedule),
    ("Run a job and wait for its end", Against::Dev, run_and_wait),
    ("Watch executions", Against::Dev, watch_executions),
    ("List a job's executions", Against::Dev, list_executions),
    ("Tail an execution's output", Against::Dev, tail_output),
    ("Pause a job", Against::Dev, pause_job),
    ("Resume a job", Against::Dev, resume_job),
    ("Delete a job", Against::Dev, delete_job),
    ("Read an error", Against::Dev, read_an_error),
    ("Cluster status", Against::Dev, cluster_status),
    ("List executors", Against::Dev, list_executors),
    ("Health check", Against::Dev, health_check),
    (
        "Check a secured group with a token",
        Against::Secured,
        secured_status,
    ),
];

/// The job the guide creates and what its command prints.
const JOB: &str = "hello";
const JOB_OUTPUT: &str = "hello from kairos";

fn list_services(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let services: Vec<&str> = ran.stdout.lines().map(str::trim).collect();
    for want in [
        "kairos.v1.JobService",
        "kairos.v1.ExecutionService",
        "kairos.v1.ClusterService",
        "kairos.v1.TokenService",
        "grpc.health.v1.Health",
    ] {
        ensure!(services.contains(&want), "{want} is not listed");
    }
    Ok(())
}

fn describe_service(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    ensure!(
        ran.stdout.contains(
            "rpc RunJob ( .kairos.v1.RunJobRequest ) returns ( .kairos.v1.RunJobResponse );"
        ),
        "RunJob is not described"
    );
    // The guide promises every method with its comment (the API reference).
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let methods = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("rpc "))
        .count();
    ensure!(methods >= 9, "only {methods} methods described");
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("rpc ") {
            let above = i.checked_sub(1).map(|j| lines[j].trim_start());
            ensure!(
                above.is_some_and(|l| l.starts_with("//")),
                "{} has no comment",
                line.trim()
            );
        }
    }
    Ok(())
}

fn describe_message(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    for want in [
        "kairos.v1.Job is a message:",
        "string schedule = 2;",
        "kairos.v1.RunJobRequest is a message:",
        "Message template:",
        "\"name\": \"\"",
    ] {
        ensure!(ran.stdout.contains(want), "{want:?} is not shown");
    }
    Ok(())
}

fn create_job(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    ensure!(
        field(&answer, "result") == "created",
        "the job was not created"
    );
    let job = &answer["job"];
    ensure!(field(job, "name") == JOB, "the answer is not the job {JOB}");
    ensure!(
        field(job, "schedule") == "@every 10s",
        "the schedule differs"
    );
    ensure!(job["metadata"]["team"] == "docs", "the metadata is missing");
    ensure!(
        !field(job, "version").is_empty(),
        "no version in the answer"
    );
    Ok(())
}

fn list_jobs(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    let names: Vec<&str> = answer["jobs"]
        .as_array()
        .context("no jobs array")?
        .iter()
        .map(|j| field(j, "name"))
        .collect();
    ensure!(names == [JOB], "listed {names:?}");
    Ok(())
}

fn get_job(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let job = ran.one()?;
    ensure!(field(&job, "name") == JOB, "not the job {JOB}");
    ensure!(
        job["shell"]["command"] == "echo hello from kairos",
        "the command differs"
    );
    ensure!(
        !field(&job["status"], "nextFireAt").is_empty(),
        "no nextFireAt in status"
    );
    Ok(())
}

fn preview_schedule(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answers = ran.json()?;
    ensure!(answers.len() == 2, "expected two previews");
    for (answer, zone) in answers.iter().zip(["UTC", "Europe/Berlin"]) {
        ensure!(field(answer, "timezone") == zone, "not read in {zone}");
        let instants = answer["instants"].as_array().context("no instants")?;
        ensure!(instants.len() == 3, "{} instants, not 3", instants.len());
    }
    // 02:30 in Berlin is 01:30Z in winter and 00:30Z in summer.
    for instant in answers[1]["instants"].as_array().context("no instants")? {
        let t = instant.as_str().unwrap_or("");
        ensure!(
            t.ends_with("T01:30:00Z") || t.ends_with("T00:30:00Z"),
            "{t} is not 02:30 in Berlin"
        );
    }
    Ok(())
}

fn run_and_wait(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    ensure!(
        ran.stdout.starts_with(JOB_OUTPUT),
        "the run's output is not printed first"
    );
    let execution = ran.last_json()?;
    ensure!(
        execution["id"]
            .as_str()
            .is_some_and(|id| id.parse::<u64>().is_ok()),
        "no execution id"
    );
    ensure!(
        field(&execution, "status") == "succeeded",
        "the run did not end succeeded"
    );
    ensure!(execution["exitCode"] == 0, "no exit code 0");
    Ok(())
}

fn watch_executions(ran: &Ran) -> Result<()> {
    // jq ends the pipeline; grpcurl's own end is the deadline of -max-time.
    ran.succeeded()?;
    ensure!(
        ran.stderr.contains("DeadlineExceeded"),
        "the watch did not end at its -max-time"
    );
    let changes = ran.json()?;
    ensure!(!changes.is_empty(), "no change was shown in 20 s");
    for change in &changes {
        ensure!(
            field(change, "job") == JOB,
            "a change of another job: {change}"
        );
    }
    ensure!(
        changes
            .iter()
            .any(|c| field(c, "trigger") == "schedule" && field(c, "status") == "succeeded"),
        "no scheduled run was seen to succeed"
    );
    Ok(())
}

fn list_executions(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let executions = ran.json()?;
    ensure!(executions.len() >= 2, "fewer than two executions");
    let ids: Vec<u64> = executions
        .iter()
        .map(|e| {
            field(e, "id")
                .parse::<u64>()
                .context("an id is not a number")
        })
        .collect::<Result<_>>()?;
    ensure!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    ensure!(
        executions
            .iter()
            .any(|e| field(e, "trigger") == "manual" && field(e, "status") == "succeeded"),
        "the manual run is not listed"
    );
    Ok(())
}

fn tail_output(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    ensure!(
        ran.stdout.lines().any(|l| l == JOB_OUTPUT),
        "the output is not shown"
    );
    Ok(())
}

fn pause_job(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    ensure!(answer["paused"] == true, "not paused");
    ensure!(
        field(&answer, "pausedReason") == "maintenance window",
        "the reason is not kept"
    );
    Ok(())
}

fn resume_job(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    ensure!(answer["paused"] == false, "still paused");
    ensure!(
        !field(&answer, "nextFireAt").is_empty(),
        "no next fire after resuming"
    );
    Ok(())
}

fn delete_job(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    ensure!(answer["deleted"] == serde_json::json!([JOB]), "not deleted");
    Ok(())
}

fn read_an_error(ran: &Ran) -> Result<()> {
    ensure!(
        ran.code == Some(EXIT_INVALID_ARGUMENT),
        "the last call did not exit {EXIT_INVALID_ARGUMENT} (InvalidArgument)"
    );
    for want in [
        "Code: NotFound",
        "job hello not found",
        "Code: InvalidArgument",
        "invalid schedule",
    ] {
        ensure!(ran.stderr.contains(want), "{want:?} is not on stderr");
    }
    ensure!(
        ran.stdout.contains("kairos-field: schedule"),
        "the kairos-field trailer is not shown"
    );
    Ok(())
}

fn cluster_status(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let status = ran.one()?;
    ensure!(field(&status, "leaderId") == "1", "no leader 1");
    ensure!(
        field(&status, "answeredBy") == "1",
        "not answered by node 1"
    );
    ensure!(
        status["schedulers"][0]["role"] == "leader",
        "scheduler 1 is not the leader"
    );
    ensure!(
        status["executors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "no executor in the status"
    );
    Ok(())
}

fn list_executors(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answer = ran.one()?;
    let executors = answer["executors"].as_array().context("no executors")?;
    ensure!(executors.len() == 1, "kairos dev has one executor");
    ensure!(
        !field(&executors[0], "id").is_empty(),
        "an executor without id"
    );
    Ok(())
}

fn health_check(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let answers = ran.json()?;
    ensure!(answers.len() == 2, "expected two answers");
    for answer in &answers {
        ensure!(
            field(answer, "status") == "SERVING",
            "not SERVING: {answer}"
        );
    }
    Ok(())
}

fn secured_status(ran: &Ran) -> Result<()> {
    ran.succeeded()?;
    let status = ran.one()?;
    ensure!(
        field(&status, "leaderId")
            .parse::<u64>()
            .is_ok_and(|id| id > 0),
        "no leader"
    );
    Ok(())
}

/// A recipe's process group, killed when dropped (whatever is still in it).
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `recipe` with bash in `dir`, with `env` and the tool directory first on
/// `PATH`; output goes to files named after `n`.
fn run_recipe(n: usize, recipe: &Recipe, dir: &Path, env: &[(&str, &str)]) -> Result<Ran> {
    let out_path = dir.join(format!("recipe-{n}.out"));
    let err_path = dir.join(format!("recipe-{n}.err"));
    let path = std::env::join_paths(std::iter::once(tools_dir().join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&recipe.script)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("KAIROS")
        .env_remove("KAIROS_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .process_group(0);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().context("spawning bash")?;
    let group = Group(child.id());
    let status = wait_until(
        RECIPE_DEADLINE,
        &format!("recipe {:?} to finish", recipe.heading),
        || child.try_wait().ok().flatten(),
    );
    // Whatever it left running goes now; on a timeout, the recipe itself too.
    drop(group);
    let status = match status {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = child.wait();
            let partial = Ran {
                code: None,
                stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
                stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            };
            return Err(e.context(format!("killed it; so far it printed:\n{partial}")));
        }
    };
    Ok(Ran {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(&out_path)?,
        stderr: std::fs::read_to_string(&err_path)?,
    })
}

/// The TLS group of the last recipe, its working directory (with the group's
/// `ca.crt`), its address and a viewer token.
struct Secured {
    cluster: Cluster,
    dir: std::path::PathBuf,
    token: String,
}

impl Secured {
    fn start(root: &Path) -> Result<Secured> {
        let cluster = Cluster::start(
            BIN.as_ref(),
            &root.join("group"),
            ClusterOptions::new(1, 0).secure(),
        )?;
        let leader = cluster.wait_for_leader()?;
        let made = cluster
            .cli(
                leader,
                &[
                    "-o",
                    "json",
                    "token",
                    "create",
                    "grpcurl-guide",
                    "--role",
                    "viewer",
                ],
            )?
            .ok()?
            .json()?;
        let token = field(&made, "token").to_string();
        ensure!(!token.is_empty(), "no token in {made}");
        let dir = root.join("secured");
        std::fs::create_dir_all(&dir)?;
        let pki = cluster.pki().context("the group runs without TLS")?;
        std::fs::copy(pki.join("ca.crt"), dir.join("ca.crt"))?;
        Ok(Secured {
            cluster,
            dir,
            token,
        })
    }

    fn addr(&self) -> Result<String> {
        let leader = self.cluster.wait_for_leader()?;
        Ok(self.cluster.addr(leader).to_string())
    }
}

#[test]
fn every_recipe_of_the_grpcurl_guide_runs_and_shows_what_it_says() -> Result<()> {
    let doc = std::fs::read_to_string(repo_root().join(GUIDE))
        .with_context(|| format!("reading {GUIDE}"))?;
    let recipes = recipes(&doc).with_context(|| format!("reading the recipes of {GUIDE}"))?;
    // The guide and the checks name the same recipes, in the same order.
    let unchecked: Vec<&str> = recipes
        .iter()
        .map(|r| r.heading.as_str())
        .filter(|h| !CHECKS.iter().any(|(c, _, _)| c == h))
        .collect();
    ensure!(
        unchecked.is_empty(),
        "recipes of {GUIDE} without a check in integration-tests/tests/clients/grpcurl.rs: {unchecked:?}"
    );
    let stale: Vec<&str> = CHECKS
        .iter()
        .map(|(c, _, _)| *c)
        .filter(|c| !recipes.iter().any(|r| r.heading == *c))
        .collect();
    ensure!(
        stale.is_empty(),
        "checks for recipes that {GUIDE} no longer has: {stale:?}"
    );
    let guide_order: Vec<&str> = recipes.iter().map(|r| r.heading.as_str()).collect();
    let check_order: Vec<&str> = CHECKS.iter().map(|(c, _, _)| *c).collect();
    ensure!(
        guide_order == check_order,
        "the checks are not in the guide's order:\nguide:  {guide_order:?}\nchecks: {check_order:?}"
    );

    // The tools a reader needs (the set-up script installs them).
    let grpcurl = tool("grpcurl")?;
    tool("jq")?;
    let version = Command::new(&grpcurl).arg("-version").output()?;
    let version =
        String::from_utf8_lossy(&version.stdout) + String::from_utf8_lossy(&version.stderr);
    ensure!(
        version.contains("1.8.6"),
        "{} is not grpcurl 1.8.6: {version}",
        grpcurl.display()
    );

    let root = tempfile::tempdir()?;
    let work = root.path().join("work");
    std::fs::create_dir_all(&work)?;
    let dev = Dev::start(BIN.as_ref(), &root.path().join("dev"))?;
    // A run asked for before the local executor is connected would be no_target.
    dev.wait_for_executors(1)?;
    let mut secured: Option<Secured> = None;

    for (n, recipe) in recipes.iter().enumerate() {
        let (_, against, check) = CHECKS
            .iter()
            .find(|(c, _, _)| *c == recipe.heading)
            .expect("invariant: every recipe has a check (checked above)");
        let ran = match against {
            Against::Dev => run_recipe(n, recipe, &work, &[("KAIROS", &dev.grpc_addr)]),
            Against::Secured => {
                if secured.is_none() {
                    secured = Some(Secured::start(root.path())?);
                }
                let group = secured
                    .as_ref()
                    .expect("invariant: the secured group was just started");
                let addr = group.addr()?;
                run_recipe(
                    n,
                    recipe,
                    &group.dir,
                    &[("KAIROS", &addr), ("KAIROS_TOKEN", &group.token)],
                )
            }
        };
        let context = || {
            format!(
                "recipe {:?} ({GUIDE} line {})\n--- script ---\n{}",
                recipe.heading, recipe.line, recipe.script
            )
        };
        let ran = ran.with_context(context)?;
        if let Err(e) = check(&ran) {
            bail!(
                "{}\n{e:#}\n{ran}\n--- kairos dev log ---\n{}",
                context(),
                dev.log_tail()
            );
        }
    }
    Ok(())
}

#[test]
fn the_guide_reader_finds_recipes_and_refuses_hidden_ones() -> Result<()> {
    let doc = "# Guide\n\n    export KAIROS=localhost:7070\n\n## One\n\n```sh\ngrpcurl a\ngrpcurl b\n```\n\n```json\n{}\n```\n\n### Two\n\n```sh\ngrpcurl c\n```\n";
    let found = recipes(doc)?;
    assert_eq!(
        found,
        vec![
            Recipe {
                heading: "One".into(),
                line: 7,
                script: "grpcurl a\ngrpcurl b".into(),
            },
            Recipe {
                heading: "Two".into(),
                line: 18,
                script: "grpcurl c".into(),
            },
        ]
    );
    for (doc, says) in [
        ("## A\n```bash\nx\n```\n", "is bash"),
        ("## A\n```\nx\n```\n", "names no language"),
        ("```sh\nx\n```\n", "not under any heading"),
        ("## A\n```sh\nx\n```\n```sh\ny\n```\n", "share the heading"),
        ("## A\n```sh\nx\n", "never closed"),
    ] {
        let err = recipes(doc).expect_err(doc).to_string();
        assert!(err.contains(says), "{doc:?}: {err}");
    }
    Ok(())
}
