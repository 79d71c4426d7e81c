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
mod tokens;
mod waiting;

pub use waiting::{WaitingTransport, serve_waiting};

/// The public services' handlers, for the web UI: an action in a page does exactly
/// what the same gRPC call does (validation, forwarding to the leader, errors).
pub use cluster::ClusterApi;
pub use executions::ExecutionApi;
pub use jobs::JobApi;

use std::sync::Arc;

use kairos_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::{Error, Result};

pub use gateway::HEARTBEAT_INTERVAL;

/// Streams one client connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Largest job document request (a job's command and environment fit many times).
pub const MAX_API_REQUEST_BYTES: usize = 1 << 20;
/// Largest request of the services that take only names and ids.
pub const MAX_SMALL_REQUEST_BYTES: usize = 64 << 10;
/// Largest executor message (a finished report carries up to 64 KiB of output,
/// with room for a larger configured cap).
pub const MAX_GATEWAY_MESSAGE_BYTES: usize = 8 << 20;

/// Serves every gRPC service on `listener` until `shutdown`, behind the
/// authorization layer ([`crate::auth`]).
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

    health
        .set_serving::<pb::token_service_server::TokenServiceServer<tokens::TokenApi>>()
        .await;

    let incoming = crate::listen::incoming(listener, core.server_tls.clone());
    let gateway = gateway::Gateway {
        core: core.clone(),
        shutdown: shutdown.clone(),
    };
    tonic::transport::Server::builder()
        // One connection may not open streams without bound (watchers, tails).
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .layer(crate::auth::AuthLayer::new(
            core.auth.clone(),
            core.limiter.clone(),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            pb::job_service_server::JobServiceServer::new(jobs::JobApi(core.clone()))
                .max_decoding_message_size(MAX_API_REQUEST_BYTES),
        )
        .add_service(
            pb::execution_service_server::ExecutionServiceServer::new(executions::ExecutionApi(
                core.clone(),
                shutdown.clone(),
            ))
            .max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        )
        .add_service(
            pb::cluster_service_server::ClusterServiceServer::new(cluster::ClusterApi(
                core.clone(),
            ))
            .max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        )
        .add_service(
            pb::token_service_server::TokenServiceServer::new(tokens::TokenApi(core.clone()))
                .max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        )
        .add_service(
            pb::executor_gateway_server::ExecutorGatewayServer::new(gateway)
                .max_decoding_message_size(MAX_GATEWAY_MESSAGE_BYTES),
        )
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
