//! `kairos.v1.ClusterService`: decode, call [`Core`], encode. Membership changes
//! are served by the leader ([`crate::peers`] forwards them).

use std::sync::Arc;

use kairos_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::peers::is_forwarded;

#[derive(Debug, Clone)]
pub struct ClusterApi(pub Arc<Core>);

impl ClusterApi {
    async fn status(&self) -> pb::ClusterStatus {
        self.0.cluster_status().await
    }
}

#[tonic::async_trait]
impl pb::cluster_service_server::ClusterService for ClusterApi {
    async fn get_status(
        &self,
        req: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        if req
            .metadata()
            .contains_key(crate::peers::LOCAL_STATUS_METADATA_KEY)
        {
            let s = self.0.status();
            return Ok(Response::new(pb::ClusterStatus {
                leader_id: s.leader_id,
                leader_addr: self.0.leader_addr().unwrap_or_default(),
                schedulers: vec![self.0.local_status()],
                executors: Vec::new(),
                answered_by: s.id,
            }));
        }
        Ok(Response::new(self.status().await))
    }

    async fn list_executors(
        &self,
        req: Request<pb::ListExecutorsRequest>,
    ) -> Result<Response<pb::ListExecutorsResponse>, Status> {
        // Executors connect to the leader only: ask it.
        let forwarded = is_forwarded(&req);
        match self.0.leader_or_wait().await {
            Ok(()) => Ok(Response::new(pb::ListExecutorsResponse {
                executors: self.0.executors.statuses(),
            })),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req.into_inner(), |ch, r| async move {
                        ClusterServiceClient::new(ch).list_executors(r).await
                    })
                    .await
            }
        }
    }

    async fn add_scheduler(
        &self,
        req: Request<pb::AddSchedulerRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.add_scheduler(req.id, &req.addr).await {
            Ok(()) => Ok(Response::new(self.status().await)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        ClusterServiceClient::new(ch).add_scheduler(r).await
                    })
                    .await
            }
        }
    }

    async fn remove_scheduler(
        &self,
        req: Request<pb::RemoveSchedulerRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.remove_scheduler(req.id).await {
            Ok(()) => Ok(Response::new(self.status().await)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        ClusterServiceClient::new(ch).remove_scheduler(r).await
                    })
                    .await
            }
        }
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.transfer_leader(req.id).await {
            Ok(()) => Ok(Response::new(self.status().await)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        ClusterServiceClient::new(ch).transfer_leader(r).await
                    })
                    .await
            }
        }
    }
}
