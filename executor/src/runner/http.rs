//! The HTTP runner: one request, judged by its response.
//!
//! # Lifecycle
//!
//! 1. [`HttpSpec::try_new`] checks the assignment's action with the same rules as
//!    `job apply` (`kairos_common::job::validate`), compiles the body regex, and puts
//!    the run's identity into `Kairos-Job`, `Kairos-Execution-Id`,
//!    `Kairos-Scheduled-At`, `Kairos-Attempt` and `Kairos-Trigger` request headers,
//!    so that receivers can be idempotent. A job header of the same name (in any
//!    case) wins: unlike a process's environment, a request may have to speak the
//!    receiver's own header names, and an explicit choice is respected.
//! 2. [`prepare`] builds the client and the request, after `start_at`: a CA file
//!    that cannot be read or holds no usable certificate fails the run here, naming
//!    the file, before anything is sent.
//! 3. [`Prepared::send`] sends it and reads the response, racing the timeout and
//!    the cancellation token. The job's timeout covers the whole exchange: connect,
//!    TLS, redirects, headers and body.
//!
//! # Verdict
//!
//! `succeeded` when a response arrived, its status is in the expected set (2xx when
//! none was given) and, with a body regex, the body matches it; otherwise `failed`
//! with the reason (`HTTP 500 is not an expected status (200-299)`, `response body
//! does not match /ok/`, or the connect, DNS or TLS error). No response in time is
//! `timed_out`; a cancel is `cancelled`. `exit_code` is always `None`.
//!
//! # Output
//!
//! `HTTP/1.1 200 OK`, the response headers one per line sorted by name, a blank
//! line, the body as lossy UTF-8, all through the capped tail
//! ([`super::output::OutputTail`]). The body is read at most to [`body_limit`]
//! bytes (4 × the output cap, bounded to 1–16 MiB): a server that streams
//! forever cannot hold memory or the run. A cut body ends the output with a note
//! and sets `output_truncated`; the body regex then sees only what was read.
//!
//! # Client
//!
//! One client per run, so a changed CA file or proxy setting takes effect on the
//! next run and nothing (no pooled connection) outlives a run. The cost is a new
//! connection per run and tens of microseconds to build the client, which cron
//! intervals do not notice. rustls with the Mozilla roots compiled in (the system
//! store is not read), plus the job's `ca_file`; `insecure_skip_verify` turns
//! verification off. HTTP/1.1 only. At most [`MAX_REDIRECTS`] redirects are
//! followed. `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` of the executor's
//! environment apply.
//!
//! Not here: retries (the leader's retry policy), response decompression, cookies.

use std::time::{Duration, Instant, SystemTime};

use kairos_common::status::ExecutionStatus;
use kairos_proto::v1 as pb;
use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url, Version};
use tokio_util::sync::CancellationToken;

use super::output::OutputTail;
use super::{Identity, Outcome, format_duration, maybe_sleep_until};

/// Redirects followed before the run fails.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Least response body read, whatever the output cap: room for a body regex.
const MIN_BODY_READ_BYTES: usize = 1024 * 1024;

/// Most response body read, whatever the output cap.
const MAX_BODY_READ_BYTES: usize = 16 * 1024 * 1024;

/// Sent unless the job sets its own `User-Agent`.
const USER_AGENT: &str = concat!("kairos-executor/", env!("CARGO_PKG_VERSION"));

/// Name under which an assignment's action is checked; any valid name would do,
/// the checks of an action do not depend on it.
const CHECK_JOB_NAME: &str = "assignment";

/// Everything needed to send one HTTP action, checked.
#[derive(Debug, Clone)]
pub(crate) struct HttpSpec {
    method: Method,
    url: Url,
    /// The job's headers and the identity headers it did not set itself.
    headers: HeaderMap,
    /// Empty means no body.
    body: String,
    /// Inclusive status ranges that count as success.
    expected_status: Vec<(u16, u16)>,
    body_regex: Option<Regex>,
    insecure_skip_verify: bool,
    ca_file: Option<String>,
    /// `None` means no limit.
    timeout: Option<Duration>,
    /// Output kept (its tail), in bytes.
    max_output_bytes: usize,
}

impl HttpSpec {
    /// Checks an assignment's HTTP action; the error is the run's failure reason.
    pub(crate) fn try_new(
        action: pb::HttpAction,
        identity: &Identity,
        timeout: Option<Duration>,
        max_output_bytes: usize,
    ) -> Result<Self, String> {
        let document = pb::Job {
            name: CHECK_JOB_NAME.into(),
            schedule: "@manual".into(),
            action: Some(pb::job::Action::Http(action)),
            ..Default::default()
        };
        let job = kairos_common::job::validate(&document).map_err(|e| match e {
            kairos_common::Error::InvalidArgument { field, reason } => {
                format!("invalid assignment: {field}: {reason}")
            }
        })?;
        let kairos_common::job::Action::Http(http) = job.action else {
            return Err("invalid assignment: the action is not http".into());
        };

        let method = Method::from_bytes(http.method.as_bytes())
            .map_err(|e| format!("invalid assignment: http.method: {e}"))?;
        let url = Url::parse(&http.url)
            .map_err(|e| format!("invalid assignment: http.url: {:?}: {e}", http.url))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &http.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("invalid assignment: http.headers: {name:?}: {e}"))?;
            let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|e| {
                format!("invalid assignment: http.headers: the value of {name}: {e}")
            })?;
            headers.append(name, value);
        }
        for (name, value) in identity.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("invalid assignment: {name}: {e}"))?;
            if headers.contains_key(&name) {
                continue;
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|e| format!("invalid assignment: {name} {value:?}: {e}"))?;
            headers.insert(name, value);
        }
        let body_regex = http
            .body_regex
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| format!("invalid assignment: http.body_regex: {e}"))?;

        Ok(HttpSpec {
            method,
            url,
            headers,
            body: http.body,
            expected_status: http.expected_status,
            body_regex,
            insecure_skip_verify: http.insecure_skip_verify,
            ca_file: http.ca_file,
            timeout,
            max_output_bytes,
        })
    }

    /// Method and URL without credentials or query, for logs.
    pub(crate) fn describe(&self) -> String {
        let mut url = self.url.clone();
        // Both fail only for URLs that cannot have credentials; then there are none.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        format!("{} {url}", self.method)
    }

    /// The expected set as the job wrote it: `200-299`, `200, 404`.
    fn expected_status_text(&self) -> String {
        self.expected_status
            .iter()
            .map(kairos_common::job::status_range_text)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn is_expected_status(&self, status: u16) -> bool {
        kairos_common::job::status_expected(&self.expected_status, status)
    }
}

/// How much of a response body is read: four times the output cap, so that a body
/// regex sees more than the output keeps, at least [`MIN_BODY_READ_BYTES`] and at
/// most [`MAX_BODY_READ_BYTES`] (never below the cap itself).
pub(crate) fn body_limit(max_output_bytes: usize) -> usize {
    max_output_bytes
        .saturating_mul(4)
        .clamp(MIN_BODY_READ_BYTES, MAX_BODY_READ_BYTES)
        .max(max_output_bytes)
}

/// A request ready to go, with the client that sends it.
#[derive(Debug)]
pub(crate) struct Prepared {
    client: reqwest::Client,
    request: reqwest::Request,
    spec: HttpSpec,
    started_at: SystemTime,
    /// Monotonic twin of `started_at`, for the timeout.
    started: Instant,
}

/// Builds the client (reading the CA file) and the request. The error is the
/// reason the run failed without sending anything.
pub(crate) async fn prepare(spec: HttpSpec) -> Result<Prepared, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(USER_AGENT)
        .danger_accept_invalid_certs(spec.insecure_skip_verify);
    if let Some(path) = &spec.ca_file {
        for certificate in read_ca_file(path).await? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().map_err(|e| match &spec.ca_file {
        Some(path) => format!(
            "cannot use CA file {path:?}: {}",
            kairos_common::error::chain(&e)
        ),
        None => format!(
            "cannot build the HTTP client: {}",
            kairos_common::error::chain(&e)
        ),
    })?;
    let mut request = client
        .request(spec.method.clone(), spec.url.clone())
        .headers(spec.headers.clone());
    if !spec.body.is_empty() {
        request = request.body(spec.body.clone());
    }
    let request = request.build().map_err(|e| {
        format!(
            "cannot build the request: {}",
            kairos_common::error::chain(&e)
        )
    })?;
    Ok(Prepared {
        client,
        request,
        spec,
        started_at: SystemTime::now(),
        started: Instant::now(),
    })
}

/// The PEM certificates of a CA file, or why they cannot be had.
async fn read_ca_file(path: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read CA file {path:?}: {e}"))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "CA file {path:?} is not valid PEM: {}",
            kairos_common::error::chain(&e)
        )
    })?;
    if certificates.is_empty() {
        return Err(format!("CA file {path:?} holds no PEM certificate"));
    }
    Ok(certificates)
}

/// Why a run stopped before its response was complete.
enum Stop {
    TimedOut,
    Cancelled,
}

impl Prepared {
    /// When the request is sent (right after this is read).
    pub(crate) fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Sends the request and reads the response until it is complete, the
    /// timeout passes or `cancel` fires. A cancelled run's error is plain
    /// `"cancelled"`; the caller knows why and may say more.
    pub(crate) async fn send(self, cancel: &CancellationToken) -> Outcome {
        let Prepared {
            client,
            request,
            spec,
            started_at,
            started,
        } = self;
        let deadline = spec
            .timeout
            .and_then(|t| started.checked_add(t))
            .map(tokio::time::Instant::from_std);
        let expired = maybe_sleep_until(deadline);
        tokio::pin!(expired);
        let mut tail = OutputTail::new(spec.max_output_bytes);
        let finish = |status, error: String, tail: OutputTail, cut: bool| {
            let (output, truncated) = tail.into_text();
            Outcome {
                status,
                exit_code: None,
                output,
                output_truncated: truncated || cut,
                error,
                started_at: Some(started_at),
                finished_at: SystemTime::now(),
            }
        };
        let stopped = |stop: Stop, before_headers: bool| match stop {
            Stop::Cancelled => (ExecutionStatus::Cancelled, "cancelled".to_string()),
            Stop::TimedOut => {
                let timeout = format_duration(spec.timeout.unwrap_or_default());
                let error = if before_headers {
                    format!("no response within {timeout}")
                } else {
                    format!("response not complete within {timeout}")
                };
                (ExecutionStatus::TimedOut, error)
            }
        };

        let sent = tokio::select! {
            sent = client.execute(request) => sent,
            () = &mut expired => {
                let (status, error) = stopped(Stop::TimedOut, true);
                return finish(status, error, tail, false);
            }
            () = cancel.cancelled() => {
                let (status, error) = stopped(Stop::Cancelled, true);
                return finish(status, error, tail, false);
            }
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                let error = kairos_common::error::chain(&e.without_url());
                return finish(ExecutionStatus::Failed, error, tail, false);
            }
        };
        let code = response.status().as_u16();
        tail.push(head_text(&response).as_bytes());

        let limit = body_limit(spec.max_output_bytes);
        let mut body = spec.body_regex.is_some().then(Vec::new);
        let mut read = 0usize;
        let mut cut = false;
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                () = &mut expired => {
                    let (status, error) = stopped(Stop::TimedOut, false);
                    return finish(status, error, tail, false);
                }
                () = cancel.cancelled() => {
                    let (status, error) = stopped(Stop::Cancelled, false);
                    return finish(status, error, tail, false);
                }
            };
            match chunk {
                Ok(Some(bytes)) => {
                    let kept = &bytes[..bytes.len().min(limit - read)];
                    tail.push(kept);
                    if let Some(body) = body.as_mut() {
                        body.extend_from_slice(kept);
                    }
                    read += kept.len();
                    if kept.len() < bytes.len() {
                        cut = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let error = format!(
                        "HTTP {code}, then reading the body failed: {}",
                        kairos_common::error::chain(&e.without_url())
                    );
                    return finish(ExecutionStatus::Failed, error, tail, false);
                }
            }
        }
        // Dropping the response here closes a connection whose body was cut.
        drop(response);
        if cut {
            tail.push(
                format!(
                    "\n[kairos: response body cut after {read} bytes, the rest was not read]\n"
                )
                .as_bytes(),
            );
        }

        if !spec.is_expected_status(code) {
            let error = format!(
                "HTTP {code} is not an expected status ({})",
                spec.expected_status_text()
            );
            return finish(ExecutionStatus::Failed, error, tail, cut);
        }
        if let (Some(regex), Some(body)) = (&spec.body_regex, &body)
            && !regex.is_match(&String::from_utf8_lossy(body))
        {
            let mut error = format!("response body does not match /{regex}/");
            if cut {
                error.push_str(&format!(" (only its first {read} bytes were read)"));
            }
            return finish(ExecutionStatus::Failed, error, tail, cut);
        }
        finish(ExecutionStatus::Succeeded, String::new(), tail, cut)
    }
}

/// The status line, the headers sorted by name, and the blank line.
fn head_text(response: &reqwest::Response) -> String {
    let status = response.status();
    let mut text = format!("{} {}", version_text(response.version()), status.as_u16());
    if let Some(reason) = status.canonical_reason() {
        text.push(' ');
        text.push_str(reason);
    }
    text.push('\n');
    let mut headers: Vec<(&str, String)> = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Stable: repeated headers keep their order.
    headers.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in headers {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(&value);
        text.push('\n');
    }
    text.push('\n');
    text
}

fn version_text(version: Version) -> String {
    match version {
        Version::HTTP_09 => "HTTP/0.9".into(),
        Version::HTTP_10 => "HTTP/1.0".into(),
        Version::HTTP_11 => "HTTP/1.1".into(),
        Version::HTTP_2 => "HTTP/2".into(),
        Version::HTTP_3 => "HTTP/3".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::DEFAULT_MAX_OUTPUT_BYTES;
    use crate::test::{FakeHttpServer, TEST_CA_PEM};
    use chrono::TimeZone;

    fn identity() -> Identity {
        Identity {
            job: "ping".into(),
            execution_id: "exec-1".into(),
            scheduled_at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 29, 2, 30, 0)
                .unwrap(),
            attempt: 2,
            trigger: "retry".into(),
        }
    }

    fn action(url: String) -> pb::HttpAction {
        pb::HttpAction {
            url,
            ..Default::default()
        }
    }

    fn spec(action: pb::HttpAction) -> HttpSpec {
        HttpSpec::try_new(action, &identity(), None, DEFAULT_MAX_OUTPUT_BYTES).unwrap()
    }

    async fn run(spec: HttpSpec) -> Outcome {
        let cancel = CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            prepare(spec).await.expect("prepares").send(&cancel).await
        })
        .await
        .expect("the run ends")
    }

    /// The body part of an output: what follows the blank line after the headers.
    fn body_of(output: &str) -> &str {
        output
            .split_once("\n\n")
            .map(|(_, body)| body)
            .unwrap_or("")
    }

    #[tokio::test]
    async fn a_200_succeeds_with_the_response_as_output() {
        let server = FakeHttpServer::start().await;
        let outcome = run(spec(action(server.url("/ok")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.error, "");
        assert_eq!(outcome.exit_code, None);
        assert!(!outcome.output_truncated);
        assert!(outcome.started_at.is_some_and(|s| s <= outcome.finished_at));
        let mut lines = outcome.output.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        let headers: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
        let mut sorted = headers.clone();
        sorted.sort();
        assert_eq!(headers, sorted, "headers are sorted by name");
        assert!(headers.contains(&"content-length: 27"), "{headers:?}");
        assert!(
            headers.contains(&"content-type: text/plain; charset=utf-8"),
            "{headers:?}"
        );
        assert_eq!(body_of(&outcome.output), "hello from the fake server\n");
    }

    #[tokio::test]
    async fn a_500_fails_naming_the_status() {
        let server = FakeHttpServer::start().await;
        let outcome = run(spec(action(server.url("/status/500")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            outcome.error,
            "HTTP 500 is not an expected status (200-299)"
        );
        assert_eq!(outcome.exit_code, None);
        assert!(
            outcome
                .output
                .starts_with("HTTP/1.1 500 Internal Server Error\n"),
            "{}",
            outcome.output
        );
        assert_eq!(body_of(&outcome.output), "status 500\n");
    }

    #[tokio::test]
    async fn expected_status_codes_and_ranges_decide() {
        let server = FakeHttpServer::start().await;
        let with = |path: &str, expected: &[&str]| {
            let mut a = action(server.url(path));
            a.expected_status = expected.iter().map(|s| s.to_string()).collect();
            spec(a)
        };

        let outcome = run(with("/status/404", &["404"])).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");

        let outcome = run(with("/ok", &["404"])).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(outcome.error, "HTTP 200 is not an expected status (404)");

        let outcome = run(with("/status/204", &["200-204"])).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");

        let outcome = run(with("/status/205", &["200-204", "404"])).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            outcome.error,
            "HTTP 205 is not an expected status (200-204, 404)"
        );

        let outcome = run(with("/status/299", &[])).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        let outcome = run(with("/status/302", &[])).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    }

    #[tokio::test]
    async fn the_body_regex_must_match() {
        let server = FakeHttpServer::start().await;
        let mut a = action(server.url("/ok"));
        a.body_regex = r"(?m)^hello from the \w+ server$".into();
        let outcome = run(spec(a.clone())).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");

        a.body_regex = "(?i)ERROR|fail".into();
        let outcome = run(spec(a)).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            outcome.error,
            "response body does not match /(?i)ERROR|fail/"
        );
        assert_eq!(body_of(&outcome.output), "hello from the fake server\n");
    }

    #[tokio::test]
    async fn a_bad_body_regex_is_an_invalid_assignment() {
        let mut a = action("http://127.0.0.1:1/".into());
        a.body_regex = "(unclosed".into();
        let err = HttpSpec::try_new(a, &identity(), None, 1024).expect_err("refused");
        assert!(
            err.starts_with("invalid assignment: http.body_regex: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn no_response_in_time_is_timed_out() {
        let server = FakeHttpServer::start().await;
        let spec = HttpSpec::try_new(
            action(server.url("/hang")),
            &identity(),
            Some(Duration::from_millis(300)),
            DEFAULT_MAX_OUTPUT_BYTES,
        )
        .unwrap();
        let started = Instant::now();
        let outcome = run(spec).await;
        assert_eq!(outcome.status, ExecutionStatus::TimedOut, "{outcome:?}");
        assert_eq!(outcome.error, "no response within 300ms");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(outcome.output, "");
    }

    #[tokio::test]
    async fn the_timeout_covers_the_body_and_keeps_what_arrived() {
        let server = FakeHttpServer::start().await;
        let spec = HttpSpec::try_new(
            action(server.url("/stall")),
            &identity(),
            Some(Duration::from_millis(300)),
            DEFAULT_MAX_OUTPUT_BYTES,
        )
        .unwrap();
        let outcome = run(spec).await;
        assert_eq!(outcome.status, ExecutionStatus::TimedOut, "{outcome:?}");
        assert_eq!(outcome.error, "response not complete within 300ms");
        assert!(outcome.output.starts_with("HTTP/1.1 200 OK\n"));
        assert_eq!(body_of(&outcome.output), "partial body\n");
    }

    #[tokio::test]
    async fn a_large_body_keeps_its_tail() {
        let server = FakeHttpServer::start().await;
        // 64 KiB of body, 100 bytes of output: everything is read, the tail kept.
        let spec = HttpSpec::try_new(
            action(server.url("/large?bytes=65536")),
            &identity(),
            None,
            100,
        )
        .unwrap();
        let outcome = run(spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert!(outcome.output_truncated);
        assert_eq!(outcome.output.len(), 100);
        // 65536 / 8 = 8192 lines, the last one 0008191.
        assert!(
            outcome.output.ends_with("0008190\n0008191\n"),
            "{:?}",
            outcome.output
        );
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_read_limit() {
        let server = FakeHttpServer::start().await;
        let limit = body_limit(100);
        assert_eq!(limit, MIN_BODY_READ_BYTES);
        let mut a = action(server.url(&format!("/large?bytes={}", 3 * limit)));
        a.body_regex = "0000000".into();
        let spec = HttpSpec::try_new(a.clone(), &identity(), None, 100).unwrap();
        let outcome = run(spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert!(outcome.output_truncated);
        assert!(
            outcome.output.ends_with(&format!(
                "\n[kairos: response body cut after {limit} bytes, the rest was not read]\n"
            )),
            "{:?}",
            outcome.output
        );

        // Only what was read is matched: the last line of the body never was.
        a.body_regex = format!("{:07}", 3 * limit / 8 - 1);
        let spec = HttpSpec::try_new(a, &identity(), None, 100).unwrap();
        let outcome = run(spec).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed);
        assert_eq!(
            outcome.error,
            format!(
                "response body does not match /0393215/ (only its first {limit} bytes were read)"
            )
        );
    }

    #[test]
    fn the_read_limit_follows_the_output_cap_within_bounds() {
        assert_eq!(body_limit(1), MIN_BODY_READ_BYTES);
        assert_eq!(body_limit(1024 * 1024), 4 * 1024 * 1024);
        assert_eq!(body_limit(8 * 1024 * 1024), MAX_BODY_READ_BYTES);
        assert_eq!(body_limit(32 * 1024 * 1024), 32 * 1024 * 1024);
    }

    #[tokio::test]
    async fn the_identity_arrives_as_headers() {
        let server = FakeHttpServer::start().await;
        let outcome = run(spec(action(server.url("/echo")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        let echoed = body_of(&outcome.output);
        for line in [
            "kairos-job: ping",
            "kairos-execution-id: exec-1",
            "kairos-scheduled-at: 2026-11-29T02:30:00Z",
            "kairos-attempt: 2",
            "kairos-trigger: retry",
        ] {
            assert!(echoed.lines().any(|l| l == line), "{line} in {echoed}");
        }
        assert!(
            echoed
                .lines()
                .any(|l| l == format!("user-agent: {USER_AGENT}")),
            "{echoed}"
        );
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent_and_a_job_header_wins() {
        let server = FakeHttpServer::start().await;
        let mut a = action(server.url("/echo"));
        a.method = "PUT".into();
        a.body = "{\"full\": true}".into();
        a.headers
            .insert("Content-Type".into(), "application/json".into());
        a.headers.insert("X-Token".into(), "s3cret".into());
        a.headers
            .insert("kairos-job".into(), "chosen-by-the-job".into());
        a.headers.insert("User-Agent".into(), "my-agent".into());
        let outcome = run(spec(a)).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        let echoed = body_of(&outcome.output);
        let lines: Vec<&str> = echoed.lines().collect();
        assert_eq!(lines[0], "PUT /echo");
        for line in [
            "content-type: application/json",
            "x-token: s3cret",
            "kairos-job: chosen-by-the-job",
            "kairos-attempt: 2",
            "user-agent: my-agent",
            "content-length: 14",
        ] {
            assert!(lines.contains(&line), "{line} in {echoed}");
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("kairos-job:"))
                .count(),
            1
        );
        assert!(echoed.ends_with("\n\n{\"full\": true}"), "{echoed}");
    }

    #[tokio::test]
    async fn redirects_are_followed_up_to_five() {
        let server = FakeHttpServer::start().await;
        let outcome = run(spec(action(server.url("/redirect/5")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert_eq!(body_of(&outcome.output), "landed\n");

        let outcome = run(spec(action(server.url("/redirect/6")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
        assert!(outcome.error.contains("too many redirects"), "{outcome:?}");
    }

    #[tokio::test]
    async fn an_unreachable_port_fails_with_the_reason() {
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let outcome = run(spec(action(format!("http://127.0.0.1:{port}/")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
        assert!(outcome.error.contains("Connection refused"), "{outcome:?}");
        assert!(outcome.started_at.is_some());
        assert_eq!(outcome.output, "");
    }

    #[tokio::test]
    async fn a_cancel_ends_the_run() {
        let server = FakeHttpServer::start().await;
        let prepared = prepare(spec(action(server.url("/hang")))).await.unwrap();
        let cancel = CancellationToken::new();
        let sending = tokio::spawn({
            let cancel = cancel.clone();
            async move { prepared.send(&cancel).await }
        });
        server.arrived().await;
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), sending)
            .await
            .expect("a cancelled run ends")
            .unwrap();
        assert_eq!(outcome.status, ExecutionStatus::Cancelled, "{outcome:?}");
        assert_eq!(outcome.error, "cancelled");
    }

    #[tokio::test]
    async fn an_unusable_ca_file_fails_naming_the_file() {
        let mut a = action("https://127.0.0.1:1/".into());
        a.ca_file = "/definitely/not/here/ca.pem".into();
        let err = prepare(spec(a)).await.expect_err("cannot prepare");
        assert!(
            err.starts_with("cannot read CA file \"/definitely/not/here/ca.pem\": "),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut a = action("https://127.0.0.1:1/".into());
        a.ca_file = path.to_string_lossy().into_owned();
        let err = prepare(spec(a)).await.expect_err("cannot prepare");
        assert_eq!(
            err,
            format!(
                "CA file {:?} holds no PEM certificate",
                path.to_string_lossy()
            )
        );

        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut a = action("https://127.0.0.1:1/".into());
        a.ca_file = path.to_string_lossy().into_owned();
        let err = prepare(spec(a)).await.expect_err("cannot prepare");
        assert!(
            err.contains(&format!("{:?}", path.to_string_lossy())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tls_is_verified_by_default_and_a_ca_file_is_trusted() {
        let server = FakeHttpServer::start_tls().await;
        let outcome = run(spec(action(server.url("/ok")))).await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
        assert!(outcome.error.contains("certificate"), "{outcome:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, TEST_CA_PEM).unwrap();
        let mut a = action(server.url("/ok"));
        a.ca_file = path.to_string_lossy().into_owned();
        let outcome = run(spec(a)).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
        assert_eq!(body_of(&outcome.output), "hello from the fake server\n");

        let mut a = action(server.url("/ok"));
        a.insecure_skip_verify = true;
        let outcome = run(spec(a)).await;
        assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    }

    #[test]
    fn logs_see_no_credentials_or_query() {
        let spec = spec(action(
            "https://user:pw@example.com:8443/hook?token=abc#frag".into(),
        ));
        assert_eq!(spec.describe(), "GET https://example.com:8443/hook");
    }
}
