//! The raft node: a `RawNode` with its Ready processing ([`Node`]), the thread that
//! drives it in production ([`spawn`]), and the handle the async world uses to reach
//! it ([`RaftHandle`]).
//!
//! [`Node`] itself has no thread and no clock: `tick`, `step`, `handle` and
//! `on_ready` are called by whoever drives it — the thread loop in production, the
//! deterministic simulation in tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::log_store::{LogStore, Staged};
use super::{MemberChange, RaftCounters, RaftStatus, Role, StateMachine, staging_name};
use crate::storage::{Batch, Db, StorageError};
use crate::{Error, Result};

/// How many requests may wait for the raft thread; beyond it writes are refused with
/// `Unavailable` (backpressure) and peer messages are dropped (raft retransmits).
const INBOX_CAPACITY: usize = 8192;
/// A proposal not applied within this time is answered `Unavailable`: the group has
/// no quorum, or the entry was lost with a deposed leader.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A read barrier not confirmed by the leader within this time fails.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Requests handled before the loop looks at the Ready again (batches proposals).
const MAX_REQUESTS_PER_READY: usize = 1024;
/// The index and term of the initial membership snapshot a new group starts from.
const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;
/// Entries kept behind the compaction point, so a briefly lagging follower catches
/// up from the log rather than by snapshot.
const COMPACTION_MARGIN: u64 = 1000;

/// Settings of the raft node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub id: u64,
    /// Initial voters, used only when the node's storage is empty. Empty with
    /// `join` false = a single-node group of this node.
    pub initial_voters: Vec<u64>,
    /// Start with no membership and wait for a leader to add this node.
    pub join: bool,
    pub tick_interval: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Compact the log (keep state, drop entries) every this many applied entries.
    pub snapshot_interval: u64,
    /// Where outgoing snapshot checkpoints are made.
    pub snapshot_dir: std::path::PathBuf,
}

/// Something the node is asked to do.
pub enum Request<O> {
    Propose {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<O>>,
    },
    /// A raft message from a peer.
    Step(Box<Message>),
    /// Confirm leadership and return the commit index a linearizable read must wait for.
    ReadIndex {
        reply: oneshot::Sender<Result<u64>>,
    },
    ChangeMembership {
        change: MemberChange,
        reply: oneshot::Sender<Result<()>>,
    },
    TransferLeader {
        to: u64,
    },
    /// What the leader knows of each voter's progress (see [`GroupProgress`]).
    Progress {
        reply: oneshot::Sender<GroupProgress>,
    },
    /// The transport could not deliver to this peer.
    Unreachable {
        to: u64,
    },
    /// A snapshot sent to `to` arrived (or not).
    SnapshotSent {
        to: u64,
        ok: bool,
    },
}

enum Waiting<O> {
    Propose(oneshot::Sender<Result<O>>),
    Conf(oneshot::Sender<Result<()>>),
    Read(oneshot::Sender<Result<u64>>),
}

struct Pending<O> {
    waiting: Waiting<O>,
    deadline: Instant,
}

impl<O> Pending<O> {
    fn fail(self, e: Error) {
        match self.waiting {
            Waiting::Propose(r) => {
                let _ = r.send(Err(e));
            }
            Waiting::Conf(r) => {
                let _ = r.send(Err(e));
            }
            Waiting::Read(r) => {
                let _ = r.send(Err(e));
            }
        }
    }
}

/// The leader's view of its voters, for membership decisions that must keep a live
/// quorum (removing or replacing a voter, choosing whom to hand leadership to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupProgress {
    /// False on a follower: the rest is then empty.
    pub leader: bool,
    /// The index of the leader's last log entry.
    pub last_index: u64,
    /// One row per voter, sorted by id; the leader's own row is always active.
    pub voters: Vec<VoterProgress>,
}

/// One voter as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterProgress {
    pub id: u64,
    /// The highest log index known to be on its disk.
    pub matched: u64,
    /// Heard from within [`ACTIVE_ELECTIONS`] election timeouts.
    pub active: bool,
}

impl GroupProgress {
    /// The active voters other than `id`.
    pub fn active_except(&self, id: u64) -> usize {
        self.voters
            .iter()
            .filter(|v| v.active && v.id != id)
            .count()
    }

    /// The active voter, other than the leader itself, with the most of the log on
    /// its disk: the one to hand leadership to. Ties go to the lowest id.
    pub fn best_successor(&self, leader: u64) -> Option<u64> {
        self.voters
            .iter()
            .filter(|v| v.active && v.id != leader)
            .max_by_key(|v| (v.matched, std::cmp::Reverse(v.id)))
            .map(|v| v.id)
    }
}

/// A peer counts as active when the leader heard from it within this many election
/// timeouts. Heartbeats go every `heartbeat_ticks`, so a live peer is heard several
/// times per election timeout; two timeouts absorb a delayed response without
/// calling a live peer dead.
pub const ACTIVE_ELECTIONS: u64 = 2;

/// Where a node's outgoing messages go.
pub trait Transport: Send + 'static {
    /// Queues messages for their peers. Never blocks; undeliverable messages come
    /// back as [`Request::Unreachable`] / [`Request::SnapshotSent`] reports.
    fn send(&mut self, msgs: Vec<Message>);

    /// `peer` left the group: drop whatever is still queued for it, so nothing meant
    /// for it reaches a later node with the same id (one that replaces it after its
    /// data was lost).
    fn forget(&mut self, _peer: u64) {}
}

/// The sending side of a node's inbox. When the node is driven by a task on the
/// async runtime ([`spawn_task`]) rather than by its own thread, a send also wakes
/// that task.
struct InboxSender<O> {
    tx: SyncSender<Request<O>>,
    wake: Option<Arc<tokio::sync::Notify>>,
}

impl<O> Clone for InboxSender<O> {
    fn clone(&self) -> Self {
        InboxSender {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<O> InboxSender<O> {
    fn try_send(&self, req: Request<O>) -> std::result::Result<(), TrySendError<Request<O>>> {
        self.tx.try_send(req)?;
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
        Ok(())
    }
}

/// The async side's way into the raft thread. Cheap to clone.
pub struct RaftHandle<O> {
    id: u64,
    inbox: InboxSender<O>,
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
    fn request(&self, req: Request<O>) -> Result<()> {
        match self.inbox.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Unavailable(
                "too many requests in flight; retry".into(),
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(Error::Unavailable("the node is shutting down".into()))
            }
        }
    }

    /// Proposes `data` and waits until it is committed, applied and on disk; returns
    /// the state machine's output for it.
    pub async fn propose(&self, data: Vec<u8>) -> Result<O> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Propose { data, reply })?;
        rx.await.map_err(|_| {
            Error::Unavailable("the node stopped before the write was applied".into())
        })?
    }

    /// Waits until this node's state reflects every write acknowledged anywhere in
    /// the group before the call (raft's read-index): reads after it are
    /// linearizable.
    pub async fn read_barrier(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::ReadIndex { reply })?;
        let index = rx
            .await
            .map_err(|_| Error::Unavailable("the node stopped during a read".into()))??;
        let mut status = self.status.clone();
        let wait = async {
            loop {
                if status.borrow_and_update().applied_index >= index {
                    return Ok(());
                }
                if status.changed().await.is_err() {
                    return Err(Error::Unavailable("the node stopped during a read".into()));
                }
            }
        };
        tokio::time::timeout(READ_TIMEOUT, wait)
            .await
            .map_err(|_| {
                Error::Unavailable(
                    "this node is too far behind the leader to serve the read".into(),
                )
            })?
    }

    /// Adds or removes a voter; returns once the change is applied here.
    pub async fn change_membership(&self, change: MemberChange) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::ChangeMembership { change, reply })?;
        rx.await.map_err(|_| {
            Error::Unavailable("the node stopped before the change was applied".into())
        })?
    }

    /// The leader's view of its voters' progress (`leader` false on a follower).
    pub async fn progress(&self) -> Result<GroupProgress> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Progress { reply })?;
        rx.await
            .map_err(|_| Error::Unavailable("the node is shutting down".into()))
    }

    /// Asks the leader (this node) to hand leadership to `to`.
    pub fn transfer_leader(&self, to: u64) -> Result<()> {
        self.request(Request::TransferLeader { to })
    }

    /// Hands a peer's message to raft; dropped when the node is overloaded (raft
    /// retransmits what matters).
    pub fn step(&self, msg: Message) {
        let _ = self.inbox.try_send(Request::Step(Box::new(msg)));
    }

    pub fn report_unreachable(&self, to: u64) {
        let _ = self.inbox.try_send(Request::Unreachable { to });
    }

    pub fn report_snapshot(&self, to: u64, ok: bool) {
        let _ = self.inbox.try_send(Request::SnapshotSent { to, ok });
    }

    /// The latest status.
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

/// The inbox of a node not started yet, so a transport can be given a handle first.
pub struct Inbox<O> {
    tx: InboxSender<O>,
    rx: Receiver<Request<O>>,
}

impl<O> Default for Inbox<O> {
    fn default() -> Self {
        let (tx, rx) = sync_channel(INBOX_CAPACITY);
        Inbox {
            tx: InboxSender { tx, wake: None },
            rx,
        }
    }
}

impl<O> Inbox<O> {
    /// An inbox for a node driven by an async task ([`spawn_task`]): every send
    /// wakes the task.
    pub fn for_task() -> Self {
        let (tx, rx) = sync_channel(INBOX_CAPACITY);
        Inbox {
            tx: InboxSender {
                tx,
                wake: Some(Arc::new(tokio::sync::Notify::new())),
            },
            rx,
        }
    }

    /// A sender for reports (the transport's feedback).
    pub fn sender(&self) -> Reporter<O> {
        Reporter {
            tx: self.tx.clone(),
        }
    }
}

/// Lets a transport report delivery problems and hand over received messages
/// without a full handle.
pub struct Reporter<O> {
    tx: InboxSender<O>,
}

impl<O> Clone for Reporter<O> {
    fn clone(&self) -> Self {
        Reporter {
            tx: self.tx.clone(),
        }
    }
}

impl<O> Reporter<O> {
    pub fn report_unreachable(&self, to: u64) {
        let _ = self.tx.try_send(Request::Unreachable { to });
    }

    pub fn report_snapshot(&self, to: u64, ok: bool) {
        let _ = self.tx.try_send(Request::SnapshotSent { to, ok });
    }
}

/// The raft thread; joining it yields how the loop ended.
pub type RaftThread = std::thread::JoinHandle<Result<(), StorageError>>;

/// The raft node's task (see [`spawn_task`]); awaiting it yields how the loop ended.
pub type RaftTask = tokio::task::JoinHandle<Result<(), StorageError>>;

/// Starts the raft thread. Returns its handle and the thread, which ends `Ok` after
/// `shutdown` and `Err` when storage failed.
pub fn spawn<S: StateMachine, T: Transport>(
    options: NodeOptions,
    db: Arc<Db>,
    state_machine: S,
    transport: T,
    inbox: Inbox<S::Output>,
    shutdown: CancellationToken,
) -> Result<(RaftHandle<S::Output>, RaftThread)> {
    let Inbox { tx, rx } = inbox;
    let mut node = Node::new(options.clone(), db, state_machine, transport)?;
    let status = node.watch_status();
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", options.id))
        .spawn(move || {
            let result = node.run(&rx, &shutdown);
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
            status,
        },
        thread,
    ))
}

/// Starts the node as a task on the current async runtime instead of a thread, with
/// ticks from tokio's timer: tests that pause tokio's clock then drive raft, the
/// leader's duties and the executors on one timeline, and the runtime never idles
/// (and so never jumps its paused clock) while raft has work. The inbox must come
/// from [`Inbox::for_task`]. The task ends `Ok` after `shutdown`, `Err` when storage
/// failed. Production uses [`spawn`]: a storage write must not block the runtime.
pub fn spawn_task<S: StateMachine, T: Transport>(
    options: NodeOptions,
    db: Arc<Db>,
    state_machine: S,
    transport: T,
    inbox: Inbox<S::Output>,
    shutdown: CancellationToken,
) -> Result<(RaftHandle<S::Output>, RaftTask)> {
    let Inbox { tx, rx } = inbox;
    let wake = tx
        .wake
        .clone()
        .ok_or_else(|| Error::Internal("a raft task needs Inbox::for_task".into()))?;
    let mut node = Node::new(options.clone(), db, state_machine, transport)?;
    let status = node.watch_status();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(options.tick_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                _ = wake.notified() => {}
                _ = ticks.tick() => node.tick(),
            }
            let mut handled = 0;
            while handled < MAX_REQUESTS_PER_READY {
                match rx.try_recv() {
                    Ok(req) => node.handle(req),
                    Err(_) => break,
                }
                handled += 1;
            }
            if handled == MAX_REQUESTS_PER_READY {
                // More may wait: come round again before sleeping.
                wake.notify_one();
            }
            if let Err(e) = node.on_ready() {
                error!(error = %e, "raft loop stopped on a storage failure");
                break Err(e);
            }
        };
        node.fail_all_pending("the node stopped");
        result
    });
    Ok((
        RaftHandle {
            id: options.id,
            inbox: tx,
            status,
        },
        task,
    ))
}

/// One raft node with its storage and state machine.
pub struct Node<S: StateMachine, T: Transport> {
    raw: RawNode<LogStore>,
    store: LogStore,
    db: Arc<Db>,
    sm: S,
    transport: T,
    pending: HashMap<u64, Pending<S::Output>>,
    next_request: u64,
    status_tx: watch::Sender<RaftStatus>,
    status_rx: watch::Receiver<RaftStatus>,
    options: NodeOptions,
    /// Leader has applied an entry of its current term.
    leader_ready: bool,
    last_leader: u64,
    /// Leader changes and installed snapshots so far (snapshots made are the log
    /// store's to count).
    counters: RaftCounters,
    last_role: Role,
    /// Applied index as persisted; read by `Storage::snapshot`.
    applied: Arc<AtomicU64>,
    /// Ticks since start: raft's logical clock, which the activity of peers is
    /// measured in (no wall clock here, so the simulation stays deterministic).
    ticks: u64,
    /// The tick at which each peer was last heard from.
    last_heard: HashMap<u64, u64>,
}

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

/// Answers to send once the batch holding their effects is on disk.
type Replies<O> = Vec<(Waiting<O>, Result<Reply<O>>)>;

enum Reply<O> {
    Output(O),
    Done,
    Index(u64),
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// Opens the node over its storage, bootstrapping a new group on first start.
    pub fn new(options: NodeOptions, db: Arc<Db>, sm: S, transport: T) -> Result<Self> {
        let election = options.election_ticks..options.election_ticks * 2;
        Self::open(options, election, db, sm, transport)
    }

    /// A node whose election timeout is always `ticks` (at least `election_ticks`)
    /// instead of raft's random draw from [election_ticks, 2 × election_ticks): the
    /// deterministic simulation derives each node's timeout from its seed, so that a
    /// run replays exactly.
    #[cfg(test)]
    pub(crate) fn with_election_timeout(
        options: NodeOptions,
        ticks: usize,
        db: Arc<Db>,
        sm: S,
        transport: T,
    ) -> Result<Self> {
        Self::open(options, ticks..ticks + 1, db, sm, transport)
    }

    /// `election` is the range raft draws each election timeout from.
    fn open(
        options: NodeOptions,
        election: std::ops::Range<usize>,
        db: Arc<Db>,
        mut sm: S,
        transport: T,
    ) -> Result<Self> {
        let applied = Arc::new(AtomicU64::new(sm.applied_index()));
        let store = LogStore::open(db.clone(), options.snapshot_dir.clone(), applied.clone())?;
        if store.is_empty() && !options.join {
            let voters = if options.initial_voters.is_empty() {
                vec![options.id]
            } else {
                options.initial_voters.clone()
            };
            info!(node = options.id, ?voters, "bootstrapping a new raft group");
            // The initial membership is a snapshot at index 1 (of the empty state), not
            // a bare conf state: the log starts at 2, so a node that joins later cannot
            // replay from index 1 without it — it is sent this snapshot, with the
            // membership in it, and never believes the group is only itself.
            let mut meta = raft::prelude::SnapshotMetadata {
                index: BOOTSTRAP_INDEX,
                term: BOOTSTRAP_TERM,
                ..Default::default()
            };
            meta.set_conf_state(ConfState {
                voters,
                ..Default::default()
            });
            let mut batch = Batch::new();
            let mut staged = Staged::default();
            store.stage_snapshot(&mut batch, &meta, &mut staged);
            sm.stage_applied(&mut batch, BOOTSTRAP_INDEX);
            db.write(batch, true)?;
            store.publish(staged);
            sm.publish();
            applied.store(BOOTSTRAP_INDEX, Ordering::Release);
        }
        let config = raft::Config {
            id: options.id,
            election_tick: options.election_ticks,
            heartbeat_tick: options.heartbeat_ticks,
            min_election_tick: election.start,
            max_election_tick: election.end,
            applied: sm.applied_index(),
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
        let initial = RaftStatus {
            id: options.id,
            role: Role::Follower,
            term: raw.raft.term,
            leader_id: 0,
            commit_index: raw.raft.raft_log.committed,
            applied_index: sm.applied_index(),
            leader_ready: false,
            voters: store.conf_state().voters,
            learners: store.conf_state().learners,
            log_first_index: store.first_index(),
            log_last_index: raw.raft.raft_log.last_index(),
            counters: RaftCounters::default(),
        };
        let (status_tx, status_rx) = watch::channel(initial);
        let mut node = Node {
            raw,
            store,
            db,
            sm,
            transport,
            pending: HashMap::new(),
            next_request: 1,
            status_tx,
            status_rx,
            options,
            leader_ready: false,
            last_leader: 0,
            counters: RaftCounters::default(),
            last_role: Role::Follower,
            applied,
            ticks: 0,
            last_heard: HashMap::new(),
        };
        // A lone voter need not wait out an election timeout.
        if node.store.conf_state().voters == [node.options.id] {
            let _ = node.raw.campaign();
        }
        Ok(node)
    }

    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status_rx.clone()
    }

    pub fn status(&self) -> RaftStatus {
        self.status_rx.borrow().clone()
    }

    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// The node's database (tests ship snapshots through it).
    #[cfg(test)]
    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The first index still in the log (after compaction).
    pub fn first_log_index(&self) -> u64 {
        self.store.first_index()
    }

    fn run(
        &mut self,
        inbox: &Receiver<Request<S::Output>>,
        shutdown: &CancellationToken,
    ) -> Result<(), StorageError> {
        let mut next_tick = Instant::now() + self.options.tick_interval;
        loop {
            if shutdown.is_cancelled() {
                info!("raft loop stopping");
                return Ok(());
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(req) => {
                    self.handle(req);
                    for _ in 1..MAX_REQUESTS_PER_READY {
                        match inbox.try_recv() {
                            Ok(req) => self.handle(req),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick += self.options.tick_interval;
                if next_tick < now {
                    next_tick = now + self.options.tick_interval;
                }
            }
            self.on_ready()?;
        }
    }

    /// Advances raft's logical clock by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
        self.expire_pending(Instant::now());
    }

    /// Handles one request.
    pub fn handle(&mut self, req: Request<S::Output>) {
        match req {
            Request::Propose { data, reply } => {
                let id = self.next_id();
                let ctx = encode_context(self.options.id, id);
                match self.raw.propose(ctx, data) {
                    Ok(()) => self.wait(id, Waiting::Propose(reply), PROPOSAL_TIMEOUT),
                    Err(e) => {
                        debug!(error = %e, "proposal dropped");
                        let _ = reply.send(Err(self.not_leader_error()));
                    }
                }
            }
            Request::Step(msg) => {
                if msg.from != 0 {
                    self.last_heard.insert(msg.from, self.ticks);
                }
                // A leader's heartbeat carries min(what it knows this node holds,
                // its commit index), so it never names an entry this node lacks —
                // unless it was meant for an earlier life of this node, one that held
                // more (its data was lost and it was replaced). raft-rs would panic on
                // it; it is stale, so drop it.
                if msg.get_msg_type() == MessageType::MsgHeartbeat
                    && msg.commit > self.raw.raft.raft_log.last_index()
                {
                    warn!(
                        from = msg.from,
                        commit = msg.commit,
                        last_index = self.raw.raft.raft_log.last_index(),
                        "dropping a heartbeat meant for an earlier life of this node"
                    );
                    return;
                }
                if let Err(e) = self.raw.step(*msg) {
                    debug!(error = %e, "raft message refused");
                }
            }
            Request::ReadIndex { reply } => {
                if self.raw.raft.leader_id == 0 {
                    let _ = reply.send(Err(self.not_leader_error()));
                    return;
                }
                let id = self.next_id();
                self.raw.read_index(encode_context(self.options.id, id));
                self.wait(id, Waiting::Read(reply), READ_TIMEOUT);
            }
            Request::ChangeMembership { change, reply } => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader_error()));
                    return;
                }
                if self.raw.raft.has_pending_conf() {
                    // raft-rs would silently turn it into an empty entry.
                    let _ = reply.send(Err(Error::FailedPrecondition(
                        "another membership change is in progress; retry when it is done".into(),
                    )));
                    return;
                }
                let mut cc = ConfChange::default();
                match &change {
                    MemberChange::Add { id, addr } => {
                        cc.set_change_type(ConfChangeType::AddNode);
                        cc.node_id = *id;
                        cc.context = addr.clone().into_bytes().into();
                    }
                    MemberChange::Remove { id } => {
                        cc.set_change_type(ConfChangeType::RemoveNode);
                        cc.node_id = *id;
                    }
                }
                let id = self.next_id();
                match self
                    .raw
                    .propose_conf_change(encode_context(self.options.id, id), cc)
                {
                    Ok(()) => self.wait(id, Waiting::Conf(reply), PROPOSAL_TIMEOUT),
                    Err(e) => {
                        let _ = reply.send(Err(Error::FailedPrecondition(format!(
                            "membership change refused: {e}"
                        ))));
                    }
                }
            }
            Request::TransferLeader { to } => self.raw.transfer_leader(to),
            Request::Progress { reply } => {
                let _ = reply.send(self.progress());
            }
            Request::Unreachable { to } => self.raw.report_unreachable(to),
            Request::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
    }

    /// The leader's view of its voters (see [`GroupProgress`]).
    pub fn progress(&self) -> GroupProgress {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return GroupProgress::default();
        }
        let window = ACTIVE_ELECTIONS * self.options.election_ticks as u64;
        let mut voters: Vec<VoterProgress> = self
            .store
            .conf_state()
            .voters
            .iter()
            .map(|&id| VoterProgress {
                id,
                matched: raft.prs().get(id).map(|p| p.matched).unwrap_or(0),
                active: id == self.options.id
                    || self
                        .last_heard
                        .get(&id)
                        .is_some_and(|&t| self.ticks.saturating_sub(t) <= window),
            })
            .collect();
        voters.sort_by_key(|v| v.id);
        GroupProgress {
            leader: true,
            last_index: raft.raft_log.last_index(),
            voters,
        }
    }

    /// Steps a peer's message (deterministic tests call this directly).
    pub fn step(&mut self, msg: Message) {
        self.handle(Request::Step(Box::new(msg)));
    }

    /// Starts an election now.
    pub fn campaign(&mut self) {
        let _ = self.raw.campaign();
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    fn wait(&mut self, id: u64, waiting: Waiting<S::Output>, timeout: Duration) {
        self.pending.insert(
            id,
            Pending {
                waiting,
                deadline: Instant::now() + timeout,
            },
        );
    }

    fn not_leader_error(&self) -> Error {
        if self.raw.raft.leader_id == 0 {
            Error::Unavailable("no leader: the group is electing one or has lost its quorum".into())
        } else {
            Error::NotLeader { leader: None }
        }
    }

    fn expire_pending(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                let what = match p.waiting {
                    Waiting::Read(_) => {
                        "the leader did not confirm the read in time (no quorum?)".to_string()
                    }
                    _ => format!(
                        "the write was not committed within {}s (no quorum?); it may still be applied — check before retrying a non-idempotent request",
                        PROPOSAL_TIMEOUT.as_secs()
                    ),
                };
                p.fail(Error::Unavailable(what));
            }
        }
    }

    fn fail_all_pending(&mut self, why: &str) {
        for (_, p) in self.pending.drain() {
            p.fail(Error::Unavailable(why.to_string()));
        }
    }

    /// Processes raft's Ready, if any: the order of STYLE.md §17.
    pub fn on_ready(&mut self) -> Result<(), StorageError> {
        if !self.raw.has_ready() {
            self.publish_status();
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.transport.send(ready.take_messages());

        let mut replies: Replies<S::Output> = Vec::new();
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone())?;
        }
        for rs in ready.take_read_states() {
            self.answer_read(&rs.request_ctx, rs.index, &mut replies);
        }

        let mut batch = Batch::new();
        let mut staged = Staged::default();
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
        self.after_write(staged);
        self.transport.send(ready.take_persisted_messages());

        let mut light = self.raw.advance(ready);
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        if let Some(commit) = light.commit_index() {
            self.store.stage_commit(&mut batch, commit, &mut staged);
        }
        self.transport.send(light.take_messages());
        self.apply_entries(
            light.take_committed_entries(),
            &mut batch,
            &mut staged,
            &mut replies,
        )?;
        self.db.write(batch, false)?;
        self.after_write(staged);
        self.raw.advance_apply();
        self.maybe_compact()?;
        // Status first, so a proposer that got its answer sees at least its index.
        self.publish_status();
        self.answer(replies);
        Ok(())
    }

    fn after_write(&mut self, staged: Staged) {
        self.store.publish(staged);
        self.sm.publish();
        self.applied
            .store(self.sm.applied_index(), Ordering::Release);
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let meta = snapshot.get_metadata();
        let staging = staging_name(meta.index, meta.term);
        if !self.db.has_staging(&staging) {
            return Err(StorageError::corrupt(format!(
                "raft accepted snapshot {}/{} but its data was not staged",
                meta.index, meta.term
            )));
        }
        info!(
            index = meta.index,
            term = meta.term,
            "installing a snapshot from the leader"
        );
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        batch.switch_state_cf(staging);
        self.store.stage_snapshot(&mut batch, meta, &mut staged);
        self.db.write(batch, true)?;
        self.store.publish(staged);
        self.sm.restore()?;
        self.counters.snapshots_installed += 1;
        self.applied
            .store(self.sm.applied_index(), Ordering::Release);
        Ok(())
    }

    fn answer_read(&mut self, ctx: &[u8], index: u64, replies: &mut Replies<S::Output>) {
        if let Some((node, request)) = decode_context(ctx)
            && node == self.options.id
            && let Some(p) = self.pending.remove(&request)
        {
            replies.push((p.waiting, Ok(Reply::Index(index))));
        }
    }

    fn take_waiting(&mut self, ctx: &[u8]) -> Option<Waiting<S::Output>> {
        let (node, request) = decode_context(ctx)?;
        if node != self.options.id {
            return None;
        }
        self.pending.remove(&request).map(|p| p.waiting)
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
                        // A new leader's empty entry, or a conf change raft replaced
                        // because another was still pending.
                        if let Some(w) = self.take_waiting(&entry.context) {
                            replies.push((
                                w,
                                Err(Error::FailedPrecondition(
                                    "another membership change is in progress; retry when it is done".into(),
                                )),
                            ));
                        }
                        continue;
                    }
                    let output = self.sm.apply(batch, entry.index, &entry.data)?;
                    if let Some(w) = self.take_waiting(&entry.context) {
                        replies.push((w, Ok(Reply::Output(output))));
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&entry.data)
                        .map_err(|e| StorageError::corrupt(format!("conf change: {e}")))?;
                    let change = match cc.get_change_type() {
                        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                            MemberChange::Add {
                                id: cc.node_id,
                                addr: String::from_utf8_lossy(&cc.context).into_owned(),
                            }
                        }
                        ConfChangeType::RemoveNode => MemberChange::Remove { id: cc.node_id },
                    };
                    self.apply_conf_change(batch, staged, entry.index, &cc, &change)?;
                    if let Some(w) = self.take_waiting(&entry.context) {
                        replies.push((w, Ok(Reply::Done)));
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    // Never proposed by Kairos; applied for completeness.
                    let cc = ConfChangeV2::parse_from_bytes(&entry.data)
                        .map_err(|e| StorageError::corrupt(format!("conf change: {e}")))?;
                    match self.raw.apply_conf_change(&cc) {
                        Ok(cs) => self.store.stage_conf_state(batch, &cs, staged),
                        Err(e) => warn!(error = %e, "conf change refused"),
                    }
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
        index: u64,
        cc: &ConfChange,
        change: &MemberChange,
    ) -> Result<(), StorageError> {
        match self.raw.apply_conf_change(cc) {
            Ok(cs) => {
                info!(?change, voters = ?cs.voters, "membership changed");
                if let MemberChange::Remove { id } = change {
                    self.transport.forget(*id);
                    self.last_heard.remove(id);
                }
                self.store.stage_conf_state(batch, &cs, staged);
                self.sm.apply_member_change(batch, index, change)?;
                // raft-rs leaves it to us: a leader that removed itself steps down, so
                // its heartbeats stop and the remaining voters elect one of their own.
                // (Kairos hands leadership over before removing a leader; this covers
                // a removal proposed another way.)
                if self.raw.raft.state == StateRole::Leader && !cs.voters.contains(&self.options.id)
                {
                    info!("removed from the group while leading: stepping down");
                    let term = self.raw.raft.term;
                    self.raw.raft.become_follower(term, raft::INVALID_ID);
                }
            }
            Err(e) => warn!(error = %e, "conf change refused"),
        }
        Ok(())
    }

    /// Drops log entries whose effects are durable in the state machine, keeping a
    /// margin for slightly lagging followers.
    fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let applied = self.sm.applied_index();
        let first = self.store.first_index();
        let interval = self.options.snapshot_interval.max(1);
        if applied < first + interval {
            return Ok(());
        }
        let margin = COMPACTION_MARGIN.min(interval / 2);
        let to = applied.saturating_sub(margin);
        if to < first {
            return Ok(());
        }
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        self.store.stage_compaction(&mut batch, to, &mut staged)?;
        self.db.write(batch, false)?;
        self.store.publish(staged);
        debug!(compacted_to = to, "raft log compacted");
        Ok(())
    }

    fn answer(&mut self, replies: Replies<S::Output>) {
        for (waiting, result) in replies {
            match (waiting, result) {
                (Waiting::Propose(r), Ok(Reply::Output(o))) => {
                    let _ = r.send(Ok(o));
                }
                (Waiting::Conf(r), Ok(_)) => {
                    let _ = r.send(Ok(()));
                }
                (Waiting::Read(r), Ok(Reply::Index(i))) => {
                    let _ = r.send(Ok(i));
                }
                (w, Err(e)) => Pending {
                    waiting: w,
                    deadline: Instant::now(),
                }
                .fail(e),
                (w, Ok(_)) => Pending {
                    waiting: w,
                    deadline: Instant::now(),
                }
                .fail(Error::Internal("mismatched raft reply".into())),
            }
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
        if self.last_role == Role::Leader && role != Role::Leader {
            // A deposed leader's in-flight writes may be lost; let callers retry.
            let ids: Vec<u64> = self.pending.keys().copied().collect();
            for id in ids {
                if let Some(p) = self.pending.remove(&id) {
                    p.fail(Error::Unavailable(
                        "this node lost leadership; the write may or may not have been applied — retry".into(),
                    ));
                }
            }
        }
        self.last_role = role;
        if raft.leader_id != self.last_leader {
            if raft.leader_id != 0 {
                self.counters.leader_changes += 1;
                info!(leader = raft.leader_id, term = raft.term, "leader changed");
            } else {
                info!(term = raft.term, "leader lost");
            }
            self.last_leader = raft.leader_id;
        }
        let cs = self.store.conf_state();
        let mut voters = cs.voters;
        voters.sort_unstable();
        let mut learners = cs.learners;
        learners.sort_unstable();
        let status = RaftStatus {
            id: self.options.id,
            role,
            term: raft.term,
            leader_id: raft.leader_id,
            commit_index: raft.raft_log.committed,
            applied_index: raft.raft_log.applied.max(self.sm.applied_index()),
            leader_ready: self.leader_ready,
            voters,
            learners,
            log_first_index: self.store.first_index(),
            log_last_index: raft.raft_log.last_index(),
            counters: {
                let (made, micros) = self.store.snapshots_made();
                RaftCounters {
                    snapshots_made: made,
                    snapshot_micros: micros,
                    ..self.counters
                }
            },
        };
        self.status_tx.send_if_modified(|s| {
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }

    /// True when raft has messages or entries to process.
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// The ids of messages' destinations that are snapshots (tests).
    pub fn is_snapshot(msg: &Message) -> bool {
        msg.get_msg_type() == MessageType::MsgSnapshot
    }
}
