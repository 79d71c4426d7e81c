//! The codec of the stored records (job records and executions) and the small
//! conversions around them. Everything that reads a stored execution decodes it
//! here, so the format has one reader; the state machine writes them
//! (`machine.rs`).

use kairos_common::status::ExecutionStatus;
use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;

use super::JobEntry;
use crate::storage::StorageError;

pub(super) fn decode_job_record(bytes: &[u8]) -> Result<JobEntry, StorageError> {
    let record = ipb::JobRecord::decode(bytes)
        .map_err(|e| StorageError::corrupt(format!("job record: {e}")))?;
    let job = record
        .job
        .as_ref()
        .ok_or_else(|| StorageError::corrupt("job record without a job"))?;
    // Stored jobs were validated when written; failing now means a newer version
    // wrote them or the disk is damaged.
    let spec = kairos_common::job::validate(job).map_err(|e| {
        StorageError::corrupt(format!(
            "stored job {:?} no longer validates: {e}",
            job.name
        ))
    })?;
    Ok(JobEntry { record, spec })
}

pub(super) fn decode_execution(bytes: &[u8]) -> Result<pb::Execution, StorageError> {
    pb::Execution::decode(bytes).map_err(|e| StorageError::corrupt(format!("execution: {e}")))
}

/// The document without its output-only fields, for "did anything change".
pub(super) fn spec_of(job: &pb::Job) -> pb::Job {
    pb::Job {
        version: 0,
        created_at: None,
        updated_at: None,
        status: None,
        ..job.clone()
    }
}

pub(super) fn word(s: ExecutionStatus) -> String {
    s.as_str().to_string()
}

pub(super) fn parse_status(s: &str, id: u64) -> Result<ExecutionStatus, StorageError> {
    s.parse()
        .map_err(|e| StorageError::corrupt(format!("execution {id}: {e}")))
}
