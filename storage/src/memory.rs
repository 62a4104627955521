//! The in-memory backend: for tests and ephemeral runs. "Durable" here means "in this
//! process's memory": clones share the data, and it is gone when the last one drops.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::id::{BlobHash, RunId, Seq};
use crate::store::{AppendResult, Batch, Conflict, EventStore, Record, RunInfo, RunSummary};
use crate::watch::WatchHub;

#[derive(Debug, Default)]
struct RunLog {
    events: Vec<Bytes>,
    summary: Option<RunSummary>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<RunId, RunLog>,
    blobs: HashMap<BlobHash, Bytes>,
}

/// An [`EventStore`] held in memory. Cheap to clone; clones share one store.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    hub: WatchHub,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every
        // update is a single insert), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        run: RunId,
        expected: Seq,
        batch: Batch,
    ) -> impl Future<Output = AppendResult> + Send {
        let result = {
            let mut inner = self.lock();
            let actual = Seq(inner.runs.get(&run).map_or(0, |l| l.events.len() as u64));
            if actual != expected {
                Ok(Err(Conflict {
                    run,
                    expected,
                    actual,
                }))
            } else {
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
                if batch.summary.is_some() {
                    log.summary = batch.summary;
                }
                let next = Seq(log.events.len() as u64);
                drop(inner);
                self.hub.publish(run, records);
                Ok(Ok(next))
            }
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
