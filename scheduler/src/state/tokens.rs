//! Bearer tokens: created with a role and the SHA-256 of their secret, revoked by
//! id. The secret never reaches the log; the state holds only its hash.

use kairos_proto::internal as ipb;
use prost::Message as _;

use super::keys;
use super::machine::{Applied, StateMachine};
use crate::Error;
use crate::storage::{Batch, Cf, StorageError};

impl StateMachine {
    pub(super) fn apply_put_token(
        &mut self,
        batch: &mut Batch,
        c: ipb::PutToken,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(token) = c.token else {
            return Ok(Err(Error::invalid("token", "missing")));
        };
        if token.id.is_empty() || token.secret_sha256.len() != 32 {
            return Ok(Err(Error::invalid(
                "token",
                "needs an id and a 32-byte SHA-256 of its secret",
            )));
        }
        if self.tokens.contains_key(&token.id) {
            return Ok(Err(Error::AlreadyExists(format!("token {}", token.id))));
        }
        batch.put(Cf::State, keys::token(&token.id), token.encode_to_vec());
        self.tokens.insert(token.id.clone(), token.clone());
        self.changes.tokens = true;
        Ok(Ok(Applied::Token(Box::new(token))))
    }

    pub(super) fn apply_revoke_token(
        &mut self,
        batch: &mut Batch,
        c: ipb::RevokeToken,
    ) -> Result<crate::Result<Applied>, StorageError> {
        let Some(token) = self.tokens.remove(&c.id) else {
            return Ok(Err(Error::NotFound(format!("token {}", c.id))));
        };
        batch.delete(Cf::State, keys::token(&c.id));
        self.changes.tokens = true;
        Ok(Ok(Applied::Token(Box::new(token))))
    }
}
