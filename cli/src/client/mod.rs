//! The client commands: calls through `kairos-client`, and what they print.
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
//! - [`token`]: `kairos token ...` (create, list, revoke)
//! - [`import`]: `kairos import --from-dkron`, a Dkron cluster's jobs
//!
//! The calls, the channel, TLS, the token, the timeouts, reading job files and
//! waiting for a run are `kairos_client`'s; these modules turn flags into calls and
//! answers into tables, JSON or YAML, and [`explain`] (with `crate::errors`) turns
//! the client's errors into the words of the command line (`--endpoint`,
//! `--tls-ca`, `kairos exec get`). The channel connects lazily, so a command that
//! reads a file fails on the file before it needs the network; a connection that
//! cannot be made is reported as such, naming the endpoint.
//!
//! Not here: retries and leader-following. The client is built with
//! [`kairos_client::RetryPolicy::ONCE`]: a command makes each call once and reports
//! what came back, and a script decides whether to try again. Following the leader
//! is never needed for a command to work (the scheduler it reaches forwards), and
//! retrying on the user's behalf would hide an election from the one person
//! watching; the error line names the leader instead. The only loop of retries is
//! `cluster remove-scheduler --above`, which asks again, visibly, for a refusal the
//! group lifts by itself.

pub mod cluster;
pub mod exec;
pub mod import;
pub mod job;
pub mod job_diff;
pub mod token;

use anyhow::{anyhow, bail};

use crate::args::{ClusterCommand, ExecCommand, GlobalArgs, ImportArgs, JobCommand, TokenCommand};
use crate::output::OutputFormat;

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
    result.map_err(explain)
}

/// The scheduler client, and the output format.
#[derive(Debug)]
pub struct Client {
    api: kairos_client::Client,
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
        let mut config = kairos_client::ClientConfig::new([endpoint]);
        config.tls = tls;
        config.token = token;
        config.retry = kairos_client::RetryPolicy::ONCE;
        let api = kairos_client::Client::new(config).map_err(|e| explain(e.into()))?;
        Ok(Client { api, output })
    }

    /// The calls.
    pub fn api(&self) -> &kairos_client::Client {
        &self.api
    }

    pub fn output(&self) -> OutputFormat {
        self.output
    }
}

/// The client's errors in the command line's words: flags where the client says
/// "endpoint" or "token", and a connection that could not be made as that alone
/// (whatever context a command added). Every other error passes through.
pub fn explain(err: anyhow::Error) -> anyhow::Error {
    use kairos_client::Error as E;
    let Some(client_err) = err.chain().find_map(|c| c.downcast_ref::<E>()) else {
        return err;
    };
    match client_err {
        E::Unreachable { .. } => anyhow!("{client_err}"),
        E::InvalidEndpoint { .. } | E::InvalidToken => anyhow!("--{client_err}"),
        E::TlsNeedsCa { endpoint } => anyhow!(
            "--endpoint {endpoint}: TLS needs --tls-ca (the CA that signed the schedulers' certificates)"
        ),
        E::StillRunning { execution, .. } => anyhow!(
            "{client_err}; it goes on (see `kairos exec get {}`)",
            execution.id
        ),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(endpoint: &str) -> String {
        Client::new(endpoint, OutputFormat::Table)
            .err()
            .map(|e| crate::errors::render(&e))
            .unwrap_or_default()
    }

    #[test]
    fn bad_endpoints_are_refused_in_the_flag_s_words() {
        assert_eq!(refusal(""), "--endpoint is empty");
        assert_eq!(
            refusal("kairos:0"),
            "--endpoint kairos:0: port 0 cannot be dialled"
        );
        assert_eq!(
            refusal("http://kairos:7070/api"),
            "--endpoint http://kairos:7070/api: a gRPC endpoint has no path; use http://HOST:PORT"
        );
        assert_eq!(
            refusal("http://:7070"),
            "--endpoint http://:7070 has no host"
        );
        assert_eq!(
            refusal("ftp://kairos:7070"),
            "--endpoint ftp://kairos:7070: unsupported scheme \"ftp\"; use http://HOST:PORT or https://HOST:PORT"
        );
        assert_eq!(
            refusal("https://kairos:7070"),
            "--endpoint https://kairos:7070: TLS needs --tls-ca (the CA that signed the schedulers' certificates)"
        );
        assert_eq!(refusal("kairos:7070"), "");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named() -> anyhow::Result<()> {
        // Bind and drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let client = Client::new(&format!("127.0.0.1:{port}"), OutputFormat::Table)?;
        let err = client
            .api()
            .cluster_status()
            .await
            .err()
            .ok_or_else(|| anyhow!("a closed port answered"))?;
        let line = crate::errors::render(&explain(anyhow::Error::new(err).context("job/a")));
        assert!(
            line.starts_with(&format!("could not reach http://127.0.0.1:{port}: ")),
            "{line}"
        );
        Ok(())
    }
}
