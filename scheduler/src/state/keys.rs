//! Key layout of the state machine's column family. Keys sort so that every listing
//! is a prefix scan:
//!
//! | key                          | value                         |
//! |------------------------------|-------------------------------|
//! | `j/<job>`                    | `JobRecord`                   |
//! | `e/<id u64 BE>`              | `kairos.v1.Execution`         |
//! | `x/<job>\0<id u64 BE>`       | empty: the job's executions   |
//! | `a/<id u64 BE>`              | job name: pending or running  |
//! | `m/applied`                  | u64 BE: the applied index     |
//! | `m/next_execution_id`        | u64 BE                        |
//! | `m/members`                  | `Members`: schedulers' addresses |
//! | `r/<due ms BE><id u64 BE>`   | `RetryRecord`: a pending retry |
//! | `p/<parent id BE><child>`    | `DependencyRecord`: a child to start |
//! | `b/<id u64 BE>`              | `BackfillRecord`: a backfill in progress |
//! | `m/next_backfill_id`, `m/execution_count` | u64 BE counters |
//!
//! Job names cannot contain `\0`, so `x/<job>\0` never prefixes another job's keys.

pub const JOB_PREFIX: &[u8] = b"j/";
pub const EXECUTION_PREFIX: &[u8] = b"e/";
pub const ACTIVE_PREFIX: &[u8] = b"a/";
pub const APPLIED: &[u8] = b"m/applied";
pub const NEXT_EXECUTION_ID: &[u8] = b"m/next_execution_id";
pub const MEMBERS: &[u8] = b"m/members";
pub const RETRY_PREFIX: &[u8] = b"r/";
pub const DEPENDENCY_PREFIX: &[u8] = b"p/";
pub const BACKFILL_PREFIX: &[u8] = b"b/";
pub const NEXT_BACKFILL_ID: &[u8] = b"m/next_backfill_id";
pub const EXECUTION_COUNT: &[u8] = b"m/execution_count";
/// Bearer tokens, by id: `t/<id>` → `TokenRecord`.
pub const TOKEN_PREFIX: &[u8] = b"t/";

pub fn token(id: &str) -> Vec<u8> {
    [TOKEN_PREFIX, id.as_bytes()].concat()
}

/// A pending start of `child` after execution `parent_execution` of its parent.
pub fn dependency(parent_execution: u64, child: &str) -> Vec<u8> {
    [
        DEPENDENCY_PREFIX,
        &parent_execution.to_be_bytes(),
        child.as_bytes(),
    ]
    .concat()
}

pub fn backfill(id: u64) -> Vec<u8> {
    [BACKFILL_PREFIX, &id.to_be_bytes()].concat()
}

/// A pending retry of execution `id`, due at `due_ms` (keys sort by due time).
pub fn retry(due_ms: i64, id: u64) -> Vec<u8> {
    let due = u64::try_from(due_ms).unwrap_or(0);
    [RETRY_PREFIX, &due.to_be_bytes(), &id.to_be_bytes()].concat()
}

pub fn job(name: &str) -> Vec<u8> {
    [JOB_PREFIX, name.as_bytes()].concat()
}

pub fn execution(id: u64) -> Vec<u8> {
    [EXECUTION_PREFIX, &id.to_be_bytes()].concat()
}

pub fn active(id: u64) -> Vec<u8> {
    [ACTIVE_PREFIX, &id.to_be_bytes()].concat()
}

pub fn job_executions_prefix(name: &str) -> Vec<u8> {
    [b"x/", name.as_bytes(), b"\0"].concat()
}

pub fn job_execution(name: &str, id: u64) -> Vec<u8> {
    [job_executions_prefix(name).as_slice(), &id.to_be_bytes()].concat()
}

/// The id at the end of an `e/`, `a/` or `x/` key.
pub fn id_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn encode_u64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}
