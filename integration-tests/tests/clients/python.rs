//! The Python SDK (`sdk/python/`) as its users run it, with the project's tool venv
//! (`scripts/setup-test-deps`) and `PYTHONPATH=sdk/python/src`, nothing installed.
//!
//! - `the_sdk_rides_through_a_leader_killed_mid_script`: a three-scheduler group
//!   with TLS and a token and one executor; `sdk/python/tests/failover_script.py`
//!   applies jobs from YAML, waits for a run, watches its events; in the middle it
//!   prints `KILL-LEADER <addr>` and blocks on stdin, this test SIGKILLs that leader
//!   and answers `KILLED`, and the script goes on through the same client (all three
//!   endpoints) with another run, lists and a watch that resumed elsewhere.
//! - `the_committed_stubs_are_what_the_generator_makes`: `sdk/python/generate`
//!   into a temporary directory gives exactly the files committed under
//!   `sdk/python/src/kairos_sdk/_pb/`, so a proto change without regenerating fails.
//! - `the_sdk_unit_tests_pass`: `sdk/python/tests/test_*.py` (documents, endpoints,
//!   the leader-following and no-resend rules against in-process fake schedulers).
//!
//! A failure shows the script's stdout and stderr and the tail of every process's
//! log. Every wait has a deadline and the Python process is killed if the test
//! ends early.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kairos_integration_tests::deploy::{repo_root, run, tools_dir};
use kairos_integration_tests::{Cluster, ClusterOptions, field};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long the whole failover script may take (two runs, an election, a watch
/// resume, on a slow debug build).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);
/// How long the generator or the unit tests may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(120);
/// Lines of the script's stderr shown on failure.
const STDERR_TAIL_LINES: usize = 80;

/// The venv's python, or an error naming the set-up script.
fn python() -> Result<PathBuf> {
    let python = tools_dir().join("venv/bin/python");
    ensure!(
        python.exists(),
        "no {}: run scripts/setup-test-deps",
        python.display()
    );
    Ok(python)
}

fn sdk_dir() -> PathBuf {
    repo_root().join("sdk/python")
}

/// A new token of `role` named `name`, made by the admin (by certificate): its secret.
fn create_token(cluster: &Cluster, name: &str, role: &str) -> Result<String> {
    let leader = cluster.wait_for_leader()?;
    let out = cluster
        .cli(
            leader,
            &["-o", "json", "token", "create", name, "--role", role],
        )?
        .ok()?
        .json()?;
    let secret = field(&out, "token").to_string();
    ensure!(secret.len() > 40, "a short token secret: {out}");
    Ok(secret)
}

/// The Python process: killed when dropped, its stderr in a file.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr_path: PathBuf,
}

impl Script {
    fn spawn(cmd: &mut Command, stderr_path: &Path) -> Result<Script> {
        let stderr = std::fs::File::create(stderr_path)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("spawning the python script")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the script's stdout is not piped"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Script {
            child,
            stdin,
            lines,
            stdout: Vec::new(),
            stderr_path: stderr_path.to_path_buf(),
        })
    }

    /// The next stdout line, `None` at end of output; fails past `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<Option<String>> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.stdout.push(line.clone());
                Ok(Some(line))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("the script printed nothing more within {SCRIPT_DEADLINE:?}")
            }
        }
    }

    fn answer(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("the script's stdin is closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits (bounded) for the exit after the output ended.
    fn exit_code(&mut self, deadline: Instant) -> Result<Option<i32>> {
        self.stdin = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                bail!("the script did not exit after its output ended");
            }
            // The output is closed, so the process is on its way out: a short poll.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the script said, for a failure message.
    fn transcript(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        format!(
            "--- script stdout ---\n{}\n--- script stderr (last {STDERR_TAIL_LINES} lines) ---\n{tail}",
            self.stdout.join("\n")
        )
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_sdk_rides_through_a_leader_killed_mid_script() -> Result<()> {
    let python = python()?;
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(BIN.as_ref(), dir.path(), ClusterOptions::new(3, 1).secure())?;
    let leader = cluster.wait_for_leader()?;
    let token = create_token(&cluster, "python-sdk", "operator")?;
    let ca = cluster
        .pki()
        .ok_or_else(|| anyhow!("the group runs without TLS"))?
        .join("ca.crt");
    // Leader first: the script's watch opens there, so the kill breaks it.
    let mut ids = cluster.scheduler_ids();
    ids.sort_by_key(|&id| id != leader);
    let endpoints: Vec<String> = ids.iter().map(|&id| cluster.addr(id).to_string()).collect();
    let by_addr: BTreeMap<String, u64> = ids
        .iter()
        .map(|&id| (cluster.addr(id).to_string(), id))
        .collect();

    let mut cmd = Command::new(&python);
    cmd.arg(sdk_dir().join("tests/failover_script.py"))
        .args(["--endpoints", &endpoints.join(",")])
        .arg("--ca")
        .arg(&ca)
        .args(["--token", &token])
        .env("PYTHONPATH", sdk_dir().join("src"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut script = Script::spawn(&mut cmd, &dir.path().join("script.stderr"))?;
    match drive(&mut cluster, &mut script, &by_addr) {
        Ok(()) => {
            // What the script did, for `--nocapture`.
            eprintln!("{}", script.transcript());
        }
        Err(e) => {
            let transcript = script.transcript();
            return Err(cluster.with_logs(e.context(transcript)));
        }
    }

    // The README's example script, as a user runs it, against the new leader.
    let out = run(
        Command::new(&python)
            .arg(sdk_dir().join("examples/run_and_wait.py"))
            .args(["--endpoints", &endpoints.join(",")])
            .arg("--ca")
            .arg(&ca)
            .args(["--token", &token])
            .env("PYTHONPATH", sdk_dir().join("src"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        SCRIPT_DEADLINE,
    )?;
    ensure!(
        out.success()
            && out.stdout.contains("job/hello-sdk created")
            && out.stdout.contains(": succeeded (exit code 0)")
            && out.stdout.contains("hello from hello-sdk, attempt 1"),
        "examples/run_and_wait.py: {out}"
    );
    Ok(())
}

/// Follows the script's protocol lines to its end.
fn drive(
    cluster: &mut Cluster,
    script: &mut Script,
    by_addr: &BTreeMap<String, u64>,
) -> Result<()> {
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let mut killed = None;
    let mut ok = false;
    while let Some(line) = script.next_line(deadline)? {
        if let Some(addr) = line.strip_prefix("KILL-LEADER ") {
            ensure!(killed.is_none(), "the script asked for a second kill");
            let id = *by_addr
                .get(addr)
                .ok_or_else(|| anyhow!("the script names {addr}, which is no scheduler"))?;
            let leader = cluster.wait_for_leader()?;
            ensure!(
                id == leader,
                "the script names scheduler {id} as leader, the group names {leader}"
            );
            cluster.kill_scheduler(id)?;
            killed = Some(id);
            script.answer("KILLED")?;
        } else if line == "OK" {
            ok = true;
        } else {
            bail!("the script printed an unexpected line: {line:?}");
        }
    }
    let code = script.exit_code(deadline)?;
    ensure!(
        ok && code == Some(0),
        "the script failed (exit code {code:?})"
    );
    let killed = killed.ok_or_else(|| anyhow!("the script never asked for the kill"))?;
    // The group the script saw is the group the harness sees: a new leader.
    let new_leader = cluster.wait_for_leader()?;
    ensure!(new_leader != killed, "scheduler {killed} still leads");
    Ok(())
}

#[test]
fn the_committed_stubs_are_what_the_generator_makes() -> Result<()> {
    let python = python()?;
    let out = tempfile::tempdir()?;
    run(
        Command::new(sdk_dir().join("generate"))
            .arg(out.path())
            .env("KAIROS_PYTHON", &python),
        TOOL_DEADLINE,
    )?
    .ok()?;
    let committed = sdk_dir().join("src/kairos_sdk/_pb");
    let generated = files_of(out.path())?;
    let stored = files_of(&committed)?;
    let mut problems = Vec::new();
    for (name, text) in &generated {
        match stored.get(name) {
            None => problems.push(format!("{name}: generated, not committed")),
            Some(s) if s != text => problems.push(format!("{name}: differs")),
            Some(_) => {}
        }
    }
    for name in stored.keys().filter(|n| !generated.contains_key(*n)) {
        problems.push(format!("{name}: committed, no longer generated"));
    }
    ensure!(
        generated.len() > 4,
        "the generator made only {:?}",
        generated.keys()
    );
    ensure!(
        problems.is_empty(),
        "{} is not what sdk/python/generate makes from proto/ now; run it and commit:\n  {}",
        committed.display(),
        problems.join("\n  ")
    );
    Ok(())
}

/// The files directly in `dir` (no caches), by name.
fn files_of(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.insert(name, text);
    }
    Ok(files)
}

#[test]
fn the_sdk_unit_tests_pass() -> Result<()> {
    let python = python()?;
    let out = run(
        Command::new(&python)
            .args(["-m", "unittest", "discover", "-v", "-s"])
            .arg(sdk_dir().join("tests"))
            .args(["-p", "test_*.py"])
            .env("PYTHONPATH", sdk_dir().join("src"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        TOOL_DEADLINE,
    )?
    .ok()?;
    // unittest reports on stderr: "Ran N tests" then "OK".
    ensure!(
        out.stderr.contains("\nOK") && !out.stderr.contains("Ran 0 tests"),
        "the SDK's unit tests ran nothing or did not pass:\n{}",
        out.stderr
    );
    Ok(())
}
