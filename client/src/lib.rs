//! `kairos-client`: the Rust client of a Kairos scheduler group, used by the
//! `kairos` command line, the benchmarks and the tests.
//!
//! A [`Client`] is built from a [`ClientConfig`]: one or more scheduler endpoints,
//! TLS files (through `kairos-tls`, reloaded when they change on disk), a bearer
//! token, a connect timeout, a per-call deadline and a [`RetryPolicy`]. It dials
//! nothing until the first call, and clones share their channels.
//!
//! # Finding and following the leader
//!
//! Any scheduler of the group serves a call: followers answer reads themselves and
//! forward writes, manual runs and live output to the leader. The client only has
//! to act when that fails, and [`retry`] is the one rule for it:
//!
//! - a connection that could not be made never carried the request, so any call
//!   goes on to the next configured endpoint;
//! - `Unavailable` with metadata `kairos-leader: HOST:PORT` (a follower that could
//!   not hand the call on; see `scheduler/src/peers.rs`) sends an idempotent call
//!   to that address at once, and the client keeps talking to the node that
//!   answered;
//! - any other transient failure (`Unavailable` without a leader, a cut
//!   connection, a deadline) sends an idempotent call to the next endpoint after
//!   the policy's backoff;
//! - an answer (NotFound, InvalidArgument, FailedPrecondition, PermissionDenied…)
//!   is final.
//!
//! Attempts are bounded in number and in total time by the [`RetryPolicy`];
//! [`RetryPolicy::ONCE`] makes every call exactly once, which is what the command
//! line uses (its error line names the leader, and a script decides).
//!
//! # Calls that must not happen twice
//!
//! `RunJobRequest` holds only the job's name: nothing lets the scheduler tell a
//! resent run from a new one, so a resend after an ambiguous failure could run the
//! job twice. The scheduler itself forwards a run to a second leader only when it
//! never reached the first, and answers `Unavailable` + `kairos-leader` when the
//! first took it and fell silent — so that answer does not prove the run did not
//! start. The client therefore resends `RunJob` (and real backfills, deletions,
//! new tokens, membership changes: [`Safety::AtMostOnce`]) only when the connection
//! was never made; any other transient failure is [`Error::Ambiguous`], which says
//! the call may have taken effect. Never a silent second run.
//!
//! # Typed helpers
//!
//! One method per RPC ([`Client::put_job`], [`Client::get_execution`],
//! [`Client::cluster_status`]…), each marked with its safety, and the calls that
//! take more than one RPC: [`Client::apply`] (a job file, in order, stopping at the
//! first refusal), [`Client::list_jobs`] and [`Client::list_executions`] (every
//! page), [`Client::wait`] (a run to its final outcome, through its retries),
//! [`Client::watch_executions`] and [`Client::tail_output`] (server streams).
//! [`documents`] reads job files (YAML or JSON, one job or many). [`Client::call`]
//! takes any other RPC through the same attempt loop.
//!
//! Deliberately not here: presentation (tables, the one-line error of the command
//! line — [`Error`] carries the scheduler's [`tonic::Status`] untouched for that),
//! validation of job fields (the server's, or `kairos_common::job::normalize`),
//! reopening a broken stream (what it missed is the caller's to fetch), and
//! automatic retries of `ResourceExhausted` (a write limit is the operator's
//! decision, not something to hammer).

mod client;
mod cluster;
pub mod config;
pub mod documents;
pub mod error;
pub mod executions;
pub mod jobs;
pub mod retry;
mod tokens;

pub use client::{Bearer, Client, Conn};
pub use config::{ClientConfig, RetryPolicy, normalize_endpoint};
pub use documents::JobDoc;
pub use error::{EndpointProblem, Error, Result};
pub use executions::{Output, WaitEvent};
pub use jobs::Applied;
pub use retry::Safety;
