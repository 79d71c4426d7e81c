//! Raft messages between schedulers over gRPC (`kairos.v1.RaftTransport`).
//!
//! Outbound: one task and one client stream per peer, fed by a bounded queue. The
//! raft thread only ever `try_send`s: a full queue drops the message and reports the
//! peer unreachable (raft then probes it gently and retransmits), so a slow or dead
//! peer never blocks the Ready loop. The task batches whatever is queued into one
//! `RaftBatch`, reconnects with backoff when the stream breaks, and drops what was
//! queued for a dead peer.
//!
//! Snapshots go on their own stream, in chunks read from the checkpoint made by
//! `Storage::snapshot`; the outcome is reported to raft (`report_snapshot`).
//!
//! Inbound (the gRPC service is an adapter in `grpc/`): [`RaftHandle::step_encoded`]
//! for messages, [`SnapshotReceiver`] for snapshot chunks.
//!
//! Addresses come from the [`AddressBook`]: the replicated member list, the
//! `--peers` flag, and the `from_addr` of every batch received.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kairos_proto::internal as ipb;
use kairos_proto::v1 as pb;
use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::log_store::checkpoint_dir;
use super::node::{RaftHandle, Reporter, Transport};
use super::staging_name;
use crate::storage::{CheckpointReader, Db};
use crate::{Error, Result};

/// Messages queued per peer before the transport drops and reports it unreachable.
const PEER_QUEUE: usize = 4096;
/// Messages put in one `RaftBatch` at most.
const MAX_BATCH: usize = 512;
/// Snapshot chunks carry about this many bytes of state.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Peers' gRPC addresses by node id. Cheap to clone; clones share.
#[derive(Debug, Clone, Default)]
pub struct AddressBook(Arc<RwLock<BTreeMap<u64, String>>>);

impl AddressBook {
    pub fn new(initial: BTreeMap<u64, String>) -> AddressBook {
        AddressBook(Arc::new(RwLock::new(initial)))
    }

    pub fn get(&self, id: u64) -> Option<String> {
        self.0
            .read()
            .expect("invariant: address book lock is never poisoned")
            .get(&id)
            .cloned()
    }

    pub fn set(&self, id: u64, addr: String) {
        if addr.is_empty() {
            return;
        }
        let mut map = self
            .0
            .write()
            .expect("invariant: address book lock is never poisoned");
        if map.get(&id) != Some(&addr) {
            info!(node = id, %addr, "peer address learned");
            map.insert(id, addr);
        }
    }

    pub fn all(&self) -> BTreeMap<u64, String> {
        self.0
            .read()
            .expect("invariant: address book lock is never poisoned")
            .clone()
    }
}

/// Why a message from a peer was not stepped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRefused {
    /// Not a raft message.
    Malformed(String),
    /// It claims to come from another node than the one the peer's certificate names.
    NotTheSender(String),
}

/// Decodes a raft message received from a peer.
pub fn decode_message(bytes: &[u8]) -> std::result::Result<Message, String> {
    Message::parse_from_bytes(bytes).map_err(|e| format!("not a raft message: {e}"))
}

impl<O: Send + 'static> RaftHandle<O> {
    /// Steps a message received from a peer, encoded by raft-rs. With `sender` (the
    /// node id the peer's certificate names), a message that claims to come from
    /// another node is refused: a peer speaks for itself only.
    pub fn step_encoded(
        &self,
        bytes: &[u8],
        sender: Option<u64>,
    ) -> std::result::Result<(), StepRefused> {
        let message = decode_message(bytes).map_err(StepRefused::Malformed)?;
        if let Some(id) = sender
            && message.from != id
        {
            return Err(StepRefused::NotTheSender(format!(
                "a raft message from scheduler {} on the stream of scheduler {id}",
                message.from
            )));
        }
        self.step(message);
        Ok(())
    }
}

struct PeerQueue {
    addr: String,
    tx: mpsc::Sender<Message>,
    /// Ends the peer's task, dropping what it still holds.
    stop: CancellationToken,
}

/// The production transport.
pub struct GrpcTransport<O> {
    me: u64,
    my_addr: String,
    book: AddressBook,
    peers: HashMap<u64, PeerQueue>,
    reporter: Reporter<O>,
    runtime: tokio::runtime::Handle,
    snapshot_dir: PathBuf,
    shutdown: CancellationToken,
    /// Plain or TLS with this node's certificate.
    dialer: crate::dial::Dialer,
}

impl<O: Send + 'static> GrpcTransport<O> {
    pub fn new(
        me: u64,
        my_addr: String,
        book: AddressBook,
        reporter: Reporter<O>,
        snapshot_dir: PathBuf,
        shutdown: CancellationToken,
        dialer: crate::dial::Dialer,
    ) -> Self {
        GrpcTransport {
            me,
            my_addr,
            book,
            peers: HashMap::new(),
            reporter,
            runtime: tokio::runtime::Handle::current(),
            snapshot_dir,
            shutdown,
            dialer,
        }
    }

    fn queue_for(&mut self, to: u64) -> Option<&PeerQueue> {
        let addr = self.book.get(to)?;
        let stale = self
            .peers
            .get(&to)
            .is_none_or(|q| q.addr != addr || q.tx.is_closed());
        if stale {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let stop = self.shutdown.child_token();
            self.runtime.spawn(peer_task(
                self.me,
                self.my_addr.clone(),
                to,
                addr.clone(),
                rx,
                self.reporter.clone(),
                stop.clone(),
                self.dialer.clone(),
            ));
            if let Some(old) = self.peers.insert(to, PeerQueue { addr, tx, stop }) {
                old.stop.cancel();
            }
        }
        self.peers.get(&to)
    }

    fn send_snapshot(&mut self, msg: Message) {
        let to = msg.to;
        let Some(addr) = self.book.get(to) else {
            self.reporter.report_snapshot(to, false);
            return;
        };
        let meta = msg.get_snapshot().get_metadata();
        let dir = checkpoint_dir(&self.snapshot_dir, meta.index, meta.term);
        let reporter = self.reporter.clone();
        let (me, my_addr) = (self.me, self.my_addr.clone());
        let dialer = self.dialer.clone();
        self.runtime.spawn(async move {
            let ok = match send_snapshot(&dialer, me, my_addr, &addr, msg, dir).await {
                Ok(bytes) => {
                    info!(to, bytes, "snapshot sent");
                    true
                }
                Err(e) => {
                    warn!(to, error = %e, "snapshot not delivered");
                    false
                }
            };
            reporter.report_snapshot(to, ok);
        });
    }
}

impl<O: Send + 'static> Transport for GrpcTransport<O> {
    fn forget(&mut self, peer: u64) {
        if let Some(q) = self.peers.remove(&peer) {
            q.stop.cancel();
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(m);
                continue;
            }
            let delivered = match self.queue_for(to) {
                Some(q) => q.tx.try_send(m).is_ok(),
                None => {
                    debug!(to, "no address for peer");
                    false
                }
            };
            if !delivered {
                self.reporter.report_unreachable(to);
            }
        }
    }
}

async fn connect(
    dialer: &crate::dial::Dialer,
    addr: &str,
) -> Result<pb::raft_transport_client::RaftTransportClient<tonic::transport::Channel>> {
    let channel = dialer
        .connect(addr, |e| {
            e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("cannot reach {addr}: {e}")))?;
    Ok(pb::raft_transport_client::RaftTransportClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

#[allow(clippy::too_many_arguments)]
async fn peer_task<O: Send + 'static>(
    me: u64,
    my_addr: String,
    to: u64,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    reporter: Reporter<O>,
    shutdown: CancellationToken,
    dialer: crate::dial::Dialer,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut client = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = connect(&dialer, &addr) => match c {
                Ok(c) => c,
                Err(e) => {
                    debug!(to, error = %e, "peer unreachable");
                    // Drop what was queued for it: raft retransmits after probing.
                    while rx.try_recv().is_ok() {}
                    reporter.report_unreachable(to);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let (btx, brx) = mpsc::channel::<pb::RaftBatch>(16);
        let call = client.send(ReceiverStream::new(brx));
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                result = &mut call => {
                    debug!(to, ?result, "raft stream to peer ended");
                    break;
                }
                next = rx.recv() => {
                    let Some(first) = next else { return };
                    let mut messages = vec![first.write_to_bytes().expect("invariant: raft messages encode")];
                    while messages.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => messages.push(m.write_to_bytes().expect("invariant: raft messages encode")),
                            Err(_) => break,
                        }
                    }
                    let batch = pb::RaftBatch { from: me, messages, from_addr: my_addr.clone() };
                    if btx.send(batch).await.is_err() {
                        break;
                    }
                    backoff = Duration::from_millis(50);
                }
            }
        }
        reporter.report_unreachable(to);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Streams the checkpoint at `dir` to `addr`; returns the bytes of state sent.
async fn send_snapshot(
    dialer: &crate::dial::Dialer,
    me: u64,
    my_addr: String,
    addr: &str,
    msg: Message,
    dir: PathBuf,
) -> Result<u64> {
    let mut client = connect(dialer, addr).await?;
    let (tx, rx) = mpsc::channel::<pb::SnapshotChunk>(4);
    let header = pb::SnapshotChunk {
        from: me,
        message: msg
            .write_to_bytes()
            .expect("invariant: raft messages encode"),
        data: Vec::new(),
        last: false,
        from_addr: my_addr,
    };
    let producer = tokio::task::spawn_blocking(move || -> Result<u64> {
        tx.blocking_send(header)
            .map_err(|_| Error::Unavailable("snapshot stream closed".into()))?;
        let reader = CheckpointReader::open(&dir)?;
        let mut sent = 0u64;
        reader.for_each_chunk::<Error>(SNAPSHOT_CHUNK_BYTES, |pairs| {
            let data = ipb::SnapshotPairs {
                pairs: pairs
                    .into_iter()
                    .map(|(key, value)| ipb::KvPair { key, value })
                    .collect(),
            }
            .encode_to_vec();
            sent += data.len() as u64;
            let chunk = pb::SnapshotChunk {
                from: me,
                data,
                ..Default::default()
            };
            tx.blocking_send(chunk)
                .map_err(|_| Error::Unavailable("snapshot stream closed".into()))
        })?;
        tx.blocking_send(pb::SnapshotChunk {
            from: me,
            last: true,
            ..Default::default()
        })
        .map_err(|_| Error::Unavailable("snapshot stream closed".into()))?;
        Ok(sent)
    });
    let call = client.install_snapshot(ReceiverStream::new(rx));
    let (call, produced) = tokio::join!(call, producer);
    call.map_err(|s| Error::Unavailable(format!("peer refused the snapshot: {}", s.message())))?;
    produced.map_err(|e| Error::Internal(format!("snapshot reader: {e}")))?
}

/// Receives one snapshot: stages its chunks, then hands its message to raft.
pub struct SnapshotReceiver {
    db: Arc<Db>,
    staging: String,
    message: Message,
}

impl SnapshotReceiver {
    /// Starts receiving the snapshot announced by `message` (a raft MsgSnapshot).
    pub fn begin(db: Arc<Db>, message: &[u8]) -> std::result::Result<SnapshotReceiver, String> {
        let message = decode_message(message)?;
        if message.get_msg_type() != MessageType::MsgSnapshot {
            return Err("the first chunk must carry a snapshot message".into());
        }
        let meta = message.get_snapshot().get_metadata();
        let staging = staging_name(meta.index, meta.term);
        let created = db
            .create_staging(meta.index, meta.term)
            .map_err(|e| e.to_string())?;
        debug_assert_eq!(created, staging);
        Ok(SnapshotReceiver {
            db,
            staging,
            message,
        })
    }

    /// Stages one chunk of pairs.
    pub fn write(&self, data: &[u8]) -> std::result::Result<(), String> {
        let pairs =
            ipb::SnapshotPairs::decode(data).map_err(|e| format!("bad snapshot chunk: {e}"))?;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            pairs.pairs.into_iter().map(|p| (p.key, p.value)).collect();
        self.db
            .write_staging(&self.staging, &pairs)
            .map_err(|e| e.to_string())
    }

    /// Makes the staged state durable and steps the snapshot message into raft.
    pub fn finish<O: Send + 'static>(
        self,
        handle: &RaftHandle<O>,
    ) -> std::result::Result<(), String> {
        self.db
            .finish_staging(&self.staging)
            .map_err(|e| e.to_string())?;
        handle.step(self.message.clone());
        Ok(())
    }

    /// Drops what was staged (the stream broke).
    pub fn abort(self) {
        if let Err(e) = self.db.drop_staging(&self.staging) {
            warn!(error = %e, "could not drop an abandoned snapshot");
        }
    }
}
