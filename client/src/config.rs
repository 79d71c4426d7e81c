//! What a [`crate::Client`] is built from: the endpoints, TLS, the token, the
//! timeouts and the retry policy; and the one reading of an endpoint string.
//!
//! An endpoint is `HOST:PORT` (the scheme `http://` is added), a bare host (the
//! port [`DEFAULT_PORT`] is added), `:PORT` (on 127.0.0.1), or an
//! `http://`/`https://` URL without a path. [`normalize_endpoint`] is the only
//! place that reads one; the command line's `--endpoint` goes through it.

use std::net::Ipv6Addr;
use std::time::Duration;

use tonic::codegen::http::Uri;

use crate::error::{EndpointProblem, Error, Result};

/// The port assumed when an endpoint names only a host.
pub const DEFAULT_PORT: u16 = 7070;

/// How long establishing a connection may take, by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline of every unary call, by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response decoded by default (tonic's own default is 4 MiB; a page
/// of 500 large jobs can pass it).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Everything a client needs; [`ClientConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Schedulers to dial, in order of preference; any member of the group will do
    /// (followers serve reads and forward writes). More than one lets the client
    /// go on when one is down.
    pub endpoints: Vec<String>,
    /// The CA (and optionally this client's certificate and key) for TLS; `None`
    /// speaks in the clear, and then `https://` endpoints are refused.
    pub tls: Option<kairos_tls::TlsFiles>,
    /// A bearer token (`kairos token create`), sent as `authorization: Bearer …`.
    pub token: Option<String>,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// Deadline of each unary attempt (streams that follow have none).
    pub request_timeout: Duration,
    /// When a failed call is tried again.
    pub retry: RetryPolicy,
    /// The largest response message decoded.
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// A configuration for `endpoints` in the clear, without a token, with the
    /// default timeouts and [`RetryPolicy::default`].
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            token: None,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// When a failed call is tried again. Whatever the policy, a call is retried only
/// where that is safe (see the crate essay): a call that must not take effect twice
/// is resent only when it certainly never left this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included; 1 makes each call once.
    pub max_attempts: u32,
    /// The longest a call may take over all its attempts (each attempt still has
    /// its own deadline).
    pub total_time: Duration,
    /// The pause before an attempt at the same or the next endpoint (none before
    /// following a named leader: it is a different node).
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Every call made once: the caller sees exactly what the scheduler answered.
    pub const ONCE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        total_time: Duration::ZERO,
        backoff: Duration::ZERO,
    };
}

impl Default for RetryPolicy {
    /// Follow the leader and move past dead endpoints for up to 6 attempts within
    /// 30 s, 200 ms apart: enough to ride out one election.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            total_time: Duration::from_secs(30),
            backoff: Duration::from_millis(200),
        }
    }
}

/// An endpoint as a URL tonic can dial: a scheme is added to `HOST:PORT`, the
/// default port to a bare host, and a trailing slash is dropped.
pub fn normalize_endpoint(raw: &str) -> Result<String> {
    let text = raw.trim();
    let invalid = |problem| Error::InvalidEndpoint {
        endpoint: text.to_string(),
        problem,
    };
    if text.is_empty() {
        return Err(invalid(EndpointProblem::Empty));
    }
    let url = match text.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => format!("http://{}", rest.trim_end_matches('/')),
            "https" => format!("https://{}", rest.trim_end_matches('/')),
            other => return Err(invalid(EndpointProblem::UnsupportedScheme(other.into()))),
        },
        None => {
            let authority = text.trim_end_matches('/');
            if let Ok(ip) = authority.parse::<Ipv6Addr>() {
                format!("http://[{ip}]:{DEFAULT_PORT}")
            } else if let Some(port) = authority.strip_prefix(':') {
                format!("http://127.0.0.1:{port}")
            } else if port_of(authority).is_some() {
                format!("http://{authority}")
            } else {
                format!("http://{authority}:{DEFAULT_PORT}")
            }
        }
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: tonic::codegen::http::uri::InvalidUri| {
            invalid(EndpointProblem::NotAUrl(e.to_string()))
        })?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(EndpointProblem::NoHost));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(EndpointProblem::HasPath));
    }
    if let Some(port) = uri.authority().and_then(|a| port_of(a.as_str())) {
        match port.parse::<u16>() {
            Ok(0) => return Err(invalid(EndpointProblem::PortZero)),
            Ok(_) => {}
            Err(_) => return Err(invalid(EndpointProblem::BadPort(port.to_string()))),
        }
    }
    Ok(url)
}

/// The text after the port colon of `authority`, if it has one.
fn port_of(authority: &str) -> Option<&str> {
    match authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port; `[::1]:7070` has one.
        Some((host, port)) if host.starts_with('[') => host.ends_with(']').then_some(port),
        Some((_, port)) => Some(port),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() -> anyhow::Result<()> {
        let cases = [
            ("http://127.0.0.1:7070", "http://127.0.0.1:7070"),
            ("http://127.0.0.1:7070/", "http://127.0.0.1:7070"),
            ("HTTP://kairos.internal:7070", "http://kairos.internal:7070"),
            ("127.0.0.1:7070", "http://127.0.0.1:7070"),
            ("  10.0.0.2:9000 ", "http://10.0.0.2:9000"),
            ("localhost:7071", "http://localhost:7071"),
            ("kairos.internal", "http://kairos.internal:7070"),
            (":7075", "http://127.0.0.1:7075"),
            ("[::1]:7070", "http://[::1]:7070"),
            ("[::1]", "http://[::1]:7070"),
            ("::1", "http://[::1]:7070"),
            ("http://kairos.internal", "http://kairos.internal"),
            (
                "https://kairos.internal:7070/",
                "https://kairos.internal:7070",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_endpoint(raw)?, want, "{raw}");
        }
        Ok(())
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        for (raw, problem) in [
            ("", EndpointProblem::Empty),
            (
                "ftp://kairos:7070",
                EndpointProblem::UnsupportedScheme("ftp".into()),
            ),
            ("http://kairos:7070/api", EndpointProblem::HasPath),
            (
                "kairos:notaport",
                EndpointProblem::BadPort("notaport".into()),
            ),
            ("kairos:0", EndpointProblem::PortZero),
            ("http://:7070", EndpointProblem::NoHost),
        ] {
            match normalize_endpoint(raw) {
                Err(Error::InvalidEndpoint { problem: got, .. }) => {
                    assert_eq!(got, problem, "{raw:?}");
                }
                other => panic!("{raw:?}: {other:?}"),
            }
        }
    }
}
