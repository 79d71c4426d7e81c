//! `kairos cluster ...` and `kairos executors`: the scheduler group and its agents.
//!
//! Every membership command (`add-scheduler`, `remove-scheduler`,
//! `transfer-leader`) returns the group's status after the change and prints it like
//! `cluster status`, so the operator sees the result at once. Membership changes go
//! through raft on the server; this module only asks for them and shows the answer.
//!
//! Table mode shows the leader, then one row per scheduler (id order, as the server
//! sends it), then the executors; times of executors are shown relative to now
//! (`connected 3m ago`, `heartbeat 1s ago`), since that is what liveness is about.

use chrono::{DateTime, Utc};
use kairos_proto::v1 as pb;

use super::Client;
use crate::args::ClusterCommand;
use crate::output::{self, Table};

pub async fn run(client: &Client, command: ClusterCommand) -> anyhow::Result<()> {
    let api = client.api();
    let (status, note) = match command {
        ClusterCommand::Status => (api.cluster_status().await?, None),
        ClusterCommand::AddScheduler { id, addr } => (
            api.add_scheduler(id, &addr).await?,
            Some(format!("scheduler {id} ({addr}) added")),
        ),
        ClusterCommand::RemoveScheduler {
            id: Some(id),
            above: _,
            timeout: _,
        } => (
            api.remove_scheduler(id).await?,
            Some(format!("scheduler {id} removed")),
        ),
        ClusterCommand::RemoveScheduler {
            id: None,
            above,
            timeout,
        } => {
            let above = above.ok_or_else(|| anyhow::anyhow!("give an id or --above N"))?;
            remove_above(api, above, timeout).await?
        }
        ClusterCommand::TransferLeader { id } => (
            api.transfer_leader(id).await?,
            Some(format!("leadership transfer to scheduler {id} requested")),
        ),
    };
    output::emit(client.output(), &status, |status| {
        let mut text = note.map(|n| format!("{n}\n\n")).unwrap_or_default();
        text.push_str(&status_text(status, Utc::now()));
        text
    })
}

/// How long `remove-scheduler --above` waits before asking again after a refusal.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// `cluster remove-scheduler --above N`: removes the schedulers with an id above `n`,
/// highest first, one at a time (each removal is applied before the next is asked
/// for). A refusal the server may lift by itself — no live quorum for the rest, a
/// membership change in progress, no leader — is asked again until `timeout`.
async fn remove_above(
    api: &kairos_client::Client,
    n: u64,
    timeout: std::time::Duration,
) -> anyhow::Result<(pb::ClusterStatus, Option<String>)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut removed = Vec::new();
    loop {
        let status = api.cluster_status().await?;
        let mut above: Vec<u64> = status
            .schedulers
            .iter()
            .map(|s| s.id)
            .filter(|id| *id > n && !removed.contains(id))
            .collect();
        above.sort_unstable();
        let Some(&id) = above.last() else {
            let note = if removed.is_empty() {
                format!("no scheduler has an id above {n}")
            } else {
                let ids: Vec<String> = removed.iter().map(u64::to_string).collect();
                format!("removed scheduler(s) {}", ids.join(", "))
            };
            return Ok((status, Some(note)));
        };
        // An ambiguous removal is asked again like any other transient refusal: a
        // second removal of a removed node answers NotFound, which counts as removed.
        let err = match api.remove_scheduler(id).await {
            Ok(_) => {
                eprintln!("scheduler {id} removed");
                removed.push(id);
                continue;
            }
            Err(err) => err,
        };
        let (code, message) = match err.status() {
            Some(s) => (s.code(), s.message().to_string()),
            None => return Err(err.into()),
        };
        match code {
            // Already gone (a node listing itself after its removal).
            tonic::Code::NotFound => removed.push(id),
            tonic::Code::FailedPrecondition
            | tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded => {
                if tokio::time::Instant::now() + RETRY_PAUSE > deadline {
                    anyhow::bail!(
                        "scheduler {id} could not be removed within {}: {message}",
                        kairos_common::duration::format_duration(timeout),
                    );
                }
                eprintln!("scheduler {id} not removed yet ({message}); asking again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            _ => return Err(err.into()),
        }
    }
}

/// `kairos executors`.
pub async fn executors(client: &Client) -> anyhow::Result<()> {
    let response = client.api().list_executors().await?;
    output::emit(client.output(), &response, |r| {
        executors_table(&r.executors, Utc::now())
    })
}

/// `cluster status` as text: the leader line, the schedulers, the executors.
pub fn status_text(status: &pb::ClusterStatus, now: DateTime<Utc>) -> String {
    let leader = match (status.leader_id, status.leader_addr.as_str()) {
        (0, _) => "none (election in progress or no quorum)".to_string(),
        (id, "") => id.to_string(),
        (id, addr) => format!("{id} ({addr})"),
    };
    let mut text = format!("Leader: {leader}\n");
    if status.answered_by != 0 {
        text.push_str(&format!("Answered by: {}\n", status.answered_by));
    }
    text.push('\n');
    let mut table = Table::new(&[
        "ID",
        "ADDRESS",
        "ROLE",
        "TERM",
        "COMMIT",
        "APPLIED",
        "REACHABLE",
    ]);
    for s in &status.schedulers {
        table.row(vec![
            s.id.to_string(),
            output::or_none(&s.addr),
            output::or_none(&s.role),
            s.term.to_string(),
            s.commit_index.to_string(),
            s.applied_index.to_string(),
            if s.reachable { "yes" } else { "no" }.to_string(),
        ]);
    }
    text.push_str(&table.render());
    text.push('\n');
    if status.executors.is_empty() {
        text.push_str("No executors connected.\n");
    } else {
        text.push_str(&executors_table(&status.executors, now));
    }
    text
}

/// The executors as a table.
pub fn executors_table(executors: &[pb::ExecutorStatus], now: DateTime<Utc>) -> String {
    let mut table = Table::new(&[
        "ID",
        "TAGS",
        "RUNNING",
        "CAPACITY",
        "SCHEDULER",
        "CONNECTED",
        "HEARTBEAT",
        "VERSION",
    ]);
    for e in executors {
        table.row(vec![
            e.id.clone(),
            output::pairs(&e.tags),
            e.running.to_string(),
            e.capacity.to_string(),
            if e.scheduler_id == 0 {
                output::NONE.to_string()
            } else {
                e.scheduler_id.to_string()
            },
            output::relative(e.connected_at.as_ref(), now),
            output::relative(e.last_heartbeat_at.as_ref(), now),
            output::or_none(&e.version),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn status_lists_schedulers_and_executors() -> anyhow::Result<()> {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")?.with_timezone(&Utc);
        let status = pb::ClusterStatus {
            leader_id: 1,
            leader_addr: "127.0.0.1:7070".into(),
            schedulers: vec![pb::SchedulerStatus {
                id: 1,
                addr: "127.0.0.1:7070".into(),
                role: "leader".into(),
                term: 3,
                commit_index: 120,
                applied_index: 120,
                reachable: true,
                log_first_index: 1,
            }],
            executors: vec![pb::ExecutorStatus {
                id: "local".into(),
                tags: HashMap::from([("zone".into(), "a".into()), ("role".into(), "web".into())]),
                capacity: 16,
                last_heartbeat_at: Some(output::timestamp(now - chrono::Duration::seconds(2))),
                scheduler_id: 1,
                ..Default::default()
            }],
            answered_by: 1,
        };
        let text = status_text(&status, now);
        assert!(text.starts_with("Leader: 1 (127.0.0.1:7070)\n"), "{text}");
        assert!(text.contains("leader   3"), "{text}");
        assert!(text.contains("role=web,zone=a"), "tags sorted: {text}");
        assert!(text.contains("2s ago"), "{text}");
        Ok(())
    }
}
