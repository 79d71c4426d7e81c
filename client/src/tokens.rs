//! `kairos.v1.TokenService` as typed calls: bearer tokens for people, tools and
//! executors without a client certificate (admin only, on the server).
//!
//! `CreateToken` is never resent once it may have arrived (a resend would make a
//! second token, the first one's secret lost); `RevokeToken` neither (the second
//! would answer NotFound for a token that was revoked).

use kairos_proto::v1 as pb;
use pb::token_service_client::TokenServiceClient;

use crate::client::{Client, rpc};
use crate::error::Result;
use crate::retry::Safety;

impl Client {
    /// `CreateToken`: a token named `name` with `role`; the secret is in the answer
    /// only.
    pub async fn create_token(&self, name: &str, role: &str) -> Result<pb::CreateTokenResponse> {
        let request = pb::CreateTokenRequest {
            name: name.into(),
            role: role.into(),
        };
        rpc!(
            self,
            TokenServiceClient<_>,
            create_token,
            "CreateToken",
            Safety::AtMostOnce,
            request
        )
    }

    /// `ListTokens`.
    pub async fn list_tokens(&self) -> Result<pb::ListTokensResponse> {
        rpc!(
            self,
            TokenServiceClient<_>,
            list_tokens,
            "ListTokens",
            Safety::Idempotent,
            pb::ListTokensRequest {}
        )
    }

    /// `RevokeToken`.
    pub async fn revoke_token(&self, id: &str) -> Result<pb::TokenInfo> {
        rpc!(
            self,
            TokenServiceClient<_>,
            revoke_token,
            "RevokeToken",
            Safety::AtMostOnce,
            pb::RevokeTokenRequest { id: id.into() }
        )
    }
}
