//! The scheduler's domain API: what the gRPC and HTTP adapters call.
//!
//! Writes are validated here, before they reach raft (bad input never enters the
//! log), then proposed as commands; the answer comes from the state machine once the
//! command is applied and on disk. Reads come from the node's applied state.
//!
//! Decisions that need a clock or the executor registry (a manual run's executors,
//! "now" in a command) are taken here on the leader and written into the command.
//!
//! One file per family: `jobs` (documents, pause, run now, backfill, preview),
//! `fires` (planning and committing fires, handing executions to executors, stopping
//! runs), `reports` (started/finished reports, retry times, webhooks), `reconcile`
//! (an executor's Hello), `executions` (reads and cancel), `cluster` (status,
//! membership, leadership). This file holds what they share: the [`Core`], the way
//! to the leader's write path ([`Core::propose`]) and the read barrier.

mod cluster;
mod executions;
mod fires;
mod jobs;
mod reconcile;
mod reports;
mod tokens;

use std::sync::Arc;

use kairos_common::clock::Clock;
use kairos_proto::internal as ipb;
use prost::Message as _;

use crate::executors::ExecutorRegistry;
use crate::raft::{RaftHandle, RaftStatus};
use crate::state::{Applied, StateView};
use crate::time::ms_from_ts;
use crate::{Config, Error, Result};

/// Default and largest page sizes of the list calls.
pub const DEFAULT_JOB_PAGE: u32 = 100;
pub const DEFAULT_EXECUTION_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;
pub use crate::raft::LEADER_WAIT;
/// How long a leader that is shutting down waits for its successor to take over.
/// raft-rs gives up a transfer after an election timeout; this leaves room for two.
pub const HANDOFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub type Raft = RaftHandle<Result<Applied>>;

/// Everything a node's services share.
pub struct Core {
    /// Who callers are and what they may do.
    pub auth: Arc<crate::auth::Authenticator>,
    /// Writes per caller per second.
    pub limiter: Arc<crate::auth::WriteLimiter>,
    /// TLS on the node's ports (`None`: in the clear, `--insecure`).
    pub server_tls: Option<Arc<kairos_tls::ServerTls>>,
    pub config: Config,
    /// This node's gRPC address as peers and executors reach it.
    pub my_addr: String,
    pub raft: Raft,
    pub view: Arc<StateView>,
    pub db: Arc<crate::storage::Db>,
    /// Schedulers' addresses (replicated members, --peers, and learned).
    pub book: crate::raft::AddressBook,
    /// The way to the leader and to other members.
    pub peers: crate::peers::Peers,
    /// Live output of running executions (leader only).
    pub live: crate::live::LiveOutputs,
    pub clock: Arc<dyn Clock>,
    pub executors: ExecutorRegistry,
    /// When this node last became a ready leader (for lease grace).
    pub leader_since: std::sync::Mutex<Option<tokio::time::Instant>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Webhook deliveries (leader only).
    pub notifier: crate::notify::Notifier,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node", &self.config.node_id)
            .finish()
    }
}

pub(super) fn now_ms(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_millis()
}

impl Core {
    pub fn status(&self) -> RaftStatus {
        self.raft.status()
    }

    /// Ok on the ready leader; otherwise the error that sends the caller there.
    pub fn require_leader(&self) -> Result<()> {
        let s = self.raft.status();
        if s.is_ready_leader() {
            Ok(())
        } else if s.leader_id == 0 {
            Err(Error::Unavailable(
                "no leader: the group is electing one or has lost its quorum".into(),
            ))
        } else if s.leader_id == s.id {
            Err(Error::Unavailable(
                "this node was just elected and is catching up; retry".into(),
            ))
        } else {
            Err(Error::NotLeader {
                leader: self.book.get(s.leader_id),
            })
        }
    }

    /// Like [`Core::require_leader`], but while the group has no leader (an election,
    /// a node just started) waits up to [`LEADER_WAIT`] for one.
    pub async fn leader_or_wait(&self) -> Result<()> {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let s = status.borrow_and_update().clone();
            let settled = s.is_ready_leader() || (s.leader_id != 0 && s.leader_id != s.id);
            if settled || tokio::time::Instant::now() >= deadline {
                return self.require_leader();
            }
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_ok_and(|r| r.is_err())
            {
                return self.require_leader();
            }
        }
    }

    /// Waits until this node has applied every write acknowledged before the call.
    pub async fn read_barrier(&self) -> Result<()> {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        while status.borrow_and_update().leader_id == 0 {
            if tokio::time::timeout_at(deadline, status.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        self.raft.read_barrier().await
    }

    /// Serves a request from the leader when `err` says this node is not it (see
    /// [`crate::peers`]); otherwise `err` as a status. For the adapters.
    pub async fn to_leader<T, R, F, Fut>(
        &self,
        err: Error,
        forwarded: bool,
        msg: T,
        call: F,
    ) -> std::result::Result<tonic::Response<R>, tonic::Status>
    where
        T: Clone,
        F: Fn(tonic::transport::Channel, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        self.peers
            .to_leader(
                &self.raft,
                &self.book,
                self.config.node_id,
                err,
                forwarded,
                msg,
                call,
            )
            .await
    }

    /// [`Core::to_leader`] for a request that must not take effect twice; see
    /// [`crate::peers::Peers::to_leader_at_most_once`].
    pub async fn to_leader_at_most_once<T, R, F, Fut>(
        &self,
        err: Error,
        forwarded: bool,
        msg: T,
        call: F,
    ) -> std::result::Result<tonic::Response<R>, tonic::Status>
    where
        T: Clone,
        F: Fn(tonic::transport::Channel, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>>,
    {
        self.peers
            .to_leader_at_most_once(
                &self.raft,
                &self.book,
                self.config.node_id,
                err,
                forwarded,
                msg,
                call,
            )
            .await
    }

    pub async fn propose(&self, kind: ipb::command::Kind) -> Result<Applied> {
        let cmd = ipb::Command { kind: Some(kind) };
        let started = std::time::Instant::now();
        let result = self.raft.propose(cmd.encode_to_vec()).await;
        match &result {
            Ok(_) => self
                .metrics
                .proposal("committed", Some(started.elapsed().as_secs_f64())),
            Err(Error::NotLeader { .. }) => self.metrics.proposal("dropped", None),
            Err(_) => self.metrics.proposal("failed", None),
        }
        match result {
            // Raft dropped the proposal before it entered the log: this node is
            // handing leadership over (shutdown, transfer) or just lost it. Nothing
            // was written, so sending the caller to the next leader is safe.
            Err(Error::NotLeader { leader: None }) => Err(self.next_leader().await),
            other => other?,
        }
    }

    /// Waits (up to [`LEADER_WAIT`]) for a leader other than this node and returns
    /// the error that sends a caller there.
    async fn next_leader(&self) -> Error {
        let mut status = self.raft.watch_status();
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let s = status.borrow_and_update().clone();
            if s.leader_id != 0 && s.leader_id != s.id {
                return Error::NotLeader {
                    leader: self.book.get(s.leader_id),
                };
            }
            match tokio::time::timeout_at(deadline, status.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Error::Unavailable("leadership is changing hands; retry".into());
                }
            }
        }
    }

    pub fn ms_of(ts: &kairos_proto::Timestamp) -> i64 {
        ms_from_ts(ts)
    }
}

pub(super) fn page_size_or(page_size: u32, default: u32) -> Result<usize> {
    match page_size {
        0 => Ok(default as usize),
        n if n > MAX_PAGE => Err(Error::invalid("page_size", format!("at most {MAX_PAGE}"))),
        n => Ok(n as usize),
    }
}

pub(super) fn unexpected(applied: Applied) -> Error {
    Error::Internal(format!("unexpected state-machine answer: {applied:?}"))
}
