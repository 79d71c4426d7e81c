//! The Ready loop on a one-node group: proposals commit through the real log on
//! RocksDB, answers come after the write, and a restart resumes from the persisted
//! applied index without re-applying anything.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::storage::{Cf, Db};

/// Appends each command to a list in the state column family.
struct ListMachine {
    db: Arc<Db>,
    applied: u64,
    /// Commands applied by this instance (not loaded from disk).
    applied_here: Vec<Vec<u8>>,
}

impl ListMachine {
    fn open(db: Arc<Db>) -> ListMachine {
        let applied = db
            .get(Cf::State, b"applied")
            .unwrap()
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            .unwrap_or(0);
        ListMachine {
            db,
            applied,
            applied_here: Vec::new(),
        }
    }
}

impl StateMachine for ListMachine {
    type Output = (u64, Vec<u8>);

    fn applied_index(&self) -> u64 {
        self.applied
    }

    fn apply(
        &mut self,
        batch: &mut Batch,
        index: u64,
        data: &[u8],
    ) -> Result<Self::Output, StorageError> {
        batch.put(
            Cf::State,
            [b"item/".as_slice(), &index.to_be_bytes()].concat(),
            data.to_vec(),
        );
        let _ = &self.db;
        self.applied_here.push(data.to_vec());
        Ok((index, data.to_vec()))
    }

    fn stage_applied(&mut self, batch: &mut Batch, index: u64) {
        self.applied = index;
        batch.put(Cf::State, b"applied".to_vec(), index.to_be_bytes().to_vec());
    }

    fn publish(&mut self) {}
}

fn options() -> NodeOptions {
    NodeOptions {
        id: 1,
        initial_voters: vec![],
        tick_interval: Duration::from_millis(10),
        election_ticks: 10,
        heartbeat_ticks: 2,
    }
}

async fn wait_leader(handle: &RaftHandle<(u64, Vec<u8>)>) {
    let mut status = handle.watch_status();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !status.borrow_and_update().is_ready_leader() {
            status.changed().await.unwrap();
        }
    })
    .await
    .expect("a lone voter becomes a ready leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_commit_and_a_restart_resumes_without_reapplying() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());

    let token = CancellationToken::new();
    let (handle, thread) = spawn(
        options(),
        db.clone(),
        ListMachine::open(db.clone()),
        token.clone(),
    )
    .unwrap();
    wait_leader(&handle).await;
    let mut indexes = Vec::new();
    for i in 0..3u8 {
        let (index, data) = handle.propose(vec![i]).await.unwrap();
        assert_eq!(data, vec![i]);
        indexes.push(index);
    }
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    let status = handle.status();
    assert_eq!(status.role, Role::Leader);
    assert_eq!(status.voters, vec![1]);
    assert!(status.applied_index >= indexes[2]);
    token.cancel();
    thread.join().unwrap().unwrap();
    drop(handle);

    // Everything applied before is on disk with its applied index.
    let sm = ListMachine::open(db.clone());
    assert!(sm.applied_index() >= indexes[2]);
    let term_before = status.term;
    let token = CancellationToken::new();
    let (handle, thread) = spawn(options(), db.clone(), sm, token.clone()).unwrap();
    wait_leader(&handle).await;
    assert!(
        handle.status().term > term_before,
        "a restart starts a new term"
    );
    let (index, _) = handle.propose(vec![9]).await.unwrap();
    assert!(index > indexes[2]);
    token.cancel();
    let _ = thread.join().unwrap();

    let items = db
        .scan_prefix(Cf::State, b"item/", false, None, 100)
        .unwrap();
    let values: Vec<Vec<u8>> = items.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        vec![vec![0], vec![1], vec![2], vec![9]],
        "nothing applied twice or lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_fail_fast_once_the_node_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let token = CancellationToken::new();
    let (handle, thread) =
        spawn(options(), db.clone(), ListMachine::open(db), token.clone()).unwrap();
    wait_leader(&handle).await;
    token.cancel();
    thread.join().unwrap().unwrap();
    let err = handle.propose(vec![1]).await.unwrap_err();
    assert!(matches!(err, crate::Error::Unavailable(_)), "{err:?}");
}
