//! The harness for Kairos's integration tests: start real `kairos` processes on
//! 127.0.0.1 with ephemeral ports in a temporary directory, drive them with the real
//! CLI and real gRPC clients, kill them with SIGKILL, restart them on the same data.
//!
//! The tests themselves live in `integration-tests/tests/` and are built as test
//! targets of the `kairos` package (see `cli/Cargo.toml`), which is what gives them
//! the freshly built binary through `env!("CARGO_BIN_EXE_kairos")`.
//!
//! Rules the harness keeps for every test: servers bind only to 127.0.0.1 port 0;
//! every wait polls a condition against a deadline (never a bare sleep); every child
//! is killed when its handle drops; each test gets its own directory.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod dynamic;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// How often waits re-check their condition.
const POLL: Duration = Duration::from_millis(50);
/// How long a freshly started process may take to listen (a debug build on a busy
/// CI machine can be slow to open RocksDB).
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, or fails after `deadline` saying `what`.
pub fn wait_until<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {:?} waiting for {what}", deadline);
        }
        std::thread::sleep(POLL);
    }
}

/// The outcome of one CLI invocation.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Parses stdout as JSON (for `-o json`).
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "stdout is not JSON: {:?} (stderr: {:?})",
                self.stdout, self.stderr
            )
        })
    }

    /// Fails unless the command succeeded.
    pub fn ok(self) -> Result<CliOutput> {
        if self.success() {
            Ok(self)
        } else {
            Err(anyhow!(
                "command failed with {:?}: stdout={:?} stderr={:?}",
                self.code,
                self.stdout,
                self.stderr
            ))
        }
    }
}

/// Runs the CLI with `args` against `endpoint` and waits for it (bounded).
pub fn cli(bin: &Path, endpoint: &str, args: &[&str]) -> Result<CliOutput> {
    let mut child = Command::new(bin)
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("KAIROS_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_until(
        Duration::from_secs(120),
        &format!("kairos {}", args.join(" ")),
        || child.try_wait().ok().flatten(),
    );
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(CliOutput {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// A `kairos dev` process (one-node group plus a local executor).
pub struct Dev {
    bin: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    pub grpc_addr: String,
    pub http_addr: String,
}

impl Dev {
    /// Starts `kairos dev` on `data_dir` and waits until it listens.
    pub fn start(bin: &Path, data_dir: &Path) -> Result<Dev> {
        Self::start_with(bin, data_dir, &[])
    }

    /// Like [`Dev::start`] with extra flags for `kairos dev`.
    pub fn start_with(bin: &Path, data_dir: &Path, extra: &[&str]) -> Result<Dev> {
        std::fs::create_dir_all(data_dir)?;
        let addr_file = data_dir.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log_path = data_dir.with_extension(format!("{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = Command::new(bin)
            .arg("dev")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut dev = Dev {
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            log_path,
            child: Some(child),
            grpc_addr: String::new(),
            http_addr: String::new(),
        };
        let addrs = wait_until(
            STARTUP_DEADLINE,
            "kairos dev to write its addr file",
            || {
                if let Some(child) = dev.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Some(Err(anyhow!("kairos dev exited early with {status}")));
                }
                let text = std::fs::read_to_string(&addr_file).ok()?;
                let grpc = text
                    .lines()
                    .find_map(|l| l.strip_prefix("grpc="))?
                    .to_string();
                let http = text
                    .lines()
                    .find_map(|l| l.strip_prefix("http="))?
                    .to_string();
                Some(Ok((grpc, http)))
            },
        );
        let (grpc, http) = match addrs.and_then(|r| r) {
            Ok(a) => a,
            Err(e) => bail!("{e}\n--- log ---\n{}", dev.log_tail()),
        };
        dev.grpc_addr = grpc;
        dev.http_addr = http;
        Ok(dev)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Runs the CLI against this process.
    pub fn cli(&self, args: &[&str]) -> Result<CliOutput> {
        cli(&self.bin, &self.endpoint(), args)
    }

    /// Waits until at least `n` executors are connected to the leader (a run started
    /// before that is recorded `no_target`).
    pub fn wait_for_executors(&self, n: usize) -> Result<()> {
        wait_until(
            Duration::from_secs(30),
            &format!("{n} executor(s) to connect"),
            || {
                let v = self.cli(&["executors", "-o", "json"]).ok()?.json().ok()?;
                let connected = v
                    .get("executors")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                (connected >= n).then_some(())
            },
        )
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts a new one on the same data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let new = Dev::start(&self.bin, &self.data_dir)?;
        *self = new;
        Ok(())
    }

    /// The last lines the process logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `text` to `dir/name` and returns its path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.to_string_lossy().into_owned())
}

/// The executions of `job` as the CLI prints them with `-o json`, oldest first.
pub fn executions(dev: &Dev, job: &str) -> Result<Vec<Value>> {
    let out = dev
        .cli(&[
            "exec", "list", "--job", job, "--limit", "1000", "-o", "json",
        ])?
        .ok()?;
    let v = out.json()?;
    let mut list = v
        .get("executions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.reverse();
    Ok(list)
}

/// A field of a JSON object as a string ("" when absent, as proto3 JSON omits defaults).
pub fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

/// True when no process with this pid is alive (absent, or a zombie).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}
