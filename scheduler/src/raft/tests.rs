//! Deterministic raft tests: several nodes in one process, each with its own
//! RocksDB, over an in-memory transport that the test drives by hand — tick,
//! deliver, partition, heal, crash, restart. No threads, no sockets, no sleeps.
//!
//! The state machine appends each command to a list, so "the same state" is "the
//! same list in the same order" on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::{Message, MessageType};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::storage::{Cf, CheckpointReader, Db, StorageError};

/// Appends each command to a list in the state column family.
struct ListMachine {
    db: Arc<Db>,
    applied: u64,
    members: BTreeMap<u64, String>,
}

impl ListMachine {
    fn open(db: Arc<Db>) -> ListMachine {
        let mut m = ListMachine {
            db,
            applied: 0,
            members: BTreeMap::new(),
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

    fn items(&self) -> Vec<Vec<u8>> {
        self.db
            .scan_prefix(Cf::State, b"item/", false, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
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
        Ok(index)
    }

    fn apply_member_change(
        &mut self,
        _batch: &mut Batch,
        _index: u64,
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
struct Outbox(Arc<Mutex<Vec<Message>>>);

impl Transport for Outbox {
    fn send(&mut self, msgs: Vec<Message>) {
        self.0.lock().unwrap().extend(msgs);
    }
}

type SimNode = Node<ListMachine, Outbox>;

struct Member {
    dir: PathBuf,
    node: Option<SimNode>,
    outbox: Outbox,
}

/// A group of nodes and the network between them.
struct Sim {
    _root: tempfile::TempDir,
    members: BTreeMap<u64, Member>,
    /// Node pairs that cannot talk (both directions).
    cut: BTreeSet<(u64, u64)>,
    snapshots_sent: u64,
}

fn options(id: u64, voters: &[u64], join: bool, dir: &Path, snapshot_interval: u64) -> NodeOptions {
    NodeOptions {
        id,
        initial_voters: voters.to_vec(),
        join,
        tick_interval: Duration::from_millis(10),
        election_ticks: 10,
        heartbeat_ticks: 2,
        snapshot_interval,
        snapshot_dir: dir.join("snapshots"),
    }
}

impl Sim {
    fn new(n: u64, snapshot_interval: u64) -> Sim {
        let root = tempfile::tempdir().unwrap();
        let voters: Vec<u64> = (1..=n).collect();
        let mut sim = Sim {
            _root: root,
            members: BTreeMap::new(),
            cut: BTreeSet::new(),
            snapshots_sent: 0,
        };
        for id in 1..=n {
            sim.add_member(id, &voters, false, snapshot_interval);
        }
        sim
    }

    fn add_member(&mut self, id: u64, voters: &[u64], join: bool, snapshot_interval: u64) {
        let dir = self._root.path().join(format!("n{id}"));
        let db = Arc::new(Db::open(&dir).unwrap());
        let outbox = Outbox::default();
        let node = Node::new(
            options(id, voters, join, &dir, snapshot_interval),
            db.clone(),
            ListMachine::open(db),
            outbox.clone(),
        )
        .unwrap();
        self.members.insert(
            id,
            Member {
                dir,
                node: Some(node),
                outbox,
            },
        );
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        self.members
            .get_mut(&id)
            .unwrap()
            .node
            .as_mut()
            .expect("node is up")
    }

    fn up(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Cuts `isolated` off from every other node.
    fn isolate(&mut self, isolated: u64) {
        for id in self.members.keys().copied().collect::<Vec<_>>() {
            if id != isolated {
                self.cut.insert((id.min(isolated), id.max(isolated)));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn crash(&mut self, id: u64) {
        let m = self.members.get_mut(&id).unwrap();
        m.node = None;
        m.outbox.0.lock().unwrap().clear();
    }

    fn restart(&mut self, id: u64, snapshot_interval: u64) {
        let m = self.members.get_mut(&id).unwrap();
        assert!(m.node.is_none(), "crash it first");
        let db = Arc::new(Db::open(&m.dir).unwrap());
        let voters: Vec<u64> = vec![];
        m.node = Some(
            Node::new(
                options(id, &voters, false, &m.dir, snapshot_interval),
                db.clone(),
                ListMachine::open(db),
                m.outbox.clone(),
            )
            .unwrap(),
        );
    }

    /// Processes every node's Ready and delivers messages until the network is quiet
    /// (bounded).
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for id in self.up() {
                self.node(id).on_ready().unwrap();
            }
            let mut in_flight = Vec::new();
            for (id, m) in &self.members {
                let msgs: Vec<Message> = m.outbox.0.lock().unwrap().drain(..).collect();
                for msg in msgs {
                    in_flight.push((*id, msg));
                }
            }
            for (from, msg) in in_flight {
                moved = true;
                let to = msg.to;
                let reachable = self.connected(from, to)
                    && self.members.get(&to).is_some_and(|m| m.node.is_some());
                if !reachable {
                    if let Some(sender) = self.members.get_mut(&from).and_then(|m| m.node.as_mut())
                    {
                        sender.handle(Request::Unreachable { to });
                        if msg.get_msg_type() == MessageType::MsgSnapshot {
                            sender.handle(Request::SnapshotSent { to, ok: false });
                        }
                    }
                    continue;
                }
                if msg.get_msg_type() == MessageType::MsgSnapshot {
                    self.ship_snapshot(from, msg);
                } else {
                    self.node(to).step(msg);
                }
            }
            if !moved
                && self
                    .up()
                    .iter()
                    .all(|id| !self.members[id].node.as_ref().unwrap().has_ready())
            {
                return;
            }
        }
    }

    /// What the gRPC transport does for a snapshot: copy the checkpoint's state into a
    /// staging family on the receiver, then step the message there.
    fn ship_snapshot(&mut self, from: u64, msg: Message) {
        let to = msg.to;
        let meta = msg.get_snapshot().get_metadata().clone();
        let checkpoint = super::log_store::checkpoint_dir(
            &self.members[&from].dir.join("snapshots"),
            meta.index,
            meta.term,
        );
        let reader = CheckpointReader::open(&checkpoint).unwrap();
        let receiver_dir = self.members[&to].dir.clone();
        // The receiver's database is open in its node; reach it through a second
        // handle is not possible, so go through the node's own Db.
        let db = self.node(to).db().clone();
        let staging = db.create_staging(meta.index, meta.term).unwrap();
        reader
            .for_each_chunk::<StorageError>(64, |pairs| db.write_staging(&staging, &pairs))
            .unwrap();
        db.finish_staging(&staging).unwrap();
        let _ = receiver_dir;
        self.snapshots_sent += 1;
        self.node(to).step(msg);
        self.node(from)
            .handle(Request::SnapshotSent { to, ok: true });
    }

    fn tick(&mut self) {
        for id in self.up() {
            self.node(id).tick();
        }
        self.settle();
    }

    /// Ticks until exactly one up node leads and every connected up node knows it.
    fn elect(&mut self) -> u64 {
        for _ in 0..500 {
            self.tick();
            let leaders: Vec<u64> = self
                .up()
                .into_iter()
                .filter(|id| {
                    self.members[id]
                        .node
                        .as_ref()
                        .unwrap()
                        .status()
                        .is_ready_leader()
                })
                .collect();
            if let [leader] = leaders[..] {
                let agreed = self.up().iter().all(|id| {
                    !self.connected(*id, leader)
                        || self.members[id].node.as_ref().unwrap().status().leader_id == leader
                });
                if agreed {
                    return leader;
                }
            }
        }
        panic!("no leader elected");
    }

    /// Ticks (bounded) until one of `ids` leads.
    fn tick_until_leader_among(&mut self, ids: &[u64]) -> Option<u64> {
        for _ in 0..500 {
            self.tick();
            if let Some(leader) = self.leader_among(ids) {
                return Some(leader);
            }
        }
        None
    }

    fn leader_among(&self, ids: &[u64]) -> Option<u64> {
        ids.iter().copied().find(|id| {
            self.members[id]
                .node
                .as_ref()
                .is_some_and(|n| n.status().is_ready_leader())
        })
    }

    /// Proposes on `id` and drives the group until the answer arrives (bounded).
    fn propose(&mut self, id: u64, data: &[u8]) -> crate::Result<u64> {
        let (reply, mut rx) = oneshot::channel();
        self.node(id).handle(Request::Propose {
            data: data.to_vec(),
            reply,
        });
        for _ in 0..300 {
            self.settle();
            match rx.try_recv() {
                Ok(r) => return r,
                Err(oneshot::error::TryRecvError::Empty) => self.tick(),
                Err(oneshot::error::TryRecvError::Closed) => panic!("reply dropped"),
            }
        }
        Err(crate::Error::Unavailable("no answer".into()))
    }

    fn change(&mut self, id: u64, change: MemberChange) -> crate::Result<()> {
        let (reply, mut rx) = oneshot::channel();
        self.node(id)
            .handle(Request::ChangeMembership { change, reply });
        for _ in 0..300 {
            self.settle();
            match rx.try_recv() {
                Ok(r) => return r,
                Err(oneshot::error::TryRecvError::Empty) => self.tick(),
                Err(oneshot::error::TryRecvError::Closed) => panic!("reply dropped"),
            }
        }
        Err(crate::Error::Unavailable("no answer".into()))
    }

    fn items(&mut self, id: u64) -> Vec<Vec<u8>> {
        self.node(id).state_machine().items()
    }

    /// Ticks until every up node has applied as far as `id`.
    fn converge(&mut self, id: u64) {
        for _ in 0..500 {
            let target = self.node(id).status().commit_index;
            if self.up().iter().all(|n| {
                self.members[n]
                    .node
                    .as_ref()
                    .unwrap()
                    .status()
                    .applied_index
                    >= target
            }) {
                return;
            }
            self.tick();
        }
        panic!("the group did not converge");
    }
}

fn cmd(i: u32) -> Vec<u8> {
    format!("cmd-{i}").into_bytes()
}

#[test]
fn three_nodes_elect_one_leader_and_replicate_in_order() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    for i in 0..10 {
        sim.propose(leader, &cmd(i)).unwrap();
    }
    sim.converge(leader);
    let expected: Vec<Vec<u8>> = (0..10).map(cmd).collect();
    for id in 1..=3 {
        assert_eq!(sim.items(id), expected, "node {id}");
        let st = sim.node(id).status();
        assert_eq!(st.voters, vec![1, 2, 3]);
        assert_eq!(st.leader_id, leader);
    }
}

#[test]
fn a_follower_cannot_propose_and_says_so() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // Kairos proposes on the leader only; a follower's own proposal is forwarded by
    // raft and still answered when applied there.
    let index = sim.propose(follower, b"via-follower").unwrap();
    assert!(index > 0);
    sim.converge(leader);
    assert_eq!(sim.items(leader), vec![b"via-follower".to_vec()]);
}

#[test]
fn an_isolated_leader_is_replaced_and_rejoins_without_divergence() {
    let mut sim = Sim::new(3, 10_000);
    let old = sim.elect();
    sim.propose(old, b"before").unwrap();
    sim.isolate(old);
    // The old leader cannot commit alone: its proposal fails (check-quorum makes it
    // step down; its waiting proposal is failed as retryable).
    let stranded = sim.propose(old, b"stranded");
    assert!(
        stranded.is_err(),
        "a minority leader must not commit: {stranded:?}"
    );
    let others: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    let new = sim
        .tick_until_leader_among(&others)
        .expect("the majority elects a new leader");
    assert!(sim.node(new).status().term > sim.node(old).status().term - 1);
    sim.propose(new, b"after").unwrap();
    sim.heal();
    sim.converge(new);
    for _ in 0..50 {
        sim.tick();
    }
    let expected = vec![b"before".to_vec(), b"after".to_vec()];
    for id in 1..=3 {
        assert_eq!(sim.items(id), expected, "node {id} diverged");
    }
    assert!(!sim.node(old).status().is_ready_leader());
}

#[test]
fn a_restarted_node_keeps_its_state_and_catches_up() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    sim.propose(leader, b"a").unwrap();
    sim.converge(leader);
    sim.crash(follower);
    sim.propose(leader, b"b").unwrap();
    sim.propose(leader, b"c").unwrap();
    sim.restart(follower, 10_000);
    assert_eq!(
        sim.items(follower),
        vec![b"a".to_vec()],
        "state survives the crash"
    );
    sim.converge(leader);
    assert_eq!(
        sim.items(follower),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(sim.snapshots_sent, 0, "a short gap is filled from the log");
}

#[test]
fn a_node_behind_the_compacted_log_catches_up_by_snapshot() {
    let interval = 10;
    let mut sim = Sim::new(3, interval);
    let leader = sim.elect();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    sim.propose(leader, b"first").unwrap();
    sim.converge(leader);
    sim.crash(follower);
    for i in 0..40 {
        sim.propose(leader, &cmd(i)).unwrap();
    }
    assert!(
        sim.node(leader).first_log_index() > 2,
        "the leader compacted its log"
    );
    sim.restart(follower, interval);
    sim.converge(leader);
    assert!(sim.snapshots_sent >= 1, "the follower needed a snapshot");
    let expected = sim.items(leader);
    assert_eq!(expected.len(), 41);
    assert_eq!(sim.items(follower), expected);
    // And it keeps up afterwards, from the log.
    sim.propose(leader, b"last").unwrap();
    sim.converge(leader);
    assert_eq!(sim.items(follower).last().unwrap(), b"last");
    // The installed state survives a restart of the follower.
    sim.crash(follower);
    sim.restart(follower, interval);
    assert_eq!(sim.items(follower).len(), 42);
}

#[test]
fn membership_grows_and_shrinks_through_conf_changes() {
    let interval = 10;
    let mut sim = Sim::new(3, interval);
    let leader = sim.elect();
    for i in 0..25 {
        sim.propose(leader, &cmd(i)).unwrap();
    }
    // Node 4 starts empty and joins; the log is compacted, so it needs a snapshot.
    sim.add_member(4, &[], true, interval);
    sim.change(
        leader,
        MemberChange::Add {
            id: 4,
            addr: "127.0.0.1:4".into(),
        },
    )
    .unwrap();
    sim.converge(leader);
    assert_eq!(sim.node(leader).status().voters, vec![1, 2, 3, 4]);
    assert_eq!(sim.items(4), sim.items(leader));
    assert!(sim.snapshots_sent >= 1);
    assert_eq!(
        sim.node(4).status().voters,
        vec![1, 2, 3, 4],
        "the joiner learned the membership"
    );

    // Remove a follower other than the new one.
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    sim.change(leader, MemberChange::Remove { id: removed })
        .unwrap();
    sim.converge(leader);
    let voters = sim.node(leader).status().voters;
    assert!(!voters.contains(&removed));
    assert_eq!(voters.len(), 3);
    sim.crash(removed);
    // The remaining three still commit.
    sim.propose(leader, b"after-removal").unwrap();
    sim.converge(leader);
    assert_eq!(sim.items(4).last().unwrap(), b"after-removal");
}

#[test]
fn only_one_membership_change_at_a_time() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    sim.add_member(4, &[], true, 10_000);
    sim.add_member(5, &[], true, 10_000);
    let (r1, mut rx1) = oneshot::channel();
    let (r2, mut rx2) = oneshot::channel();
    sim.node(leader).handle(Request::ChangeMembership {
        change: MemberChange::Add {
            id: 4,
            addr: "a".into(),
        },
        reply: r1,
    });
    sim.node(leader).handle(Request::ChangeMembership {
        change: MemberChange::Add {
            id: 5,
            addr: "b".into(),
        },
        reply: r2,
    });
    for _ in 0..100 {
        sim.tick();
        if !rx1.is_empty() && !rx2.is_empty() {
            break;
        }
    }
    assert!(rx1.try_recv().unwrap().is_ok());
    let second = rx2.try_recv().unwrap();
    assert!(
        matches!(second, Err(crate::Error::FailedPrecondition(_))),
        "the second change must be refused while the first is pending: {second:?}"
    );
}

/// The production loop on a one-node group: proposals commit through the real log
/// on RocksDB and a restart resumes from the persisted applied index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threaded_loop_commits_and_restarts_without_reapplying() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let start = |db: Arc<Db>| {
        let token = CancellationToken::new();
        let (handle, thread) = spawn(
            options(1, &[], false, dir.path(), 10_000),
            db.clone(),
            ListMachine::open(db),
            Outbox::default(),
            Inbox::default(),
            token.clone(),
        )
        .unwrap();
        (handle, thread, token)
    };
    let wait_leader = |handle: &RaftHandle<u64>| {
        let mut status = handle.watch_status();
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !status.borrow_and_update().is_ready_leader() {
                    status.changed().await.unwrap();
                }
            })
            .await
            .expect("a lone voter becomes a ready leader");
        }
    };
    let (handle, thread, token) = start(db.clone());
    wait_leader(&handle).await;
    let mut indexes = Vec::new();
    for i in 0..3 {
        indexes.push(handle.propose(cmd(i)).await.unwrap());
    }
    handle.read_barrier().await.unwrap();
    assert!(handle.status().applied_index >= indexes[2]);
    let term = handle.status().term;
    token.cancel();
    thread.join().unwrap().unwrap();
    let err = handle.propose(cmd(9)).await.unwrap_err();
    assert!(matches!(err, crate::Error::Unavailable(_)), "{err:?}");

    let (handle, thread, token) = start(db.clone());
    wait_leader(&handle).await;
    assert!(handle.status().term > term, "a restart starts a new term");
    let index = handle.propose(cmd(3)).await.unwrap();
    assert!(index > indexes[2]);
    token.cancel();
    thread.join().unwrap().unwrap();
    let items = ListMachine::open(db).items();
    assert_eq!(
        items,
        (0..4).map(cmd).collect::<Vec<_>>(),
        "nothing applied twice or lost"
    );
}

#[test]
fn a_joiner_learns_the_whole_membership_even_from_an_uncompacted_group() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    sim.propose(leader, b"x").unwrap();
    sim.add_member(4, &[], true, 10_000);
    sim.change(
        leader,
        MemberChange::Add {
            id: 4,
            addr: "127.0.0.1:4".into(),
        },
    )
    .unwrap();
    sim.converge(leader);
    assert_eq!(
        sim.node(4).status().voters,
        vec![1, 2, 3, 4],
        "never just itself"
    );
    // The joiner cannot win alone: with the leader gone, a majority of the rest elects.
    sim.crash(leader);
    let rest: Vec<u64> = (1..=4).filter(|id| *id != leader).collect();
    let new = sim
        .tick_until_leader_among(&rest)
        .expect("the remaining three elect a leader");
    sim.propose(new, b"y").unwrap();
    sim.converge(new);
    assert_eq!(sim.items(4), vec![b"x".to_vec(), b"y".to_vec()]);
}

#[test]
fn a_leader_that_removes_itself_hands_the_group_over() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    sim.change(leader, MemberChange::Remove { id: leader })
        .unwrap();
    let rest: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new = sim
        .tick_until_leader_among(&rest)
        .expect("a remaining member leads");
    sim.propose(new, b"after").unwrap();
    assert!(!sim.node(new).status().voters.contains(&leader));
}

#[test]
fn the_leader_knows_which_voters_are_active_and_whom_to_hand_over_to() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    sim.propose(leader, &cmd(1)).unwrap();
    for _ in 0..5 {
        sim.tick();
    }
    let progress = sim.node(leader).progress();
    assert!(progress.leader);
    assert_eq!(
        progress
            .voters
            .iter()
            .map(|v| (v.id, v.active))
            .collect::<Vec<_>>(),
        [(1, true), (2, true), (3, true)]
    );
    assert!(
        progress
            .voters
            .iter()
            .all(|v| v.matched == progress.last_index),
        "every voter holds the whole log: {progress:?}"
    );

    let quiet = *[1, 2, 3].iter().find(|id| **id != leader).unwrap();
    sim.isolate(quiet);
    // Longer than the activity window: the isolated voter counts as inactive.
    for _ in 0..(ACTIVE_ELECTIONS * 10 + 2) {
        sim.tick();
    }
    let progress = sim.node(leader).progress();
    assert!(progress.leader, "two of three keep the quorum");
    let inactive: Vec<u64> = progress
        .voters
        .iter()
        .filter(|v| !v.active)
        .map(|v| v.id)
        .collect();
    assert_eq!(inactive, [quiet]);
    assert_eq!(progress.active_except(quiet), 2);
    let successor = progress.best_successor(leader).unwrap();
    assert!(successor != quiet && successor != leader);

    // A follower knows nothing of the others' progress.
    assert!(!sim.node(successor).progress().leader);
}

#[test]
fn a_voter_that_lost_its_data_survives_stale_heartbeats_and_is_replaced() {
    let mut sim = Sim::new(3, 10_000);
    let leader = sim.elect();
    for i in 0..5 {
        sim.propose(leader, &cmd(i)).unwrap();
    }
    let lost = *[1, 2, 3].iter().find(|id| **id != leader).unwrap();
    sim.converge(leader);
    // Its volume is gone: it comes back empty, waiting to be admitted.
    sim.crash(lost);
    std::fs::remove_dir_all(&sim.members[&lost].dir).unwrap();
    sim.members.remove(&lost);
    sim.add_member(lost, &[], true, 10_000);
    // The leader still believes it holds the log: its heartbeats name a commit
    // index beyond the empty node's log. Dropped, not a panic.
    for _ in 0..10 {
        sim.tick();
    }
    assert_eq!(sim.node(lost).status().applied_index, 0);

    // Replacing it: removed, then added again; it catches up like any new node.
    sim.change(leader, MemberChange::Remove { id: lost })
        .unwrap();
    sim.change(
        leader,
        MemberChange::Add {
            id: lost,
            addr: format!("n{lost}"),
        },
    )
    .unwrap();
    sim.propose(leader, &cmd(99)).unwrap();
    sim.converge(leader);
    let want = sim.items(leader);
    assert_eq!(sim.items(lost), want);
    assert!(sim.node(lost).status().voters.contains(&lost));
}
