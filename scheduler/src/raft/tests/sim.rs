//! The deterministic simulation: several [`Node`]s, each over its own RocksDB, and an
//! in-memory network between them that the test drives by hand — tick, deliver,
//! partition, heal, crash, restart. No threads, no sockets, no sleeps.
//!
//! # Replay
//! A run is a function of its seed. The seed comes from `KAIROS_RAFT_SEED` when set,
//! else from the default each test names ([`seed`]). It fixes each node's election
//! timeout (raft-rs would otherwise draw one at random on every reset; `Sim::start`
//! says why no two running nodes share one) and every chance the network takes; a
//! scenario that wants randomness draws it from its own [`Rng`] seeded the same way. Everything else the nodes do is deterministic: raft's
//! progress maps hash with a fixed hasher, the simulation walks nodes in id order and
//! delivers messages in the order they were sent.
//!
//! One thing still reads the wall clock: a proposal nobody answers fails after
//! [`PROPOSAL_TIMEOUT`](super::super::PROPOSAL_TIMEOUT) of real time. No run lasts
//! that long.
//!
//! # When a test fails
//! The simulation keeps a [`Trace`] of every message, state change and action, and
//! prints it with its seed when dropped during a panic — an assertion of the test,
//! of the harness, or a panic inside raft alike.
//!
//! # What it checks by itself
//! Every node's state machine reports each applied entry to a [`Ledger`] shared by
//! the group; the first time two nodes apply different entries at one index the
//! simulation panics there, with the trace.
//!
//! Deliberately absent: message delay and reordering, and crashes in the middle of
//! a Ready (a crash happens between two of them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::{Message, MessageType};
use tokio::sync::oneshot;

use super::super::*;
use super::network::{Fate, Network, Rng};
use super::trace::{self, Trace};
use crate::storage::{Cf, CheckpointReader, Db, StorageError};

/// The election timeout raft is configured with; each node's own timeout is drawn
/// from `ELECTION_TICKS..2 * ELECTION_TICKS`, as raft-rs itself would.
pub const ELECTION_TICKS: u64 = 10;
pub const HEARTBEAT_TICKS: u64 = 2;
/// A snapshot interval no test reaches: the log is never compacted.
pub const NO_COMPACTION: u64 = 10_000;
/// Settle rounds (Ready, deliver) after which a network that is still busy means
/// something loops.
const SETTLE_ROUNDS: usize = 200;
/// The longest a healthy group needs to answer a proposal or a membership change,
/// in ticks: an election (up to two timeouts, for a split vote), then a round trip.
pub const ANSWER_TICKS: u64 = 6 * ELECTION_TICKS;

/// The seed of this run: `KAIROS_RAFT_SEED` if set (decimal, or hex with `0x`), else
/// `default`.
pub fn seed(default: u64) -> u64 {
    match std::env::var("KAIROS_RAFT_SEED") {
        Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("KAIROS_RAFT_SEED={s:?} is not a u64")),
        Err(_) => default,
    }
}

/// The seeds a sweep runs: only `KAIROS_RAFT_SEED` if set (to replay one failing
/// run), else `count` seeds from `first`.
pub fn seeds(first: u64, count: u64) -> Vec<u64> {
    match std::env::var("KAIROS_RAFT_SEED") {
        Ok(_) => vec![seed(first)],
        Err(_) => (first..first + count).collect(),
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Which node applied what at each index, across the whole group.
#[derive(Debug, Default)]
pub struct Ledger {
    applied: BTreeMap<u64, (u64, Vec<u8>)>,
    /// The first disagreement seen: (index, first node and entry, second node and entry).
    conflict: Option<String>,
}

impl Ledger {
    fn record(&mut self, node: u64, index: u64, entry: Vec<u8>) {
        match self.applied.get(&index) {
            Some((first, seen)) if *seen != entry => {
                if self.conflict.is_none() {
                    self.conflict = Some(format!(
                        "n{node} applied {} at index {index}, but n{first} applied {} there",
                        trace::payload(&entry),
                        trace::payload(seen)
                    ));
                }
            }
            Some(_) => {}
            None => {
                self.applied.insert(index, (node, entry));
            }
        }
    }
}

/// Appends each command to a list in the state column family (keyed by index), so
/// "the same state" is "the same list in the same order" on every node.
pub struct ListMachine {
    id: u64,
    db: Arc<Db>,
    applied: u64,
    members: BTreeMap<u64, String>,
    ledger: Arc<Mutex<Ledger>>,
}

impl ListMachine {
    pub fn open(id: u64, db: Arc<Db>, ledger: Arc<Mutex<Ledger>>) -> ListMachine {
        let mut m = ListMachine {
            id,
            db,
            applied: 0,
            members: BTreeMap::new(),
            ledger,
        };
        m.load();
        m
    }

    fn load(&mut self) {
        self.applied = self
            .db
            .get(Cf::State, b"applied")
            .unwrap()
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            .unwrap_or(0);
    }

    /// The applied commands, each with its log index, in log order.
    pub fn entries(&self) -> Vec<(u64, Vec<u8>)> {
        self.db
            .scan_prefix(Cf::State, b"item/", false, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (u64::from_be_bytes(k[5..].try_into().unwrap()), v))
            .collect()
    }

    pub fn items(&self) -> Vec<Vec<u8>> {
        self.entries().into_iter().map(|(_, v)| v).collect()
    }
}

impl StateMachine for ListMachine {
    type Output = u64;

    fn applied_index(&self) -> u64 {
        self.applied
    }

    fn apply(&mut self, batch: &mut Batch, index: u64, data: &[u8]) -> Result<u64, StorageError> {
        batch.put(
            Cf::State,
            [b"item/".as_slice(), &index.to_be_bytes()].concat(),
            data.to_vec(),
        );
        self.ledger
            .lock()
            .unwrap()
            .record(self.id, index, data.to_vec());
        Ok(index)
    }

    fn apply_member_change(
        &mut self,
        _batch: &mut Batch,
        index: u64,
        change: &MemberChange,
    ) -> Result<(), StorageError> {
        match change {
            MemberChange::Add { id, addr } => {
                self.members.insert(*id, addr.clone());
            }
            MemberChange::Remove { id } => {
                self.members.remove(id);
            }
        }
        self.ledger
            .lock()
            .unwrap()
            .record(self.id, index, format!("{change:?}").into_bytes());
        Ok(())
    }

    fn stage_applied(&mut self, batch: &mut Batch, index: u64) {
        self.applied = index;
        batch.put(Cf::State, b"applied".to_vec(), index.to_be_bytes().to_vec());
    }

    fn publish(&mut self) {}

    fn restore(&mut self) -> Result<(), StorageError> {
        self.load();
        Ok(())
    }
}

/// Collects a node's outgoing messages for the simulation to deliver.
#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<Message>>>);

impl Transport for Outbox {
    fn send(&mut self, msgs: Vec<Message>) {
        self.0.lock().unwrap().extend(msgs);
    }
}

pub type SimNode = Node<ListMachine, Outbox>;

pub fn options(
    id: u64,
    voters: &[u64],
    join: bool,
    dir: &std::path::Path,
    snapshot_interval: u64,
) -> NodeOptions {
    NodeOptions {
        id,
        initial_voters: voters.to_vec(),
        join,
        tick_interval: Duration::from_millis(10),
        election_ticks: ELECTION_TICKS as usize,
        heartbeat_ticks: HEARTBEAT_TICKS as usize,
        snapshot_interval,
        snapshot_dir: dir.join("snapshots"),
    }
}

struct Member {
    dir: PathBuf,
    node: Option<SimNode>,
    outbox: Outbox,
    /// Its status when last looked at (for the trace's change lines).
    seen: Option<RaftStatus>,
    /// Its election timeout in ticks, fixed for the life of the process.
    election_timeout: u64,
}

/// A message the network handled, for tests that check a scenario really happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub t: u64,
    pub from: u64,
    pub to: u64,
    pub kind: MessageType,
    pub term: u64,
    /// The message's index; for a snapshot, the index the snapshot covers.
    pub index: u64,
    pub commit: u64,
    pub entries: usize,
    pub fate: Fate,
}

/// A proposal handed to a node, and what became of it.
pub struct Ticket(u64);

enum Outcome {
    Waiting(u64, oneshot::Receiver<crate::Result<u64>>),
    /// The node's own answer.
    Answered(crate::Result<u64>),
    /// The node crashed before answering.
    Vanished,
}

/// A group of nodes and the network between them.
pub struct Sim {
    root: tempfile::TempDir,
    seed: u64,
    /// Election timeouts and the network's chances.
    rng: Rng,
    snapshot_interval: u64,
    members: BTreeMap<u64, Member>,
    net: Network,
    ledger: Arc<Mutex<Ledger>>,
    /// Ticks so far: the simulation's clock.
    t: u64,
    trace: Trace,
    sent: Vec<Sent>,
    proposals: BTreeMap<u64, (Vec<u8>, Outcome)>,
    next_ticket: u64,
    crashes: u64,
    /// Every payload proposed so far, in order.
    proposed: Vec<Vec<u8>>,
    /// Every proposal a node answered with success: (log index, payload).
    acknowledged: Vec<(u64, Vec<u8>)>,
    pub snapshots_sent: u64,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.trace.render(self.seed));
        }
    }
}

impl Sim {
    /// `n` voters, ids 1..=n, that compact their log every `snapshot_interval`
    /// applied entries.
    pub fn new(seed: u64, n: u64, snapshot_interval: u64) -> Sim {
        let mut sim = Sim {
            root: tempfile::tempdir().unwrap(),
            seed,
            rng: Rng::new(seed),
            snapshot_interval,
            members: BTreeMap::new(),
            net: Network::default(),
            ledger: Arc::default(),
            t: 0,
            trace: Trace::default(),
            sent: Vec::new(),
            proposals: BTreeMap::new(),
            next_ticket: 1,
            crashes: 0,
            proposed: Vec::new(),
            acknowledged: Vec::new(),
            snapshots_sent: 0,
        };
        sim.log(format!(
            "seed {seed}: {n} voters, snapshot every {snapshot_interval} entries"
        ));
        let voters: Vec<u64> = (1..=n).collect();
        for id in 1..=n {
            sim.start(id, &voters, false);
        }
        sim
    }

    /// Adds an empty node that waits for a leader to add it (a joiner).
    pub fn add_joiner(&mut self, id: u64) {
        assert!(!self.members.contains_key(&id), "n{id} exists");
        self.start(id, &[], true);
    }

    /// Opens (or reopens) node `id` over its directory, with an election timeout
    /// drawn from the seed.
    ///
    /// raft-rs draws a new timeout at every reset, which is what breaks a split
    /// vote; a fixed one does not, so two nodes with the same timeout could split
    /// every vote for ever. So no two running nodes get the same timeout: after a
    /// split vote the one with the shorter timeout campaigns first and wins.
    fn start(&mut self, id: u64, voters: &[u64], join: bool) {
        let dir = self.root.path().join(format!("n{id}"));
        let taken: Vec<u64> = self
            .members
            .iter()
            .filter(|(other, m)| **other != id && m.node.is_some())
            .map(|(_, m)| m.election_timeout)
            .collect();
        let free: Vec<u64> = (ELECTION_TICKS..2 * ELECTION_TICKS)
            .filter(|t| !taken.contains(t))
            .collect();
        assert!(
            !free.is_empty(),
            "more nodes than distinct election timeouts"
        );
        let timeout = self.rng.pick(&free);
        let db = Arc::new(Db::open(&dir).unwrap());
        let outbox = self
            .members
            .get(&id)
            .map(|m| m.outbox.clone())
            .unwrap_or_default();
        let node = Node::with_election_timeout(
            options(id, voters, join, &dir, self.snapshot_interval),
            timeout as usize,
            db.clone(),
            ListMachine::open(id, db, self.ledger.clone()),
            outbox.clone(),
        )
        .unwrap();
        let status = node.status();
        self.log(format!(
            "n{id} up election_timeout={timeout}: {}",
            trace::status_summary(&status)
        ));
        self.members.insert(
            id,
            Member {
                dir,
                node: Some(node),
                outbox,
                seen: Some(status),
                election_timeout: timeout,
            },
        );
    }

    fn log(&mut self, line: String) {
        self.trace.push(format!("t={} {line}", self.t));
    }

    /// The trace kept so far (the newest lines).
    pub fn trace_lines(&self) -> Vec<String> {
        self.trace.lines().map(str::to_owned).collect()
    }

    /// Every message the network handled, in order.
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    pub fn node(&mut self, id: u64) -> &mut SimNode {
        self.members
            .get_mut(&id)
            .unwrap_or_else(|| panic!("n{id} is not a member"))
            .node
            .as_mut()
            .unwrap_or_else(|| panic!("n{id} is down"))
    }

    pub fn status(&self, id: u64) -> RaftStatus {
        self.members[&id]
            .node
            .as_ref()
            .unwrap_or_else(|| panic!("n{id} is down"))
            .status()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// The nodes that are running.
    pub fn up(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.members.get(&id).is_some_and(|m| m.node.is_some())
    }

    // ---- the network -------------------------------------------------------

    /// Stops everything from `from` reaching `to`; the other direction still works.
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.log(format!("net cut n{from}⇸n{to}"));
        self.net.cut_one_way(from, to);
    }

    /// Cuts `a` and `b` apart, both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.log(format!("net cut n{a}⇹n{b}"));
        self.net.cut_one_way(a, b);
        self.net.cut_one_way(b, a);
    }

    /// Cuts `isolated` off from every other node, both ways.
    pub fn isolate(&mut self, isolated: u64) {
        self.log(format!("net isolate n{isolated}"));
        for id in self.ids() {
            if id != isolated {
                self.net.cut_one_way(id, isolated);
                self.net.cut_one_way(isolated, id);
            }
        }
    }

    /// Splits the group: no node of `side` talks to a node outside it.
    pub fn partition(&mut self, side: &[u64]) {
        let other: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| !side.contains(id))
            .collect();
        self.log(format!("net partition {side:?} | {other:?}"));
        for &a in side {
            for &b in &other {
                self.net.cut_one_way(a, b);
                self.net.cut_one_way(b, a);
            }
        }
    }

    /// Drops every message of `kind` on every link until [`Sim::unignore`] or
    /// [`Sim::heal`].
    pub fn ignore(&mut self, kind: MessageType) {
        self.log(format!("net drop every {kind:?}"));
        self.net.ignore(kind);
    }

    pub fn unignore(&mut self, kind: MessageType) {
        self.log(format!("net deliver {kind:?} again"));
        self.net.unignore(kind);
    }

    /// Loses each message on any link with a chance of `permille`/1000 (seeded).
    pub fn lose_everywhere(&mut self, permille: u32) {
        self.log(format!("net lose {permille}‰ of every link's messages"));
        self.net.lose_everywhere(permille);
    }

    /// Loses each message from `from` to `to` with a chance of `permille`/1000.
    pub fn lose(&mut self, from: u64, to: u64, permille: u32) {
        self.log(format!("net lose {permille}‰ of n{from}→n{to}"));
        self.net.lose(from, to, permille);
    }

    /// Lifts every network rule.
    pub fn heal(&mut self) {
        self.log("net heal".into());
        self.net.heal();
    }

    // ---- crashes -----------------------------------------------------------

    /// Stops node `id` between two Readys; what it had not yet sent is lost.
    pub fn crash(&mut self, id: u64) {
        self.log(format!("n{id} crash"));
        let m = self.members.get_mut(&id).unwrap();
        assert!(m.node.is_some(), "n{id} is down already");
        m.node = None;
        m.seen = None;
        m.outbox.0.lock().unwrap().clear();
        self.crashes += 1;
        self.poll_proposals();
    }

    /// How many crashes the run had.
    pub fn crashes(&self) -> u64 {
        self.crashes
    }

    /// Starts a crashed node again over its data, with a new election timeout.
    pub fn restart(&mut self, id: u64) {
        assert!(!self.is_up(id), "crash n{id} first");
        self.log(format!("n{id} restart"));
        self.start(id, &[], false);
    }

    /// Crashes node `id` and loses its disk: it comes back empty, as a joiner.
    pub fn wipe(&mut self, id: u64) {
        self.crash(id);
        let dir = self.members[&id].dir.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        self.members.remove(&id);
        self.log(format!("n{id} lost its data"));
        self.start(id, &[], true);
    }

    // ---- time --------------------------------------------------------------

    /// One tick on every running node, then everything that follows from it.
    pub fn tick(&mut self) {
        self.t += 1;
        for id in self.up() {
            self.node(id).tick();
        }
        self.settle();
    }

    pub fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Ticks until `done` holds, at most `max` ticks; true if it came to hold.
    pub fn tick_until(&mut self, max: u64, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    /// Processes every node's Ready and delivers messages until the network is quiet.
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            for id in self.up() {
                self.node(id).on_ready().unwrap();
                self.observe(id);
            }
            self.check_ledger();
            self.poll_proposals();
            let mut in_flight = Vec::new();
            for (id, m) in &self.members {
                for msg in m.outbox.0.lock().unwrap().drain(..) {
                    in_flight.push((*id, msg));
                }
            }
            let busy = self.up().into_iter().any(|id| self.node(id).has_ready());
            if in_flight.is_empty() && !busy {
                return;
            }
            for (from, msg) in in_flight {
                self.deliver(from, msg);
            }
        }
        panic!("the network did not quiet down within {SETTLE_ROUNDS} rounds");
    }

    fn deliver(&mut self, from: u64, msg: Message) {
        let to = msg.to;
        let kind = msg.get_msg_type();
        let fate = if !self.is_up(to) {
            Fate::Down
        } else {
            self.net.verdict(&mut self.rng, from, to, kind)
        };
        let line = trace::message_line(from, to, &msg, fate);
        self.log(line);
        self.sent.push(Sent {
            t: self.t,
            from,
            to,
            kind,
            term: msg.term,
            index: if kind == MessageType::MsgSnapshot {
                msg.get_snapshot().get_metadata().index
            } else {
                msg.index
            },
            commit: msg.commit,
            entries: msg.entries.len(),
            fate,
        });
        if fate != Fate::Delivered {
            if let Some(sender) = self.members.get_mut(&from).and_then(|m| m.node.as_mut()) {
                if fate.is_noticed() {
                    sender.handle(Request::Unreachable { to });
                }
                if kind == MessageType::MsgSnapshot {
                    // The transport's stream of the checkpoint failed.
                    sender.handle(Request::SnapshotSent { to, ok: false });
                }
            }
            return;
        }
        if kind == MessageType::MsgSnapshot {
            self.ship_snapshot(from, msg);
        } else {
            self.node(to).step(msg);
        }
    }

    /// What the gRPC transport does for a snapshot: copy the checkpoint's state into a
    /// staging family on the receiver, then step the message there.
    fn ship_snapshot(&mut self, from: u64, msg: Message) {
        let to = msg.to;
        let meta = msg.get_snapshot().get_metadata().clone();
        let checkpoint = super::super::log_store::checkpoint_dir(
            &self.members[&from].dir.join("snapshots"),
            meta.index,
            meta.term,
        );
        let reader = CheckpointReader::open(&checkpoint).unwrap();
        let db = self.node(to).db().clone();
        let staging = db.create_staging(meta.index, meta.term).unwrap();
        reader
            .for_each_chunk::<StorageError>(64, |pairs| db.write_staging(&staging, &pairs))
            .unwrap();
        db.finish_staging(&staging).unwrap();
        self.snapshots_sent += 1;
        self.node(to).step(msg);
        self.node(from)
            .handle(Request::SnapshotSent { to, ok: true });
    }

    /// Logs what changed in node `id`'s status since it was last looked at.
    fn observe(&mut self, id: u64) {
        let now = self.status(id);
        let before = self.members.get_mut(&id).unwrap().seen.replace(now.clone());
        if let Some(before) = before {
            for line in trace::status_lines(id, &before, &now) {
                self.log(line);
            }
        }
    }

    fn check_ledger(&self) {
        if let Some(conflict) = &self.ledger.lock().unwrap().conflict {
            panic!("the nodes diverged: {conflict}");
        }
    }

    // ---- requests ----------------------------------------------------------

    /// Hands a proposal to node `id` without waiting for its answer.
    pub fn submit(&mut self, id: u64, data: &[u8]) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.log(format!("n{id} propose #{ticket} {}", trace::payload(data)));
        let (reply, rx) = oneshot::channel();
        self.node(id).handle(Request::Propose {
            data: data.to_vec(),
            reply,
        });
        self.proposed.push(data.to_vec());
        self.proposals
            .insert(ticket, (data.to_vec(), Outcome::Waiting(id, rx)));
        self.poll_proposals();
        Ticket(ticket)
    }

    /// The node's answer to a proposal, once it gave one.
    pub fn answer(&self, ticket: &Ticket) -> Option<&crate::Result<u64>> {
        match &self.proposals[&ticket.0].1 {
            Outcome::Answered(r) => Some(r),
            _ => None,
        }
    }

    /// Every proposal a node acknowledged: (log index, payload).
    pub fn acknowledged(&self) -> &[(u64, Vec<u8>)] {
        &self.acknowledged
    }

    /// Every payload ever proposed.
    pub fn proposed(&self) -> &[Vec<u8>] {
        &self.proposed
    }

    /// Proposes on node `id` and drives the group until that node answers. The
    /// answer is always the node's own: a node that says nothing within
    /// [`ANSWER_TICKS`] fails the test (the harness never answers for it).
    pub fn propose(&mut self, id: u64, data: &[u8]) -> crate::Result<u64> {
        let ticket = self.submit(id, data);
        let answered = self.tick_until(ANSWER_TICKS, |s| s.answer(&ticket).is_some());
        assert!(
            answered,
            "n{id} gave no answer to proposal #{} within {ANSWER_TICKS} ticks",
            ticket.0
        );
        match self.proposals.remove(&ticket.0) {
            Some((_, Outcome::Answered(r))) => r,
            _ => unreachable!("answered above"),
        }
    }

    fn poll_proposals(&mut self) {
        let mut lines = Vec::new();
        for (ticket, (data, outcome)) in self.proposals.iter_mut() {
            let Outcome::Waiting(id, rx) = outcome else {
                continue;
            };
            let id = *id;
            let next = match rx.try_recv() {
                Ok(r) => {
                    if let Ok(index) = &r {
                        self.acknowledged.push((*index, data.clone()));
                    }
                    lines.push(match &r {
                        Ok(index) => format!("n{id} answer #{ticket}: applied at index {index}"),
                        Err(e) => format!("n{id} answer #{ticket}: refused: {e}"),
                    });
                    Outcome::Answered(r)
                }
                Err(oneshot::error::TryRecvError::Empty) => continue,
                Err(oneshot::error::TryRecvError::Closed) => {
                    lines.push(format!("n{id} answer #{ticket}: none, the node crashed"));
                    Outcome::Vanished
                }
            };
            *outcome = next;
        }
        for line in lines {
            self.log(line);
        }
    }

    /// Asks node `id` for a membership change and drives the group until it answers
    /// (within [`ANSWER_TICKS`], or the test fails).
    pub fn change(&mut self, id: u64, change: MemberChange) -> crate::Result<()> {
        self.log(format!("n{id} change membership {change:?}"));
        let (reply, mut rx) = oneshot::channel();
        self.node(id)
            .handle(Request::ChangeMembership { change, reply });
        for _ in 0..=ANSWER_TICKS {
            self.settle();
            match rx.try_recv() {
                Ok(r) => {
                    let line = match &r {
                        Ok(()) => format!("n{id} answer: membership changed"),
                        Err(e) => format!("n{id} answer: membership change refused: {e}"),
                    };
                    self.log(line);
                    return r;
                }
                Err(oneshot::error::TryRecvError::Empty) => self.tick(),
                Err(oneshot::error::TryRecvError::Closed) => panic!("n{id} dropped the reply"),
            }
        }
        panic!("n{id} gave no answer to a membership change within {ANSWER_TICKS} ticks");
    }

    // ---- what the nodes hold -----------------------------------------------

    pub fn items(&mut self, id: u64) -> Vec<Vec<u8>> {
        self.node(id).state_machine().items()
    }

    pub fn entries(&mut self, id: u64) -> Vec<(u64, Vec<u8>)> {
        self.node(id).state_machine().entries()
    }

    /// The running nodes that lead and have applied an entry of their term.
    pub fn ready_leaders(&self) -> Vec<u64> {
        self.up()
            .into_iter()
            .filter(|id| self.status(*id).is_ready_leader())
            .collect()
    }

    /// Ticks until exactly one running node leads, ready, and every running node it
    /// can reach follows it; panics (with the trace) if that takes longer than
    /// [`ANSWER_TICKS`].
    pub fn elect(&mut self) -> u64 {
        let mut leader = None;
        let found = self.tick_until(ANSWER_TICKS, |s| {
            leader = match s.ready_leaders()[..] {
                [l] if s
                    .up()
                    .iter()
                    .all(|id| s.net.is_cut(l, *id) || s.status(*id).leader_id == l) =>
                {
                    Some(l)
                }
                _ => None,
            };
            leader.is_some()
        });
        assert!(found, "no leader elected within {ANSWER_TICKS} ticks");
        let leader = leader.unwrap();
        self.log(format!("elected n{leader}"));
        leader
    }

    /// Ticks (at most [`ANSWER_TICKS`]) until one of `ids` leads, ready.
    pub fn tick_until_leader_among(&mut self, ids: &[u64]) -> Option<u64> {
        let mut leader = None;
        self.tick_until(ANSWER_TICKS, |s| {
            leader = ids
                .iter()
                .copied()
                .find(|id| s.is_up(*id) && s.status(*id).is_ready_leader());
            leader.is_some()
        });
        leader
    }

    /// Ticks until every running voter (as node `id` sees the voters) has applied as
    /// far as node `id` has committed; panics (with the trace) after
    /// [`ANSWER_TICKS`]. Nodes outside the group (removed, or never admitted) are
    /// not waited for.
    pub fn converge(&mut self, id: u64) {
        let converged = self.tick_until(ANSWER_TICKS, |s| {
            let st = s.status(id);
            st.voters
                .iter()
                .filter(|n| s.is_up(**n))
                .all(|n| s.status(*n).applied_index >= st.commit_index)
        });
        assert!(
            converged,
            "the group did not converge on n{id}'s commit index"
        );
    }
}
