//! The HTTP surface: `/healthz`, `/readyz`, `/metrics`, the web UI (`ui`: the
//! dashboard at `/`, jobs, executions, the cluster) and the Dkron-compatible JSON
//! API under `/v1` ([`dkron`]).
//!
//! `/openapi.yaml` is the OpenAPI document of this port's machine-readable routes
//! (`scheduler/assets/openapi.yaml`, embedded in the binary): the `/v1` API, the
//! health and readiness checks, `/metrics` and the UI's execution output (the live
//! stream and the text file); not the UI's HTML pages. It is open like `/healthz`,
//! so a tool can read it before it has a token; the clients test runs schemathesis
//! with it against `kairos dev`, so it stays true.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::{Error, Result};

/// The OpenAPI document served at [`OPENAPI_PATH`].
const OPENAPI_YAML: &str = include_str!("../../assets/openapi.yaml");
/// Where the OpenAPI document is served (open to anyone, see `auth`).
pub const OPENAPI_PATH: &str = "/openapi.yaml";

mod auth;
pub mod dkron;
mod ui;

/// The HTTP status for a gRPC answer, for every HTTP surface that calls the
/// services (the web UI, the Dkron API).
pub(crate) fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn serve(
    core: Arc<Core>,
    listener: Arc<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(OPENAPI_PATH, get(openapi))
        .merge(dkron::routes())
        .merge(ui::routes())
        .layer(axum::Extension(shutdown.clone()))
        // The same cap as a gRPC job write: a body beyond it is refused (413)
        // before it is read further.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::grpc::MAX_API_REQUEST_BYTES,
        ))
        .layer(axum::middleware::from_fn_with_state(
            core.clone(),
            auth::authorize,
        ))
        .with_state(core.clone());
    let accepting = crate::listen::Accepting::new(listener, core.server_tls.clone())
        .map_err(|e| Error::Internal(format!("http listener: {e}")))?;
    axum::serve(
        accepting,
        app.into_make_service_with_connect_info::<crate::listen::Peer>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .map_err(|e| Error::Internal(format!("http server: {e}")))
}

/// The HTTP port of a node still deciding whether to bootstrap or join
/// ([`crate::join`]): alive, not ready.
pub async fn serve_waiting(
    listener: Arc<tokio::net::TcpListener>,
    tls: Option<Arc<kairos_tls::ServerTls>>,
    shutdown: CancellationToken,
) -> Result<()> {
    let app = Router::new().route("/healthz", get(healthz)).route(
        "/readyz",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: waiting for the group's peers (bootstrap or join)\n",
            )
        }),
    );
    let accepting = crate::listen::Accepting::new(listener, tls)
        .map_err(|e| Error::Internal(format!("http listener: {e}")))?;
    axum::serve(accepting, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Internal(format!("http server: {e}")))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

/// How long `/readyz` waits for the leader to confirm a read.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when this node is a voter, the group has a leader, and this node has
/// applied everything the leader had committed when asked (a read-index barrier):
/// it serves current reads and forwards writes. A rolling restart that waits for
/// `/readyz` before stopping the next node therefore never has two nodes catching up.
async fn readyz(State(core): State<Arc<Core>>) -> Response {
    let s = core.status();
    if !s.voters.contains(&s.id) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not a voter of the group (joining, or removed)\n",
        )
            .into_response();
    }
    match tokio::time::timeout(READY_TIMEOUT, core.read_barrier()).await {
        Ok(Ok(())) => {
            let s = core.status();
            (
                StatusCode::OK,
                format!(
                    "ready: leader {}, applied {}\n",
                    s.leader_id, s.applied_index
                ),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not caught up with the leader\n",
        )
            .into_response(),
    }
}

async fn metrics(State(core): State<Arc<Core>>) -> Response {
    let s = core.status();
    let m = &core.metrics;
    m.jobs.set(core.view.job_count() as i64);
    m.executors.set(core.executors.connected() as i64);
    m.active_executions.set(core.view.active().len() as i64);
    m.raft_term.set(s.term as i64);
    m.raft_commit_index.set(s.commit_index as i64);
    m.raft_applied_index.set(s.applied_index as i64);
    m.raft_apply_lag
        .set(s.commit_index.saturating_sub(s.applied_index) as i64);
    m.is_leader
        .set(i64::from(s.role == crate::raft::Role::Leader));
    m.dispatch_queue.set(core.executors.queued() as i64);
    m.raft_counters(s.counters);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
        .into_response()
}
