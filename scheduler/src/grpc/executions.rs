//! `kairos.v1.ExecutionService`: decode, call [`Core`], encode.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::IntoStatus;
use crate::core::Core;
use crate::peers::is_forwarded;
use pb::execution_service_client::ExecutionServiceClient;

#[derive(Debug, Clone)]
pub struct ExecutionApi(pub Arc<Core>, pub tokio_util::sync::CancellationToken);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::execution_service_server::ExecutionService for ExecutionApi {
    async fn list_executions(
        &self,
        req: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<pb::ListExecutionsResponse>, Status> {
        let req = req.into_inner();
        let (executions, next_page_token) = self
            .0
            .list_executions(&req.job, req.page_size, &req.page_token)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListExecutionsResponse {
            executions,
            next_page_token,
        }))
    }

    async fn get_execution(
        &self,
        req: Request<pb::GetExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        Ok(Response::new(
            self.0
                .get_execution(&req.into_inner().id)
                .await
                .or_status()?,
        ))
    }

    async fn cancel_execution(
        &self,
        req: Request<pb::CancelExecutionRequest>,
    ) -> Result<Response<pb::Execution>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.cancel_execution(&req.id).await {
            Ok(e) => Ok(Response::new(e)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        ExecutionServiceClient::new(ch).cancel_execution(r).await
                    })
                    .await
            }
        }
    }

    async fn clear_executions(
        &self,
        req: Request<pb::ClearExecutionsRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.clear_history(&req.job).await {
            Ok(job) => Ok(Response::new(job)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        ExecutionServiceClient::new(ch).clear_executions(r).await
                    })
                    .await
            }
        }
    }

    type WatchExecutionsStream = BoxStream<pb::Execution>;

    async fn watch_executions(
        &self,
        req: Request<pb::WatchExecutionsRequest>,
    ) -> Result<Response<Self::WatchExecutionsStream>, Status> {
        let job = req.into_inner().job;
        if !job.is_empty() {
            kairos_common::job::JobName::parse(&job)
                .map_err(|e| super::status::to_status(e.into()))?;
        }
        let mut rx = self.0.view.subscribe_executions();
        let shutdown = self.1.clone();
        let stream = async_stream::stream! {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = rx.recv() => next,
                };
                match next {
                    Ok(e) => {
                        if job.is_empty() || e.job == job {
                            yield Ok(e);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        yield Err(Status::aborted(format!(
                            "this watcher fell behind and missed {n} changes; list again and watch anew"
                        )));
                        break;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    type TailOutputStream = BoxStream<pb::OutputChunk>;

    async fn tail_output(
        &self,
        req: Request<pb::TailOutputRequest>,
    ) -> Result<Response<Self::TailOutputStream>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        let exec = self.0.get_execution(&req.id).await.or_status()?;
        let id: u64 = exec
            .id
            .parse()
            .map_err(|_| Status::internal("execution ids are numbers"))?;
        let ended = ExecutionStatus::of(&exec).is_none_or(ExecutionStatus::is_final);
        if ended {
            // The stored output is the record.
            let chunk = pb::OutputChunk { data: exec.output };
            return Ok(Response::new(Box::pin(tokio_stream::iter([Ok(chunk)]))));
        }
        if let Err(e) = self.0.require_leader() {
            // Live output lives on the leader: relay its stream.
            let upstream = self
                .0
                .to_leader(e, forwarded, req, |ch, r| async move {
                    ExecutionServiceClient::new(ch).tail_output(r).await
                })
                .await?
                .into_inner();
            return Ok(Response::new(Box::pin(upstream)));
        }
        let max = self.0.config.max_output_bytes as usize;
        let (tail, mut rx) = self.0.live.get_or_create(id, max).follow();
        let core = self.0.clone();
        let shutdown = self.1.clone();
        let follow = req.follow;
        let stream = async_stream::stream! {
            if !tail.is_empty() {
                yield Ok(pb::OutputChunk { data: tail });
            }
            if follow {
                let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        next = rx.recv() => match next {
                            Ok(data) => yield Ok(pb::OutputChunk { data: data.to_string() }),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                yield Ok(pb::OutputChunk {
                                    data: format!("\n[{n} chunks of output skipped: this reader fell behind]\n"),
                                });
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        },
                        _ = check.tick() => {
                            let over = core
                                .view
                                .execution(id)
                                .ok()
                                .flatten()
                                .is_none_or(|e| ExecutionStatus::of(&e).is_none_or(ExecutionStatus::is_final));
                                                        if over {
                                // Whatever was queued before the end still goes out.
                                while let Ok(data) = rx.try_recv() {
                                    yield Ok(pb::OutputChunk { data: data.to_string() });
                                }
                                core.live.end(id);
                                break;
                            }
                        }
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
