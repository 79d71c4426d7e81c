//! The server side: a rustls config that reloads its files, and the accept loop
//! that hands the servers (tonic, axum) connections that finished their handshake.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::files::Reloading;
use crate::{Error, Identity, Result, TlsFiles, identity_of};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 256;

/// A server's TLS: its certificate and key, and the CA its clients' certificates
/// must chain to. Clients without a certificate are let through the handshake (they
/// must bring a token); a certificate the CA did not sign fails it.
pub struct ServerTls {
    config: Reloading<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", self.config.files())
            .finish()
    }
}

impl ServerTls {
    /// Loads the files (they must all be there and valid now; later changes are
    /// picked up on the fly).
    pub fn new(files: TlsFiles) -> Result<ServerTls> {
        crate::install_crypto_provider();
        if files.cert.is_none() {
            return Err(Error::Config(
                "a server needs its own certificate and key".into(),
            ));
        }
        Ok(ServerTls {
            config: Reloading::new(files, build)?,
        })
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.get())
    }
}

fn build(files: &TlsFiles) -> Result<ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in files.ca_certs()? {
        roots
            .add(cert)
            .map_err(|e| Error::file(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Config(format!("client verification: {e}")))?;
    let (chain, key) = files
        .own()?
        .ok_or_else(|| Error::Config("a server needs its own certificate and key".into()))?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// One accepted connection, in the clear or after its TLS handshake.
pub enum Conn {
    Plain(TcpStream, ConnInfo),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, ConnInfo),
}

/// What the server knows of a connection's other end.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// True when the connection is TLS.
    pub tls: bool,
    /// The identity in the client's certificate, verified by the handshake.
    pub peer: Option<Identity>,
}

impl Conn {
    pub fn info(&self) -> &ConnInfo {
        match self {
            Conn::Plain(_, info) | Conn::Tls(_, info) => info,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info().clone()
    }
}

/// The connections of `listener`, handshaken when `tls` is given (each handshake on
/// its own task, bounded by a deadline; a failed one is logged and dropped). The
/// accept loop ends when the returned receiver is dropped, so successive servers can
/// take turns on one listener.
pub fn accept(listener: Arc<TcpListener>, tls: Option<Arc<ServerTls>>) -> mpsc::Receiver<Conn> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match &tls {
                None => {
                    let info = ConnInfo {
                        remote: Some(remote),
                        ..Default::default()
                    };
                    if tx.send(Conn::Plain(stream, info)).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => {
                                let peer = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|certs| certs.first())
                                    .and_then(identity_of);
                                let info = ConnInfo {
                                    remote: Some(remote),
                                    tls: true,
                                    peer,
                                };
                                let _ = tx.send(Conn::Tls(Box::new(stream), info)).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::certs::{Spec, init, issue};
    use crate::{ClientTls, TlsFiles};

    /// A health service behind `accept`, recording each request's peer identity.
    async fn serve(tls: Arc<ServerTls>) -> (SocketAddr, Arc<Mutex<Vec<Option<Identity>>>>) {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (_, health) = tonic_health::server::health_reporter();
        let incoming = tokio_stream::wrappers::ReceiverStream::new(accept(listener, Some(tls)))
            .map(Ok::<_, std::io::Error>);
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(tonic::service::InterceptorLayer::new(
                    move |req: tonic::Request<()>| {
                        let peer = req
                            .extensions()
                            .get::<ConnInfo>()
                            .and_then(|i| i.peer.clone());
                        record.lock().unwrap().push(peer);
                        Ok(req)
                    },
                ))
                .add_service(health)
                .serve_with_incoming(incoming),
        );
        (addr, seen)
    }

    async fn check(tls: &Arc<ClientTls>, addr: SocketAddr) -> std::result::Result<(), String> {
        let channel = tls
            .channel(&format!("localhost:{}", addr.port()), |e| e)
            .map_err(|e| e.to_string())?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|_| ())
            .map_err(|s| format!("{s:?}"))
    }

    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn clients_with_and_without_certificates_get_in_and_a_stranger_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            schedulers: vec![1],
            hosts: vec!["localhost".into()],
            executors: vec!["web-1".into()],
            clients: vec![],
        };
        init(dir.path(), &spec).unwrap();
        let other = tempfile::tempdir().unwrap();
        init(other.path(), &spec).unwrap();

        let server = Arc::new(ServerTls::new(TlsFiles::in_dir(dir.path(), "scheduler-1")).unwrap());
        let (addr, seen) = serve(server).await;

        let anonymous = ClientTls::new(TlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: None,
            key: None,
        })
        .unwrap();
        check(&anonymous, addr).await.unwrap();
        let executor = ClientTls::new(TlsFiles::in_dir(dir.path(), "executor-web-1")).unwrap();
        check(&executor, addr).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                None,
                Some(Identity {
                    role: "executor".into(),
                    name: "web-1".into()
                })
            ]
        );
        // A certificate from another CA fails the handshake; so does a client that
        // does not trust the server's CA.
        let stranger = ClientTls::new(TlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: Some(other.path().join("executor-web-1.crt")),
            key: Some(other.path().join("executor-web-1.key")),
        })
        .unwrap();
        assert!(check(&stranger, addr).await.is_err());
        let distrustful = ClientTls::new(TlsFiles {
            ca: other.path().join("ca.crt"),
            cert: None,
            key: None,
        })
        .unwrap();
        assert!(check(&distrustful, addr).await.is_err());
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "neither got a request through"
        );
    }

    #[tokio::test]
    async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            schedulers: vec![1],
            hosts: vec!["localhost".into()],
            ..Default::default()
        };
        init(dir.path(), &spec).unwrap();
        let server = Arc::new(ServerTls::new(TlsFiles::in_dir(dir.path(), "scheduler-1")).unwrap());
        let before = server.config.get();
        let (addr, _) = serve(server.clone()).await;
        let client = ClientTls::new(TlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: None,
            key: None,
        })
        .unwrap();
        check(&client, addr).await.unwrap();
        // A new certificate for the same name, from the same CA, valid only for a
        // name the old one lacked: after the swap, dialling that name works.
        let who = Identity {
            role: "scheduler".into(),
            name: "1".into(),
        };
        issue(
            dir.path(),
            "scheduler-1",
            &who,
            &["rotated.localhost".into()],
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::ptr_eq(&before, &server.config.get()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the new files were never loaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let channel = client
            .channel(&format!("localhost:{}", addr.port()), |e| e)
            .unwrap();
        let old_name = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await;
        assert!(
            old_name.is_err(),
            "the new certificate is not valid for localhost"
        );
    }
}
