//! Who is calling, and may they: authentication and authorization for every gRPC
//! method (one tower layer, [`layer`]) and every HTTP route (the same check, in
//! `http/`). The rules of what each role may do are `kairos_common::access`.
//!
//! # Threat model
//! - Anyone who can reach a port. Without credentials they get the health checks
//!   and nothing else: not reflection, not the job list, and — the reason this
//!   exists — not `RaftTransport` (raft messages into the group) nor
//!   `ExecutorGateway` (every job's command and environment).
//! - A holder of a stolen token gets its role until an admin revokes it; a
//!   revocation is refused on every node once it commits (milliseconds, not a cache
//!   timeout). Tokens are random (32 bytes) and stored only as SHA-256; the secret is
//!   compared in constant time.
//! - A certificate the cluster's CA did not sign fails the TLS handshake; one that
//!   it signed carries its holder's identity (`urn:kairos:<role>:<name>`). A peer
//!   must present a `scheduler` certificate naming a member (or, while it joins, a
//!   listed peer); an executor an `executor` certificate or an `executor` token.
//!   An executor certificate registers as the executor it names, or, when its name
//!   ends in `*` (a pool certificate, for a Deployment or an autoscaling group whose
//!   members are named `PREFIX<random>`), as any executor whose name starts with the
//!   part before the `*`: members of a pool can impersonate one another, nothing else.
//! - A follower that forwards a caller's request to the leader presents its own
//!   scheduler certificate and names the caller in `kairos-on-behalf-of`; the
//!   leader believes that header only from a scheduler.
//!
//! # Modes
//! - **Enforced** (TLS configured): every caller needs a verified certificate or a
//!   token, and its role must grant the method's permission.
//! - **Open** (`--insecure`, and `kairos dev` on loopback): every caller is treated
//!   as an admin named `anonymous` and may use every service, executors' and peers'
//!   included; the node says so when it starts listening.
//!
//! # Not here
//! TLS itself (`kairos-tls`), rate limits (`limits.rs`), and what a job's secrets
//! are (`kairos_common::job`).

mod layer;
mod limits;
mod token;

pub use layer::{AuthLayer, current_principal, scope};
pub use limits::WriteLimiter;
pub use token::{NewToken, hash_secret, mint, parse as parse_token};

use std::sync::Arc;

use kairos_common::access::{Permission, Role};
use kairos_tls::ConnInfo;

use crate::state::StateView;

/// Whether an executor certificate named `cert_name` may register executor
/// `executor_id`: the same name, or for a pool certificate `PREFIX*` a name that
/// starts with `PREFIX` and has more after it. A lone `*` is refused (it would be a
/// certificate for every executor: issue an executor token instead).
pub fn certificate_covers_executor(cert_name: &str, executor_id: &str) -> bool {
    match cert_name.strip_suffix('*') {
        Some("") => false,
        Some(prefix) => executor_id.len() > prefix.len() && executor_id.starts_with(prefix),
        None => cert_name == executor_id,
    }
}

/// Metadata a forwarding scheduler names the original caller in (`role:name`).
pub const ON_BEHALF_OF_METADATA_KEY: &str = "kairos-on-behalf-of";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// The certificate's or token's name (`alice`, `ci-deploy`, `web-1`, `3`).
    pub name: String,
    /// How it proved it.
    pub via: Via,
}

/// How a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Certificate,
    /// A token, by its public id.
    Token,
    /// Nothing: the node runs open (`--insecure`).
    Open,
    /// A scheduler forwarded the request and vouches for the caller.
    Forwarded,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

impl Principal {
    /// `role:name`, the on-behalf-of form.
    pub fn parse(s: &str) -> Option<Principal> {
        let (role, name) = s.split_once(':')?;
        Some(Principal {
            role: role.parse().ok()?,
            name: name.to_string(),
            via: Via::Forwarded,
        })
    }
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or ones that prove nothing (an unknown or revoked token, a
    /// certificate without a Kairos identity).
    Unauthenticated(String),
    /// Known, but its role lacks the permission.
    PermissionDenied(String),
}

/// Decides who a caller is and whether it may.
#[derive(Debug)]
pub struct Authenticator {
    view: Arc<StateView>,
    enforced: bool,
}

impl Authenticator {
    /// `enforced` false: the open mode of the module essay.
    pub fn new(view: Arc<StateView>, enforced: bool) -> Arc<Authenticator> {
        Arc::new(Authenticator { view, enforced })
    }

    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// Who the caller is: a bearer token if it gives one (`authorization` header or
    /// metadata), else its verified certificate; a scheduler may name the caller it
    /// forwards for. Refused when it proves nothing (and the node enforces).
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        conn: Option<&ConnInfo>,
    ) -> Result<Principal, Refusal> {
        if !self.enforced {
            return Ok(Principal {
                role: Role::Admin,
                name: "anonymous".into(),
                via: Via::Open,
            });
        }
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let principal = match bearer {
            Some(token) => self.by_token(token)?,
            None => match conn.and_then(|c| c.peer.as_ref()) {
                Some(id) => Principal {
                    role: id.role.parse().map_err(|_| {
                        Refusal::Unauthenticated(format!(
                            "the certificate names role {:?}, which Kairos does not know",
                            id.role
                        ))
                    })?,
                    name: id.name.clone(),
                    via: Via::Certificate,
                },
                None => {
                    return Err(Refusal::Unauthenticated(
                        "no credentials: give a token (authorization: Bearer …) or a client certificate"
                            .into(),
                    ));
                }
            },
        };
        if principal.role == Role::Scheduler
            && let Some(caller) = headers
                .get(ON_BEHALF_OF_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(Principal::parse)
        {
            return Ok(caller);
        }
        Ok(principal)
    }

    fn by_token(&self, token: &str) -> Result<Principal, Refusal> {
        let unknown =
            || Refusal::Unauthenticated("the token is not valid (unknown or revoked)".into());
        let (id, secret) = token::parse(token).ok_or_else(unknown)?;
        let record = self.view.token(id).ok_or_else(unknown)?;
        if !same_bytes(&hash_secret(secret), &record.secret_sha256) {
            return Err(unknown());
        }
        let role = record.role.parse().map_err(|_| unknown())?;
        Ok(Principal {
            role,
            name: record.name,
            via: Via::Token,
        })
    }

    /// Whether `who` may use something that needs `permission` (`what` names it for
    /// the refusal).
    pub fn authorize(
        &self,
        who: &Principal,
        permission: Permission,
        what: &str,
    ) -> Result<(), Refusal> {
        // Open mode grants everything, the executor's and the peers' services too:
        // there is nothing to check them against.
        if !self.enforced || permission == Permission::Open || who.role.allows(permission) {
            return Ok(());
        }
        Err(Refusal::PermissionDenied(format!(
            "{who} lacks the {permission} permission that {what} needs"
        )))
    }
}

/// Equal slices, in time that depends only on their lengths.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
