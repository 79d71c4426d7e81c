//! Handing a request a follower cannot serve to the leader.
//!
//! Writes (and manual runs, which need the leader's executor registry) are served
//! by the leader only. A follower that receives one forwards it once, over a cached
//! channel, marked with `kairos-forwarded` so it is never forwarded twice; if the
//! leader cannot be reached (or the request was already forwarded), the caller gets
//! `Unavailable` with the leader's address in `kairos-leader`, to retry there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::Error;
use crate::core::Core;

/// Metadata marking a request already forwarded once.
pub const FORWARDED_METADATA_KEY: &str = "kairos-forwarded";
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Channels to leaders, by address.
#[derive(Debug, Default)]
pub struct Forwarder {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarder {
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut map = self
            .channels
            .lock()
            .expect("invariant: forwarder lock is never poisoned");
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(format!("bad leader address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(FORWARD_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// True when the request came from another scheduler already.
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED_METADATA_KEY)
}

/// Serves `err` from the leader when it says this node is not the leader; otherwise
/// turns it into a status. If the leader this node knows cannot be reached (it just
/// died), waits for the group to elect another — up to [`crate::core::LEADER_WAIT`] —
/// and tries that one once.
pub async fn or_leader<T, R, F, Fut>(
    core: &Core,
    err: Error,
    forwarded: bool,
    msg: T,
    call: F,
) -> Result<Response<R>, Status>
where
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
    let first = forward_once(core, addr, msg.clone(), &call).await;
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
    // The leader did not answer: wait for the next one.
    let dead = core.status().leader_id;
    let mut watch = core.raft.watch_status();
    let deadline = tokio::time::Instant::now() + crate::core::LEADER_WAIT;
    loop {
        let s = watch.borrow_and_update().clone();
        if s.leader_id != 0 && s.leader_id != dead {
            break;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            return with_leader_hint(first, addr);
        }
    }
    match core.require_leader() {
        Err(Error::NotLeader { leader: Some(next) }) => {
            let second = forward_once(core, &next, msg, &call).await;
            with_leader_hint(second, &next)
        }
        // This node took over: the client should simply retry here.
        Ok(()) => Err(to_status(Error::Unavailable(
            "the leader changed while forwarding; retry".into(),
        ))),
        Err(e) => Err(to_status(e)),
    }
}

async fn forward_once<T, R, F, Fut>(
    core: &Core,
    addr: &str,
    msg: T,
    call: &F,
) -> Result<Response<R>, Status>
where
    F: Fn(Channel, Request<T>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let channel = core.forwarder.channel(addr)?;
    let mut req = Request::new(msg);
    if let Ok(v) = core.config.node_id.to_string().parse() {
        req.metadata_mut().insert(FORWARDED_METADATA_KEY, v);
    }
    call(channel, req).await
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
