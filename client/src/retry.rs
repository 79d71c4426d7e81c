//! Whether a failed attempt is tried again, and where: the client's one rule for
//! following the leader and moving past dead endpoints.
//!
//! The decision looks at the failure and at the call's [`Safety`]:
//!
//! | failure                                        | `Idempotent`      | `AtMostOnce`     |
//! |------------------------------------------------|-------------------|------------------|
//! | the connection could not be made (never sent)  | next endpoint     | next endpoint    |
//! | `Unavailable` + `kairos-leader: ADDR`          | retry at ADDR     | fail, ambiguous  |
//! | `Unavailable` without a leader, `Unknown`, `Cancelled` (a cut connection), `DeadlineExceeded` | next endpoint | fail, ambiguous |
//! | any other answer (NotFound, InvalidArgument…)  | fail              | fail             |
//!
//! Why `AtMostOnce` does not follow the leader: a follower that forwarded the call
//! and lost the leader mid-call answers `Unavailable` + `kairos-leader` too
//! (`scheduler/src/peers.rs`), so that answer does not prove the call was not
//! acted on. `RunJobRequest` carries nothing the scheduler could recognise a
//! resent run by, so resending could start the job twice; the caller hears
//! [`crate::Error::Ambiguous`] instead and decides, knowing it may have run.
//!
//! "Next endpoint" with a single endpoint is the same one again, after the
//! policy's backoff. How many attempts and how long in all is the
//! [`crate::RetryPolicy`]'s business, not this module's.

/// Whether a call may take effect twice without harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads, and writes whose repetition changes nothing (`PutJob` without an
    /// expected version is an upsert; pausing a paused job leaves it paused).
    Idempotent,
    /// Writes a second delivery would repeat or answer differently: `RunJob`,
    /// `Backfill`, `DeleteJob` (the second says NotFound), `CreateToken`,
    /// membership changes.
    AtMostOnce,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it to this address (`HOST:PORT`, from `kairos-leader`).
    Leader(String),
    /// Send it to the next configured endpoint (after the backoff).
    NextEndpoint,
    /// Give up: the answer is final.
    Fail,
    /// Give up: the call may or may not have taken effect.
    Ambiguous,
}

/// The decision for `status`, the failure of a call of the given safety.
pub fn decide(status: &tonic::Status, safety: Safety) -> Decision {
    if never_sent(status) {
        return Decision::NextEndpoint;
    }
    let transient = matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
    );
    match (transient, safety) {
        (false, _) => Decision::Fail,
        (true, Safety::AtMostOnce) => Decision::Ambiguous,
        (true, Safety::Idempotent) => match crate::error::leader_of(status) {
            Some(leader) => Decision::Leader(leader),
            None => Decision::NextEndpoint,
        },
    }
}

/// True when `status` reports a connection that could not be made, so the request
/// never left this process.
pub fn never_sent(status: &tonic::Status) -> bool {
    connect_error(status).is_some()
}

/// The connection error under `status`, when that is what it reports.
pub fn connect_error(status: &tonic::Status) -> Option<&(dyn std::error::Error + 'static)> {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            return Some(err);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn with_leader(mut status: tonic::Status, leader: &'static str) -> tonic::Status {
        status.metadata_mut().insert(
            kairos_proto::LEADER_METADATA_KEY,
            MetadataValue::from_static(leader),
        );
        status
    }

    #[test]
    fn idempotent_calls_follow_the_leader() {
        let status = with_leader(
            tonic::Status::unavailable("not the leader"),
            "127.0.0.1:7071",
        );
        assert_eq!(
            decide(&status, Safety::Idempotent),
            Decision::Leader("127.0.0.1:7071".into())
        );
        assert_eq!(
            decide(&tonic::Status::unavailable("no quorum"), Safety::Idempotent),
            Decision::NextEndpoint
        );
        assert_eq!(
            decide(
                &tonic::Status::deadline_exceeded("timeout"),
                Safety::Idempotent
            ),
            Decision::NextEndpoint
        );
    }

    #[test]
    fn a_run_is_never_resent_once_it_may_have_arrived() {
        let status = with_leader(
            tonic::Status::unavailable("transport error"),
            "127.0.0.1:7071",
        );
        assert_eq!(decide(&status, Safety::AtMostOnce), Decision::Ambiguous);
        assert_eq!(
            decide(&tonic::Status::unknown("h2 reset"), Safety::AtMostOnce),
            Decision::Ambiguous
        );
    }

    #[test]
    fn answers_are_final() {
        for status in [
            tonic::Status::not_found("job a not found"),
            tonic::Status::invalid_argument("invalid schedule: x"),
            tonic::Status::failed_precondition("stale version"),
            tonic::Status::permission_denied("role viewer"),
            // A leader hint on anything but Unavailable is not followed.
            with_leader(tonic::Status::not_found("x"), "127.0.0.1:7071"),
        ] {
            for safety in [Safety::Idempotent, Safety::AtMostOnce] {
                assert_eq!(decide(&status, safety), Decision::Fail, "{status:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_never_sent_whatever_the_call() -> anyhow::Result<()> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
        let refused = kairos_proto::v1::cluster_service_client::ClusterServiceClient::new(channel)
            .get_status(kairos_proto::v1::GetStatusRequest {})
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("a closed port answered"))?;
        assert!(never_sent(&refused), "{refused:?}");
        assert_eq!(decide(&refused, Safety::AtMostOnce), Decision::NextEndpoint);
        Ok(())
    }
}
