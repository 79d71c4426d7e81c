//! The executor's errors.
//!
//! [`crate::run`] fails only for a configuration that can never work. Everything
//! that happens afterwards is handled inside: a scheduler that is down, a redirect
//! or a broken stream is retried by the session (and logged), and whatever goes
//! wrong with a job is that job's result, reported to the leader, never an `Error`
//! here.

/// Why the executor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (no schedulers, an empty id): fix the flags.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A scheduler address is not usable; it names the address so the operator
    /// can find it.
    #[error("invalid scheduler address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as configured.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The executor's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
