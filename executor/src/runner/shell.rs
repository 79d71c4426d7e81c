//! The shell runner: `sh -c <command>` as the leader of its own process group.
//!
//! # Lifecycle
//!
//! 1. [`spawn`] starts `/bin/sh -c` with stdin from `/dev/null`, the executor's
//!    environment plus the job's env plus the run's `KAIROS_*` identity (which wins
//!    over a job entry of the same name), in the job's cwd if it gave one, as the
//!    leader of a new process group (`setpgid(0, 0)`).
//! 2. stdout and stderr are the two ends of *one* pipe, so their bytes arrive in
//!    the order the job wrote them; a reader task keeps the tail
//!    ([`super::output::OutputTail`]).
//! 3. [`Spawned::wait`] waits for the leader to exit, for the timeout, or for a
//!    cancel. A timeout or cancel sends SIGTERM to the whole group, and SIGKILL
//!    after the grace period.
//! 4. Whatever ended it, SIGKILL goes to what is left of the group once the leader
//!    is reaped: background children die with their job, no orphans.
//! 5. The output is read until EOF, or at most [`OUTPUT_DRAIN`] after the exit: a
//!    daemon that left the group (setsid) and kept the pipe open cannot hold the
//!    report hostage.
//!
//! The runner never panics on a job's behalf: a missing cwd or a failed spawn is a
//! `failed` outcome with the reason.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kairos_common::status::ExecutionStatus;
use kairos_proto::v1::secret_env::Source as SecretSource;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::output::OutputTail;
use super::{Identity, Outcome, format_duration, maybe_sleep_until};

/// The shell every command runs under.
const SHELL: &str = "/bin/sh";

/// How long output is still read after the process exited, for a pipe that some
/// escaped descendant holds open.
pub(crate) const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Size of one read from the output pipe.
const READ_CHUNK: usize = 16 * 1024;

/// Everything needed to run one shell action.
#[derive(Debug, Clone)]
pub(crate) struct ShellSpec {
    pub(crate) command: String,
    /// The job's own variables.
    pub(crate) env: BTreeMap<String, String>,
    /// Secret variables, resolved at each start; `Debug` hides their values.
    pub(crate) secret_env: BTreeMap<String, SecretSource>,
    /// Working directory; empty means the executor's own.
    pub(crate) cwd: String,
    pub(crate) identity: Identity,
    /// `None` means no limit.
    pub(crate) timeout: Option<Duration>,
    /// SIGTERM → SIGKILL grace on timeout or cancel.
    pub(crate) kill_grace: Duration,
    /// Output kept (its tail), in bytes.
    pub(crate) max_output_bytes: usize,
}

/// A started process: its group, its output reader and what it needs to finish.
#[derive(Debug)]
pub(crate) struct Spawned {
    child: tokio::process::Child,
    /// The process group, whose id is the leader's pid.
    group: Pid,
    reader: JoinHandle<OutputTail>,
    /// Tells the reader to stop waiting for EOF.
    stop_reading: CancellationToken,
    started_at: SystemTime,
    /// Monotonic twin of `started_at`, for the timeout.
    started: Instant,
    timeout: Option<Duration>,
    kill_grace: Duration,
}

/// Starts the process. The error is the reason, worded for the execution's record.
/// Where a run's output goes live, besides its tail: the session, as
/// `ExecutionOutput` reports (best effort; dropped when the channel is full).
pub(crate) struct LiveOutput {
    pub(crate) execution_id: String,
    pub(crate) tx: tokio::sync::mpsc::Sender<kairos_proto::v1::executor_message::Kind>,
}

impl LiveOutput {
    /// Sends what is valid UTF-8 of `carry` + `data`, keeping an incomplete
    /// trailing character for the next chunk.
    fn send(&self, carry: &mut Vec<u8>, data: &[u8]) {
        carry.extend_from_slice(data);
        let valid = match std::str::from_utf8(carry) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => carry.len(), // invalid bytes: send them lossily
        };
        if valid == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&carry[..valid]).into_owned();
        carry.drain(..valid);
        let chunk = kairos_proto::v1::ExecutionOutput {
            execution_id: self.execution_id.clone(),
            data: text,
        };
        let _ = self
            .tx
            .try_send(kairos_proto::v1::executor_message::Kind::Output(chunk));
    }
}

/// Largest secret read from a file, in bytes.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The value of one secret variable: given, read from a file (without one trailing
/// newline) or taken from the executor's environment. Errors name the variable and
/// where its value was looked for, never the value.
fn resolve_secret(name: &str, source: &SecretSource) -> Result<String, String> {
    match source {
        SecretSource::Value(v) => Ok(v.clone()),
        SecretSource::Env(var) => std::env::var(var).map_err(|e| {
            format!("secret {name}: the executor's environment variable {var} is unusable: {e}")
        }),
        SecretSource::File(path) => {
            let unreadable = |e: std::io::Error| format!("secret {name}: cannot read {path}: {e}");
            let file = std::fs::File::open(path).map_err(unreadable)?;
            let mut bytes = Vec::new();
            file.take(MAX_SECRET_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
            if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
                return Err(format!(
                    "secret {name}: {path} is larger than {MAX_SECRET_FILE_BYTES} bytes"
                ));
            }
            if bytes.ends_with(b"\r\n") {
                bytes.truncate(bytes.len() - 2);
            } else if bytes.ends_with(b"\n") {
                bytes.pop();
            }
            if bytes.contains(&0) {
                return Err(format!("secret {name}: {path} contains a NUL byte"));
            }
            String::from_utf8(bytes).map_err(|_| format!("secret {name}: {path} is not UTF-8"))
        }
        SecretSource::Stored(_) => Err(format!("secret {name}: the assignment holds no value")),
    }
}

pub(crate) fn spawn(spec: &ShellSpec, live: Option<LiveOutput>) -> Result<Spawned, String> {
    if !spec.cwd.is_empty() && !Path::new(&spec.cwd).is_dir() {
        return Err(format!(
            "working directory {:?} does not exist or is not a directory",
            spec.cwd
        ));
    }
    let mut secrets = Vec::with_capacity(spec.secret_env.len());
    for (name, source) in &spec.secret_env {
        secrets.push((name.as_str(), resolve_secret(name, source)?));
    }
    let (read_end, write_end) =
        std::io::pipe().map_err(|e| format!("cannot create the output pipe: {e}"))?;
    let stderr_end = write_end
        .try_clone()
        .map_err(|e| format!("cannot create the output pipe: {e}"))?;

    let mut command = tokio::process::Command::new(SHELL);
    command
        .arg("-c")
        .arg(&spec.command)
        .envs(&spec.env)
        .envs(secrets)
        .envs(spec.identity.env())
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(stderr_end))
        .process_group(0)
        .kill_on_drop(true);
    if !spec.cwd.is_empty() {
        command.current_dir(&spec.cwd);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {SHELL}: {e}"));
    // The command holds our copies of the pipe's write end; only once they are
    // closed can the reader see EOF when the job's side closes.
    drop(command);
    let child = child?;
    let started_at = SystemTime::now();
    let started = Instant::now();
    let pid = child
        .id()
        .expect("invariant: a child that was just spawned and not awaited has a pid");
    let group = Pid::from_raw(
        i32::try_from(pid).expect("invariant: Linux pids fit in an i32 (pid_max ≤ 2^22)"),
    );

    let stop_reading = CancellationToken::new();
    let receiver = pipe::Receiver::from_owned_fd(OwnedFd::from(read_end));
    let reader = match receiver {
        Ok(receiver) => tokio::spawn(read_output(
            receiver,
            spec.max_output_bytes,
            stop_reading.clone(),
            live,
        )),
        Err(e) => {
            // The process runs; only its output is lost. Say so in the output.
            tracing::warn!(error = %e, "cannot read the job's output");
            let mut tail = OutputTail::new(spec.max_output_bytes);
            tail.push(format!("[kairos: cannot read output: {e}]\n").as_bytes());
            tokio::spawn(async move { tail })
        }
    };

    Ok(Spawned {
        child,
        group,
        reader,
        stop_reading,
        started_at,
        started,
        timeout: spec.timeout,
        kill_grace: spec.kill_grace,
    })
}

/// Why the runner stopped a process before it exited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

impl Spawned {
    /// When the process was spawned.
    pub(crate) fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The process group id (the leader's pid), for logs.
    pub(crate) fn pid(&self) -> i32 {
        self.group.as_raw()
    }

    /// Waits for the run to end (exit, timeout or `cancel`), cleans up its process
    /// group and returns the outcome. A cancelled run's error is plain
    /// `"cancelled"`; the caller knows why and may say more.
    pub(crate) async fn wait(mut self, cancel: &CancellationToken) -> Outcome {
        let deadline = self
            .timeout
            .and_then(|t| self.started.checked_add(t))
            .map(tokio::time::Instant::from_std);
        let (stop, exit) = tokio::select! {
            exit = self.child.wait() => (None, exit),
            () = maybe_sleep_until(deadline) => (Some(Stop::TimedOut), self.terminate().await),
            () = cancel.cancelled() => (Some(Stop::Cancelled), self.terminate().await),
        };
        // The leader is gone; anything left in its group goes with it.
        signal_group(self.group, Signal::SIGKILL);
        let finished_at = SystemTime::now();

        let tail = match tokio::time::timeout(OUTPUT_DRAIN, &mut self.reader).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::debug!("output still open after the process exited, giving up on it");
                self.stop_reading.cancel();
                (&mut self.reader).await
            }
        };
        let (output, output_truncated) = match tail {
            Ok(tail) => tail.into_text(),
            Err(e) => (format!("[kairos: output reader failed: {e}]\n"), false),
        };

        let (status, exit_code, error) = match (stop, exit) {
            (_, Err(e)) => (
                ExecutionStatus::Failed,
                None,
                format!("cannot wait for the process: {e}"),
            ),
            (Some(Stop::TimedOut), Ok(exit)) => (
                ExecutionStatus::TimedOut,
                exit.code(),
                format!(
                    "killed after timeout {}",
                    format_duration(self.timeout.unwrap_or_default())
                ),
            ),
            (Some(Stop::Cancelled), Ok(exit)) => {
                (ExecutionStatus::Cancelled, exit.code(), "cancelled".into())
            }
            (None, Ok(exit)) => exit_verdict(exit),
        };
        Outcome {
            status,
            exit_code,
            output,
            output_truncated,
            error,
            started_at: Some(self.started_at),
            finished_at,
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace, and the leader's exit status.
    async fn terminate(&mut self) -> std::io::Result<ExitStatus> {
        signal_group(self.group, Signal::SIGTERM);
        match tokio::time::timeout(self.kill_grace, self.child.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::debug!(
                    grace = %format_duration(self.kill_grace),
                    "process group outlived its grace, killing it"
                );
                signal_group(self.group, Signal::SIGKILL);
                self.child.wait().await
            }
        }
    }
}

/// Success, failure and the error text for a process that exited on its own.
fn exit_verdict(exit: ExitStatus) -> (ExecutionStatus, Option<i32>, String) {
    match (exit.code(), exit.signal()) {
        (Some(0), _) => (ExecutionStatus::Succeeded, Some(0), String::new()),
        (Some(code), _) => (
            ExecutionStatus::Failed,
            Some(code),
            format!("exit code {code}"),
        ),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| signal.to_string());
            (
                ExecutionStatus::Failed,
                None,
                format!("killed by signal {name}"),
            )
        }
        (None, None) => (
            ExecutionStatus::Failed,
            None,
            format!("ended without an exit code ({exit})"),
        ),
    }
}

/// Sends `signal` to every process in `group`. A group that is already empty is
/// the expected case after an exit, not an error.
fn signal_group(group: Pid, signal: Signal) {
    match killpg(group, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(group = group.as_raw(), %signal, error = %e, "cannot signal the process group")
        }
    }
}

/// Reads the pipe into a tail until EOF or until told to stop.
async fn read_output(
    mut receiver: pipe::Receiver,
    max_output_bytes: usize,
    stop: CancellationToken,
    live: Option<LiveOutput>,
) -> OutputTail {
    let mut tail = OutputTail::new(max_output_bytes);
    let mut carry = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = receiver.read(&mut chunk) => match read {
                Ok(0) => break,
                                Ok(n) => {
                    tail.push(&chunk[..n]);
                    if let Some(live) = &live {
                        live.send(&mut carry, &chunk[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "reading the job's output failed");
                    break;
                }
            },
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::DEFAULT_MAX_OUTPUT_BYTES;
    use chrono::TimeZone;

    fn spec(command: &str) -> ShellSpec {
        ShellSpec {
            command: command.into(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            cwd: String::new(),
            identity: Identity {
                job: "backup".into(),
                execution_id: "exec-1".into(),
                scheduled_at: chrono::Utc
                    .with_ymd_and_hms(2026, 11, 29, 2, 30, 0)
                    .unwrap(),
                attempt: 1,
                trigger: "schedule".into(),
            },
            timeout: None,
            kill_grace: Duration::from_millis(500),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    async fn run(spec: &ShellSpec) -> Outcome {
        let cancel = CancellationToken::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            spawn(spec, None).expect("spawns").wait(&cancel),
        )
        .await
        .expect("the run ends")
    }

    /// True when `pid` no longer runs: gone, or a zombie nobody reaped yet.
    fn is_dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
        }
    }

    async fn wait_for_pid_file(path: &Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "no pid in {}", path.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn secrets_come_from_the_value_a_file_or_the_executors_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut spec = spec("echo \"$GIVEN|$FROM_FILE|$FROM_ENV\"");
        spec.secret_env
            .insert("GIVEN".into(), SecretSource::Value("given".into()));
        spec.secret_env.insert(
            "FROM_FILE".into(),
            SecretSource::File(file.display().to_string()),
        );
        // PATH is in every executor's environment.
        spec.secret_env
            .insert("FROM_ENV".into(), SecretSource::Env("PATH".into()));
        let outcome = run(&spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        let path = std::env::var("PATH").unwrap();
        assert_eq!(outcome.output, format!("given|from-file|{path}\n"));
        // The spec can be logged without its secrets.
        let printed = format!("{spec:?}");
        assert!(!printed.contains("\"given\""), "{printed}");
    }

    #[test]
    fn a_missing_secret_file_or_variable_stops_the_start_naming_it() {
        let mut spec = spec("true");
        spec.secret_env.insert(
            "DB_PASSWORD".into(),
            SecretSource::File("/nonexistent/kairos/secret".into()),
        );
        let err = spawn(&spec, None).expect_err("an unreadable secret cannot start");
        assert!(
            err.contains("DB_PASSWORD") && err.contains("/nonexistent/kairos/secret"),
            "{err}"
        );
        spec.secret_env.clear();
        spec.secret_env.insert(
            "API_KEY".into(),
            SecretSource::Env("KAIROS_TEST_SURELY_UNSET_VARIABLE".into()),
        );
        let err = spawn(&spec, None).expect_err("an unset variable cannot start");
        assert!(
            err.contains("API_KEY") && err.contains("KAIROS_TEST_SURELY_UNSET_VARIABLE"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_run_sees_its_identity_and_the_job_env() {
        let mut spec = spec(
            "echo \"$KAIROS_JOB|$KAIROS_EXECUTION_ID|$KAIROS_SCHEDULED_AT|$KAIROS_ATTEMPT|$KAIROS_TRIGGER|$MODE\"",
        );
        spec.env.insert("MODE".into(), "full".into());
        // A job cannot pretend to be another run.
        spec.env.insert("KAIROS_JOB".into(), "spoofed".into());
        let outcome = run(&spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert_eq!(
            outcome.output,
            "backup|exec-1|2026-11-29T02:30:00Z|1|schedule|full\n"
        );
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.error, "");
        assert!(outcome.started_at.is_some_and(|s| s <= outcome.finished_at));
    }

    #[tokio::test]
    async fn the_executor_environment_is_inherited() {
        let path = std::env::var("PATH").unwrap_or_default();
        let outcome = run(&spec("printf %s \"$PATH\"")).await;
        assert_eq!(outcome.output, path, "{outcome:?}");
    }

    #[tokio::test]
    async fn the_cwd_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec("pwd");
        spec.cwd = dir.path().to_string_lossy().into_owned();
        let outcome = run(&spec).await;
        let expected = dir.path().canonicalize().unwrap();
        assert_eq!(outcome.output.trim_end(), expected.to_string_lossy());
    }

    #[tokio::test]
    async fn a_missing_cwd_fails_with_the_reason() {
        let mut spec = spec("true");
        spec.cwd = "/definitely/not/here".into();
        let err = spawn(&spec, None).expect_err("a missing cwd cannot start");
        assert!(err.contains("/definitely/not/here"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn exit_codes_decide_the_status() {
        let outcome = run(&spec("exit 3")).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.error, "exit code 3");

        let outcome = run(&spec("kill -9 $$")).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.error, "killed by signal SIGKILL");
    }

    #[tokio::test]
    async fn stdout_and_stderr_interleave_in_order() {
        let outcome = run(&spec("echo one; echo two >&2; echo three")).await;
        assert_eq!(outcome.output, "one\ntwo\nthree\n");
        assert!(!outcome.output_truncated);
    }

    #[tokio::test]
    async fn output_keeps_its_tail_and_says_so() {
        let mut spec = spec("i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done");
        spec.max_output_bytes = 20;
        let outcome = run(&spec).await;
        assert!(outcome.output_truncated);
        assert_eq!(outcome.output.len(), 20);
        assert!(
            outcome.output.ends_with("line-198\nline-199\n"),
            "{:?}",
            outcome.output
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let mut spec = spec(&format!(
            "sleep 100 & echo $! > {}; echo waiting; sleep 100",
            pid_file.display()
        ));
        // Long enough that the shell, started on a loaded machine, surely writes the
        // pid and the test sees the grandchild alive before the timeout fires.
        spec.timeout = Some(Duration::from_secs(3));
        spec.kill_grace = Duration::from_millis(200);
        let spawned_at = Instant::now();
        let spawned = spawn(&spec, None).unwrap();
        let cancel = CancellationToken::new();
        let waiting = tokio::spawn(async move { spawned.wait(&cancel).await });
        let grandchild = wait_for_pid_file(&pid_file).await;
        assert!(
            !is_dead(grandchild),
            "the grandchild runs before the timeout ({:?} after the spawn)",
            spawned_at.elapsed()
        );

        let outcome = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("a timed-out run ends")
            .unwrap();
        assert_eq!(outcome.status, ExecutionStatus::TimedOut, "{outcome:?}");
        assert_eq!(outcome.error, "killed after timeout 3s");
        assert_eq!(outcome.output, "waiting\n");
        assert!(
            spawned_at.elapsed() >= Duration::from_secs(3),
            "ended {:?} after the spawn, before its timeout",
            spawned_at.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_dead(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_term_resistant_job_is_killed_after_the_grace() {
        let mut spec = spec("trap '' TERM; echo ready; while :; do sleep 0.05; done");
        spec.timeout = Some(Duration::from_millis(200));
        spec.kill_grace = Duration::from_millis(200);
        let started = Instant::now();
        let outcome = run(&spec).await;
        assert_eq!(outcome.status, ExecutionStatus::TimedOut, "{outcome:?}");
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn background_children_die_when_the_job_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        let spec = spec(&format!(
            "sleep 100 >/dev/null 2>&1 & echo $! > {}",
            pid_file.display()
        ));
        let outcome = run(&spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        let orphan = wait_for_pid_file(&pid_file).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_dead(orphan) {
            assert!(
                Instant::now() < deadline,
                "background child {orphan} survived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn an_escaped_daemon_does_not_hold_the_report() {
        // setsid leaves the group, so the final SIGKILL misses it, and it keeps the
        // output pipe open; the report must still come after the drain period.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("daemon.pid");
        let spec = spec(&format!(
            "setsid sh -c 'echo $$ > {f}; exec sleep 30' & \
             i=0; while [ ! -s {f} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; \
             echo done",
            f = pid_file.display()
        ));
        let started = Instant::now();
        let outcome = run(&spec).await;
        let daemon = wait_for_pid_file(&pid_file).await;
        let _ = killpg(Pid::from_raw(daemon), Signal::SIGKILL);
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.output, "done\n");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn cancel_stops_the_run() {
        let spawned = spawn(&spec("echo started; sleep 100"), None).unwrap();
        let cancel = CancellationToken::new();
        let waiting = tokio::spawn({
            let cancel = cancel.clone();
            async move { spawned.wait(&cancel).await }
        });
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("a cancelled run ends")
            .unwrap();
        assert_eq!(outcome.status, ExecutionStatus::Cancelled, "{outcome:?}");
        assert_eq!(outcome.error, "cancelled");
    }

    #[tokio::test]
    async fn output_is_sent_live_while_the_run_goes_on() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let live = LiveOutput {
            execution_id: "exec-1".into(),
            tx,
        };
        let spawned = spawn(
            &spec("echo first; read _ < /dev/null; echo é-second"),
            Some(live),
        )
        .unwrap();
        let outcome = spawned.wait(&CancellationToken::new()).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded);
        let mut streamed = String::new();
        while let Ok(kairos_proto::v1::executor_message::Kind::Output(chunk)) = rx.try_recv() {
            assert_eq!(chunk.execution_id, "exec-1");
            streamed.push_str(&chunk.data);
        }
        assert_eq!(streamed, "first\né-second\n");
    }

    #[test]
    fn a_character_split_across_reads_is_sent_whole() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let live = LiveOutput {
            execution_id: "x".into(),
            tx,
        };
        let bytes = "é".as_bytes();
        let mut carry = Vec::new();
        live.send(&mut carry, &bytes[..1]);
        assert!(rx.try_recv().is_err(), "half a character is held back");
        live.send(&mut carry, &bytes[1..]);
        match rx.try_recv().unwrap() {
            kairos_proto::v1::executor_message::Kind::Output(c) => assert_eq!(c.data, "é"),
            other => panic!("{other:?}"),
        }
    }
}
