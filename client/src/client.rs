//! The [`Client`]: channels to the configured schedulers, the token on every call,
//! and the attempt loop that follows the leader ([`crate::retry`] decides, this
//! module counts attempts and time).
//!
//! Channels are made once per address and connect lazily, so building a client
//! dials nothing and a command that fails on a file fails before the network. The
//! endpoint that answered last is remembered and tried first by the next call, so a
//! client that followed the leader once keeps talking to it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use crate::config::{ClientConfig, RetryPolicy, normalize_endpoint};
use crate::error::{Error, Result};
use crate::retry::{self, Decision, Safety};

/// HTTP/2 ping period on an idle or streaming connection, so a dead server is
/// noticed by a stream that waits.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Adds the bearer token, when there is one, to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// What every generated stub speaks over: a channel, with the token added.
pub type Conn = InterceptedService<Channel, Bearer>;

/// A client of one scheduler group. Cheap to clone (clones share channels and the
/// remembered leader); safe to use from many tasks at once.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The configured endpoints, normalized, in order.
    endpoints: Vec<String>,
    tls: Option<Arc<kairos_tls::ClientTls>>,
    bearer: Bearer,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
    /// One lazily connecting channel per address dialled.
    channels: Mutex<HashMap<String, Channel>>,
    /// The endpoint that answered last (a followed leader included).
    preferred: Mutex<String>,
    /// Attempts made after a first one failed, for benchmarks and logs.
    retries: AtomicU64,
}

impl Client {
    /// A client for `config`; nothing is dialled yet. Fails on an endpoint that
    /// cannot be read, an `https://` endpoint without TLS files, unusable TLS
    /// files, or a token a header cannot carry.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<String>>>()?;
        let first = endpoints.first().cloned().ok_or(Error::NoEndpoint)?;
        if config.tls.is_none()
            && let Some(https) = endpoints.iter().find(|e| e.starts_with("https://"))
        {
            return Err(Error::TlsNeedsCa {
                endpoint: https.clone(),
            });
        }
        let tls = config.tls.map(kairos_tls::ClientTls::new).transpose()?;
        let bearer = match &config.token {
            Some(t) => Some(
                format!("Bearer {}", t.trim())
                    .parse()
                    .map_err(|_| Error::InvalidToken)?,
            ),
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints,
                tls,
                bearer: Bearer(bearer),
                connect_timeout: config.connect_timeout,
                request_timeout: config.request_timeout,
                retry: config.retry,
                max_response_bytes: config.max_response_bytes,
                channels: Mutex::new(HashMap::new()),
                preferred: Mutex::new(first),
                retries: AtomicU64::new(0),
            }),
        })
    }

    /// The endpoint the next call goes to first: the one that answered last, or
    /// the first configured.
    pub fn endpoint(&self) -> String {
        self.inner
            .preferred
            .lock()
            .expect("invariant: the endpoint lock is never poisoned")
            .clone()
    }

    /// How many attempts were retries of a failed one, over this client's life.
    pub fn retries(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
    }

    /// The largest response a stub made by the helpers decodes.
    pub fn max_response_bytes(&self) -> usize {
        self.inner.max_response_bytes
    }

    /// The deadline of each unary attempt.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// One unary call, `name` (the RPC, for errors and logs) of the given safety:
    /// `send` makes one attempt over the connection it is given; the request
    /// carries the configured deadline. Retried as [`crate::retry`] decides, within
    /// the [`RetryPolicy`].
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        name: &'static str,
        safety: Safety,
        message: Req,
        send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: FnMut(Conn, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = Some(self.inner.request_timeout);
        self.attempts(name, safety, timeout, message, send).await
    }

    /// Opens a server stream (the opening is retried like an idempotent call; a
    /// stream that breaks later is the caller's to reopen). `timeout` bounds the
    /// whole stream; `None` for one that follows something live.
    pub async fn open_stream<Req, Item, F, Fut>(
        &self,
        name: &'static str,
        timeout: Option<Duration>,
        message: Req,
        send: F,
    ) -> Result<tonic::Streaming<Item>>
    where
        Req: Clone,
        F: FnMut(Conn, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<Item>>, tonic::Status>>,
    {
        self.attempts(name, Safety::Idempotent, timeout, message, send)
            .await
    }

    async fn attempts<Req, Resp, F, Fut>(
        &self,
        name: &'static str,
        safety: Safety,
        timeout: Option<Duration>,
        message: Req,
        mut send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: FnMut(Conn, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let policy = self.inner.retry;
        let deadline = tokio::time::Instant::now() + policy.total_time;
        let mut target = self.endpoint();
        let mut attempt = 1u32;
        loop {
            let mut request = tonic::Request::new(message.clone());
            if let Some(timeout) = timeout {
                request.set_timeout(timeout);
            }
            let status = match send(self.conn(&target)?, request).await {
                Ok(response) => {
                    self.prefer(&target);
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            let decision = retry::decide(&status, safety);
            let next = match &decision {
                Decision::Fail | Decision::Ambiguous => None,
                Decision::Leader(addr) => Some(self.url_of(addr)?),
                Decision::NextEndpoint => Some(self.after(&target)),
            };
            let pause = match &next {
                // A named leader elsewhere is tried at once.
                Some(url) if matches!(decision, Decision::Leader(_)) && *url != target => {
                    Duration::ZERO
                }
                _ => policy.backoff,
            };
            let out_of_time = tokio::time::Instant::now() + pause > deadline;
            let Some(next) = next.filter(|_| attempt < policy.max_attempts && !out_of_time) else {
                return Err(self.failure(name, &target, decision, status));
            };
            debug!(
                call = name,
                endpoint = %target,
                next = %next,
                code = ?status.code(),
                message = status.message(),
                "retrying"
            );
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            target = next;
            attempt += 1;
        }
    }

    /// The error for the last failed attempt at `target`.
    fn failure(
        &self,
        name: &'static str,
        target: &str,
        decision: Decision,
        status: tonic::Status,
    ) -> Error {
        if let Some(cause) = retry::connect_error(&status) {
            return Error::Unreachable {
                endpoint: target.to_string(),
                cause: kairos_common::error::chain(cause),
            };
        }
        match decision {
            Decision::Ambiguous => Error::Ambiguous { call: name, status },
            _ => Error::Status(status),
        }
    }

    /// The connection to `url`, the channel made on first use.
    fn conn(&self, url: &str) -> Result<Conn> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .expect("invariant: the channel lock is never poisoned");
        let channel = match channels.get(url) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self.channel(url)?;
                channels.insert(url.to_string(), channel.clone());
                channel
            }
        };
        Ok(InterceptedService::new(channel, self.inner.bearer.clone()))
    }

    fn channel(&self, url: &str) -> Result<Channel> {
        let connect_timeout = self.inner.connect_timeout;
        let configure = move |e: Endpoint| {
            e.connect_timeout(connect_timeout)
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_while_idle(true)
        };
        match &self.inner.tls {
            Some(tls) => Ok(tls.channel(url, configure)?),
            None => {
                let endpoint =
                    Endpoint::from_shared(url.to_string()).map_err(|e| Error::InvalidEndpoint {
                        endpoint: url.to_string(),
                        problem: crate::error::EndpointProblem::NotAUrl(e.to_string()),
                    })?;
                Ok(configure(endpoint).connect_lazy())
            }
        }
    }

    /// A leader's `HOST:PORT` as a URL in this client's scheme.
    fn url_of(&self, addr: &str) -> Result<String> {
        if addr.contains("://") {
            return normalize_endpoint(addr);
        }
        let scheme = if self.inner.tls.is_some() {
            "https"
        } else {
            "http"
        };
        normalize_endpoint(&format!("{scheme}://{addr}"))
    }

    /// The configured endpoint after `url` (the first when `url` is not one).
    fn after(&self, url: &str) -> String {
        let endpoints = &self.inner.endpoints;
        let next = endpoints
            .iter()
            .position(|e| e == url)
            .map_or(0, |i| (i + 1) % endpoints.len());
        endpoints[next].clone()
    }

    fn prefer(&self, url: &str) {
        let mut preferred = self
            .inner
            .preferred
            .lock()
            .expect("invariant: the endpoint lock is never poisoned");
        if *preferred != url {
            *preferred = url.to_string();
        }
    }
}

/// One RPC through [`Client::call`]: `rpc!(client, Stub, method, "Name", safety,
/// request)` with `Stub` a generated client type.
macro_rules! rpc {
    ($client:expr, $stub:ty, $method:ident, $name:literal, $safety:expr, $request:expr) => {{
        let max = $client.max_response_bytes();
        $client
            .call($name, $safety, $request, move |conn, req| {
                let mut stub = <$stub>::new(conn).max_decoding_message_size(max);
                async move { stub.$method(req).await }
            })
            .await
    }};
}
pub(crate) use rpc;

#[cfg(test)]
pub(crate) mod test {
    //! A small in-process JobService on 127.0.0.1:0 whose answers a test scripts.

    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use kairos_proto::v1 as pb;
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response, Status};

    /// One scripted answer: an error, or success.
    #[derive(Debug, Clone)]
    pub enum Answer {
        Ok,
        Unavailable { leader: Option<String> },
        NotFound,
    }

    /// What the fake answers and what it was asked.
    #[derive(Debug, Default)]
    pub struct Script {
        /// Answers in order; when empty, success.
        pub answers: Mutex<VecDeque<Answer>>,
        /// `(rpc, job name)` of every call received.
        pub calls: Mutex<Vec<(&'static str, String)>>,
    }

    impl Script {
        pub fn calls(&self) -> Vec<(&'static str, String)> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[derive(Debug, Clone)]
    struct Fake(Arc<Script>);

    impl Fake {
        fn answer(&self, rpc: &'static str, name: &str) -> Result<(), Status> {
            self.0.calls.lock().unwrap().push((rpc, name.to_string()));
            let next = self.0.answers.lock().unwrap().pop_front();
            match next.unwrap_or(Answer::Ok) {
                Answer::Ok => Ok(()),
                Answer::NotFound => Err(Status::not_found(format!("job {name} not found"))),
                Answer::Unavailable { leader } => {
                    let mut status = Status::unavailable("not the leader");
                    if let Some(leader) = leader {
                        status
                            .metadata_mut()
                            .insert(kairos_proto::LEADER_METADATA_KEY, leader.parse().unwrap());
                    }
                    Err(status)
                }
            }
        }
    }

    fn unimplemented<T>() -> Result<Response<T>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    #[tonic::async_trait]
    impl pb::job_service_server::JobService for Fake {
        async fn put_job(
            &self,
            req: Request<pb::PutJobRequest>,
        ) -> Result<Response<pb::PutJobResponse>, Status> {
            let job = req.into_inner().job.unwrap_or_default();
            self.answer("PutJob", &job.name)?;
            Ok(Response::new(pb::PutJobResponse {
                job: Some(job),
                result: "created".into(),
            }))
        }
        async fn get_job(
            &self,
            req: Request<pb::GetJobRequest>,
        ) -> Result<Response<pb::Job>, Status> {
            let name = req.into_inner().name;
            self.answer("GetJob", &name)?;
            Ok(Response::new(pb::Job {
                name,
                ..Default::default()
            }))
        }
        async fn list_jobs(
            &self,
            req: Request<pb::ListJobsRequest>,
        ) -> Result<Response<pb::ListJobsResponse>, Status> {
            let req = req.into_inner();
            self.answer("ListJobs", &req.page_token)?;
            // Three pages: "" → "p2" → "p3" → end.
            let (name, next) = match req.page_token.as_str() {
                "" => ("a", "p2"),
                "p2" => ("b", "p3"),
                _ => ("c", ""),
            };
            Ok(Response::new(pb::ListJobsResponse {
                jobs: vec![pb::Job {
                    name: name.into(),
                    ..Default::default()
                }],
                next_page_token: next.into(),
            }))
        }
        async fn delete_job(
            &self,
            _: Request<pb::DeleteJobRequest>,
        ) -> Result<Response<pb::DeleteJobResponse>, Status> {
            unimplemented()
        }
        async fn run_job(
            &self,
            req: Request<pb::RunJobRequest>,
        ) -> Result<Response<pb::RunJobResponse>, Status> {
            let name = req.into_inner().name;
            self.answer("RunJob", &name)?;
            Ok(Response::new(pb::RunJobResponse {
                execution: Some(pb::Execution {
                    id: "1".into(),
                    job: name,
                    status: "pending".into(),
                    ..Default::default()
                }),
                queued: false,
            }))
        }
        async fn pause_job(
            &self,
            _: Request<pb::PauseJobRequest>,
        ) -> Result<Response<pb::Job>, Status> {
            unimplemented()
        }
        async fn resume_job(
            &self,
            _: Request<pb::ResumeJobRequest>,
        ) -> Result<Response<pb::Job>, Status> {
            unimplemented()
        }
        async fn preview_schedule(
            &self,
            _: Request<pb::PreviewScheduleRequest>,
        ) -> Result<Response<pb::PreviewScheduleResponse>, Status> {
            unimplemented()
        }
        async fn backfill(
            &self,
            _: Request<pb::BackfillRequest>,
        ) -> Result<Response<pb::BackfillResponse>, Status> {
            unimplemented()
        }
    }

    /// A fake scheduler serving `script` on 127.0.0.1:0 until the test ends.
    pub async fn serve(script: Arc<Script>) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = pb::job_service_server::JobServiceServer::new(Fake(script));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Ok(addr)
    }

    /// An address nothing listens on (bound, then closed).
    pub fn closed_port() -> anyhow::Result<SocketAddr> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use kairos_proto::v1 as pb;

    use super::test::{Answer, Script, closed_port, serve};
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            total_time: Duration::from_secs(10),
            backoff: Duration::from_millis(10),
        }
    }

    fn client(endpoints: Vec<String>, retry: RetryPolicy) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(endpoints);
        config.retry = retry;
        Ok(Client::new(config)?)
    }

    #[tokio::test]
    async fn a_put_follows_the_named_leader_and_stays_there() -> anyhow::Result<()> {
        let leader = Arc::new(Script::default());
        let leader_addr = serve(leader.clone()).await?;
        let follower = Arc::new(Script::default());
        follower
            .answers
            .lock()
            .unwrap()
            .push_back(Answer::Unavailable {
                leader: Some(leader_addr.to_string()),
            });
        let follower_addr = serve(follower.clone()).await?;

        let client = client(vec![follower_addr.to_string()], policy())?;
        let response = client.put_job(job("nightly")).await?;
        assert_eq!(response.result, "created");
        assert_eq!(follower.calls(), [("PutJob", "nightly".to_string())]);
        assert_eq!(leader.calls(), [("PutJob", "nightly".to_string())]);
        assert_eq!(client.endpoint(), format!("http://{leader_addr}"));
        assert_eq!(client.retries(), 1);

        // The next call goes to the leader at once.
        client.get_job("nightly").await?;
        assert_eq!(follower.calls().len(), 1);
        assert_eq!(leader.calls().len(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_run_is_not_resent_to_the_named_leader() -> anyhow::Result<()> {
        let leader = Arc::new(Script::default());
        let leader_addr = serve(leader.clone()).await?;
        let follower = Arc::new(Script::default());
        follower
            .answers
            .lock()
            .unwrap()
            .push_back(Answer::Unavailable {
                leader: Some(leader_addr.to_string()),
            });
        let follower_addr = serve(follower.clone()).await?;

        let client = client(vec![follower_addr.to_string()], policy())?;
        let err = client
            .run_job("nightly")
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("the run succeeded"))?;
        match &err {
            Error::Ambiguous { call, status } => {
                assert_eq!(*call, "RunJob");
                assert_eq!(status.code(), tonic::Code::Unavailable);
            }
            other => anyhow::bail!("expected Ambiguous, got {other:?}"),
        }
        assert_eq!(err.leader(), Some(leader_addr.to_string()));
        assert!(leader.calls().is_empty(), "resent: {:?}", leader.calls());
        assert_eq!(follower.calls().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_passed_over_even_for_a_run() -> anyhow::Result<()> {
        let live = Arc::new(Script::default());
        let live_addr = serve(live.clone()).await?;
        let dead = closed_port()?;
        let client = client(vec![dead.to_string(), live_addr.to_string()], policy())?;
        let response = client.run_job("nightly").await?;
        assert_eq!(
            response.execution.map(|e| e.job).as_deref(),
            Some("nightly")
        );
        assert_eq!(live.calls(), [("RunJob", "nightly".to_string())]);
        assert_eq!(client.endpoint(), format!("http://{live_addr}"));
        Ok(())
    }

    #[tokio::test]
    async fn attempts_are_bounded() -> anyhow::Result<()> {
        let node = Arc::new(Script::default());
        for _ in 0..10 {
            node.answers
                .lock()
                .unwrap()
                .push_back(Answer::Unavailable { leader: None });
        }
        let addr = serve(node.clone()).await?;
        let client = client(vec![addr.to_string()], policy())?;
        let err = client.get_job("a").await.err();
        assert_eq!(err.and_then(|e| e.code()), Some(tonic::Code::Unavailable));
        assert_eq!(node.calls().len(), 4, "max_attempts");

        // A total time shorter than one pause: one attempt only.
        let quick = client_with_total(addr, Duration::from_millis(1))?;
        let before = node.calls().len();
        assert!(quick.get_job("a").await.is_err());
        assert_eq!(node.calls().len() - before, 1, "total_time");
        Ok(())
    }

    fn client_with_total(addr: std::net::SocketAddr, total: Duration) -> anyhow::Result<Client> {
        client(
            vec![addr.to_string()],
            RetryPolicy {
                max_attempts: 10,
                total_time: total,
                backoff: Duration::from_millis(50),
            },
        )
    }

    #[tokio::test]
    async fn once_means_once_and_answers_are_not_retried() -> anyhow::Result<()> {
        let leader = Arc::new(Script::default());
        let leader_addr = serve(leader.clone()).await?;
        let node = Arc::new(Script::default());
        node.answers.lock().unwrap().extend([
            Answer::Unavailable {
                leader: Some(leader_addr.to_string()),
            },
            Answer::NotFound,
        ]);
        let addr = serve(node.clone()).await?;
        let once = client(vec![addr.to_string()], RetryPolicy::ONCE)?;
        let err = once.put_job(job("a")).await.err();
        assert_eq!(
            err.as_ref().and_then(Error::leader),
            Some(leader_addr.to_string())
        );
        assert!(leader.calls().is_empty());

        let retrying = client(vec![addr.to_string()], policy())?;
        let err = retrying.get_job("a").await.err();
        assert_eq!(err.and_then(|e| e.code()), Some(tonic::Code::NotFound));
        assert_eq!(node.calls().len(), 2, "NotFound is an answer");
        Ok(())
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named() -> anyhow::Result<()> {
        let dead = closed_port()?;
        let client = client(vec![dead.to_string()], RetryPolicy::ONCE)?;
        let err = client.get_job("a").await.err().map(|e| e.to_string());
        let want = format!("could not reach http://{dead}: ");
        assert!(
            err.as_deref().is_some_and(|e| e.starts_with(&want)),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn https_needs_a_ca_and_a_token_must_fit_a_header() {
        let err = Client::new(ClientConfig::new(["https://kairos:7070"])).err();
        assert!(matches!(err, Some(Error::TlsNeedsCa { .. })), "{err:?}");
        let mut config = ClientConfig::new(["kairos:7070"]);
        config.token = Some("bad\ntoken".into());
        assert!(matches!(
            Client::new(config).err(),
            Some(Error::InvalidToken)
        ));
        assert!(matches!(
            Client::new(ClientConfig::new(Vec::<String>::new())).err(),
            Some(Error::NoEndpoint)
        ));
    }

    fn job(name: &str) -> pb::Job {
        pb::Job {
            name: name.into(),
            ..Default::default()
        }
    }
}
