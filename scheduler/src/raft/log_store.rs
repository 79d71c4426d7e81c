//! raft-rs's `Storage` over RocksDB: the log, the hard state, the conf state and
//! the compaction point.
//!
//! Reads go straight to RocksDB, with the few values raft asks for constantly (first
//! and last index, hard and conf state) cached in memory. Writes are *staged* into
//! the caller's [`Batch`] and the cache is updated by [`LogStore::publish`] only after
//! that batch is on disk, so raft never sees an entry as stable before it is.
//!
//! Layout: `raft_log` holds `index (u64 BE) → Entry`; `raft_state` holds `hard_state`,
//! `conf_state` and `compacted` (the index and term of the last entry dropped by
//! compaction, with the conf state at that point).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};

use crate::storage::{Batch, Cf, Db, StorageError};

const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_COMPACTED: &[u8] = b"compacted";

pub(crate) fn log_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

fn decode_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::corrupt(format!("raft log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode<M: protobuf::Message>(what: &str, bytes: &[u8]) -> Result<M, StorageError> {
    M::parse_from_bytes(bytes).map_err(|e| StorageError::corrupt(format!("{what}: {e}")))
}

fn encode<M: protobuf::Message>(m: &M) -> Vec<u8> {
    m.write_to_bytes()
        .expect("invariant: raft messages in memory always encode")
}

#[derive(Debug, Clone, Default)]
struct Cache {
    hard_state: HardState,
    conf_state: ConfState,
    /// The last compacted entry (0, 0 when nothing was compacted).
    compacted: SnapshotMetadata,
    /// Index of the last entry in the log (== compacted.index when the log is empty).
    last_index: u64,
}

/// Changes staged into a batch, to be made visible once the batch is written.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    last_index: Option<u64>,
    hard_state: Option<HardState>,
    conf_state: Option<ConfState>,
    compacted: Option<SnapshotMetadata>,
}

/// The raft log of one node. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    db: Arc<Db>,
    cache: Arc<RwLock<Cache>>,
    /// Where outgoing snapshots are checkpointed.
    snapshot_dir: PathBuf,
    /// The state machine's applied index as persisted (what a snapshot captures).
    applied: Arc<AtomicU64>,
    /// Snapshots made, and the microseconds their checkpoints took (for metrics).
    snapshots_made: Arc<AtomicU64>,
    snapshot_micros: Arc<AtomicU64>,
}

/// Marks a snapshot's data as Kairos's (the state itself travels out of band).
pub(crate) const SNAPSHOT_MARKER: &[u8] = b"kairos-snapshot-v1";

/// The directory an outgoing snapshot at (index, term) is checkpointed to.
pub(crate) fn checkpoint_dir(snapshot_dir: &std::path::Path, index: u64, term: u64) -> PathBuf {
    snapshot_dir.join(format!("out-{index}-{term}"))
}

impl LogStore {
    /// Loads the log's bounds and raft state from disk.
    pub(crate) fn open(
        db: Arc<Db>,
        snapshot_dir: PathBuf,
        applied: Arc<AtomicU64>,
    ) -> Result<LogStore, StorageError> {
        let hard_state = match db.get(Cf::RaftState, KEY_HARD_STATE)? {
            Some(b) => decode("hard state", &b)?,
            None => HardState::default(),
        };
        let conf_state = match db.get(Cf::RaftState, KEY_CONF_STATE)? {
            Some(b) => decode("conf state", &b)?,
            None => ConfState::default(),
        };
        let compacted = match db.get(Cf::RaftState, KEY_COMPACTED)? {
            Some(b) => decode("compaction point", &b)?,
            None => SnapshotMetadata::default(),
        };
        let last_index = match db.key_bounds(Cf::RaftLog)? {
            Some((_, last)) => decode_index(&last)?,
            None => compacted.index,
        };
        let cache = Cache {
            hard_state,
            conf_state,
            compacted,
            last_index,
        };
        Ok(LogStore {
            db,
            cache: Arc::new(RwLock::new(cache)),
            snapshot_dir,
            applied,
            snapshots_made: Arc::default(),
            snapshot_micros: Arc::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache
            .read()
            .expect("invariant: log cache lock is never poisoned")
    }

    /// True when nothing was ever persisted (a brand-new node).
    pub(crate) fn is_empty(&self) -> bool {
        let c = self.read();
        c.conf_state.voters.is_empty() && c.conf_state.learners.is_empty() && c.last_index == 0
    }

    pub(crate) fn hard_state(&self) -> HardState {
        self.read().hard_state.clone()
    }

    pub(crate) fn conf_state(&self) -> ConfState {
        self.read().conf_state.clone()
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.read().last_index
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.read().compacted.index + 1
    }

    /// Stages appending `entries`, replacing any conflicting suffix of the log.
    pub(crate) fn stage_entries(&self, batch: &mut Batch, entries: &[Entry], staged: &mut Staged) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let old_last = staged.last_index.unwrap_or_else(|| self.last_index());
        for e in entries {
            batch.put(Cf::RaftLog, log_key(e.index), encode(e));
        }
        // Entries after the new last one belong to a superseded leader: drop them.
        if last.index < old_last {
            batch.delete_range(Cf::RaftLog, log_key(last.index + 1), log_key(old_last + 1));
        }
        debug_assert!(first.index <= old_last + 1, "raft appends without gaps");
        staged.last_index = Some(last.index);
    }

    pub(crate) fn stage_hard_state(&self, batch: &mut Batch, hs: &HardState, staged: &mut Staged) {
        batch.put(Cf::RaftState, KEY_HARD_STATE.to_vec(), encode(hs));
        staged.hard_state = Some(hs.clone());
    }

    /// Stages a new commit index into the hard state.
    pub(crate) fn stage_commit(&self, batch: &mut Batch, commit: u64, staged: &mut Staged) {
        let mut hs = staged
            .hard_state
            .clone()
            .unwrap_or_else(|| self.hard_state());
        hs.commit = commit;
        self.stage_hard_state(batch, &hs, staged);
    }

    pub(crate) fn stage_conf_state(&self, batch: &mut Batch, cs: &ConfState, staged: &mut Staged) {
        batch.put(Cf::RaftState, KEY_CONF_STATE.to_vec(), encode(cs));
        staged.conf_state = Some(cs.clone());
    }

    /// Stages installing a snapshot: it becomes the compaction point, the whole log
    /// is dropped, and membership and commit follow the snapshot.
    pub(crate) fn stage_snapshot(
        &self,
        batch: &mut Batch,
        meta: &SnapshotMetadata,
        staged: &mut Staged,
    ) {
        let last = staged.last_index.unwrap_or_else(|| self.last_index());
        let first = self.first_index();
        if last >= first {
            batch.delete_range(Cf::RaftLog, log_key(first), log_key(last + 1));
        }
        let compacted = SnapshotMetadata {
            index: meta.index,
            term: meta.term,
            ..Default::default()
        };
        batch.put(Cf::RaftState, KEY_COMPACTED.to_vec(), encode(&compacted));
        staged.compacted = Some(compacted);
        staged.last_index = Some(meta.index);
        self.stage_conf_state(batch, meta.get_conf_state(), staged);
        let mut hs = staged
            .hard_state
            .clone()
            .unwrap_or_else(|| self.hard_state());
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        self.stage_hard_state(batch, &hs, staged);
    }

    /// Stages dropping every entry up to and including `to` (which must be applied).
    pub(crate) fn stage_compaction(
        &self,
        batch: &mut Batch,
        to: u64,
        staged: &mut Staged,
    ) -> Result<(), StorageError> {
        let first = self.first_index();
        if to < first {
            return Ok(());
        }
        let term = self.entry(to)?.map(|e| e.term).ok_or_else(|| {
            StorageError::corrupt(format!("compaction point {to} missing from the log"))
        })?;
        batch.delete_range(Cf::RaftLog, log_key(first), log_key(to + 1));
        let compacted = SnapshotMetadata {
            index: to,
            term,
            ..Default::default()
        };
        batch.put(Cf::RaftState, KEY_COMPACTED.to_vec(), encode(&compacted));
        staged.compacted = Some(compacted);
        Ok(())
    }

    /// Makes staged changes visible; call only after their batch was written.
    pub(crate) fn publish(&self, staged: Staged) {
        let mut c = self
            .cache
            .write()
            .expect("invariant: log cache lock is never poisoned");
        if let Some(last) = staged.last_index {
            c.last_index = last;
        }
        if let Some(hs) = staged.hard_state {
            c.hard_state = hs;
        }
        if let Some(cs) = staged.conf_state {
            c.conf_state = cs;
        }
        if let Some(meta) = staged.compacted {
            c.compacted = meta;
        }
    }

    fn entry(&self, index: u64) -> Result<Option<Entry>, StorageError> {
        match self.db.get(Cf::RaftLog, &log_key(index))? {
            Some(b) => Ok(Some(decode("raft log entry", &b)?)),
            None => Ok(None),
        }
    }

    fn to_raft_error(e: StorageError) -> raft::Error {
        raft::Error::Store(RaftStorageError::Other(Box::new(e)))
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.read();
        Ok(RaftState::new(c.hard_state.clone(), c.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let (first, last) = {
            let c = self.read();
            (c.compacted.index + 1, c.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > last + 1 {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let max_size = max_size.into();
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let entry = self
                .entry(index)
                .map_err(Self::to_raft_error)?
                .ok_or(raft::Error::Store(RaftStorageError::Unavailable))?;
            size += u64::from(entry.compute_size());
            // raft-rs's rule: always return at least one entry.
            if !out.is_empty() && max_size.is_some_and(|max| size > max) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let (compacted, last) = {
            let c = self.read();
            (c.compacted.clone(), c.last_index)
        };
        if idx == compacted.index {
            return Ok(compacted.term);
        }
        if idx < compacted.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if idx > last {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        match self.entry(idx).map_err(Self::to_raft_error)? {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(RaftStorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(LogStore::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Called on the raft thread between Readies, when the state machine on disk is
        // exactly at `applied`.
        let index = self.applied.load(Ordering::Acquire);
        if index == 0 || index < request_index {
            return Err(raft::Error::Store(
                RaftStorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let term = self.term(index)?;
        let dir = checkpoint_dir(&self.snapshot_dir, index, term);
        if !dir.exists() {
            let started = std::time::Instant::now();
            self.db.checkpoint(&dir).map_err(Self::to_raft_error)?;
            self.remove_old_checkpoints(index);
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.snapshot_micros.fetch_add(micros, Ordering::Relaxed);
            self.snapshots_made.fetch_add(1, Ordering::Relaxed);
        }
        let mut snapshot = Snapshot {
            data: SNAPSHOT_MARKER.to_vec().into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state());
        Ok(snapshot)
    }
}

impl LogStore {
    /// Snapshots made so far and the microseconds they took.
    pub(crate) fn snapshots_made(&self) -> (u64, u64) {
        (
            self.snapshots_made.load(Ordering::Relaxed),
            self.snapshot_micros.load(Ordering::Relaxed),
        )
    }

    /// Keeps the newest few checkpoints (transfers may still read them).
    fn remove_old_checkpoints(&self, newest: u64) {
        let Ok(entries) = std::fs::read_dir(&self.snapshot_dir) else {
            return;
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let index: u64 = name.strip_prefix("out-")?.split('-').next()?.parse().ok()?;
                Some((index, e.path()))
            })
            .filter(|(i, _)| *i != newest)
            .collect();
        found.sort();
        let keep = 2;
        let excess = found.len().saturating_sub(keep);
        for (_, path) in found.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn open_store(db: &Arc<Db>) -> LogStore {
        let dir = std::env::temp_dir().join("kairos-unused-snapshots");
        LogStore::open(db.clone(), dir, Arc::new(AtomicU64::new(0))).unwrap()
    }

    fn write(store: &LogStore, db: &Db, entries: &[Entry]) {
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        store.stage_entries(&mut batch, entries, &mut staged);
        db.write(batch, true).unwrap();
        store.publish(staged);
    }

    #[test]
    fn append_read_and_truncate_conflicting_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let store = open_store(&db);
        assert!(store.is_empty());
        write(&store, &db, &[entry(1, 1), entry(2, 1), entry(3, 1)]);
        assert_eq!(Storage::last_index(&store).unwrap(), 3);
        assert_eq!(store.term(2).unwrap(), 1);
        // A new leader overwrites from index 2.
        write(&store, &db, &[entry(2, 2)]);
        assert_eq!(Storage::last_index(&store).unwrap(), 2);
        assert_eq!(store.term(2).unwrap(), 2);
        assert!(store.term(3).is_err());
        let got = store
            .entries(1, 3, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            got.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );

        // Reopen: bounds and contents come back from disk.
        drop(store);
        let store = open_store(&db);
        assert_eq!(Storage::last_index(&store).unwrap(), 2);
        assert_eq!(Storage::first_index(&store).unwrap(), 1);
        assert!(
            store
                .entries(1, 4, None, GetEntriesContext::empty(false))
                .is_err()
        );
    }

    #[test]
    fn entries_respects_max_size_but_returns_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let store = open_store(&db);
        write(&store, &db, &[entry(1, 1), entry(2, 1), entry(3, 1)]);
        let got = store
            .entries(1, 4, Some(1), GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn hard_state_commit_is_staged_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let store = open_store(&db);
        let mut batch = Batch::new();
        let mut staged = Staged::default();
        let hs = HardState {
            term: 3,
            vote: 1,
            ..Default::default()
        };
        store.stage_hard_state(&mut batch, &hs, &mut staged);
        store.stage_commit(&mut batch, 7, &mut staged);
        assert_eq!(store.hard_state().term, 0);
        db.write(batch, true).unwrap();
        store.publish(staged);
        let reopened = open_store(&db);
        let hs = reopened.hard_state();
        assert_eq!((hs.term, hs.vote, hs.commit), (3, 1, 7));
    }
}
