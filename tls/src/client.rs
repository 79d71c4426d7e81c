//! The client side: trust the CA, present the own certificate when there is one,
//! and make tonic channels that speak TLS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::files::Reloading;
use crate::{Error, Result, TlsFiles};

/// A client's TLS: the CA that must have signed the server's certificate (whose
/// names must match the address dialled), and optionally the client's own
/// certificate (a peer, an executor, or a person with a client certificate).
pub struct ClientTls {
    config: Reloading<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", self.config.files())
            .finish()
    }
}

impl ClientTls {
    /// Loads the files now (they must be valid); later changes are picked up on the
    /// next connection.
    pub fn new(files: TlsFiles) -> Result<Arc<ClientTls>> {
        Ok(Arc::new(ClientTls {
            config: Reloading::new(files, |files: &TlsFiles| client_config(files, &[b"h2"]))?,
        }))
    }

    /// A lazily connecting channel to `addr` (`HOST:PORT`, or a URL whose scheme is
    /// dropped) over TLS; `configure` sets the endpoint's timeouts and the like.
    pub fn channel(
        self: &Arc<Self>,
        addr: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel> {
        let authority = strip_scheme(addr);
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| Error::Config(format!("bad address {addr:?}: {e}")))?;
        Ok(configure(endpoint).connect_with_connector_lazy(Connector { tls: self.clone() }))
    }

    /// Like [`ClientTls::channel`], but connects now (a handshake failure is the
    /// error).
    pub async fn connect(
        self: &Arc<Self>,
        addr: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> std::result::Result<Channel, tonic::transport::Error> {
        let authority = strip_scheme(addr);
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))?;
        configure(endpoint)
            .connect_with_connector(Connector { tls: self.clone() })
            .await
    }
}

/// `HOST:PORT` from `https://HOST:PORT/…`, `http://…` or `HOST:PORT`.
fn strip_scheme(addr: &str) -> &str {
    let rest = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    rest.trim_end_matches('/')
}

/// A client config from the files as they are now: trusts the CA, presents the own
/// certificate when there is one, offers `alpn` (gRPC: `h2`; a plain HTTP/1.1
/// client: `http/1.1`).
pub fn client_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ClientConfig> {
    crate::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in files.ca_certs()? {
        roots
            .add(cert)
            .map_err(|e| Error::file(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match files.own()? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            Error::Config(format!("the certificate and key do not go together: {e}"))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Dials TCP, then does the TLS handshake with the current config, naming the server
/// by the host it was asked for.
#[derive(Clone)]
struct Connector {
    tls: Arc<ClientTls>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.config.get();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| format!("no host in {uri}"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().ok_or_else(|| format!("no port in {uri}"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} cannot name a TLS server: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_dropped() {
        assert_eq!(strip_scheme("https://a:1/"), "a:1");
        assert_eq!(strip_scheme("http://a:1"), "a:1");
        assert_eq!(strip_scheme("a:1"), "a:1");
    }
}
