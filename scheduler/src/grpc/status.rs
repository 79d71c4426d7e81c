//! The one place where scheduler errors become gRPC statuses.

use kairos_proto::LEADER_METADATA_KEY;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::Error;

/// Metadata key naming the offending field of an InvalidArgument answer.
pub const FIELD_METADATA_KEY: &str = "kairos-field";

pub fn to_status(e: Error) -> Status {
    match e {
        Error::InvalidArgument { ref field, .. } => {
            let mut s = Status::invalid_argument(e.to_string());
            if let Ok(v) = MetadataValue::try_from(field.as_str()) {
                s.metadata_mut().insert(FIELD_METADATA_KEY, v);
            }
            s
        }
        Error::NotFound(_) => Status::not_found(e.to_string()),
        Error::AlreadyExists(_) => Status::already_exists(e.to_string()),
        Error::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
        Error::NotLeader { ref leader } => {
            let mut s = Status::unavailable(e.to_string());
            if let Some(addr) = leader
                .as_deref()
                .and_then(|l| MetadataValue::try_from(l).ok())
            {
                s.metadata_mut().insert(LEADER_METADATA_KEY, addr);
            }
            s
        }
        Error::Unavailable(_) => Status::unavailable(e.to_string()),
        Error::Unimplemented(_) => Status::unimplemented(e.to_string()),
        Error::Internal(_) => Status::internal(e.to_string()),
    }
}

/// `?`-friendly conversion for handlers.
pub trait IntoStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T> IntoStatus<T> for crate::Result<T> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(to_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field() {
        let s = to_status(Error::invalid("schedule", "minute 61 is out of range"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("schedule"));
        assert_eq!(s.metadata().get(FIELD_METADATA_KEY).unwrap(), "schedule");
    }

    #[test]
    fn not_leader_carries_the_leader_address() {
        let s = to_status(Error::NotLeader {
            leader: Some("127.0.0.1:7071".into()),
        });
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(
            s.metadata().get(LEADER_METADATA_KEY).unwrap(),
            "127.0.0.1:7071"
        );
    }
}
