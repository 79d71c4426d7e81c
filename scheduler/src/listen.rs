//! Listeners shared by successive servers, in the clear or over TLS.
//!
//! A node that waits for its peers ([`crate::join`]) serves a stand-in on its
//! ports, then the real services on the same sockets, so the ports never close in
//! between. Each server takes its connections from [`kairos_tls::accept`], whose
//! accept loop ends when the server drops its side; the next server starts its own.
//! Every connection carries a [`ConnInfo`] (the peer's address and, over TLS, the
//! identity in its verified certificate) for the authorization layer.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use kairos_tls::{Conn, ConnInfo, ServerTls};
use tokio::net::TcpListener;

/// Accepted connections for tonic.
pub fn incoming(
    listener: Arc<TcpListener>,
    tls: Option<Arc<ServerTls>>,
) -> impl Stream<Item = std::io::Result<Conn>> {
    tokio_stream::wrappers::ReceiverStream::new(kairos_tls::accept(listener, tls)).map(Ok)
}

/// Accepted connections for axum.
#[derive(Debug)]
pub struct Accepting {
    rx: tokio::sync::mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl Accepting {
    pub fn new(
        listener: Arc<TcpListener>,
        tls: Option<Arc<ServerTls>>,
    ) -> std::io::Result<Accepting> {
        let local = listener.local_addr()?;
        Ok(Accepting {
            rx: kairos_tls::accept(listener, tls),
            local,
        })
    }
}

impl axum::serve::Listener for Accepting {
    type Io = Conn;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => {
                let info = conn.info().clone();
                (conn, info)
            }
            // The accept loop ends only when this side is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo {
            remote: Some(self.local),
            ..Default::default()
        })
    }
}

/// What an HTTP handler learns of its connection (`ConnectInfo<Peer>`).
#[derive(Debug, Clone)]
pub struct Peer(pub ConnInfo);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Accepting>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Accepting>) -> Peer {
        Peer(stream.remote_addr().clone())
    }
}
