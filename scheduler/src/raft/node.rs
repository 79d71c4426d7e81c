//! The Ready loop thread and the handle the async world uses to reach it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::log_store::{LogStore, Staged};
use super::{RaftStatus, Role, StateMachine};
use crate::storage::{Batch, Db, StorageError};
use crate::{Error, Result};

/// How many requests may wait for the raft thread; beyond it proposals are refused
/// with `Unavailable` (backpressure) rather than queued without bound.
const INBOX_CAPACITY: usize = 4096;
/// A proposal not applied within this time is answered `Unavailable`: the group has
/// no quorum, or the entry was lost with a deposed leader.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handled before the loop looks at the Ready again (batches proposals).
const MAX_REQUESTS_PER_READY: usize = 1024;

/// Settings of the raft node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub id: u64,
    /// Initial voters, used only when the node's storage is empty.
    pub initial_voters: Vec<u64>,
    pub tick_interval: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
}

enum Request<O> {
    Propose {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<O>>,
    },
    /// A raft message from a peer (multi-node groups).
    #[allow(dead_code)]
    Step(Box<Message>),
}

struct Pending<O> {
    reply: oneshot::Sender<Result<O>>,
    deadline: Instant,
}

/// The async side's way into the raft thread. Cheap to clone.
pub struct RaftHandle<O> {
    id: u64,
    inbox: SyncSender<Request<O>>,
    status: watch::Receiver<RaftStatus>,
}

impl<O> Clone for RaftHandle<O> {
    fn clone(&self) -> Self {
        RaftHandle {
            id: self.id,
            inbox: self.inbox.clone(),
            status: self.status.clone(),
        }
    }
}

impl<O> std::fmt::Debug for RaftHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle").field("id", &self.id).finish()
    }
}

impl<O: Send + 'static> RaftHandle<O> {
    /// Proposes `data` and waits until it is committed, applied and on disk; returns
    /// the state machine's output for it.
    pub async fn propose(&self, data: Vec<u8>) -> Result<O> {
        let (reply, rx) = oneshot::channel();
        match self.inbox.try_send(Request::Propose { data, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::Unavailable(
                    "too many writes in flight; retry".into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::Unavailable("the node is shutting down".into()));
            }
        }
        rx.await.map_err(|_| {
            Error::Unavailable("the node stopped before the write was applied".into())
        })?
    }

    /// The latest status; `changed()` on a clone of the receiver waits for the next.
    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

/// The raft thread; joining it yields how the loop ended.
pub type RaftThread = std::thread::JoinHandle<Result<(), StorageError>>;

/// Starts the raft thread. Returns its handle and a join handle that yields the
/// loop's end: `Ok` after `shutdown`, `Err` when storage failed.
pub fn spawn<S: StateMachine>(
    options: NodeOptions,
    db: Arc<Db>,
    state_machine: S,
    shutdown: CancellationToken,
) -> Result<(RaftHandle<S::Output>, RaftThread)> {
    let store = LogStore::open(db.clone())?;
    if store.is_empty() {
        let voters = if options.initial_voters.is_empty() {
            vec![options.id]
        } else {
            options.initial_voters.clone()
        };
        info!(node = options.id, ?voters, "bootstrapping a new raft group");
        let cs = ConfState {
            voters,
            ..Default::default()
        };
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        store.stage_conf_state(&mut batch, &cs, &mut staged);
        db.write(batch, true)?;
        store.publish(staged);
    }

    let applied = state_machine.applied_index();
    let config = raft::Config {
        id: options.id,
        election_tick: options.election_ticks,
        heartbeat_tick: options.heartbeat_ticks,
        min_election_tick: options.election_ticks,
        max_election_tick: options.election_ticks * 2,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| Error::invalid("raft", e.to_string()))?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let raw = RawNode::new(&config, store.clone(), &logger)
        .map_err(|e| Error::Internal(format!("cannot start raft: {e}")))?;

    let (tx, rx) = sync_channel(INBOX_CAPACITY);
    let initial = RaftStatus {
        id: options.id,
        role: Role::Follower,
        term: raw.raft.term,
        leader_id: 0,
        commit_index: raw.raft.raft_log.committed,
        applied_index: applied,
        leader_ready: false,
        voters: store.conf_state().voters,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let mut node = Node {
        raw,
        store,
        db,
        sm: state_machine,
        inbox: rx,
        pending: HashMap::new(),
        next_request: 1,
        status: status_tx,
        options: options.clone(),
        shutdown,
        leader_ready: false,
        last_leader: 0,
    };
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", options.id))
        .spawn(move || {
            let result = node.run();
            if let Err(e) = &result {
                error!(error = %e, "raft loop stopped on a storage failure");
            }
            node.fail_all_pending("the node stopped");
            result
        })
        .map_err(|e| Error::Internal(format!("cannot spawn the raft thread: {e}")))?;
    Ok((
        RaftHandle {
            id: options.id,
            inbox: tx,
            status: status_rx,
        },
        thread,
    ))
}

struct Node<S: StateMachine> {
    raw: RawNode<LogStore>,
    store: LogStore,
    db: Arc<Db>,
    sm: S,
    inbox: Receiver<Request<S::Output>>,
    pending: HashMap<u64, Pending<S::Output>>,
    next_request: u64,
    status: watch::Sender<RaftStatus>,
    options: NodeOptions,
    shutdown: CancellationToken,
    /// Leader has applied an entry of its current term.
    leader_ready: bool,
    last_leader: u64,
}

/// Answers to send once the batch holding their effects is on disk.
type Replies<O> = Vec<(oneshot::Sender<Result<O>>, O)>;

fn encode_context(node: u64, request: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(16);
    ctx.extend_from_slice(&node.to_be_bytes());
    ctx.extend_from_slice(&request.to_be_bytes());
    ctx
}

fn decode_context(ctx: &[u8]) -> Option<(u64, u64)> {
    if ctx.len() != 16 {
        return None;
    }
    let node = u64::from_be_bytes(ctx[..8].try_into().ok()?);
    let request = u64::from_be_bytes(ctx[8..].try_into().ok()?);
    Some((node, request))
}

impl<S: StateMachine> Node<S> {
    fn run(&mut self) -> Result<(), StorageError> {
        // A lone voter need not wait out an election timeout.
        if self.store.conf_state().voters == [self.options.id] {
            let _ = self.raw.campaign();
        }
        let mut next_tick = Instant::now() + self.options.tick_interval;
        loop {
            if self.shutdown.is_cancelled() {
                info!("raft loop stopping");
                return Ok(());
            }
            let now = Instant::now();
            let wait = next_tick.saturating_duration_since(now);
            match self.inbox.recv_timeout(wait) {
                Ok(req) => {
                    self.handle(req);
                    for _ in 1..MAX_REQUESTS_PER_READY {
                        match self.inbox.try_recv() {
                            Ok(req) => self.handle(req),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick += self.options.tick_interval;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.options.tick_interval;
                }
                self.expire_pending();
            }
            self.on_ready()?;
            self.publish_status();
        }
    }

    fn handle(&mut self, req: Request<S::Output>) {
        match req {
            Request::Propose { data, reply } => {
                let id = self.next_request;
                self.next_request += 1;
                let ctx = encode_context(self.options.id, id);
                match self.raw.propose(ctx, data) {
                    Ok(()) => {
                        self.pending.insert(
                            id,
                            Pending {
                                reply,
                                deadline: Instant::now() + PROPOSAL_TIMEOUT,
                            },
                        );
                    }
                    Err(e) => {
                        debug!(error = %e, "proposal dropped");
                        let _ = reply.send(Err(self.not_leader_error()));
                    }
                }
            }
            Request::Step(msg) => {
                if let Err(e) = self.raw.step(*msg) {
                    debug!(error = %e, "raft message refused");
                }
            }
        }
    }

    fn not_leader_error(&self) -> Error {
        let leader = self.raw.raft.leader_id;
        if leader == 0 {
            Error::Unavailable("no leader: the group is electing one or has lost its quorum".into())
        } else {
            Error::NotLeader { leader: None }
        }
    }

    fn expire_pending(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                let _ = p.reply.send(Err(Error::Unavailable(format!(
                    "the write was not committed within {}s (no quorum?); it may still be applied — check before retrying a non-idempotent request",
                    PROPOSAL_TIMEOUT.as_secs()
                ))));
            }
        }
    }

    fn fail_all_pending(&mut self, why: &str) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(Error::Unavailable(why.to_string())));
        }
    }

    fn on_ready(&mut self) -> Result<(), StorageError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());

        let mut batch = Batch::new();
        let mut staged = Staged::default();
        let mut replies: Replies<S::Output> = Vec::new();
        if !ready.snapshot().is_empty() {
            // Snapshots are only produced by multi-node groups, which build them from
            // the state machine; a one-node group never receives one.
            warn!("ignoring a raft snapshot: snapshot install is not supported by this version");
        }
        self.apply_entries(
            ready.take_committed_entries(),
            &mut batch,
            &mut staged,
            &mut replies,
        )?;
        self.store
            .stage_entries(&mut batch, ready.entries(), &mut staged);
        if let Some(hs) = ready.hs() {
            self.store.stage_hard_state(&mut batch, hs, &mut staged);
        }
        self.db.write(batch, ready.must_sync())?;
        self.store.publish(staged);
        self.sm.publish();
        self.send(ready.take_persisted_messages());

        let mut light = self.raw.advance(ready);
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        if let Some(commit) = light.commit_index() {
            self.store.stage_commit(&mut batch, commit, &mut staged);
        }
        self.send(light.take_messages());
        self.apply_entries(
            light.take_committed_entries(),
            &mut batch,
            &mut staged,
            &mut replies,
        )?;
        self.db.write(batch, false)?;
        self.store.publish(staged);
        self.sm.publish();
        self.raw.advance_apply();
        // Status first, so a proposer that got its answer sees at least its index.
        self.publish_status();
        self.answer(replies);
        Ok(())
    }

    fn apply_entries(
        &mut self,
        entries: Vec<Entry>,
        batch: &mut Batch,
        staged: &mut Staged,
        replies: &mut Replies<S::Output>,
    ) -> Result<(), StorageError> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        for entry in entries {
            if entry.term == self.raw.raft.term && self.raw.raft.state == StateRole::Leader {
                self.leader_ready = true;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if entry.data.is_empty() {
                        // The empty entry a new leader appends.
                        continue;
                    }
                    let output = self.sm.apply(batch, entry.index, &entry.data)?;
                    if let Some((node, request)) = decode_context(&entry.context)
                        && node == self.options.id
                        && let Some(p) = self.pending.remove(&request)
                    {
                        replies.push((p.reply, output));
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&entry.data)
                        .map_err(|e| StorageError::corrupt(format!("conf change: {e}")))?;
                    self.apply_conf_change(batch, staged, &cc)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&entry.data)
                        .map_err(|e| StorageError::corrupt(format!("conf change: {e}")))?;
                    self.apply_conf_change(batch, staged, &cc)?;
                }
            }
        }
        self.sm.stage_applied(batch, last);
        Ok(())
    }

    fn apply_conf_change(
        &mut self,
        batch: &mut Batch,
        staged: &mut Staged,
        cc: &impl raft_proto::ConfChangeI,
    ) -> Result<(), StorageError> {
        match self.raw.apply_conf_change(cc) {
            Ok(cs) => {
                info!(voters = ?cs.voters, learners = ?cs.learners, "membership changed");
                self.store.stage_conf_state(batch, &cs, staged);
            }
            Err(e) => warn!(error = %e, "conf change refused"),
        }
        Ok(())
    }

    fn answer(&mut self, replies: Replies<S::Output>) {
        for (reply, output) in replies {
            let _ = reply.send(Ok(output));
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        // A one-node group has nobody to talk to; multi-node transports plug in here.
        if !msgs.is_empty() {
            debug!(count = msgs.len(), "dropping raft messages: no transport");
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Follower => Role::Follower,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
        };
        if role != Role::Leader {
            self.leader_ready = false;
        }
        if raft.leader_id != self.last_leader {
            if raft.leader_id != 0 {
                info!(leader = raft.leader_id, term = raft.term, "leader changed");
            }
            self.last_leader = raft.leader_id;
        }
        let status = RaftStatus {
            id: self.options.id,
            role,
            term: raft.term,
            leader_id: raft.leader_id,
            commit_index: raft.raft_log.committed,
            applied_index: raft.raft_log.applied,
            leader_ready: self.leader_ready,
            voters: self.store.conf_state().voters,
        };
        self.status.send_if_modified(|s| {
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }
}
