//! `kairos token ...`: bearer tokens for people, tools and executors without a
//! client certificate. Admin only, on the server.
//!
//! `create` prints the secret once, on its own line in table mode, so a script can
//! take it with `| tail -1`; the group keeps only its hash and cannot show it again.

use chrono::Utc;
use kairos_proto::v1 as pb;

use super::Client;
use crate::args::TokenCommand;
use crate::output::{self, Table};

pub async fn run(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    let api = client.api();
    match command {
        TokenCommand::Create { name, role } => {
            let answer = api.create_token(&name, &role).await?;
            output::emit(client.output(), &answer, |answer| {
                let who = answer
                    .info
                    .as_ref()
                    .map(|i| format!("token {} for {} (role {})", i.id, i.name, i.role))
                    .unwrap_or_else(|| "token".to_string());
                format!(
                    "{who} created; it is shown this once and cannot be shown again:\n{}\n",
                    answer.token
                )
            })
        }
        TokenCommand::List => {
            let list = api.list_tokens().await?;
            output::emit(client.output(), &list, |list| table(&list.tokens))
        }
        TokenCommand::Revoke { id } => {
            let info = api.revoke_token(&id).await?;
            output::emit(client.output(), &info, |info| {
                format!(
                    "token {} ({}, role {}) revoked\n",
                    info.id, info.name, info.role
                )
            })
        }
    }
}

fn table(tokens: &[pb::TokenInfo]) -> String {
    if tokens.is_empty() {
        return "no tokens\n".to_string();
    }
    let now = Utc::now();
    let mut table = Table::new(&["ID", "NAME", "ROLE", "CREATED", "BY"]);
    for t in tokens {
        table.row(vec![
            t.id.clone(),
            t.name.clone(),
            t.role.clone(),
            output::relative(t.created_at.as_ref(), now),
            output::or_none(&t.created_by),
        ]);
    }
    table.render()
}
