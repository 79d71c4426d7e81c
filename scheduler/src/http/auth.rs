//! The HTTP side of authorization: the same check as the gRPC layer
//! ([`crate::auth`]), for the status page, `/metrics` and the `/v1` API. A caller
//! brings a bearer token (`authorization` header, or the `kairos_token` cookie the
//! web UI sets) or a client certificate. `/healthz`, `/readyz` and the OpenAPI
//! document (`/openapi.yaml`) are open; so is `/metrics` with `--metrics-open`.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kairos_common::access::Permission;
use tracing::info;

use crate::auth::{Principal, Refusal, Via};
use crate::core::Core;
use crate::listen::Peer;

/// The cookie the web UI keeps a token in.
pub const TOKEN_COOKIE: &str = "kairos_token";

/// What a request needs.
fn permission(core: &Core, method: &Method, path: &str) -> Permission {
    match path {
        "/healthz" | "/readyz" | "/health" | "/logout" | super::OPENAPI_PATH => Permission::Open,
        p if super::ui::is_open(p) => Permission::Open,
        "/metrics" if core.config.metrics_open => Permission::Open,
        _ if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) => Permission::Read,
        _ => Permission::Write,
    }
}

/// The token in the UI's cookie, as an `authorization` header would carry it.
fn with_cookie_token(headers: &axum::http::HeaderMap) -> Option<axum::http::HeaderMap> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))?
        .to_string();
    let mut h = headers.clone();
    h.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().ok()?,
    );
    Some(h)
}

pub async fn authorize(State(core): State<Arc<Core>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let permission = permission(&core, req.method(), &path);
    let conn = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(info))| info.clone());
    let conn = conn.as_ref();
    let headers = with_cookie_token(req.headers());
    let headers = headers.as_ref().unwrap_or(req.headers());
    let principal = match core.auth.authenticate(headers, conn) {
        Ok(p) => p,
        Err(_) if permission == Permission::Open => Principal {
            role: kairos_common::access::Role::Viewer,
            name: "anonymous".into(),
            via: Via::Open,
        },
        Err(Refusal::Unauthenticated(why))
            if req.method() == Method::GET && super::ui::is_ui_page(&path) =>
        {
            return super::ui::login_required(&core, &req, &why);
        }
        Err(refusal) => return refuse(refusal),
    };
    let what = format!("{} {path}", req.method());
    if let Err(refusal) = core.auth.authorize(&principal, permission, &what) {
        return refuse(refusal);
    }
    if permission == Permission::Write {
        if let Err(wait) = core.limiter.take(&principal.to_string()) {
            let ms = wait.as_millis().max(1);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, ms.div_ceil(1000).max(1).to_string())],
                format!("write rate limit for {principal} reached; retry in {ms} ms\n"),
            )
                .into_response();
        }
        info!(target: "audit", caller = %principal, via = ?principal.via, %what, "write");
    }
    req.extensions_mut().insert(principal.clone());
    crate::auth::scope(principal, next.run(req)).await
}

fn refuse(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthenticated(why) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("unauthenticated: {why}\n"),
        )
            .into_response(),
        Refusal::PermissionDenied(why) => {
            (StatusCode::FORBIDDEN, format!("permission denied: {why}\n")).into_response()
        }
    }
}
