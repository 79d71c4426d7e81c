//! The Kairos scheduler: one node of the raft group that stores jobs and decides
//! fires, with the gRPC and HTTP services it exposes.
//!
//! A node is: RocksDB ([`storage`]) holding the raft log and the state machine; a
//! raft-rs Ready loop on its own thread ([`raft`]) applying committed commands to the
//! state machine ([`state`]); the domain API ([`core`]) that validates requests and
//! proposes commands; the leader's duties ([`leader`]: the schedule loop and
//! execution leases) over the connected executors ([`executors`]); and the gRPC and
//! HTTP adapters ([`grpc`], [`http`]).
//!
//! Flow of a fire: the leader's schedule loop finds a job due, picks executors,
//! proposes a `FireBatch`; once committed and applied (the state machine refuses an
//! instant it has handled before), the leader sends each execution's assignment down
//! the executor's stream; the executor's started/finished reports come back as
//! commands. The apply never reads a clock: the leader's decisions ride in the
//! command.
//!
//! A group has 1, 3 or 5 voters. Any node serves reads (after a read-index
//! barrier) and forwards writes to the leader; only the leader schedules and talks to
//! executors.

pub mod auth;
mod config;
pub mod core;
mod dial;
pub mod error;
pub mod executors;
pub mod grpc;
pub mod http;
pub mod join;
pub mod leader;
mod listen;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod peers;
pub mod raft;
pub mod state;
pub mod storage;
#[cfg(test)]
pub mod test;
pub mod time;

pub use config::Config;
pub use error::{Error, Result};

use std::net::SocketAddr;
use std::sync::Arc;

use kairos_common::clock::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::core::Core;
use crate::executors::ExecutorRegistry;
use crate::state::{StateMachine, StateView};
use crate::storage::Db;

/// A running scheduler node.
#[derive(Debug)]
pub struct Handle {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    done: tokio::task::JoinHandle<Result<()>>,
}

impl Handle {
    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Waits until the node has stopped (after the shutdown token fires, or on a fatal
    /// error such as a failed disk write, which is returned).
    pub async fn wait(self) -> Result<()> {
        self.done
            .await
            .map_err(|e| Error::Internal(format!("scheduler task failed: {e}")))?
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {what} address {addr}: {e}")))
}

fn write_addr_file(path: &std::path::Path, grpc: SocketAddr, http: SocketAddr) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("grpc={grpc}\nhttp={http}\n"))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))
}

/// Opens storage, starts raft and binds the listeners; returns once serving.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Handle> {
    start_with_clock(config, shutdown, Arc::new(SystemClock)).await
}

/// [`start`] with a given clock.
pub async fn start_with_clock(
    config: Config,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<Handle> {
    start_node(config, shutdown, clock, RaftRunner::Thread)
        .await
        .map(|(handle, _)| handle)
}

/// [`start_with_clock`] with the raft node on a task of the current runtime
/// ([`raft::spawn_task`]), for tests that pause tokio's clock; also returns the
/// node's [`Core`], for them to look inside.
#[cfg(test)]
pub(crate) async fn start_in_runtime(
    config: Config,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<(Handle, Arc<Core>)> {
    match start_node(config, shutdown, clock, RaftRunner::Task).await? {
        (handle, Some(core)) => Ok((handle, core)),
        (_, None) => Err(Error::Unavailable("stopped before joining a group".into())),
    }
}

/// Where the raft node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RaftRunner {
    /// Its own thread: a storage write never blocks the async runtime.
    Thread,
    /// A task of the runtime, ticking on tokio's clock (tests with paused time).
    #[cfg_attr(not(test), allow(dead_code))]
    Task,
}

async fn start_node(
    config: Config,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
    runner: RaftRunner,
) -> Result<(Handle, Option<Arc<Core>>)> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    // With the raft node on the runtime (paused-clock tests), nothing may leave the
    // runtime idle while it works: a paused clock jumps ahead whenever it idles.
    let db = match runner {
        RaftRunner::Thread => tokio::task::spawn_blocking(move || Db::open(&data_dir))
            .await
            .map_err(|e| Error::Internal(format!("opening storage: {e}")))??,
        RaftRunner::Task => Db::open(&data_dir)?,
    };
    let db = Arc::new(db);
    let book = raft::AddressBook::new(config.peers.clone());
    let view = StateView::new(db.clone());
    let sm = StateMachine::open(db.clone(), view.clone(), book.clone())?;
    info!(node = config.node_id, data_dir = %config.data_dir.display(), applied = crate::raft::StateMachine::applied_index(&sm), jobs = view.job_count(), "storage opened");
    // TLS material is loaded now: a bad file stops the start with its name.
    let (server_tls, dialer) = match &config.tls {
        Some(files) => {
            let server = kairos_tls::ServerTls::new(files.clone())
                .map_err(|e| Error::invalid("tls-cert", e.to_string()))?;
            let client = kairos_tls::ClientTls::new(files.clone())
                .map_err(|e| Error::invalid("tls-cert", e.to_string()))?;
            (Some(Arc::new(server)), dial::Dialer::new(Some(client)))
        }
        None => (None, dial::Dialer::new(None)),
    };
    let grpc_listener = Arc::new(bind(config.grpc_addr, "gRPC").await?);
    let http_listener = Arc::new(bind(config.http_addr, "HTTP").await?);
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("gRPC listener: {e}")))?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("HTTP listener: {e}")))?;

    let mut config = config;
    config.grpc_addr = grpc_addr;
    config.http_addr = http_addr;
    let my_addr = config
        .advertise_addr
        .clone()
        .or_else(|| config.peers.get(&config.node_id).cloned())
        .unwrap_or_else(|| grpc_addr.to_string());
    book.set(config.node_id, my_addr.clone());
    if let Some(path) = &config.addr_file {
        write_addr_file(path, grpc_addr, http_addr)?;
    }

    // A new node listed with others first finds out whether to bootstrap or join.
    let mut join = config.join;
    let is_new = match runner {
        RaftRunner::Thread => {
            let db = db.clone();
            tokio::task::spawn_blocking(move || raft::is_new(&db))
                .await
                .map_err(|e| Error::Internal(format!("reading raft state: {e}")))??
        }
        RaftRunner::Task => raft::is_new(&db)?,
    };
    if is_new && !config.join && config.peers.keys().any(|id| *id != config.node_id) {
        info!(node = config.node_id, grpc = %grpc_addr, http = %http_addr, "new node: asking the listed peers whether a group runs");
        let stop = CancellationToken::new();
        let waiting = grpc::WaitingTransport {
            id: config.node_id,
            voters: config.peers.keys().copied().collect(),
        };
        let grpc_task = tokio::spawn(grpc::serve_waiting(
            waiting,
            grpc_listener.clone(),
            server_tls.clone(),
            stop.clone(),
        ));
        let http_task = tokio::spawn(http::serve_waiting(
            http_listener.clone(),
            server_tls.clone(),
            stop.clone(),
        ));
        let mode =
            join::find_place(config.node_id, &my_addr, &config.peers, &dialer, &shutdown).await;
        stop.cancel();
        for task in [grpc_task, http_task] {
            match tokio::time::timeout(std::time::Duration::from_secs(2), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!(error = %e, "stand-in server failed"),
                Ok(Err(e)) => warn!(error = %e, "stand-in server task failed"),
                Err(_) => warn!("a stand-in server did not stop within 2s"),
            }
        }
        match mode {
            None => {
                info!("stopped before joining a group");
                return Ok((
                    Handle {
                        grpc_addr,
                        http_addr,
                        done: tokio::spawn(async { Ok(()) }),
                    },
                    None,
                ));
            }
            Some(join::StartMode::Joined) => join = true,
            Some(join::StartMode::Bootstrap) => {}
        }
    }

    // The node's own token: cancelled after a shutdown once leadership is handed
    // over, or at once by a fatal error.
    let node_token = CancellationToken::new();
    let options = raft::NodeOptions {
        id: config.node_id,
        initial_voters: config.peers.keys().copied().collect(),
        join,
        tick_interval: config.tick_interval,
        election_ticks: config.election_ticks,
        heartbeat_ticks: config.heartbeat_ticks,
        snapshot_interval: config.snapshot_interval,
        snapshot_dir: config.data_dir.join("snapshots"),
    };
    let inbox = match runner {
        RaftRunner::Thread => raft::Inbox::default(),
        RaftRunner::Task => raft::Inbox::for_task(),
    };
    let transport = raft::GrpcTransport::new(
        config.node_id,
        my_addr.clone(),
        book.clone(),
        inbox.sender(),
        options.snapshot_dir.clone(),
        node_token.clone(),
        dialer.clone(),
    );
    let raft_token = node_token.clone();
    let (raft_handle, raft_done): (_, futures::future::BoxFuture<'static, Result<()>>) =
        match runner {
            RaftRunner::Thread => {
                let (handle, thread) = raft::spawn(
                    options,
                    db.clone(),
                    sm,
                    transport,
                    inbox,
                    node_token.clone(),
                )?;
                let done = tokio::task::spawn_blocking(move || {
                    let result = thread.join();
                    // Whatever ended the raft loop ends the node.
                    raft_token.cancel();
                    match result {
                        Ok(r) => r.map_err(Error::from),
                        Err(_) => Err(Error::Internal("the raft thread panicked".into())),
                    }
                });
                (
                    handle,
                    Box::pin(async move {
                        done.await
                            .map_err(|e| Error::Internal(format!("raft join: {e}")))?
                    }),
                )
            }
            RaftRunner::Task => {
                let (handle, task) = raft::spawn_task(
                    options,
                    db.clone(),
                    sm,
                    transport,
                    inbox,
                    node_token.clone(),
                )?;
                (
                    handle,
                    Box::pin(async move {
                        let result = task.await;
                        raft_token.cancel();
                        match result {
                            Ok(r) => r.map_err(Error::from),
                            Err(e) => Err(Error::Internal(format!("the raft task failed: {e}"))),
                        }
                    }),
                )
            }
        };
    let metrics = Arc::new(metrics::Metrics::new());
    let auth = auth::Authenticator::new(view.clone(), !config.insecure);
    let limiter = Arc::new(auth::WriteLimiter::new(
        config.write_rate,
        config.write_burst,
    ));
    let core = Arc::new(Core {
        auth,
        limiter,
        server_tls,
        executors: ExecutorRegistry::new(config.node_id),
        config: config.clone(),
        my_addr,
        raft: raft_handle,
        view,
        db,
        book,
        clock,
        leader_since: std::sync::Mutex::new(None),
        notifier: notify::Notifier::start(metrics.clone(), node_token.clone()),
        metrics,
        peers: peers::Peers::new(dialer),
        live: live::LiveOutputs::default(),
    });

    let grpc_task = tokio::spawn(grpc::serve(core.clone(), grpc_listener, node_token.clone()));
    let http_task = tokio::spawn(http::serve(core.clone(), http_listener, node_token.clone()));
    let leader_task = tokio::spawn(leader::watch_leadership(core.clone(), node_token.clone()));

    if config.insecure {
        warn!(node = config.node_id, grpc = %grpc_addr, http = %http_addr, security = "INSECURE: no TLS, no authentication; every caller is an admin", "scheduler listening");
    } else {
        info!(node = config.node_id, grpc = %grpc_addr, http = %http_addr, security = "TLS, authentication required", "scheduler listening");
    }

    // Graceful stop: a leader hands over first, so the group does not wait out an
    // election timeout; then everything stops (in-flight requests finish, streams
    // end, the raft loop writes its last batch).
    {
        let core = core.clone();
        let node_token = node_token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if core.hand_over_leadership().await {
                        info!("leadership handed over; stopping");
                    }
                    node_token.cancel();
                }
                _ = node_token.cancelled() => {}
            }
        });
    }

    let done = tokio::spawn(async move {
        let raft_result = raft_done.await;
        node_token.cancel();
        let grpc_result = drain(grpc_task, "gRPC").await;
        let http_result = drain(http_task, "HTTP").await;
        let _ = leader_task.await;
        if let Err(e) = &raft_result {
            error!(error = %e, "scheduler stopped on a fatal error");
            return raft_result;
        }
        for r in [grpc_result, http_result] {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(Error::Internal(format!("server task: {e}"))),
            }
        }
        info!("scheduler stopped");
        Ok(())
    });
    Ok((
        Handle {
            grpc_addr,
            http_addr,
            done,
        },
        Some(core),
    ))
}

/// How long the servers may take to finish in-flight requests once the node stops.
const SERVER_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for a server task to finish its in-flight requests, up to
/// [`SERVER_DRAIN_TIMEOUT`]; a client that holds a stream open longer is cut off.
async fn drain(
    mut task: tokio::task::JoinHandle<Result<()>>,
    what: &str,
) -> std::result::Result<Result<()>, tokio::task::JoinError> {
    match tokio::time::timeout(SERVER_DRAIN_TIMEOUT, &mut task).await {
        Ok(r) => r,
        Err(_) => {
            warn!(
                server = what,
                "in-flight requests did not finish in time; closing them"
            );
            task.abort();
            Ok(Ok(()))
        }
    }
}

/// `start` then `wait`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    start(config, shutdown).await?.wait().await
}
