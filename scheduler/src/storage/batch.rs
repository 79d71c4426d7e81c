//! [`Batch`]: the writes of one atomic [`Db::write`], readable before they are
//! written (the overlay the state machine applies several entries through).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::*;

/// Writes gathered for one atomic [`Db::write`], readable before they are written.
#[derive(Debug, Default)]
pub struct Batch {
    /// When set, the write also makes this staging family the active state family
    /// (and drops the old one once written). `ops` on [`Cf::State`] then go to the
    /// *old* family and are lost with it, so a switching batch must not carry them.
    pub(super) switch_state_cf: Option<String>,
    /// `None` marks a deletion.
    pub(super) ops: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    /// `[from, to)` ranges to delete; applied before `ops`. Not visible to reads
    /// through the overlay (only the raft log is range-deleted, and never read back
    /// through a batch).
    pub(super) range_deletes: Vec<(Vec<u8>, Vec<u8>, Cf)>,
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
