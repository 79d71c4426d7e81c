//! The client's errors: what went wrong, said so that a caller (a command line, a
//! benchmark, a test) can act on it or print it.
//!
//! A scheduler's refusal stays a [`tonic::Status`] ([`Error::Status`]): its code,
//! message and metadata (`kairos-leader`, `kairos-field`) are the contract, and a
//! caller that prints errors renders them itself. Everything the client decides on
//! its own — an endpoint it cannot dial, a call whose outcome it cannot know, a job
//! document it cannot read — is its own variant, naming the thing and the reason.

use std::time::Duration;

use kairos_proto::v1 as pb;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduler answered with an error status (after any retries the policy
    /// allowed). The status is passed on untouched.
    #[error("{}", status_line(.0))]
    Status(tonic::Status),
    /// The connection could not be made: the request never left this process.
    #[error("could not reach {endpoint}: {cause}")]
    Unreachable {
        /// The endpoint dialled last.
        endpoint: String,
        /// The connection error, its causes joined with `: `.
        cause: String,
    },
    /// A call that must not take effect twice (`RunJob`, `Backfill`, `DeleteJob`,
    /// `CreateToken`, ...) was sent and then failed in a way that does not say
    /// whether the scheduler acted on it. It is never resent: the caller looks (at
    /// the executions, the jobs, the tokens) before asking again.
    #[error("{call} may have taken effect before it failed: {}", status_line(.status))]
    Ambiguous {
        /// The RPC, e.g. `RunJob`.
        call: &'static str,
        /// The failure as it came back.
        status: tonic::Status,
    },
    /// An endpoint that is neither `HOST:PORT` nor an `http(s)://HOST:PORT` URL.
    #[error("endpoint{}{problem}", if .endpoint.is_empty() { String::new() } else { format!(" {}", .endpoint) })]
    InvalidEndpoint {
        /// The endpoint as given (trimmed).
        endpoint: String,
        /// Why it cannot be dialled.
        problem: EndpointProblem,
    },
    /// The configuration names no endpoint at all.
    #[error("no endpoint configured")]
    NoEndpoint,
    /// An `https://` endpoint without a CA to verify the scheduler against.
    #[error(
        "endpoint {endpoint}: TLS needs a CA certificate (the CA that signed the schedulers' certificates)"
    )]
    TlsNeedsCa {
        /// The `https://` endpoint.
        endpoint: String,
    },
    /// The CA, certificate or key files are unusable.
    #[error(transparent)]
    Tls(#[from] kairos_tls::Error),
    /// The bearer token holds characters an HTTP header cannot carry.
    #[error("token: not a token (it has characters a header cannot carry)")]
    InvalidToken,
    /// A job document (file or stdin) could not be read.
    #[error("reading {path}")]
    Read {
        /// The file, or `stdin`.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A job document is not what a job file may hold; `reason` names the document
    /// (`document 2`, `item 3`) and the problem.
    #[error("{file}: {reason}")]
    InvalidDocument {
        /// The file's name (`<stdin>` for standard input).
        file: String,
        /// The document and what is wrong with it.
        reason: String,
    },
    /// An execution waited for did not end in time; it goes on.
    #[error(
        "execution {} of job/{} is still {} after {}",
        .execution.id,
        .execution.job,
        if .execution.status.is_empty() { "-" } else { .execution.status.as_str() },
        kairos_common::duration::format_duration(*.waited)
    )]
    StillRunning {
        /// The execution as last seen.
        execution: Box<pb::Execution>,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The scheduler answered something the contract rules out (the same page
    /// token twice, a started run without its execution).
    #[error("{0}")]
    Protocol(String),
}

/// Why an endpoint cannot be dialled. Each renders as the tail of
/// `endpoint <text><problem>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    #[error(" is empty")]
    Empty,
    #[error(": unsupported scheme {0:?}; use http://HOST:PORT or https://HOST:PORT")]
    UnsupportedScheme(String),
    #[error(" is not HOST:PORT or a URL: {0}")]
    NotAUrl(String),
    #[error(" has no host")]
    NoHost,
    #[error(": a gRPC endpoint has no path; use http://HOST:PORT")]
    HasPath,
    #[error(": port 0 cannot be dialled")]
    PortZero,
    #[error(": {0:?} is not a port")]
    BadPort(String),
}

impl Error {
    /// The status the scheduler answered, when the error is one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(status) | Error::Ambiguous { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The gRPC code of the scheduler's answer, when the error is one.
    pub fn code(&self) -> Option<tonic::Code> {
        self.status().map(tonic::Status::code)
    }

    /// The leader's address an `Unavailable` answer named (`kairos-leader`).
    pub fn leader(&self) -> Option<String> {
        self.status().and_then(leader_of)
    }
}

/// The leader's address a scheduler put into an `Unavailable` answer, if any.
pub fn leader_of(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    status
        .metadata()
        .get(kairos_proto::LEADER_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|leader| !leader.is_empty())
        .map(str::to_string)
}

/// `message [code]`, the status as one line.
fn status_line(status: &tonic::Status) -> String {
    let message = status.message().trim();
    let message = if message.is_empty() {
        status.code().description()
    } else {
        message
    };
    format!("{message} [{:?}]", status.code())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_errors_read_as_one_sentence() {
        let empty = Error::InvalidEndpoint {
            endpoint: String::new(),
            problem: EndpointProblem::Empty,
        };
        assert_eq!(empty.to_string(), "endpoint is empty");
        let zero = Error::InvalidEndpoint {
            endpoint: "kairos:0".into(),
            problem: EndpointProblem::PortZero,
        };
        assert_eq!(
            zero.to_string(),
            "endpoint kairos:0: port 0 cannot be dialled"
        );
        let host = Error::InvalidEndpoint {
            endpoint: "http://:7070".into(),
            problem: EndpointProblem::NoHost,
        };
        assert_eq!(host.to_string(), "endpoint http://:7070 has no host");
    }

    #[test]
    fn the_leader_is_read_from_unavailable_only() {
        let mut status = tonic::Status::unavailable("not the leader");
        status.metadata_mut().insert(
            kairos_proto::LEADER_METADATA_KEY,
            tonic::metadata::MetadataValue::from_static("10.0.0.2:7070"),
        );
        assert_eq!(
            Error::Status(status).leader().as_deref(),
            Some("10.0.0.2:7070")
        );
        let mut other = tonic::Status::not_found("job a not found");
        other.metadata_mut().insert(
            kairos_proto::LEADER_METADATA_KEY,
            tonic::metadata::MetadataValue::from_static("10.0.0.2:7070"),
        );
        assert_eq!(Error::Status(other).leader(), None);
    }
}
