//! Test fakes: an in-process `ExecutorGateway` the tests drive by hand, and an HTTP
//! server for HTTP jobs to call.
//!
//! [`FakeServer`] listens on 127.0.0.1:0 and hands each incoming `Connect` stream
//! to the test as a [`FakeConn`], which reads what the executor sends and writes
//! what a scheduler would answer. Dropping (or [`FakeConn::close`]) ends the stream
//! from the scheduler's side. Every wait has a deadline, so a broken executor fails
//! the test instead of hanging it.
//!
//! [`FakeHttpServer`] listens on 127.0.0.1:0, over plain HTTP or over TLS with a
//! test certificate for 127.0.0.1 signed by a test CA ([`TEST_CA_PEM`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kairos_proto::v1 as pb;
use kairos_proto::v1::executor_gateway_server::{ExecutorGateway, ExecutorGatewayServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(15);

/// How the fake answers a `Connect`.
#[derive(Debug, Clone)]
enum Mode {
    /// Hand the stream to the test.
    Accept,
    /// Refuse with `Unavailable` and the leader's address in metadata.
    NotLeader { leader: String },
}

struct Gateway {
    mode: Mode,
    conns: mpsc::Sender<FakeConn>,
}

#[tonic::async_trait]
impl ExecutorGateway for Gateway {
    type ConnectStream = ReceiverStream<Result<pb::SchedulerMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::ExecutorMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        match &self.mode {
            Mode::NotLeader { leader } => {
                let mut status = Status::unavailable("not the leader");
                status.metadata_mut().insert(
                    kairos_proto::LEADER_METADATA_KEY,
                    leader.parse().expect("an ascii address"),
                );
                drop(request);
                Err(status)
            }
            Mode::Accept => {
                let (outbound, rx) = mpsc::channel(64);
                let conn = FakeConn {
                    inbound: request.into_inner(),
                    outbound: Some(outbound),
                };
                self.conns
                    .send(conn)
                    .await
                    .map_err(|_| Status::unavailable("test over"))?;
                Ok(Response::new(ReceiverStream::new(rx)))
            }
        }
    }
}

/// A fake scheduler on 127.0.0.1:0.
pub struct FakeServer {
    /// `host:port`, as an executor is configured.
    pub addr: String,
    conns: mpsc::Receiver<FakeConn>,
    stop: CancellationToken,
}

impl FakeServer {
    /// A fake that accepts every stream and hands it to the test.
    pub async fn start() -> Self {
        Self::start_with(Mode::Accept).await
    }

    /// A fake that refuses every stream with `Unavailable` + `kairos-leader: leader`.
    pub async fn start_not_leader(leader: &str) -> Self {
        Self::start_with(Mode::NotLeader {
            leader: leader.to_string(),
        })
        .await
    }

    async fn start_with(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (conns_tx, conns) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let gateway = Gateway {
            mode,
            conns: conns_tx,
        };
        let server = tonic::transport::Server::builder()
            .add_service(ExecutorGatewayServer::new(gateway))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        FakeServer { addr, conns, stop }
    }

    /// The next stream an executor opens.
    pub async fn accept(&mut self) -> FakeConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("the executor connects in time")
            .expect("the fake server is running")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One `Connect` stream, seen from the scheduler's side.
pub struct FakeConn {
    inbound: Streaming<pb::ExecutorMessage>,
    outbound: Option<mpsc::Sender<Result<pb::SchedulerMessage, Status>>>,
}

impl FakeConn {
    /// The next message from the executor, heartbeats included.
    pub async fn recv_any(&mut self) -> pb::executor_message::Kind {
        let msg = tokio::time::timeout(WAIT, self.inbound.message())
            .await
            .expect("the executor sends in time")
            .expect("the stream is healthy")
            .expect("the executor keeps the stream open");
        msg.kind.expect("messages have a kind")
    }

    /// The next message that is not a heartbeat.
    pub async fn recv(&mut self) -> pb::executor_message::Kind {
        loop {
            match self.recv_any().await {
                // Heartbeats and live output (best effort) are not protocol steps.
                pb::executor_message::Kind::Heartbeat(_)
                | pb::executor_message::Kind::Output(_) => {}
                other => return other,
            }
        }
    }

    /// The executor's `Hello`, which must come first.
    pub async fn hello(&mut self) -> pb::Hello {
        match self.recv_any().await {
            pb::executor_message::Kind::Hello(hello) => hello,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    /// The next `ExecutionStarted`.
    pub async fn started(&mut self) -> pb::ExecutionStarted {
        match self.recv().await {
            pb::executor_message::Kind::Started(started) => started,
            other => panic!("expected started, got {other:?}"),
        }
    }

    /// The next `ExecutionFinished`.
    pub async fn finished(&mut self) -> pb::ExecutionFinished {
        match self.recv().await {
            pb::executor_message::Kind::Finished(finished) => finished,
            other => panic!("expected finished, got {other:?}"),
        }
    }

    /// Sends a scheduler message.
    pub async fn send(&self, kind: pb::scheduler_message::Kind) {
        let outbound = self.outbound.as_ref().expect("the stream is open");
        outbound
            .send(Ok(pb::SchedulerMessage { kind: Some(kind) }))
            .await
            .expect("the executor is listening");
    }

    /// Ends the stream from the scheduler's side.
    pub fn close(mut self) {
        self.outbound = None;
    }
}

/// A `Welcome` with `term` and the heartbeat interval.
pub fn welcome(term: u64, heartbeat_interval_ms: u32) -> pb::scheduler_message::Kind {
    pb::scheduler_message::Kind::Welcome(pb::Welcome {
        scheduler_id: 1,
        term,
        heartbeat_interval_ms,
    })
}

/// A shell assignment due now.
pub fn shell_assignment(
    execution_id: &str,
    term: u64,
    command: &str,
) -> pb::scheduler_message::Kind {
    let now = kairos_proto::Timestamp::from(chrono::Utc::now());
    pb::scheduler_message::Kind::Assignment(pb::Assignment {
        execution_id: execution_id.into(),
        job: "job".into(),
        scheduled_at: Some(now),
        attempt: 1,
        trigger: "manual".into(),
        action: Some(pb::assignment::Action::Shell(pb::ShellAction {
            command: command.into(),
            ..Default::default()
        })),
        timeout_ms: 0,
        start_at: Some(now),
        term,
        max_output_bytes: 0,
    })
}

/// A `FinishedAck` for `execution_id`.
pub fn ack(execution_id: &str) -> pb::scheduler_message::Kind {
    pb::scheduler_message::Kind::FinishedAck(pb::FinishedAck {
        execution_id: execution_id.into(),
    })
}

/// Polls `condition` until it holds, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The CA that signed the fake HTTP server's TLS certificate (test only, valid
/// until 2126, key not kept).
pub const TEST_CA_PEM: &str = include_str!("runner/testdata/test-ca.pem");
const TEST_SERVER_CERT_PEM: &str = include_str!("runner/testdata/test-server.pem");
const TEST_SERVER_KEY_PEM: &str = include_str!("runner/testdata/test-server.key");

/// A local HTTP server with the endpoints HTTP jobs are tested against:
///
/// - `GET /ok`: 200, `hello from the fake server\n`
/// - `/status/{code}`: that status, body `status {code}\n`
/// - `/hang`: never answers (signals [`FakeHttpServer::arrived`] first)
/// - `/stall`: 200 and `partial body\n`, then the body never ends (signals too)
/// - `/large?bytes=N`: 200 and N bytes of 8-byte lines `0000000\n`, `0000001\n`…
/// - `/echo`, any method: 200 and `METHOD /echo`, the request headers sorted, a
///   blank line, the request body
/// - `/redirect/{n}`: 302 to `/redirect/{n-1}`; `/redirect/0` is 200 `landed\n`
pub struct FakeHttpServer {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, without a slash.
    pub base: String,
    arrived: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttpServer {
    /// Plain HTTP.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let arrived = Arc::new(tokio::sync::Notify::new());
        let router = http_routes(Arc::clone(&arrived));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeHttpServer {
            base,
            arrived,
            task,
        }
    }

    /// HTTPS with a certificate for 127.0.0.1 signed by [`TEST_CA_PEM`].
    pub async fn start_tls() -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = CertificateDer::pem_slice_iter(TEST_SERVER_CERT_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY_PEM.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let base = format!("https://{}", listener.tcp.local_addr().unwrap());
        let arrived = Arc::new(tokio::sync::Notify::new());
        let router = http_routes(Arc::clone(&arrived));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeHttpServer {
            base,
            arrived,
            task,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/hang` or `/stall` was called.
    pub async fn arrived(&self) {
        tokio::time::timeout(WAIT, self.arrived.notified())
            .await
            .expect("the request arrives in time");
    }
}

impl Drop for FakeHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn http_routes(arrived: Arc<tokio::sync::Notify>) -> axum::Router {
    use axum::body::Body;
    use axum::extract::{Path, Query};
    use axum::http::{HeaderMap, Method, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::{any, get};
    use tokio_stream::StreamExt;

    let hang = {
        let arrived = Arc::clone(&arrived);
        move || async move {
            arrived.notify_one();
            std::future::pending::<&'static str>().await
        }
    };
    let stall = move || async move {
        arrived.notify_one();
        let first = tokio_stream::iter([Ok::<_, std::convert::Infallible>("partial body\n")]);
        Body::from_stream(first.chain(tokio_stream::pending()))
    };
    axum::Router::new()
        .route("/ok", get(|| async { "hello from the fake server\n" }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                (
                    StatusCode::from_u16(code).unwrap(),
                    format!("status {code}\n"),
                )
            }),
        )
        .route("/hang", get(hang))
        .route("/stall", get(stall))
        .route(
            "/large",
            get(|Query(query): Query<HashMap<String, String>>| async move {
                let bytes: usize = query["bytes"].parse().unwrap();
                let mut body = String::with_capacity(bytes + 8);
                let mut line = 0;
                while body.len() < bytes {
                    body.push_str(&format!("{line:07}\n"));
                    line += 1;
                }
                body.truncate(bytes);
                body
            }),
        )
        .route(
            "/echo",
            any(
                |method: Method, headers: HeaderMap, body: String| async move {
                    let mut lines: Vec<String> = headers
                        .iter()
                        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("<binary>")))
                        .collect();
                    lines.sort();
                    format!("{method} /echo\n{}\n\n{body}", lines.join("\n"))
                },
            ),
        )
        .route(
            "/redirect/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    "landed\n".into_response()
                } else {
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, format!("/redirect/{}", n - 1))],
                    )
                        .into_response()
                }
            }),
        )
}

/// TCP plus a TLS handshake, for `axum::serve`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses the certificate aborts its handshake: next.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
