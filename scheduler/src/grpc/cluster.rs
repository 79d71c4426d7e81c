//! `kairos.v1.ClusterService`: decode, call [`Core`], encode. Membership changes
//! are served by the leader ([`super::forward`]).

use std::sync::Arc;
use std::time::Duration;

use kairos_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;
use tonic::{Request, Response, Status};

use super::forward::{Forwarder, is_forwarded, or_leader};
use crate::core::Core;

/// Metadata asking a scheduler for its own row only (no fan-out).
pub const LOCAL_STATUS_METADATA_KEY: &str = "kairos-local-status";
/// How long a member may take to report its figures for a status.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Debug, Clone)]
pub struct ClusterApi(pub Arc<Core>);

/// Asks the scheduler at `addr` for its own status row.
pub async fn peer_status(forwarder: &Forwarder, addr: &str) -> Option<pb::SchedulerStatus> {
    if addr.is_empty() {
        return None;
    }
    let channel = forwarder.channel(addr).ok()?;
    let mut req = Request::new(pb::GetStatusRequest {});
    req.metadata_mut()
        .insert(LOCAL_STATUS_METADATA_KEY, "1".parse().ok()?);
    req.set_timeout(PEER_STATUS_TIMEOUT);
    let mut client = ClusterServiceClient::new(channel);
    let call = client.get_status(req);
    let status = tokio::time::timeout(PEER_STATUS_TIMEOUT, call)
        .await
        .ok()?
        .ok()?
        .into_inner();
    status
        .schedulers
        .into_iter()
        .find(|s| s.id == status.answered_by)
}

/// Asks the leader at `addr` for its executors.
pub async fn leader_executors(
    forwarder: &Forwarder,
    addr: &str,
) -> Option<Vec<pb::ExecutorStatus>> {
    if addr.is_empty() {
        return None;
    }
    let channel = forwarder.channel(addr).ok()?;
    let mut req = Request::new(pb::ListExecutorsRequest {});
    req.set_timeout(PEER_STATUS_TIMEOUT);
    let mut client = ClusterServiceClient::new(channel);
    let call = client.list_executors(req);
    Some(
        tokio::time::timeout(PEER_STATUS_TIMEOUT, call)
            .await
            .ok()?
            .ok()?
            .into_inner()
            .executors,
    )
}

/// Asks the leader at `addr` to remove scheduler `id` (after this node handed it the
/// leadership).
pub async fn remove_via(
    forwarder: &Forwarder,
    from: u64,
    addr: &str,
    id: u64,
) -> crate::Result<()> {
    let channel = forwarder
        .channel(addr)
        .map_err(|s| crate::Error::Unavailable(s.message().to_string()))?;
    let mut req = Request::new(pb::RemoveSchedulerRequest { id });
    if let Ok(v) = from.to_string().parse() {
        req.metadata_mut()
            .insert(super::forward::FORWARDED_METADATA_KEY, v);
    }
    ClusterServiceClient::new(channel)
        .remove_scheduler(req)
        .await
        .map(|_| ())
        .map_err(|s| {
            crate::Error::Unavailable(format!(
                "the new leader could not remove scheduler {id}: {}",
                s.message()
            ))
        })
}

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
        if req.metadata().contains_key(LOCAL_STATUS_METADATA_KEY) {
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
                or_leader(
                    &self.0,
                    e,
                    forwarded,
                    req.into_inner(),
                    |ch, r| async move { ClusterServiceClient::new(ch).list_executors(r).await },
                )
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
                or_leader(&self.0, e, forwarded, req, |ch, r| async move {
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
                or_leader(&self.0, e, forwarded, req, |ch, r| async move {
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
                or_leader(&self.0, e, forwarded, req, |ch, r| async move {
                    ClusterServiceClient::new(ch).transfer_leader(r).await
                })
                .await
            }
        }
    }
}
