//! The `EventStore` trait, the records it keeps, and an object-safe wrapper.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::{BlobHash, RunId, Seq, Timestamp};

/// One stored event: its position and its encoded bytes (the engine's envelope).
///
/// The store never looks inside `bytes`; it returns them exactly as appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the run's log.
    pub seq: Seq,
    /// The encoded event, byte-for-byte as appended.
    pub bytes: Bytes,
}

/// Where a run stands, as last reported by its writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    /// Being executed, or interrupted by a crash while being executed.
    Running,
    /// Waiting for a person (an approval or a question). Holds no resources.
    Suspended,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// Completed, failed or cancelled: nothing more will be appended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The lowercase name used in the CLI and the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Suspended => "suspended",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `keel runs` shows of a run. Written by the run's writer with its appends, so
/// listing runs never decodes their logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The agent's id.
    pub agent: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// When the run started.
    pub created_at: Timestamp,
    /// When the run last changed.
    pub updated_at: Timestamp,
    /// LLM responses recorded so far.
    pub turns: u32,
    /// Input tokens over all turns (cache reads and writes included).
    pub input_tokens: u64,
    /// Output tokens over all turns.
    pub output_tokens: u64,
    /// The run this one was forked from, and the length of the prefix it took.
    pub parent: Option<(RunId, Seq)>,
    /// A one-line preview of the run's input.
    pub title: String,
}

/// A run as listed: its id, how long its log is, and its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// The run.
    pub run: RunId,
    /// The seq the next appended event will get (the log's length).
    pub next_seq: Seq,
    /// The latest summary written with an append, if any was.
    pub summary: Option<RunSummary>,
}

/// What one `append` writes, atomically: events, the blobs they reference, and
/// optionally a new summary of the run.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Encoded events, given seqs `expected, expected + 1, …`.
    pub events: Vec<Bytes>,
    /// Blobs written in the same atomic step (content-addressed; duplicates are free).
    pub blobs: Vec<Bytes>,
    /// Replaces the run's summary when present.
    pub summary: Option<RunSummary>,
}

impl Batch {
    /// A batch of events and nothing else.
    pub fn events(events: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            events: events.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Adds a summary to write with the events.
    #[must_use]
    pub fn with_summary(mut self, summary: RunSummary) -> Self {
        self.summary = Some(summary);
        self
    }

    /// Adds blobs to write with the events.
    #[must_use]
    pub fn with_blobs(mut self, blobs: impl IntoIterator<Item = Bytes>) -> Self {
        self.blobs.extend(blobs);
        self
    }
}

/// The expected seq of an append did not match the log: another writer got there
/// first. Nothing was written. This is an expected outcome, not a store failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("append to run {run} expected next seq {expected} but the log is at {actual}")]
pub struct Conflict {
    /// The run.
    pub run: RunId,
    /// The seq the writer expected to write next.
    pub expected: Seq,
    /// The seq the log is actually at (its length).
    pub actual: Seq,
}

/// The result of an append: the outer `Result` is a store failure, the inner one
/// a [`Conflict`]. On success, the log's new length.
pub type AppendResult = Result<std::result::Result<Seq, Conflict>>;

/// An append-only event log per run, plus a content-addressed blob space.
///
/// # Durability
///
/// `append` returns `Ok(Ok(_))` only after its events, blobs and summary would
/// survive a power cut: they have been written and flushed (`fsync`/`fdatasync`) to
/// stable storage. A batch is atomic: after a crash either all of it is present or
/// none of it. Appends are durable in the order they were acknowledged, so a
/// recovered log is always a prefix-closed sequence `0..n` with no gap and no torn
/// record. Concurrent appends (to any runs) may share one flush — group commit — so
/// throughput grows with concurrency while each acknowledged append stays durable.
/// `put_blob` is durable when it returns, too.
///
/// # Concurrency
///
/// `append` is a compare-and-set on the log's length: it writes only if `expected`
/// equals the run's next seq, and otherwise returns a [`Conflict`] and writes
/// nothing. Of several writers racing to append the same seq, exactly one wins.
///
/// # Watching
///
/// `watch` yields the run's records from a seq on — those already stored, then each
/// new one once it is durable — in seq order, with no gap and no duplicate.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `batch` to `run` if the log's length is `expected` (`Seq::ZERO` creates
    /// the run). Returns the new length, or a [`Conflict`].
    fn append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = AppendResult> + Send;

    /// The run's records with `seq >= from`, in order. Empty for an unknown run.
    fn read(&self, run: RunId, from: Seq) -> impl Future<Output = Result<Vec<Record>>> + Send;

    /// The run's length and summary, or `None` for an unknown run.
    fn run_info(&self, run: RunId) -> impl Future<Output = Result<Option<RunInfo>>> + Send;

    /// Every run, oldest first.
    fn list_runs(&self) -> impl Future<Output = Result<Vec<RunInfo>>> + Send;

    /// The run's records from `from` on: the stored ones, then new ones as they
    /// become durable. The stream ends only when dropped or on a store error.
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>>;

    /// Stores `bytes` under their hash, durably, and returns the hash.
    fn put_blob(&self, bytes: Bytes) -> impl Future<Output = Result<BlobHash>> + Send;

    /// The blob with this hash, if stored.
    fn get_blob(&self, hash: BlobHash) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Deletes a run's events and summary, durably. Returns whether it existed. Blobs
    /// are shared between runs and are kept.
    fn delete_run(&self, run: RunId) -> impl Future<Output = Result<bool>> + Send;
}

/// The object-safe form of [`EventStore`], for holding any backend behind one type.
/// Every `EventStore` is a `DynEventStore`; use [`SharedStore`] to hold one.
pub trait DynEventStore: Send + Sync + 'static {
    /// See [`EventStore::append`].
    fn append_dyn(&self, run: RunId, expected: Seq, batch: Batch) -> BoxFuture<'_, AppendResult>;
    /// See [`EventStore::read`].
    fn read_dyn(&self, run: RunId, from: Seq) -> BoxFuture<'_, Result<Vec<Record>>>;
    /// See [`EventStore::run_info`].
    fn run_info_dyn(&self, run: RunId) -> BoxFuture<'_, Result<Option<RunInfo>>>;
    /// See [`EventStore::list_runs`].
    fn list_runs_dyn(&self) -> BoxFuture<'_, Result<Vec<RunInfo>>>;
    /// See [`EventStore::watch`].
    fn watch_dyn(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>>;
    /// See [`EventStore::put_blob`].
    fn put_blob_dyn(&self, bytes: Bytes) -> BoxFuture<'_, Result<BlobHash>>;
    /// See [`EventStore::get_blob`].
    fn get_blob_dyn(&self, hash: BlobHash) -> BoxFuture<'_, Result<Option<Bytes>>>;
    /// See [`EventStore::delete_run`].
    fn delete_run_dyn(&self, run: RunId) -> BoxFuture<'_, Result<bool>>;
}

impl<S: EventStore> DynEventStore for S {
    fn append_dyn(&self, run: RunId, expected: Seq, batch: Batch) -> BoxFuture<'_, AppendResult> {
        Box::pin(self.append(run, expected, batch))
    }
    fn read_dyn(&self, run: RunId, from: Seq) -> BoxFuture<'_, Result<Vec<Record>>> {
        Box::pin(self.read(run, from))
    }
    fn run_info_dyn(&self, run: RunId) -> BoxFuture<'_, Result<Option<RunInfo>>> {
        Box::pin(self.run_info(run))
    }
    fn list_runs_dyn(&self) -> BoxFuture<'_, Result<Vec<RunInfo>>> {
        Box::pin(self.list_runs())
    }
    fn watch_dyn(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        self.watch(run, from)
    }
    fn put_blob_dyn(&self, bytes: Bytes) -> BoxFuture<'_, Result<BlobHash>> {
        Box::pin(self.put_blob(bytes))
    }
    fn get_blob_dyn(&self, hash: BlobHash) -> BoxFuture<'_, Result<Option<Bytes>>> {
        Box::pin(self.get_blob(hash))
    }
    fn delete_run_dyn(&self, run: RunId) -> BoxFuture<'_, Result<bool>> {
        Box::pin(self.delete_run(run))
    }
}

/// Any backend behind one cheap-to-clone handle. Itself an [`EventStore`], so code
/// written against the trait takes it, and wrappers (fault injection, metrics) can
/// wrap it.
#[derive(Clone)]
pub struct SharedStore(Arc<dyn DynEventStore>);

impl SharedStore {
    /// Wraps a backend.
    pub fn new(store: impl EventStore) -> Self {
        Self(Arc::new(store))
    }
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

impl EventStore for SharedStore {
    fn append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = AppendResult> + Send {
        self.0.append_dyn(run, expected, batch)
    }
    fn read(&self, run: RunId, from: Seq) -> impl Future<Output = Result<Vec<Record>>> + Send {
        self.0.read_dyn(run, from)
    }
    fn run_info(&self, run: RunId) -> impl Future<Output = Result<Option<RunInfo>>> + Send {
        self.0.run_info_dyn(run)
    }
    fn list_runs(&self) -> impl Future<Output = Result<Vec<RunInfo>>> + Send {
        self.0.list_runs_dyn()
    }
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        self.0.watch_dyn(run, from)
    }
    fn put_blob(&self, bytes: Bytes) -> impl Future<Output = Result<BlobHash>> + Send {
        self.0.put_blob_dyn(bytes)
    }
    fn get_blob(&self, hash: BlobHash) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.0.get_blob_dyn(hash)
    }
    fn delete_run(&self, run: RunId) -> impl Future<Output = Result<bool>> + Send {
        self.0.delete_run_dyn(run)
    }
}
