//! Text → typed values, with the same rules wherever the text comes from.
//!
//! Each function here is a clap `value_parser` and is also applied to the matching
//! config-file entry, so `--grpc-addr`, `KAIROS_GRPC_ADDR` and `grpc-addr = "..."`
//! accept exactly the same spellings and fail with the same words. Errors are plain
//! sentences that name the offending text; callers add where it came from.
//!
//! Deliberately not here: cross-field checks (a peer list that must contain the
//! node's own id, election ticks above heartbeat ticks) — those live in
//! [`super`], which sees the whole configuration.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use tonic::codegen::http::Uri;

use crate::logging::LogFormat;

/// A listen address: `IP:PORT`, `HOST:PORT` (resolved once, now) or `:PORT` (every
/// IPv4 interface). Port 0 asks the OS for a free port.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let text = s.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?} is not HOST:PORT (bad port)"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if !text.contains(':') {
        return Err(format!("{text:?} is not HOST:PORT (no port)"));
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{text:?} resolves to no address")),
        Err(e) => Err(format!("{text:?} is not HOST:PORT: {e}")),
    }
}

/// One initial voter: `ID=HOST:PORT` with a non-zero id.
pub fn peer(s: &str) -> Result<(u64, String), String> {
    let text = s.trim();
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=HOST:PORT"))?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the id {:?} is not a number", id.trim()))?;
    if id == 0 {
        return Err(format!("{text:?}: node ids start at 1"));
    }
    let addr = addr.trim();
    if addr.is_empty() || addr.contains(char::is_whitespace) || !addr.contains(':') {
        return Err(format!("{text:?}: {addr:?} is not HOST:PORT"));
    }
    Ok((id, addr.to_string()))
}

/// An executor tag, `KEY=VALUE`, by the rules selectors match against.
pub fn tag(s: &str) -> Result<(String, String), String> {
    kairos_common::selector::parse_tag(s.trim())
}

/// A duration in the job-document form: `500ms`, `30s`, `1m30s`, `2h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    kairos_common::duration::parse_duration(s)
}

/// An RFC 3339 instant with an explicit offset, e.g. `2026-03-29T01:00:00Z`.
pub fn rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-03-29T01:00:00Z: {e}"))
}

/// A path, taken as written (relative paths are relative to the working directory).
pub fn path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("the path is empty".to_string());
    }
    Ok(PathBuf::from(s))
}

/// A non-empty name.
pub fn name(s: &str) -> Result<String, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("the name is empty".to_string());
    }
    Ok(text.to_string())
}

/// `true`/`false` (also `yes`/`no`, `1`/`0`).
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A non-negative integer.
pub fn number<T: FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a non-negative integer in range"))
}

/// A webhook: an absolute `http://` or `https://` URL with a host, taken as written
/// (trimmed).
pub fn webhook_url(s: &str) -> Result<String, String> {
    let text = s.trim();
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "{text:?}: the scheme {other:?} is not http or https"
            ));
        }
        None => return Err(format!("{text:?} is not an absolute http(s) URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    Ok(text.to_string())
}

/// A rate per second: a finite number above 0 (`0.5` is one every two seconds).
pub fn rate(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("{text:?}: the rate must be above 0"));
    }
    Ok(rate)
}

/// A limit per second: a finite number, 0 or more (0 is "no limit" where a flag says so).
pub fn limit(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let limit: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !limit.is_finite() || limit < 0.0 {
        return Err(format!("{text:?}: the limit must be a number, 0 or more"));
    }
    Ok(limit)
}

/// A bearer token as `kairos token create` prints it: one word.
pub fn token(s: &str) -> Result<String, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("the token is empty".to_string());
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err("a token is one word of printable ASCII".to_string());
    }
    Ok(text.to_string())
}

/// `text` or `json`.
pub fn log_format(s: &str) -> Result<LogFormat, String> {
    LogFormat::from_str(s.trim(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_addr("127.0.0.1:0"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert_eq!(
            listen_addr(":7070"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 7070)))
        );
        assert_eq!(listen_addr("[::1]:80").map(|a| a.is_ipv6()), Ok(true));
        assert_eq!(listen_addr("localhost:7070").map(|a| a.port()), Ok(7070));
        assert!(listen_addr("localhost").is_err());
        assert!(listen_addr("127.0.0.1:99999").is_err());
    }

    #[test]
    fn peers() {
        assert_eq!(
            peer("2=10.0.0.2:7070"),
            Ok((2, "10.0.0.2:7070".to_string()))
        );
        assert!(peer("0=a:1").is_err());
        assert!(peer("x=a:1").is_err());
        assert!(peer("1=").is_err());
        assert!(peer("a:1").is_err());
    }

    #[test]
    fn webhook_urls() {
        assert_eq!(
            webhook_url(" https://hooks.example.com/kairos?x=1 "),
            Ok("https://hooks.example.com/kairos?x=1".to_string())
        );
        assert!(webhook_url("http://10.0.0.1:8080/hook").is_ok());
        for bad in [
            "",
            "hooks.example.com/kairos",
            "ftp://hooks.example.com",
            "http:///path",
            "https://exa mple.com",
        ] {
            assert!(webhook_url(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate("0.5"), Ok(0.5));
        assert_eq!(rate("10"), Ok(10.0));
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            assert!(rate(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn instants_need_an_offset() {
        assert!(rfc3339("2026-03-29T01:00:00Z").is_ok());
        assert!(rfc3339("2026-03-29T03:00:00+02:00").is_ok());
        assert!(rfc3339("2026-03-29 01:00").is_err());
    }
}
