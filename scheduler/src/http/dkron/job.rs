//! Dkron's job document, as Dkron parses and prints it, and its translation to and
//! from Kairos's job (`kairos.v1.Job`). The same translation serves the `/v1` API and
//! `kairos import --from-dkron`.
//!
//! Reading follows Dkron's parser where scripts rely on it: a `null` member is the
//! same as an absent one (Dkron's own export is full of them), `executor_config`
//! values may be numbers or booleans as well as strings, and the read-only fields of
//! an exported job (`id`, counts, `status`, `next`, `dependent_jobs`...) are ignored.
//! It is stricter in one way: a field Kairos cannot honour is refused with the field's
//! name and the reason, never dropped — `processors`, the shell executor's
//! `mem_limit`, the http executor's client certificate, any executor other than shell
//! and http, and any member Dkron's job does not have.
//!
//! | Dkron | Kairos |
//! |---|---|
//! | `disabled` | `paused` |
//! | `tags` `{"role": "web:2"}` | `target` `{selector: "role=web", count: 2}`; no count on any tag (or no tags) means every matching executor, as in Dkron (`count: 0`); several counts, the smallest |
//! | `retries` N | `retry.max_attempts` N+1 (a retry prefers another executor) |
//! | `parent_job` | `parent` with `parent_on: success`; the child's own `schedule` is ignored, as Dkron ignores it |
//! | `ephemeral` | `ephemeral` (deleted after its first success) |
//! | `starts_at`, `expires_at`, `timezone`, `concurrency`, `metadata` | the same fields (an empty `timezone` is UTC) |
//! | `schedule` | `schedule`; Dkron's `~` (a value spread by the job's name) becomes the value Dkron would pick, `@manually` is `@manual`; either reads back as written (metadata `dkron.schedule`) |
//! | `displayname`, `owner`, `owner_email` | `metadata` keys `dkron.displayname`, `dkron.owner`, `dkron.owner_email` (hidden again on read) |
//! | shell `command` with `shell: "true"` | `shell.command`, run by `/bin/sh -c` |
//! | shell `command` without `shell` | split into words as Dkron does, each word quoted, so `/bin/sh -c` runs exactly those words |
//! | shell `env` `"A=1,B=2"`, `cwd`, `timeout` (a Go duration) | `shell.env`, `shell.cwd`, `timeout` |
//! | http `method`, `url`, `body`, `headers` (`["Name: value"]`), `expectCode` (`"200,206"`), `expectBody`, `tlsNoVerifyPeer`, `tlsRootCAsFile` | `http.*` (`expected_status`, `body_regex`, `insecure_skip_verify`, `ca_file`) |
//! | http `timeout` (seconds, default 30) | `timeout` |
//! | http `debug` | accepted; Kairos keeps every response body as the execution's output |
//! | legacy top-level `command` and `shell` (Dkron 1) | the shell executor |

use std::collections::{BTreeMap, HashMap};

use kairos_common::duration::{format_duration, parse_duration};
use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::time::{dt_from_ts, ts_from_dt};

/// Metadata keys that carry Dkron fields Kairos has no field for.
pub const DISPLAYNAME_KEY: &str = "dkron.displayname";
pub const OWNER_KEY: &str = "dkron.owner";
pub const OWNER_EMAIL_KEY: &str = "dkron.owner_email";
/// The schedule as Dkron wrote it, when Kairos's differs (`~`, `@manually`), so it
/// reads back as written.
pub const SCHEDULE_KEY: &str = "dkron.schedule";

/// Dkron's http executor gives up on a request after this many seconds unless its
/// `timeout` says otherwise.
pub const HTTP_DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// Members of Dkron's job that a write sets.
const WRITABLE: &[&str] = &[
    "name",
    "displayname",
    "schedule",
    "timezone",
    "owner",
    "owner_email",
    "disabled",
    "tags",
    "metadata",
    "retries",
    "parent_job",
    "processors",
    "concurrency",
    "executor",
    "executor_config",
    "starts_at",
    "expires_at",
    "ephemeral",
    // Dkron 1's shell job, still in its documentation and its Python clients.
    "command",
    "shell",
];

/// Members Dkron computes; a job read back (or exported) and posted again has them,
/// and Dkron ignores them on write, so does Kairos.
const READ_ONLY: &[&str] = &[
    "id",
    "success_count",
    "error_count",
    "last_success",
    "last_error",
    "dependent_jobs",
    "status",
    "next",
];

const SHELL_SETTINGS: &[&str] = &["command", "shell", "env", "cwd", "timeout", "mem_limit"];
const HTTP_SETTINGS: &[&str] = &[
    "method",
    "url",
    "headers",
    "body",
    "timeout",
    "expectCode",
    "expectBody",
    "debug",
    "tlsNoVerifyPeer",
    "tlsCertificateFile",
    "tlsCertificateKeyFile",
    "tlsRootCAsFile",
];

/// Dkron's job, as scripts send and read it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DkronJob {
    /// Dkron's id is the job's name.
    pub id: String,
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
    pub processors: BTreeMap<String, Value>,
    pub concurrency: String,
    pub executor: String,
    pub executor_config: BTreeMap<String, String>,
    pub ephemeral: bool,
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    // Read-only in Dkron; ignored on input.
    pub success_count: u64,
    pub error_count: u64,
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<chrono::DateTime<chrono::Utc>>,
    pub status: String,
    pub next: Option<chrono::DateTime<chrono::Utc>>,
    /// Dkron 1's shell job: the command at the top level.
    #[serde(skip_serializing)]
    pub command: String,
    /// Dkron 1's shell job: run the command through a shell.
    #[serde(skip_serializing)]
    pub shell: bool,
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(field, reason)
}

/// Reads a job body as Dkron does (see the module documentation).
pub fn parse(body: &[u8]) -> Result<DkronJob, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "job",
            format!("the body is not a Dkron job document (JSON): {e}"),
        )
    })?;
    from_value(value)
}

/// Reads one job of a decoded document (a body, or one element of an export).
pub fn from_value(value: Value) -> Result<DkronJob, Error> {
    let Value::Object(members) = value else {
        return Err(bad("job", "a Dkron job is a JSON object"));
    };
    let mut clean = serde_json::Map::new();
    for (key, value) in members {
        if value.is_null() {
            continue;
        }
        if READ_ONLY.contains(&key.as_str()) {
            // Dkron refuses a count that is not a number; one of its pages shows
            // `"success_count": "0,1,2"` as if it chose successful exit codes.
            if key.ends_with("_count") && !value.is_number() {
                return Err(bad(
                    &key,
                    "a read-only count of executions, not a setting (neither Dkron nor Kairos lets a job choose which exit codes succeed)",
                ));
            }
            continue;
        }
        if !WRITABLE.contains(&key.as_str()) {
            return Err(bad(
                &key,
                "not a field of a Dkron job (see docs/dkron.md for the fields Kairos reads)",
            ));
        }
        let value = match key.as_str() {
            "tags" | "metadata" | "executor_config" => strings(&key, value)?,
            "shell" => Value::Bool(legacy_shell(&value)?),
            _ => value,
        };
        clean.insert(key, value);
    }
    serde_json::from_value(Value::Object(clean)).map_err(|e| bad("job", e.to_string()))
}

/// A map of strings, where Dkron's clients also send numbers and booleans (and null
/// for nothing).
fn strings(field: &str, value: Value) -> Result<Value, Error> {
    let Value::Object(members) = value else {
        return Err(bad(field, "must be an object of strings"));
    };
    let mut out = serde_json::Map::new();
    for (k, v) in members {
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(bad(
                    &format!("{field}.{k}"),
                    "must be a string (or a number or a boolean)",
                ));
            }
        };
        out.insert(k, Value::String(text));
    }
    Ok(Value::Object(out))
}

fn legacy_shell(value: &Value) -> Result<bool, Error> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => go_bool("shell", s),
        _ => Err(bad("shell", "must be true or false")),
    }
}

/// Go's `strconv.ParseBool`, which Dkron uses for its string flags.
fn go_bool(field: &str, text: &str) -> Result<bool, Error> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(bad(field, format!("{other:?} is not true or false"))),
    }
}

/// Dkron's `tags` (`key: "value[:count]"`) as a selector and a count.
fn tags_to_target(tags: &BTreeMap<String, String>) -> pb::Target {
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
    pb::Target {
        selector: terms.join(","),
        // Dkron runs a job on every matching node unless a tag gives a count.
        count: Some(count.unwrap_or(0)),
        ..Default::default()
    }
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

fn refuse_unknown(
    cfg: &BTreeMap<String, String>,
    executor: &str,
    known: &[&str],
) -> Result<(), Error> {
    match cfg.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(
            &format!("executor_config.{k}"),
            format!(
                "not a setting of Dkron's {executor} executor ({})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// The command `/bin/sh -c` runs: as given when Dkron would run it through a shell,
/// otherwise its words (split as Dkron splits them) quoted one by one.
fn shell_command(command: &str, through_shell: bool) -> Result<String, Error> {
    if command.trim().is_empty() {
        return Err(bad(
            "executor_config.command",
            "the shell executor needs a command",
        ));
    }
    if through_shell {
        return Ok(command.to_string());
    }
    let words = shlex::split(command).ok_or_else(|| {
        bad(
            "executor_config.command",
            "unbalanced quotes: without \"shell\": \"true\" the command is split into words, as Dkron does",
        )
    })?;
    shlex::try_join(words.iter().map(String::as_str)).map_err(|e| {
        bad(
            "executor_config.command",
            format!("cannot be passed on word for word: {e}"),
        )
    })
}

fn shell_action(
    cfg: &BTreeMap<String, String>,
    command: &str,
    through_shell: bool,
) -> Result<(pb::job::Action, String), Error> {
    refuse_unknown(cfg, "shell", SHELL_SETTINGS)?;
    if cfg.contains_key("mem_limit") {
        return Err(bad(
            "executor_config.mem_limit",
            "Kairos does not limit a job's memory: run the command under a limit (e.g. `systemd-run --user --scope -p MemoryMax=512M CMD`, or `ulimit -v` with \"shell\": \"true\") and remove mem_limit",
        ));
    }
    let timeout = match cfg.get("timeout").map(|t| t.trim()) {
        None | Some("") => String::new(),
        Some(t) => parse_duration(t)
            .map(format_duration)
            .map_err(|reason| bad("executor_config.timeout", reason))?,
    };
    let get = |k: &str| cfg.get(k).cloned().unwrap_or_default();
    let action = pb::job::Action::Shell(pb::ShellAction {
        command: shell_command(command, through_shell)?,
        env: split_env(&get("env"))?,
        // Dkron jobs have no secrets; the API keeps those a stored job has.
        secret_env: HashMap::new(),
        cwd: get("cwd"),
    });
    Ok((action, timeout))
}

fn http_action(cfg: &BTreeMap<String, String>) -> Result<(pb::job::Action, String), Error> {
    refuse_unknown(cfg, "http", HTTP_SETTINGS)?;
    for key in ["tlsCertificateFile", "tlsCertificateKeyFile"] {
        if cfg.get(key).is_some_and(|v| !v.is_empty()) {
            return Err(bad(
                &format!("executor_config.{key}"),
                "Kairos HTTP jobs present no client certificate; remove it (a token in \"headers\" works)",
            ));
        }
    }
    let get = |k: &str| cfg.get(k).cloned().unwrap_or_default();
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
        .filter(|h| !h.is_empty())
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
    let expected_status = get("expectCode")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()) {
                Ok(c.to_string())
            } else {
                Err(bad(
                    "executor_config.expectCode",
                    format!(
                        "{c:?} is not a status code; give codes separated by commas, e.g. 200,206"
                    ),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Dkron's unit is the second; a duration with a unit is taken too.
    let seconds = get("timeout");
    let timeout = match seconds.trim() {
        "" => format_duration(std::time::Duration::from_secs(HTTP_DEFAULT_TIMEOUT_SECONDS)),
        t => match t.parse::<u64>() {
            Ok(s) => format_duration(std::time::Duration::from_secs(s)),
            Err(_) => parse_duration(t).map(format_duration).map_err(|_| {
                bad(
                    "executor_config.timeout",
                    format!("{t:?} is not a number of seconds"),
                )
            })?,
        },
    };
    let action = pb::job::Action::Http(pb::HttpAction {
        method: match get("method") {
            m if m.is_empty() => "GET".into(),
            m => m,
        },
        url: get("url"),
        headers,
        body: get("body"),
        expected_status,
        body_regex: get("expectBody"),
        insecure_skip_verify: go_bool("executor_config.tlsNoVerifyPeer", &get("tlsNoVerifyPeer"))?,
        ca_file: get("tlsRootCAsFile"),
    });
    Ok((action, timeout))
}

/// Translates Dkron's job into Kairos's document.
pub fn to_kairos(d: DkronJob) -> Result<pb::Job, Error> {
    if !d.processors.is_empty() {
        return Err(bad(
            "processors",
            "Kairos has no processors: executions are kept in its history (`kairos exec list`, the UI, /v1/jobs/{job}/executions) and announced by webhooks (job `notify`); remove processors",
        ));
    }
    let cfg = &d.executor_config;
    // A job with executor_config.command and no executor is a shell job.
    let executor = match d.executor.as_str() {
        "" if d.command.is_empty() && cfg.contains_key("command") => "shell",
        other => other,
    };
    let (action, timeout) = match executor {
        "shell" => {
            let command = cfg.get("command").cloned().unwrap_or_default();
            let through_shell = go_bool(
                "executor_config.shell",
                cfg.get("shell").map_or("", String::as_str),
            )?;
            shell_action(cfg, &command, through_shell)?
        }
        "" if !d.command.is_empty() => {
            if !cfg.is_empty() {
                return Err(bad(
                    "executor_config",
                    "give \"executor\": \"shell\" with executor_config, or the top-level \"command\" alone",
                ));
            }
            shell_action(cfg, &d.command, d.shell)?
        }
        "" => {
            return Err(bad(
                "executor",
                "a job needs an executor: \"shell\" (with executor_config.command) or \"http\"",
            ));
        }
        "http" => http_action(cfg)?,
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
    let child = !d.parent_job.is_empty();
    let schedule = dkron_schedule(&d.name, &d.schedule);
    if !child && schedule != d.schedule {
        metadata.insert(SCHEDULE_KEY.to_string(), d.schedule.clone());
    }
    Ok(pb::Job {
        name: d.name,
        // Dkron ignores a child's schedule: it runs after its parent only.
        schedule: if child { String::new() } else { schedule },
        timezone: d.timezone,
        action: Some(action),
        target: Some(tags_to_target(&d.tags)),
        timeout,
        retry: Some(pb::RetryPolicy {
            max_attempts: d.retries.saturating_add(1),
            ..Default::default()
        }),
        concurrency: d.concurrency,
        parent: d.parent_job,
        parent_on: if child {
            "success".into()
        } else {
            String::new()
        },
        metadata,
        paused: d.disabled,
        ephemeral: d.ephemeral,
        starts_at: d.starts_at.map(ts_from_dt),
        expires_at: d.expires_at.map(ts_from_dt),
        ..Default::default()
    })
}

/// Dkron's own schedule forms in Kairos's words: `@manually` is `@manual`, and each
/// `~` in a cron field is the value Dkron puts there — the sum of the name's
/// characters, reduced to the field's range (seconds and minutes 0–59, hours 0–23,
/// day of month 1–28, month 1–12, day of week 0–6) — so a migrated job fires at the
/// instants it fired at in Dkron.
fn dkron_schedule(name: &str, schedule: &str) -> String {
    let schedule = schedule.trim();
    if schedule == "@manually" {
        return "@manual".into();
    }
    if !schedule.contains('~') || schedule.starts_with('@') {
        return schedule.to_string();
    }
    let sum: u64 = name.chars().map(|c| u64::from(u32::from(c))).sum();
    let mut field = 0;
    let mut out = Vec::new();
    for part in schedule.split(' ') {
        if part.starts_with("TZ=") || part.starts_with("CRON_TZ=") {
            out.push(part.to_string());
            continue;
        }
        let value = match field {
            2 => sum % 24,
            3 => sum % 28 + 1,
            4 => sum % 12 + 1,
            5 => sum % 7,
            _ => sum % 60,
        };
        out.push(part.replace('~', &value.to_string()));
        if !part.is_empty() {
            field += 1;
        }
    }
    out.join(" ")
}

/// Kairos's selector as Dkron's tags, where it can be said that way (`key=value`
/// terms; a count on each when the job has one).
fn target_to_tags(target: &pb::Target) -> BTreeMap<String, String> {
    let count = target.count.unwrap_or(1);
    let mut tags = BTreeMap::new();
    for term in target.selector.split(',').map(str::trim) {
        let Some((k, v)) = term.split_once('=') else {
            continue;
        };
        if k.ends_with('!') || v.contains('(') {
            continue;
        }
        let value = if count == 0 {
            v.to_string()
        } else {
            format!("{v}:{count}")
        };
        tags.insert(k.trim().to_string(), value);
    }
    tags
}

/// Translates Kairos's job into Dkron's shape.
pub fn to_dkron(job: &pb::Job, children: Vec<String>) -> DkronJob {
    let mut executor_config = BTreeMap::new();
    let executor = match &job.action {
        Some(pb::job::Action::Shell(s)) => {
            executor_config.insert("command".to_string(), s.command.clone());
            // Kairos runs every command through /bin/sh -c.
            executor_config.insert("shell".to_string(), "true".to_string());
            if !s.env.is_empty() {
                let mut env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                env.sort();
                executor_config.insert("env".to_string(), env.join(","));
            }
            if !s.cwd.is_empty() {
                executor_config.insert("cwd".to_string(), s.cwd.clone());
            }
            if !job.timeout.is_empty() {
                executor_config.insert("timeout".to_string(), job.timeout.clone());
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
            if !h.expected_status.is_empty() {
                executor_config.insert("expectCode".to_string(), h.expected_status.join(","));
            }
            if !h.body_regex.is_empty() {
                executor_config.insert("expectBody".to_string(), h.body_regex.clone());
            }
            if h.insecure_skip_verify {
                executor_config.insert("tlsNoVerifyPeer".to_string(), "true".to_string());
            }
            if !h.ca_file.is_empty() {
                executor_config.insert("tlsRootCAsFile".to_string(), h.ca_file.clone());
            }
            if let Ok(t) = parse_duration(&job.timeout) {
                executor_config.insert("timeout".to_string(), t.as_secs().max(1).to_string());
            }
            "http"
        }
        None => "",
    };
    let mut metadata: BTreeMap<String, String> = job.metadata.clone().into_iter().collect();
    let displayname = metadata.remove(DISPLAYNAME_KEY).unwrap_or_default();
    let owner = metadata.remove(OWNER_KEY).unwrap_or_default();
    let owner_email = metadata.remove(OWNER_EMAIL_KEY).unwrap_or_default();
    let schedule = match metadata.remove(SCHEDULE_KEY) {
        Some(written) if dkron_schedule(&job.name, &written) == job.schedule => written,
        _ => job.schedule.clone(),
    };
    let status = job.status.clone().unwrap_or_default();
    let count_of = |s: ExecutionStatus| status.outcome_counts.get(s.as_str()).copied().unwrap_or(0);
    let errors: u64 = ExecutionStatus::ALL
        .iter()
        .filter(|s| s.is_failure())
        .map(|s| count_of(*s))
        .sum();
    let last_outcome = status.last_outcome.parse::<ExecutionStatus>().ok();
    DkronJob {
        id: job.name.clone(),
        name: job.name.clone(),
        displayname,
        schedule,
        timezone: job.timezone.clone(),
        owner,
        owner_email,
        disabled: job.paused,
        tags: target_to_tags(&job.target.clone().unwrap_or_default()),
        metadata,
        retries: job
            .retry
            .as_ref()
            .map_or(0, |r| r.max_attempts.saturating_sub(1)),
        parent_job: job.parent.clone(),
        dependent_jobs: children,
        processors: BTreeMap::new(),
        concurrency: job.concurrency.clone(),
        executor: executor.to_string(),
        executor_config,
        ephemeral: job.ephemeral,
        starts_at: job.starts_at.as_ref().map(dt_from_ts),
        expires_at: job.expires_at.as_ref().map(dt_from_ts),
        success_count: count_of(ExecutionStatus::Succeeded),
        error_count: errors,
        last_success: status.last_success_at.as_ref().map(dt_from_ts).or_else(|| {
            // Records written before `last_success_at` existed.
            (last_outcome == Some(ExecutionStatus::Succeeded))
                .then(|| status.last_finished_at.as_ref().map(dt_from_ts))
                .flatten()
        }),
        last_error: status.last_failure_at.as_ref().map(dt_from_ts).or_else(|| {
            last_outcome
                .is_some_and(ExecutionStatus::is_failure)
                .then(|| status.last_finished_at.as_ref().map(dt_from_ts))
                .flatten()
        }),
        status: dkron_status(&status),
        next: status.next_fire_at.as_ref().map(dt_from_ts),
        command: String::new(),
        shell: false,
    }
}

/// Dkron's job status: `running`, `success`, `failed`, or empty before the first run
/// (Dkron's `untriggered`).
fn dkron_status(status: &pb::JobStatus) -> String {
    if status.running > 0 {
        return "running".into();
    }
    match status.last_outcome.parse::<ExecutionStatus>().ok() {
        None => String::new(),
        Some(ExecutionStatus::Succeeded) => "success".into(),
        Some(s) if s.is_failure() => "failed".into(),
        Some(s) => s.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dkron_job() -> DkronJob {
        from_value(json!({
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
            "executor_config": {"command": "backup.sh", "env": "A=1,B=2", "cwd": "/srv", "timeout": "1h30m"},
            "success_count": 99
        }))
        .unwrap()
    }

    fn shell_of(doc: &pb::Job) -> &pb::ShellAction {
        match &doc.action {
            Some(pb::job::Action::Shell(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dkron_job_becomes_a_valid_kairos_document() {
        let doc = to_kairos(dkron_job()).unwrap();
        let (normalized, job) = kairos_common::job::normalize(&doc).unwrap();
        assert!(job.paused);
        assert_eq!(job.retry.max_attempts, 3);
        assert_eq!(job.target.count, 2);
        assert_eq!(job.target.selector.to_string(), "role=web");
        assert_eq!(normalized.timeout, "1h30m");
        assert_eq!(
            normalized.metadata.get(OWNER_KEY).map(String::as_str),
            Some("Platform")
        );
        let s = shell_of(&normalized);
        assert_eq!(s.command, "backup.sh");
        assert_eq!(s.env.get("B").map(String::as_str), Some("2"));
        assert_eq!(s.cwd, "/srv");
    }

    #[test]
    fn the_translation_round_trips() {
        let (normalized, _) =
            kairos_common::job::normalize(&to_kairos(dkron_job()).unwrap()).unwrap();
        let back = to_dkron(&normalized, vec!["child".into()]);
        assert_eq!(back.id, "backup");
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
        assert_eq!(
            back.executor_config.get("timeout").map(String::as_str),
            Some("1h30m")
        );
        assert_eq!(back.dependent_jobs, vec!["child".to_string()]);
        assert!(
            !back.metadata.contains_key(OWNER_KEY),
            "internal keys stay internal"
        );
        // What was read back is accepted again as it is.
        let again = serde_json::to_value(&back).unwrap();
        let doc = to_kairos(from_value(again).unwrap()).unwrap();
        assert_eq!(shell_of(&doc).command, "backup.sh");
    }

    #[test]
    fn tags_without_a_count_mean_every_matching_executor() {
        let doc = to_kairos(
            from_value(
                json!({"name": "a", "schedule": "@every 1m", "tags": {"my_role": "web"},
                "executor": "shell", "executor_config": {"command": "date"}}),
            )
            .unwrap(),
        )
        .unwrap();
        let t = doc.target.unwrap();
        assert_eq!((t.selector.as_str(), t.count), ("my_role=web", Some(0)));
        let doc = to_kairos(
            from_value(json!({"name": "a", "schedule": "@every 1m",
                "tags": {"my_role": "web:1", "role": "dkron:2"},
                "executor": "shell", "executor_config": {"command": "date"}}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(doc.target.unwrap().count, Some(1), "the smallest count");
    }

    #[test]
    fn nulls_are_absent_and_read_only_fields_are_ignored() {
        let d = from_value(json!({
            "id": "job1", "name": "job1", "displayname": null, "schedule": "@every 10s",
            "timezone": null, "tags": null, "metadata": {"a": null, "b": 1},
            "processors": null, "dependent_jobs": null, "last_success": null,
            "starts_at": null, "executor": "shell",
            "executor_config": {"command": "date", "timeout": null}, "status": "success",
            "next": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(d.metadata.get("b").map(String::as_str), Some("1"));
        assert!(!d.metadata.contains_key("a"));
        to_kairos(d).unwrap();
    }

    #[test]
    fn fields_kairos_cannot_honour_are_refused_by_name() {
        let field_of = |v: Value| match from_value(v).and_then(to_kairos) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let base = |extra: Value| {
            let mut v = json!({"name": "a", "schedule": "@every 1m", "executor": "shell",
                "executor_config": {"command": "date"}});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        assert_eq!(
            field_of(base(json!({"processors": {"files": {"forward": "true"}}}))),
            "processors"
        );
        assert_eq!(
            field_of(base(
                json!({"executor_config": {"command": "x", "mem_limit": "1GB"}})
            )),
            "executor_config.mem_limit"
        );
        assert_eq!(
            field_of(base(
                json!({"executor_config": {"command": "x", "memlimit": "1GB"}})
            )),
            "executor_config.memlimit"
        );
        assert_eq!(field_of(base(json!({"retry": 3}))), "retry");
        assert_eq!(field_of(base(json!({"executor": "kafka"}))), "executor");
        assert_eq!(
            field_of(base(json!({"executor": "http",
                "executor_config": {"url": "https://x", "tlsCertificateFile": "/c.pem"}}))),
            "executor_config.tlsCertificateFile"
        );
        assert_eq!(
            field_of(base(
                json!({"executor_config": {"command": "x", "timeout": "foreverandever"}})
            )),
            "executor_config.timeout"
        );
        assert_eq!(
            field_of(base(
                json!({"executor_config": {"command": "x", "env": "NOPE"}})
            )),
            "executor_config.env"
        );
        assert_eq!(
            field_of(base(json!({"executor_config": {"command": "echo 'open"}}))),
            "executor_config.command"
        );
    }

    #[test]
    fn without_shell_the_command_runs_word_for_word() {
        let cmd = |cfg: Value| {
            let doc = to_kairos(
                from_value(
                    json!({"name": "a", "schedule": "@every 1m", "executor": "shell",
                    "executor_config": cfg}),
                )
                .unwrap(),
            )
            .unwrap();
            shell_of(&doc).command.clone()
        };
        assert_eq!(
            cmd(json!({"command": "echo Hello Dkron"})),
            "echo Hello Dkron"
        );
        // A pipe is an argument of ps without a shell, as in Dkron...
        assert_eq!(
            cmd(json!({"command": "ps aux | grep nginx"})),
            "ps aux '|' grep nginx"
        );
        // ... and a pipe with one.
        assert_eq!(
            cmd(json!({"command": "ps aux | grep nginx", "shell": "true"})),
            "ps aux | grep nginx"
        );
        assert_eq!(
            cmd(json!({"command": "echo \"Hello from parent\""})),
            "echo 'Hello from parent'"
        );
        // Dkron 1's top-level form.
        let doc = to_kairos(
            from_value(json!({"name": "a", "schedule": "@every 2m", "command": "/bin/true"}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(shell_of(&doc).command, "/bin/true");
    }

    #[test]
    fn dkron_s_schedule_forms_are_translated() {
        // "tilde": t+i+l+d+e = 116+105+108+100+101 = 530.
        assert_eq!(dkron_schedule("tilde", "0 ~ * * * *"), "0 50 * * * *");
        assert_eq!(dkron_schedule("tilde", "~ ~ ~ ~ ~ ~"), "50 50 2 27 3 5");
        assert_eq!(dkron_schedule("tilde", "0 ~/15 * * * *"), "0 50/15 * * * *");
        assert_eq!(dkron_schedule("a", "@manually"), "@manual");
        assert_eq!(dkron_schedule("a", "@every 1m"), "@every 1m");
        let doc = to_kairos(
            from_value(json!({"name": "tilde", "schedule": "0 ~ * * * *",
                "executor": "shell", "executor_config": {"command": "date"}}))
            .unwrap(),
        )
        .unwrap();
        let (normalized, _) = kairos_common::job::normalize(&doc).unwrap();
        assert_eq!(normalized.schedule, "0 50 * * * *");
        assert_eq!(to_dkron(&normalized, Vec::new()).schedule, "0 ~ * * * *");
        assert!(matches!(
            from_value(json!({"name": "a", "success_count": "0,1,2"})),
            Err(Error::InvalidArgument { field, .. }) if field == "success_count"
        ));
    }

    #[test]
    fn http_settings_keep_dkron_s_units() {
        let doc = to_kairos(
            from_value(
                json!({"name": "a", "schedule": "@every 1m", "executor": "http",
                "executor_config": {"method": "GET", "url": "http://example.com",
                    "headers": "[]", "body": "", "timeout": "30", "expectCode": "200,206",
                    "expectBody": "", "debug": "true"}}),
            )
            .unwrap(),
        )
        .unwrap();
        let (normalized, job) = kairos_common::job::normalize(&doc).unwrap();
        assert_eq!(job.timeout, Some(std::time::Duration::from_secs(30)));
        let Some(pb::job::Action::Http(h)) = &normalized.action else {
            panic!()
        };
        assert_eq!(h.expected_status, ["200", "206"]);
        let back = to_dkron(&normalized, Vec::new());
        assert_eq!(back.executor_config["timeout"], "30");
        assert_eq!(back.executor_config["expectCode"], "200,206");
        // No timeout: Dkron's 30 seconds.
        let doc = to_kairos(
            from_value(
                json!({"name": "a", "schedule": "@every 1m", "executor": "http",
                "executor_config": {"url": "http://example.com",
                    "headers": "[\"Authorization: Basic a:b\"]"}}),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(doc.timeout, "30s");
        let Some(pb::job::Action::Http(h)) = &doc.action else {
            panic!()
        };
        assert_eq!(h.method, "GET");
        assert_eq!(h.headers["Authorization"], "Basic a:b");
    }
}
