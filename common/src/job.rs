//! Jobs: the validated domain form of a job document, and the checks that produce it.
//!
//! A user's job arrives as a `pb::Job` (from gRPC, from the CLI's YAML, from the
//! Dkron-compatible JSON API). [`validate`] checks every field and returns a [`Job`]
//! in which nothing is left to interpret: schedules are parsed, durations are
//! [`Duration`]s, policy words are enums and every default is filled in. [`normalize`]
//! additionally returns the document rewritten in canonical form, with defaults
//! written out, so that two documents meaning the same thing are byte-for-byte equal
//! (PutJob can then answer `unchanged`, and `job get` shows what will actually happen).
//!
//! Invariants:
//! - every error is `InvalidArgument` whose field is the document path of the bad
//!   value (`shell.command`, `retry.max_backoff`) and whose reason names the value;
//! - `validate(&job.to_proto())` gives back an equal job, so `normalize` is
//!   idempotent;
//! - size bounds (command, env, body, metadata, description) keep one job small enough
//!   to replicate through raft without thought.
//!
//! The HTTP body regex is compiled here only to refuse a bad one at apply time; the
//! domain job keeps its source text and the executor compiles it again for each run.
//!
//! Deliberately not here: whether the parent job exists and whether parents form a
//! cycle (that needs the other jobs; the state machine checks it), resolving URLs, and
//! anything the server fills in (version, timestamps, status).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use kairos_proto::v1 as pb;

use crate::duration::{format_duration, parse_duration};
use crate::schedule::Schedule;
use crate::selector::Selector;
use crate::status::{Concurrency, MisfirePolicy, ParentOn, TargetStrategy};
use crate::{Error, Result};

/// Longest job name.
pub const MAX_NAME_CHARS: usize = 128;
/// Largest shell command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Largest environment of a shell action (keys, values and separators), in bytes.
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// Largest HTTP request body, in bytes.
pub const MAX_HTTP_BODY_BYTES: usize = 64 * 1024;
/// Longest URL, path (cwd, CA file) or regular expression, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most HTTP headers.
pub const MAX_HTTP_HEADERS: usize = 64;
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Attempts when none are given: no retry.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 1;
/// Delay before the second attempt when none is given.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Cap on the doubling backoff when none is given (raised to the backoff if smaller).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How late a missed instant may still be run when no window is given.
pub const DEFAULT_MISFIRE_WINDOW: Duration = Duration::from_secs(60);
/// Executions kept per job when none is given.
pub const DEFAULT_HISTORY_KEEP: u32 = 100;
/// Most executions a job may keep.
pub const MAX_HISTORY_KEEP: u32 = 10_000;
/// Most metadata entries.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 63;
/// Longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Executors count, when none is given: exactly one matching executor runs each fire.
pub const DEFAULT_TARGET_COUNT: u32 = 1;
/// Environment names reserved for the identity the executor passes to each run.
pub const RESERVED_ENV_PREFIX: &str = "KAIROS_";

const NAME_PATTERN: &str = "[a-z0-9][a-z0-9_.-]{0,127}";

/// A job's unique name, checked against `[a-z0-9][a-z0-9_.-]{0,127}` so that it is
/// safe in URLs, storage keys, metrics labels and file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobName(String);

impl JobName {
    /// Checks a name; the error's field is `name`.
    pub fn parse(s: &str) -> Result<JobName> {
        let valid = s.len() <= MAX_NAME_CHARS
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || (i > 0 && matches!(b, b'_' | b'.' | b'-'))
            })
            && !s.is_empty();
        if valid {
            Ok(JobName(s.to_string()))
        } else if s.is_empty() {
            Err(Error::invalid(
                "name",
                format!("a job needs a name matching {NAME_PATTERN}"),
            ))
        } else {
            Err(Error::invalid(
                "name",
                format!("{s:?} must match {NAME_PATTERN}"),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for JobName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for JobName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        JobName::parse(s)
    }
}

/// A validated job: everything the scheduler and executor need, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Unique key of the job everywhere (storage, API, metrics, `KAIROS_JOB`).
    pub name: JobName,
    /// When it fires by itself (`@manual` for a job that only follows its parent).
    pub schedule: Schedule,
    /// What a run does.
    pub action: Action,
    /// Which executors run each fire, and how many.
    pub target: Target,
    /// Longest a run may take before it is killed (`timed_out`); `None` = no limit.
    pub timeout: Option<Duration>,
    /// How failed, timed-out or lost attempts are tried again.
    pub retry: RetryPolicy,
    /// What a start does while an execution of this job is running.
    pub concurrency: Concurrency,
    /// What happens to instants missed while no leader could fire them.
    pub misfire: Misfire,
    /// The job whose finished executions start this one.
    pub parent: Option<Parent>,
    /// Free-form labels for people and filters.
    pub metadata: BTreeMap<String, String>,
    /// A paused job keeps its definition and history but does not fire.
    pub paused: bool,
    /// Executions kept for this job (1..=10 000).
    pub history_keep: u32,
    /// Free text shown in listings.
    pub description: String,
    /// No fire before this instant.
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// No fire after this instant.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Deleted after its first successful execution.
    pub ephemeral: bool,
    /// Webhooks told about its executions.
    pub notify: Vec<Notify>,
}

/// Most webhooks one job may have.
pub const MAX_NOTIFY: usize = 10;

/// A webhook and the events it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub url: String,
    /// Empty in the document means success and failure.
    pub events: std::collections::BTreeSet<NotifyEvent>,
    pub headers: BTreeMap<String, String>,
}

/// What a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// An execution started.
    Start,
    /// An execution succeeded.
    Success,
    /// An execution failed, timed out or was lost.
    Failure,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Start => "start",
            NotifyEvent::Success => "success",
            NotifyEvent::Failure => "failure",
        }
    }

    fn parse(s: &str) -> Option<NotifyEvent> {
        match s {
            "start" => Some(NotifyEvent::Start),
            "success" => Some(NotifyEvent::Success),
            "failure" => Some(NotifyEvent::Failure),
            _ => None,
        }
    }
}

impl Job {
    /// True when `at` lies inside the job's active period (`starts_at`..=`expires_at`).
    pub fn active_at(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.starts_at.is_none_or(|s| at >= s) && self.expires_at.is_none_or(|e| at <= e)
    }

    /// The first instant the job fires at strictly after `after`, inside its active
    /// period.
    pub fn next_fire_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let from = match self.starts_at {
            Some(s) if s > after => s - chrono::Duration::milliseconds(1),
            _ => after,
        };
        let next = self.schedule.next_after(from)?;
        self.expires_at.is_none_or(|e| next <= e).then_some(next)
    }
}

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A command run with `sh -c` on the executor.
    Shell(ShellAction),
    /// An HTTP request sent by the executor.
    Http(HttpAction),
}

/// A shell command and its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellAction {
    /// Passed to `sh -c` as written.
    pub command: String,
    /// Added to the executor's environment (after `KAIROS_*`, which it cannot override).
    pub env: BTreeMap<String, String>,
    /// Absolute working directory; `None` = the executor's own.
    pub cwd: Option<String>,
    /// Variables whose values are secret (never returned, logged or sent in a
    /// webhook); no name is also in `env`.
    pub secret_env: BTreeMap<String, SecretSource>,
}

/// Where a secret variable's value comes from. Its `Debug` never prints a value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value, held in the replicated state and sent to the executor that runs it.
    Value(String),
    /// An absolute path read on the executor at each start.
    File(String),
    /// A variable of the executor's own environment.
    Env(String),
    /// Keep the value already stored under this name (resolved when the write is
    /// applied, against the job as stored then); also how reads show a hidden value.
    Stored,
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(<hidden>)"),
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretSource::Stored => f.write_str("Stored"),
        }
    }
}

impl SecretSource {
    fn to_proto(&self) -> pb::SecretEnv {
        use pb::secret_env::Source;
        let source = match self {
            SecretSource::Value(v) => Source::Value(v.clone()),
            SecretSource::File(p) => Source::File(p.clone()),
            SecretSource::Env(n) => Source::Env(n.clone()),
            SecretSource::Stored => Source::Stored(true),
        };
        pb::SecretEnv {
            source: Some(source),
        }
    }
}

/// Hides every secret value of a job document: each `value` becomes `stored: true`,
/// which a client may send back unchanged to keep it. Every answer that carries a
/// stored job goes through this.
pub fn redact(job: &mut pb::Job) {
    if let Some(pb::job::Action::Shell(shell)) = &mut job.action {
        for secret in shell.secret_env.values_mut() {
            if let Some(pb::secret_env::Source::Value(_)) = secret.source {
                secret.source = Some(pb::secret_env::Source::Stored(true));
            }
        }
    }
}

/// Replaces each `stored: true` secret of `job` (a normalized document about to be
/// stored) by the source `previous` (the job as stored now, if any) holds under the
/// same name. Deterministic: the state machine calls it when it applies the write.
pub fn keep_stored_secrets(job: &mut pb::Job, previous: Option<&pb::Job>) -> Result<()> {
    let Some(pb::job::Action::Shell(shell)) = &mut job.action else {
        return Ok(());
    };
    let stored = match previous.and_then(|p| p.action.as_ref()) {
        Some(pb::job::Action::Shell(old)) => Some(&old.secret_env),
        _ => None,
    };
    for (name, secret) in &mut shell.secret_env {
        if !matches!(secret.source, Some(pb::secret_env::Source::Stored(_))) {
            continue;
        }
        let kept = stored
            .and_then(|s| s.get(name))
            .filter(|s| !matches!(s.source, Some(pb::secret_env::Source::Stored(_))));
        match kept {
            Some(old) => *secret = old.clone(),
            None => {
                return Err(Error::invalid(
                    format!("shell.secret_env.{name}.stored"),
                    format!(
                        "job {} has no stored secret {name} to keep; give its value, file or env",
                        job.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An HTTP request and what counts as its success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAction {
    /// Upper-case method (`GET` when none was given).
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers, sent as given.
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as given (empty = none).
    pub body: String,
    /// Inclusive status ranges that count as success (`[(200, 299)]` when none given).
    pub expected_status: Vec<(u16, u16)>,
    /// When set, the response body must match this regular expression.
    pub body_regex: Option<String>,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// PEM file on the executor with extra trusted CA certificates.
    pub ca_file: Option<String>,
}

impl Job {
    /// Whether a secret of this job says `stored: true` (to be resolved against the
    /// stored job before it is stored or run).
    pub fn keeps_stored_secrets(&self) -> bool {
        match &self.action {
            Action::Shell(shell) => shell
                .secret_env
                .values()
                .any(|s| *s == SecretSource::Stored),
            Action::Http(_) => false,
        }
    }
}

impl HttpAction {
    /// Whether a response status counts as success.
    pub fn is_expected_status(&self, status: u16) -> bool {
        status_expected(&self.expected_status, status)
    }
}

/// Whether `status` falls in one of the inclusive `ranges`.
pub fn status_expected(ranges: &[(u16, u16)], status: u16) -> bool {
    ranges
        .iter()
        .any(|(low, high)| (*low..=*high).contains(&status))
}

/// One inclusive status range as a job writes it: `404`, `200-299`.
pub fn status_range_text(&(low, high): &(u16, u16)) -> String {
    if low == high {
        low.to_string()
    } else {
        format!("{low}-{high}")
    }
}

/// Which executors run each fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Tags an executor must have; empty = every executor.
    pub selector: Selector,
    /// How many matching executors run each fire; 0 = every match (broadcast).
    pub count: u32,
    /// How the `count` executors are picked among the matches.
    pub strategy: TargetStrategy,
    /// How long a fire may wait for a matching executor before it is recorded
    /// `no_target`; `None` = the scheduler's default.
    pub wait: Option<Duration>,
}

impl Target {
    /// True when every matching executor runs each fire.
    pub fn is_broadcast(&self) -> bool {
        self.count == 0
    }
}

impl Default for Target {
    fn default() -> Self {
        Target {
            selector: Selector::default(),
            count: DEFAULT_TARGET_COUNT,
            strategy: TargetStrategy::Spread,
            wait: None,
        }
    }
}

/// How failed, timed-out or lost attempts are tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt, doubled for each further one.
    pub backoff: Duration,
    /// Cap on the doubled delay; never below `backoff`.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempt` (2 for the first retry): `backoff`
    /// doubled `attempt - 2` times, capped at `max_backoff`; zero for the first.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let doublings = attempt - 2;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

/// What happens to instants that passed while no leader could fire them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfire {
    /// Skip them, run the newest once, or run each one.
    pub policy: MisfirePolicy,
    /// Instants older than this are recorded `missed` whatever the policy.
    pub window: Duration,
}

impl Default for Misfire {
    fn default() -> Self {
        Misfire {
            policy: MisfirePolicy::RunOnce,
            window: DEFAULT_MISFIRE_WINDOW,
        }
    }
}

/// The job this one follows, and on which outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// The parent job (its existence and the absence of cycles are checked against
    /// the stored jobs, not here).
    pub name: JobName,
    /// Which of the parent's outcomes start this job.
    pub on: ParentOn,
}

impl Job {
    /// The job as a normalized document: every default written out, durations and
    /// the selector in canonical form, output-only fields empty.
    pub fn to_proto(&self) -> pb::Job {
        let action = match &self.action {
            Action::Shell(shell) => pb::job::Action::Shell(pb::ShellAction {
                command: shell.command.clone(),
                env: to_hash_map(&shell.env),
                cwd: shell.cwd.clone().unwrap_or_default(),
                secret_env: shell
                    .secret_env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_proto()))
                    .collect(),
            }),
            Action::Http(http) => pb::job::Action::Http(pb::HttpAction {
                method: http.method.clone(),
                url: http.url.clone(),
                headers: to_hash_map(&http.headers),
                body: http.body.clone(),
                expected_status: http.expected_status.iter().map(status_range_text).collect(),
                body_regex: http.body_regex.clone().unwrap_or_default(),
                insecure_skip_verify: http.insecure_skip_verify,
                ca_file: http.ca_file.clone().unwrap_or_default(),
            }),
        };
        pb::Job {
            name: self.name.to_string(),
            schedule: self.schedule.source().to_string(),
            timezone: self.schedule.timezone().name().to_string(),
            action: Some(action),
            target: Some(pb::Target {
                selector: self.target.selector.to_string(),
                count: Some(self.target.count),
                strategy: self.target.strategy.as_str().to_string(),
                wait: self.target.wait.map(format_duration).unwrap_or_default(),
            }),
            timeout: self.timeout.map(format_duration).unwrap_or_default(),
            retry: Some(pb::RetryPolicy {
                max_attempts: self.retry.max_attempts,
                backoff: format_duration(self.retry.backoff),
                max_backoff: format_duration(self.retry.max_backoff),
            }),
            concurrency: self.concurrency.as_str().to_string(),
            misfire: Some(pb::Misfire {
                policy: self.misfire.policy.as_str().to_string(),
                window: format_duration(self.misfire.window),
            }),
            parent: self
                .parent
                .as_ref()
                .map(|p| p.name.to_string())
                .unwrap_or_default(),
            parent_on: self
                .parent
                .as_ref()
                .map(|p| p.on.as_str().to_string())
                .unwrap_or_default(),
            metadata: to_hash_map(&self.metadata),
            paused: self.paused,
            history: Some(pb::History {
                keep: self.history_keep,
            }),
            description: self.description.clone(),
            starts_at: self.starts_at.map(kairos_proto::Timestamp::from),
            expires_at: self.expires_at.map(kairos_proto::Timestamp::from),
            ephemeral: self.ephemeral,
            notify: self
                .notify
                .iter()
                .map(|n| pb::Notify {
                    url: n.url.clone(),
                    events: n.events.iter().map(|e| e.as_str().to_string()).collect(),
                    headers: to_hash_map(&n.headers),
                })
                .collect(),
            version: 0,
            created_at: None,
            updated_at: None,
            status: None,
        }
    }
}

/// Decoding a document is validating it.
impl TryFrom<&pb::Job> for Job {
    type Error = Error;

    fn try_from(job: &pb::Job) -> Result<Job> {
        validate(job)
    }
}

/// Checks every field of a job document and returns the domain job, defaults applied.
pub fn validate(job: &pb::Job) -> Result<Job> {
    let name = JobName::parse(&job.name)?;

    let parent_name = if job.parent.is_empty() {
        None
    } else {
        let parent = JobName::parse(&job.parent).map_err(|_| {
            Error::invalid(
                "parent",
                format!("{:?} is not a job name ({NAME_PATTERN})", job.parent),
            )
        })?;
        if parent == name {
            return Err(Error::invalid(
                "parent",
                format!("a job cannot be its own parent ({name})"),
            ));
        }
        Some(parent)
    };

    let schedule = if job.schedule.trim().is_empty() {
        if parent_name.is_none() {
            return Err(Error::invalid(
                "schedule",
                "a job needs a schedule (cron, @every, @at or @manual) or a parent",
            ));
        }
        Schedule::parse("@manual", &job.timezone)?
    } else {
        Schedule::parse(&job.schedule, &job.timezone)?
    };

    let action = match &job.action {
        None => return Err(Error::invalid("action", "a job needs shell or http")),
        Some(pb::job::Action::Shell(shell)) => Action::Shell(validate_shell(shell)?),
        Some(pb::job::Action::Http(http)) => Action::Http(validate_http(http)?),
    };

    let target = match &job.target {
        None => Target::default(),
        Some(target) => validate_target(target)?,
    };

    let timeout = optional_duration("timeout", &job.timeout)?;
    if timeout == Some(Duration::ZERO) {
        return Err(Error::invalid(
            "timeout",
            "a timeout of 0s would stop every run at once; leave it empty for no limit",
        ));
    }

    let retry = match &job.retry {
        None => RetryPolicy::default(),
        Some(retry) => validate_retry(retry)?,
    };

    let concurrency = word("concurrency", &job.concurrency, Concurrency::Allow)?;

    let misfire = match &job.misfire {
        None => Misfire::default(),
        Some(misfire) => Misfire {
            policy: word("misfire.policy", &misfire.policy, MisfirePolicy::RunOnce)?,
            window: optional_duration("misfire.window", &misfire.window)?
                .unwrap_or(DEFAULT_MISFIRE_WINDOW),
        },
    };

    let parent = match parent_name {
        Some(name) => Some(Parent {
            name,
            on: word("parent_on", &job.parent_on, ParentOn::Success)?,
        }),
        None if !job.parent_on.is_empty() => {
            return Err(Error::invalid(
                "parent_on",
                format!("parent_on is {:?} but the job has no parent", job.parent_on),
            ));
        }
        None => None,
    };

    let metadata = validate_metadata(&job.metadata)?;

    let history_keep = match job.history.as_ref().map_or(0, |h| h.keep) {
        0 => DEFAULT_HISTORY_KEEP,
        keep if keep > MAX_HISTORY_KEEP => {
            return Err(Error::invalid(
                "history.keep",
                format!("{keep} executions is more than the {MAX_HISTORY_KEEP} a job may keep"),
            ));
        }
        keep => keep,
    };

    let description_chars = job.description.chars().count();
    if description_chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            format!(
                "the description is {description_chars} characters; at most {MAX_DESCRIPTION_CHARS}"
            ),
        ));
    }

    let starts_at = job
        .starts_at
        .map(|t| timestamp("starts_at", &t))
        .transpose()?;
    let expires_at = job
        .expires_at
        .map(|t| timestamp("expires_at", &t))
        .transpose()?;
    if let (Some(s), Some(e)) = (starts_at, expires_at)
        && e <= s
    {
        return Err(Error::invalid(
            "expires_at",
            format!(
                "{} is not after starts_at {}",
                e.to_rfc3339(),
                s.to_rfc3339()
            ),
        ));
    }
    let notify = validate_notify(&job.notify)?;

    Ok(Job {
        name,
        schedule,
        action,
        target,
        timeout,
        retry,
        concurrency,
        misfire,
        parent,
        metadata,
        paused: job.paused,
        history_keep,
        description: job.description.clone(),
        starts_at,
        expires_at,
        ephemeral: job.ephemeral,
        notify,
    })
}

/// Validates, then rewrites the document in canonical form: defaults written out,
/// durations and selector canonical, output-only fields cleared. Documents that mean
/// the same job normalize to equal documents.
pub fn normalize(job: &pb::Job) -> Result<(pb::Job, Job)> {
    let domain = validate(job)?;
    Ok((domain.to_proto(), domain))
}

fn timestamp(field: &str, t: &kairos_proto::Timestamp) -> Result<chrono::DateTime<chrono::Utc>> {
    t.to_datetime().ok_or_else(|| {
        Error::invalid(
            field,
            format!("{}s {}ns is not a valid time", t.seconds, t.nanos),
        )
    })
}

fn validate_notify(notify: &[pb::Notify]) -> Result<Vec<Notify>> {
    if notify.len() > MAX_NOTIFY {
        return Err(Error::invalid(
            "notify",
            format!("{} webhooks; at most {MAX_NOTIFY}", notify.len()),
        ));
    }
    notify
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let field = |f: &str| format!("notify[{i}].{f}");
            let url = n.url.trim();
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            let host_ok = url
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
            if !scheme_ok || !host_ok || url.chars().any(char::is_whitespace) {
                return Err(Error::invalid(
                    field("url"),
                    format!("{:?} is not an absolute http(s) URL", n.url),
                ));
            }
            let mut events = std::collections::BTreeSet::new();
            for e in &n.events {
                let event = NotifyEvent::parse(e).ok_or_else(|| {
                    Error::invalid(
                        field("events"),
                        format!("{e:?} is not one of: start, success, failure"),
                    )
                })?;
                events.insert(event);
            }
            if events.is_empty() {
                events.insert(NotifyEvent::Success);
                events.insert(NotifyEvent::Failure);
            }
            for (k, v) in &n.headers {
                let valid_name = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !valid_name || v.chars().any(|c| c == '\r' || c == '\n') {
                    return Err(Error::invalid(
                        field("headers"),
                        format!("{k:?} is not a valid header"),
                    ));
                }
            }
            Ok(Notify {
                url: url.to_string(),
                events,
                headers: n
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
        })
        .collect()
}

fn validate_shell(shell: &pb::ShellAction) -> Result<ShellAction> {
    let command = &shell.command;
    if command.trim().is_empty() {
        return Err(Error::invalid("shell.command", "the command is empty"));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(Error::invalid(
            "shell.command",
            format!(
                "the command is {} bytes; at most {MAX_COMMAND_BYTES}",
                command.len()
            ),
        ));
    }
    if command.contains('\0') {
        return Err(Error::invalid(
            "shell.command",
            "the command contains a NUL byte",
        ));
    }

    let env = to_btree_map(&shell.env);
    let mut env_bytes = 0usize;
    for key in env.keys().chain(shell.secret_env.keys()) {
        let field = if env.contains_key(key) {
            "shell.env"
        } else {
            "shell.secret_env"
        };
        if !is_env_name(key) {
            return Err(Error::invalid(
                field,
                format!("{key:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        if key.starts_with(RESERVED_ENV_PREFIX) {
            return Err(Error::invalid(
                field,
                format!(
                    "{key:?}: names starting with {RESERVED_ENV_PREFIX} are set by the executor"
                ),
            ));
        }
    }
    let mut secret_env = BTreeMap::new();
    for (key, secret) in &shell.secret_env {
        if env.contains_key(key) {
            return Err(Error::invalid(
                format!("shell.secret_env.{key}"),
                format!("{key} is also in shell.env; a variable is either plain or secret"),
            ));
        }
        let source = validate_secret(key, secret)?;
        env_bytes += key.len()
            + 2
            + match &source {
                SecretSource::Value(v) | SecretSource::File(v) | SecretSource::Env(v) => v.len(),
                SecretSource::Stored => 0,
            };
        secret_env.insert(key.clone(), source);
    }
    for (key, value) in &env {
        if value.contains('\0') {
            return Err(Error::invalid(
                "shell.env",
                format!("the value of {key:?} contains a NUL byte"),
            ));
        }
        env_bytes += key.len() + value.len() + 2;
    }
    if env_bytes > MAX_ENV_BYTES {
        return Err(Error::invalid(
            "shell.env",
            format!("the environment is {env_bytes} bytes; at most {MAX_ENV_BYTES}"),
        ));
    }

    let cwd = optional_path("shell.cwd", &shell.cwd, true)?;
    Ok(ShellAction {
        command: command.clone(),
        env,
        cwd,
        secret_env,
    })
}

/// One secret variable's source. Errors name the variable, never its value.
fn validate_secret(key: &str, secret: &pb::SecretEnv) -> Result<SecretSource> {
    use pb::secret_env::Source;
    let field = |what: &str| format!("shell.secret_env.{key}{what}");
    match &secret.source {
        None | Some(Source::Stored(false)) => Err(Error::invalid(
            field(""),
            "give exactly one of value, file, env or stored: true",
        )),
        Some(Source::Stored(true)) => Ok(SecretSource::Stored),
        Some(Source::Value(v)) => {
            if v.contains('\0') {
                return Err(Error::invalid(
                    field(".value"),
                    "the value contains a NUL byte",
                ));
            }
            Ok(SecretSource::Value(v.clone()))
        }
        Some(Source::File(path)) => match optional_path(&field(".file"), path, true)? {
            Some(path) => Ok(SecretSource::File(path)),
            None => Err(Error::invalid(field(".file"), "the path is empty")),
        },
        Some(Source::Env(name)) => {
            if !is_env_name(name) {
                return Err(Error::invalid(
                    field(".env"),
                    format!(
                        "{name:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                    ),
                ));
            }
            Ok(SecretSource::Env(name.clone()))
        }
    }
}

fn validate_http(http: &pb::HttpAction) -> Result<HttpAction> {
    let method = if http.method.trim().is_empty() {
        "GET".to_string()
    } else {
        let method = http.method.trim();
        if method.len() > 32 || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::invalid(
                "http.method",
                format!(
                    "{:?} is not an HTTP method such as GET or POST",
                    http.method
                ),
            ));
        }
        method.to_ascii_uppercase()
    };

    let url = http.url.trim();
    check_url(url).map_err(|reason| Error::invalid("http.url", reason))?;

    if http.headers.len() > MAX_HTTP_HEADERS {
        return Err(Error::invalid(
            "http.headers",
            format!("{} headers; at most {MAX_HTTP_HEADERS}", http.headers.len()),
        ));
    }
    let headers = to_btree_map(&http.headers);
    for (name, value) in &headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Error::invalid(
                "http.headers",
                format!("{name:?} is not a header name"),
            ));
        }
        if value.contains(['\r', '\n', '\0']) || value.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid(
                "http.headers",
                format!("the value of header {name:?} has a line break or is too long"),
            ));
        }
    }

    if http.body.len() > MAX_HTTP_BODY_BYTES {
        return Err(Error::invalid(
            "http.body",
            format!(
                "the body is {} bytes; at most {MAX_HTTP_BODY_BYTES}",
                http.body.len()
            ),
        ));
    }

    let expected_status = if http.expected_status.is_empty() {
        vec![(200, 299)]
    } else {
        http.expected_status
            .iter()
            .map(|s| parse_status_range(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|reason| Error::invalid("http.expected_status", reason))?
    };

    let body_regex = if http.body_regex.is_empty() {
        None
    } else if http.body_regex.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(
            "http.body_regex",
            format!("the expression is longer than {MAX_TEXT_BYTES} bytes"),
        ));
    } else {
        regex::Regex::new(&http.body_regex)
            .map_err(|e| Error::invalid("http.body_regex", e.to_string()))?;
        Some(http.body_regex.clone())
    };

    let ca_file = optional_path("http.ca_file", &http.ca_file, false)?;

    Ok(HttpAction {
        method,
        url: url.to_string(),
        headers,
        body: http.body.clone(),
        expected_status,
        body_regex,
        insecure_skip_verify: http.insecure_skip_verify,
        ca_file,
    })
}

fn validate_target(target: &pb::Target) -> Result<Target> {
    let selector = Selector::parse(&target.selector)
        .map_err(|reason| Error::invalid("target.selector", reason))?;
    Ok(Target {
        selector,
        count: target.count.unwrap_or(DEFAULT_TARGET_COUNT),
        strategy: word("target.strategy", &target.strategy, TargetStrategy::Spread)?,
        wait: optional_duration("target.wait", &target.wait)?,
    })
}

fn validate_retry(retry: &pb::RetryPolicy) -> Result<RetryPolicy> {
    let max_attempts = match retry.max_attempts {
        0 => DEFAULT_MAX_ATTEMPTS,
        n if n > MAX_ATTEMPTS => {
            return Err(Error::invalid(
                "retry.max_attempts",
                format!("{n} attempts is more than the {MAX_ATTEMPTS} allowed"),
            ));
        }
        n => n,
    };
    let backoff = optional_duration("retry.backoff", &retry.backoff)?.unwrap_or(DEFAULT_BACKOFF);
    let max_backoff = match optional_duration("retry.max_backoff", &retry.max_backoff)? {
        None => DEFAULT_MAX_BACKOFF.max(backoff),
        Some(max) if max < backoff => {
            return Err(Error::invalid(
                "retry.max_backoff",
                format!(
                    "max_backoff {} is shorter than backoff {}",
                    format_duration(max),
                    format_duration(backoff)
                ),
            ));
        }
        Some(max) => max,
    };
    Ok(RetryPolicy {
        max_attempts,
        backoff,
        max_backoff,
    })
}

fn validate_metadata(metadata: &HashMap<String, String>) -> Result<BTreeMap<String, String>> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "metadata",
            format!("{} entries; at most {MAX_METADATA_ENTRIES}", metadata.len()),
        ));
    }
    let sorted = to_btree_map(metadata);
    for (key, value) in &sorted {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_METADATA_KEY_CHARS || key.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "key {key:?} must be 1 to {MAX_METADATA_KEY_CHARS} characters without control characters"
                ),
            ));
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_METADATA_VALUE_CHARS {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "the value of {key:?} is {value_chars} characters; at most {MAX_METADATA_VALUE_CHARS}"
                ),
            ));
        }
    }
    Ok(sorted)
}

/// A policy word, or its default when empty.
fn word<T>(field: &str, text: &str, default: T) -> Result<T>
where
    T: std::str::FromStr<Err = String>,
{
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse().map_err(|reason| Error::invalid(field, reason))
}

/// A document duration, `None` when empty.
fn optional_duration(field: &str, text: &str) -> Result<Option<Duration>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_duration(text)
        .map(Some)
        .map_err(|reason| Error::invalid(field, reason))
}

/// A path on the executor, `None` when empty.
fn optional_path(field: &str, path: &str, must_be_absolute: bool) -> Result<Option<String>> {
    if path.is_empty() {
        return Ok(None);
    }
    if path.contains('\0') || path.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "{path:?} is not a usable path (NUL byte, or longer than {MAX_TEXT_BYTES} bytes)"
            ),
        ));
    }
    if must_be_absolute && !path.starts_with('/') {
        return Err(Error::invalid(
            field,
            format!("{path:?} is not an absolute path"),
        ));
    }
    Ok(Some(path.to_string()))
}

/// An absolute `http`/`https` URL with a host and no whitespace.
fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.is_empty() {
        return Err("an http action needs a url".to_string());
    }
    if url.len() > MAX_TEXT_BYTES {
        return Err(format!("the url is longer than {MAX_TEXT_BYTES} bytes"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an absolute http:// or https:// URL"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains whitespace or control characters"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host_without_port = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host_without_port.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// `"200"` or `"200-299"`, codes 100 to 599.
fn parse_status_range(text: &str) -> std::result::Result<(u16, u16), String> {
    let bad = || format!("{text:?} is not a status code or range such as 200 or 200-299");
    let code = |s: &str| -> std::result::Result<u16, String> {
        let s = s.trim();
        if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u16 = s.parse().map_err(|_| bad())?;
        if !(100..=599).contains(&code) {
            return Err(format!("{text:?}: status codes run from 100 to 599"));
        }
        Ok(code)
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (code(low)?, code(high)?),
        None => {
            let c = code(text)?;
            (c, c)
        }
    };
    if low > high {
        return Err(format!("{text:?} runs backwards"));
    }
    Ok((low, high))
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// RFC 9110 token characters (header names).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn to_btree_map(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A job document as YAML: the proto3 JSON form, top-level fields in the order the
/// generated serialiser writes them (the proto's, with the action oneof last), every
/// nested mapping's keys sorted, so equal jobs give equal text.
pub fn to_yaml(job: &pb::Job) -> std::result::Result<String, String> {
    // serde_json's map is ordered by key, which fixes the order of map entries.
    let sorted = serde_json::to_value(job).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(fields) = sorted else {
        return Err(format!("a job encoded as {sorted}, not as a mapping"));
    };
    // Serialized directly, a message keeps its fields in declaration order.
    let in_order = serde_yaml_ng::to_value(job).map_err(|e| e.to_string())?;
    let serde_yaml_ng::Value::Mapping(in_order) = in_order else {
        return Err("a job encoded as YAML that is not a mapping".into());
    };
    let mut document = serde_yaml_ng::Mapping::new();
    for key in in_order.keys() {
        if let Some(value) = key.as_str().and_then(|k| fields.get(k)) {
            document.insert(
                key.clone(),
                serde_yaml_ng::to_value(value).map_err(|e| e.to_string())?,
            );
        }
    }
    serde_yaml_ng::to_string(&document).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_job(name: &str, schedule: &str) -> pb::Job {
        pb::Job {
            name: name.to_string(),
            schedule: schedule.to_string(),
            action: Some(pb::job::Action::Shell(pb::ShellAction {
                command: "echo hi".to_string(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn refused(job: &pb::Job) -> (String, String) {
        match validate(job) {
            Err(Error::InvalidArgument { field, reason }) => (field, reason),
            Ok(j) => panic!("accepted: {j:?}"),
        }
    }

    fn full_document() -> pb::Job {
        pb::Job {
            name: "nightly-report".to_string(),
            schedule: "0 30 2 * * *".to_string(),
            timezone: "Europe/Berlin".to_string(),
            action: Some(pb::job::Action::Shell(pb::ShellAction {
                command: "report --daily".to_string(),
                env: HashMap::from([("MODE".to_string(), "full".to_string())]),
                cwd: "/srv".to_string(),
                secret_env: HashMap::from([
                    (
                        "DB_PASSWORD".to_string(),
                        secret(Source::Value("hunter2".into())),
                    ),
                    (
                        "API_KEY".to_string(),
                        secret(Source::File("/run/secrets/api".into())),
                    ),
                ]),
            })),
            target: Some(pb::Target {
                selector: "role=web,region in (eu,us),!canary".to_string(),
                count: Some(1),
                strategy: "spread".to_string(),
                wait: String::new(),
            }),
            timeout: "30m".to_string(),
            retry: Some(pb::RetryPolicy {
                max_attempts: 3,
                backoff: "2s".to_string(),
                max_backoff: "1m".to_string(),
            }),
            concurrency: "forbid".to_string(),
            misfire: Some(pb::Misfire {
                policy: "run_once".to_string(),
                window: "10m".to_string(),
            }),
            parent: "extract".to_string(),
            parent_on: String::new(),
            metadata: HashMap::from([("team".to_string(), "billing".to_string())]),
            paused: false,
            history: Some(pb::History { keep: 100 }),
            description: "the nightly billing report".to_string(),
            version: 7,
            ..Default::default()
        }
    }

    // ---- the reported examples ------------------------------------------------

    #[test]
    fn out_of_range_cron_names_the_schedule() {
        let (field, reason) = refused(&shell_job("a", "61 * * * *"));
        assert_eq!(field, "schedule");
        assert!(reason.contains("61"), "{reason}");
    }

    #[test]
    fn unknown_zone_names_the_timezone() {
        let mut job = shell_job("a", "@daily");
        job.timezone = "Mars/Olympus".to_string();
        let (field, reason) = refused(&job);
        assert_eq!(field, "timezone");
        assert!(reason.contains("Mars/Olympus"), "{reason}");
    }

    #[test]
    fn bad_name_names_the_name() {
        let (field, reason) = refused(&shell_job("Bad Name!", "@daily"));
        assert_eq!(field, "name");
        assert_eq!(
            reason,
            r#""Bad Name!" must match [a-z0-9][a-z0-9_.-]{0,127}"#
        );
    }

    // ---- names ------------------------------------------------------------------

    #[test]
    fn job_names() {
        for good in ["a", "0", "nightly-report", "etl.v2_daily", &"a".repeat(128)] {
            let name = JobName::parse(good).unwrap();
            assert_eq!(name.as_str(), good);
            assert_eq!(name.to_string(), good);
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "A",
            "a b",
            "a/b",
            "é",
            &"a".repeat(129),
        ] {
            let err = JobName::parse(bad).unwrap_err();
            assert_eq!(err.field(), "name", "{bad:?}");
        }
        assert!(JobName::parse("a").unwrap() < JobName::parse("b").unwrap());
    }

    // ---- actions ----------------------------------------------------------------

    #[test]
    fn a_job_needs_an_action() {
        let mut job = shell_job("a", "@daily");
        job.action = None;
        let (field, reason) = refused(&job);
        assert_eq!(field, "action");
        assert_eq!(reason, "a job needs shell or http");
    }

    #[test]
    fn shell_checks() {
        let with = |f: &dyn Fn(&mut pb::ShellAction)| {
            let mut job = shell_job("a", "@daily");
            if let Some(pb::job::Action::Shell(shell)) = &mut job.action {
                f(shell);
            }
            job
        };
        let cases: Vec<(pb::Job, &str, &str)> = vec![
            (with(&|s| s.command = "  ".into()), "shell.command", "empty"),
            (
                with(&|s| s.command = "x".repeat(MAX_COMMAND_BYTES + 1)),
                "shell.command",
                "at most 65536",
            ),
            (with(&|s| s.command = "a\0b".into()), "shell.command", "NUL"),
            (
                with(&|s| {
                    s.env.insert("1BAD".into(), "v".into());
                }),
                "shell.env",
                "\"1BAD\"",
            ),
            (
                with(&|s| {
                    s.env.insert("A-B".into(), "v".into());
                }),
                "shell.env",
                "\"A-B\"",
            ),
            (
                with(&|s| {
                    s.env.insert("KAIROS_JOB".into(), "v".into());
                }),
                "shell.env",
                "set by the executor",
            ),
            (
                with(&|s| {
                    s.env.insert("BIG".into(), "v".repeat(MAX_ENV_BYTES));
                }),
                "shell.env",
                "at most",
            ),
            (
                with(&|s| s.cwd = "relative/dir".into()),
                "shell.cwd",
                "absolute",
            ),
        ];
        for (job, field, expected) in cases {
            let (f, reason) = refused(&job);
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(expected), "{field}: {reason}");
        }
        let ok = validate(&with(&|s| {
            s.env.insert("MODE".into(), "full".into());
            s.cwd = "/srv".into();
        }))
        .unwrap();
        let Action::Shell(shell) = ok.action else {
            panic!()
        };
        assert_eq!(shell.cwd.as_deref(), Some("/srv"));
        assert_eq!(shell.env["MODE"], "full");
    }

    use pb::secret_env::Source;

    fn secret(source: Source) -> pb::SecretEnv {
        pb::SecretEnv {
            source: Some(source),
        }
    }

    fn with_secret(name: &str, source: Option<Source>) -> pb::Job {
        let mut job = shell_job("a", "@daily");
        if let Some(pb::job::Action::Shell(shell)) = &mut job.action {
            shell
                .secret_env
                .insert(name.into(), pb::SecretEnv { source });
        }
        job
    }

    #[test]
    fn secret_checks_name_the_variable_never_the_value() {
        let cases: Vec<(pb::Job, &str, &str)> = vec![
            (
                with_secret("DB", None),
                "shell.secret_env.DB",
                "exactly one of",
            ),
            (
                with_secret("DB", Some(Source::Stored(false))),
                "shell.secret_env.DB",
                "exactly one of",
            ),
            (
                with_secret("DB", Some(Source::Value("hun\0ter2".into()))),
                "shell.secret_env.DB.value",
                "NUL",
            ),
            (
                with_secret("DB", Some(Source::File("relative".into()))),
                "shell.secret_env.DB.file",
                "absolute",
            ),
            (
                with_secret("DB", Some(Source::Env("1X".into()))),
                "shell.secret_env.DB.env",
                "not an environment variable name",
            ),
            (
                with_secret("KAIROS_JOB", Some(Source::Value("x".into()))),
                "shell.secret_env",
                "set by the executor",
            ),
            (
                with_secret("A-B", Some(Source::Value("x".into()))),
                "shell.secret_env",
                "not an environment variable name",
            ),
            (
                with_secret("BIG", Some(Source::Value("v".repeat(MAX_ENV_BYTES)))),
                "shell.env",
                "at most",
            ),
        ];
        for (job, field, expected) in cases {
            let (f, reason) = refused(&job);
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(expected), "{field}: {reason}");
            assert!(!reason.contains("hun"), "{reason}");
        }
        let mut both = with_secret("MODE", Some(Source::Value("x".into())));
        if let Some(pb::job::Action::Shell(shell)) = &mut both.action {
            shell.env.insert("MODE".into(), "plain".into());
        }
        let (f, reason) = refused(&both);
        assert_eq!(f, "shell.secret_env.MODE");
        assert!(reason.contains("either plain or secret"), "{reason}");
    }

    #[test]
    fn reads_hide_values_and_stored_keeps_them() {
        let stored = full_document();
        let (stored, _) = normalize(&stored).unwrap();
        let mut answer = stored.clone();
        redact(&mut answer);
        let Some(pb::job::Action::Shell(shell)) = &answer.action else {
            panic!()
        };
        assert_eq!(
            shell.secret_env["DB_PASSWORD"].source,
            Some(Source::Stored(true))
        );
        assert_eq!(
            shell.secret_env["API_KEY"].source,
            Some(Source::File("/run/secrets/api".into()))
        );
        assert!(!format!("{answer:?}").contains("hunter2"));
        // The answer, sent back, is the stored job again.
        let (mut back, spec) = normalize(&answer).unwrap();
        assert!(spec.keeps_stored_secrets());
        keep_stored_secrets(&mut back, Some(&stored)).unwrap();
        assert_eq!(back, stored);
        // Nothing stored (a new job, or no such name): refused, naming the field.
        let mut orphan = answer.clone();
        let err = keep_stored_secrets(&mut orphan, None).unwrap_err();
        let Error::InvalidArgument { field, reason } = err;
        assert_eq!(field, "shell.secret_env.DB_PASSWORD.stored");
        assert!(reason.contains("no stored secret"), "{reason}");
    }

    #[test]
    fn http_checks() {
        let http_job = |f: &dyn Fn(&mut pb::HttpAction)| {
            let mut http = pb::HttpAction {
                url: "https://example.com/ping".into(),
                ..Default::default()
            };
            f(&mut http);
            pb::Job {
                name: "ping".into(),
                schedule: "@every 30s".into(),
                action: Some(pb::job::Action::Http(http)),
                ..Default::default()
            }
        };

        let job = validate(&http_job(&|h| {
            h.method = "post".into();
            h.expected_status = vec!["200".into(), "300-399".into()];
            h.body_regex = "ok".into();
            h.headers.insert("X-Token".into(), "abc".into());
        }))
        .unwrap();
        let Action::Http(http) = &job.action else {
            panic!()
        };
        assert_eq!(http.method, "POST");
        assert_eq!(http.expected_status, vec![(200, 200), (300, 399)]);
        assert!(http.is_expected_status(301));
        assert!(!http.is_expected_status(204));
        assert_eq!(http.body_regex.as_deref(), Some("ok"));

        let defaults = validate(&http_job(&|_| {})).unwrap();
        let Action::Http(http) = &defaults.action else {
            panic!()
        };
        assert_eq!(http.method, "GET");
        assert_eq!(http.expected_status, vec![(200, 299)]);
        assert_eq!(http.body_regex, None);

        let cases: Vec<(pb::Job, &str, &str)> = vec![
            (
                http_job(&|h| h.url = String::new()),
                "http.url",
                "needs a url",
            ),
            (
                http_job(&|h| h.url = "ftp://example.com".into()),
                "http.url",
                "\"ftp://example.com\"",
            ),
            (
                http_job(&|h| h.url = "/relative".into()),
                "http.url",
                "absolute",
            ),
            (
                http_job(&|h| h.url = "http://".into()),
                "http.url",
                "no host",
            ),
            (
                http_job(&|h| h.url = "http://:80/x".into()),
                "http.url",
                "no host",
            ),
            (
                http_job(&|h| h.url = "http://a b/".into()),
                "http.url",
                "whitespace",
            ),
            (
                http_job(&|h| h.method = "GE T".into()),
                "http.method",
                "\"GE T\"",
            ),
            (
                http_job(&|h| h.expected_status = vec!["2xx".into()]),
                "http.expected_status",
                "\"2xx\"",
            ),
            (
                http_job(&|h| h.expected_status = vec!["299-200".into()]),
                "http.expected_status",
                "backwards",
            ),
            (
                http_job(&|h| h.expected_status = vec!["700".into()]),
                "http.expected_status",
                "100 to 599",
            ),
            (
                http_job(&|h| {
                    h.headers.insert("Bad Header".into(), "v".into());
                }),
                "http.headers",
                "\"Bad Header\"",
            ),
            (
                http_job(&|h| {
                    h.headers.insert("X".into(), "a\r\nb".into());
                }),
                "http.headers",
                "line break",
            ),
            (
                http_job(&|h| h.body = "x".repeat(MAX_HTTP_BODY_BYTES + 1)),
                "http.body",
                "at most",
            ),
            (
                http_job(&|h| h.body_regex = "x".repeat(MAX_TEXT_BYTES + 1)),
                "http.body_regex",
                "longer than",
            ),
        ];
        for (job, field, expected) in cases {
            let (f, reason) = refused(&job);
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(expected), "{field}: {reason}");
        }
    }

    #[test]
    fn a_bad_body_regex_is_refused_with_the_regex_error() {
        let job = |regex: &str| pb::Job {
            name: "ping".into(),
            schedule: "@every 30s".into(),
            action: Some(pb::job::Action::Http(pb::HttpAction {
                url: "https://example.com/ping".into(),
                body_regex: regex.into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let (field, reason) = refused(&job(r#""status":\s*"(ok"#));
        assert_eq!(field, "http.body_regex");
        assert!(reason.contains("unclosed group"), "{reason}");

        let (field, reason) = refused(&job("a{2,1}"));
        assert_eq!(field, "http.body_regex");
        assert!(reason.contains("invalid repetition"), "{reason}");

        let accepted = validate(&job(r#"(?i)"status":\s*"ok""#)).unwrap();
        let Action::Http(http) = &accepted.action else {
            panic!()
        };
        assert_eq!(http.body_regex.as_deref(), Some(r#"(?i)"status":\s*"ok""#));
    }

    // ---- the rest of the document -------------------------------------------------

    #[test]
    fn bad_selector_names_target_selector() {
        let mut job = shell_job("a", "@daily");
        job.target = Some(pb::Target {
            selector: "role in (web".into(),
            ..Default::default()
        });
        let (field, reason) = refused(&job);
        assert_eq!(field, "target.selector");
        assert!(reason.contains("not closed"), "{reason}");
    }

    #[test]
    fn field_paths_of_other_errors() {
        let edit = |f: &dyn Fn(&mut pb::Job)| {
            let mut job = shell_job("a", "@daily");
            f(&mut job);
            job
        };
        let cases: Vec<(pb::Job, &str, &str)> = vec![
            (
                edit(&|j| j.schedule = String::new()),
                "schedule",
                "needs a schedule",
            ),
            (
                edit(&|j| {
                    j.target = Some(pb::Target {
                        strategy: "nearest".into(),
                        ..Default::default()
                    })
                }),
                "target.strategy",
                "\"nearest\"",
            ),
            (
                edit(&|j| {
                    j.target = Some(pb::Target {
                        wait: "soon".into(),
                        ..Default::default()
                    })
                }),
                "target.wait",
                "\"soon\"",
            ),
            (
                edit(&|j| j.timeout = "5 minutes".into()),
                "timeout",
                "unknown unit",
            ),
            (edit(&|j| j.timeout = "0s".into()), "timeout", "0s"),
            (
                edit(&|j| {
                    j.retry = Some(pb::RetryPolicy {
                        max_attempts: 101,
                        ..Default::default()
                    })
                }),
                "retry.max_attempts",
                "101",
            ),
            (
                edit(&|j| {
                    j.retry = Some(pb::RetryPolicy {
                        backoff: "-1s".into(),
                        ..Default::default()
                    })
                }),
                "retry.backoff",
                "negative",
            ),
            (
                edit(&|j| {
                    j.retry = Some(pb::RetryPolicy {
                        backoff: "10s".into(),
                        max_backoff: "5s".into(),
                        ..Default::default()
                    })
                }),
                "retry.max_backoff",
                "shorter than backoff 10s",
            ),
            (
                edit(&|j| j.concurrency = "sometimes".into()),
                "concurrency",
                "allow, forbid, queue, replace",
            ),
            (
                edit(&|j| {
                    j.misfire = Some(pb::Misfire {
                        policy: "later".into(),
                        ..Default::default()
                    })
                }),
                "misfire.policy",
                "\"later\"",
            ),
            (
                edit(&|j| {
                    j.misfire = Some(pb::Misfire {
                        window: "1y".into(),
                        ..Default::default()
                    })
                }),
                "misfire.window",
                "unknown unit",
            ),
            (
                edit(&|j| j.parent = "Extract!".into()),
                "parent",
                "\"Extract!\"",
            ),
            (edit(&|j| j.parent = "a".into()), "parent", "its own parent"),
            (
                edit(&|j| {
                    j.parent = "b".into();
                    j.parent_on = "maybe".into();
                }),
                "parent_on",
                "\"maybe\"",
            ),
            (
                edit(&|j| j.parent_on = "failure".into()),
                "parent_on",
                "no parent",
            ),
            (
                edit(&|j| {
                    for i in 0..65 {
                        j.metadata.insert(format!("k{i}"), "v".into());
                    }
                }),
                "metadata",
                "at most 64",
            ),
            (
                edit(&|j| {
                    j.metadata.insert("k".repeat(64), "v".into());
                }),
                "metadata",
                "1 to 63",
            ),
            (
                edit(&|j| {
                    j.metadata.insert("k".into(), "v".repeat(1025));
                }),
                "metadata",
                "at most 1024",
            ),
            (
                edit(&|j| j.history = Some(pb::History { keep: 10_001 })),
                "history.keep",
                "10001",
            ),
            (
                edit(&|j| j.description = "d".repeat(1025)),
                "description",
                "at most 1024",
            ),
        ];
        for (job, field, expected) in cases {
            let (f, reason) = refused(&job);
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(expected), "{field}: {reason}");
        }
    }

    #[test]
    fn defaults_are_applied() {
        let job = validate(&shell_job("a", "@daily")).unwrap();
        assert_eq!(job.schedule.timezone(), chrono_tz::UTC);
        assert_eq!(job.target, Target::default());
        assert_eq!(job.target.count, 1);
        assert_eq!(job.target.strategy, TargetStrategy::Spread);
        assert!(job.target.selector.is_empty());
        assert_eq!(job.timeout, None);
        assert_eq!(
            job.retry,
            RetryPolicy {
                max_attempts: 1,
                backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60)
            }
        );
        assert_eq!(job.concurrency, Concurrency::Allow);
        assert_eq!(
            job.misfire,
            Misfire {
                policy: MisfirePolicy::RunOnce,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(job.parent, None);
        assert_eq!(job.history_keep, 100);

        // A long backoff raises the default cap rather than being refused.
        let mut long = shell_job("a", "@daily");
        long.retry = Some(pb::RetryPolicy {
            max_attempts: 3,
            backoff: "5m".into(),
            max_backoff: String::new(),
        });
        assert_eq!(
            validate(&long).unwrap().retry.max_backoff,
            Duration::from_secs(300)
        );

        // Broadcast is count 0.
        let mut all = shell_job("a", "@daily");
        all.target = Some(pb::Target {
            count: Some(0),
            ..Default::default()
        });
        assert!(validate(&all).unwrap().target.is_broadcast());
    }

    #[test]
    fn a_child_job_may_omit_its_schedule() {
        let mut job = shell_job("load", "");
        job.parent = "extract".into();
        let job = validate(&job).unwrap();
        assert!(job.schedule.is_manual());
        assert_eq!(
            job.parent,
            Some(Parent {
                name: JobName::parse("extract").unwrap(),
                on: ParentOn::Success
            })
        );
    }

    #[test]
    fn a_full_document_is_valid() {
        let job = validate(&full_document()).unwrap();
        assert_eq!(job.name.as_str(), "nightly-report");
        assert_eq!(job.schedule.source(), "0 30 2 * * *");
        assert_eq!(job.schedule.timezone(), chrono_tz::Europe::Berlin);
        let Action::Shell(shell) = &job.action else {
            panic!()
        };
        assert_eq!(shell.command, "report --daily");
        assert_eq!(
            job.target.selector.to_string(),
            "role=web,region in (eu,us),!canary"
        );
        assert_eq!(job.timeout, Some(Duration::from_secs(1800)));
        assert_eq!(job.retry.max_attempts, 3);
        assert_eq!(job.retry.backoff, Duration::from_secs(2));
        assert_eq!(job.concurrency, Concurrency::Forbid);
        assert_eq!(job.misfire.window, Duration::from_secs(600));
        assert_eq!(job.parent.as_ref().map(|p| p.on), Some(ParentOn::Success));
        assert_eq!(job.metadata["team"], "billing");
        assert_eq!(job.history_keep, 100);
        assert_eq!(Job::try_from(&full_document()).unwrap(), job);
    }

    #[test]
    fn normalize_writes_defaults_and_clears_output_fields() {
        let mut sparse = shell_job("a", "*/5 * * * *");
        sparse.version = 9;
        sparse.status = Some(pb::JobStatus::default());
        sparse.created_at = Some(Default::default());
        let (doc, _) = normalize(&sparse).unwrap();
        assert_eq!(doc.timezone, "UTC");
        assert_eq!(doc.concurrency, "allow");
        let target = doc.target.clone().unwrap();
        assert_eq!(
            (
                target.count,
                target.strategy.as_str(),
                target.selector.as_str()
            ),
            (Some(1), "spread", "")
        );
        let retry = doc.retry.clone().unwrap();
        assert_eq!(
            (
                retry.max_attempts,
                retry.backoff.as_str(),
                retry.max_backoff.as_str()
            ),
            (1, "1s", "1m")
        );
        let misfire = doc.misfire.clone().unwrap();
        assert_eq!(
            (misfire.policy.as_str(), misfire.window.as_str()),
            ("run_once", "1m")
        );
        assert_eq!(doc.history, Some(pb::History { keep: 100 }));
        assert_eq!(doc.parent_on, "");
        assert_eq!(
            (doc.version, doc.status.is_none(), doc.created_at.is_none()),
            (0, true, true)
        );

        // Two spellings of the same job normalize equal.
        let mut spelled = shell_job("a", " */5 * * * * ");
        spelled.timezone = "UTC".into();
        spelled.concurrency = "allow".into();
        spelled.target = Some(pb::Target {
            selector: String::new(),
            count: None,
            strategy: "spread".into(),
            wait: String::new(),
        });
        spelled.retry = Some(pb::RetryPolicy {
            max_attempts: 0,
            backoff: "1000ms".into(),
            max_backoff: "60s".into(),
        });
        spelled.misfire = Some(pb::Misfire {
            policy: String::new(),
            window: "0.5m 30s".into(),
        });
        assert_eq!(normalize(&spelled).unwrap().0, doc);
    }

    #[test]
    fn normalize_is_idempotent() {
        let mut child = shell_job("load", "");
        child.parent = "extract".into();
        child.parent_on = "always".into();
        let mut http = pb::Job {
            name: "ping".into(),
            schedule: "@every 90s".into(),
            action: Some(pb::job::Action::Http(pb::HttpAction {
                method: "head".into(),
                url: "http://[::1]:8080/health".into(),
                expected_status: vec!["204".into(), "200 - 202".into()],
                ..Default::default()
            })),
            ..Default::default()
        };
        http.target = Some(pb::Target {
            selector: " role == web , ! canary".into(),
            count: Some(0),
            strategy: "least_loaded".into(),
            wait: "90s".into(),
        });
        http.timeout = "1.5s".into();
        for doc in [full_document(), shell_job("a", "@daily"), child, http] {
            let (once, job) = normalize(&doc).unwrap();
            let (twice, job_again) = normalize(&once).unwrap();
            assert_eq!(once, twice, "{doc:?}");
            assert_eq!(job, job_again);
        }

        let (doc, _) = normalize(&full_document()).unwrap();
        assert_eq!(doc.parent_on, "success");
        assert_eq!(doc.timeout, "30m");
        assert_eq!(doc.version, 0);
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let retry = RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (1..=6).map(|a| retry.delay_before(a).as_secs()).collect();
        assert_eq!(delays, vec![0, 2, 4, 8, 10, 10]);
        assert_eq!(retry.delay_before(200), Duration::from_secs(10));
    }

    #[test]
    fn lifecycle_bounds_the_fires() {
        let mut doc = shell_job("j", "@every 10s");
        doc.schedule = "@every 10s".into();
        doc.starts_at = Some(kairos_proto::Timestamp {
            seconds: 100,
            nanos: 0,
        });
        doc.expires_at = Some(kairos_proto::Timestamp {
            seconds: 130,
            nanos: 0,
        });
        let job = validate(&doc).unwrap();
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(
            job.next_fire_after(at(0)),
            Some(at(100)),
            "starts_at itself may fire"
        );
        assert_eq!(
            job.next_fire_after(at(120)),
            Some(at(130)),
            "expires_at itself may fire"
        );
        assert_eq!(job.next_fire_after(at(130)), None, "nothing after expiry");
        assert!(job.active_at(at(115)) && !job.active_at(at(131)) && !job.active_at(at(99)));
        doc.expires_at = Some(kairos_proto::Timestamp {
            seconds: 100,
            nanos: 0,
        });
        assert_eq!(validate(&doc).unwrap_err().field(), "expires_at");
    }

    #[test]
    fn webhooks_are_checked_and_default_to_success_and_failure() {
        let mut doc = shell_job("j", "@every 10s");
        doc.notify = vec![pb::Notify {
            url: "https://hooks.example/kairos".into(),
            events: vec![],
            headers: Default::default(),
        }];
        let (normalized, job) = normalize(&doc).unwrap();
        assert_eq!(job.notify[0].events.len(), 2);
        assert_eq!(normalized.notify[0].events, vec!["success", "failure"]);
        doc.notify[0].events = vec!["finish".into()];
        assert_eq!(validate(&doc).unwrap_err().field(), "notify[0].events");
        doc.notify[0].events = vec![];
        doc.notify[0].url = "ftp://x".into();
        assert_eq!(validate(&doc).unwrap_err().field(), "notify[0].url");
    }
}
