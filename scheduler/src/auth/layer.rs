//! The gRPC side of authorization: one tower layer in front of every service. It
//! finds the method's permission, authenticates the caller, checks the role, counts
//! writes against the caller's rate limit, writes the audit line of a write, and
//! hands the principal to the handler (request extensions, and for the domain
//! layer's audit lines a task-local, [`current_principal`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kairos_common::access::{Permission, grpc_permission};
use kairos_tls::ConnInfo;
use tonic::Status;
use tracing::info;

use super::{Authenticator, Principal, Refusal, WriteLimiter};

tokio::task_local! {
    static PRINCIPAL: Principal;
}

/// The caller of the request this task serves, when it came through the layer.
pub fn current_principal() -> Option<Principal> {
    PRINCIPAL.try_with(Clone::clone).ok()
}

/// Runs `fut` as served for `principal` (what [`current_principal`] answers in it).
pub async fn scope<F: Future>(principal: Principal, fut: F) -> F::Output {
    PRINCIPAL.scope(principal, fut).await
}

/// Metadata a `RESOURCE_EXHAUSTED` answer carries: milliseconds until a retry may
/// succeed.
pub const RETRY_AFTER_METADATA_KEY: &str = "kairos-retry-after-ms";

/// The layer.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    limiter: Arc<WriteLimiter>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>, limiter: Arc<WriteLimiter>) -> AuthLayer {
        AuthLayer { auth, limiter }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            auth: self.auth.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

/// The layer's service.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
    limiter: Arc<WriteLimiter>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let decision = self.decide(&req, &path);
        // The service that was polled ready serves this request; a fresh clone
        // waits for the next one (tower's rule for services moved into futures).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match decision {
                Ok(principal) => {
                    req.extensions_mut().insert(principal.clone());
                    PRINCIPAL.scope(principal, inner.call(req)).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl<S> Auth<S> {
    fn decide<B>(&self, req: &http::Request<B>, path: &str) -> Result<Principal, Status> {
        let Some(permission) = grpc_permission(path) else {
            return Err(Status::unimplemented(format!("no method {path} here")));
        };
        let conn = req.extensions().get::<ConnInfo>();
        if permission == Permission::Open {
            return Ok(self
                .auth
                .authenticate(req.headers(), conn)
                .unwrap_or(Principal {
                    role: kairos_common::access::Role::Viewer,
                    name: "anonymous".into(),
                    via: super::Via::Open,
                }));
        }
        let principal = self
            .auth
            .authenticate(req.headers(), conn)
            .map_err(to_status)?;
        self.auth
            .authorize(&principal, permission, path)
            .map_err(to_status)?;
        if matches!(permission, Permission::Write | Permission::Admin) {
            // A forwarded request was counted where it entered the group.
            if principal.via != super::Via::Forwarded
                && let Err(wait) = self.limiter.take(&principal.to_string())
            {
                let mut s = Status::resource_exhausted(format!(
                    "write rate limit for {principal} reached; retry in {} ms",
                    wait.as_millis().max(1)
                ));
                if let Ok(v) = wait.as_millis().max(1).to_string().parse() {
                    s.metadata_mut().insert(RETRY_AFTER_METADATA_KEY, v);
                }
                return Err(s);
            }
            info!(target: "audit", caller = %principal, via = ?principal.via, method = %path, "write");
        }
        Ok(principal)
    }
}

fn to_status(r: Refusal) -> Status {
    match r {
        Refusal::Unauthenticated(why) => Status::unauthenticated(why),
        Refusal::PermissionDenied(why) => Status::permission_denied(why),
    }
}
