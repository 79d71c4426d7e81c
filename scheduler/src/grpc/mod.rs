//! The gRPC surface: the public `kairos.v1` services, the executor gateway, server
//! reflection (v1 and v1alpha, so both grpcurl and newer clients can discover the
//! API) and `grpc.health.v1`.
//!
//! Handlers are adapters: decode the request, call [`crate::core::Core`], encode the
//! answer. Errors become statuses in [`status::to_status`] only.

mod cluster;
mod executions;
mod gateway;
mod jobs;
mod raft_transport;
pub mod status;
mod waiting;

pub use waiting::{WaitingTransport, serve_waiting};

use std::sync::Arc;

use kairos_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::{Error, Result};

pub use gateway::HEARTBEAT_INTERVAL;

/// Serves every gRPC service on `listener` until `shutdown`.
pub async fn serve(
    core: Arc<Core>,
    listener: Arc<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kairos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kairos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::job_service_server::JobServiceServer<jobs::JobApi>>()
        .await;
    health
        .set_serving::<pb::execution_service_server::ExecutionServiceServer<executions::ExecutionApi>>()
        .await;
    health
        .set_serving::<pb::cluster_service_server::ClusterServiceServer<cluster::ClusterApi>>()
        .await;

    let incoming = crate::listen::incoming(listener);
    let gateway = gateway::Gateway {
        core: core.clone(),
        shutdown: shutdown.clone(),
    };
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::job_service_server::JobServiceServer::new(jobs::JobApi(
            core.clone(),
        )))
        .add_service(pb::execution_service_server::ExecutionServiceServer::new(
            executions::ExecutionApi(core.clone(), shutdown.clone()),
        ))
        .add_service(pb::cluster_service_server::ClusterServiceServer::new(
            cluster::ClusterApi(core.clone()),
        ))
        .add_service(pb::executor_gateway_server::ExecutorGatewayServer::new(
            gateway,
        ))
        .add_service(
            pb::raft_transport_server::RaftTransportServer::new(raft_transport::RaftApi(
                core.clone(),
                shutdown.clone(),
            ))
            .max_decoding_message_size(64 << 20),
        )
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Internal(format!("grpc server: {e}")))
}
