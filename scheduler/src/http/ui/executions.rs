//! Executions: the list (filtered by job, status, trigger, executor and time,
//! paged on the server), an execution's page with its whole stored output, the
//! output as a file, its live output as server-sent events (the same stream as
//! `TailOutput`), and cancel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use kairos_common::access::Permission;
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use pb::execution_service_server::ExecutionService as _;
use serde::Deserialize;

use super::{
    Caller, Chrome, When, enc, forbidden, human_duration, message, page, page_as, refused,
};
use crate::core::Core;

/// Executions per page.
const PAGE_SIZE: usize = 50;
/// Most executions looked at for one page of a filtered list; past it the page
/// says it stopped looking.
const SCAN_LIMIT: usize = 50_000;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    job: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    executor: String,
    /// Scheduled at or after (RFC 3339 or `2026-12-01T00:00`, UTC).
    #[serde(default)]
    from: String,
    /// Scheduled at or before.
    #[serde(default)]
    to: String,
    /// Executions older than this id (the next page).
    #[serde(default)]
    before: String,
}

pub struct Row {
    pub id: String,
    pub job: String,
    pub scheduled: Option<When>,
    pub trigger: String,
    pub attempt: u32,
    pub executor: String,
    pub status: String,
    pub duration: String,
}

fn row(e: &pb::Execution) -> Row {
    Row {
        id: e.id.clone(),
        job: e.job.clone(),
        scheduled: When::of_ts(&e.scheduled_at),
        trigger: e.trigger.clone(),
        attempt: e.attempt,
        executor: e.executor.clone(),
        status: e.status.clone(),
        duration: duration(e),
    }
}

fn duration(e: &pb::Execution) -> String {
    match (&e.started_at, &e.finished_at) {
        (Some(s), Some(f)) => {
            human_duration(crate::time::ms_from_ts(f) - crate::time::ms_from_ts(s))
        }
        _ => String::new(),
    }
}

#[derive(Template)]
#[template(path = "executions.html")]
struct ListPage {
    chrome: Chrome,
    query: ListQuery,
    error: String,
    rows: Vec<Row>,
    next_link: String,
    stopped_early: bool,
    statuses: Vec<(&'static str, bool)>,
    triggers: Vec<(&'static str, bool)>,
}

/// An optional time filter: empty is none.
fn time_filter(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        super::instant(field, text).map(Some)
    }
}

pub async fn list(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Response {
    let statuses = [
        "",
        "pending",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "lost",
        "cancelled",
        "missed",
        "no_target",
        "skipped_overlap",
        "skipped_paused",
    ]
    .into_iter()
    .map(|s| (s, s == q.status))
    .collect();
    let triggers = [
        "",
        "schedule",
        "manual",
        "retry",
        "catchup",
        "dependency",
        "backfill",
    ]
    .into_iter()
    .map(|t| (t, t == q.trigger))
    .collect();
    let mut view = ListPage {
        chrome: caller.chrome(&core, "Executions", "executions"),
        query: q.clone(),
        error: String::new(),
        rows: Vec::new(),
        next_link: String::new(),
        stopped_early: false,
        statuses,
        triggers,
    };
    let range = time_filter("from", &q.from).and_then(|f| Ok((f, time_filter("to", &q.to)?)));
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => {
            view.error = e;
            return page_as(StatusCode::BAD_REQUEST, view);
        }
    };
    let job = q.job.trim();
    if !job.is_empty()
        && let Err(e) = kairos_common::job::JobName::parse(job)
    {
        view.error = format!("job: {e}");
        return page_as(StatusCode::BAD_REQUEST, view);
    }
    let mut before: Option<u64> = q.before.parse().ok();
    let mut matched: Vec<pb::Execution> = Vec::with_capacity(PAGE_SIZE + 1);
    let mut scanned = 0;
    'scan: loop {
        let chunk = match core
            .view
            .executions_page((!job.is_empty()).then_some(job), before, 500)
        {
            Ok(c) => c,
            Err(e) => {
                view.error = e.to_string();
                break;
            }
        };
        for e in chunk.executions {
            scanned += 1;
            before = e.id.parse().ok();
            let at = e.scheduled_at.as_ref().map(crate::time::dt_from_ts);
            let keep = (q.status.is_empty() || e.status == q.status)
                && (q.trigger.is_empty() || e.trigger == q.trigger)
                && (q.executor.is_empty() || e.executor == q.executor)
                && from.is_none_or(|f| at.is_some_and(|a| a >= f))
                && to.is_none_or(|t| at.is_some_and(|a| a <= t));
            if keep {
                matched.push(e);
                if matched.len() > PAGE_SIZE {
                    break 'scan;
                }
            }
            if scanned >= SCAN_LIMIT {
                view.stopped_early = true;
                break 'scan;
            }
        }
        if chunk.next_after.is_none() {
            break;
        }
    }
    let more = matched.len() > PAGE_SIZE || view.stopped_early;
    matched.truncate(PAGE_SIZE);
    let continue_from = if view.stopped_early {
        before.map(|b| b.to_string())
    } else {
        matched.last().map(|e| e.id.clone())
    };
    if more && let Some(last) = continue_from {
        let mut parts = Vec::new();
        for (k, v) in [
            ("job", &q.job),
            ("status", &q.status),
            ("trigger", &q.trigger),
            ("executor", &q.executor),
            ("from", &q.from),
            ("to", &q.to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", enc(v)));
            }
        }
        parts.push(format!("before={last}"));
        view.next_link = format!("executions?{}", parts.join("&"));
    }
    view.rows = matched.iter().map(row).collect();
    page(view)
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    e: Row,
    live: bool,
    output: String,
    truncated: bool,
    error: String,
    exit_code: String,
    late_status: String,
    previous_attempt: String,
    parent_execution: String,
    group: String,
    group_status: String,
    created: Option<When>,
    started: Option<When>,
    finished: Option<When>,
    cancellable: bool,
}

fn load(core: &Core, caller: &Caller, id: &str) -> Result<pb::Execution, Box<Response>> {
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|n| core.view.execution(n).ok().flatten());
    found.ok_or_else(|| {
        Box::new(message(
            caller,
            core,
            StatusCode::NOT_FOUND,
            "No such execution",
            format!("there is no execution {id:?} (or it was dropped from the history)"),
            "executions",
        ))
    })
}

pub async fn page_handler(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let e = match load(&core, &caller, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let status = ExecutionStatus::of(&e);
    let live = status.is_some_and(|s| !s.is_final());
    page(ExecutionPage {
        chrome: caller.chrome(&core, format!("Execution {id}"), "executions"),
        live,
        output: e.output.clone(),
        truncated: e.output_truncated,
        error: e.error.clone(),
        exit_code: e.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        late_status: e.late_status.clone(),
        previous_attempt: e.previous_attempt.clone(),
        parent_execution: e.parent_execution.clone(),
        group: e.group.clone(),
        group_status: e.group_status.clone(),
        created: When::of_ts(&e.created_at),
        started: When::of_ts(&e.started_at),
        finished: When::of_ts(&e.finished_at),
        cancellable: live && caller.may(Permission::Write),
        e: row(&e),
    })
}

/// The stored output as a plain-text file.
pub async fn raw(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    match load(&core, &caller, &id) {
        Ok(e) => {
            let mut body = String::new();
            if e.output_truncated {
                body.push_str("[kairos: the output was longer than the stored tail; its beginning was dropped]\n");
            }
            body.push_str(&e.output);
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}-{}.txt\"", e.job, e.id),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(r) => *r,
    }
}

/// Live output as server-sent events: `output` events carry JSON strings of text,
/// an `end` event closes the stream when the execution is over. It is the
/// `TailOutput` stream itself (relayed from the leader when this node follows).
pub async fn live(
    State(core): State<Arc<Core>>,
    caller: Caller,
    axum::Extension(shutdown): axum::Extension<tokio_util::sync::CancellationToken>,
    Path(id): Path<String>,
) -> Response {
    let api = crate::grpc::ExecutionApi(core.clone(), shutdown);
    let upstream = api
        .tail_output(tonic::Request::new(pb::TailOutputRequest {
            id: id.clone(),
            follow: true,
        }))
        .await;
    let stream = match upstream {
        Ok(s) => s.into_inner(),
        Err(s) => return refused(&caller, &core, &s, &format!("executions/{id}")),
    };
    let events = stream
        .map(|chunk| {
            let event = match chunk {
                Ok(c) => Event::default()
                    .event("output")
                    .data(serde_json::Value::String(c.data).to_string()),
                Err(s) => Event::default().event("output").data(
                    serde_json::Value::String(format!("\n[kairos: {}]\n", s.message())).to_string(),
                ),
            };
            Ok::<Event, Infallible>(event)
        })
        .chain(futures::stream::once(async {
            Ok(Event::default().event("end").data("{}"))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

pub async fn cancel(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let back = format!("executions/{id}");
    if !caller.may(Permission::Write) {
        return forbidden(&caller, &core, "write", &back);
    }
    match crate::grpc::ExecutionApi(core.clone(), tokio_util::sync::CancellationToken::new())
        .cancel_execution(tonic::Request::new(pb::CancelExecutionRequest {
            id: id.clone(),
        }))
        .await
    {
        Ok(_) => caller.redirect(&back),
        Err(s) => refused(&caller, &core, &s, &back),
    }
}
