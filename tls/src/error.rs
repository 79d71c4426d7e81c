//! The crate's errors: a file that cannot be read or parsed names the file.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate, key or CA file is unreadable, empty or malformed.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The material does not make a working configuration (a key that does not
    /// match its certificate, a CA file without a certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Generating certificates failed.
    #[error("generating certificates: {0}")]
    Generate(String),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
