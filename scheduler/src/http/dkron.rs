//! A JSON API under `/v1` that mirrors Dkron's REST paths, so scripts and tools
//! written for Dkron keep working against Kairos.
//!
//! | Dkron call | does |
//! |---|---|
//! | `GET /v1/` | this node's status |
//! | `GET /v1/jobs[?metadata=k:v]` | list jobs |
//! | `POST /v1/jobs[?runoncreate]` | create or update a job (201) |
//! | `GET /v1/jobs/{name}` / `DELETE /v1/jobs/{name}` | show / delete a job |
//! | `POST /v1/jobs/{name}` | run it now (202) |
//! | `POST /v1/jobs/{name}/toggle` | pause or resume it |
//! | `GET /v1/jobs/{name}/executions[/{id}]` | its executions / one of them |
//! | `GET /v1/members`, `/v1/leader`, `/v1/isleader` | the scheduler group |
//! | `GET /v1/busy` | executions running now |
//!
//! The job document is translated both ways: `disabled` is `paused`; `tags`
//! (`{"role": "web:2"}`) become the target selector `role=web` with count 2;
//! `retries` N is `retry.max_attempts` N+1; `parent_job` is `parent` (on success);
//! `executor` `shell` takes `command`, `env` (`K=V` pairs separated by commas or new
//! lines), `cwd` and `timeout` from `executor_config`, and `http` takes `method`,
//! `url`, `body`, `headers` (a JSON array of `"Name: value"`), `timeout`,
//! `expectCode` and `expectBody`; `displayname`, `owner` and `owner_email` are kept
//! in `metadata`. An empty `timezone` means UTC (Dkron used the server's local time).
//! What Kairos has and Dkron has not (misfire policies, queue and replace
//! concurrency, webhooks...) is managed through the native API.
//!
//! A job body is read as JSON whatever its content type, as Dkron does (curl's
//! default form type included).
//!
//! Errors answer with the HTTP status Dkron scripts expect (400 for a bad job, 404,
//! 409, 503) and a JSON body `{"error": "..."}` naming the field. Writes on a follower
//! are forwarded to the leader over gRPC, like the native API's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use pb::job_service_client::JobServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::core::Core;
use crate::time::{dt_from_ts, ts_from_dt};

/// Metadata keys that carry Dkron fields Kairos has no field for.
const DISPLAYNAME_KEY: &str = "dkron.displayname";
const OWNER_KEY: &str = "dkron.owner";
const OWNER_EMAIL_KEY: &str = "dkron.owner_email";

pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/v1/", get(status))
        .route("/v1", get(status))
        .route("/v1/jobs", get(list_jobs).post(put_job).patch(put_job))
        .route(
            "/v1/jobs/{name}",
            get(get_job).post(run_job).delete(delete_job),
        )
        .route("/v1/jobs/{name}/toggle", post(toggle_job))
        .route("/v1/jobs/{name}/executions", get(list_executions))
        .route("/v1/jobs/{name}/executions/{id}", get(get_execution))
        .route("/v1/members", get(members))
        .route("/v1/leader", get(leader))
        .route("/v1/isleader", get(is_leader))
        .route("/v1/busy", get(busy))
}

/// An error in Dkron's shape.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) | Error::FailedPrecondition(_) => StatusCode::CONFLICT,
            Error::NotLeader { .. } | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        let code = match s.code() {
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
            tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, s.message().to_string())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

// ---- the job document ----

/// Dkron's job, as scripts send and read it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DkronJob {
    pub name: String,
    pub displayname: String,
    pub schedule: String,
    pub timezone: String,
    pub owner: String,
    pub owner_email: String,
    pub disabled: bool,
    pub tags: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub retries: u32,
    pub parent_job: String,
    pub dependent_jobs: Vec<String>,
    pub concurrency: String,
    pub executor: String,
    pub executor_config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    // Read-only in Dkron; ignored on input.
    pub success_count: u64,
    pub error_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<chrono::DateTime<chrono::Utc>>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<chrono::DateTime<chrono::Utc>>,
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(field, reason)
}

/// Dkron's `tags` (`key: "value[:count]"`) as a selector and a count.
fn tags_to_target(tags: &BTreeMap<String, String>) -> Result<pb::Target, Error> {
    let mut terms = Vec::new();
    let mut count: Option<u32> = None;
    for (k, v) in tags {
        let (value, n) = match v.rsplit_once(':') {
            Some((value, n)) if n.parse::<u32>().is_ok() => (value, n.parse::<u32>().ok()),
            _ => (v.as_str(), None),
        };
        if let Some(n) = n {
            count = Some(count.map_or(n, |c| c.min(n)));
        }
        terms.push(format!("{k}={value}"));
    }
    Ok(pb::Target {
        selector: terms.join(","),
        count: Some(count.unwrap_or(1)),
        ..Default::default()
    })
}

fn split_env(env: &str) -> Result<HashMap<String, String>, Error> {
    env.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| bad("executor_config.env", format!("{pair:?} is not KEY=VALUE")))
        })
        .collect()
}

/// Translates Dkron's job into Kairos's document.
pub fn to_kairos(d: DkronJob) -> Result<pb::Job, Error> {
    let cfg = &d.executor_config;
    let get = |k: &str| cfg.get(k).cloned().unwrap_or_default();
    let action = match d.executor.as_str() {
        "" | "shell" => {
            let command = get("command");
            pb::job::Action::Shell(pb::ShellAction {
                command,
                env: split_env(&get("env"))?,
                // Dkron jobs have no secrets; `put_job` keeps those a job has.
                secret_env: HashMap::new(),
                cwd: get("cwd"),
            })
        }
        "http" => {
            let headers: Vec<String> = match cfg.get("headers") {
                Some(h) if !h.trim().is_empty() => serde_json::from_str(h).map_err(|e| {
                    bad(
                        "executor_config.headers",
                        format!("not a JSON array of \"Name: value\": {e}"),
                    )
                })?,
                _ => Vec::new(),
            };
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| {
                            bad(
                                "executor_config.headers",
                                format!("{h:?} is not \"Name: value\""),
                            )
                        })
                })
                .collect::<Result<HashMap<_, _>, _>>()?;
            pb::job::Action::Http(pb::HttpAction {
                method: get("method"),
                url: get("url"),
                headers,
                body: get("body"),
                expected_status: cfg
                    .get("expectCode")
                    .map(|c| vec![c.clone()])
                    .unwrap_or_default(),
                body_regex: get("expectBody"),
                insecure_skip_verify: get("tlsNoVerifyPeer") == "true",
                ca_file: get("tlsRootCAsFile"),
            })
        }
        other => {
            return Err(bad(
                "executor",
                format!("{other:?} is not supported; Kairos runs shell and http"),
            ));
        }
    };
    let mut metadata: HashMap<String, String> = d.metadata.into_iter().collect();
    for (key, value) in [
        (DISPLAYNAME_KEY, d.displayname),
        (OWNER_KEY, d.owner),
        (OWNER_EMAIL_KEY, d.owner_email),
    ] {
        if !value.is_empty() {
            metadata.insert(key.to_string(), value);
        }
    }
    Ok(pb::Job {
        name: d.name,
        schedule: d.schedule,
        timezone: d.timezone,
        action: Some(action),
        target: Some(tags_to_target(&d.tags)?),
        timeout: get("timeout"),
        retry: Some(pb::RetryPolicy {
            max_attempts: d.retries.saturating_add(1),
            ..Default::default()
        }),
        concurrency: d.concurrency,
        parent: d.parent_job.clone(),
        parent_on: if d.parent_job.is_empty() {
            String::new()
        } else {
            "success".into()
        },
        metadata,
        paused: d.disabled,
        starts_at: d.starts_at.map(ts_from_dt),
        expires_at: d.expires_at.map(ts_from_dt),
        ..Default::default()
    })
}

/// Translates Kairos's job into Dkron's shape.
pub fn to_dkron(job: &pb::Job, children: Vec<String>) -> DkronJob {
    let mut executor_config = BTreeMap::new();
    let executor = match &job.action {
        Some(pb::job::Action::Shell(s)) => {
            executor_config.insert("command".to_string(), s.command.clone());
            if !s.env.is_empty() {
                let mut env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                env.sort();
                executor_config.insert("env".to_string(), env.join(","));
            }
            if !s.cwd.is_empty() {
                executor_config.insert("cwd".to_string(), s.cwd.clone());
            }
            "shell"
        }
        Some(pb::job::Action::Http(h)) => {
            executor_config.insert("method".to_string(), h.method.clone());
            executor_config.insert("url".to_string(), h.url.clone());
            if !h.body.is_empty() {
                executor_config.insert("body".to_string(), h.body.clone());
            }
            if !h.headers.is_empty() {
                let mut headers: Vec<String> =
                    h.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                headers.sort();
                executor_config.insert(
                    "headers".to_string(),
                    serde_json::to_string(&headers).unwrap_or_default(),
                );
            }
            if let Some(code) = h.expected_status.first() {
                executor_config.insert("expectCode".to_string(), code.clone());
            }
            if !h.body_regex.is_empty() {
                executor_config.insert("expectBody".to_string(), h.body_regex.clone());
            }
            "http"
        }
        None => "",
    };
    if !job.timeout.is_empty() {
        executor_config.insert("timeout".to_string(), job.timeout.clone());
    }
    let mut metadata: BTreeMap<String, String> = job.metadata.clone().into_iter().collect();
    let displayname = metadata.remove(DISPLAYNAME_KEY).unwrap_or_default();
    let owner = metadata.remove(OWNER_KEY).unwrap_or_default();
    let owner_email = metadata.remove(OWNER_EMAIL_KEY).unwrap_or_default();
    let target = job.target.clone().unwrap_or_default();
    let count = target.count.unwrap_or(1);
    let mut tags = BTreeMap::new();
    for term in target.selector.split(',').filter(|t| !t.is_empty()) {
        if let Some((k, v)) = term.split_once('=') {
            let value = if count == 1 {
                v.to_string()
            } else {
                format!("{v}:{count}")
            };
            tags.insert(k.trim_end_matches('!').to_string(), value);
        }
    }
    let status = job.status.clone().unwrap_or_default();
    let count_of = |s: ExecutionStatus| status.outcome_counts.get(s.as_str()).copied().unwrap_or(0);
    let errors: u64 = ExecutionStatus::ALL
        .iter()
        .filter(|s| s.is_failure())
        .map(|s| count_of(*s))
        .sum();
    let last_outcome = status.last_outcome.parse::<ExecutionStatus>().ok();
    DkronJob {
        name: job.name.clone(),
        displayname,
        schedule: job.schedule.clone(),
        timezone: job.timezone.clone(),
        owner,
        owner_email,
        disabled: job.paused,
        tags,
        metadata,
        retries: job
            .retry
            .as_ref()
            .map_or(0, |r| r.max_attempts.saturating_sub(1)),
        parent_job: job.parent.clone(),
        dependent_jobs: children,
        concurrency: job.concurrency.clone(),
        executor: executor.to_string(),
        executor_config,
        starts_at: job.starts_at.as_ref().map(dt_from_ts),
        expires_at: job.expires_at.as_ref().map(dt_from_ts),
        success_count: count_of(ExecutionStatus::Succeeded),
        error_count: errors,
        last_success: (last_outcome == Some(ExecutionStatus::Succeeded))
            .then(|| status.last_finished_at.as_ref().map(dt_from_ts))
            .flatten(),
        last_error: last_outcome
            .is_some_and(ExecutionStatus::is_failure)
            .then(|| status.last_finished_at.as_ref().map(dt_from_ts))
            .flatten(),
        status: match last_outcome {
            None => status.last_outcome.clone(),
            Some(ExecutionStatus::Succeeded) => "success".into(),
            Some(s) if s.is_failure() => "failed".into(),
            Some(s) => s.as_str().to_string(),
        },
        next: status.next_fire_at.as_ref().map(dt_from_ts),
    }
}

/// Dkron's execution.
fn execution(e: &pb::Execution) -> Value {
    json!({
        "id": e.id,
        "job_name": e.job,
        "started_at": e.started_at.as_ref().map(dt_from_ts),
        "finished_at": e.finished_at.as_ref().map(dt_from_ts),
        "success": ExecutionStatus::of(e) == Some(ExecutionStatus::Succeeded),
        "output": e.output,
        "node_name": e.executor,
        "group": e.group,
        "attempt": e.attempt,
        "status": e.status,
    })
}

async fn children_of(core: &Core, name: &str) -> Vec<String> {
    let Ok((jobs, _)) = core.list_jobs_local(crate::core::MAX_PAGE, "", "") else {
        return Vec::new();
    };
    jobs.into_iter()
        .filter(|j| j.parent == name)
        .map(|j| j.name)
        .collect()
}

// ---- handlers ----

async fn status(State(core): State<Arc<Core>>) -> Json<Value> {
    let s = core.status();
    Json(json!({
        "agent": {
            "name": format!("kairos-{}", s.id),
            "version": env!("CARGO_PKG_VERSION"),
            "backend": "raft",
        },
        "serf": {},
        "tags": {
            "server": "true",
            "leader": (s.leader_id == s.id).to_string(),
            "rpc_addr": core.advertised_addr(),
        }
    }))
}

async fn list_jobs(
    State(core): State<Arc<Core>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<DkronJob>>> {
    // `metadata=k:v`, repeatable: every pair must match.
    let mut terms = Vec::new();
    for pair in raw.unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("metadata=") {
            let v = percent_decode(v);
            let (k, val) = v.split_once(':').ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("metadata filter {v:?} is not key:value"),
                )
            })?;
            terms.push(format!("{k}={val}"));
        }
    }

    let mut out = Vec::new();
    let mut token = String::new();
    // Bounded: at most 1000 pages of 1000 jobs.
    for _ in 0..1000 {
        let (jobs, next) = core
            .list_jobs(crate::core::MAX_PAGE, &token, &terms.join(","))
            .await?;
        for j in &jobs {
            let children = children_of(&core, &j.name).await;
            out.push(to_dkron(j, children));
        }
        if next.is_empty() {
            break;
        }
        token = next;
    }
    Ok(Json(out))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Deserialize)]
struct PutQuery {
    runoncreate: Option<String>,
}

async fn put_job(
    State(core): State<Arc<Core>>,
    Query(q): Query<PutQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // Dkron reads the body as JSON whatever its content type: its own getting-started
    // `curl -d '{...}'` sends `application/x-www-form-urlencoded`.
    let body: DkronJob = serde_json::from_slice(&body)
        .map_err(|e| bad("job", format!("the body is not a Dkron job document: {e}")))?;
    let name = body.name.clone();
    let mut doc = to_kairos(body)?;
    keep_secrets(&core, &mut doc);
    let job = match core.put_job(doc.clone(), None).await {
        Ok((job, _)) => job,
        Err(e) => core
            .to_leader(
                e,
                false,
                pb::PutJobRequest {
                    job: Some(doc),
                    expected_version: None,
                },
                |ch, r| async move { JobServiceClient::new(ch).put_job(r).await },
            )
            .await?
            .into_inner()
            .job
            .unwrap_or_default(),
    };
    if q.runoncreate.is_some() {
        run(&core, &name).await?;
    }
    let children = children_of(&core, &job.name).await;
    Ok((StatusCode::CREATED, Json(to_dkron(&job, children))).into_response())
}

/// A Dkron document cannot carry a job's secret variables, so a write through this
/// API keeps them (`stored: true`, resolved against the stored job when applied)
/// unless the document sets a plain variable of the same name.
fn keep_secrets(core: &Core, doc: &mut pb::Job) {
    let Some(pb::job::Action::Shell(shell)) = &mut doc.action else {
        return;
    };
    let Some(entry) = core.view.job(&doc.name) else {
        return;
    };
    if let Some(pb::job::Action::Shell(stored)) =
        entry.record.job.as_ref().and_then(|j| j.action.as_ref())
    {
        for name in stored.secret_env.keys() {
            if !shell.env.contains_key(name) {
                shell.secret_env.insert(
                    name.clone(),
                    pb::SecretEnv {
                        source: Some(pb::secret_env::Source::Stored(true)),
                    },
                );
            }
        }
    }
}

async fn get_job(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<DkronJob>> {
    let job = core.get_job(&name).await?;
    let children = children_of(&core, &name).await;
    Ok(Json(to_dkron(&job, children)))
}

async fn run(core: &Core, name: &str) -> ApiResult<()> {
    match core.run_job(name).await {
        Ok(_) => Ok(()),
        Err(e) => {
            core.to_leader(
                e,
                false,
                pb::RunJobRequest {
                    name: name.to_string(),
                },
                |ch, r| async move { JobServiceClient::new(ch).run_job(r).await },
            )
            .await?;
            Ok(())
        }
    }
}

async fn run_job(State(core): State<Arc<Core>>, Path(name): Path<String>) -> ApiResult<Response> {
    run(&core, &name).await?;
    let job = core.get_job(&name).await?;
    let children = children_of(&core, &name).await;
    Ok((StatusCode::ACCEPTED, Json(to_dkron(&job, children))).into_response())
}

async fn delete_job(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<DkronJob>> {
    let job = core.get_job(&name).await?;
    let children = children_of(&core, &name).await;
    match core.delete_job(&name, false).await {
        Ok(_) => {}
        Err(e) => {
            core.to_leader(
                e,
                false,
                pb::DeleteJobRequest {
                    name: name.clone(),
                    cascade: false,
                },
                |ch, r| async move { JobServiceClient::new(ch).delete_job(r).await },
            )
            .await?;
        }
    }
    Ok(Json(to_dkron(&job, children)))
}

async fn toggle_job(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<DkronJob>> {
    let job = core.get_job(&name).await?;
    let pause = !job.paused;
    let toggled = match core
        .set_paused(&name, pause, "toggled through the Dkron API")
        .await
    {
        Ok(j) => j,
        Err(e) if pause => core
            .to_leader(
                e,
                false,
                pb::PauseJobRequest {
                    name: name.clone(),
                    reason: "toggled through the Dkron API".into(),
                },
                |ch, r| async move { JobServiceClient::new(ch).pause_job(r).await },
            )
            .await?
            .into_inner(),
        Err(e) => core
            .to_leader(
                e,
                false,
                pb::ResumeJobRequest { name: name.clone() },
                |ch, r| async move { JobServiceClient::new(ch).resume_job(r).await },
            )
            .await?
            .into_inner(),
    };
    let children = children_of(&core, &name).await;
    Ok(Json(to_dkron(&toggled, children)))
}

async fn list_executions(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    core.get_job(&name).await?;
    let (execs, _) = core
        .list_executions(&name, crate::core::MAX_PAGE, "")
        .await?;
    Ok(Json(execs.iter().map(execution).collect()))
}

async fn get_execution(
    State(core): State<Arc<Core>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = core.get_execution(&id).await?;
    if e.job != name {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("execution {id} is not of job {name}"),
        ));
    }
    Ok(Json(execution(&e)))
}

fn member(s: &pb::SchedulerStatus, leader: u64) -> Value {
    let (host, port) = s.addr.rsplit_once(':').unwrap_or((s.addr.as_str(), ""));
    json!({
        "Name": format!("kairos-{}", s.id),
        "Addr": host,
        "Port": port.parse::<u16>().unwrap_or(0),
        "Tags": {
            "server": "true",
            "rpc_addr": s.addr,
            "role": s.role,
            "leader": (s.id == leader).to_string(),
            "version": env!("CARGO_PKG_VERSION"),
        },
        // Serf's "alive" is 1; an unreachable member is "failed" (4).
        "Status": if s.reachable { 1 } else { 4 },
    })
}

async fn members(State(core): State<Arc<Core>>) -> Json<Vec<Value>> {
    let status = core.cluster_status().await;
    Json(
        status
            .schedulers
            .iter()
            .map(|s| member(s, status.leader_id))
            .collect(),
    )
}

async fn leader(State(core): State<Arc<Core>>) -> ApiResult<Json<Value>> {
    let status = core.cluster_status().await;
    status
        .schedulers
        .iter()
        .find(|s| s.id == status.leader_id)
        .map(|s| Json(member(s, status.leader_id)))
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "no leader".into()))
}

async fn is_leader(State(core): State<Arc<Core>>) -> StatusCode {
    if core.status().is_ready_leader() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn busy(State(core): State<Arc<Core>>) -> ApiResult<Json<Vec<Value>>> {
    let mut out = Vec::new();
    for a in core.view.active() {
        if let Ok(Some(e)) = core.view.execution(a.id.0) {
            out.push(execution(&e));
        }
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dkron_job() -> DkronJob {
        serde_json::from_value(json!({
            "name": "backup",
            "displayname": "Nightly backup",
            "schedule": "@every 10s",
            "timezone": "Europe/Berlin",
            "owner": "Platform",
            "owner_email": "platform@example.com",
            "disabled": true,
            "tags": {"role": "web:2"},
            "metadata": {"team": "ops"},
            "retries": 2,
            "concurrency": "forbid",
            "executor": "shell",
            "executor_config": {"command": "backup.sh", "env": "A=1,B=2", "cwd": "/srv", "timeout": "30s"},
            "success_count": 99
        }))
        .unwrap()
    }

    #[test]
    fn a_dkron_job_becomes_a_valid_kairos_document() {
        let doc = to_kairos(dkron_job()).unwrap();
        let (normalized, job) = kairos_common::job::normalize(&doc).unwrap();
        assert!(job.paused);
        assert_eq!(job.retry.max_attempts, 3);
        assert_eq!(job.target.count, 2);
        assert_eq!(job.target.selector.to_string(), "role=web");
        assert_eq!(normalized.timeout, "30s");
        assert_eq!(
            normalized.metadata.get(OWNER_KEY).map(String::as_str),
            Some("Platform")
        );
        match normalized.action {
            Some(pb::job::Action::Shell(s)) => {
                assert_eq!(s.command, "backup.sh");
                assert_eq!(s.env.get("B").map(String::as_str), Some("2"));
                assert_eq!(s.cwd, "/srv");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_translation_round_trips() {
        let (normalized, _) =
            kairos_common::job::normalize(&to_kairos(dkron_job()).unwrap()).unwrap();
        let back = to_dkron(&normalized, vec!["child".into()]);
        assert_eq!(back.name, "backup");
        assert_eq!(back.displayname, "Nightly backup");
        assert_eq!(back.owner_email, "platform@example.com");
        assert_eq!(back.tags.get("role").map(String::as_str), Some("web:2"));
        assert_eq!(back.retries, 2);
        assert!(back.disabled);
        assert_eq!(back.executor, "shell");
        assert_eq!(
            back.executor_config.get("env").map(String::as_str),
            Some("A=1,B=2")
        );
        assert_eq!(back.dependent_jobs, vec!["child".to_string()]);
        assert!(
            !back.metadata.contains_key(OWNER_KEY),
            "internal keys stay internal"
        );
    }

    #[test]
    fn http_jobs_translate_and_bad_input_names_the_field() {
        let mut j = dkron_job();
        j.executor = "http".into();
        j.executor_config = BTreeMap::from([
            ("method".to_string(), "POST".to_string()),
            ("url".to_string(), "https://example.com/hook".to_string()),
            (
                "headers".to_string(),
                "[\"Authorization: Bearer x\"]".to_string(),
            ),
            ("expectCode".to_string(), "202".to_string()),
        ]);
        let doc = to_kairos(j).unwrap();
        let Some(pb::job::Action::Http(h)) = &doc.action else {
            panic!()
        };
        assert_eq!(
            h.headers.get("Authorization").map(String::as_str),
            Some("Bearer x")
        );
        assert_eq!(h.expected_status, vec!["202".to_string()]);

        let mut j = dkron_job();
        j.executor = "kafka".into();
        assert_eq!(
            to_kairos(j).unwrap_err().to_string(),
            "invalid executor: \"kafka\" is not supported; Kairos runs shell and http"
        );
        let mut j = dkron_job();
        j.executor_config.insert("env".into(), "NOPE".into());
        assert!(
            matches!(to_kairos(j), Err(Error::InvalidArgument { field, .. }) if field == "executor_config.env")
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("team%3Aops"), "team:ops");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
