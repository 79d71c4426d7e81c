//! `kairos.v1.ExecutorGateway.Connect`: the leader's end of each executor's stream.
//!
//! The first message must be `Hello`. A node that is not the ready leader answers
//! `Redirect` (with the leader's address when known) and ends the stream. The leader
//! registers the executor, answers `Welcome`, and from then on turns the executor's
//! reports into commands: a `Finished` report is acknowledged (`FinishedAck`) only
//! after it is committed, so an executor that loses the stream re-sends it to the
//! next leader and no result is lost. The leader also heartbeats the stream, so an
//! executor notices a dead scheduler even when it has nothing to report.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::core::Core;
use crate::executors::EXECUTOR_QUEUE;
use crate::time::ms_from_ts;

/// How often executors and the leader heartbeat each other.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Gateway {
    pub core: Arc<Core>,
    pub shutdown: CancellationToken,
}

fn msg(kind: pb::scheduler_message::Kind) -> pb::SchedulerMessage {
    pb::SchedulerMessage { kind: Some(kind) }
}

#[tonic::async_trait]
impl pb::executor_gateway_server::ExecutorGateway for Gateway {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<pb::SchedulerMessage, Status>> + Send>>;

    async fn connect(
        &self,
        req: Request<Streaming<pb::ExecutorMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let principal = req.extensions().get::<crate::auth::Principal>().cloned();
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10s"))??
            .ok_or_else(|| Status::cancelled("stream ended before hello"))?;
        let Some(pb::executor_message::Kind::Hello(hello)) = first.kind else {
            return Err(Status::invalid_argument(
                "invalid message: the first message must be hello",
            ));
        };
        if hello.executor_id.is_empty() {
            return Err(Status::invalid_argument(
                "invalid executor_id: must not be empty",
            ));
        }
        // A certificate names one executor (or one pool): it registers as that one only.
        if let Some(p) = &principal
            && p.via == crate::auth::Via::Certificate
            && !crate::auth::certificate_covers_executor(&p.name, &hello.executor_id)
        {
            return Err(Status::permission_denied(format!(
                "the certificate of {p} cannot register executor {:?}",
                hello.executor_id
            )));
        }
        if hello.protocol_version != kairos_proto::EXECUTOR_PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "executor protocol {} is not spoken here (this scheduler speaks {})",
                hello.protocol_version,
                kairos_proto::EXECUTOR_PROTOCOL_VERSION
            )));
        }
        let (tx, rx) = mpsc::channel(EXECUTOR_QUEUE);
        let status = self.core.status();
        if !status.is_ready_leader() {
            let leader_addr = self
                .core
                .leader_addr()
                .filter(|_| status.leader_id != status.id)
                .unwrap_or_default();
            debug!(executor = %hello.executor_id, leader = %leader_addr, "redirecting executor");
            let _ = tx
                .send(msg(pb::scheduler_message::Kind::Redirect(pb::Redirect {
                    leader_addr,
                })))
                .await;
            drop(tx);
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))));
        }

        let now = self.core.clock.now();
        let (session, token) = self.core.executors.register(&hello, tx.clone(), now);
        info!(executor = %hello.executor_id, tags = ?hello.tags, capacity = hello.capacity, running = hello.running.len(), draining = hello.draining, "executor connected");
        let _ = tx
            .send(msg(pb::scheduler_message::Kind::Welcome(pb::Welcome {
                scheduler_id: self.core.config.node_id,
                term: status.term,
                heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
            })))
            .await;
        self.core.reconcile_executor(&hello);
        let core = self.core.clone();
        let shutdown = self.shutdown.clone();
        let executor = hello.executor_id.clone();
        tokio::spawn(async move {
            serve(
                core.clone(),
                &executor,
                session,
                inbound,
                tx,
                token,
                shutdown,
            )
            .await;
            core.executors.unregister(&executor, session);
            info!(%executor, "executor disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}

async fn serve(
    core: Arc<Core>,
    executor: &str,
    session: u64,
    mut inbound: Streaming<pb::ExecutorMessage>,
    tx: mpsc::Sender<pb::SchedulerMessage>,
    token: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    // Three missed heartbeats and the executor is considered gone.
    let silence_limit = HEARTBEAT_INTERVAL * 3;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = shutdown.cancelled() => return,
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    warn!(%executor, "executor silent for 3 heartbeats; closing its stream");
                    return;
                }
                if tx.try_send(msg(pb::scheduler_message::Kind::Heartbeat(pb::Heartbeat::default()))).is_err() {
                    return;
                }
            }
            next = inbound.message() => {
                let m = match next {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(e) => {
                        debug!(%executor, error = %e, "executor stream failed");
                        return;
                    }
                };
                last_heard = tokio::time::Instant::now();
                if !handle(&core, executor, session, m, &tx).await {
                    return;
                }
            }
        }
    }
}

/// Handles one report; false ends the stream.
async fn handle(
    core: &Core,
    executor: &str,
    session: u64,
    m: pb::ExecutorMessage,
    tx: &mpsc::Sender<pb::SchedulerMessage>,
) -> bool {
    use pb::executor_message::Kind;
    match m.kind {
        Some(Kind::Heartbeat(h)) => {
            core.executors
                .heartbeat(executor, session, &h.running, core.clock.now());
            true
        }
        Some(Kind::Started(s)) => {
            let Ok(id) = s.execution_id.parse::<u64>() else {
                warn!(%executor, id = %s.execution_id, "start report for a malformed execution id");
                return true;
            };
            let cmd = ipb::ExecutionStarted {
                id,
                executor: executor.to_string(),
                started_at_ms: s
                    .started_at
                    .as_ref()
                    .map(ms_from_ts)
                    .unwrap_or_else(|| core.clock.now().timestamp_millis()),
            };
            if let Err(e) = core.report_started(cmd).await {
                debug!(%executor, execution = id, error = %e, "start report not committed");
            }
            true
        }
        Some(Kind::Finished(f)) => {
            let Ok(id) = f.execution_id.parse::<u64>() else {
                warn!(%executor, id = %f.execution_id, "finish report for a malformed execution id");
                return true;
            };
            let cmd = ipb::ExecutionFinished {
                id,
                executor: executor.to_string(),
                status: f.status,
                exit_code: f.exit_code,
                output: f.output,
                output_truncated: f.output_truncated,
                error: f.error,
                started_at_ms: f.started_at.as_ref().map(ms_from_ts).unwrap_or(0),
                retry_at_ms: 0,
                finished_at_ms: f
                    .finished_at
                    .as_ref()
                    .map(ms_from_ts)
                    .unwrap_or_else(|| core.clock.now().timestamp_millis()),
            };
            match core.report_finished(cmd).await {
                Ok(_) | Err(crate::Error::InvalidArgument { .. }) => {
                    // Committed, or the execution no longer exists, or the report can
                    // never be accepted: the executor may forget it.
                    let ack = msg(pb::scheduler_message::Kind::FinishedAck(pb::FinishedAck {
                        execution_id: f.execution_id,
                    }));
                    tx.try_send(ack).is_ok()
                }
                Err(e) => {
                    // Not committed: leave it unacknowledged; the executor re-sends it.
                    debug!(%executor, execution = id, error = %e, "finish report not committed");
                    true
                }
            }
        }
        Some(Kind::Output(o)) => {
            if let Ok(id) = o.execution_id.parse::<u64>() {
                core.live
                    .push(id, &o.data, core.config.max_output_bytes as usize);
            }
            true
        }
        Some(Kind::Drain(_)) => {
            info!(%executor, "executor draining: it takes no new runs");
            core.executors.set_draining(executor, session);
            true
        }
        Some(Kind::Hello(_)) => {
            warn!(%executor, "second hello on one stream; closing it");
            false
        }
        None => true,
    }
}
