//! Jobs: the list (paged on the server, searched and filtered, bulk actions), a
//! job's page (spec, schedule in words, next instants, history, durations, parent
//! and children, actions, backfill) and the editor (YAML or JSON, the server's
//! field errors next to their line, a live preview of the schedule, a diff before
//! saving, optimistic concurrency).
//!
//! Every action calls the gRPC handler of the same method ([`crate::grpc::JobApi`]),
//! so a page does exactly what the API does, forwarded to the leader when needed.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::DateTime;
use kairos_common::access::Permission;
use kairos_common::selector::Selector;
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use pb::job_service_server::JobService as _;
use serde::Deserialize;

use super::{
    Caller, Chrome, When, enc, forbidden, human_duration, message, page, page_as, refused, words,
};
use crate::core::Core;
use crate::state::JobEntry;

/// Jobs per page of the list.
pub const PAGE_SIZE: usize = 50;
/// Outcomes shown per job in the list's strip.
const STRIP: usize = 20;
/// Executions per page of a job's history.
const HISTORY_PAGE: u32 = 50;
/// Runs drawn in the duration chart.
const CHART_RUNS: usize = 40;

// ---- the list ----

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    /// Part of the name.
    #[serde(default)]
    q: String,
    /// A selector over the jobs' metadata (`team=billing,tier!=low`).
    #[serde(default)]
    filter: String,
    /// Last outcome: a status word, `failure` (any failure) or `none` (never run).
    #[serde(default)]
    outcome: String,
    /// `yes` or `no`.
    #[serde(default)]
    paused: String,
    /// Part of the job's executor selector.
    #[serde(default)]
    target: String,
    /// `name` (default), `next` or `outcome`.
    #[serde(default)]
    sort: String,
    /// Name order: the last name of the previous page.
    #[serde(default)]
    after: String,
    /// Other orders: the page number, from 1.
    #[serde(default)]
    page: Option<usize>,
}

/// The list's filters, checked once.
struct Filters {
    q: String,
    selector: Option<Selector>,
    outcome: String,
    paused: Option<bool>,
    target: String,
}

impl Filters {
    fn parse(q: &ListQuery) -> Result<Filters, String> {
        let selector = if q.filter.trim().is_empty() {
            None
        } else {
            Some(Selector::parse(q.filter.trim()).map_err(|e| format!("filter: {e}"))?)
        };
        let paused = match q.paused.as_str() {
            "" => None,
            "yes" => Some(true),
            "no" => Some(false),
            other => return Err(format!("paused: {other:?} is not yes or no")),
        };
        Ok(Filters {
            q: q.q.trim().to_lowercase(),
            selector,
            outcome: q.outcome.trim().to_string(),
            paused,
            target: q.target.trim().to_string(),
        })
    }

    fn is_empty(&self) -> bool {
        self.q.is_empty()
            && self.selector.is_none()
            && self.outcome.is_empty()
            && self.paused.is_none()
            && self.target.is_empty()
    }

    fn matches(&self, e: &JobEntry) -> bool {
        let Some(job) = e.record.job.as_ref() else {
            return false;
        };
        if !self.q.is_empty() && !job.name.contains(&self.q) {
            return false;
        }
        if let Some(s) = &self.selector
            && !s.matches(&e.spec.metadata)
        {
            return false;
        }
        if let Some(p) = self.paused
            && job.paused != p
        {
            return false;
        }
        if !self.target.is_empty() && !e.spec.target.selector.to_string().contains(&self.target) {
            return false;
        }
        let last = job
            .status
            .as_ref()
            .map(|s| s.last_outcome.as_str())
            .unwrap_or_default();
        match self.outcome.as_str() {
            "" => true,
            "none" => last.is_empty(),
            "failure" => last
                .parse::<ExecutionStatus>()
                .is_ok_and(ExecutionStatus::is_failure),
            word => last == word,
        }
    }
}

/// The jobs matching `f` in name order after `after`, at most `limit + 1` (one
/// more tells whether a next page exists), and how many match in all. Unfiltered,
/// the count is the index's size and the walk stops as soon as the page is full:
/// the first pages of 100 000 jobs cost as much as those of 10. Filtered, one walk
/// over every job counts the matches and keeps the page (no job is decoded).
fn page_by_name(
    core: &Core,
    f: &Filters,
    after: Option<&str>,
    limit: usize,
) -> (Vec<Arc<JobEntry>>, usize) {
    if f.is_empty() {
        let page = core.view.jobs_in_order(after).take(limit + 1).collect();
        return (page, core.view.job_count());
    }
    let mut page = Vec::with_capacity(limit + 1);
    let mut total = 0;
    for e in core.view.jobs_in_order(None).filter(|e| f.matches(e)) {
        total += 1;
        if page.len() <= limit && after.is_none_or(|a| e.name() > a) {
            page.push(e);
        }
    }
    (page, total)
}

pub struct JobRow {
    pub name: String,
    pub schedule: String,
    pub paused: bool,
    pub next: Option<When>,
    pub outcome: String,
    pub strip: Vec<StripCell>,
    pub running: u32,
}

pub struct StripCell {
    pub status: String,
    pub title: String,
    pub link: String,
}

fn row(core: &Core, e: &JobEntry) -> JobRow {
    let job = core.decorate(e.record.job.clone().unwrap_or_default());
    let st = job.status.clone().unwrap_or_default();
    let mut strip: Vec<StripCell> = core
        .view
        .executions_page(Some(&job.name), None, STRIP)
        .map(|p| p.executions)
        .unwrap_or_default()
        .into_iter()
        .map(|x| StripCell {
            title: format!(
                "{} · {} · {}",
                x.status,
                x.trigger,
                When::of_ts(&x.scheduled_at)
                    .map(|w| w.text)
                    .unwrap_or_default()
            ),
            link: format!("executions/{}", x.id),
            status: x.status,
        })
        .collect();
    strip.reverse();
    JobRow {
        schedule: job.schedule.clone(),
        paused: job.paused,
        next: When::of_ts(&st.next_fire_at),
        outcome: st.last_outcome,
        strip,
        running: st.running,
        name: job.name,
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    chrome: Chrome,
    query: ListQuery,
    error: String,
    rows: Vec<JobRow>,
    total: usize,
    next_link: String,
    prev_link: String,
    first_link: String,
    /// The filters as hidden form fields for "all N matching".
    filter_fields: Vec<(String, String)>,
    sorts: Vec<(&'static str, &'static str, bool)>,
    outcomes: Vec<(&'static str, bool)>,
    position: String,
}

fn query_string(q: &ListQuery, extra: &[(&str, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in [
        ("q", &q.q),
        ("filter", &q.filter),
        ("outcome", &q.outcome),
        ("paused", &q.paused),
        ("target", &q.target),
        ("sort", &q.sort),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", enc(v)));
        }
    }
    for (k, v) in extra {
        parts.push(format!("{k}={}", enc(v)));
    }
    if parts.is_empty() {
        "jobs".into()
    } else {
        format!("jobs?{}", parts.join("&"))
    }
}

pub async fn list(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Response {
    let started = std::time::Instant::now();
    let chrome = caller.chrome(&core, "Jobs", "jobs");
    let sorts = vec![
        ("name", "name", q.sort.is_empty() || q.sort == "name"),
        ("next", "next fire", q.sort == "next"),
        ("outcome", "last outcome", q.sort == "outcome"),
    ];
    let outcomes = [
        "",
        "succeeded",
        "failure",
        "failed",
        "timed_out",
        "lost",
        "missed",
        "no_target",
        "skipped_overlap",
        "cancelled",
        "none",
    ]
    .into_iter()
    .map(|o| (o, o == q.outcome))
    .collect();
    let f = match Filters::parse(&q) {
        Ok(f) => f,
        Err(error) => {
            return page_as(
                StatusCode::BAD_REQUEST,
                JobsPage {
                    chrome,
                    query: q.clone(),
                    error,
                    rows: Vec::new(),
                    total: 0,
                    next_link: String::new(),
                    prev_link: String::new(),
                    first_link: String::new(),
                    filter_fields: Vec::new(),
                    sorts,
                    outcomes,
                    position: String::new(),
                },
            );
        }
    };
    let (entries, total, next_link, prev_link, position) = match q.sort.as_str() {
        "" | "name" => {
            let after = (!q.after.is_empty()).then_some(q.after.as_str());
            let (mut entries, total) = page_by_name(&core, &f, after, PAGE_SIZE);
            let more = entries.len() > PAGE_SIZE;
            entries.truncate(PAGE_SIZE);
            let next = match (more, entries.last()) {
                (true, Some(last)) => query_string(&q, &[("after", last.name().to_string())]),
                _ => String::new(),
            };
            let position = match (entries.first(), entries.last()) {
                (Some(a), Some(b)) => format!("{} … {}", a.name(), b.name()),
                _ => String::new(),
            };
            (entries, total, next, String::new(), position)
        }
        sort @ ("next" | "outcome") => {
            // Any other order needs every match: sorted here, then a page cut out.
            let mut all: Vec<(String, Arc<JobEntry>)> = Vec::new();
            for e in core.view.jobs_in_order(None).filter(|e| f.matches(e)) {
                let key = if sort == "next" {
                    core.decorate(e.record.job.clone().unwrap_or_default())
                        .status
                        .and_then(|s| s.next_fire_at)
                        .map_or("~".to_string(), |t| {
                            crate::time::dt_from_ts(&t).to_rfc3339()
                        })
                } else {
                    e.record
                        .job
                        .as_ref()
                        .and_then(|j| j.status.as_ref())
                        .map(|s| s.last_outcome.clone())
                        .unwrap_or_default()
                };
                all.push((format!("{key}\u{0}{}", e.name()), e));
            }
            all.sort_by(|a, b| a.0.cmp(&b.0));
            let number = q.page.unwrap_or(1).max(1);
            let start = (number - 1) * PAGE_SIZE;
            let total = all.len();
            let pages = total.div_ceil(PAGE_SIZE).max(1);
            let entries: Vec<Arc<JobEntry>> = all
                .into_iter()
                .skip(start)
                .take(PAGE_SIZE)
                .map(|(_, e)| e)
                .collect();
            let next = if number < pages {
                query_string(&q, &[("page", (number + 1).to_string())])
            } else {
                String::new()
            };
            let prev = if number > 1 {
                query_string(&q, &[("page", (number - 1).to_string())])
            } else {
                String::new()
            };
            (
                entries,
                total,
                next,
                prev,
                format!("page {number} of {pages}"),
            )
        }
        other => {
            return message(
                &caller,
                &core,
                StatusCode::BAD_REQUEST,
                "Unknown order",
                format!("sort: {other:?} is not name, next or outcome"),
                "jobs",
            );
        }
    };
    let rows: Vec<JobRow> = entries.iter().map(|e| row(&core, e)).collect();
    let first_link = if q.after.is_empty() && q.page.unwrap_or(1) <= 1 {
        String::new()
    } else {
        query_string(&q, &[])
    };
    let filter_fields = [
        ("q", &q.q),
        ("filter", &q.filter),
        ("outcome", &q.outcome),
        ("paused", &q.paused),
        ("target", &q.target),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let response = page(JobsPage {
        chrome,
        query: q,
        error: String::new(),
        rows,
        total,
        next_link,
        prev_link,
        first_link,
        filter_fields,
        sorts,
        outcomes,
        position,
    });
    tracing::debug!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "jobs page rendered"
    );
    response
}

// ---- bulk actions ----

/// The pairs of an `application/x-www-form-urlencoded` body, repeated keys kept
/// (checkboxes).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::http::dkron::percent_decode(k),
                crate::http::dkron::percent_decode(v),
            )
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

pub struct BulkResult {
    pub name: String,
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    chrome: Chrome,
    action: String,
    results: Vec<BulkResult>,
    failed: usize,
}

/// Most jobs one bulk action touches.
const BULK_MAX: usize = 10_000;

pub async fn bulk(State(core): State<Arc<Core>>, caller: Caller, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let action = field(&pairs, "action").to_string();
    if !matches!(action.as_str(), "run" | "pause" | "resume" | "delete") {
        return message(
            &caller,
            &core,
            StatusCode::BAD_REQUEST,
            "Unknown action",
            format!("action: {action:?} is not run, pause, resume or delete"),
            "jobs",
        );
    }
    let names: Vec<String> = if field(&pairs, "scope") == "all" {
        let q = ListQuery {
            q: field(&pairs, "q").into(),
            filter: field(&pairs, "filter").into(),
            outcome: field(&pairs, "outcome").into(),
            paused: field(&pairs, "paused").into(),
            target: field(&pairs, "target").into(),
            ..Default::default()
        };
        let f = match Filters::parse(&q) {
            Ok(f) => f,
            Err(e) => {
                return message(
                    &caller,
                    &core,
                    StatusCode::BAD_REQUEST,
                    "Bad filter",
                    e,
                    "jobs",
                );
            }
        };
        let (matching, total) = page_by_name(&core, &f, None, BULK_MAX);
        let confirmed: Option<usize> = field(&pairs, "confirm").trim().parse().ok();
        if confirmed != Some(total) || total > BULK_MAX {
            return message(
                &caller,
                &core,
                StatusCode::CONFLICT,
                "Count not confirmed",
                format!(
                    "{total} jobs match now; type that number to {action} all of them (at most {BULK_MAX} at once)"
                ),
                &query_string(&q, &[]),
            );
        }
        matching.iter().map(|e| e.name().to_string()).collect()
    } else {
        pairs
            .iter()
            .filter(|(k, _)| k == "job")
            .map(|(_, v)| v.clone())
            .collect()
    };
    if names.is_empty() {
        return message(
            &caller,
            &core,
            StatusCode::BAD_REQUEST,
            "Nothing selected",
            "select jobs first, or choose all matching",
            "jobs",
        );
    }
    let api = crate::grpc::JobApi(core.clone());
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let outcome = match action.as_str() {
            "run" => api
                .run_job(tonic::Request::new(pb::RunJobRequest {
                    name: name.clone(),
                }))
                .await
                .map(|r| {
                    let r = r.into_inner();
                    if r.queued {
                        "queued behind the running execution".to_string()
                    } else {
                        r.execution
                            .map(|e| format!("execution {} {}", e.id, e.status))
                            .unwrap_or_else(|| "started".into())
                    }
                }),
            "pause" => api
                .pause_job(tonic::Request::new(pb::PauseJobRequest {
                    name: name.clone(),
                    reason: "paused from the web UI (bulk)".into(),
                }))
                .await
                .map(|_| "paused".to_string()),
            "resume" => api
                .resume_job(tonic::Request::new(pb::ResumeJobRequest {
                    name: name.clone(),
                }))
                .await
                .map(|_| "resumed".to_string()),
            _ => api
                .delete_job(tonic::Request::new(pb::DeleteJobRequest {
                    name: name.clone(),
                    cascade: false,
                }))
                .await
                .map(|_| "deleted".to_string()),
        };
        results.push(match outcome {
            Ok(text) => BulkResult {
                name,
                ok: true,
                text,
            },
            Err(s) => BulkResult {
                name,
                ok: false,
                text: s.message().to_string(),
            },
        });
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    page(BulkPage {
        chrome: caller.chrome(&core, "Bulk action", "jobs"),
        action,
        results,
        failed,
    })
}

// ---- a job's page ----

/// One instant of a job's history: its executions (attempts, and one per
/// executor for a fan-out), newest first, and the instant's outcome.
pub struct HistoryRow {
    pub scheduled: Option<When>,
    pub trigger: String,
    pub runs: Vec<HistoryRun>,
    pub outcome: String,
    pub duration: String,
    pub error: String,
}

pub struct HistoryRun {
    pub id: String,
    pub attempt: u32,
    pub executor: String,
    pub status: String,
}

/// The executions of a page of history (newest first) as one row per instant:
/// retries and fan-out runs of an instant share its scheduled time. The outcome is
/// the fan-out group's when there is one, else the newest attempt's.
fn by_instant(executions: &[pb::Execution]) -> Vec<HistoryRow> {
    let mut rows: Vec<(Option<i64>, HistoryRow)> = Vec::new();
    for e in executions {
        let at = e.scheduled_at.as_ref().map(crate::time::ms_from_ts);
        let run = HistoryRun {
            id: e.id.clone(),
            attempt: e.attempt,
            executor: e.executor.clone(),
            status: e.status.clone(),
        };
        // Manual runs each have an instant of their own ("now"); keep them apart.
        let joins = e.trigger != "manual";
        match rows
            .iter_mut()
            .find(|(t, r)| joins && *t == at && r.trigger != "manual")
        {
            Some((_, row)) => row.runs.push(run),
            None => rows.push((
                at,
                HistoryRow {
                    scheduled: When::of_ts(&e.scheduled_at),
                    trigger: e.trigger.clone(),
                    outcome: if e.group_status.is_empty() {
                        e.status.clone()
                    } else {
                        e.group_status.clone()
                    },
                    duration: duration_ms(e).map(human_duration).unwrap_or_default(),
                    error: e.error.clone(),
                    runs: vec![run],
                },
            )),
        }
    }
    rows.into_iter().map(|(_, r)| r).collect()
}

pub struct Relative {
    pub name: String,
    pub outcome: String,
}

pub struct BackfillRow {
    pub id: u64,
    pub next: When,
    pub to: When,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    name: String,
    zone: String,
    words: String,
    description: String,
    paused: bool,
    paused_reason: String,
    version: u64,
    spec_yaml: String,
    next: Vec<When>,
    next_error: String,
    last_outcome: String,
    running: u32,
    pending_retries: u32,
    history: Vec<HistoryRow>,
    older_link: String,
    chart_svg: String,
    parent: Option<Relative>,
    parent_on: String,
    children: Vec<Relative>,
    backfills: Vec<BackfillRow>,
    backfill_preview: Vec<When>,
    backfill_from: String,
    backfill_to: String,
    notice: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    /// History: executions older than this id.
    #[serde(default)]
    before: String,
    #[serde(default)]
    notice: String,
}

fn duration_ms(e: &pb::Execution) -> Option<i64> {
    let start = e.started_at.as_ref().map(crate::time::ms_from_ts)?;
    let end = e.finished_at.as_ref().map(crate::time::ms_from_ts)?;
    Some(end - start)
}

/// The last runs' durations as bars (newest on the right), coloured by outcome.
fn chart(executions: &[pb::Execution]) -> String {
    let runs: Vec<(&pb::Execution, i64)> = executions
        .iter()
        .filter_map(|e| duration_ms(e).map(|d| (e, d)))
        .take(CHART_RUNS)
        .collect();
    if runs.is_empty() {
        return String::new();
    }
    let max = runs.iter().map(|(_, d)| *d).max().unwrap_or(1).max(1) as f64;
    let width = 1000.0 / CHART_RUNS as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 1000 120\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"durations of the last {} runs, longest {}\">",
        runs.len(),
        human_duration(max as i64)
    );
    for (i, (e, d)) in runs.iter().rev().enumerate() {
        let h = ((*d as f64 / max) * 110.0).max(2.0);
        let class = match ExecutionStatus::of(e) {
            Some(ExecutionStatus::Succeeded) => "ok",
            Some(s) if s.is_failure() => "bad",
            _ => "other",
        };
        svg.push_str(&format!(
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>execution {}: {} ({})</title></rect>",
            i as f64 * width + 1.0,
            120.0 - h,
            width - 2.0,
            e.id,
            human_duration(*d),
            e.status
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn last_outcome_of(core: &Core, name: &str) -> String {
    core.view
        .job(name)
        .and_then(|e| {
            e.record
                .job
                .as_ref()?
                .status
                .as_ref()
                .map(|s| s.last_outcome.clone())
        })
        .unwrap_or_default()
}

async fn job_page(
    core: &Arc<Core>,
    caller: &Caller,
    name: &str,
    q: &JobQuery,
    backfill: Option<(Vec<When>, String, String)>,
) -> Response {
    let job = match core.view.job(name) {
        Some(e) => core.decorate(e.record.job.clone().unwrap_or_default()),
        None => {
            return message(
                caller,
                core,
                StatusCode::NOT_FOUND,
                "No such job",
                format!("there is no job {name:?}"),
                "jobs",
            );
        }
    };
    let st = job.status.clone().unwrap_or_default();
    let zone = if job.timezone.is_empty() {
        "UTC".to_string()
    } else {
        job.timezone.clone()
    };
    let (next, next_error) = match core
        .preview(
            Some(pb::preview_schedule_request::Subject::Job(job.clone())),
            None,
            None,
            10,
        )
        .await
    {
        Ok((instants, _)) => (instants.into_iter().map(When::of).collect(), String::new()),
        Err(e) => (Vec::new(), e.to_string()),
    };
    let (executions, next_token) = core
        .list_executions_local(name, HISTORY_PAGE, &q.before)
        .unwrap_or_default();
    let history = by_instant(&executions);
    let older_link = if next_token.is_empty() {
        String::new()
    } else {
        format!("jobs/{name}?before={}", enc(&next_token))
    };
    let parent = (!job.parent.is_empty()).then(|| Relative {
        outcome: last_outcome_of(core, &job.parent),
        name: job.parent.clone(),
    });
    let mut children: Vec<Relative> = core
        .view
        .all_jobs()
        .iter()
        .filter(|e| {
            e.spec
                .parent
                .as_ref()
                .is_some_and(|p| p.name.as_str() == name)
        })
        .map(|e| Relative {
            name: e.name().to_string(),
            outcome: last_outcome_of(core, e.name()),
        })
        .collect();
    children.sort_by(|a, b| a.name.cmp(&b.name));
    let backfills = core
        .view
        .backfills()
        .into_iter()
        .filter(|b| b.job == name)
        .filter_map(|b| {
            Some(BackfillRow {
                id: b.id,
                next: When::of(DateTime::from_timestamp_millis(b.cursor_ms)?),
                to: When::of(DateTime::from_timestamp_millis(b.to_ms)?),
            })
        })
        .collect();
    // The definition as written: what the page shows above (version, times,
    // status) left out.
    let mut spec = job.clone();
    spec.status = None;
    spec.version = 0;
    spec.created_at = None;
    spec.updated_at = None;
    let spec_yaml = kairos_common::job::to_yaml(&spec).unwrap_or_else(|e| e);
    let (backfill_preview, backfill_from, backfill_to) = backfill.unwrap_or_default();
    page(JobPage {
        chrome: caller.chrome(core, name, "jobs"),
        words: words::describe(&job.schedule, &job.timezone),
        zone,
        description: job.description.clone(),
        paused: job.paused,
        paused_reason: st.paused_reason.clone(),
        version: job.version,
        spec_yaml,
        next,
        next_error,
        last_outcome: st.last_outcome.clone(),
        running: st.running,
        pending_retries: st.pending_retries,
        chart_svg: chart(&executions),
        history,
        older_link,
        parent,
        parent_on: job.parent_on.clone(),
        children,
        backfills,
        backfill_preview,
        backfill_from,
        backfill_to,
        notice: q.notice.clone(),
        name: name.to_string(),
    })
}

pub async fn page_handler(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<JobQuery>,
) -> Response {
    job_page(&core, &caller, &name, &q, None).await
}

/// After an action on a job: back to its page, saying what happened.
fn done(caller: &Caller, name: &str, notice: &str) -> Response {
    caller.redirect(&format!("jobs/{name}?notice={}", enc(notice)))
}

fn needs_write(caller: &Caller, core: &Core, back: &str) -> Option<Response> {
    (!caller.may(Permission::Write)).then(|| forbidden(caller, core, "write", back))
}

pub async fn run(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let back = format!("jobs/{name}");
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    match crate::grpc::JobApi(core.clone())
        .run_job(tonic::Request::new(pb::RunJobRequest {
            name: name.clone(),
        }))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            let notice = match (r.queued, r.execution) {
                (true, _) => "queued behind the running execution".to_string(),
                (false, Some(e)) => format!("started execution {} ({})", e.id, e.status),
                (false, None) => "started".to_string(),
            };
            done(&caller, &name, &notice)
        }
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    reason: String,
}

pub async fn pause(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Form(form): axum::extract::Form<PauseForm>,
) -> Response {
    let back = format!("jobs/{name}");
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    let reason = if form.reason.trim().is_empty() {
        "paused from the web UI".to_string()
    } else {
        form.reason.trim().to_string()
    };
    match crate::grpc::JobApi(core.clone())
        .pause_job(tonic::Request::new(pb::PauseJobRequest {
            name: name.clone(),
            reason,
        }))
        .await
    {
        Ok(_) => done(&caller, &name, "paused"),
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

pub async fn resume(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let back = format!("jobs/{name}");
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    match crate::grpc::JobApi(core.clone())
        .resume_job(tonic::Request::new(pb::ResumeJobRequest {
            name: name.clone(),
        }))
        .await
    {
        Ok(_) => done(&caller, &name, "resumed"),
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    cascade: Option<String>,
}

pub async fn delete(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Form(form): axum::extract::Form<DeleteForm>,
) -> Response {
    let back = format!("jobs/{name}");
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    match crate::grpc::JobApi(core.clone())
        .delete_job(tonic::Request::new(pb::DeleteJobRequest {
            name: name.clone(),
            cascade: form.cascade.is_some(),
        }))
        .await
    {
        Ok(r) => {
            let deleted = r.into_inner().deleted.join(", ");
            caller.redirect(&format!("jobs?deleted={}", enc(&deleted)))
        }
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

#[derive(Deserialize)]
pub struct BackfillForm {
    from: String,
    to: String,
    #[serde(default)]
    submit: Option<String>,
}

/// Backfill in two steps: the instants the range holds (a dry run), then, with
/// `submit`, the backfill itself.
pub async fn backfill(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Form(form): axum::extract::Form<BackfillForm>,
) -> Response {
    let back = format!("jobs/{name}");
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    let range =
        super::instant("from", &form.from).and_then(|f| Ok((f, super::instant("to", &form.to)?)));
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => {
            return message(
                &caller,
                &core,
                StatusCode::BAD_REQUEST,
                "Bad range",
                e,
                &back,
            );
        }
    };
    let dry_run = form.submit.is_none();
    let req = pb::BackfillRequest {
        name: name.clone(),
        from: Some(crate::time::ts_from_dt(from)),
        to: Some(crate::time::ts_from_dt(to)),
        dry_run,
        ..Default::default()
    };
    match crate::grpc::JobApi(core.clone())
        .backfill(tonic::Request::new(req))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            if dry_run {
                let instants = r
                    .instants
                    .iter()
                    .map(|t| When::of(crate::time::dt_from_ts(t)))
                    .collect();
                job_page(
                    &core,
                    &caller,
                    &name,
                    &JobQuery::default(),
                    Some((instants, form.from.clone(), form.to.clone())),
                )
                .await
            } else {
                done(
                    &caller,
                    &name,
                    &format!("backfill of {} instants started", r.instants.len()),
                )
            }
        }
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

// ---- the editor ----

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage {
    chrome: Chrome,
    /// The job's name when editing, empty for a new job.
    name: String,
    document: String,
    format: String,
    expected_version: String,
    error: String,
    /// The document's lines, the bad one marked with the server's reason.
    lines: Vec<(String, String)>,
    diff: Vec<(char, String)>,
    reviewing: bool,
    unchanged: bool,
    preview: Vec<When>,
}

const NEW_JOB: &str = "name: my-job\nschedule: \"0 */5 * * * *\"\ntimezone: UTC\nshell:\n  command: echo \"hello from $KAIROS_JOB\"\n";

fn edit_page(
    core: &Core,
    caller: &Caller,
    name: &str,
    document: String,
    format: &str,
    expected_version: String,
) -> EditPage {
    EditPage {
        chrome: caller.chrome(
            core,
            if name.is_empty() {
                "New job".to_string()
            } else {
                format!("Edit {name}")
            },
            "jobs",
        ),
        name: name.to_string(),
        document,
        format: format.to_string(),
        expected_version,
        error: String::new(),
        lines: Vec::new(),
        diff: Vec::new(),
        reviewing: false,
        unchanged: false,
        preview: Vec::new(),
    }
}

pub async fn new_job(State(core): State<Arc<Core>>, caller: Caller) -> Response {
    page(edit_page(
        &core,
        &caller,
        "",
        NEW_JOB.to_string(),
        "yaml",
        "0".into(),
    ))
}

/// The stored job as the editor shows it: output-only fields out, secrets hidden.
fn editable(core: &Core, name: &str) -> Option<(pb::Job, String)> {
    let entry = core.view.job(name)?;
    let mut job = entry.record.job.clone()?;
    kairos_common::job::redact(&mut job);
    let version = job.version;
    job.version = 0;
    job.created_at = None;
    job.updated_at = None;
    job.status = None;
    Some((job, version.to_string()))
}

pub async fn edit(
    State(core): State<Arc<Core>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let Some((job, version)) = editable(&core, &name) else {
        return message(
            &caller,
            &core,
            StatusCode::NOT_FOUND,
            "No such job",
            format!("there is no job {name:?}"),
            "jobs",
        );
    };
    let document = kairos_common::job::to_yaml(&job).unwrap_or_default();
    page(edit_page(&core, &caller, &name, document, "yaml", version))
}

/// A document in the editor: YAML (JSON is YAML too, but its errors read better
/// from the JSON parser).
fn parse_document(document: &str, format: &str) -> Result<pb::Job, String> {
    if format == "json" {
        serde_json::from_str(document).map_err(|e| format!("not a JSON job document: {e}"))
    } else {
        let value: serde_json::Value = serde_yaml_ng::from_str(document)
            .map_err(|e| format!("not a YAML job document: {e}"))?;
        serde_json::from_value(value).map_err(|e| format!("not a job document: {e}"))
    }
}

/// The document's lines with `reason` next to the line that holds `field` (its
/// last path segment as a key, in snake_case or lowerCamelCase), or next to the
/// first line when no line does.
fn mark(document: &str, field: &str, reason: &str) -> Vec<(String, String)> {
    let last = field.rsplit('.').next().unwrap_or(field);
    let camel: String = {
        let mut out = String::new();
        let mut up = false;
        for c in last.chars() {
            if c == '_' {
                up = true;
            } else if up {
                out.extend(c.to_uppercase());
                up = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    let keys = [
        format!("{last}:"),
        format!("\"{last}\""),
        format!("{camel}:"),
        format!("\"{camel}\""),
    ];
    let hit = document
        .lines()
        .position(|l| keys.iter().any(|k| l.trim_start().starts_with(k.as_str())))
        .unwrap_or(0);
    document
        .lines()
        .enumerate()
        .map(|(i, l)| {
            (
                l.to_string(),
                if i == hit {
                    format!("{field}: {reason}")
                } else {
                    String::new()
                },
            )
        })
        .collect()
}

pub async fn save(State(core): State<Arc<Core>>, caller: Caller, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let document = field(&pairs, "document").replace("\r\n", "\n");
    let format = if field(&pairs, "format") == "json" {
        "json"
    } else {
        "yaml"
    };
    let name = field(&pairs, "name").to_string();
    let expected = field(&pairs, "expected_version").to_string();
    let reviewing = field(&pairs, "step") != "save";
    let back = if name.is_empty() {
        "jobs/new".to_string()
    } else {
        format!("jobs/{name}/edit")
    };
    if let Some(r) = needs_write(&caller, &core, &back) {
        return r;
    }
    let mut view = edit_page(
        &core,
        &caller,
        &name,
        document.clone(),
        format,
        expected.clone(),
    );
    let job = match parse_document(&document, format) {
        Ok(j) => j,
        Err(e) => {
            view.error = e;
            return page_as(StatusCode::BAD_REQUEST, view);
        }
    };
    if !name.is_empty() && job.name != name {
        view.error = format!(
            "name: this editor edits {name}; to make a copy under another name, use New job"
        );
        view.lines = mark(&document, "name", "must stay the same");
        return page_as(StatusCode::BAD_REQUEST, view);
    }
    let normalized = match kairos_common::job::normalize(&job) {
        Ok((n, _)) => n,
        Err(kairos_common::Error::InvalidArgument { field, reason }) => {
            view.error = format!("{field}: {reason}");
            view.lines = mark(&document, &field, &reason);
            return page_as(StatusCode::BAD_REQUEST, view);
        }
    };
    let expected_version = expected.trim().parse::<u64>().ok();
    if reviewing {
        // The change as it will be stored: both sides normalized, secrets hidden.
        let mut shown = normalized.clone();
        kairos_common::job::redact(&mut shown);
        let new_text = kairos_common::job::to_yaml(&shown).unwrap_or_default();
        let old_text = editable(&core, &job.name)
            .and_then(|(j, _)| kairos_common::job::to_yaml(&j).ok())
            .unwrap_or_default();
        view.diff = kairos_common::line_diff::diff(&old_text, &new_text)
            .into_iter()
            .map(|l| match l {
                kairos_common::line_diff::Line::Same(t) => (' ', t.to_string()),
                kairos_common::line_diff::Line::Removed(t) => ('-', t.to_string()),
                kairos_common::line_diff::Line::Added(t) => ('+', t.to_string()),
            })
            .collect();
        view.unchanged = old_text == new_text;
        view.reviewing = true;
        view.preview = core
            .preview(
                Some(pb::preview_schedule_request::Subject::Job(normalized)),
                None,
                None,
                5,
            )
            .await
            .map(|(i, _)| i.into_iter().map(When::of).collect())
            .unwrap_or_default();
        return page(view);
    }
    match crate::grpc::JobApi(core.clone())
        .put_job(tonic::Request::new(pb::PutJobRequest {
            job: Some(job.clone()),
            expected_version,
        }))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            done(&caller, &job.name, &format!("saved: {}", r.result))
        }
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            let field = s
                .metadata()
                .get("kairos-field")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            view.error = s.message().to_string();
            view.lines = mark(&document, &field, s.message());
            page_as(StatusCode::BAD_REQUEST, view)
        }
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            view.error = format!(
                "{} — someone changed the job since you opened it; reload it to see their change",
                s.message()
            );
            page_as(StatusCode::CONFLICT, view)
        }
        Err(s) => refused(&caller, &core, &s, &back),
    }
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewFragment {
    instants: Vec<When>,
    error: String,
    zone: String,
}

/// The next instants of the schedule in an editor's document, as a fragment the
/// editor's script puts under the text (or the error that stops it).
pub async fn preview(State(core): State<Arc<Core>>, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    let document = field(&pairs, "document");
    let format = field(&pairs, "format");
    let fragment = match parse_document(document, format) {
        Err(e) => PreviewFragment {
            instants: Vec::new(),
            error: e,
            zone: String::new(),
        },
        Ok(job) => {
            let zone = job.timezone.clone();
            match core
                .preview(
                    Some(pb::preview_schedule_request::Subject::Job(job)),
                    None,
                    None,
                    10,
                )
                .await
            {
                Ok((instants, _)) => PreviewFragment {
                    instants: instants.into_iter().map(When::of).collect(),
                    error: String::new(),
                    zone,
                },
                Err(e) => PreviewFragment {
                    instants: Vec::new(),
                    error: e.to_string(),
                    zone,
                },
            }
        }
    };
    match fragment.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bad_line_is_found_by_its_key_in_either_spelling() {
        let doc = "name: x\nschedule: \"bad\"\nretry:\n  maxBackoff: 1x\n";
        let lines = mark(doc, "schedule", "not a schedule");
        assert_eq!(lines[1].1, "schedule: not a schedule");
        assert!(lines[0].1.is_empty());
        let lines = mark(doc, "retry.max_backoff", "not a duration");
        assert_eq!(lines[3].1, "retry.max_backoff: not a duration");
    }

    #[test]
    fn history_has_one_row_per_instant_with_its_attempts() {
        let at = |s: i64| Some(crate::time::ts_from_ms(s * 1000));
        let exec = |id: &str, secs: i64, trigger: &str, attempt: u32, status: &str| pb::Execution {
            id: id.into(),
            scheduled_at: at(secs),
            trigger: trigger.into(),
            attempt,
            status: status.into(),
            ..Default::default()
        };
        // Newest first, as the history lists them.
        let rows = by_instant(&[
            exec("5", 200, "manual", 1, "succeeded"),
            exec("4", 200, "manual", 1, "failed"),
            exec("3", 100, "retry", 2, "succeeded"),
            exec("2", 100, "schedule", 1, "failed"),
            exec("1", 50, "schedule", 1, "succeeded"),
        ]);
        let shape: Vec<(Vec<&str>, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.runs.iter().map(|x| x.id.as_str()).collect(),
                    r.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (vec!["5"], "succeeded"),
                (vec!["4"], "failed"),
                (vec!["3", "2"], "succeeded"),
                (vec!["1"], "succeeded"),
            ]
        );
    }

    #[test]
    fn forms_keep_repeated_keys_and_decode_values() {
        let pairs = form_pairs(b"action=pause&job=a&job=b.c&reason=night+shift%21");
        assert_eq!(field(&pairs, "action"), "pause");
        let jobs: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == "job")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(jobs, ["a", "b.c"]);
        assert_eq!(field(&pairs, "reason"), "night shift!");
    }
}
