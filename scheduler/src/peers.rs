//! Reaching another scheduler: the one way this node talks to the leader or to
//! another member on a caller's behalf.
//!
//! - Forwarding ([`Peers::to_leader`]): a request this node cannot serve (a write,
//!   a manual run, live output — the leader's business) goes to the leader it knows,
//!   once, marked `kairos-forwarded` so it is never forwarded again. If that leader
//!   does not answer (it just died), the node waits for the group to name another —
//!   up to [`crate::raft::LEADER_WAIT`] — and tries that one once; a request that
//!   must not take effect twice (a manual run, a backfill, a new token) only when it
//!   certainly never reached the first ([`Peers::to_leader_at_most_once`]). What it cannot
//!   hand on is answered `UNAVAILABLE` with the leader's address in `kairos-leader`,
//!   so the client retries there. The gRPC adapters, the live-output relay and the
//!   Dkron-compatible HTTP API all forward through here.
//! - Asking a member about itself: its own status row ([`Peers::status_of`]), the
//!   leader's executors ([`Peers::executors_of`]), a removal after a handoff
//!   ([`Peers::remove_via`]).
//!
//! Channels are cached by address and connect lazily, with bounded connect and call
//! times. Deliberately absent: the raft transport (raft's own streams, in
//! `raft/transport.rs`) and the start-up probes of a new node (`join.rs`), which run
//! before this node has a group to speak for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use kairos_proto::v1 as pb;
use pb::cluster_service_client::ClusterServiceClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::Error;
use crate::dial::Dialer;
use crate::grpc::status::to_status;
use crate::raft::{AddressBook, RaftHandle};

/// Metadata marking a request already forwarded once.
pub const FORWARDED_METADATA_KEY: &str = "kairos-forwarded";
/// Metadata asking a scheduler for its own status row only (no fan-out).
pub const LOCAL_STATUS_METADATA_KEY: &str = "kairos-local-status";
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a member may take to report its figures for a status.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// When a forward that got no answer is sent to the next leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Whenever the leader did not answer: the request is an upsert or otherwise
    /// harmless twice.
    IfUnanswered,
    /// Only when it never left this node (the connection could not be made).
    IfNeverSent,
}

/// True when `status` reports a connection that could not be made, so the request
/// was never sent.
fn never_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = err.source();
    }
    false
}

/// True when the request came from another scheduler already.
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED_METADATA_KEY)
}

/// Channels to other schedulers, by address.
#[derive(Debug, Default)]
pub struct Peers {
    dialer: Dialer,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub fn new(dialer: Dialer) -> Peers {
        Peers {
            dialer,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A channel to the scheduler at `addr` (cached; connects on first use).
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut map = self
            .channels
            .lock()
            .expect("invariant: peer channel lock is never poisoned");
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let channel = self
            .dialer
            .channel(addr, |e| {
                e.connect_timeout(Duration::from_secs(2))
                    .timeout(FORWARD_TIMEOUT)
                    .tcp_nodelay(true)
            })
            .map_err(|e| Status::internal(format!("bad scheduler address {addr}: {e}")))?;
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Serves a request from the leader when `err` says this node is not it;
    /// otherwise turns `err` into a status. `me` marks the forwarded request;
    /// `forwarded` says the request came forwarded already (then it is not passed
    /// on again). See the module essay for the retry on a dead leader.
    #[allow(clippy::too_many_arguments)]
    pub async fn to_leader<O, T, R, F, Fut>(
        &self,
        raft: &RaftHandle<O>,
        book: &AddressBook,
        me: u64,
        err: Error,
        forwarded: bool,
        msg: T,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        O: Send + 'static,
        T: Clone,
        F: Fn(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        self.forward(
            raft,
            book,
            me,
            err,
            forwarded,
            Resend::IfUnanswered,
            msg,
            call,
        )
        .await
    }

    /// [`Peers::to_leader`] for a request that must not take effect twice (a manual
    /// run, a backfill, a new token): it is sent to a second leader only when it
    /// certainly never reached the first (the connection could not be made). When
    /// the first leader took it and fell silent, the caller hears `UNAVAILABLE` with
    /// the new leader's address and decides, knowing it may have taken effect.
    #[allow(clippy::too_many_arguments)]
    pub async fn to_leader_at_most_once<O, T, R, F, Fut>(
        &self,
        raft: &RaftHandle<O>,
        book: &AddressBook,
        me: u64,
        err: Error,
        forwarded: bool,
        msg: T,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        O: Send + 'static,
        T: Clone,
        F: Fn(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        self.forward(
            raft,
            book,
            me,
            err,
            forwarded,
            Resend::IfNeverSent,
            msg,
            call,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward<O, T, R, F, Fut>(
        &self,
        raft: &RaftHandle<O>,
        book: &AddressBook,
        me: u64,
        err: Error,
        forwarded: bool,
        resend: Resend,
        msg: T,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        O: Send + 'static,
        T: Clone,
        F: Fn(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let Error::NotLeader { leader: Some(addr) } = &err else {
            return Err(to_status(err));
        };
        if forwarded {
            return Err(to_status(err));
        }
        let first = self.forward_once(me, addr, msg.clone(), &call).await;
        let Err(status) = &first else {
            return first;
        };
        if status.code() != tonic::Code::Unavailable
            || status
                .metadata()
                .contains_key(kairos_proto::LEADER_METADATA_KEY)
        {
            return first;
        }
        if resend == Resend::IfNeverSent && !never_sent(status) {
            return with_leader_hint(first, addr);
        }
        // The leader did not answer: wait for the next one.
        let dead = raft.status().leader_id;
        let mut watch = raft.watch_status();
        let deadline = tokio::time::Instant::now() + crate::raft::LEADER_WAIT;
        let next = loop {
            let s = watch.borrow_and_update().clone();
            if s.leader_id != 0 && s.leader_id != dead {
                break s;
            }
            if tokio::time::timeout_at(deadline, watch.changed())
                .await
                .is_err()
            {
                return with_leader_hint(first, addr);
            }
        };
        if next.leader_id == next.id {
            // This node took over: the client should simply retry here.
            return Err(to_status(Error::Unavailable(
                "the leader changed while forwarding; retry".into(),
            )));
        }
        let Some(next_addr) = book.get(next.leader_id) else {
            return with_leader_hint(first, addr);
        };
        let second = self.forward_once(me, &next_addr, msg, &call).await;
        with_leader_hint(second, &next_addr)
    }

    async fn forward_once<T, R, F, Fut>(
        &self,
        me: u64,
        addr: &str,
        msg: T,
        call: &F,
    ) -> Result<Response<R>, Status>
    where
        F: Fn(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let channel = self.channel(addr)?;
        call(channel, on_behalf(Some(me), msg)).await
    }

    /// Asks the scheduler at `addr` for its own status row.
    pub async fn status_of(&self, addr: &str) -> Option<pb::SchedulerStatus> {
        if addr.is_empty() {
            return None;
        }
        let channel = self.channel(addr).ok()?;
        let mut req = on_behalf(None, pb::GetStatusRequest {});
        req.metadata_mut()
            .insert(LOCAL_STATUS_METADATA_KEY, "1".parse().ok()?);
        req.set_timeout(PEER_STATUS_TIMEOUT);
        let mut client = ClusterServiceClient::new(channel);
        let call = client.get_status(req);
        let status = tokio::time::timeout(PEER_STATUS_TIMEOUT, call)
            .await
            .ok()?
            .ok()?
            .into_inner();
        status
            .schedulers
            .into_iter()
            .find(|s| s.id == status.answered_by)
    }

    /// Asks the leader at `addr` for its executors.
    pub async fn executors_of(&self, addr: &str) -> Option<Vec<pb::ExecutorStatus>> {
        if addr.is_empty() {
            return None;
        }
        let channel = self.channel(addr).ok()?;
        let mut req = on_behalf(None, pb::ListExecutorsRequest {});
        req.set_timeout(PEER_STATUS_TIMEOUT);
        let mut client = ClusterServiceClient::new(channel);
        let call = client.list_executors(req);
        Some(
            tokio::time::timeout(PEER_STATUS_TIMEOUT, call)
                .await
                .ok()?
                .ok()?
                .into_inner()
                .executors,
        )
    }

    /// Asks the leader at `addr` to remove scheduler `id` (after this node, `me`,
    /// handed it the leadership).
    pub async fn remove_via(&self, me: u64, addr: &str, id: u64) -> crate::Result<()> {
        let channel = self
            .channel(addr)
            .map_err(|s| Error::Unavailable(s.message().to_string()))?;
        let req = on_behalf(Some(me), pb::RemoveSchedulerRequest { id });
        ClusterServiceClient::new(channel)
            .remove_scheduler(req)
            .await
            .map(|_| ())
            .map_err(|s| {
                Error::Unavailable(format!(
                    "the new leader could not remove scheduler {id}: {}",
                    s.message()
                ))
            })
    }
}

/// A request to a peer made while serving a caller: marked as forwarded by `me` (when
/// it is a forward), and naming the caller being served, so that the peer authorizes
/// that caller and not this node (it believes the name only from a scheduler's
/// certificate). Outside a caller's request nobody is named, and the peer sees only
/// this node's scheduler role, which reads and writes nothing.
fn on_behalf<T>(me: Option<u64>, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(me) = me
        && let Ok(v) = me.to_string().parse()
    {
        req.metadata_mut().insert(FORWARDED_METADATA_KEY, v);
    }
    if let Some(caller) = crate::auth::current_principal()
        && let Ok(v) = caller.to_string().parse()
    {
        req.metadata_mut()
            .insert(crate::auth::ON_BEHALF_OF_METADATA_KEY, v);
    }
    req
}

/// Whatever went wrong at the leader, say where it is.
fn with_leader_hint<R>(
    result: Result<Response<R>, Status>,
    addr: &str,
) -> Result<Response<R>, Status> {
    result.map_err(|mut s| {
        if s.code() == tonic::Code::Unavailable
            && !s.metadata().contains_key(kairos_proto::LEADER_METADATA_KEY)
            && let Ok(v) = addr.parse()
        {
            s.metadata_mut()
                .insert(kairos_proto::LEADER_METADATA_KEY, v);
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_connection_never_made_counts_as_never_sent() {
        // A port nothing listens on: bound, then closed.
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let refused = ClusterServiceClient::new(channel)
            .get_status(pb::GetStatusRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(never_sent(&refused), "{refused:?}");
        // An answer the leader gave, or a call cut after it was sent, is not.
        assert!(!never_sent(&Status::unavailable("the leader changed")));
    }
}
