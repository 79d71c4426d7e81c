//! Listeners shared by successive servers: a node that waits for its peers
//! ([`crate::join`]) serves a stand-in on its ports, then the real services on the
//! same sockets, so the ports never close in between and peers never see a refused
//! connection from a node that is only starting.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};

/// Accepted connections of a shared listener, with Nagle off (request/response
/// traffic: raft messages, small RPCs).
pub fn incoming(listener: Arc<TcpListener>) -> impl Stream<Item = std::io::Result<TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, l))
    })
}

/// A shared listener for axum.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<TcpListener>);

impl axum::serve::Listener for Shared {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                // Out of file descriptors and the like: back off instead of spinning
                // (what axum does for a plain TcpListener).
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}
