//! `kairos.v1.TokenService`: decode, call [`Core`], encode (admin only; the layer
//! checks).

use std::sync::Arc;

use kairos_proto::v1 as pb;
use pb::token_service_client::TokenServiceClient;
use tonic::{Request, Response, Status};

use super::status::IntoStatus as _;
use crate::core::Core;
use crate::peers::is_forwarded;

#[derive(Debug, Clone)]
pub struct TokenApi(pub Arc<Core>);

#[tonic::async_trait]
impl pb::token_service_server::TokenService for TokenApi {
    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.create_token(&req.name, &req.role).await {
            Ok((info, token)) => Ok(Response::new(pb::CreateTokenResponse {
                info: Some(info),
                token,
            })),
            Err(e) => {
                self.0
                    .to_leader_at_most_once(e, forwarded, req, |ch, r| async move {
                        TokenServiceClient::new(ch).create_token(r).await
                    })
                    .await
            }
        }
    }

    async fn list_tokens(
        &self,
        _req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let tokens = self.0.list_tokens().await.or_status()?;
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.revoke_token(&req.id).await {
            Ok(info) => Ok(Response::new(info)),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        TokenServiceClient::new(ch).revoke_token(r).await
                    })
                    .await
            }
        }
    }
}
