//! A JSON API under `/v1` that mirrors Dkron's REST API, so scripts and tools written
//! for Dkron keep working against Kairos. Dkron's OpenAPI document and its API tests
//! are the contract; docs/dkron.md lists what differs and why.
//!
//! | Dkron call | does |
//! |---|---|
//! | `GET /health` | `{"status": "healthy"}` |
//! | `GET /v1/` | this node's status |
//! | `GET /v1/jobs` | list jobs: filters, sort and slice as Dkron ([`list`]), `X-Total-Count` |
//! | `POST`/`PATCH /v1/jobs[?runoncreate]`, `PUT /v1/jobs/{job}` | create or update a job (201) |
//! | `GET /v1/jobs/{job}` / `DELETE /v1/jobs/{job}` | show / delete a job |
//! | `POST /v1/jobs/{job}`, `POST /v1/jobs/{job}/run` | run it now (202) |
//! | `POST /v1/jobs/{job}/toggle` | pause or resume it |
//! | `GET /v1/jobs/{job}/executions[/{id}]` | its executions / one of them |
//! | `DELETE /v1/jobs/{job}/executions` | forget its finished executions and counts |
//! | `POST /v1/restore` | create or update the jobs of an export (multipart `file`) |
//! | `GET`/`POST /v1/pause`, `POST /v1/unpause` | refuse new job writes on this node (503), or not |
//! | `GET /v1/members`, `/v1/leader`, `/v1/isleader` | the scheduler group (404 without a leader) |
//! | `GET /v1/busy` | executions running now |
//!
//! The job document is translated both ways by [`job`]. A job body is read as JSON
//! whatever its content type, as Dkron does (curl's default form type included).
//!
//! Errors answer with the HTTP status Dkron scripts expect (400 for a bad job, 404,
//! 409, 503) and a JSON body `{"error": "..."}` naming the field. Writes on a follower
//! are forwarded to the leader over gRPC, like the native API's.
//!
//! Deliberately absent: `POST /v1/leave` answers 501 (a scheduler leaves the group
//! through `kairos cluster remove-scheduler`, which keeps the group's quorum in
//! view); Dkron Pro's ACL endpoints answer 404 (Kairos has tokens and roles,
//! docs/security.md). The pause of new job writes is this node's, as in Dkron: it is
//! neither replicated nor kept across a restart.

pub mod job;
pub mod list;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Extension, Multipart, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use pb::execution_service_client::ExecutionServiceClient;
use pb::job_service_client::JobServiceClient;
use serde::Deserialize;
use serde_json::{Value, json};

use self::job::{DkronJob, to_dkron, to_kairos};
use self::list::{ExecutionQuery, ExecutionSort, JobQuery};
use crate::Error;
use crate::core::Core;
use crate::time::dt_from_ts;

/// Dkron's answer to a job write while new writes are paused.
const PAUSED_MESSAGE: &str = "New job submissions are currently paused";

/// Jobs one `POST /v1/restore` takes at most (an export is one JSON array).
const MAX_RESTORE_JOBS: usize = 10_000;

/// Whether this node refuses new job writes through `/v1` (Dkron's `/v1/pause`).
#[derive(Debug, Default)]
struct SubmissionPause(AtomicBool);

pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/health", get(health))
        .route("/v1/", get(status))
        .route("/v1", get(status))
        .route("/v1/jobs", get(list_jobs).post(put_job).patch(put_job))
        .route("/v1/jobs/", get(list_jobs).post(put_job).patch(put_job))
        .route(
            "/v1/jobs/{name}",
            get(get_job)
                .post(run_job)
                .put(put_named_job)
                .delete(delete_job),
        )
        .route("/v1/jobs/{name}/run", post(run_job))
        .route("/v1/jobs/{name}/toggle", post(toggle_job))
        .route(
            "/v1/jobs/{name}/executions",
            get(list_executions).delete(clear_executions),
        )
        .route("/v1/jobs/{name}/executions/", get(list_executions))
        .route("/v1/jobs/{name}/executions/{id}", get(get_execution))
        // Dkron 1's path, still used by the `dkron` Python client.
        .route("/v1/executions/{name}", get(list_executions))
        .route("/v1/restore", post(restore))
        .route("/v1/pause", get(pause_status).post(pause))
        .route("/v1/unpause", post(unpause))
        .route("/v1/leave", post(leave))
        .route("/v1/members", get(members))
        .route("/v1/leader", get(leader))
        .route("/v1/isleader", get(is_leader))
        .route("/v1/busy", get(busy))
        .layer(Extension(Arc::new(SubmissionPause::default())))
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
        ApiError(super::http_status(s.code()), s.message().to_string())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// A list with Dkron's `X-Total-Count` header.
fn counted<T: serde::Serialize>(total: usize, items: Vec<T>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    (headers, Json(items)).into_response()
}

/// Dkron's execution. `output_truncated` is in the listing only, as in Dkron.
fn execution(e: &pb::Execution) -> Value {
    json!({
        "id": e.id,
        "job_name": e.job,
        "started_at": e.started_at.as_ref().map(dt_from_ts),
        "finished_at": e.finished_at.as_ref().map(dt_from_ts),
        "success": ExecutionStatus::of(e) == Some(ExecutionStatus::Succeeded),
        "output": e.output,
        "node_name": e.executor,
        // Dkron's group is a number; Kairos's is the first execution's id.
        "group": e.group.parse::<u64>().ok(),
        "attempt": e.attempt,
        "status": e.status,
    })
}

/// Every job's children (Dkron's `dependent_jobs`), in one walk over the jobs.
fn children_by_parent(core: &Core) -> HashMap<String, Vec<String>> {
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for entry in core.view.jobs_in_order(None) {
        if let Some(job) = &entry.record.job
            && !job.parent.is_empty()
        {
            children
                .entry(job.parent.clone())
                .or_default()
                .push(job.name.clone());
        }
    }
    children
}

/// One job in Dkron's shape, with its children.
fn dkron_of(core: &Core, job: &pb::Job) -> DkronJob {
    let children = core
        .view
        .jobs_in_order(None)
        .filter_map(|entry| {
            let child = entry.record.job.as_ref()?;
            (child.parent == job.name).then(|| child.name.clone())
        })
        .collect();
    to_dkron(job, children)
}

// ---- handlers ----

async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

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

async fn list_jobs(State(core): State<Arc<Core>>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query = JobQuery::parse(raw.as_deref())?;
    core.read_barrier().await?;
    let children = children_by_parent(&core);
    let mut jobs: Vec<DkronJob> = core
        .view
        .jobs_in_order(None)
        .filter_map(|entry| entry.record.job.clone())
        .map(|job| {
            let job = core.decorate(job);
            let kids = children.get(&job.name).cloned().unwrap_or_default();
            to_dkron(&job, kids)
        })
        .filter(|j| query.matches(j))
        .collect();
    query.sort(&mut jobs);
    let total = jobs.len();
    Ok(counted(total, query.slice.apply(jobs)))
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

/// Stores one Dkron job (forwarded to the leader from a follower) and answers it
/// as stored.
async fn store(core: &Core, body: DkronJob) -> ApiResult<pb::Job> {
    store_translated(core, body).await.map_err(parent_not_found)
}

/// Dkron answers 404 for a `parent_job` that does not exist (its API tests check it).
fn parent_not_found(e: ApiError) -> ApiError {
    match e.1.strip_prefix("invalid parent: ") {
        Some(why) if e.0 == StatusCode::BAD_REQUEST && why.ends_with("does not exist") => {
            ApiError(StatusCode::NOT_FOUND, format!("invalid parent_job: {why}"))
        }
        _ => e,
    }
}

async fn store_translated(core: &Core, body: DkronJob) -> ApiResult<pb::Job> {
    let mut doc = to_kairos(body)?;
    keep_secrets(core, &mut doc);
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
    Ok(job)
}

fn refuse_if_paused(paused: &SubmissionPause) -> ApiResult<()> {
    if paused.0.load(Ordering::SeqCst) {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            PAUSED_MESSAGE.to_string(),
        ));
    }
    Ok(())
}

async fn write_job(
    core: &Core,
    paused: &SubmissionPause,
    run_on_create: bool,
    body: DkronJob,
) -> ApiResult<Response> {
    refuse_if_paused(paused)?;
    let name = body.name.clone();
    let job = store(core, body).await?;
    if run_on_create {
        run(core, &name).await?;
    }
    let location = format!("/v1/jobs/{}", job.name);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(dkron_of(core, &job))).into_response())
}

async fn put_job(
    State(core): State<Arc<Core>>,
    Extension(paused): Extension<Arc<SubmissionPause>>,
    Query(q): Query<PutQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // Dkron reads the body as JSON whatever its content type: its own getting-started
    // `curl -d '{...}'` sends `application/x-www-form-urlencoded`.
    let body = job::parse(&body)?;
    write_job(&core, &paused, q.runoncreate.is_some(), body).await
}

/// `PUT /v1/jobs/{job}`: the path names the job; a body naming another is refused.
async fn put_named_job(
    State(core): State<Arc<Core>>,
    Extension(paused): Extension<Arc<SubmissionPause>>,
    Path(name): Path<String>,
    Query(q): Query<PutQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mut body = job::parse(&body)?;
    if body.name.is_empty() {
        body.name = name;
    } else if body.name != name {
        return Err(Error::invalid(
            "name",
            format!("the body names {:?} but the path {name:?}", body.name),
        )
        .into());
    }
    write_job(&core, &paused, q.runoncreate.is_some(), body).await
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
    Ok(Json(dkron_of(&core, &job)))
}

async fn run(core: &Core, name: &str) -> ApiResult<()> {
    match core.run_job(name).await {
        Ok(_) => Ok(()),
        Err(e) => {
            core.to_leader_at_most_once(
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
    Ok((StatusCode::ACCEPTED, Json(dkron_of(&core, &job))).into_response())
}

async fn delete_job(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<DkronJob>> {
    let job = core.get_job(&name).await?;
    let answer = dkron_of(&core, &job);
    if let Err(e) = core.delete_job(&name, false).await {
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
    Ok(Json(answer))
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
    Ok(Json(dkron_of(&core, &toggled)))
}

async fn list_executions(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = ExecutionQuery::parse(raw.as_deref())?;
    core.get_job(&name).await?;
    let mut execs = Vec::new();
    let mut token = String::new();
    // Bounded: a job's history is bounded (history.keep), and so are the pages.
    for _ in 0..1000 {
        let (page, next) = core
            .list_executions(&name, crate::core::MAX_PAGE, &token)
            .await?;
        execs.extend(page);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    let ms = |t: &Option<kairos_proto::Timestamp>| t.as_ref().map(Core::ms_of);
    execs.sort_by(|a, b| {
        let o = match query.sort {
            ExecutionSort::StartedAt => ms(&a.started_at).cmp(&ms(&b.started_at)),
            ExecutionSort::FinishedAt => ms(&a.finished_at).cmp(&ms(&b.finished_at)),
            ExecutionSort::Attempt => a.attempt.cmp(&b.attempt),
        }
        .then_with(|| {
            let id = |e: &pb::Execution| e.id.parse::<u64>().unwrap_or(0);
            id(a).cmp(&id(b))
        });
        if query.descending { o.reverse() } else { o }
    });
    let total = execs.len();
    let listed: Vec<Value> = query
        .slice
        .apply(execs)
        .iter()
        .map(|e| {
            let mut v = execution(e);
            let mut truncated = e.output_truncated;
            if let Some(limit) = query.output_size_limit
                && e.output.len() > limit
            {
                let mut cut = e.output.len() - limit;
                while !e.output.is_char_boundary(cut) {
                    cut += 1;
                }
                v["output"] = Value::String(e.output[cut..].to_string());
                truncated = true;
            }
            v["output_truncated"] = Value::Bool(truncated);
            v
        })
        .collect();
    Ok(counted(total, listed))
}

/// `DELETE /v1/jobs/{job}/executions`: forget the job's finished executions and its
/// counts (runs in progress stay); answers the job.
async fn clear_executions(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
) -> ApiResult<Json<DkronJob>> {
    let job = match core.clear_history(&name).await {
        Ok(job) => job,
        Err(e) => core
            .to_leader(
                e,
                false,
                pb::ClearExecutionsRequest { job: name.clone() },
                |ch, r| async move { ExecutionServiceClient::new(ch).clear_executions(r).await },
            )
            .await?
            .into_inner(),
    };
    Ok(Json(dkron_of(&core, &job)))
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

/// `POST /v1/restore`: the jobs of a Dkron export (a JSON array, the multipart field
/// `file`), parents before children. Answers, as Dkron does, a JSON string holding
/// a JSON array with one line per job: `success create NAME` or `fail create NAME: why`.
async fn restore(
    State(core): State<Arc<Core>>,
    Extension(paused): Extension<Arc<SubmissionPause>>,
    mut form: Multipart,
) -> ApiResult<Json<String>> {
    refuse_if_paused(&paused)?;
    let mut file = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| Error::invalid("file", format!("not a multipart form: {e}")))?
    {
        if field.name() == Some("file") {
            file = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| Error::invalid("file", e.to_string()))?,
            );
            break;
        }
    }
    let file = file.ok_or_else(|| Error::invalid("file", "the form has no field \"file\""))?;
    let jobs: Vec<Value> = serde_json::from_slice(&file)
        .map_err(|e| Error::invalid("file", format!("not a JSON array of Dkron jobs: {e}")))?;
    if jobs.len() > MAX_RESTORE_JOBS {
        return Err(Error::invalid("file", format!("more than {MAX_RESTORE_JOBS} jobs")).into());
    }
    let mut results = Vec::new();
    for (name, parsed) in parents_first(jobs) {
        let outcome = match parsed {
            Ok(job) => store(&core, job).await.map(|_| ()),
            Err(e) => Err(e.into()),
        };
        results.push(match outcome {
            Ok(()) => format!("success create {name}"),
            Err(ApiError(_, why)) => format!("fail create {name}: {why}"),
        });
    }
    Ok(Json(
        serde_json::to_string(&results).expect("invariant: strings serialize"),
    ))
}

/// The jobs of an export, each after its parent when the parent is among them (the
/// order of the export otherwise); a cycle keeps the export's order, and the
/// scheduler refuses it.
pub fn parents_first(jobs: Vec<Value>) -> Vec<(String, Result<DkronJob, Error>)> {
    let parsed: Vec<(String, Result<DkronJob, Error>)> = jobs
        .into_iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            (name, job::from_value(v))
        })
        .collect();
    let names: BTreeMap<String, usize> = parsed
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect();
    let parent_of = |i: usize| -> Option<usize> {
        match &parsed[i].1 {
            Ok(j) if !j.parent_job.is_empty() => names.get(&j.parent_job).copied(),
            _ => None,
        }
    };
    let mut order = Vec::with_capacity(parsed.len());
    let mut placed = vec![false; parsed.len()];
    for start in 0..parsed.len() {
        // Walk up to the first ancestor not yet placed (bounded: a cycle stops it).
        let mut chain = vec![start];
        let mut at = start;
        while let Some(p) = parent_of(at) {
            if placed[p] || chain.contains(&p) {
                break;
            }
            chain.push(p);
            at = p;
        }
        for &i in chain.iter().rev() {
            if !placed[i] {
                placed[i] = true;
                order.push(i);
            }
        }
    }
    let mut slots: Vec<Option<(String, Result<DkronJob, Error>)>> =
        parsed.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

async fn pause(Extension(paused): Extension<Arc<SubmissionPause>>) -> Json<Value> {
    paused.0.store(true, Ordering::SeqCst);
    tracing::info!("new job submissions through /v1 paused on this node");
    Json(json!({ "paused": true }))
}

async fn unpause(Extension(paused): Extension<Arc<SubmissionPause>>) -> Json<Value> {
    paused.0.store(false, Ordering::SeqCst);
    tracing::info!("new job submissions through /v1 resumed on this node");
    Json(json!({ "paused": false }))
}

async fn pause_status(Extension(paused): Extension<Arc<SubmissionPause>>) -> Json<Value> {
    Json(json!({ "paused": paused.0.load(Ordering::SeqCst) }))
}

async fn leave() -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        "a scheduler leaves the group with `kairos cluster remove-scheduler ID`, which keeps the group's quorum in view; /v1/leave is not supported".into(),
    )
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

async fn members(State(core): State<Arc<Core>>) -> Response {
    let status = core.cluster_status().await;
    let members: Vec<Value> = status
        .schedulers
        .iter()
        .map(|s| member(s, status.leader_id))
        .collect();
    counted(members.len(), members)
}

async fn leader(State(core): State<Arc<Core>>) -> ApiResult<Json<Value>> {
    let status = core.cluster_status().await;
    status
        .schedulers
        .iter()
        .find(|s| s.id == status.leader_id)
        .map(|s| Json(member(s, status.leader_id)))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no leader".into()))
}

async fn is_leader(State(core): State<Arc<Core>>) -> StatusCode {
    if core.status().is_ready_leader() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn busy(State(core): State<Arc<Core>>) -> Response {
    let mut out = Vec::new();
    for a in core.view.active() {
        if let Ok(Some(e)) = core.view.execution(a.id.0) {
            out.push(execution(&e));
        }
    }
    counted(out.len(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("team%3Aops"), "team:ops");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }

    #[test]
    fn an_export_is_restored_parents_first() {
        let job = |name: &str, parent: &str| {
            json!({"name": name, "parent_job": parent, "schedule": "@every 1m",
                "executor": "shell", "executor_config": {"command": "true"}})
        };
        let order: Vec<String> = parents_first(vec![
            job("grandchild", "child"),
            job("child", "root"),
            job("other", ""),
            job("root", ""),
            job("orphan", "elsewhere"),
        ])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
        assert_eq!(order, ["root", "child", "grandchild", "other", "orphan"]);
        // A cycle does not loop: each job comes once.
        let order = parents_first(vec![job("a", "b"), job("b", "a")]);
        assert_eq!(order.len(), 2);
    }
}
