//! The dashboard (the group at a glance) and the cluster page (schedulers,
//! executors, moving the leadership).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, State};
use axum::response::Response;
use kairos_common::access::Permission;
use kairos_common::status::ExecutionStatus;
use serde::Deserialize;

use kairos_proto::v1 as pb;
use pb::cluster_service_server::ClusterService as _;

use super::{Caller, Chrome, When, enc, forbidden, page, refused};
use crate::core::Core;

/// Executions looked at for "fires in the last hour" (newest first); beyond it the
/// counts are marked as partial.
const HOUR_SCAN_LIMIT: usize = 20_000;
/// Jobs listed under "failing now".
const FAILING_SHOWN: usize = 20;

pub struct Count {
    pub label: String,
    pub class: String,
    pub count: u64,
    pub link: String,
}

pub struct Failing {
    pub name: String,
    pub outcome: String,
    pub finished: Option<When>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    leader: String,
    term: u64,
    schedulers: usize,
    schedulers_reachable: usize,
    executors: usize,
    executors_draining: usize,
    jobs: usize,
    paused: usize,
    by_outcome: Vec<Count>,
    last_hour: Vec<Count>,
    last_hour_total: u64,
    last_hour_partial: bool,
    lateness: Option<(u64, String, String)>,
    failing: Vec<Failing>,
    failing_total: usize,
}

fn seconds_text(s: f64) -> String {
    if s.is_infinite() {
        "> 60 s".into()
    } else if s < 1.0 {
        format!("≤ {} ms", (s * 1000.0).round())
    } else {
        format!("≤ {s} s")
    }
}

pub async fn dashboard(State(core): State<Arc<Core>>, caller: Caller) -> Response {
    let status = core.cluster_status().await;
    let s = core.status();
    let jobs = core.view.all_jobs();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut failing = Vec::new();
    let mut failing_total = 0;
    let mut paused = 0;
    for entry in &jobs {
        let Some(job) = entry.record.job.as_ref() else {
            continue;
        };
        if job.paused {
            paused += 1;
        }
        let st = job.status.clone().unwrap_or_default();
        let outcome = if st.last_outcome.is_empty() {
            "never run".to_string()
        } else {
            st.last_outcome.clone()
        };
        let is_failure = st
            .last_outcome
            .parse::<ExecutionStatus>()
            .is_ok_and(ExecutionStatus::is_failure);
        if is_failure {
            failing_total += 1;
            if failing.len() < FAILING_SHOWN {
                failing.push(Failing {
                    name: job.name.clone(),
                    outcome: st.last_outcome.clone(),
                    finished: When::of_ts(&st.last_finished_at),
                });
            }
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    let by_outcome = outcomes
        .into_iter()
        .map(|(label, count)| Count {
            link: if label == "never run" {
                "jobs?outcome=none".into()
            } else {
                format!("jobs?outcome={}", enc(&label))
            },
            class: format!("s-{label}"),
            label,
            count,
        })
        .collect();

    // Fires in the last hour, by their current status.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut hour: BTreeMap<String, u64> = BTreeMap::new();
    let mut scanned = 0;
    let mut before = None;
    let mut partial = false;
    'scan: while let Ok(page) = core.view.executions_page(None, before, 500) {
        for e in &page.executions {
            scanned += 1;
            let created = e
                .created_at
                .as_ref()
                .map(crate::time::dt_from_ts)
                .unwrap_or(since);
            if created < since {
                break 'scan;
            }
            *hour.entry(e.status.clone()).or_default() += 1;
            if scanned >= HOUR_SCAN_LIMIT {
                partial = true;
                break 'scan;
            }
        }
        match page.next_after {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let last_hour_total = hour.values().sum();
    let since_param = enc(&since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let last_hour = hour
        .into_iter()
        .map(|(label, count)| Count {
            link: format!("executions?status={}&from={since_param}", enc(&label)),
            class: format!("s-{label}"),
            label,
            count,
        })
        .collect();
    let lateness = core
        .metrics
        .lateness_summary()
        .map(|(n, p50, p99)| (n, seconds_text(p50), seconds_text(p99)));
    let leader = if s.leader_id == 0 {
        "none (election under way, or no quorum)".to_string()
    } else {
        format!("scheduler {} ({})", s.leader_id, status.leader_addr)
    };
    page(Dashboard {
        chrome: caller.chrome(&core, "Dashboard", "dashboard"),
        leader,
        term: s.term,
        schedulers: status.schedulers.len(),
        schedulers_reachable: status.schedulers.iter().filter(|r| r.reachable).count(),
        executors: status.executors.len(),
        executors_draining: status.executors.iter().filter(|e| e.draining).count(),
        jobs: jobs.len(),
        paused,
        by_outcome,
        last_hour,
        last_hour_total,
        last_hour_partial: partial,
        lateness,
        failing,
        failing_total,
    })
}

pub struct SchedulerRow {
    pub id: u64,
    pub addr: String,
    pub role: String,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub lag: u64,
    pub reachable: bool,
    pub is_leader: bool,
}

pub struct ExecutorRow {
    pub id: String,
    pub link: String,
    pub tags: String,
    pub capacity: u32,
    pub running: u32,
    pub connected: Option<When>,
    pub heartbeat: Option<When>,
    pub version: String,
    pub draining: bool,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    chrome: Chrome,
    schedulers: Vec<SchedulerRow>,
    executors: Vec<ExecutorRow>,
}

pub async fn cluster(State(core): State<Arc<Core>>, caller: Caller) -> Response {
    let status = core.cluster_status().await;
    let leader_commit = status
        .schedulers
        .iter()
        .find(|r| r.id == status.leader_id)
        .map_or(0, |r| r.commit_index);
    let schedulers = status
        .schedulers
        .iter()
        .map(|r| SchedulerRow {
            id: r.id,
            addr: r.addr.clone(),
            role: r.role.clone(),
            term: r.term,
            commit: r.commit_index,
            applied: r.applied_index,
            lag: leader_commit.saturating_sub(r.applied_index),
            reachable: r.reachable,
            is_leader: r.id == status.leader_id,
        })
        .collect();
    let executors = status
        .executors
        .iter()
        .map(|e| {
            let mut tags: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tags.sort();
            ExecutorRow {
                id: e.id.clone(),
                link: format!("executions?executor={}", enc(&e.id)),
                tags: tags.join(", "),
                capacity: e.capacity,
                running: e.running,
                connected: When::of_ts(&e.connected_at),
                heartbeat: When::of_ts(&e.last_heartbeat_at),
                version: e.version.clone(),
                draining: e.draining,
            }
        })
        .collect();
    page(ClusterPage {
        chrome: caller.chrome(&core, "Cluster", "cluster"),
        schedulers,
        executors,
    })
}

#[derive(Deserialize)]
pub struct TransferForm {
    to: u64,
}

/// Moves the leadership (admin only: the HTTP layer lets any writer post).
pub async fn transfer(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Form(form): Form<TransferForm>,
) -> Response {
    if !caller.may(Permission::Admin) {
        return forbidden(&caller, &core, "admin", "cluster");
    }
    let api = crate::grpc::ClusterApi(core.clone());
    match api
        .transfer_leader(tonic::Request::new(pb::TransferLeaderRequest {
            id: form.to,
        }))
        .await
    {
        Ok(_) => caller.redirect("cluster"),
        Err(s) => refused(&caller, &core, &s, "cluster"),
    }
}
