//! `kairos.v1.ClusterService` as typed calls: the group's status, its executors,
//! and membership changes.
//!
//! Membership changes are never resent once they may have arrived: a second
//! `AddScheduler` would answer that the node is a member already, a second
//! `RemoveScheduler` that it is not one, and the caller would be told the change
//! failed when it happened. `TransferLeader` asks for a state, so it may be.

use kairos_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;

use crate::client::{Client, rpc};
use crate::error::Result;
use crate::retry::Safety;

impl Client {
    /// `GetStatus`: the schedulers (role, term, commit and applied index), the
    /// leader and the executors, as the scheduler answering sees them.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatus> {
        rpc!(
            self,
            ClusterServiceClient<_>,
            get_status,
            "GetStatus",
            Safety::Idempotent,
            pb::GetStatusRequest {}
        )
    }

    /// `ListExecutors`: the executors connected to the leader.
    pub async fn list_executors(&self) -> Result<pb::ListExecutorsResponse> {
        rpc!(
            self,
            ClusterServiceClient<_>,
            list_executors,
            "ListExecutors",
            Safety::Idempotent,
            pb::ListExecutorsRequest {}
        )
    }

    /// `AddScheduler`: admits scheduler `id` at `addr`; the status after the change.
    pub async fn add_scheduler(&self, id: u64, addr: &str) -> Result<pb::ClusterStatus> {
        let request = pb::AddSchedulerRequest {
            id,
            addr: addr.into(),
        };
        rpc!(
            self,
            ClusterServiceClient<_>,
            add_scheduler,
            "AddScheduler",
            Safety::AtMostOnce,
            request
        )
    }

    /// `RemoveScheduler`; the status after the change.
    pub async fn remove_scheduler(&self, id: u64) -> Result<pb::ClusterStatus> {
        rpc!(
            self,
            ClusterServiceClient<_>,
            remove_scheduler,
            "RemoveScheduler",
            Safety::AtMostOnce,
            pb::RemoveSchedulerRequest { id }
        )
    }

    /// `TransferLeader` to scheduler `id`; the status once it was asked for.
    pub async fn transfer_leader(&self, id: u64) -> Result<pb::ClusterStatus> {
        rpc!(
            self,
            ClusterServiceClient<_>,
            transfer_leader,
            "TransferLeader",
            Safety::Idempotent,
            pb::TransferLeaderRequest { id }
        )
    }
}
