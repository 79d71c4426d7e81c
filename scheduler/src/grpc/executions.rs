//! `kairos.v1.ExecutionService`: decode, call [`Core`], encode.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kairos_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::forward::{is_forwarded, or_leader};
use super::status::IntoStatus;
use crate::core::Core;
use pb::execution_service_client::ExecutionServiceClient;

#[derive(Debug, Clone)]
pub struct ExecutionApi(pub Arc<Core>);

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
            Err(e) => or_leader(
                &self.0.forwarder,
                self.0.config.node_id,
                e,
                forwarded,
                req,
                |ch, r| async move { ExecutionServiceClient::new(ch).cancel_execution(r).await },
            )
            .await,
        }
    }

    type WatchExecutionsStream = BoxStream<pb::Execution>;

    async fn watch_executions(
        &self,
        _req: Request<pb::WatchExecutionsRequest>,
    ) -> Result<Response<Self::WatchExecutionsStream>, Status> {
        Err(Status::unimplemented(
            "watching executions is not supported by this version",
        ))
    }

    type TailOutputStream = BoxStream<pb::OutputChunk>;

    async fn tail_output(
        &self,
        _req: Request<pb::TailOutputRequest>,
    ) -> Result<Response<Self::TailOutputStream>, Status> {
        Err(Status::unimplemented(
            "live output is not supported by this version; see exec get",
        ))
    }
}
