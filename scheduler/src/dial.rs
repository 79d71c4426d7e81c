//! Dialling another scheduler, in the clear or over TLS with this node's own
//! certificate (which makes it a `scheduler` to the other side): the one way the
//! raft transport, the peers' requests and a new node's probes open channels.

use std::sync::Arc;

use kairos_tls::ClientTls;
use tonic::transport::{Channel, Endpoint};

/// How this node dials its peers.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<ClientTls>>,
}

impl Dialer {
    /// TLS when `tls` is given, else plain.
    pub fn new(tls: Option<Arc<ClientTls>>) -> Dialer {
        Dialer { tls }
    }

    /// A lazily connecting channel to `addr` (`HOST:PORT`).
    pub fn channel(
        &self,
        addr: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, String> {
        match &self.tls {
            Some(tls) => tls.channel(addr, configure).map_err(|e| e.to_string()),
            None => Endpoint::from_shared(format!("http://{addr}"))
                .map(|e| configure(e).connect_lazy())
                .map_err(|e| format!("bad address {addr}: {e}")),
        }
    }

    /// A channel to `addr`, connected now.
    pub async fn connect(
        &self,
        addr: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, String> {
        match &self.tls {
            Some(tls) => tls
                .connect(addr, configure)
                .await
                .map_err(|e| kairos_common::error::chain(&e)),
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| format!("bad address {addr}: {e}"))?;
                configure(endpoint)
                    .connect()
                    .await
                    .map_err(|e| kairos_common::error::chain(&e))
            }
        }
    }
}
