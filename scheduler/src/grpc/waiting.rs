//! The gRPC surface of a node that has not found its place in the group yet
//! ([`crate::join`]): `RaftTransport.Membership` answers "waiting, with these
//! voters"; raft traffic and joins are refused until the raft node exists.

use kairos_proto::v1 as pb;
use pb::membership_reply::State;
use tonic::{Request, Response, Status, Streaming};

/// The stand-in `RaftTransport` of a node deciding whether to bootstrap or join.
#[derive(Debug, Clone)]
pub struct WaitingTransport {
    pub id: u64,
    /// Its `--peers` ids: what it would bootstrap with.
    pub voters: Vec<u64>,
}

fn not_started() -> Status {
    Status::unavailable("this scheduler is starting: it has not joined a group yet")
}

#[tonic::async_trait]
impl pb::raft_transport_server::RaftTransport for WaitingTransport {
    async fn send(
        &self,
        _req: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        Err(not_started())
    }

    async fn install_snapshot(
        &self,
        _req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        Err(not_started())
    }

    async fn membership(
        &self,
        _req: Request<pb::MembershipRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        Ok(Response::new(pb::MembershipReply {
            state: State::Waiting as i32,
            voters: self.voters.clone(),
            id: self.id,
            ..Default::default()
        }))
    }

    async fn join(
        &self,
        _req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        Err(not_started())
    }
}

/// Serves [`WaitingTransport`] on `listener` until `stop`.
pub async fn serve_waiting(
    transport: WaitingTransport,
    listener: std::sync::Arc<tokio::net::TcpListener>,
    tls: Option<std::sync::Arc<kairos_tls::ServerTls>>,
    stop: tokio_util::sync::CancellationToken,
) -> crate::Result<()> {
    tonic::transport::Server::builder()
        .add_service(pb::raft_transport_server::RaftTransportServer::new(
            transport,
        ))
        .serve_with_incoming_shutdown(
            crate::listen::incoming(listener, tls),
            stop.cancelled_owned(),
        )
        .await
        .map_err(|e| crate::Error::Internal(format!("grpc server: {e}")))
}
