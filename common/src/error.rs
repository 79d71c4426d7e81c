//! Errors of the domain layer: only bad input can go wrong here.

/// A value a user gave that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `field` is the document path of the offending value (`schedule`,
    /// `target.selector`, `shell.command`); `reason` says what is wrong with it in words.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The document path of the offending value.
    pub fn field(&self) -> &str {
        match self {
            Error::InvalidArgument { field, .. } => field,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
