//! `kairos.v1.RaftTransport`: the receiving end of peers' raft traffic. Bytes in,
//! handed to the raft module; no raft types here.
//!
//! Who may send (with TLS): a scheduler certificate of the cluster's CA, speaking
//! only for the node it names (`from` = its id), and only while that node is a
//! voter or learner here. One exception: a node that belongs to no group yet (started
//! with `--join`, no voters and no learners) takes traffic from any scheduler
//! certificate, since the leader that admits it is by definition not in its (empty)
//! membership; its first messages bring the group's membership, and from then on the
//! rule above holds. A holder of a scheduler certificate is a trusted peer anyway.

use std::sync::Arc;

use kairos_proto::v1 as pb;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::auth::{Principal, Via};
use crate::core::Core;
use crate::peers::is_forwarded;
use crate::raft::SnapshotReceiver;

/// The service; the token ends peers' long-lived message streams when the node stops
/// (a graceful server shutdown waits for every open stream).
#[derive(Debug, Clone)]
pub struct RaftApi(pub Arc<Core>, pub tokio_util::sync::CancellationToken);

impl RaftApi {
    /// The node id a scheduler certificate names (`None` when the node runs open).
    fn sender<T>(&self, req: &Request<T>) -> Result<Option<u64>, Status> {
        match req.extensions().get::<Principal>() {
            Some(p) if p.via == Via::Certificate => p
                .name
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Status::permission_denied(format!("{p} names no node id"))),
            Some(p) if p.via == Via::Open => Ok(None),
            Some(p) => Err(Status::permission_denied(format!(
                "{p}: raft traffic needs a scheduler certificate"
            ))),
            None => Err(Status::permission_denied(
                "raft traffic needs a scheduler certificate",
            )),
        }
    }

    /// A certificate may speak only for its own node, and only while it is a member.
    fn check_sender(&self, sender: Option<u64>, from: u64) -> Result<(), Status> {
        let Some(id) = sender else {
            return Ok(());
        };
        if from != id {
            return Err(Status::permission_denied(format!(
                "the certificate of scheduler {id} cannot send for scheduler {from}"
            )));
        }
        let s = self.0.status();
        let awaiting_admission = s.voters.is_empty() && s.learners.is_empty();
        if !awaiting_admission && !s.voters.contains(&id) && !s.learners.contains(&id) {
            return Err(Status::permission_denied(format!(
                "scheduler {id} is not a member of this group"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::raft_transport_server::RaftTransport for RaftApi {
    async fn membership(
        &self,
        _req: Request<pb::MembershipRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let s = self.0.status();
        Ok(Response::new(pb::MembershipReply {
            state: pb::membership_reply::State::Member as i32,
            voters: s.voters.clone(),
            leader_id: s.leader_id,
            leader_addr: self.0.leader_addr().unwrap_or_default(),
            last_index: s.log_last_index,
            id: s.id,
        }))
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let forwarded = is_forwarded(&req);
        let req = req.into_inner();
        match self.0.join(req.id, &req.addr, req.empty).await {
            Ok(voters) => Ok(Response::new(pb::JoinReply {
                voters,
                leader_id: self.0.status().leader_id,
            })),
            Err(e) => {
                self.0
                    .to_leader(e, forwarded, req, |ch, r| async move {
                        pb::raft_transport_client::RaftTransportClient::new(ch)
                            .join(r)
                            .await
                    })
                    .await
            }
        }
    }

    async fn send(
        &self,
        req: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        let sender = self.sender(&req)?;
        let mut stream = req.into_inner();
        loop {
            let next = tokio::select! {
                _ = self.1.cancelled() => return Err(Status::unavailable("the node is stopping")),
                next = stream.message() => next?,
            };
            let Some(batch) = next else { break };
            self.check_sender(sender, batch.from)?;
            if batch.from != 0 {
                self.0.book.set(batch.from, batch.from_addr);
            }
            for m in &batch.messages {
                if let Err(e) = self.0.raft.step_encoded(m, sender) {
                    return Err(match e {
                        crate::raft::StepRefused::Malformed(why) => Status::invalid_argument(why),
                        crate::raft::StepRefused::NotTheSender(why) => {
                            Status::permission_denied(why)
                        }
                    });
                }
            }
        }
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        let sender = self.sender(&req)?;
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.check_sender(sender, first.from)?;
        if first.from != 0 {
            self.0.book.set(first.from, first.from_addr.clone());
        }
        let db = self.0.db.clone();
        let message = first.message;
        let receiver = tokio::task::spawn_blocking(move || SnapshotReceiver::begin(db, &message))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::invalid_argument)?;
        let receiver = Arc::new(receiver);
        let mut chunks = 0u64;
        let outcome: Result<(), Status> = async {
            loop {
                let Some(chunk) = stream.message().await? else {
                    return Err(Status::aborted(
                        "snapshot stream ended before its last chunk",
                    ));
                };
                if !chunk.data.is_empty() {
                    let r = receiver.clone();
                    tokio::task::spawn_blocking(move || r.write(&chunk.data))
                        .await
                        .map_err(|e| Status::internal(e.to_string()))?
                        .map_err(Status::internal)?;
                    chunks += 1;
                }
                if chunk.last {
                    return Ok(());
                }
            }
        }
        .await;
        let receiver = Arc::try_unwrap(receiver)
            .map_err(|_| Status::internal("snapshot receiver still shared"))?;
        match outcome {
            Ok(()) => {
                let raft = self.0.raft.clone();
                tokio::task::spawn_blocking(move || receiver.finish(&raft))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(Status::internal)?;
                debug!(chunks, "snapshot received");
                Ok(Response::new(pb::RaftAck {}))
            }
            Err(e) => {
                warn!(error = %e, "snapshot transfer broke");
                tokio::task::spawn_blocking(move || receiver.abort())
                    .await
                    .ok();
                Err(e)
            }
        }
    }
}
