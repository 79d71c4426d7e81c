//! `kairos.v1.ClusterService`: decode, call [`Core`], encode.

use std::sync::Arc;

use kairos_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::core::Core;

#[derive(Debug, Clone)]
pub struct ClusterApi(pub Arc<Core>);

#[tonic::async_trait]
impl pb::cluster_service_server::ClusterService for ClusterApi {
    async fn get_status(
        &self,
        _req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(self.0.cluster_status()))
    }

    async fn list_executors(
        &self,
        _req: Request<pb::ListExecutorsRequest>,
    ) -> Result<Response<pb::ListExecutorsResponse>, Status> {
        Ok(Response::new(pb::ListExecutorsResponse {
            executors: self.0.executors.statuses(),
        }))
    }

    async fn add_scheduler(
        &self,
        _req: Request<pb::AddSchedulerRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Err(Status::unimplemented(
            "membership changes are not supported by this version",
        ))
    }

    async fn remove_scheduler(
        &self,
        _req: Request<pb::RemoveSchedulerRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Err(Status::unimplemented(
            "membership changes are not supported by this version",
        ))
    }

    async fn transfer_leader(
        &self,
        _req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Err(Status::unimplemented(
            "leadership transfer is not supported by this version",
        ))
    }
}
