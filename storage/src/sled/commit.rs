//! Group commit: the queue of prepared records, the flusher thread that makes them
//! durable with one `fdatasync` per group and then applies them to sled, and the
//! checkpoints that let old log segments go.
//!
//! An appender checks its expected seq and takes the next LSN under one mutex, so the
//! queue's order is the log's order; it then waits. The flusher takes everything
//! queued so far, writes it with one `write`, syncs once, applies the whole group to
//! sled as one batch, tells the watchers, and wakes the appenders. Appends that
//! arrive during a flush form the next group. sled only ever holds durable records,
//! so readers never see an event that a power cut could take back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::keys;
use super::wal::{self, Op, Sealed, Wal};
use crate::error::{Error, Result};
use crate::id::{RunId, Seq};
use crate::store::Record;
use crate::watch::WatchHub;

/// A record waiting for the next flush.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
    pub(crate) payload_crc: u32,
    pub(crate) ops: Vec<Op>,
    /// The run whose length this record changes, if any.
    pub(crate) run: Option<RunId>,
    /// What watchers of `run` get once the record is durable.
    pub(crate) records: Vec<Record>,
    pub(crate) done: oneshot::Sender<Result<()>>,
}

/// A run's state as changed by records not yet applied to sled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingRun {
    /// The run's length once those records are durable; `None` if deleted.
    pub(crate) next: Option<Seq>,
    /// The last record that changed it.
    pub(crate) lsn: u64,
}

/// What appenders and the flusher share, under one mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) queue: Vec<Pending>,
    pub(crate) runs: HashMap<RunId, PendingRun>,
    pub(crate) next_lsn: u64,
    pub(crate) poisoned: Option<String>,
    pub(crate) shutdown: bool,
}

/// The parts of a store its threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    pub(crate) sled_dir: PathBuf,
    pub(crate) segment_bytes: u64,
    pub(crate) state: Mutex<State>,
    /// Wakes the flusher when the queue gains a record or the store shuts down.
    pub(crate) work: Condvar,
    /// The last LSN applied to sled (and so durable).
    pub(crate) applied: AtomicU64,
    /// Finished segments, deleted once a checkpoint covers them.
    pub(crate) sealed: Mutex<Vec<Sealed>>,
    /// Whether the checkpointer has work (or should stop), and its wake-up.
    pub(crate) checkpoint_due: Mutex<CheckpointSignal>,
    pub(crate) checkpoint_wake: Condvar,
}

/// Tells the checkpointer what to do next.
#[derive(Debug, Default)]
pub(crate) struct CheckpointSignal {
    pub(crate) due: bool,
    pub(crate) stop: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves `State` consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sealed(&self) -> MutexGuard<'_, Vec<Sealed>> {
        self.sealed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Maps a sled failure to ours.
pub(crate) fn sled_error(err: sled::Error) -> Error {
    match err {
        sled::Error::Io(e) => Error::from_io(e),
        sled::Error::Corruption { at, .. } => Error::CorruptMeta {
            what: "sled tree",
            detail: format!("sled found corrupt data at {at:?}"),
        },
        other => Error::Backend(other.to_string()),
    }
}

/// A copy of an I/O error for each waiter of a failed group (`io::Error` is not
/// `Clone`); keeps the kind, so a full disk is still reported as one.
fn replicate(err: &std::io::Error) -> Error {
    Error::from_io(std::io::Error::new(err.kind(), err.to_string()))
}

/// Applies records to sled as one atomic batch, together with the LSN they reach.
pub(crate) fn apply_ops<'a>(
    db: &sled::Db,
    ops: impl IntoIterator<Item = &'a Op>,
    last_lsn: u64,
) -> Result<()> {
    // Later writes to a key win, as they would applied one by one.
    let mut writes: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put { key, value } => {
                writes.insert(key.clone(), Some(value.clone()));
            }
            Op::Remove { key } => {
                writes.insert(key.clone(), None);
            }
            Op::RemovePrefix { prefix } => {
                for (_, value) in writes
                    .range_mut(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                {
                    *value = None;
                }
                for entry in db.scan_prefix(prefix) {
                    let (key, _) = entry.map_err(sled_error)?;
                    writes.insert(Bytes::copy_from_slice(&key), None);
                }
            }
        }
    }
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(&key[..], &value[..]),
            None => batch.remove(&key[..]),
        }
    }
    batch.insert(keys::APPLIED_LSN, &last_lsn.to_be_bytes());
    db.apply_batch(batch).map_err(sled_error)
}

/// Makes sled's state up to now durable, then deletes the segments it covers.
///
/// sled's own `flush` ends in `sync_file_range`, which neither flushes the drive's
/// cache nor the file's metadata, and it writes large values to files it never syncs;
/// so after it, every file and directory of the tree is `fsync`ed before a segment
/// is given up.
pub(crate) fn checkpoint(shared: &Shared) -> Result<u64> {
    let applied = shared.applied.load(Ordering::Acquire);
    shared.db.flush().map_err(sled_error)?;
    sync_tree(&shared.sled_dir).map_err(Error::from_io)?;
    let mut sealed = shared.lock_sealed();
    let mut kept = Vec::with_capacity(sealed.len());
    let mut dir = None;
    for segment in sealed.drain(..) {
        if segment.last_lsn <= applied {
            wal::remove_if_present(&segment.path).map_err(Error::from_io)?;
            dir = segment.path.parent().map(Path::to_path_buf);
        } else {
            kept.push(segment);
        }
    }
    *sealed = kept;
    drop(sealed);
    // Not needed for safety (replay skips what sled has), only to free the names.
    if let Some(dir) = dir {
        wal::sync_dir(&dir).map_err(Error::from_io)?;
    }
    Ok(applied)
}

/// `fsync`s every file and directory under `dir`.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let result = if kind.is_dir() {
            sync_tree(&entry.path())
        } else if kind.is_file() {
            std::fs::File::open(entry.path()).and_then(|f| f.sync_all())
        } else {
            Ok(())
        };
        match result {
            // sled removes old blob files and snapshots concurrently.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    wal::sync_dir(dir)
}

/// The flusher thread: runs until shutdown with an empty queue, then hands back the
/// open segment (so the final checkpoint can close it).
pub(crate) fn run_flusher(shared: &Shared, hub: &WatchHub, mut wal: Wal) -> (Wal, u64) {
    let mut framed = Vec::new();
    let mut last = shared.applied.load(Ordering::Acquire);
    loop {
        let group = {
            let mut state = shared.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.queue.is_empty() {
                break;
            }
            std::mem::take(&mut state.queue)
        };
        framed.clear();
        for p in &group {
            wal::frame(&mut framed, p.lsn, &p.payload, p.payload_crc);
        }
        if let Err(e) = wal.write(&framed).and_then(|()| wal.sync()) {
            let why = format!("writing the write-ahead log failed: {e}");
            poison(shared, group, |_| replicate(&e), &why);
            continue;
        }
        let group_last = group.last().map_or(last, |p| p.lsn);
        if let Err(e) = apply_ops(&shared.db, group.iter().flat_map(|p| &p.ops), group_last) {
            // Durable in the log, so a reopen replays it; this process lost track.
            let why = format!("applying durable records to sled failed: {e}");
            poison(shared, group, |why| Error::Poisoned(why.to_owned()), &why);
            continue;
        }
        last = group_last;
        shared.applied.store(last, Ordering::Release);
        {
            let mut state = shared.lock();
            for p in &group {
                if let Some(run) = p.run
                    && state.runs.get(&run).is_some_and(|r| r.lsn == p.lsn)
                {
                    state.runs.remove(&run);
                }
            }
        }
        for p in group {
            if let Some(run) = p.run
                && !p.records.is_empty()
            {
                hub.publish(run, p.records);
            }
            // The appender may have given up waiting (dropped its future).
            let _ = p.done.send(Ok(()));
        }
        if wal.len() >= shared.segment_bytes {
            match wal.rotate(last + 1) {
                Ok(sealed) => {
                    shared.lock_sealed().push(sealed);
                    let mut signal = shared
                        .checkpoint_due
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    signal.due = true;
                    shared.checkpoint_wake.notify_one();
                }
                Err(e) => {
                    let why = format!("starting a new write-ahead-log segment failed: {e}");
                    poison(shared, Vec::new(), |_| replicate(&e), &why);
                }
            }
        }
    }
    (wal, last)
}

/// Stops the store from accepting writes: fails `group` with `first_error` and
/// everything queued behind it with [`Error::Poisoned`].
fn poison(shared: &Shared, group: Vec<Pending>, first_error: impl Fn(&str) -> Error, why: &str) {
    tracing::error!("{why}; the store no longer accepts writes");
    let queued = {
        let mut state = shared.lock();
        state.poisoned.get_or_insert_with(|| why.to_owned());
        std::mem::take(&mut state.queue)
    };
    for p in group {
        let _ = p.done.send(Err(first_error(why)));
    }
    for p in queued {
        let _ = p.done.send(Err(Error::Poisoned(why.to_owned())));
    }
}

/// The checkpointer thread: checkpoints whenever a segment was sealed, until stopped.
pub(crate) fn run_checkpointer(shared: &Shared) {
    loop {
        {
            let mut signal = shared
                .checkpoint_due
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            while !signal.due && !signal.stop {
                signal = shared
                    .checkpoint_wake
                    .wait(signal)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if signal.stop {
                return;
            }
            signal.due = false;
        }
        // A failed checkpoint loses nothing (the log keeps the records); the next
        // sealed segment retries.
        if let Err(e) = checkpoint(shared) {
            tracing::warn!("checkpointing sled failed, keeping the write-ahead log: {e}");
        }
    }
}
