//! The sled backend: the default store, a directory on disk (`./.keel`).
//!
//! # Design
//!
//! ```text
//! append ─▶ check expected seq, take LSN ─▶ queue
//! flusher:  take the whole queue ─▶ one write + one fdatasync ─▶ wake its appenders
//!           (a full segment is sealed and the spare renamed in first); the flusher
//!           thread does this, or an appender that finds the log idle (commit::kick)
//! applier:  write durable groups to sled ─▶ publish to watchers
//! checkpointer (sealed segments ≥ half a segment): sled flush + fsync of sled's files ─▶ delete covered segments
//! preparer (when the segment is half full): write the next segment full of zeros ─▶ fsync (the spare)
//! ```
//!
//! Durability comes from a write-ahead log of our own ([`wal`]) in front of sled, not
//! from sled. Measured on this project's machine (ext4 on a shared virtual disk),
//! sled 0.34's `insert` + `flush` costs 0.8× an append + `fdatasync` of a plain file,
//! because it ends in `sync_file_range`: no drive-cache flush and no metadata, so it
//! does not survive a power cut. `fdatasync`ing sled's file after its flush made it
//! durable but cost 1.3–1.7× the floor, above the 1.3× target, and sled's own work
//! (10–40 µs per write on two shared cores) would sit in every append's path. One
//! `fdatasync` of our own log per group costs the floor itself; sled becomes an
//! index written behind the log, off the appender's path, and checkpointed in the
//! background. And since the log's segments are written full of zeros and `fsync`ed
//! before they are used ([`segment`]), a group overwrites allocated blocks and its
//! `fdatasync` has no file size to commit through the journal: less than the floor,
//! which appends to a growing file.
//!
//! Invariants:
//! - A record reaches sled only after it is durable in the log, so sled only ever
//!   holds durable data. Reads, `run_info`, `list_runs` and watches first wait until
//!   sled holds every record acknowledged before they started (usually no wait).
//! - The applier writes each group with plain ordered writes, not a sled batch (whose
//!   `pin_log` writes out and `sync_file_range`s sled's log buffer twice per batch):
//!   blobs, markers and summaries, then event chunks, then the LSN reached
//!   (`m/applied_lsn`). sled recovers a prefix of one thread's writes, so after a
//!   crash it holds every group up to that LSN and perhaps part of the next; on open,
//!   the records above it are replayed, and since records are blind writes whose
//!   keys replay writes again, the result is exact.
//! - Consecutive events of a run applied together share one sled value (a chunk):
//!   under load the applier takes several groups at once, so sled keeps up with the
//!   log. The flusher stops taking new groups while 4096 records wait for sled, so
//!   measured throughput is what sled sustains.
//! - A segment is deleted only after a checkpoint (sled `flush`, then `fsync` of every
//!   file and directory of the tree) covers all of its records.
//! - The expected-seq check and the LSN assignment happen under one mutex, against
//!   sled's state overlaid with the records not yet applied, so of several racers
//!   exactly one wins and a conflict writes nothing.
//! - A failed write or `fdatasync` poisons the store: it can no longer tell what is
//!   durable (after a failed `fsync` Linux may drop the dirty pages). Reopening
//!   recovers from what is on disk.
//!
//! # Durability statement
//!
//! `append`, `put_blob` and `delete_run` return `Ok` only after the record carrying
//! them has been written to the write-ahead log and `fdatasync`ed (and the segment's
//! directory entry `fsync`ed before its first record; a pre-zeroed segment's zeros
//! were `fsync`ed before that, and the previous segment's end before its name). A
//! batch is one checksummed record: after a crash it is replayed whole or, if its
//! write was torn, not at all; a torn record is never followed by an acknowledged
//! one. Records are
//! replayed in log order, which is the order in which appends were checked and
//! acknowledged. A record is given up only once sled's copy of it has been
//! `fsync`ed. Concurrent appends share one `fdatasync` (group commit).

mod commit;
mod keys;
mod lock;
mod open;
mod segment;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::sync::oneshot;

use self::commit::{Apply, KnownRun, Pending, Shared, State, sled_error};
use self::lock::DirLock;
use self::segment::Spares;
use self::wal::Op;
use crate::error::{Error, Result};
use crate::id::{BlobHash, RunId, Seq};
use crate::store::{AppendResult, Batch, Conflict, EventStore, Record, RunInfo};
use crate::watch::WatchHub;

/// Resolves once a queued record is durable (or its flush failed).
type Durable = oneshot::Receiver<Result<()>>;

/// A record's ops and their log payload, encoded before taking the state lock.
struct Encoded {
    ops: Vec<Op>,
    payload: Vec<u8>,
    payload_crc: u32,
}

impl Encoded {
    fn new(ops: Vec<Op>) -> Self {
        let payload = wal::encode_ops(&ops);
        let payload_crc = crc32fast::hash(&payload);
        Self {
            ops,
            payload,
            payload_crc,
        }
    }
}

/// Where a store lives unless told otherwise.
pub const DEFAULT_DIR: &str = ".keel";

/// How a [`SledStore`] is opened. `SledOptions::new(dir).open()`.
#[derive(Debug, Clone)]
pub struct SledOptions {
    dir: PathBuf,
    cache_capacity: u64,
    segment_bytes: u64,
    appender_flushes: bool,
}

impl Default for SledOptions {
    /// The store in `./.keel`.
    fn default() -> Self {
        Self::new(DEFAULT_DIR)
    }
}

impl SledOptions {
    /// A store in `dir` (created if missing) with default settings.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache_capacity: 256 << 20,
            segment_bytes: 32 << 20,
            appender_flushes: true,
        }
    }

    /// sled's page cache size in bytes (default 256 MiB).
    #[must_use]
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// The size at which a write-ahead-log segment is sealed (default 32 MiB); a
    /// checkpoint of sled starts once sealed segments hold half of it. Also the
    /// largest size to which segments are written full of zeros ahead of use (they
    /// start at 1 MiB and double). Smaller means shorter recovery and more frequent
    /// checkpoints.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// Whether a lone appender on a multi-threaded tokio runtime makes its record
    /// durable itself, under `tokio::task::block_in_place`, instead of handing it to
    /// the flusher thread (default: yes; it saves about 12 µs per append). Turn it
    /// off when appending from tasks that `block_in_place` does not support: tasks
    /// spawned on a `LocalSet` running inside a multi-threaded runtime.
    #[must_use]
    pub fn appender_flushes(mut self, yes: bool) -> Self {
        self.appender_flushes = yes;
        self
    }

    /// Opens (or creates) the store. Fails at once with [`Error::Locked`] if another
    /// process holds it.
    pub fn open(self) -> Result<SledStore> {
        SledStore::open_with(self)
    }
}

/// The default [`crate::EventStore`]: sled on disk behind a write-ahead log with group
/// commit. Cheap to clone; clones share one store, which closes (checkpointing sled
/// and releasing the directory) when the last clone and every watch stream are dropped.
///
/// ```no_run
/// use keel_storage::{SledOptions, SledStore};
///
/// # fn demo() -> keel_storage::Result<()> {
/// let store = SledStore::open(".keel")?;
/// // or, with options:
/// # drop(store);
/// let store = SledOptions::new(".keel").cache_capacity(64 << 20).open()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SledStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    hub: WatchHub,
    dir: PathBuf,
    flusher: Option<JoinHandle<()>>,
    applier: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    spares: Arc<Spares>,
    preparer: Option<JoinHandle<()>>,
    // Dropped last: the directory stays ours until sled and the log are closed.
    _lock: DirLock,
}

impl SledStore {
    /// Opens the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        SledOptions::new(dir.as_ref()).open()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn db(&self) -> &::sled::Db {
        &self.inner.shared.db
    }

    /// The run's length as the queue will leave it: `None` if it does not exist.
    fn current_len(&self, state: &State, run: RunId) -> Result<Option<Seq>> {
        if let Some(known) = state.runs.get(&run) {
            return Ok(known.next);
        }
        self.stored_len(run)
    }

    /// The run's length in sled: its last event's seq + 1, or `None` if it does not
    /// exist.
    fn stored_len(&self, run: RunId) -> Result<Option<Seq>> {
        if !self
            .db()
            .contains_key(keys::run_key(run))
            .map_err(sled_error)?
        {
            return Ok(None);
        }
        match self.db().scan_prefix(keys::event_prefix(run)).next_back() {
            None => Ok(Some(Seq::ZERO)),
            Some(entry) => {
                let (key, chunk) = entry.map_err(sled_error)?;
                let first = keys::decode_event_key(run, &key)?;
                Ok(Some(first.plus(keys::chunk_count(run, first, &chunk)?)))
            }
        }
    }

    /// Queues a record (under the state lock) and returns what to wait on.
    fn enqueue(
        state: &mut State,
        record: Encoded,
        run: Option<(RunId, Option<Seq>)>,
        records: Vec<Record>,
    ) -> Durable {
        let Encoded {
            ops,
            payload,
            payload_crc,
        } = record;
        let lsn = state.next_lsn;
        state.next_lsn += 1;
        if let Some((run, next)) = run {
            let known = KnownRun {
                next,
                lsn,
                applied: false,
            };
            state.runs.insert(run, known);
        }
        let (done, wait) = oneshot::channel();
        state.queue.push(Pending {
            lsn,
            payload,
            payload_crc,
            apply: Apply {
                lsn,
                ops,
                run: run.map(|(r, _)| r),
                records,
            },
            done,
        });
        wait
    }

    fn check_open(state: &State) -> Result<()> {
        if let Some(why) = &state.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        if state.shutdown {
            return Err(Error::Closed);
        }
        Ok(())
    }

    async fn wait(wait: Durable) -> Result<()> {
        // The flusher answers every record it takes, even at shutdown or on failure.
        wait.await.map_err(|_| Error::Closed)?
    }

    fn blob_op(&self, blob: Bytes) -> Result<Option<Op>> {
        let key = keys::blob_key(&BlobHash::of(&blob));
        // In sled means durable; a blob only queued is simply written again.
        if self.db().contains_key(key).map_err(sled_error)? {
            return Ok(None);
        }
        Ok(Some(Op::Put {
            key: Bytes::copy_from_slice(&key),
            value: blob,
        }))
    }

    fn prepare_append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> Result<Result<(Durable, Seq), Conflict>> {
        let Batch {
            events,
            blobs,
            summary,
        } = batch;
        let size: usize = events.iter().chain(&blobs).map(Bytes::len).sum();
        if size >= wal::MAX_RECORD - 1024 {
            return Err(Error::Backend(format!(
                "a batch of {size} bytes is too large for one append (the limit is 4 GiB); store large payloads as blobs with put_blob"
            )));
        }
        // Everything costly happens before the lock; a conflict just discards it.
        let next = Seq(expected.0.saturating_add(events.len() as u64));
        let mut ops = Vec::with_capacity(events.len() + blobs.len() + 2);
        for blob in blobs {
            ops.extend(self.blob_op(blob)?);
        }
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| Record {
                seq: Seq(expected.0.saturating_add(i as u64)),
                bytes,
            })
            .collect();
        if !records.is_empty() {
            ops.push(Op::Append {
                run,
                first: expected,
                events: records.iter().map(|r| r.bytes.clone()).collect(),
            });
        }
        if expected == Seq::ZERO {
            ops.push(Op::Put {
                key: Bytes::copy_from_slice(&keys::run_key(run)),
                value: Bytes::from_static(&keys::RUN_MARKER),
            });
        }
        if let Some(summary) = &summary {
            ops.push(Op::Put {
                key: Bytes::copy_from_slice(&keys::summary_key(run)),
                value: Bytes::from(keys::encode_summary(summary)?),
            });
        }
        let record = Encoded::new(ops);

        let shared = &self.inner.shared;
        let mut state = shared.lock();
        Self::check_open(&state)?;
        let actual = self.current_len(&state, run)?.unwrap_or(Seq::ZERO);
        if actual != expected {
            return Ok(Err(Conflict {
                run,
                expected,
                actual,
            }));
        }
        let wait = Self::enqueue(&mut state, record, Some((run, Some(next))), records);
        let alone = state.queue.len() == 1;
        drop(state);
        commit::kick(shared, alone);
        Ok(Ok((wait, next)))
    }
}

impl EventStore for SledStore {
    async fn append(&self, run: RunId, expected: Seq, batch: Batch) -> AppendResult {
        match self.prepare_append(run, expected, batch)? {
            Err(conflict) => Ok(Err(conflict)),
            Ok((wait, next)) => {
                Self::wait(wait).await?;
                Ok(Ok(next))
            }
        }
    }

    async fn read(&self, run: RunId, from: Seq) -> Result<Vec<Record>> {
        self.inner.shared.caught_up().await?;
        let from_key = keys::event_key(run, from);
        // The chunk holding `from` is the last one starting at or before it.
        let start = match self
            .db()
            .range(keys::event_prefix(run).as_slice()..=from_key.as_slice())
            .next_back()
        {
            Some(entry) => entry.map_err(sled_error)?.0,
            None => ::sled::IVec::from(&from_key[..]),
        };
        let end = keys::event_key(run, Seq(u64::MAX));
        let mut records = Vec::new();
        let mut expect = None;
        for entry in self.db().range(start..=::sled::IVec::from(&end[..])) {
            let (key, chunk) = entry.map_err(sled_error)?;
            let first = keys::decode_event_key(run, &key)?;
            if let Some(expect) = expect
                && first != expect
            {
                return Err(Error::Corrupt {
                    run,
                    seq: expect,
                    detail: format!("the event is missing (the next stored one is {first})"),
                });
            }
            let chunk = keys::decode_chunk(run, first, Bytes::copy_from_slice(&chunk))?;
            expect = Some(first.plus(chunk.len() as u64));
            records.extend(chunk.into_iter().filter(|r| r.seq >= from));
        }
        Ok(records)
    }

    async fn run_info(&self, run: RunId) -> Result<Option<RunInfo>> {
        self.inner.shared.caught_up().await?;
        self.info(run)
    }

    async fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs = Vec::new();
        self.inner.shared.caught_up().await?;
        for entry in self.db().scan_prefix(keys::run_key_prefix()) {
            let (key, _) = entry.map_err(sled_error)?;
            // A run deleted since the scan passed it is simply left out.
            runs.extend(self.info(keys::decode_run_key(&key)?)?);
        }
        Ok(runs)
    }

    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        self.inner.hub.watch(self.clone(), run, from)
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobHash> {
        let hash = BlobHash::of(&bytes);
        let Some(op) = self.blob_op(bytes)? else {
            return Ok(hash);
        };
        let record = Encoded::new(vec![op]);
        let (wait, alone) = {
            let shared = &self.inner.shared;
            let mut state = shared.lock();
            Self::check_open(&state)?;
            let wait = Self::enqueue(&mut state, record, None, Vec::new());
            (wait, state.queue.len() == 1)
        };
        commit::kick(&self.inner.shared, alone);
        Self::wait(wait).await?;
        Ok(hash)
    }

    async fn get_blob(&self, hash: BlobHash) -> Result<Option<Bytes>> {
        self.inner.shared.caught_up().await?;
        let value = self.db().get(keys::blob_key(&hash)).map_err(sled_error)?;
        let Some(value) = value else {
            return Ok(None);
        };
        if BlobHash::of(&value) != hash {
            return Err(Error::CorruptMeta {
                what: "blob",
                detail: format!("the bytes stored under {hash} do not hash to it"),
            });
        }
        Ok(Some(Bytes::copy_from_slice(&value)))
    }

    async fn delete_run(&self, run: RunId) -> Result<bool> {
        let record = Encoded::new(vec![
            Op::RemovePrefix {
                prefix: Bytes::copy_from_slice(&keys::event_prefix(run)),
            },
            Op::Remove {
                key: Bytes::copy_from_slice(&keys::run_key(run)),
            },
            Op::Remove {
                key: Bytes::copy_from_slice(&keys::summary_key(run)),
            },
        ]);
        let (wait, alone) = {
            let shared = &self.inner.shared;
            let mut state = shared.lock();
            Self::check_open(&state)?;
            if self.current_len(&state, run)?.is_none() {
                return Ok(false);
            }
            let wait = Self::enqueue(&mut state, record, Some((run, None)), Vec::new());
            (wait, state.queue.len() == 1)
        };
        commit::kick(&self.inner.shared, alone);
        Self::wait(wait).await?;
        Ok(true)
    }
}

impl SledStore {
    fn info(&self, run: RunId) -> Result<Option<RunInfo>> {
        let Some(next_seq) = self.stored_len(run)? else {
            return Ok(None);
        };
        let summary = match self.db().get(keys::summary_key(run)).map_err(sled_error)? {
            Some(v) => Some(keys::decode_summary(run, &v)?),
            None => None,
        };
        Ok(Some(RunInfo {
            run,
            next_seq,
            summary,
        }))
    }
}

#[cfg(test)]
#[path = "sled_tests.rs"]
mod tests;
