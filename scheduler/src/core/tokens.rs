//! Bearer tokens: made on the leader (random; the command carries only the hash),
//! listed without secrets, revoked by id.

use kairos_common::access::Role;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use tracing::info;

use super::{Core, now_ms, unexpected};
use crate::state::Applied;
use crate::time::ts_from_ms;
use crate::{Error, Result};

/// Longest token name.
const MAX_TOKEN_NAME: usize = 128;

fn info_of(t: &ipb::TokenRecord) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.clone(),
        created_at: Some(ts_from_ms(t.created_at_ms)),
        created_by: t.created_by.clone(),
    }
}

impl Core {
    /// Makes a token for `name` with `role`; returns it whole, the one time it is
    /// shown.
    pub async fn create_token(&self, name: &str, role: &str) -> Result<(pb::TokenInfo, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                format!("must be 1 to {MAX_TOKEN_NAME} printable characters"),
            ));
        }
        let role: Role = role
            .parse()
            .map_err(|e: String| Error::invalid("role", e))?;
        if role == Role::Scheduler {
            return Err(Error::invalid(
                "role",
                "schedulers authenticate with their certificates, not tokens",
            ));
        }
        self.leader_or_wait().await?;
        let minted = crate::auth::mint();
        let record = ipb::TokenRecord {
            id: minted.id.clone(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            secret_sha256: minted.secret_sha256.clone(),
            created_at_ms: now_ms(self.clock.as_ref()),
            created_by: crate::auth::current_principal()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        };
        match self
            .propose(ipb::command::Kind::PutToken(ipb::PutToken {
                token: Some(record),
            }))
            .await?
        {
            Applied::Token(t) => {
                info!(target: "audit", token = %t.id, name = %t.name, role = %t.role, by = %t.created_by, "token created");
                Ok((info_of(&t), minted.token))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Every token, without secrets, by id.
    pub async fn list_tokens(&self) -> Result<Vec<pb::TokenInfo>> {
        self.read_barrier().await?;
        Ok(self.view.tokens().iter().map(info_of).collect())
    }

    /// Revokes a token; every node refuses it once this commits.
    pub async fn revoke_token(&self, id: &str) -> Result<pb::TokenInfo> {
        if id.trim().is_empty() {
            return Err(Error::invalid("id", "must not be empty"));
        }
        self.leader_or_wait().await?;
        match self
            .propose(ipb::command::Kind::RevokeToken(ipb::RevokeToken {
                id: id.trim().to_string(),
            }))
            .await?
        {
            Applied::Token(t) => {
                let by = crate::auth::current_principal()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                info!(target: "audit", token = %t.id, name = %t.name, %by, "token revoked");
                Ok(info_of(&t))
            }
            other => Err(unexpected(other)),
        }
    }
}
