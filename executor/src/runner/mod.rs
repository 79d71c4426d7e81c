//! Runners turn an assignment's action into a run and an outcome.
//!
//! - [`shell`]: `sh -c` in its own process group, output captured, killed as a group
//!   on timeout, cancel or exit.
//! - [`http`]: one HTTP request (redirects followed), judged by its status and
//!   optionally a body regex; the response's status line, headers and body are the
//!   output.
//!
//! Both have the same two steps, so that [`crate::executions`] drives them alike:
//! a fallible start (`shell::spawn`, `http::prepare`) whose error means the run never
//! started, then a wait that takes the cancellation token and returns the
//! [`Outcome`]. The caller reports `started` between the two.
//!
//! This module also holds what every run shares: the run's identity (as the
//! `KAIROS_*` environment of a process, as `Kairos-*` headers of a request), the
//! output cap and the words used in errors. Runners know nothing of the stream, the
//! outbox or fencing.

pub(crate) mod http;
pub(crate) mod output;
pub(crate) mod shell;

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use kairos_common::status::ExecutionStatus;

/// Output kept when the assignment does not say (`max_output_bytes = 0`).
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Which run this is, as the job sees it in its environment or its request
/// headers, so that scripts and receivers can be idempotent too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) job: String,
    pub(crate) execution_id: String,
    pub(crate) scheduled_at: DateTime<Utc>,
    /// 1 for the first attempt.
    pub(crate) attempt: u32,
    /// schedule, manual, retry, dependency, catchup or backfill.
    pub(crate) trigger: String,
}

impl Identity {
    /// The `KAIROS_*` variables; they override a job env entry of the same name.
    pub(crate) fn env(&self) -> [(&'static str, String); 5] {
        [
            ("KAIROS_JOB", self.job.clone()),
            ("KAIROS_EXECUTION_ID", self.execution_id.clone()),
            ("KAIROS_SCHEDULED_AT", format_instant(self.scheduled_at)),
            ("KAIROS_ATTEMPT", self.attempt.to_string()),
            ("KAIROS_TRIGGER", self.trigger.clone()),
        ]
    }

    /// The same facts as request headers; a job header of the same name wins.
    pub(crate) fn headers(&self) -> [(&'static str, String); 5] {
        [
            ("Kairos-Job", self.job.clone()),
            ("Kairos-Execution-Id", self.execution_id.clone()),
            ("Kairos-Scheduled-At", format_instant(self.scheduled_at)),
            ("Kairos-Attempt", self.attempt.to_string()),
            ("Kairos-Trigger", self.trigger.clone()),
        ]
    }
}

/// RFC 3339 in UTC with `Z`: whole seconds when the instant is a whole second
/// (`2026-11-29T02:30:00Z`, what a cron instant looks like), milliseconds otherwise.
pub(crate) fn format_instant(at: DateTime<Utc>) -> String {
    let format = if at.nanosecond() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    at.to_rfc3339_opts(format, true)
}

/// A duration the way job documents write it: `2s`, `30m`, `1h`, `1500ms`.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Sleeps until `deadline`, or forever without one: the timeout arm of a run.
pub(crate) async fn maybe_sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How a run ended, in the words of `ExecutionFinished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: ExecutionStatus,
    /// The process's exit code, when it exited rather than died of a signal;
    /// always `None` for HTTP.
    pub(crate) exit_code: Option<i32>,
    /// The tail of what the run produced, lossily UTF-8: stdout and stderr
    /// interleaved as written, or the HTTP response.
    pub(crate) output: String,
    /// True when the head of the output was dropped to respect the cap.
    pub(crate) output_truncated: bool,
    /// Why it did not succeed, for people; empty on success.
    pub(crate) error: String,
    /// When the process was spawned or the request sent; `None` if it never was.
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) finished_at: SystemTime,
}

impl Outcome {
    /// A run that ended before any process existed or any request was sent.
    pub(crate) fn not_started(status: ExecutionStatus, error: impl Into<String>) -> Self {
        Outcome {
            status,
            exit_code: None,
            output: String::new(),
            output_truncated: false,
            error: error.into(),
            started_at: None,
            finished_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn whole_seconds_are_printed_without_a_fraction() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 2, 30, 0).unwrap();
        assert_eq!(format_instant(at), "2026-11-29T02:30:00Z");
        let at = at + chrono::Duration::milliseconds(250);
        assert_eq!(format_instant(at), "2026-11-29T02:30:00.250Z");
    }

    #[test]
    fn durations_read_like_job_documents() {
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn identity_env_and_headers_name_the_run() {
        let identity = Identity {
            job: "nightly".into(),
            execution_id: "e1".into(),
            scheduled_at: Utc.with_ymd_and_hms(2026, 11, 29, 2, 30, 0).unwrap(),
            attempt: 2,
            trigger: "retry".into(),
        };
        let env: Vec<_> = identity.env().into_iter().collect();
        assert_eq!(
            env,
            [
                ("KAIROS_JOB", "nightly".to_string()),
                ("KAIROS_EXECUTION_ID", "e1".to_string()),
                ("KAIROS_SCHEDULED_AT", "2026-11-29T02:30:00Z".to_string()),
                ("KAIROS_ATTEMPT", "2".to_string()),
                ("KAIROS_TRIGGER", "retry".to_string()),
            ]
        );
        let headers: Vec<_> = identity.headers().into_iter().collect();
        assert_eq!(
            headers,
            [
                ("Kairos-Job", "nightly".to_string()),
                ("Kairos-Execution-Id", "e1".to_string()),
                ("Kairos-Scheduled-At", "2026-11-29T02:30:00Z".to_string()),
                ("Kairos-Attempt", "2".to_string()),
                ("Kairos-Trigger", "retry".to_string()),
            ]
        );
    }
}
