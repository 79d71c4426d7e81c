//! The harness for Kairos's integration tests: start real `kairos` processes on
//! 127.0.0.1 with ephemeral ports in a temporary directory, drive them with the real
//! CLI and real gRPC clients, kill them with SIGKILL, restart them on the same data.
//!
//! The tests themselves live in `integration-tests/tests/` and are built as test
//! targets of the `kairos` package (see `cli/Cargo.toml`), which is what gives them
//! the freshly built binary through `env!("CARGO_BIN_EXE_kairos")`.
//!
//! Two shapes of deployment:
//! - [`Dev`]: one `kairos dev` process (a one-node group and a local executor).
//! - [`Cluster`]: a scheduler group of separate `kairos scheduler` processes plus
//!   separate `kairos executor` agents, each of which can be killed and restarted on
//!   its own data directory, grown with `--join` nodes, and driven through any node.
//!
//! [`check`] reads what a job recorded (`exec list -o json`) and what its command
//! really ran (a file it appends to), and checks the firing guarantees over the two;
//! the firing and chaos tests share it.
//!
//! Rules the harness keeps for every test: servers bind only to 127.0.0.1 (port 0,
//! except the gRPC ports of group members, which peers must know before anyone
//! starts: those are picked free by binding port 0 and released just before the
//! start, accepting the tiny race); every wait polls a condition against a deadline
//! (never a bare sleep); every loop is bounded; every child is killed (SIGKILL) when
//! its handle drops; each test gets its own directory.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod check;
pub mod deploy;
pub mod dynamic;
pub mod server;
pub mod web;

use anyhow::{Context, Result, anyhow, bail, ensure};
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

/// How long a CLI invocation may take before the harness kills it: far above what
/// any request should take (the slowest answer by design is an `Unavailable` after
/// the server's own waits of a few seconds), so hitting it means a hang.
pub const CLI_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the CLI with `args` against `endpoint` and waits for it (bounded).
pub fn cli(bin: &Path, endpoint: &str, args: &[&str]) -> Result<CliOutput> {
    cli_within(bin, endpoint, args, CLI_DEADLINE)
}

/// Runs the CLI with `args` against `endpoint`; kills it and fails if it has not
/// exited within `deadline`.
pub fn cli_within(
    bin: &Path,
    endpoint: &str,
    args: &[&str],
    deadline: Duration,
) -> Result<CliOutput> {
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
    let status = wait_until(deadline, &format!("kairos {}", args.join(" ")), || {
        child.try_wait().ok().flatten()
    });
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

    /// Every line the process has logged so far (its stderr, at `RUST_LOG=info`), for
    /// waits on an event only the log shows.
    pub fn log_lines(&self) -> Vec<String> {
        read_lines(&self.log_path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The path of the `kairos` binary it runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Every execution of `job`, oldest first, parsed.
    pub fn records(&self, job: &str) -> Result<Vec<check::Exec>> {
        check::Exec::parse_all(&all_executions_at(&self.bin, &self.endpoint(), job)?)
    }

    /// One execution (`exec get ID -o json`), parsed.
    pub fn execution(&self, id: u64) -> Result<check::Exec> {
        check::Exec::parse(
            &self
                .cli(&["exec", "get", &id.to_string(), "-o", "json"])?
                .ok()?
                .json()?,
        )
    }

    /// `job get NAME -o json`.
    pub fn job(&self, name: &str) -> Result<Value> {
        self.cli(&["job", "get", name, "-o", "json"])?.ok()?.json()
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
    executions_at(&dev.bin, &dev.endpoint(), job)
}

/// The executions of `job` as `endpoint` lists them with `-o json`, oldest first.
pub fn executions_at(bin: &Path, endpoint: &str, job: &str) -> Result<Vec<Value>> {
    exec_list(bin, endpoint, &["--job", job, "--limit", "1000"])
}

/// Every execution of `job` as `endpoint` lists them (`exec list --limit 0`, the
/// whole history however long), oldest first.
pub fn all_executions_at(bin: &Path, endpoint: &str, job: &str) -> Result<Vec<Value>> {
    exec_list(bin, endpoint, &["--job", job, "--limit", "0"])
}

/// Every execution of every job as `endpoint` lists them, oldest first.
pub fn every_execution_at(bin: &Path, endpoint: &str) -> Result<Vec<Value>> {
    exec_list(bin, endpoint, &["--limit", "0"])
}

/// `exec list -o json` with `args`, oldest first.
fn exec_list(bin: &Path, endpoint: &str, args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["exec", "list", "-o", "json"];
    all.extend_from_slice(args);
    exec_list_of(cli(bin, endpoint, &all)?)
}

/// The executions an `exec list -o json` printed, oldest first.
fn exec_list_of(out: CliOutput) -> Result<Vec<Value>> {
    let v = out.ok()?.json()?;
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

/// A number field of a proto3 JSON object: 64-bit integers are printed as strings,
/// 32-bit ones as numbers, and 0 is omitted, so an absent field reads as 0.
///
/// # Panics
/// When the field holds something that is not an unsigned integer.
pub fn num(v: &Value, name: &str) -> u64 {
    match v.get(name) {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s
            .parse()
            .unwrap_or_else(|_| panic!("field {name} is not a number: {v}")),
        Some(Value::Number(n)) => n
            .as_u64()
            .unwrap_or_else(|| panic!("field {name} is not an unsigned integer: {v}")),
        Some(other) => panic!("field {name} is not a number: {other} in {v}"),
    }
}

/// The lines of a text file; none while it does not exist yet.
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A job document that appends each run's `$KAIROS_SCHEDULED_AT` to `file`, every
/// second: the file is then the list of instants that really ran.
pub fn ticker_job(name: &str, file: &Path) -> String {
    format!(
        "name: {name}\nschedule: \"@every 1s\"\nshell:\n  command: echo \"$KAIROS_SCHEDULED_AT\" >> '{}'\n",
        file.display()
    )
}

/// `n` addresses for group members, each on its own loopback address
/// (`127.X.Y.Z`, chosen at random) with a port the kernel picked (a bind to port 0).
/// The listeners are released on return, because members must know each other's
/// addresses before any starts, and a member keeps its address across restarts. Its
/// own loopback address is what keeps the port free meanwhile: every other listener
/// (`127.0.0.1:0`) and every outgoing connection (whose source is 127.0.0.1) lives
/// on 127.0.0.1, so only another random pick of the same address could take it.
pub fn free_addrs(n: usize) -> Result<Vec<String>> {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut addrs = Vec::with_capacity(n);
    // Bounded: a taken address is merely skipped.
    for _ in 0..n * 20 {
        if addrs.len() == n {
            break;
        }
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(addrs.len());
        let r = h.finish().to_le_bytes();
        // 127.1.0.0 to 127.254.255.255: clear of 127.0.0.x, where everything else is.
        let ip = std::net::Ipv4Addr::new(127, 1 + r[0] % 254, r[1], r[2].max(1));
        let Ok(listener) = TcpListener::bind((ip, 0)) else {
            continue;
        };
        let addr = listener.local_addr()?.to_string();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.len() < n {
        bail!("could not find {n} free loopback addresses");
    }
    Ok(addrs)
}

/// The endpoint given to CLI commands that dial nothing (`kairos certs`).
const DEFAULT_CLI_ENDPOINT: &str = "http://127.0.0.1:7070";

/// The IP addresses of `HOST:PORT` addresses, comma-separated (the hosts a
/// scheduler certificate must be valid for).
pub fn hosts_of<'a>(addrs: impl IntoIterator<Item = &'a String>) -> String {
    addrs
        .into_iter()
        .filter_map(|a| a.rsplit_once(':').map(|(host, _)| host.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long a group may take to elect a leader (elections take about a second;
/// the rest is room for a slow debug build on a busy machine).
pub const LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How long status polls may take per call: a node answers at once, or within the
/// 0.8 s it gives each unreachable peer.
const STATUS_CALL_DEADLINE: Duration = Duration::from_secs(15);
/// Log lines of each process shown when a wait fails.
const LOG_TAIL_LINES: usize = 30;

/// One child process; killed with SIGKILL (and reaped) when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `bin args…` with `RUST_LOG=info`, stderr appended to `log_path`, and
    /// no `KAIROS_*` variable inherited from the test's environment (they would
    /// override nothing given as a flag, but could add flags the test did not ask for).
    pub fn spawn(bin: &Path, args: &[String], log_path: &Path) -> Result<Process> {
        Process::spawn_logging(bin, args, log_path, "info")
    }

    /// [`Process::spawn`] with `RUST_LOG=filter`.
    pub fn spawn_logging(
        bin: &Path,
        args: &[String],
        log_path: &Path,
        filter: &str,
    ) -> Result<Process> {
        use std::io::Write as _;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "--- harness: starting kairos {} ---", args.join(" "))?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KAIROS_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .args(args)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        Ok(Process { child })
    }

    /// False once the process has exited (or is a zombie waiting to be reaped).
    pub fn alive(&self) -> bool {
        !process_gone(self.child.id())
    }

    /// Sends SIGTERM and waits (up to `deadline`) for the process to exit; returns
    /// its exit status, or fails (and SIGKILLs it when dropped) if it lingers.
    fn terminate(&mut self, deadline: Duration) -> Result<std::process::ExitStatus> {
        send_signal(self.child.id(), "-TERM")?;
        wait_until(deadline, "the process to exit after SIGTERM", || {
            self.child.try_wait().ok().flatten()
        })
    }
}

/// How long a process may take to stop after SIGTERM: a leader hands over (a few
/// seconds at most), an executor drains its runs (these tests' runs are short).
pub const TERMINATE_DEADLINE: Duration = Duration::from_secs(40);

/// `GET http://ADDR/PATH` with a bare HTTP/1.1 client: the status code and body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    web::Request::get(path).send(addr)
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let lines = read_lines(path);
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One scheduler node of a [`Cluster`]: its fixed identity (id, gRPC address, data
/// directory, flags) and the process currently running it, if any.
struct SchedulerNode {
    args: Vec<String>,
    addr: String,
    addr_file: PathBuf,
    log_path: PathBuf,
    process: Option<Process>,
    http_addr: String,
}

/// One executor agent of a [`Cluster`].
struct ExecutorAgent {
    name: String,
    args: Vec<String>,
    log_path: PathBuf,
    process: Option<Process>,
}

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Initial voters, with node ids 1..=schedulers.
    pub schedulers: u64,
    /// Executor agents, named `exec-1`, `exec-2`, …; each dials every initial voter.
    pub executors: usize,
    /// Extra flags for every `kairos scheduler` (e.g. `--snapshot-interval 20`),
    /// including nodes started later with [`Cluster::start_joining_scheduler`].
    pub scheduler_flags: Vec<String>,
    /// TLS and authentication on every connection, as in production: a CA made with
    /// `kairos certs init` under `DIR/pki`, a certificate per scheduler and executor,
    /// and client commands as `admin:admin` by certificate. Otherwise every process
    /// runs `--insecure`.
    pub secure: bool,
    /// `RUST_LOG` of every process (`info` unless set).
    pub log_filter: String,
}

impl ClusterOptions {
    pub fn new(schedulers: u64, executors: usize) -> ClusterOptions {
        ClusterOptions {
            schedulers,
            executors,
            scheduler_flags: Vec::new(),
            secure: false,
            log_filter: "info".into(),
        }
    }

    /// Runs every process with `RUST_LOG=filter`.
    pub fn log_filter(mut self, filter: &str) -> ClusterOptions {
        self.log_filter = filter.to_string();
        self
    }

    /// Runs the group with TLS and authentication ([`ClusterOptions::secure`]).
    pub fn secure(mut self) -> ClusterOptions {
        self.secure = true;
        self
    }

    /// Adds `--flag value` to every scheduler's command line.
    pub fn scheduler_flag(mut self, flag: &str, value: &str) -> ClusterOptions {
        self.scheduler_flags.push(flag.to_string());
        self.scheduler_flags.push(value.to_string());
        self
    }
}

/// A scheduler group of separate `kairos scheduler` processes plus separate
/// `kairos executor` agents, all on 127.0.0.1 under one directory.
///
/// Schedulers are named by their raft id; each keeps its gRPC address and data
/// directory across [`kill_scheduler`](Cluster::kill_scheduler) and
/// [`restart_scheduler`](Cluster::restart_scheduler). Client commands go through any
/// node with [`cli`](Cluster::cli). Every process's stderr is appended to
/// `DIR/logs/NAME.log`; the `wait_*` methods put the tail of every log into their
/// error. Dropping the cluster SIGKILLs every process.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    scheduler_flags: Vec<String>,
    /// `RUST_LOG` of every process.
    log_filter: String,
    /// `DIR/pki` when the group runs with TLS.
    pki: Option<PathBuf>,
    schedulers: BTreeMap<u64, SchedulerNode>,
    executors: Vec<ExecutorAgent>,
}

impl Cluster {
    /// Starts the group and its executors under `dir` and returns once a leader is
    /// elected and every executor is connected to it.
    pub fn start(bin: &Path, dir: &Path, options: ClusterOptions) -> Result<Cluster> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let addrs: BTreeMap<u64, String> = (1..=options.schedulers)
            .zip(free_addrs(usize::try_from(options.schedulers)?)?)
            .collect();
        let peers = addrs
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let pki = options.secure.then(|| dir.join("pki"));
        if let Some(pki) = &pki {
            let ids: Vec<String> = addrs.keys().map(u64::to_string).collect();
            let executors: Vec<String> = (1..=options.executors)
                .map(|i| format!("exec-{i}"))
                .collect();
            let mut args = vec![
                "certs".to_string(),
                "init".into(),
                pki.to_string_lossy().into_owned(),
                "--scheduler".into(),
                ids.join(","),
                "--host".into(),
                format!("localhost,{}", hosts_of(addrs.values())),
                "--client".into(),
                "admin=admin".into(),
            ];
            if !executors.is_empty() {
                args.extend(["--executor".into(), executors.join(",")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(bin, DEFAULT_CLI_ENDPOINT, &args)?.ok()?;
        }
        let mut cluster = Cluster {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            scheduler_flags: options.scheduler_flags.clone(),
            log_filter: options.log_filter.clone(),
            pki,
            schedulers: BTreeMap::new(),
            executors: Vec::new(),
        };
        for (id, addr) in &addrs {
            let node = cluster.new_scheduler(*id, addr, &["--peers".to_string(), peers.clone()]);
            cluster.schedulers.insert(*id, node);
        }
        // Start them all before waiting for any: a node listens without a quorum,
        // but starting them together keeps the first election short.
        for id in addrs.keys() {
            cluster.spawn_scheduler(*id)?;
        }
        for id in addrs.keys() {
            cluster.wait_listening(*id)?;
        }
        let all_addrs = addrs.values().cloned().collect::<Vec<_>>().join(",");
        for i in 1..=options.executors {
            let name = format!("exec-{i}");
            let mut args = cluster.credentials(&format!("executor-{name}"));
            args.extend([
                "executor".into(),
                "--schedulers".into(),
                all_addrs.clone(),
                "--id".into(),
                name.clone(),
            ]);
            if cluster.pki.is_none() {
                args.push("--insecure".into());
            }
            cluster.executors.push(ExecutorAgent {
                args,
                log_path: dir.join("logs").join(format!("{name}.log")),
                name,
                process: None,
            });
            cluster.restart_executor(i - 1)?;
        }
        cluster.wait_for_leader()?;
        cluster.wait_for_executors(options.executors)?;
        Ok(cluster)
    }

    fn new_scheduler(&self, id: u64, addr: &str, membership: &[String]) -> SchedulerNode {
        let data_dir = self.dir.join(format!("scheduler-{id}"));
        let addr_file = self.dir.join(format!("scheduler-{id}.addr"));
        let mut args = self.credentials(&format!("scheduler-{id}"));
        args.push("scheduler".into());
        if self.pki.is_none() {
            args.push("--insecure".into());
        }
        args.extend([
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into_owned(),
            "--grpc-addr".into(),
            addr.to_string(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--addr-file".into(),
            addr_file.to_string_lossy().into_owned(),
        ]);
        args.extend(membership.iter().cloned());
        args.extend(self.scheduler_flags.iter().cloned());
        SchedulerNode {
            args,
            addr: addr.to_string(),
            addr_file,
            log_path: self.dir.join("logs").join(format!("scheduler-{id}.log")),
            process: None,
            http_addr: String::new(),
        }
    }

    fn node(&self, id: u64) -> Result<&SchedulerNode> {
        self.schedulers
            .get(&id)
            .ok_or_else(|| anyhow!("no scheduler {id} in this cluster"))
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut SchedulerNode> {
        self.schedulers
            .get_mut(&id)
            .ok_or_else(|| anyhow!("no scheduler {id} in this cluster"))
    }

    fn spawn_scheduler(&mut self, id: u64) -> Result<()> {
        let bin = self.bin.clone();
        let filter = self.log_filter.clone();
        let node = self.node_mut(id)?;
        let _ = std::fs::remove_file(&node.addr_file);
        node.process = Some(Process::spawn_logging(
            &bin,
            &node.args,
            &node.log_path,
            &filter,
        )?);
        Ok(())
    }

    /// Waits until scheduler `id` has written its addr file (it listens).
    fn wait_listening(&mut self, id: u64) -> Result<()> {
        let node = self.node(id)?;
        let http = wait_until(
            STARTUP_DEADLINE,
            &format!("scheduler {id} to listen"),
            || {
                if !node.process.as_ref().is_some_and(Process::alive) {
                    return Some(Err(anyhow!("scheduler {id} exited early")));
                }
                let text = std::fs::read_to_string(&node.addr_file).ok()?;
                let grpc = text.lines().find_map(|l| l.strip_prefix("grpc="))?;
                let http = text.lines().find_map(|l| l.strip_prefix("http="))?;
                Some(if grpc == node.addr {
                    Ok(http.to_string())
                } else {
                    Err(anyhow!(
                        "scheduler {id} listens on {grpc}, not {}",
                        node.addr
                    ))
                })
            },
        )
        .and_then(|r| r)
        .map_err(|e| self.with_logs(e))?;
        self.node_mut(id)?.http_addr = http;
        Ok(())
    }

    /// The path of the `kairos` binary the cluster runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The directory holding every node's data, addr file and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every scheduler id this cluster has started, running or not, in order.
    pub fn scheduler_ids(&self) -> Vec<u64> {
        self.schedulers.keys().copied().collect()
    }

    /// The schedulers whose process is alive, in id order.
    pub fn running_schedulers(&self) -> Vec<u64> {
        self.schedulers
            .iter()
            .filter(|(_, n)| n.process.as_ref().is_some_and(Process::alive))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Scheduler `id`'s gRPC address (`127.0.0.1:PORT`), fixed for its lifetime.
    ///
    /// # Panics
    /// When there is no scheduler `id`.
    pub fn addr(&self, id: u64) -> &str {
        &self.schedulers[&id].addr
    }

    /// Scheduler `id`'s HTTP address as its current process bound it.
    ///
    /// # Panics
    /// When there is no scheduler `id`.
    pub fn http_addr(&self, id: u64) -> &str {
        &self.schedulers[&id].http_addr
    }

    /// The pid of scheduler `id`'s current process.
    pub fn scheduler_pid(&self, id: u64) -> Option<u32> {
        self.schedulers
            .get(&id)?
            .process
            .as_ref()
            .map(|p| p.child.id())
    }

    /// Runs the CLI against scheduler `id` (bounded by [`CLI_DEADLINE`]).
    pub fn cli(&self, id: u64, args: &[&str]) -> Result<CliOutput> {
        self.cli_within(id, args, CLI_DEADLINE)
    }

    /// Runs the CLI against scheduler `id`, failing if it takes longer than `deadline`.
    pub fn cli_within(&self, id: u64, args: &[&str], deadline: Duration) -> Result<CliOutput> {
        let node = self.node(id)?;
        match &self.pki {
            None => cli_within(&self.bin, &format!("http://{}", node.addr), args, deadline),
            Some(_) => {
                let flags = self.credentials("admin-admin");
                let all: Vec<&str> = flags
                    .iter()
                    .map(String::as_str)
                    .chain(args.iter().copied())
                    .collect();
                cli_within(&self.bin, &format!("https://{}", node.addr), &all, deadline)
            }
        }
    }

    /// The `--tls-*` flags for the certificate `DIR/pki/NAME.crt`, or nothing when
    /// the group runs `--insecure`.
    pub fn credentials(&self, name: &str) -> Vec<String> {
        let Some(pki) = &self.pki else {
            return Vec::new();
        };
        let path = |file: String| pki.join(file).to_string_lossy().into_owned();
        vec![
            "--tls-ca".into(),
            path("ca.crt".into()),
            "--tls-cert".into(),
            path(format!("{name}.crt")),
            "--tls-key".into(),
            path(format!("{name}.key")),
        ]
    }

    /// The CA directory (`kairos certs init`) when the group runs with TLS.
    pub fn pki(&self) -> Option<&Path> {
        self.pki.as_deref()
    }

    /// `kairos job apply -f FILE` through scheduler `id` for `yaml`, written to a
    /// file named after `name` in the cluster's directory; fails unless it succeeded.
    pub fn apply(&self, id: u64, name: &str, yaml: &str) -> Result<CliOutput> {
        let file = write_file(&self.dir, &format!("{name}.yaml"), yaml)?;
        self.cli(id, &["job", "apply", "-f", &file])?
            .ok()
            .map_err(|e| self.with_logs(e.context(format!("job apply {name} via {id}"))))
    }

    /// `cluster status -o json` as scheduler `id` answers it.
    pub fn status(&self, id: u64) -> Result<Value> {
        self.cli_within(
            id,
            &["cluster", "status", "-o", "json"],
            STATUS_CALL_DEADLINE,
        )?
        .ok()?
        .json()
    }

    /// Scheduler `id`'s own row (role, term, indexes) as it reports it.
    pub fn own_status(&self, id: u64) -> Result<Value> {
        let status = self.status(id)?;
        if num(&status, "answeredBy") != id {
            bail!("status asked of {id} was answered by another node: {status}");
        }
        scheduler_row(&status, id)
            .cloned()
            .ok_or_else(|| anyhow!("scheduler {id} does not list itself: {status}"))
    }

    /// The leader right now, if the group agrees on one: a running node that says it
    /// leads (role `leader`, `leaderId` its own id) and that a majority of the running
    /// nodes name as leader. A node that elected itself alone (split brain) is not
    /// taken for the leader.
    pub fn leader(&self) -> Option<u64> {
        let running = self.running_schedulers();
        let mut named: BTreeMap<u64, usize> = BTreeMap::new();
        let mut claims = Vec::new();
        for &id in &running {
            let Ok(status) = self.status(id) else {
                continue;
            };
            let leader = num(&status, "leaderId");
            if leader == 0 {
                continue;
            }
            *named.entry(leader).or_default() += 1;
            if leader == id
                && num(&status, "answeredBy") == id
                && scheduler_row(&status, id).is_some_and(|r| field(r, "role") == "leader")
            {
                claims.push(id);
            }
        }
        claims
            .into_iter()
            .find(|l| named.get(l).copied().unwrap_or(0) * 2 > running.len())
    }

    /// Waits (up to [`LEADER_DEADLINE`]) until the group agrees on a leader
    /// ([`leader`](Cluster::leader)).
    pub fn wait_for_leader(&self) -> Result<u64> {
        self.wait_for_leader_where("a leader", |_| true)
    }

    /// Waits (up to [`LEADER_DEADLINE`]) until the leader is a node `accept`s.
    pub fn wait_for_leader_where(&self, what: &str, accept: impl Fn(u64) -> bool) -> Result<u64> {
        wait_until(LEADER_DEADLINE, what, || {
            self.leader().filter(|&id| accept(id))
        })
        .map_err(|e| self.with_logs(e))
    }

    /// Waits until at least `n` executors are connected to the leader.
    pub fn wait_for_executors(&self, n: usize) -> Result<()> {
        wait_until(
            LEADER_DEADLINE,
            &format!("{n} executor(s) connected to the leader"),
            || {
                let leader = self.leader()?;
                let status = self.status(leader).ok()?;
                let connected =
                    status
                        .get("executors")
                        .and_then(Value::as_array)
                        .map_or(0, |list| {
                            list.iter()
                                .filter(|e| num(e, "schedulerId") == leader)
                                .count()
                        });
                (connected >= n).then_some(())
            },
        )
        .map_err(|e| self.with_logs(e))
    }

    /// Waits until scheduler `id` has applied everything the leader had committed
    /// when this call began, and returns `id`'s own status row.
    pub fn wait_caught_up(&self, id: u64) -> Result<Value> {
        let leader = self.wait_for_leader()?;
        let target = num(&self.own_status(leader)?, "commitIndex");
        wait_until(
            LEADER_DEADLINE,
            &format!("scheduler {id} to apply up to index {target} (leader {leader}'s commit)"),
            || {
                let row = self.own_status(id).ok()?;
                (num(&row, "appliedIndex") >= target).then_some(row)
            },
        )
        .map_err(|e| self.with_logs(e))
    }

    /// SIGKILLs scheduler `id` and reaps it (nothing happens if it is not running).
    pub fn kill_scheduler(&mut self, id: u64) -> Result<()> {
        self.node_mut(id)?.process = None;
        Ok(())
    }

    /// Starts scheduler `id` again, on the same data directory, address and flags
    /// (killing it first if it runs), and waits until it listens.
    pub fn restart_scheduler(&mut self, id: u64) -> Result<()> {
        self.kill_scheduler(id)?;
        self.spawn_scheduler(id)?;
        self.wait_listening(id)
    }

    /// Stops scheduler `id` with SIGTERM (a leader hands leadership over first) and
    /// waits until it has exited; fails unless it exited with status 0.
    pub fn terminate_scheduler(&mut self, id: u64) -> Result<()> {
        let node = self.node_mut(id)?;
        let Some(mut process) = node.process.take() else {
            bail!("scheduler {id} is not running");
        };
        let status = process
            .terminate(TERMINATE_DEADLINE)
            .map_err(|e| self.with_logs(e.context(format!("stopping scheduler {id}"))))?;
        ensure!(
            status.success(),
            "scheduler {id} exited with {status} after SIGTERM\n{}",
            self.log_tail(id)
        );
        Ok(())
    }

    /// Waits until scheduler `id` answers `/readyz` with 200: a voter that has applied
    /// what the leader committed.
    pub fn wait_ready(&self, id: u64) -> Result<()> {
        let addr = self.node(id)?.http_addr.clone();
        wait_until(
            LEADER_DEADLINE,
            &format!("scheduler {id} to be ready (/readyz on {addr})"),
            || matches!(http_get(&addr, "/readyz"), Ok((200, _))).then_some(()),
        )
        .map_err(|e| self.with_logs(e))
    }

    /// Starts new schedulers `ids` on free addresses with `--peers` listing every
    /// scheduler of the cluster plus them (what a StatefulSet scaled up renders),
    /// each with an empty data directory, and waits until they listen. They find the
    /// running group and ask its leader to admit them.
    pub fn start_listed_schedulers(&mut self, ids: &[u64]) -> Result<()> {
        let addrs = free_addrs(ids.len())?;
        let mut peers: BTreeMap<u64, String> = self
            .schedulers
            .iter()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        for (id, addr) in ids.iter().zip(&addrs) {
            if peers.insert(*id, addr.clone()).is_some() {
                bail!("scheduler {id} already exists");
            }
        }
        let list = peers
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        for (id, addr) in ids.iter().zip(&addrs) {
            let node = self.new_scheduler(*id, addr, &["--peers".to_string(), list.clone()]);
            self.schedulers.insert(*id, node);
        }
        for id in ids {
            self.spawn_scheduler(*id)?;
        }
        for id in ids {
            self.wait_listening(*id)?;
        }
        Ok(())
    }

    /// Kills scheduler `id` and deletes its data directory: a node that lost its
    /// volume. [`restart_scheduler`](Cluster::restart_scheduler) then starts it
    /// empty, with the flags it had.
    pub fn wipe_scheduler(&mut self, id: u64) -> Result<()> {
        self.kill_scheduler(id)?;
        let data_dir = self.dir.join(format!("scheduler-{id}"));
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("removing {}", data_dir.display()))
    }

    /// Starts a new scheduler `id` with `--join` (no `--peers`, empty data
    /// directory) on a free port, waits until it listens, and returns its gRPC
    /// address, for `kairos cluster add-scheduler ID ADDR`.
    pub fn start_joining_scheduler(&mut self, id: u64) -> Result<String> {
        if self.schedulers.contains_key(&id) {
            bail!("scheduler {id} already exists");
        }
        let addr = free_addrs(1)?.remove(0);
        if let Some(pki) = &self.pki {
            let name = id.to_string();
            let hosts = format!("localhost,{}", hosts_of([&addr]));
            let pki = pki.to_string_lossy();
            cli(
                &self.bin,
                DEFAULT_CLI_ENDPOINT,
                &[
                    "certs",
                    "issue",
                    &pki,
                    "--role",
                    "scheduler",
                    "--name",
                    &name,
                    "--host",
                    &hosts,
                ],
            )?
            .ok()?;
        }
        let node = self.new_scheduler(id, &addr, &["--join".to_string()]);
        self.schedulers.insert(id, node);
        self.spawn_scheduler(id)?;
        self.wait_listening(id)?;
        Ok(addr)
    }

    /// The executors' names, in the order they were started (`exec-1`, …).
    pub fn executor_names(&self) -> Vec<String> {
        self.executors.iter().map(|e| e.name.clone()).collect()
    }

    /// SIGKILLs the executor at `index` and reaps it.
    pub fn kill_executor(&mut self, index: usize) -> Result<()> {
        let agent = self
            .executors
            .get_mut(index)
            .ok_or_else(|| anyhow!("no executor #{index}"))?;
        agent.process = None;
        Ok(())
    }

    /// Stops the executor at `index` with SIGTERM (it drains: held runs finish, their
    /// reports are delivered) and waits until it exited; fails unless with status 0.
    pub fn terminate_executor(&mut self, index: usize) -> Result<()> {
        let agent = self
            .executors
            .get_mut(index)
            .ok_or_else(|| anyhow!("no executor #{index}"))?;
        let name = agent.name.clone();
        let Some(mut process) = agent.process.take() else {
            bail!("executor {name} is not running");
        };
        let status = process
            .terminate(TERMINATE_DEADLINE)
            .map_err(|e| self.with_logs(e.context(format!("stopping executor {name}"))))?;
        ensure!(
            status.success(),
            "executor {name} exited with {status} after SIGTERM"
        );
        Ok(())
    }

    /// Starts the executor at `index` again (killing it first if it runs). It
    /// connects on its own; [`wait_for_executors`](Cluster::wait_for_executors) waits
    /// for that.
    pub fn restart_executor(&mut self, index: usize) -> Result<()> {
        let bin = self.bin.clone();
        let filter = self.log_filter.clone();
        let agent = self
            .executors
            .get_mut(index)
            .ok_or_else(|| anyhow!("no executor #{index}"))?;
        agent.process = None;
        agent.process = Some(Process::spawn_logging(
            &bin,
            &agent.args,
            &agent.log_path,
            &filter,
        )?);
        Ok(())
    }

    /// The executions of `job` as scheduler `id` lists them, oldest first.
    pub fn executions(&self, id: u64, job: &str) -> Result<Vec<Value>> {
        exec_list_of(self.cli(
            id,
            &[
                "exec", "list", "-o", "json", "--job", job, "--limit", "1000",
            ],
        )?)
    }

    /// Every execution of `job` (the whole history) as scheduler `id` lists them,
    /// oldest first, parsed.
    pub fn records(&self, id: u64, job: &str) -> Result<Vec<check::Exec>> {
        check::Exec::parse_all(&exec_list_of(self.cli(
            id,
            &["exec", "list", "-o", "json", "--job", job, "--limit", "0"],
        )?)?)
    }

    /// One execution (`exec get ID -o json`) as scheduler `id` answers, parsed.
    pub fn execution(&self, id: u64, execution: u64) -> Result<check::Exec> {
        check::Exec::parse(
            &self
                .cli(id, &["exec", "get", &execution.to_string(), "-o", "json"])?
                .ok()?
                .json()?,
        )
    }

    /// `job get NAME -o json` as scheduler `id` answers it.
    pub fn job(&self, id: u64, name: &str) -> Result<Value> {
        self.cli(id, &["job", "get", name, "-o", "json"])?
            .ok()?
            .json()
    }

    /// Runs the CLI through each running scheduler in turn (the leader first, if the
    /// group agrees on one) until one invocation succeeds, each bounded by
    /// `deadline`; returns the first success, or the last failure.
    pub fn cli_any(&self, args: &[&str], deadline: Duration) -> Result<CliOutput> {
        let mut order = self.running_schedulers();
        if let Some(leader) = self.leader() {
            order.retain(|&id| id != leader);
            order.insert(0, leader);
        }
        let mut last = Err(anyhow!("no scheduler is running"));
        for id in order {
            match self.cli_within(id, args, deadline) {
                Ok(out) if out.success() => return Ok(out),
                other => last = other,
            }
        }
        last
    }

    /// Freezes the executor at `index` with SIGSTOP: its process, timers and
    /// streams stand still (nothing it holds runs, nothing reaches it) until
    /// [`continue_executor`](Cluster::continue_executor).
    pub fn stop_executor(&self, index: usize) -> Result<()> {
        self.signal_executor(index, "-STOP")
    }

    /// Lets an executor frozen by [`stop_executor`](Cluster::stop_executor) go on
    /// (SIGCONT).
    pub fn continue_executor(&self, index: usize) -> Result<()> {
        self.signal_executor(index, "-CONT")
    }

    fn signal_executor(&self, index: usize, signal: &str) -> Result<()> {
        let pid = self
            .executors
            .get(index)
            .and_then(|a| a.process.as_ref())
            .map(|p| p.child.id())
            .ok_or_else(|| anyhow!("executor #{index} is not running"))?;
        send_signal(pid, signal)
    }

    /// Freezes scheduler `id` with SIGSTOP: it neither answers nor sends anything
    /// (its peers see it as silent, not gone) until
    /// [`continue_scheduler`](Cluster::continue_scheduler).
    pub fn stop_scheduler(&self, id: u64) -> Result<()> {
        let pid = self
            .scheduler_pid(id)
            .ok_or_else(|| anyhow!("scheduler {id} is not running"))?;
        send_signal(pid, "-STOP")
    }

    /// Lets a scheduler frozen by [`stop_scheduler`](Cluster::stop_scheduler) go on.
    pub fn continue_scheduler(&self, id: u64) -> Result<()> {
        let pid = self
            .scheduler_pid(id)
            .ok_or_else(|| anyhow!("scheduler {id} is not running"))?;
        send_signal(pid, "-CONT")
    }

    /// Whether the executor at `index` has a live process.
    pub fn executor_running(&self, index: usize) -> bool {
        self.executors
            .get(index)
            .and_then(|a| a.process.as_ref())
            .is_some_and(Process::alive)
    }

    /// The index of the executor named `name` (`exec-1` is 0).
    pub fn executor_index(&self, name: &str) -> Option<usize> {
        self.executors.iter().position(|a| a.name == name)
    }

    /// The names of the executors connected to the leader, as it reports them.
    pub fn connected_executors(&self) -> Result<Vec<String>> {
        let leader = self
            .leader()
            .ok_or_else(|| anyhow!("the group agrees on no leader"))?;
        let status = self.status(leader)?;
        Ok(status
            .get("executors")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|e| num(e, "schedulerId") == leader)
                    .map(|e| field(e, "id").to_string())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The last lines of scheduler `id`'s log.
    pub fn log_tail(&self, id: u64) -> String {
        self.schedulers
            .get(&id)
            .map(|n| tail(&n.log_path, LOG_TAIL_LINES))
            .unwrap_or_default()
    }

    /// The last lines of every process's log, labelled, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (id, node) in &self.schedulers {
            text.push_str(&format!(
                "--- scheduler {id} ({}) ---\n{}\n",
                node.log_path.display(),
                tail(&node.log_path, LOG_TAIL_LINES)
            ));
        }
        for agent in &self.executors {
            text.push_str(&format!(
                "--- executor {} ---\n{}\n",
                agent.name,
                tail(&agent.log_path, LOG_TAIL_LINES)
            ));
        }
        text
    }

    /// `e` with every process's log tail appended.
    pub fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n{}", self.logs())
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, …) to `pid` with `kill(1)`.
fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill {signal} {pid} failed with {status}");
    }
    Ok(())
}

/// The row of scheduler `id` in a `cluster status -o json` answer.
pub fn scheduler_row(status: &Value, id: u64) -> Option<&Value> {
    status
        .get("schedulers")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| num(s, "id") == id)
}

/// The ids of the schedulers a `cluster status -o json` answer lists, in order.
pub fn scheduler_ids(status: &Value) -> Vec<u64> {
    status
        .get("schedulers")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|s| num(s, "id")).collect())
        .unwrap_or_default()
}
