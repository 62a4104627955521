//! Opening a store (lock, sled, log replay, threads) and closing it (drain, final
//! checkpoint).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::commit::{self, Applied, Backlog, Shared, State, sled_error};
use super::lock::DirLock;
use super::segment::{self, Spares, Wal};
use super::wal;
use super::{Inner, SledOptions, SledStore, keys};
use crate::error::{Error, Result};
use crate::watch::WatchHub;

impl SledStore {
    pub(super) fn open_with(options: SledOptions) -> Result<Self> {
        let dir = options.dir;
        std::fs::create_dir_all(&dir).map_err(Error::from_io)?;
        let lock = DirLock::acquire(&dir)?;
        let wal_dir = dir.join("wal");
        let sled_dir = dir.join("sled");
        std::fs::create_dir_all(&wal_dir).map_err(Error::from_io)?;
        let db = open_sled(&sled_dir, options.cache_capacity)?;
        segment::sync_dir(&dir).map_err(Error::from_io)?;

        let applied = match db.get(keys::APPLIED_LSN).map_err(sled_error)? {
            Some(v) => keys::decode_u64("applied log position", &v)?,
            None => 0,
        };
        let mut replay_last = applied;
        let mut recovered = wal::recover(&wal_dir, applied, |lsn, ops| {
            replay_last = lsn;
            commit::apply_ops(&db, &ops, lsn)
        })?;
        if recovered.replayed > 0 || recovered.truncated > 0 {
            tracing::info!(
                dir = %dir.display(),
                replayed = recovered.replayed,
                truncated_bytes = recovered.truncated,
                "recovered the store from its write-ahead log"
            );
        }
        let next_lsn = recovered.last_lsn.max(replay_last) + 1;
        // Writing resumes in a fresh segment, never after a cut tail: the spare kept
        // by the last close if there is one.
        let spares = Arc::new(Spares::open(&wal_dir).map_err(Error::from_io)?);
        let wal = Wal::open(&wal_dir, next_lsn, options.segment_bytes, spares.clone())
            .map_err(Error::from_io)?;
        let had_segments = !recovered.sealed.is_empty();
        let shared = Arc::new(Shared {
            db,
            sled_dir,
            state: Mutex::new(State {
                next_lsn,
                ..State::default()
            }),
            work: Condvar::new(),
            durable: AtomicU64::new(next_lsn - 1),
            last_flush: Mutex::new(commit::LastFlush::default()),
            applied: watch::Sender::new(Applied::Upto(replay_last)),
            backlog: Mutex::new(Backlog::default()),
            backlog_changed: Condvar::new(),
            sealed: Mutex::new(std::mem::take(&mut recovered.sealed)),
            checkpoint_due: Mutex::new(commit::CheckpointSignal::default()),
            checkpoint_wake: Condvar::new(),
            log: Mutex::new(Some(commit::Log::new(wal, next_lsn - 1))),
            appender_flushes: options.appender_flushes,
            #[cfg(test)]
            fail_next_sync: Default::default(),
        });
        // Leave replayed segments behind now rather than replay them again. After a
        // clean close there are none, and nothing to checkpoint.
        if recovered.replayed > 0 || had_segments {
            commit::checkpoint(&shared)?;
        }

        let hub = WatchHub::default();
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("keel-wal-flush".into())
                .spawn(move || commit::run_flusher(&shared))
                .map_err(Error::from_io)?
        };
        let applier = {
            let (shared, hub) = (shared.clone(), hub.clone());
            std::thread::Builder::new()
                .name("keel-sled-apply".into())
                .spawn(move || commit::run_applier(&shared, &hub))
                .map_err(Error::from_io)?
        };
        let checkpointer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("keel-checkpoint".into())
                .spawn(move || commit::run_checkpointer(&shared))
                .map_err(Error::from_io)?
        };
        let preparer = {
            let spares = spares.clone();
            std::thread::Builder::new()
                .name("keel-wal-prepare".into())
                .spawn(move || segment::run_preparer(&spares))
                .map_err(Error::from_io)?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                hub,
                dir,
                flusher: Some(flusher),
                applier: Some(applier),
                checkpointer: Some(checkpointer),
                spares,
                preparer: Some(preparer),
                _lock: lock,
            }),
        })
    }
}

/// Opens sled in `dir`. The caller holds the directory's lock, so a busy sled lock
/// can only be this process's previous handle, whose I/O threads release it shortly
/// after it is dropped (sled's own tests wait for it the same way).
fn open_sled(dir: &Path, cache_capacity: u64) -> Result<::sled::Db> {
    let config = ::sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity)
        // Durability is the write-ahead log's job; sled is flushed at checkpoints.
        .flush_every_ms(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(1);
    loop {
        match config.open() {
            Err(::sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other.map_err(sled_error),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let shared = &*self.shared;
        shared.lock().shutdown = true;
        shared.work.notify_all();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        let flushed = commit::lock(&shared.log)
            .take()
            .map(|log| (log.wal, log.last));
        if let Some(h) = self.applier.take() {
            let _ = h.join();
        }
        {
            let mut signal = shared
                .checkpoint_due
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            signal.stop = true;
            shared.checkpoint_wake.notify_all();
        }
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
        // A spare being written is abandoned; a ready one stays for the next open.
        self.spares.stop();
        if let Some(h) = self.preparer.take() {
            let _ = h.join();
        }
        let poisoned = shared.lock().poisoned.is_some();
        match commit::checkpoint(shared) {
            Ok(applied) => {
                if let Some((wal, last)) = flushed
                    && !poisoned
                    && let Err(e) = wal.close(last, applied)
                {
                    tracing::warn!("closing the write-ahead log failed: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("the final checkpoint failed; the next open replays the log: {e}")
            }
        }
    }
}
