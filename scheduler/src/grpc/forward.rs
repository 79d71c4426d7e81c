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
/// turns it into a status.
pub async fn or_leader<T, R, F, Fut>(
    forwarder: &Forwarder,
    node_id: u64,
    err: Error,
    forwarded: bool,
    msg: T,
    call: F,
) -> Result<Response<R>, Status>
where
    F: FnOnce(Channel, Request<T>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let Error::NotLeader { leader: Some(addr) } = &err else {
        return Err(to_status(err));
    };
    if forwarded {
        return Err(to_status(err));
    }
    let channel = forwarder.channel(addr)?;
    let mut req = Request::new(msg);
    if let Ok(v) = node_id.to_string().parse() {
        req.metadata_mut().insert(FORWARDED_METADATA_KEY, v);
    }
    match call(channel, req).await {
        Ok(r) => Ok(r),
        Err(mut s) => {
            // Whatever went wrong there, say where the leader is.
            if s.code() == tonic::Code::Unavailable
                && !s.metadata().contains_key(kairos_proto::LEADER_METADATA_KEY)
                && let Ok(v) = addr.parse()
            {
                s.metadata_mut()
                    .insert(kairos_proto::LEADER_METADATA_KEY, v);
            }
            Err(s)
        }
    }
}
