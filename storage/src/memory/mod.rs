//! The in-memory backend: for tests and ephemeral runs. "Durable" here means "in this
//! process's memory": clones share the data, and it is gone when the last one drops.
//! It implements [`Leases`](crate::Leases) too (`leases.rs`), with this process's
//! clock, so code written for workers on a shared store runs in tests without one.

mod leases;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::id::{BlobHash, RunId, Seq};
use crate::leases::{Epoch, Fenced, Refusal, WorkerId};
use crate::store::{
    AppendResult, Batch, Conflict, EventStore, Record, RunInfo, RunStatus, RunSummary,
};
use crate::watch::WatchHub;

#[derive(Debug, Default)]
struct RunLog {
    events: Vec<Bytes>,
    summary: Option<RunSummary>,
    /// Moved on every time the run changes hands.
    epoch: Epoch,
    /// The holder of the run's lease and when it expires.
    lease: Option<(WorkerId, Instant)>,
}

impl RunLog {
    fn running(&self) -> bool {
        self.summary.as_ref().map(|s| s.status) == Some(RunStatus::Running)
    }

    fn leased(&self, now: Instant) -> bool {
        self.lease.as_ref().is_some_and(|(_, until)| *until > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<RunId, RunLog>,
    blobs: HashMap<BlobHash, Bytes>,
}

/// An [`EventStore`] held in memory. Cheap to clone; clones share one store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    hub: WatchHub,
    /// Bumped when a run may have become runnable.
    work: Arc<tokio::sync::watch::Sender<u64>>,
    /// How long this handle's claims last.
    lease_time: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            hub: WatchHub::default(),
            work: Arc::new(tokio::sync::watch::channel(0).0),
            lease_time: Duration::from_secs(5),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the same data whose claims last `lease_time` (default 5 s): what
    /// another worker process would hold.
    #[must_use]
    pub fn with_lease_time(&self, lease_time: Duration) -> Self {
        Self {
            lease_time,
            ..self.clone()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every
        // update is a single insert), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MemoryStore {
    /// The append of both `EventStore::append` and `Leases::append_fenced`: with an
    /// epoch, only while the run is at it.
    fn append_inner(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
        epoch: Option<Epoch>,
    ) -> std::result::Result<Seq, Refusal> {
        let mut inner = self.lock();
        let log = inner.runs.get(&run);
        if let Some(held) = epoch {
            let current = log.map_or(Epoch(0), |l| l.epoch);
            if current != held || log.is_none() {
                return Err(Refusal::Fenced(Fenced { run, held, current }));
            }
        }
        let actual = Seq(log.map_or(0, |l| l.events.len() as u64));
        if actual != expected {
            return Err(Refusal::Conflict(Conflict {
                run,
                expected,
                actual,
            }));
        }
        for blob in batch.blobs {
            inner.blobs.entry(BlobHash::of(&blob)).or_insert(blob);
        }
        let log = inner.runs.entry(run).or_default();
        let records: Vec<Record> = batch
            .events
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| Record {
                seq: expected.plus(i as u64),
                bytes,
            })
            .collect();
        log.events.extend(records.iter().map(|r| r.bytes.clone()));
        let summarized = batch.summary.is_some();
        if summarized {
            log.summary = batch.summary;
        }
        let runnable = summarized && log.running() && !log.leased(Instant::now());
        let next = Seq(log.events.len() as u64);
        drop(inner);
        self.hub.publish(run, records);
        if runnable {
            self.work.send_modify(|n| *n += 1);
        }
        Ok(next)
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = AppendResult> + Send {
        let result = match self.append_inner(run, expected, batch, None) {
            Ok(next) => Ok(Ok(next)),
            Err(Refusal::Conflict(conflict)) => Ok(Err(conflict)),
            // Unfenced appends are never fenced.
            Err(Refusal::Fenced(fenced)) => Err(fenced.into()),
        };
        std::future::ready(result)
    }

    fn read(&self, run: RunId, from: Seq) -> impl Future<Output = Result<Vec<Record>>> + Send {
        let inner = self.lock();
        let records = inner
            .runs
            .get(&run)
            .map(|log| {
                log.events
                    .iter()
                    .enumerate()
                    .skip(from.0.min(usize::MAX as u64) as usize)
                    .map(|(i, bytes)| Record {
                        seq: Seq(i as u64),
                        bytes: bytes.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        std::future::ready(Ok(records))
    }

    fn run_info(&self, run: RunId) -> impl Future<Output = Result<Option<RunInfo>>> + Send {
        let inner = self.lock();
        let info = inner.runs.get(&run).map(|log| RunInfo {
            run,
            next_seq: Seq(log.events.len() as u64),
            summary: log.summary.clone(),
        });
        std::future::ready(Ok(info))
    }

    fn list_runs(&self) -> impl Future<Output = Result<Vec<RunInfo>>> + Send {
        let inner = self.lock();
        let runs = inner
            .runs
            .iter()
            .map(|(run, log)| RunInfo {
                run: *run,
                next_seq: Seq(log.events.len() as u64),
                summary: log.summary.clone(),
            })
            .collect();
        std::future::ready(Ok(runs))
    }

    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Record>> {
        self.hub.watch(self.clone(), run, from)
    }

    fn put_blob(&self, bytes: Bytes) -> impl Future<Output = Result<BlobHash>> + Send {
        let hash = BlobHash::of(&bytes);
        self.lock().blobs.entry(hash).or_insert(bytes);
        std::future::ready(Ok(hash))
    }

    fn get_blob(&self, hash: BlobHash) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        std::future::ready(Ok(self.lock().blobs.get(&hash).cloned()))
    }

    fn delete_run(&self, run: RunId) -> impl Future<Output = Result<bool>> + Send {
        std::future::ready(Ok(self.lock().runs.remove(&run).is_some()))
    }
}
