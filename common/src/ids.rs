//! Identifier newtypes, so a job name is never passed where an executor id belongs.

use std::fmt;

/// A scheduler node's raft id (non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An execution's id: assigned by the state machine in apply order, so ids are unique
/// across the group and increase with creation. Shown to users in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecutionId(pub u64);

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Compares with a bare number (records and tests speak in numbers).
impl PartialEq<u64> for ExecutionId {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl std::str::FromStr for ExecutionId {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .map(ExecutionId)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "id",
                    format!("{s:?} is not an execution id (a positive number)"),
                )
            })
    }
}

/// An executor's self-chosen name (`--id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecutorId(pub String);

impl ExecutorId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<&str> for ExecutorId {
    fn from(s: &str) -> Self {
        ExecutorId(s.to_string())
    }
}

impl From<String> for ExecutorId {
    fn from(s: String) -> Self {
        ExecutorId(s)
    }
}

impl PartialEq<&str> for ExecutorId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<str> for ExecutorId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Maps keyed by executor look up by `&str` (the derived order is the string's).
impl std::borrow::Borrow<str> for ExecutorId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
