//! The scheduler's errors. Mapping to `tonic::Status` happens in one place
//! (`grpc::status`), never here.

/// What went wrong, said so that a caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names the offending value.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is well-formed but the state forbids it (e.g. a stale version).
    #[error("{0}")]
    FailedPrecondition(String),
    /// This node is not the leader and could not hand the request on; `leader` is the
    /// leader's gRPC address when known.
    #[error("not the leader{}", leader.as_ref().map(|l| format!(" (leader is {l})")).unwrap_or_default())]
    NotLeader { leader: Option<String> },
    /// Temporarily unable to serve (no quorum, shutting down); retrying may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation exists in the API but this version does not do it yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or a broken disk: the node cannot continue safely.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<kairos_common::Error> for Error {
    fn from(e: kairos_common::Error) -> Self {
        match e {
            kairos_common::Error::InvalidArgument { field, reason } => {
                Error::InvalidArgument { field, reason }
            }
        }
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
