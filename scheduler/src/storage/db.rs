//! [`Db`]: opening the node's RocksDB, reads, and the one atomic write per batch.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions,
};

use super::*;

/// The node's database.
pub struct Db {
    pub(super) db: DB,
    /// Name of the active state-machine column family.
    pub(super) state_cf: RwLock<String>,
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

    pub(super) fn active_state_cf(&self) -> String {
        self.state_cf
            .read()
            .expect("invariant: the state family lock is never poisoned")
            .clone()
    }

    pub(super) fn handle(&self, cf: Cf) -> Arc<BoundColumnFamily<'_>> {
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
}
