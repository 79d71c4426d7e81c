//! The client commands: gRPC calls to a scheduler, and what they print.
//!
//! Every client command talks to one endpoint (`--endpoint`, `KAIROS_ENDPOINT`,
//! default `http://127.0.0.1:7070`). Any scheduler of the group will do: followers
//! serve reads and forward writes to the leader; when one cannot, its `Unavailable`
//! answer names the leader and the error line passes that on.
//!
//! - [`job`]: `kairos job ...` (apply, get, list, delete, run, pause, resume, preview,
//!   backfill)
//! - [`job_diff`]: `kairos job diff`, what `apply` would change
//! - [`exec`]: `kairos exec ...` (list, get, logs, cancel) and waiting for a run
//! - [`cluster`]: `kairos cluster ...` and `kairos executors`
//! - [`job_file`]: reading job documents (YAML or JSON, one or many)
//! - [`token`]: `kairos token ...` (create, list, revoke)
//! - [`import`]: `kairos import --from-dkron`, a Dkron cluster's jobs
//!
//! The channel connects lazily, so a command that reads a file fails on the file
//! before it needs the network. A connection that cannot be made is reported as
//! such, naming the endpoint, rather than as the bare `Unavailable` gRPC gives it.
//! Unary calls carry a deadline ([`REQUEST_TIMEOUT`]); streams (`exec logs
//! --follow`) do not, and rely on HTTP/2 keep-alives to notice a dead server.
//!
//! Not here: retries and leader-following. A command makes each call once and
//! reports what came back; a script decides whether to try again.

pub mod cluster;
pub mod exec;
pub mod import;
pub mod job;
pub mod job_diff;
pub mod job_file;
pub mod token;

use std::net::Ipv6Addr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use kairos_proto::v1 as pb;
use tonic::codegen::http::Uri;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::args::{ClusterCommand, ExecCommand, GlobalArgs, ImportArgs, JobCommand, TokenCommand};
use crate::output::OutputFormat;

/// The port assumed when `--endpoint` names only a host.
pub const DEFAULT_PORT: u16 = 7070;

/// How long establishing the connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline of every unary call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 ping period on an idle or streaming connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// One client command, as parsed.
#[derive(Debug)]
pub enum Request {
    Job(JobCommand),
    Exec(ExecCommand),
    Cluster(ClusterCommand),
    Executors,
    Token(TokenCommand),
    Import(ImportArgs),
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// What every client stub speaks over: the channel, with the token added.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Runs one client command against `global.endpoint`.
pub async fn run(global: &GlobalArgs, request: Request) -> anyhow::Result<()> {
    let client = Client::connect(global)?;
    let result = match request {
        Request::Job(command) => job::run(&client, command).await,
        Request::Exec(command) => exec::run(&client, command).await,
        Request::Cluster(command) => cluster::run(&client, command).await,
        Request::Executors => cluster::executors(&client).await,
        Request::Token(command) => token::run(&client, command).await,
        Request::Import(args) => import::run(&client, args).await,
    };
    result.map_err(|e| client.explain(e))
}

/// A lazily connected channel to one scheduler, and the output format.
#[derive(Debug)]
pub struct Client {
    endpoint: String,
    channel: Channel,
    bearer: Bearer,
    output: OutputFormat,
}

impl Client {
    /// A client for `endpoint` (URL or `HOST:PORT`) in the clear, without a token;
    /// nothing is dialled yet.
    #[cfg(test)]
    pub fn new(endpoint: &str, output: OutputFormat) -> anyhow::Result<Self> {
        Client::with(endpoint, output, None, None)
    }

    /// The client the global flags describe: TLS when `--tls-ca` is given (with a
    /// client certificate when `--tls-cert` is), the token when `--token` is.
    pub fn connect(global: &GlobalArgs) -> anyhow::Result<Self> {
        let tls = match (&global.tls_ca, &global.tls_cert, &global.tls_key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => Some(kairos_tls::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, _, _) => bail!("--tls-cert needs --tls-ca (the CA that signed the schedulers)"),
        };
        Client::with(&global.endpoint, global.output, tls, global.token.clone())
    }

    fn with(
        endpoint: &str,
        output: OutputFormat,
        tls: Option<kairos_tls::TlsFiles>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let endpoint = normalize_endpoint(endpoint)?;
        if endpoint.starts_with("https://") && tls.is_none() {
            bail!(
                "--endpoint {endpoint}: TLS needs --tls-ca (the CA that signed the schedulers' certificates)"
            );
        }
        let configure = |e: Endpoint| {
            e.connect_timeout(CONNECT_TIMEOUT)
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_while_idle(true)
        };
        let channel = match tls {
            Some(files) => kairos_tls::ClientTls::new(files)?.channel(&endpoint, configure)?,
            None => configure(
                Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| anyhow!("--endpoint {endpoint}: {e}"))?,
            )
            .connect_lazy(),
        };
        let bearer = match token {
            Some(t) => Some(format!("Bearer {}", t.trim()).parse().map_err(|_| {
                anyhow!("--token: not a token (it has characters a header cannot carry)")
            })?),
            None => None,
        };
        Ok(Client {
            endpoint,
            channel,
            bearer: Bearer(bearer),
            output,
        })
    }

    fn conn(&self) -> Conn {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    pub fn output(&self) -> OutputFormat {
        self.output
    }

    pub fn jobs(&self) -> pb::job_service_client::JobServiceClient<Conn> {
        pb::job_service_client::JobServiceClient::new(self.conn())
    }

    pub fn executions(&self) -> pb::execution_service_client::ExecutionServiceClient<Conn> {
        pb::execution_service_client::ExecutionServiceClient::new(self.conn())
    }

    pub fn cluster(&self) -> pb::cluster_service_client::ClusterServiceClient<Conn> {
        pb::cluster_service_client::ClusterServiceClient::new(self.conn())
    }

    pub fn tokens(&self) -> pb::token_service_client::TokenServiceClient<Conn> {
        pb::token_service_client::TokenServiceClient::new(self.conn())
    }

    /// Replaces a failure to connect with a message naming the endpoint; passes
    /// every other error through.
    fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        match err
            .downcast_ref::<tonic::Status>()
            .and_then(connect_failure)
        {
            Some(cause) => anyhow!("could not reach {}: {cause}", self.endpoint),
            None => err,
        }
    }
}

/// A unary request with the standard deadline.
pub fn unary<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(REQUEST_TIMEOUT);
    request
}

/// Why the connection could not be made, when that is what `status` reports.
fn connect_failure(status: &tonic::Status) -> Option<String> {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            return Some(kairos_common::error::chain(err));
        }
        source = err.source();
    }
    None
}

/// `--endpoint` as a URL tonic can dial: a scheme is added to `HOST:PORT`, the
/// default port to a bare host, and a trailing slash is dropped.
pub fn normalize_endpoint(raw: &str) -> anyhow::Result<String> {
    let text = raw.trim();
    if text.is_empty() {
        bail!("--endpoint is empty");
    }
    let url = match text.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => format!("http://{}", rest.trim_end_matches('/')),
            "https" => format!("https://{}", rest.trim_end_matches('/')),
            other => bail!(
                "--endpoint {text}: unsupported scheme {other:?}; use http://HOST:PORT or https://HOST:PORT"
            ),
        },
        None => {
            let authority = text.trim_end_matches('/');
            if let Ok(ip) = authority.parse::<Ipv6Addr>() {
                format!("http://[{ip}]:{DEFAULT_PORT}")
            } else if let Some(port) = authority.strip_prefix(':') {
                format!("http://127.0.0.1:{port}")
            } else if has_port(authority) {
                format!("http://{authority}")
            } else {
                format!("http://{authority}:{DEFAULT_PORT}")
            }
        }
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| anyhow!("--endpoint {text} is not HOST:PORT or a URL: {e}"))?;
    if uri.host().is_none_or(str::is_empty) {
        bail!("--endpoint {text} has no host");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("--endpoint {text}: a gRPC endpoint has no path; use http://HOST:PORT");
    }
    if let Some(port) = uri.authority().and_then(|a| port_of(a.as_str())) {
        match port.parse::<u16>() {
            Ok(0) => bail!("--endpoint {text}: port 0 cannot be dialled"),
            Ok(_) => {}
            Err(_) => bail!("--endpoint {text}: {port:?} is not a port"),
        }
    }
    Ok(url)
}

/// Whether `authority` (no scheme) ends in `:PORT`, good or bad.
fn has_port(authority: &str) -> bool {
    port_of(authority).is_some()
}

/// The text after the port colon of `authority`, if it has one.
fn port_of(authority: &str) -> Option<&str> {
    match authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port; `[::1]:7070` has one.
        Some((host, port)) if host.starts_with('[') => host.ends_with(']').then_some(port),
        Some((_, port)) => Some(port),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() -> anyhow::Result<()> {
        let cases = [
            ("http://127.0.0.1:7070", "http://127.0.0.1:7070"),
            ("http://127.0.0.1:7070/", "http://127.0.0.1:7070"),
            ("HTTP://kairos.internal:7070", "http://kairos.internal:7070"),
            ("127.0.0.1:7070", "http://127.0.0.1:7070"),
            ("  10.0.0.2:9000 ", "http://10.0.0.2:9000"),
            ("localhost:7071", "http://localhost:7071"),
            ("kairos.internal", "http://kairos.internal:7070"),
            (":7075", "http://127.0.0.1:7075"),
            ("[::1]:7070", "http://[::1]:7070"),
            ("[::1]", "http://[::1]:7070"),
            ("::1", "http://[::1]:7070"),
            ("http://kairos.internal", "http://kairos.internal"),
            (
                "https://kairos.internal:7070/",
                "https://kairos.internal:7070",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_endpoint(raw)?, want, "{raw}");
        }
        Ok(())
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for raw in [
            "",
            "ftp://kairos:7070",
            "http://kairos:7070/api",
            "kairos:notaport",
            "kairos:0",
            "http://:7070",
        ] {
            assert!(normalize_endpoint(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named() -> anyhow::Result<()> {
        // Bind and drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let client = Client::new(&format!("127.0.0.1:{port}"), OutputFormat::Table)?;
        let status = client
            .cluster()
            .get_status(unary(pb::GetStatusRequest {}))
            .await
            .err()
            .ok_or_else(|| anyhow!("a closed port answered"))?;
        let line = crate::errors::render(&client.explain(anyhow::Error::new(status)));
        assert!(
            line.starts_with(&format!("could not reach http://127.0.0.1:{port}: ")),
            "{line}"
        );
        Ok(())
    }
}
