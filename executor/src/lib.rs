//! The Kairos executor: a stateless agent that dials the scheduler group, takes
//! assignments from the leader, runs them, and reports how they ended.
//!
//! # Shape
//!
//! ```text
//!              ┌──────────── session (one stream at a time) ────────────┐
//!  scheduler ◀─┤ Hello → Welcome | Redirect; heartbeats; reports; acks   │
//!              └───────┬───────────────────────────────▲────────────────┘
//!          assignments │ cancels                 outbox │ started reports
//!              ┌───────▼───────────────────────────────┴────────────────┐
//!              │ executions: fencing, dedup, one task per run            │
//!              │   timer (start_at) → runner (shell process | HTTP)      │
//!              └────────────────────────────────────────────────────────┘
//! ```
//!
//! - `session` owns the connection: it dials the configured schedulers in turn,
//!   follows redirects to the leader, heartbeats on its own task, notices a silent
//!   peer, and reconnects with jittered exponential backoff.
//! - `executions` owns what is running. Runs are not tied to the stream: a
//!   leader change or a network blip does not touch a running process; the next
//!   `Hello` lists it as still running.
//! - `outbox` keeps every finished report until the leader acknowledges it, and
//!   hands all unacknowledged ones to each new connection.
//! - `runner` turns an assignment into a process or an HTTP request and a result;
//!   `timer` starts it at `start_at` to within a fraction of a millisecond.
//!
//! # Invariants
//!
//! - Nothing durable: restart the executor and the scheduler's leases decide what
//!   happened to the runs it had (they become `lost` and follow the retry policy).
//! - The executor never listens; it only dials.
//! - An assignment from a term older than the highest one seen is refused (the
//!   fencing token), and an execution id is run at most once while it is running or
//!   its result is unacknowledged.
//! - Every process runs in its own process group, and the whole group is killed when
//!   the run ends, so a job cannot leave orphans behind.
//!
//! # Not here
//!
//! Scheduling, retries, concurrency policies and leases are the leader's business;
//! `capacity` is advertised and the leader respects it, the executor runs whatever it
//! is assigned.

mod error;
mod executions;
mod outbox;
mod runner;
mod session;
mod timer;

#[cfg(test)]
pub mod test;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

use executions::Executions;
use outbox::Outbox;
use session::Session;

/// Capacity advertised when none is configured.
pub const DEFAULT_CAPACITY: u32 = 16;

/// SIGTERM → SIGKILL grace when none is configured.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

/// How long a shutdown lets held runs finish when none is configured.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How long shutdown waits for the leader to acknowledge the last reports.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What an executor needs to know to join a scheduler group.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scheduler gRPC addresses, `host:port`, `http://host:port` or `https://…`
    /// (TLS or not is `tls`, whatever the scheme says).
    /// Any member of the group will do (followers redirect to the leader); they are
    /// tried in order, rotating, whenever a connection fails.
    pub schedulers: Vec<String>,
    /// This executor's name: what jobs' targets, leases and operators see.
    pub id: String,
    /// Labels that job selectors match (`role=web`, `region=eu`).
    pub tags: BTreeMap<String, String>,
    /// How many runs at once the leader should give this executor. Advertised only:
    /// the executor runs whatever it is assigned.
    pub capacity: u32,
    /// How long a timed-out or cancelled process group gets between SIGTERM and
    /// SIGKILL to clean up.
    pub kill_grace: Duration,
    /// On shutdown, how long the runs this executor holds may go on before they are
    /// killed (and reported `failed`); the leader sends it nothing new meanwhile.
    pub shutdown_grace: Duration,
    /// TLS to the schedulers: the CA that signed them, and this executor's own
    /// certificate (role `executor`) unless it authenticates with `token`.
    pub tls: Option<kairos_tls::TlsFiles>,
    /// An `executor` bearer token, when it has no certificate.
    pub token: Option<String>,
    /// Dial in the clear, with no credentials (the schedulers must run `--insecure`).
    pub insecure: bool,
}

impl Config {
    /// A config with no tags, [`DEFAULT_CAPACITY`] and [`DEFAULT_KILL_GRACE`].
    pub fn new(schedulers: Vec<String>, id: String) -> Self {
        Config {
            schedulers,
            id,
            tags: BTreeMap::new(),
            capacity: DEFAULT_CAPACITY,
            kill_grace: DEFAULT_KILL_GRACE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
            token: None,
            insecure: false,
        }
    }

    /// Refuses a config that could never connect, before anything starts.
    pub fn validate(&self) -> Result<()> {
        if self.schedulers.is_empty() {
            return Err(Error::InvalidConfig(
                "at least one scheduler address is required".into(),
            ));
        }
        if self.id.trim().is_empty() {
            return Err(Error::InvalidConfig("the executor id is empty".into()));
        }
        for addr in &self.schedulers {
            session::endpoint_uri(addr, self.tls.is_some())?;
        }
        match (&self.tls, self.insecure) {
            (None, false) => {
                return Err(Error::InvalidConfig(
                    "--tls-ca is required (with --tls-cert and --tls-key, or --token): an executor talks to the schedulers over TLS, or with --insecure in the clear".into(),
                ));
            }
            (Some(_), true) => {
                return Err(Error::InvalidConfig(
                    "--insecure and --tls-ca exclude each other".into(),
                ));
            }
            (Some(tls), false) if tls.cert.is_none() && self.token.is_none() => {
                return Err(Error::InvalidConfig(
                    "an executor needs a certificate (--tls-cert and --tls-key) or an executor token (--token)".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs the executor until `shutdown` is cancelled.
///
/// On shutdown it drains: it tells the leader to choose other executors, lets the
/// runs it holds (running, or waiting for their start) go on for up to
/// `shutdown_grace`, then kills the process groups still running (reported `failed`:
/// "the executor shut down"), waits for the leader to acknowledge every report
/// (bounded), and returns. Fails only for a config that cannot work; connection
/// trouble is retried for as long as it lasts.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    Agent::new(config, shutdown)?.run().await
}

/// The executor's parts, wired together. Split from [`run`] so tests can look at
/// the outbox and the registry of executions while it runs.
pub(crate) struct Agent {
    shutdown: CancellationToken,
    /// Kills the runs still going once the shutdown grace is over.
    stop_runs: CancellationToken,
    shutdown_grace: Duration,
    executions: Arc<Executions>,
    outbox: Arc<Outbox>,
    session: Session,
}

impl Agent {
    pub(crate) fn new(config: Config, shutdown: CancellationToken) -> Result<Self> {
        config.validate()?;
        let outbox = Arc::new(Outbox::new());
        let (started_tx, started_rx) = executions::started_channel();
        let stop_runs = CancellationToken::new();
        let shutdown_grace = config.shutdown_grace;
        let executions = Arc::new(Executions::new(
            Arc::clone(&outbox),
            started_tx,
            config.kill_grace,
            stop_runs.clone(),
        ));
        let tls = config
            .tls
            .clone()
            .map(kairos_tls::ClientTls::new)
            .transpose()
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let session = Session::new(
            config,
            tls,
            Arc::clone(&executions),
            Arc::clone(&outbox),
            started_rx,
        );
        Ok(Agent {
            shutdown,
            stop_runs,
            shutdown_grace,
            executions,
            outbox,
            session,
        })
    }

    #[cfg(test)]
    pub(crate) fn executions(&self) -> Arc<Executions> {
        Arc::clone(&self.executions)
    }

    #[cfg(test)]
    pub(crate) fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.outbox)
    }

    pub(crate) async fn run(self) -> Result<()> {
        let Agent {
            shutdown,
            stop_runs,
            shutdown_grace,
            executions,
            outbox,
            session,
        } = self;
        // The session outlives `shutdown` on purpose: it keeps delivering the
        // reports of the runs that finish while draining. It has its own token.
        let session_stop = CancellationToken::new();
        let session_task = tokio::spawn(session.run(session_stop.clone()));

        shutdown.cancelled().await;
        let held = executions.running_ids().len();
        tracing::info!(
            running = held,
            grace_s = shutdown_grace.as_secs_f64(),
            "executor draining: the leader sends nothing new; held runs may finish within the grace"
        );
        executions.begin_drain();
        if !executions.wait_drained(shutdown_grace).await {
            tracing::warn!(
                running = executions.running_ids().len(),
                "shutdown grace over: killing the runs still going"
            );
        }
        stop_runs.cancel();
        // Wait for the killed runs to end their process groups and file reports.
        executions.wait_idle().await;
        if tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, outbox.wait_empty())
            .await
            .is_err()
        {
            tracing::warn!(
                unacknowledged = outbox.len(),
                "leaving with unacknowledged reports"
            );
        }
        session_stop.cancel();
        if let Err(e) = session_task.await {
            tracing::error!(error = %e, "session task failed");
        }
        tracing::info!("executor stopped");
        Ok(())
    }
}
