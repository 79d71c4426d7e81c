//! Consensus: a raft-rs `RawNode` over RocksDB, driven by a Ready loop on its own
//! thread, talking to its peers over gRPC.
//!
//! This is the only module that imports `raft`. The rest of the scheduler talks to
//! it through a [`RaftHandle`] (propose a command, read barrier, membership change,
//! leadership transfer, watch the node's [`RaftStatus`]) and gives it a
//! [`StateMachine`] to apply committed commands to.
//!
//! # The Ready loop (one iteration)
//! 1. send `messages` (they need nothing persisted);
//! 2. install the snapshot, if any (its own batch, see below);
//! 3. apply the committed entries into a fresh [`Batch`];
//! 4. stage the new entries, the hard state, the state-machine changes and the
//!    applied index in that SAME batch and write it, fsynced when raft says
//!    `must_sync`;
//! 5. send `persisted_messages` (votes and appends that promise durability);
//! 6. `advance`; persist the new commit index, send and apply what the LightReady
//!    holds (one more batch); `advance_apply`; then answer proposers.
//!
//! # Invariants
//! - The applied index is written in the same batch as the state changes it covers,
//!   so after a crash the node re-applies exactly the entries whose effects were lost.
//!   On restart `Config.applied` is set from it.
//! - A proposer is answered only after the batch holding its command's effects is on
//!   disk. Answers carry the state machine's output (including deterministic refusals).
//! - Every proposal carries `(node id, request id)` in its entry context; the node that
//!   proposed it answers when it applies it, whichever leader committed it. A node that
//!   loses leadership fails its waiting proposals at once with a retryable error (they
//!   may or may not commit); anything unanswered after [`PROPOSAL_TIMEOUT`] fails too.
//! - A storage failure ends the loop: the node stops rather than diverge.
//! - The loop never blocks on the network: the transport queues with bounds and drops
//!   (reporting the peer unreachable to raft) when a queue is full.
//!
//! # Snapshots and compaction
//! The state machine *is* durable state (RocksDB), so compaction needs no separate
//! snapshot file: every `snapshot_interval` applied entries the log is truncated up
//! to the applied index (minus a margin for slightly lagging followers), recording
//! the index and term of the last dropped entry. A follower that needs entries that
//! are gone gets a snapshot: on the raft thread, where the database is exactly at the
//! applied index, `Storage::snapshot` makes a RocksDB checkpoint (hard links, cheap)
//! tagged with that index and term; the transport streams the checkpoint's state
//! pairs in chunks. The receiver writes them into a fresh staging column family and
//! only then steps the snapshot message into raft; when raft hands the snapshot back
//! in a Ready, ONE batch makes the staging family the state, records the snapshot as
//! the log's compaction point and drops the whole log. A crash at any point leaves
//! either the old state with its log, or the new state with its compaction point.
//!
//! # Membership
//! Voters change through raft conf changes (one at a time, as raft-rs requires). An
//! added node's gRPC address travels in the conf change and is recorded by the state
//! machine, so the address book is replicated (and included in snapshots). A node
//! started to join has no membership until the leader adds it and sends it the log or
//! a snapshot.
//!
//! # Reads
//! [`RaftHandle::read_barrier`] uses raft's read-index: the leader confirms it still
//! leads and names its commit index; the reading node waits until it has applied that
//! far. Reads after the barrier see every write acknowledged anywhere before it.
//!
//! Deliberately absent here: what commands mean (the state machine), and which
//! writes are allowed (the service layer).

mod log_store;
mod node;
mod transport;

pub use node::{
    ACTIVE_ELECTIONS, GroupProgress, Inbox, Node, NodeOptions, PROPOSAL_TIMEOUT, RaftHandle,
    RaftThread, Reporter, Request, Transport, VoterProgress, spawn, spawn_task,
};
pub use transport::{AddressBook, GrpcTransport, SnapshotReceiver, StepRefused, decode_message};

use crate::storage::{Batch, StorageError};

/// How long a request waits for the group to have a leader before it is refused
/// (covers an election; bounded so a group without quorum answers promptly).
pub const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A change of the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add a voter reachable at `addr` (its gRPC address).
    Add {
        id: u64,
        addr: String,
    },
    Remove {
        id: u64,
    },
}

/// True when `db` holds no raft state at all: a brand-new node, which must find its
/// place in the group before its raft node starts ([`crate::join`]).
pub fn is_new(db: &std::sync::Arc<crate::storage::Db>) -> Result<bool, StorageError> {
    let store = log_store::LogStore::open(
        db.clone(),
        std::path::PathBuf::new(),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    )?;
    Ok(store.is_empty())
}

/// The staging column family an incoming snapshot's data is written to.
pub fn staging_name(index: u64, term: u64) -> String {
    format!("state-{index}-{term}")
}

/// What the state machine is to the raft loop.
pub trait StateMachine: Send + 'static {
    /// The answer a proposer gets for its command.
    type Output: Send + 'static;

    /// The highest index whose effects are on disk (0 for a new node).
    fn applied_index(&self) -> u64;

    /// Applies one committed command, staging its writes into `batch`. Deterministic:
    /// no clock, no randomness, no network. An `Err` is a storage failure and stops
    /// the node; refusals of the command itself belong in `Output`.
    fn apply(
        &mut self,
        batch: &mut Batch,
        index: u64,
        data: &[u8],
    ) -> Result<Self::Output, StorageError>;

    /// Records a committed membership change (the address book is replicated state).
    fn apply_member_change(
        &mut self,
        batch: &mut Batch,
        index: u64,
        change: &MemberChange,
    ) -> Result<(), StorageError>;

    /// Stages the applied index into the batch that holds the changes up to it.
    fn stage_applied(&mut self, batch: &mut Batch, index: u64);

    /// Called once the batch holding the latest applies is on disk: make the changes
    /// visible to readers.
    fn publish(&mut self);

    /// Reloads everything from storage after a snapshot replaced the state.
    fn restore(&mut self) -> Result<(), StorageError>;
}

/// A node's role, without raft's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    PreCandidate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre_candidate",
        }
    }
}

/// What the node knows about itself and the group, published after every Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    /// 0 when no leader is known.
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// True on the leader once it has applied an entry of its own term: from then on
    /// its state machine holds everything any earlier leader committed, and it may
    /// schedule.
    pub leader_ready: bool,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The oldest entry still in the log (entries before it were compacted).
    pub log_first_index: u64,
    /// The newest entry in the log (1 for a group just bootstrapped: the membership
    /// snapshot, nothing appended after it).
    pub log_last_index: u64,
    /// Event counts since the node started, for metrics.
    pub counters: RaftCounters,
}

/// What the raft layer counts for `/metrics` (since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftCounters {
    /// Times this node saw a new leader (not counting "no leader").
    pub leader_changes: u64,
    /// Snapshots made for followers (RocksDB checkpoints), and the time they took.
    pub snapshots_made: u64,
    pub snapshot_micros: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
}

impl RaftStatus {
    pub fn is_ready_leader(&self) -> bool {
        self.role == Role::Leader && self.leader_ready
    }
}

#[cfg(test)]
mod tests;
