//! Turning any failure into the one line a user reads on stderr.
//!
//! The contract is `error: <message>` on a single line and a non-zero exit. The
//! message is the `anyhow` chain joined with `: ` (outermost context first), except
//! that a [`tonic::Status`] ends the chain and is written as its own message followed
//! by the code in brackets, `... [invalid_argument]` — the code is what scripts and
//! people search for, and the status's transport-level source would only repeat it.
//!
//! A scheduler's answer reaches here inside a [`kairos_client::Error`], and is
//! written the same way. A call that may have taken effect before it failed
//! ([`kairos_client::Error::Ambiguous`]: a run, a deletion, a new token) says so
//! before the status, so nobody repeats it blindly.
//!
//! An `Unavailable` that carries the `kairos-leader` metadata says where the leader
//! is, so the user can re-run with `--endpoint` pointed there.
//!
//! Not here: deciding exit codes beyond success/failure, and retrying — the client
//! reports what happened and leaves the decision to the caller.

use tonic::{Code, Status};

/// The single-line message for `err` (without the `error: ` prefix).
pub fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(status) = cause.downcast_ref::<Status>() {
            parts.push(describe_status(status));
            break;
        }
        match cause.downcast_ref::<kairos_client::Error>() {
            Some(kairos_client::Error::Status(status)) => {
                parts.push(describe_status(status));
                break;
            }
            Some(kairos_client::Error::Ambiguous { call, status }) => {
                parts.push(format!(
                    "{call} may have taken effect before it failed: {}",
                    describe_status(status)
                ));
                break;
            }
            _ => {}
        }
        let text = cause.to_string();
        // Some errors repeat their source in their own message; say it once.
        if parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
    }
    one_line(&parts.join(": "))
}

/// A status as `message [code_name]`, with the leader's address when it is known.
pub fn describe_status(status: &Status) -> String {
    let message = status.message().trim();
    let message = if message.is_empty() {
        status.code().description()
    } else {
        message
    };
    let mut line = format!("{message} [{}]", code_name(status.code()));
    if status.code() == Code::Unavailable
        && let Some(leader) = leader_of(status)
    {
        line.push_str(&format!(
            " (the leader is {leader}; try --endpoint {leader})"
        ));
    }
    one_line(&line)
}

/// The leader's address a follower put into an `Unavailable` answer, if any.
pub fn leader_of(status: &Status) -> Option<String> {
    kairos_client::error::leader_of(status)
}

/// The gRPC code's canonical name in lowercase with underscores.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Folds line breaks (multi-line server messages, YAML error snippets) into spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;
    use kairos_proto::LEADER_METADATA_KEY;
    use tonic::metadata::MetadataValue;

    use super::*;

    #[test]
    fn status_gets_its_code_in_brackets() {
        let status = Status::invalid_argument(
            "invalid schedule: \"61 * * * *\": minute 61 out of range 0-59",
        );
        assert_eq!(
            render(&anyhow::Error::new(status)),
            "invalid schedule: \"61 * * * *\": minute 61 out of range 0-59 [invalid_argument]"
        );
    }

    #[test]
    fn context_comes_first() {
        let err = Err::<(), _>(Status::not_found("job nightly not found"))
            .context("job/nightly")
            .err()
            .map(|e| render(&e));
        assert_eq!(
            err.as_deref(),
            Some("job/nightly: job nightly not found [not_found]")
        );
    }

    #[test]
    fn unavailable_names_the_leader() {
        let mut status = Status::unavailable("not the leader");
        status.metadata_mut().insert(
            LEADER_METADATA_KEY,
            MetadataValue::from_static("10.0.0.2:7070"),
        );
        let line = render(&anyhow::Error::new(status));
        assert!(line.starts_with("not the leader [unavailable]"), "{line}");
        assert!(line.contains("10.0.0.2:7070"), "{line}");
    }

    #[test]
    fn client_errors_render_as_their_status() {
        let mut status = Status::unavailable("the leader did not answer");
        status.metadata_mut().insert(
            LEADER_METADATA_KEY,
            MetadataValue::from_static("10.0.0.2:7070"),
        );
        let plain = anyhow::Error::new(kairos_client::Error::Status(Status::not_found(
            "job a not found",
        )));
        assert_eq!(render(&plain), "job a not found [not_found]");
        let ambiguous = anyhow::Error::new(kairos_client::Error::Ambiguous {
            call: "RunJob",
            status,
        })
        .context("job/a may have started");
        assert_eq!(
            render(&ambiguous),
            "job/a may have started: RunJob may have taken effect before it failed: \
             the leader did not answer [unavailable] (the leader is 10.0.0.2:7070; try --endpoint 10.0.0.2:7070)"
        );
    }

    #[test]
    fn empty_messages_fall_back_to_the_code_description() {
        let line = describe_status(&Status::new(Code::DeadlineExceeded, ""));
        assert!(line.ends_with("[deadline_exceeded]"), "{line}");
        assert!(line.len() > "[deadline_exceeded]".len());
    }

    #[test]
    fn output_is_one_line() {
        let err = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(render(&err), "outer: first second");
    }
}
