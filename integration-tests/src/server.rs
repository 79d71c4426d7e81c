//! A small HTTP server for HTTP jobs and webhooks: it answers a few fixed paths and
//! records every request, so a test can check what a job or a webhook sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

/// How long `GET /slow` takes to answer: longer than any test's time limit on it.
pub const SLOW_ANSWER: Duration = Duration::from_secs(30);

/// One request the test server received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub body: String,
}

pub type Hits = Arc<Mutex<Vec<Hit>>>;

fn record(hits: &Hits, path: &str, body: &[u8]) {
    hits.lock().expect("hits lock").push(Hit {
        path: path.to_string(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
}

/// An HTTP server on 127.0.0.1 (port 0) on its own runtime, so synchronous tests can
/// use it; it stops when dropped. Every request is recorded.
///
/// - `GET /ok`: 200 `hello from the test server`
/// - `GET /broken`: 500 `something broke`
/// - `GET /slow`: 200, after [`SLOW_ANSWER`]
/// - `POST /hook`: 200
/// - `POST /hang`: never answers
pub struct TestServer {
    addr: SocketAddr,
    hits: Hits,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn start() -> Result<TestServer> {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::routing::{get, post};

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let hits: Hits = Arc::default();
        let app = axum::Router::new()
            .route(
                "/ok",
                get(|State(hits): State<Hits>| async move {
                    record(&hits, "/ok", b"");
                    "hello from the test server"
                }),
            )
            .route(
                "/broken",
                get(|State(hits): State<Hits>| async move {
                    record(&hits, "/broken", b"");
                    (StatusCode::INTERNAL_SERVER_ERROR, "something broke")
                }),
            )
            .route(
                "/slow",
                get(|State(hits): State<Hits>| async move {
                    record(&hits, "/slow", b"");
                    tokio::time::sleep(SLOW_ANSWER).await;
                    "too late"
                }),
            )
            .route(
                "/hook",
                post(|State(hits): State<Hits>, body: Bytes| async move {
                    record(&hits, "/hook", &body);
                    StatusCode::OK
                }),
            )
            .route(
                "/hang",
                post(|State(hits): State<Hits>, body: Bytes| async move {
                    record(&hits, "/hang", &body);
                    std::future::pending::<()>().await;
                    StatusCode::OK
                }),
            )
            .with_state(hits.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestServer {
            addr,
            hits,
            runtime: Some(runtime),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests to `path` so far, in arrival order.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .expect("hits lock")
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
