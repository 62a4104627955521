//! Group commit: the queue of prepared records, the flusher thread that makes them
//! durable with one `fdatasync` per group, the applier thread that then writes them
//! to sled, and the checkpoints that let old log segments go.
//!
//! An appender checks its expected seq and takes the next LSN under one mutex, so the
//! queue's order is the log's order; it then waits. Whoever flushes takes everything
//! queued so far, writes it with one `write`, syncs once and wakes the appenders:
//! their records are durable. Appends that arrive during a flush form the next group.
//! The flusher thread flushes, or the appender itself when the log is idle (on a
//! multi-threaded runtime, see [`kick`]), which saves a lone writer two thread
//! hand-offs per append. After a group of several, the flusher waits briefly (a
//! quarter of a sync, at most 100 µs) for as many records before the next sync, so
//! the appenders it woke share one instead of alternating between a group of one
//! and a group of the rest.
//! The applier writes durable groups to sled (all that are waiting, in one go) while the flusher is
//! already syncing the next one, then tells the watchers. sled only ever holds
//! durable records; reads first wait until sled holds every record acknowledged
//! before they started (usually no wait at all).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::keys;
use super::segment::{self, Sealed, Wal};
use super::wal::{self, Op};
use crate::error::{Error, Result};
use crate::id::{RunId, Seq};
use crate::store::Record;
use crate::watch::WatchHub;

/// How many durable records may wait for sled before the flusher waits for the
/// applier: enough to overlap syncing and applying, small enough that measured
/// throughput is what sled can sustain.
const MAX_BACKLOG: usize = 4096;

/// A record waiting for the next flush.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
    pub(crate) payload_crc: u32,
    pub(crate) apply: Apply,
    pub(crate) done: oneshot::Sender<Result<()>>,
}

/// What the applier does with a durable record.
#[derive(Debug)]
pub(crate) struct Apply {
    pub(crate) lsn: u64,
    pub(crate) ops: Vec<Op>,
    /// The run whose length this record changes, if any.
    pub(crate) run: Option<RunId>,
    /// What watchers of `run` get once the record is in sled.
    pub(crate) records: Vec<Record>,
}

/// A run's length as the log leaves it, kept for the runs written recently so that
/// the expected-seq check, made under the state lock, rarely reads sled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownRun {
    /// The run's length once its records are applied; `None` if deleted.
    pub(crate) next: Option<Seq>,
    /// The last record that changed it.
    pub(crate) lsn: u64,
    /// Whether sled holds that record (then the entry may be forgotten).
    pub(crate) applied: bool,
}

/// How many runs' lengths are kept before those that sled holds are forgotten.
pub(crate) const KNOWN_RUNS: usize = 1 << 16;

/// What appenders, the flusher and the applier share, under one mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) queue: Vec<Pending>,
    pub(crate) runs: HashMap<RunId, KnownRun>,
    pub(crate) next_lsn: u64,
    pub(crate) poisoned: Option<String>,
    pub(crate) shutdown: bool,
}

/// The size and sync time of the last group flushed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LastFlush {
    pub(crate) records: usize,
    pub(crate) sync: std::time::Duration,
}

/// The longest the flusher waits to gather a group (a fraction of a sync).
const MAX_GATHER: std::time::Duration = std::time::Duration::from_micros(100);

/// Durable groups on their way to sled.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    groups: VecDeque<Vec<Apply>>,
    records: usize,
    /// The flusher has stopped; the applier ends once the backlog is empty.
    closed: bool,
    /// The applier has stopped after a failure; nothing will drain the backlog.
    failed: bool,
}

/// How far sled has caught up with the log, for reads to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Every record up to this LSN is in sled.
    Upto(u64),
    /// Applying failed; sled will not catch up in this process.
    Failed,
}

/// The parts of a store its threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    pub(crate) sled_dir: PathBuf,
    pub(crate) state: Mutex<State>,
    /// Wakes the flusher when the queue gains a record or the store shuts down.
    pub(crate) work: Condvar,
    /// The last LSN made durable.
    pub(crate) durable: AtomicU64,
    /// How the last flush went, for the next one to gather a group of the same
    /// size (see [`run_flusher`]).
    pub(crate) last_flush: Mutex<LastFlush>,
    /// The last LSN applied to sled, for reads to wait on.
    pub(crate) applied: watch::Sender<Applied>,
    pub(crate) backlog: Mutex<Backlog>,
    /// Wakes the applier (work arrived) and the flusher (room in the backlog).
    pub(crate) backlog_changed: Condvar,
    /// Finished segments, deleted once a checkpoint covers them.
    pub(crate) sealed: Mutex<Vec<Sealed>>,
    /// Whether the checkpointer has work (or should stop), and its wake-up.
    pub(crate) checkpoint_due: Mutex<CheckpointSignal>,
    pub(crate) checkpoint_wake: Condvar,
    /// The log, taken by whoever flushes (the flusher thread or a lone appender).
    pub(crate) log: Mutex<Option<Log>>,
    /// Whether a lone appender may flush itself (see [`kick`]).
    pub(crate) appender_flushes: bool,
    /// Makes the next flush fail as if `fdatasync` had (tests only).
    #[cfg(test)]
    pub(crate) fail_next_sync: std::sync::atomic::AtomicBool,
}

/// Tells the checkpointer what to do next.
#[derive(Debug, Default)]
pub(crate) struct CheckpointSignal {
    pub(crate) due: bool,
    pub(crate) stop: bool,
}

/// Locks a mutex whose holders never leave its data half-updated, so a panic in
/// another holder does not make it unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    #[cfg(test)]
    fn injected_sync_failure(&self) -> std::io::Result<()> {
        if self.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(std::io::Error::other("injected fdatasync failure"));
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The LSN sled has applied up to.
    pub(crate) fn applied_lsn(&self) -> Option<u64> {
        match *self.applied.borrow() {
            Applied::Upto(lsn) => Some(lsn),
            Applied::Failed => None,
        }
    }

    /// Waits until sled holds every record acknowledged before this call.
    pub(crate) async fn caught_up(&self) -> Result<()> {
        let target = self.durable.load(Ordering::Acquire);
        let mut rx = self.applied.subscribe();
        let reached = rx
            .wait_for(|a| match a {
                Applied::Upto(lsn) => *lsn >= target,
                Applied::Failed => true,
            })
            .await
            .map(|a| *a);
        match reached {
            Ok(Applied::Upto(_)) => Ok(()),
            Ok(Applied::Failed) | Err(_) => Err(Error::Poisoned(
                self.lock()
                    .poisoned
                    .clone()
                    .unwrap_or_else(|| "the store was closed".to_owned()),
            )),
        }
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

/// The size up to which the applier joins the events of several records of a run
/// into one chunk (one batch's events always stay together, whatever their size).
const CHUNK_BYTES: usize = 64 << 10;

/// A chunk being built while applying.
struct OpenChunk {
    first: Seq,
    events: Vec<Bytes>,
    bytes: usize,
}

fn close_chunk(writes: &mut BTreeMap<Bytes, Option<Bytes>>, run: RunId, chunk: OpenChunk) {
    let key = Bytes::copy_from_slice(&keys::event_key(run, chunk.first));
    writes.insert(key, Some(Bytes::from(keys::encode_chunk(&chunk.events))));
}

/// Applies records to sled, then the LSN they reach.
/// Consecutive events of a run become one chunk (see [`keys`]).
pub(crate) fn apply_ops<'a>(
    db: &sled::Db,
    ops: impl IntoIterator<Item = &'a Op>,
    last_lsn: u64,
) -> Result<()> {
    // Later writes to a key win, as they would applied one by one.
    let mut writes: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
    let mut open: HashMap<RunId, OpenChunk> = HashMap::new();
    for op in ops {
        match op {
            Op::Append { run, first, events } => {
                let bytes: usize = events.iter().map(Bytes::len).sum();
                match open.get_mut(run) {
                    Some(chunk)
                        if chunk.first.plus(chunk.events.len() as u64) == *first
                            && chunk.bytes + bytes <= CHUNK_BYTES =>
                    {
                        chunk.events.extend(events.iter().cloned());
                        chunk.bytes += bytes;
                    }
                    _ => {
                        let chunk = OpenChunk {
                            first: *first,
                            events: events.clone(),
                            bytes,
                        };
                        if let Some(done) = open.insert(*run, chunk) {
                            close_chunk(&mut writes, *run, done);
                        }
                    }
                }
            }
            Op::Put { key, value } => {
                writes.insert(key.clone(), Some(value.clone()));
            }
            Op::Remove { key } => {
                open.drain()
                    .for_each(|(run, c)| close_chunk(&mut writes, run, c));
                writes.insert(key.clone(), None);
            }
            Op::RemovePrefix { prefix } => {
                open.drain()
                    .for_each(|(run, c)| close_chunk(&mut writes, run, c));
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
    open.drain()
        .for_each(|(run, c)| close_chunk(&mut writes, run, c));
    // Plain writes, not a sled batch: sled's `apply_batch` writes out and
    // `sync_file_range`s its log buffer twice per batch (`pin_log`), a disk write per
    // group competing with the log's own `fdatasync`. Order does the batch's job:
    // blobs, summaries and run markers first, then the events that refer to them (a
    // reader who sees an event sees its batch's blobs and summary), and the applied
    // LSN last. sled recovers a prefix of the writes of one thread, so after a crash
    // it holds every group up to its applied LSN and perhaps part of the next one,
    // which replay then rewrites key by key (a record's writes are blind, and every
    // chunk key is the first seq of some record, which replay writes again).
    let (events, others): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|(key, _)| keys::is_event_key(key));
    for (key, value) in others.into_iter().chain(events) {
        match value {
            Some(value) => db.insert(&key[..], &value[..]).map(drop),
            None => db.remove(&key[..]).map(drop),
        }
        .map_err(sled_error)?;
    }
    db.insert(keys::APPLIED_LSN, &last_lsn.to_be_bytes())
        .map_err(sled_error)?;
    Ok(())
}

/// Makes sled's state up to now durable, then deletes the segments it covers.
///
/// sled's own `flush` ends in `sync_file_range`, which neither flushes the drive's
/// cache nor the file's metadata, and it writes large values to files it never syncs;
/// so after it, every file and directory of the tree is `fsync`ed before a segment
/// is given up.
pub(crate) fn checkpoint(shared: &Shared) -> Result<u64> {
    let Some(applied) = shared.applied_lsn() else {
        return Err(Error::Poisoned(
            "sled stopped applying records; the log keeps them".to_owned(),
        ));
    };
    shared.db.flush().map_err(sled_error)?;
    sync_tree(&shared.sled_dir).map_err(Error::from_io)?;
    let mut sealed = lock(&shared.sealed);
    let mut kept = Vec::with_capacity(sealed.len());
    let mut dir = None;
    for segment in sealed.drain(..) {
        if segment.last_lsn <= applied {
            segment::remove_if_present(&segment.path).map_err(Error::from_io)?;
            dir = segment.path.parent().map(Path::to_path_buf);
        } else {
            kept.push(segment);
        }
    }
    *sealed = kept;
    drop(sealed);
    // Not needed for safety (replay skips what sled has), only to free the names.
    if let Some(dir) = dir {
        segment::sync_dir(&dir).map_err(Error::from_io)?;
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
    segment::sync_dir(dir)
}

/// The open write-ahead log, held by whoever is flushing: the flusher thread, or
/// an appender that found it idle (see [`kick`]).
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) wal: Wal,
    framed: Vec<u8>,
    pub(crate) last: u64,
}

impl Log {
    pub(crate) fn new(wal: Wal, last: u64) -> Self {
        Self {
            wal,
            framed: Vec::new(),
            last,
        }
    }
}

/// Called by an appender once its record is queued (`alone`: it is the only one in
/// the queue): makes the queue durable itself when it is alone and nobody is
/// flushing, else leaves it to the flusher thread.
///
/// A lone writer (an agent's turn: one append, then wait) would otherwise pay two
/// thread hand-offs per append, waking the flusher and being woken by it (about
/// 12 µs here, measured by the `append` bench's hand-off row, so about 15% of a
/// turn's two commits). On a multi-threaded tokio runtime the appender runs the
/// flush under `block_in_place`, which moves the worker's other tasks to another
/// thread first. Under concurrency (others queued too) that hand-off would cost
/// more than it saves, and with no runtime or a current-thread one it is not
/// allowed: then the flusher thread flushes, taking every record queued meanwhile,
/// so concurrent appenders share one `fdatasync`. `SledOptions::appender_flushes(false)`
/// sends everything to the flusher thread (for tasks on a `LocalSet`, which
/// `block_in_place` does not support).
pub(crate) fn kick(shared: &Shared, alone: bool) {
    let multi_threaded = matches!(
        tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread)
    );
    // After a group of several, others are about to append: the flusher gathers them.
    let lone_before = lock(&shared.last_flush).records <= 1;
    if alone
        && lone_before
        && shared.appender_flushes
        && multi_threaded
        && let Ok(mut log) = shared.log.try_lock()
    {
        if let Some(log) = log.as_mut() {
            tokio::task::block_in_place(|| flush(shared, log));
        }
        drop(log);
        // Records queued during that flush are the flusher's to take.
        if !shared.lock().queue.is_empty() {
            shared.work.notify_one();
        }
        return;
    }
    shared.work.notify_one();
}

/// The flusher thread: runs until shutdown with an empty queue.
pub(crate) fn run_flusher(shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while state.queue.is_empty() && !state.shutdown {
                state = wait(&shared.work, state);
            }
            if state.queue.is_empty() {
                break;
            }
            // The appenders the last flush woke are about to append again: wait a
            // little (at most a quarter of a sync, and 100 µs) until as many records
            // are queued, so they share the next sync instead of alternating
            // between a group of one and a group of the rest.
            let last = *lock(&shared.last_flush);
            if last.records > 1 {
                let deadline = std::time::Instant::now() + (last.sync / 4).min(MAX_GATHER);
                while state.queue.len() < last.records && !state.shutdown {
                    let Some(left) = deadline.checked_duration_since(std::time::Instant::now())
                    else {
                        break;
                    };
                    state = shared
                        .work
                        .wait_timeout(state, left)
                        .map_or_else(|p| p.into_inner().0, |(g, _)| g);
                }
            }
        }
        let mut log = lock(&shared.log);
        if let Some(log) = log.as_mut() {
            flush(shared, log);
        }
    }
    let mut backlog = lock(&shared.backlog);
    backlog.closed = true;
    shared.backlog_changed.notify_all();
}

/// Makes the queued records durable as one group.
pub(crate) fn flush(shared: &Shared, log: &mut Log) {
    let Log { wal, framed, last } = log;
    let group = {
        let mut state = shared.lock();
        if state.queue.is_empty() {
            return;
        }
        std::mem::take(&mut state.queue)
    };
    {
        framed.clear();
        for p in &group {
            wal::frame(framed, p.lsn, &p.payload, p.payload_crc);
        }
        let first = group.first().map_or(*last + 1, |p| p.lsn);
        // Rotating here, before the write, keeps a segment within its zeroed space
        // when a spare is ready; everything before `first` is durable.
        match wal.make_room(framed.len() as u64, first) {
            Ok(None) => {}
            Ok(Some(sealed)) => {
                let waiting = {
                    let mut list = lock(&shared.sealed);
                    list.push(sealed);
                    list.iter().map(|s| s.bytes).sum::<u64>()
                };
                // Small segments (the first ones after an open) wait for company: a
                // checkpoint flushes and syncs all of sled, whatever it frees.
                if waiting * 2 >= wal.segment_bytes() {
                    lock(&shared.checkpoint_due).due = true;
                    shared.checkpoint_wake.notify_one();
                }
            }
            Err(e) => {
                let why = format!("starting a new write-ahead-log segment failed: {e}");
                let waiters = group.into_iter().map(|p| p.done).collect();
                poison(shared, waiters, |_| replicate(&e), &why);
                return;
            }
        }
        let started = std::time::Instant::now();
        let synced = wal.write(framed).and_then(|()| wal.sync());
        *lock(&shared.last_flush) = LastFlush {
            records: group.len(),
            sync: started.elapsed(),
        };
        #[cfg(test)]
        let synced = synced.and_then(|()| shared.injected_sync_failure());
        if let Err(e) = synced {
            let why = format!("writing the write-ahead log failed: {e}");
            let waiters = group.into_iter().map(|p| p.done).collect();
            poison(shared, waiters, |_| replicate(&e), &why);
            return;
        }
        *last = group.last().map_or(*last, |p| p.lsn);
        shared.durable.store(*last, Ordering::Release);
        let mut applies = Vec::with_capacity(group.len());
        for p in group {
            // The appender may have given up waiting (dropped its future).
            let _ = p.done.send(Ok(()));
            applies.push(p.apply);
        }
        {
            let mut backlog = lock(&shared.backlog);
            while backlog.records >= MAX_BACKLOG && !backlog.failed {
                backlog = wait(&shared.backlog_changed, backlog);
            }
            backlog.records += applies.len();
            backlog.groups.push_back(applies);
            shared.backlog_changed.notify_all();
        }
    }
}

/// The applier thread: writes durable groups to sled in log order, then tells the
/// watchers. Several waiting groups go in one sled batch.
pub(crate) fn run_applier(shared: &Shared, hub: &WatchHub) {
    loop {
        let groups: Vec<Vec<Apply>> = {
            let mut backlog = lock(&shared.backlog);
            while backlog.groups.is_empty() && !backlog.closed {
                backlog = wait(&shared.backlog_changed, backlog);
            }
            if backlog.groups.is_empty() {
                return;
            }
            backlog.records = 0;
            shared.backlog_changed.notify_all();
            backlog.groups.drain(..).collect()
        };
        let records = groups.iter().flatten();
        let Some(last) = records.clone().last().map(|a| a.lsn) else {
            continue;
        };
        if let Err(e) = apply_ops(&shared.db, records.flat_map(|a| &a.ops), last) {
            // Durable in the log, so a reopen replays it; this process lost track.
            let why = format!("applying durable records to sled failed: {e}");
            poison(
                shared,
                Vec::new(),
                |why| Error::Poisoned(why.to_owned()),
                &why,
            );
            shared.applied.send_replace(Applied::Failed);
            lock(&shared.backlog).failed = true;
            shared.backlog_changed.notify_all();
            return;
        }
        {
            let mut state = shared.lock();
            for apply in groups.iter().flatten() {
                if let Some(run) = apply.run
                    && let Some(known) = state.runs.get_mut(&run)
                    && known.lsn == apply.lsn
                {
                    known.applied = true;
                }
            }
            if state.runs.len() > KNOWN_RUNS {
                state.runs.retain(|_, known| !known.applied);
            }
        }
        shared.applied.send_replace(Applied::Upto(last));
        for apply in groups.into_iter().flatten() {
            if let Some(run) = apply.run
                && !apply.records.is_empty()
            {
                hub.publish(run, apply.records);
            }
        }
    }
}

/// Stops the store from accepting writes: fails `waiters` with `first_error` and
/// everything queued behind them with [`Error::Poisoned`].
fn poison(
    shared: &Shared,
    waiters: Vec<oneshot::Sender<Result<()>>>,
    first_error: impl Fn(&str) -> Error,
    why: &str,
) {
    tracing::error!("{why}; the store no longer accepts writes");
    let queued = {
        let mut state = shared.lock();
        state.poisoned.get_or_insert_with(|| why.to_owned());
        std::mem::take(&mut state.queue)
    };
    for done in waiters {
        let _ = done.send(Err(first_error(why)));
    }
    for p in queued {
        let _ = p.done.send(Err(Error::Poisoned(why.to_owned())));
    }
}

/// The checkpointer thread: checkpoints whenever sealed segments holding half a
/// segment's bytes wait, until stopped.
pub(crate) fn run_checkpointer(shared: &Shared) {
    loop {
        {
            let mut signal = lock(&shared.checkpoint_due);
            while !signal.due && !signal.stop {
                signal = wait(&shared.checkpoint_wake, signal);
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
