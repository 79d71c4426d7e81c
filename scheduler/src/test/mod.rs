//! The in-process tier: one scheduler node inside the test's own runtime, with
//! tokio's clock paused, and executors the test scripts message by message.
//!
//! What makes it deterministic:
//! - the raft node runs as a task of the runtime ([`crate::raft::spawn_task`]), ticking
//!   on tokio's clock, and storage is opened inline, so the runtime is never idle
//!   while the node has work: a paused clock only moves when every task waits for a
//!   timer, and then straight to the next one;
//! - the node's wall clock ([`PausedClock`]) is read from that same paused clock, so
//!   "now" in commands, leases, backoffs and the schedule loop's timers agree;
//! - executors are [`ScriptedExecutor`]s: a real gRPC stream to the node's gateway on
//!   127.0.0.1, whose messages the test sends and reads itself — a run starts,
//!   finishes, goes silent or never happens exactly when the test says.
//!
//! So a test waits for a lease to expire by waiting for its effect (every wait here is
//! bounded in virtual time), never by sleeping. Tests: [`duties`].
//!
//! Deliberately absent: several nodes (the raft simulation in `raft/tests.rs` and
//! the integration tests cover groups) and real processes.

mod duties;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kairos_common::clock::Clock;
use kairos_proto::v1 as pb;
use pb::executor_gateway_client::ExecutorGatewayClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::{Config, Handle};

/// How long (in the paused clock's time) a wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(120);
/// How often waits look again (virtual time: costs nothing).
const POLL: Duration = Duration::from_millis(20);

/// A wall clock that moves with tokio's (paused) clock, from a fixed start.
#[derive(Debug)]
pub struct PausedClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl PausedClock {
    /// Starts at `base` now.
    pub fn new(base: DateTime<Utc>) -> Arc<PausedClock> {
        Arc::new(PausedClock {
            base,
            start: tokio::time::Instant::now(),
        })
    }
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.start);
        self.base
            + chrono::TimeDelta::from_std(elapsed)
                .expect("invariant: tests run for less than centuries")
    }
}

/// Polls `check` (every [`POLL`] of virtual time) until it returns `Some`; panics
/// after [`WAIT`] saying `what`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out (virtual {WAIT:?}) waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// One scheduler node in this runtime.
pub struct Node {
    pub core: Arc<Core>,
    pub clock: Arc<PausedClock>,
    handle: Option<Handle>,
    shutdown: CancellationToken,
    dir: std::path::PathBuf,
}

impl Node {
    /// Starts a one-node group on `dir` (a new or an existing data directory) and
    /// waits until it leads.
    pub async fn start(dir: &std::path::Path, clock: Arc<PausedClock>) -> Node {
        let mut config = Config::new(1, dir.to_path_buf());
        config.insecure = true;
        config.grpc_addr = "127.0.0.1:0".parse().expect("an address");
        config.http_addr = "127.0.0.1:0".parse().expect("an address");
        let shutdown = CancellationToken::new();
        let (handle, core) =
            crate::start_in_runtime(config, shutdown.clone(), clock.clone() as Arc<dyn Clock>)
                .await
                .expect("the node starts");
        let node = Node {
            core,
            clock,
            handle: Some(handle),
            shutdown,
            dir: dir.to_path_buf(),
        };
        node.wait_leading().await;
        node
    }

    async fn wait_leading(&self) {
        let core = self.core.clone();
        eventually("the node to lead", || {
            core.status().is_ready_leader().then_some(())
        })
        .await;
    }

    /// The node's gRPC address.
    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().expect("running").grpc_addr()
    }

    /// Stops the node and waits until it has.
    pub async fn stop(mut self) -> std::path::PathBuf {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.wait().await.expect("the node stops cleanly");
        }
        self.dir.clone()
    }

    /// Creates or updates a job from its proto3 JSON document.
    pub async fn put(&self, json: &str) -> pb::Job {
        let job: pb::Job = serde_json::from_str(json).expect("a job document");
        self.core
            .put_job(job, None)
            .await
            .expect("the job is accepted")
            .0
    }

    /// Every execution of `job`, oldest first.
    pub fn executions(&self, job: &str) -> Vec<pb::Execution> {
        let (mut page, _) = self
            .core
            .list_executions_local(job, crate::core::MAX_PAGE, "")
            .expect("executions are readable");
        page.sort_by_key(|e| e.id.parse::<u64>().unwrap_or(0));
        page
    }

    /// Waits until `check` holds for the executions of `job`, and returns them.
    pub async fn wait_executions(
        &self,
        job: &str,
        what: &str,
        check: impl Fn(&[pb::Execution]) -> bool,
    ) -> Vec<pb::Execution> {
        eventually(what, || {
            let list = self.executions(job);
            check(&list).then_some(list)
        })
        .await
    }
}

/// An executor whose every message the test decides: connected to the node's
/// gateway over a real gRPC stream, it says Hello, and then only what it is told to.
/// Its heartbeats go on their own task until [`ScriptedExecutor::go_silent`].
pub struct ScriptedExecutor {
    pub id: String,
    tx: mpsc::Sender<pb::ExecutorMessage>,
    inbound: tonic::Streaming<pb::SchedulerMessage>,
    running: Arc<std::sync::Mutex<Vec<String>>>,
    heartbeats: CancellationToken,
    /// Messages read while looking for another kind, kept in order.
    backlog: std::collections::VecDeque<pb::scheduler_message::Kind>,
}

fn message(kind: pb::executor_message::Kind) -> pb::ExecutorMessage {
    pb::ExecutorMessage { kind: Some(kind) }
}

impl ScriptedExecutor {
    /// Connects as `id` with `tags` and waits for the Welcome.
    pub async fn connect(node: &Node, id: &str, tags: &[(&str, &str)]) -> ScriptedExecutor {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc_addr()))
                .expect("an endpoint")
                .connect()
                .await
                .expect("the gateway accepts connections");
        let (tx, rx) = mpsc::channel(64);
        tx.send(message(pb::executor_message::Kind::Hello(pb::Hello {
            executor_id: id.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capacity: 16,
            protocol_version: kairos_proto::EXECUTOR_PROTOCOL_VERSION,
            boot_id: format!("boot-{id}"),
            ..Default::default()
        })))
        .await
        .expect("the hello is queued");
        let mut inbound = ExecutorGatewayClient::new(channel)
            .connect(ReceiverStream::new(rx))
            .await
            .expect("the gateway answers")
            .into_inner();
        let first = inbound
            .message()
            .await
            .expect("the stream is healthy")
            .expect("an answer to hello");
        assert!(
            matches!(first.kind, Some(pb::scheduler_message::Kind::Welcome(_))),
            "expected a welcome, got {first:?}"
        );
        let running = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heartbeats = CancellationToken::new();
        {
            let tx = tx.clone();
            let running = running.clone();
            let stop = heartbeats.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::grpc::HEARTBEAT_INTERVAL);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let list = running.lock().expect("not poisoned").clone();
                    let hb = message(pb::executor_message::Kind::Heartbeat(pb::Heartbeat {
                        running: list,
                    }));
                    if tx.send(hb).await.is_err() {
                        return;
                    }
                }
            });
        }
        ScriptedExecutor {
            id: id.to_string(),
            tx,
            inbound,
            running,
            heartbeats,
            backlog: Default::default(),
        }
    }

    /// The next message from the leader that is not a heartbeat.
    async fn next(&mut self) -> pb::scheduler_message::Kind {
        if let Some(kind) = self.backlog.pop_front() {
            return kind;
        }
        loop {
            let msg = tokio::time::timeout(WAIT, self.inbound.message())
                .await
                .expect("a message from the leader in time")
                .expect("the stream is healthy")
                .expect("the leader keeps the stream open");
            match msg.kind {
                Some(pb::scheduler_message::Kind::Heartbeat(_)) | None => {}
                Some(kind) => return kind,
            }
        }
    }

    /// The next assignment (other messages are kept for later reads).
    pub async fn assignment(&mut self) -> pb::Assignment {
        let mut skipped = Vec::new();
        let found = loop {
            match self.next().await {
                pb::scheduler_message::Kind::Assignment(a) => break a,
                other => skipped.push(other),
            }
        };
        for kind in skipped.into_iter().rev() {
            self.backlog.push_front(kind);
        }
        found
    }

    /// The next cancel (other messages are kept for later reads).
    pub async fn cancel(&mut self) -> pb::CancelAssignment {
        let mut skipped = Vec::new();
        let found = loop {
            match self.next().await {
                pb::scheduler_message::Kind::Cancel(c) => break c,
                other => skipped.push(other),
            }
        };
        for kind in skipped.into_iter().rev() {
            self.backlog.push_front(kind);
        }
        found
    }

    /// Reports that the run started now, and lists it in heartbeats from now on.
    pub async fn started(&self, a: &pb::Assignment, clock: &PausedClock) {
        self.running
            .lock()
            .expect("not poisoned")
            .push(a.execution_id.clone());
        self.send(pb::executor_message::Kind::Started(pb::ExecutionStarted {
            execution_id: a.execution_id.clone(),
            started_at: Some(crate::time::ts_from_dt(clock.now())),
        }))
        .await;
    }

    /// Reports that the run ended with `status` now.
    pub async fn finished(&self, a: &pb::Assignment, status: &str, clock: &PausedClock) {
        self.running
            .lock()
            .expect("not poisoned")
            .retain(|id| *id != a.execution_id);
        self.send(pb::executor_message::Kind::Finished(
            pb::ExecutionFinished {
                execution_id: a.execution_id.clone(),
                status: status.to_string(),
                exit_code: Some(if status == "succeeded" { 0 } else { 1 }),
                finished_at: Some(crate::time::ts_from_dt(clock.now())),
                ..Default::default()
            },
        ))
        .await;
    }

    /// Stops heartbeating, as a process that hangs or is cut off: its stream stays
    /// open but nothing confirms its runs any more.
    pub fn go_silent(&self) {
        self.heartbeats.cancel();
    }

    async fn send(&self, kind: pb::executor_message::Kind) {
        self.tx
            .send(message(kind))
            .await
            .expect("the stream to the leader is open");
    }
}

impl Drop for ScriptedExecutor {
    fn drop(&mut self) {
        self.heartbeats.cancel();
    }
}
