//! Durable storage: one RocksDB per node, with a column family each for the raft log,
//! the raft state (hard state, conf state, snapshot metadata) and the state machine.
//!
//! This is the only module that imports `rocksdb`. Everything above it speaks in
//! column families, byte keys and [`Batch`]es.
//!
//! Invariants:
//! - Every change a raft Ready causes (log entries, hard state, state-machine writes,
//!   the applied index) goes into ONE [`Batch`] and reaches disk in one atomic
//!   `WriteBatch`; with `sync` set the write is fsynced before [`Db::write`] returns.
//! - A [`Batch`] is also a read overlay: while the state machine applies several
//!   entries into one batch, it reads its own unwritten changes through
//!   [`Batch::get`] and [`Batch::scan_prefix`], so applying N entries in one batch
//!   gives the same result as N batches.
//! - A failed write is never retried or ignored here: the caller stops the node,
//!   because a replica that skipped a write would diverge.
//!
//! - The state machine's column family can be *replaced* atomically: a snapshot from
//!   the leader is written into a fresh staging family, and one batch then makes it the
//!   active one (the name of the active family is itself a key in `raft_state`). A
//!   crash before that batch leaves the old state in place; stale staging families
//!   are dropped at the next open.
//!
//! Deliberately absent: caching (RocksDB's block cache does it), column families per
//! job, and any knowledge of what the bytes mean.

mod batch;
mod db;
mod snapshot;

pub use batch::Batch;
pub use db::Db;
pub use snapshot::CheckpointReader;

use rocksdb::{DBWithThreadMode, MultiThreaded, Options};

type DB = DBWithThreadMode<MultiThreaded>;

/// Key in `raft_state` naming the active state-machine column family.
const KEY_STATE_CF: &[u8] = b"state_cf";
/// The state machine's column family on a node that never installed a snapshot.
const DEFAULT_STATE_CF: &str = "state";
/// Staging families for incoming snapshots are named `state-<index>-<term>`.
const STAGING_PREFIX: &str = "state-";

/// The column families. Their names are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Raft log entries keyed by big-endian index.
    RaftLog,
    /// Hard state, conf state and snapshot metadata.
    RaftState,
    /// The replicated state machine: jobs, executions, cursors, applied index.
    State,
}

impl Cf {
    fn fixed_name(self) -> Option<&'static str> {
        match self {
            Cf::RaftLog => Some("raft_log"),
            Cf::RaftState => Some("raft_state"),
            Cf::State => None,
        }
    }
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o
}

/// A storage failure: the disk is full, the files are corrupt, or RocksDB refused.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(String);

impl StorageError {
    /// Bytes on disk that cannot be decoded: the files are damaged or from a newer version.
    pub fn corrupt(what: impl Into<String>) -> StorageError {
        StorageError(format!("corrupt data: {}", what.into()))
    }
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        StorageError(e.into_string())
    }
}

impl From<StorageError> for crate::Error {
    fn from(e: StorageError) -> Self {
        crate::Error::Internal(e.0)
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A key-value pair as read from disk.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The smallest key greater than every key starting with `prefix`, if one exists.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        (dir, db)
    }

    #[test]
    fn batch_is_atomic_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            let mut b = Batch::new();
            b.put(Cf::State, b"a".to_vec(), b"1".to_vec());
            b.put(Cf::RaftLog, b"a".to_vec(), b"2".to_vec());
            db.write(b, true).unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get(Cf::State, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(db.get(Cf::RaftLog, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(db.get(Cf::RaftState, b"a").unwrap(), None);
    }

    #[test]
    fn scan_prefix_forward_reverse_and_paged() {
        let (_dir, db) = open();
        let mut b = Batch::new();
        for k in ["p/1", "p/2", "p/3", "q/1", "o/9"] {
            b.put(Cf::State, k.as_bytes().to_vec(), vec![]);
        }
        db.write(b, false).unwrap();
        let keys = |v: Vec<Pair>| {
            v.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(db.scan_prefix(Cf::State, b"p/", false, None, 10).unwrap()),
            ["p/1", "p/2", "p/3"]
        );
        assert_eq!(
            keys(db.scan_prefix(Cf::State, b"p/", true, None, 10).unwrap()),
            ["p/3", "p/2", "p/1"]
        );
        assert_eq!(
            keys(
                db.scan_prefix(Cf::State, b"p/", false, Some(b"p/1"), 1)
                    .unwrap()
            ),
            ["p/2"]
        );
        assert_eq!(
            keys(
                db.scan_prefix(Cf::State, b"p/", true, Some(b"p/3"), 10)
                    .unwrap()
            ),
            ["p/2", "p/1"]
        );
        assert!(
            db.scan_prefix(Cf::State, b"r/", true, None, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn batch_overlay_reads_its_own_writes() {
        let (_dir, db) = open();
        let mut b = Batch::new();
        for k in ["x/1", "x/2", "x/3"] {
            b.put(Cf::State, k.as_bytes().to_vec(), k.as_bytes().to_vec());
        }
        db.write(b, false).unwrap();

        let mut b = Batch::new();
        b.delete(Cf::State, b"x/1".to_vec());
        b.put(Cf::State, b"x/0".to_vec(), b"new".to_vec());
        b.put(Cf::State, b"x/4".to_vec(), b"new".to_vec());
        assert_eq!(b.get(&db, Cf::State, b"x/1").unwrap(), None);
        assert_eq!(
            b.get(&db, Cf::State, b"x/2").unwrap(),
            Some(b"x/2".to_vec())
        );
        let keys: Vec<_> = b
            .scan_prefix(&db, Cf::State, b"x/", 2)
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(keys, ["x/0", "x/2"]);
        let all: Vec<_> = b
            .scan_prefix(&db, Cf::State, b"x/", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(all, ["x/0", "x/2", "x/3", "x/4"]);
    }

    #[test]
    fn a_staged_snapshot_replaces_the_state_atomically_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            let mut b = Batch::new();
            b.put(Cf::State, b"old".to_vec(), b"1".to_vec());
            db.write(b, true).unwrap();

            // Ship the state through a checkpoint, as a leader would.
            let cp = dir.path().join("cp");
            db.checkpoint(&cp).unwrap();
            let mut b = Batch::new();
            b.put(Cf::State, b"after-checkpoint".to_vec(), b"2".to_vec());
            db.write(b, true).unwrap();
            let reader = CheckpointReader::open(&cp).unwrap();
            let mut shipped = Vec::new();
            reader
                .for_each_chunk::<StorageError>(1, |pairs| {
                    shipped.extend(pairs);
                    Ok(())
                })
                .unwrap();
            assert_eq!(
                shipped,
                vec![(b"old".to_vec(), b"1".to_vec())],
                "the checkpoint is frozen"
            );

            let staging = db.create_staging(10, 2).unwrap();
            db.write_staging(&staging, &[(b"new".to_vec(), b"3".to_vec())])
                .unwrap();
            db.finish_staging(&staging).unwrap();
            assert_eq!(
                db.get(Cf::State, b"new").unwrap(),
                None,
                "not active before the switch"
            );
            let mut b = Batch::new();
            b.switch_state_cf(staging);
            db.write(b, true).unwrap();
            assert_eq!(db.get(Cf::State, b"new").unwrap(), Some(b"3".to_vec()));
            assert_eq!(db.get(Cf::State, b"old").unwrap(), None);
            // A staging family never switched to is dropped at the next open.
            let abandoned = db.create_staging(20, 3).unwrap();
            db.write_staging(&abandoned, &[(b"x".to_vec(), b"y".to_vec())])
                .unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get(Cf::State, b"new").unwrap(), Some(b"3".to_vec()));
        assert!(!db.has_staging("state-20-3"));
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
