//! Snapshots at the storage level: checkpoints of the whole database to ship, the
//! staging column families an incoming snapshot is written into, and reading a
//! checkpoint back ([`CheckpointReader`]).

use std::path::Path;

use rocksdb::{IteratorMode, Options, WriteBatch};

use super::*;

impl Db {
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
