//! Live output of running executions, on the leader.
//!
//! Executors send what a run prints as it prints it (`ExecutionOutput`); the leader
//! keeps, per running execution, the recent tail (capped like stored output) and fans
//! new chunks out to `TailOutput` followers. This is soft state, like the executor
//! registry: a new leader starts empty and fills as executors stream again. When the
//! execution ends, its stored output (in the state machine) is the record, and the
//! live buffer is dropped.
//!
//! Bounded everywhere: the tail keeps at most `max_bytes`; each follower has a bounded
//! channel and one that falls behind loses chunks (it is told), never slowing the
//! executor's stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Chunks buffered per follower before it misses some.
const FOLLOWER_BUFFER: usize = 256;

/// One running execution's output.
pub struct LiveOutput {
    tail: Mutex<String>,
    max_bytes: usize,
    tx: broadcast::Sender<Arc<str>>,
}

impl std::fmt::Debug for LiveOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOutput").finish_non_exhaustive()
    }
}

impl LiveOutput {
    fn push(&self, data: &str) {
        let mut tail = self
            .tail
            .lock()
            .expect("invariant: live lock is never poisoned");
        tail.push_str(data);
        if tail.len() > self.max_bytes {
            let mut cut = tail.len() - self.max_bytes;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
        drop(tail);
        let _ = self.tx.send(Arc::from(data));
    }

    /// The tail so far and a receiver for what comes next (no gap between them).
    pub fn follow(&self) -> (String, broadcast::Receiver<Arc<str>>) {
        let tail = self
            .tail
            .lock()
            .expect("invariant: live lock is never poisoned");
        let rx = self.tx.subscribe();
        (tail.clone(), rx)
    }
}

/// Live outputs by execution id.
#[derive(Debug, Default)]
pub struct LiveOutputs {
    runs: Mutex<HashMap<u64, Arc<LiveOutput>>>,
}

impl LiveOutputs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveOutput>>> {
        self.runs
            .lock()
            .expect("invariant: live lock is never poisoned")
    }

    /// Appends a chunk of an execution's output.
    pub fn push(&self, id: u64, data: &str, max_bytes: usize) {
        // Taken out of the map first: the map's lock is not held while pushing.
        let run = self.get_or_create(id, max_bytes);
        run.push(data);
    }

    /// The live output of a running execution, creating an empty one to follow.
    pub fn get_or_create(&self, id: u64, max_bytes: usize) -> Arc<LiveOutput> {
        self.lock()
            .entry(id)
            .or_insert_with(|| {
                Arc::new(LiveOutput {
                    tail: Mutex::new(String::new()),
                    max_bytes: max_bytes.max(1),
                    tx: broadcast::channel(FOLLOWER_BUFFER).0,
                })
            })
            .clone()
    }

    /// Drops an ended execution's buffer; its followers see the end of the stream.
    pub fn end(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Drops everything (this node stopped leading).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_capped_and_followers_get_what_comes_after_it() {
        let live = LiveOutputs::default();
        live.push(7, "line 1\n", 10);
        let run = live.get_or_create(7, 10);
        let (tail, mut rx) = run.follow();
        assert_eq!(tail, "line 1\n");
        live.push(7, "line 2\n", 10);
        assert_eq!(&*rx.try_recv().unwrap(), "line 2\n");
        let (tail, _) = run.follow();
        assert_eq!(tail, " 1\nline 2\n", "only the last 10 bytes are kept");
        live.end(7);
        drop(run);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let live = LiveOutputs::default();
        live.push(1, "ééééé", 5);
        let (tail, _) = live.get_or_create(1, 5).follow();
        assert!(
            tail.len() <= 5 && tail.chars().all(|c| c == 'é'),
            "{tail:?}"
        );
    }
}
