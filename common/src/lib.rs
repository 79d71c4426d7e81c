//! Kairos's domain, free of IO: jobs and their validation, schedules and how they
//! are evaluated across time zones and DST, executor tag selectors, ids, execution
//! statuses, and the `Clock` every time-dependent decision goes through.
//!
//! Everything here is pure and deterministic given a clock, so the scheduler's state
//! machine and the executor can share it, and unit tests can drive it with a
//! [`clock::ManualClock`]. This crate deliberately knows nothing of RocksDB, raft,
//! tonic servers or the filesystem.

// Tests may unwrap (STYLE.md §15); library code may not, and is linted without this.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access;
pub mod clock;
pub mod duration;
pub mod error;
pub mod ids;
pub mod job;
pub mod line_diff;
pub mod schedule;
pub mod selector;
pub mod status;

pub use error::{Error, Result};
