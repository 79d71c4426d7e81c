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
//! Deliberately absent: caching (RocksDB's block cache does it), column families per
//! job, and any knowledge of what the bytes mean.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};

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
    const ALL: [Cf; 3] = [Cf::RaftLog, Cf::RaftState, Cf::State];

    fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::State => "state",
        }
    }
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
        // The raft log is fsynced per Ready; RocksDB's own WAL carries it.
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(64 << 20);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Db { db })
    }

    fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("invariant: every column family is created at open")
    }

    /// The value under `key`, if any.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.handle(cf), key)?)
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
        let iter = if reverse {
            let start = match after {
                Some(a) => a.to_vec(),
                None => prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 9]),
            };
            self.db.iterator_cf(
                self.handle(cf),
                IteratorMode::From(&start, Direction::Reverse),
            )
        } else {
            let start = after.map(|a| a.to_vec()).unwrap_or_else(|| prefix.to_vec());
            self.db.iterator_cf(
                self.handle(cf),
                IteratorMode::From(&start, Direction::Forward),
            )
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
            .iterator_cf(self.handle(cf), IteratorMode::Start)
            .next();
        let Some(first) = first else { return Ok(None) };
        let (first, _) = first?;
        let (last, _) = self
            .db
            .iterator_cf(self.handle(cf), IteratorMode::End)
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
            wb.delete_range_cf(self.handle(*cf), from, to);
        }
        for ((cf, key), value) in &batch.ops {
            match value {
                Some(v) => wb.put_cf(self.handle(*cf), key, v),
                None => wb.delete_cf(self.handle(*cf), key),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(wb, &opts)?;
        Ok(())
    }

    /// Reclaims space of deleted ranges in a column family (after log truncation).
    pub fn compact_range(&self, cf: Cf, from: &[u8], to: &[u8]) {
        self.db
            .compact_range_cf(self.handle(cf), Some(from), Some(to));
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
        self.ops.is_empty() && self.range_deletes.is_empty()
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
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
