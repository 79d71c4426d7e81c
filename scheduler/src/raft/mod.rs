//! Consensus: a raft-rs `RawNode` over RocksDB, driven by a Ready loop on its own
//! thread.
//!
//! This is the only module that imports `raft`. The rest of the scheduler talks to
//! it through a [`RaftHandle`] (propose a command, watch the node's [`RaftStatus`])
//! and gives it a [`StateMachine`] to apply committed commands to.
//!
//! # The Ready loop (one iteration)
//! 1. send `messages` (they need nothing persisted);
//! 2. install the snapshot, if any;
//! 3. apply the committed entries into a fresh [`Batch`];
//! 4. stage the new entries, the hard state, the state-machine changes and the
//!    applied index in that SAME batch and write it, fsynced when raft says
//!    `must_sync`;
//! 5. only now answer proposers and send `persisted_messages` (votes and appends that
//!    promise durability);
//! 6. `advance`; persist the new commit index, send and apply what the LightReady
//!    holds (one more batch); `advance_apply`.
//!
//! # Invariants
//! - The applied index is written in the same batch as the state changes it covers,
//!   so after a crash the node re-applies exactly the entries whose effects were lost.
//!   On restart `Config.applied` is set from it.
//! - A proposer is answered only after the batch holding its command's effects is on
//!   disk. Answers carry the state machine's output (including deterministic refusals).
//! - Every proposal carries `(node id, request id)` in its entry context; the node that
//!   proposed it answers when it applies it, whichever leader committed it.
//! - A storage failure ends the loop: the node stops rather than diverge.
//! - The loop never blocks on the network: the transport queues or drops.
//!
//! Deliberately absent here: what commands mean (the state machine), and which
//! writes are allowed (the service layer).

mod log_store;
mod node;

pub use node::{NodeOptions, RaftHandle, spawn};

use crate::storage::{Batch, StorageError};

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

    /// Stages the applied index into the batch that holds the changes up to it.
    fn stage_applied(&mut self, batch: &mut Batch, index: u64);

    /// Called once the batch holding the latest applies is on disk: make the changes
    /// visible to readers.
    fn publish(&mut self);
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
}

impl RaftStatus {
    pub fn is_ready_leader(&self) -> bool {
        self.role == Role::Leader && self.leader_ready
    }
}

#[cfg(test)]
mod tests;
