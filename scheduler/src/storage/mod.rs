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

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use std::sync::{Arc, RwLock};

use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode,
    MultiThreaded, Options, WriteBatch, WriteOptions,
};

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

/// The node's database.
pub struct Db {
    db: DB,
    /// Name of the active state-machine column family.
    state_cf: RwLock<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.db.path()).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database under `path`.
    pub fn open(path: &Path) -> Result<Db> {
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError(format!("cannot create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(64 << 20);
        // A new database has no families to list.
        let mut names: Vec<String> = DB::list_cf(&opts, path).unwrap_or_default();
        for fixed in ["raft_log", "raft_state", DEFAULT_STATE_CF] {
            if !names.iter().any(|n| n == fixed) {
                names.push(fixed.to_string());
            }
        }
        let cfs = names
            .iter()
            .filter(|n| n.as_str() != "default")
            .map(|n| ColumnFamilyDescriptor::new(n, cf_options()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let raft_state = db
            .cf_handle("raft_state")
            .ok_or_else(|| StorageError("raft_state column family missing".into()))?;
        let active = match db.get_cf(&raft_state, KEY_STATE_CF)? {
            Some(b) => String::from_utf8(b)
                .map_err(|_| StorageError::corrupt("active state family name"))?,
            None => DEFAULT_STATE_CF.to_string(),
        };
        drop(raft_state);
        if db.cf_handle(&active).is_none() {
            return Err(StorageError::corrupt(format!(
                "the active state family {active:?} is missing"
            )));
        }
        // Staging families of snapshots that were never installed, and families
        // replaced by an installed one, are garbage.
        for name in names {
            let stale =
                (name.starts_with(STAGING_PREFIX) || name == DEFAULT_STATE_CF) && name != active;
            if stale {
                db.drop_cf(&name)?;
            }
        }
        Ok(Db {
            db,
            state_cf: RwLock::new(active),
        })
    }

    fn active_state_cf(&self) -> String {
        self.state_cf
            .read()
            .expect("invariant: the state family lock is never poisoned")
            .clone()
    }

    fn handle(&self, cf: Cf) -> Arc<BoundColumnFamily<'_>> {
        let name = match cf.fixed_name() {
            Some(n) => n.to_string(),
            None => self.active_state_cf(),
        };
        self.db
            .cf_handle(&name)
            .expect("invariant: the fixed and the active state families always exist")
    }

    /// The value under `key`, if any.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(&self.handle(cf), key)?)
    }

    /// Up to `limit` pairs whose key starts with `prefix`, in key order (or reverse
    /// key order), starting strictly after `after` (strictly before, in reverse).
    pub fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        reverse: bool,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let handle = self.handle(cf);
        let iter = if reverse {
            let start = match after {
                Some(a) => a.to_vec(),
                None => prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 9]),
            };
            self.db
                .iterator_cf(&handle, IteratorMode::From(&start, Direction::Reverse))
        } else {
            let start = after.map(|a| a.to_vec()).unwrap_or_else(|| prefix.to_vec());
            self.db
                .iterator_cf(&handle, IteratorMode::From(&start, Direction::Forward))
        };
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                if reverse && after.is_none() && k.as_ref() >= prefix {
                    // Reverse iteration seeks to the last key <= start, which may be
                    // past the prefix range when start is the range's end.
                    continue;
                }
                break;
            }
            if after.is_some_and(|a| k.as_ref() == a) {
                continue;
            }
            out.push((k.into_vec(), v.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The first and last keys of a column family, if it is not empty.
    pub fn key_bounds(&self, cf: Cf) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let first = self
            .db
            .iterator_cf(&self.handle(cf), IteratorMode::Start)
            .next();
        let Some(first) = first else { return Ok(None) };
        let (first, _) = first?;
        let (last, _) = self
            .db
            .iterator_cf(&self.handle(cf), IteratorMode::End)
            .next()
            .expect("invariant: a non-empty column family has a last key")?;
        Ok(Some((first.into_vec(), last.into_vec())))
    }

    /// Writes the batch atomically; with `sync`, fsyncs before returning.
    pub fn write(&self, batch: Batch, sync: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        for (from, to, cf) in &batch.range_deletes {
            wb.delete_range_cf(&self.handle(*cf), from, to);
        }
        for ((cf, key), value) in &batch.ops {
            let handle = self.handle(*cf);
            match value {
                Some(v) => wb.put_cf(&handle, key, v),
                None => wb.delete_cf(&handle, key),
            }
        }
        if let Some(name) = &batch.switch_state_cf {
            let raft_state = self.handle(Cf::RaftState);
            wb.put_cf(&raft_state, KEY_STATE_CF, name.as_bytes());
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(wb, &opts)?;
        if let Some(name) = batch.switch_state_cf {
            let old = std::mem::replace(
                &mut *self
                    .state_cf
                    .write()
                    .expect("invariant: the state family lock is never poisoned"),
                name,
            );
            // Readers holding the old family's handle keep it alive until done.
            self.db.drop_cf(&old)?;
        }
        Ok(())
    }

    /// Reclaims space of deleted ranges in a column family (after log truncation).
    pub fn compact_range(&self, cf: Cf, from: &[u8], to: &[u8]) {
        self.db
            .compact_range_cf(&self.handle(cf), Some(from), Some(to));
    }

    /// A consistent copy of the whole database in `dir` (hard links; cheap), to ship
    /// as a snapshot while this database moves on.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| StorageError(format!("cannot remove {}: {e}", dir.display())))?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StorageError(format!("cannot create {}: {e}", parent.display())))?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Creates an empty staging family for an incoming snapshot, replacing any
    /// earlier one of the same name. Returns its name.
    pub fn create_staging(&self, index: u64, term: u64) -> Result<String> {
        let name = format!("{STAGING_PREFIX}{index}-{term}");
        if self.db.cf_handle(&name).is_some() {
            self.db.drop_cf(&name)?;
        }
        self.db.create_cf(&name, &cf_options())?;
        Ok(name)
    }

    /// Writes pairs into a staging family (not synced until [`Db::finish_staging`]).
    pub fn write_staging(&self, name: &str, pairs: &[Pair]) -> Result<()> {
        let handle = self
            .db
            .cf_handle(name)
            .ok_or_else(|| StorageError(format!("staging family {name} is gone")))?;
        let mut wb = WriteBatch::default();
        for (k, v) in pairs {
            wb.put_cf(&handle, k, v);
        }
        self.db.write(wb)?;
        Ok(())
    }

    /// Makes a staging family durable.
    pub fn finish_staging(&self, name: &str) -> Result<()> {
        let handle = self
            .db
            .cf_handle(name)
            .ok_or_else(|| StorageError(format!("staging family {name} is gone")))?;
        self.db.flush_cf(&handle)?;
        Ok(())
    }

    /// True when a staging family of that name exists.
    pub fn has_staging(&self, name: &str) -> bool {
        self.db.cf_handle(name).is_some()
    }

    /// Drops a staging family that will not be installed.
    pub fn drop_staging(&self, name: &str) -> Result<()> {
        if self.db.cf_handle(name).is_some() {
            self.db.drop_cf(name)?;
        }
        Ok(())
    }
}

/// Reads the state-machine pairs out of a checkpoint made by [`Db::checkpoint`].
pub struct CheckpointReader {
    db: DB,
    cf: String,
}

impl CheckpointReader {
    pub fn open(dir: &Path) -> Result<CheckpointReader> {
        let opts = Options::default();
        let names = DB::list_cf(&opts, dir)?;
        let db = DB::open_cf_for_read_only(&opts, dir, &names, false)?;
        let raft_state = db
            .cf_handle("raft_state")
            .ok_or_else(|| StorageError("checkpoint without raft_state".into()))?;
        let cf = match db.get_cf(&raft_state, KEY_STATE_CF)? {
            Some(b) => String::from_utf8(b)
                .map_err(|_| StorageError::corrupt("active state family name"))?,
            None => DEFAULT_STATE_CF.to_string(),
        };
        drop(raft_state);
        Ok(CheckpointReader { db, cf })
    }

    /// Calls `each` with consecutive runs of pairs of about `chunk_bytes` each, in key
    /// order; stops at the first error `each` returns.
    pub fn for_each_chunk<E: From<StorageError>>(
        &self,
        chunk_bytes: usize,
        mut each: impl FnMut(Vec<Pair>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let handle = self
            .db
            .cf_handle(&self.cf)
            .ok_or_else(|| StorageError(format!("checkpoint lacks {}", self.cf)))?;
        let mut chunk = Vec::new();
        let mut size = 0;
        for item in self.db.iterator_cf(&handle, IteratorMode::Start) {
            let (k, v) = item.map_err(StorageError::from)?;
            size += k.len() + v.len();
            chunk.push((k.into_vec(), v.into_vec()));
            if size >= chunk_bytes {
                each(std::mem::take(&mut chunk))?;
                size = 0;
            }
        }
        if !chunk.is_empty() {
            each(chunk)?;
        }
        Ok(())
    }
}

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

/// Writes gathered for one atomic [`Db::write`], readable before they are written.
#[derive(Debug, Default)]
pub struct Batch {
    /// When set, the write also makes this staging family the active state family
    /// (and drops the old one once written). `ops` on [`Cf::State`] then go to the
    /// *old* family and are lost with it, so a switching batch must not carry them.
    switch_state_cf: Option<String>,
    /// `None` marks a deletion.
    ops: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    /// `[from, to)` ranges to delete; applied before `ops`. Not visible to reads
    /// through the overlay (only the raft log is range-deleted, and never read back
    /// through a batch).
    range_deletes: Vec<(Vec<u8>, Vec<u8>, Cf)>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.range_deletes.is_empty() && self.switch_state_cf.is_none()
    }

    /// Makes the staging family `name` the state family when this batch is written.
    pub fn switch_state_cf(&mut self, name: String) {
        self.switch_state_cf = Some(name);
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert((cf, key), Some(value));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.insert((cf, key), None);
    }

    /// Deletes every key in `[from, to)`.
    pub fn delete_range(&mut self, cf: Cf, from: Vec<u8>, to: Vec<u8>) {
        self.range_deletes.push((from, to, cf));
    }

    /// Reads `key` as it will be once this batch is written.
    pub fn get(&self, db: &Db, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.ops.get(&(cf, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => db.get(cf, key),
        }
    }

    /// Up to `limit` pairs under `prefix` in key order, as they will be once this batch
    /// is written.
    pub fn scan_prefix(&self, db: &Db, cf: Cf, prefix: &[u8], limit: usize) -> Result<Vec<Pair>> {
        // Read enough from disk to cover keys the overlay deletes.
        let deleted = self
            .overlay_range(cf, prefix)
            .filter(|(_, v)| v.is_none())
            .count();
        let on_disk = db.scan_prefix(cf, prefix, false, None, limit.saturating_add(deleted))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = on_disk.into_iter().collect();
        let disk_complete = merged.len() < limit.saturating_add(deleted);
        let disk_last = merged.keys().next_back().cloned();
        for (key, value) in self.overlay_range(cf, prefix) {
            match value {
                Some(v) => {
                    // An overlay key beyond the last disk key read may hide unread
                    // disk keys between them; keep it only if the disk scan was complete
                    // or the key sorts before the last disk key read.
                    if disk_complete || disk_last.as_ref().is_some_and(|l| key <= l) {
                        merged.insert(key.clone(), v.clone());
                    }
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn overlay_range<'a>(
        &'a self,
        cf: Cf,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        let start = Bound::Included((cf, prefix.to_vec()));
        self.ops
            .range((start, Bound::Unbounded))
            .take_while(move |((c, k), _)| *c == cf && k.starts_with(prefix))
            .map(|((_, k), v)| (k, v))
    }
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
