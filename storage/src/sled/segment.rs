//! Write-ahead-log segment files: the one being written, the sealed ones, and the
//! spare prepared ahead of time.
//!
//! # Why segments are written full of zeros first
//!
//! An append to a file that grows changes its size, so every group's `fdatasync`
//! also commits the new size through the filesystem's journal: a second write and
//! a second cache flush per group. Overwriting blocks that are already allocated
//! and written leaves no metadata to commit, so `fdatasync` flushes the data only
//! (on ext4 it still flushes the drive's cache, so it survives a power cut). So,
//! like PostgreSQL's pre-zeroed WAL segments, a segment is first written full of
//! zeros and `fsync`ed — by the preparer thread, as the *spare*, before it is
//! needed — and records then overwrite it at a tracked offset. Real writes, not
//! `fallocate`: its unwritten extents would need a metadata commit on first write.
//!
//! # Files
//!
//! `wal/<first lsn>.wal` are segments; `wal/spare.zeroed` is the spare: all zeros,
//! complete and `fsync`ed (it is written as `wal/spare.zeroing` and renamed only
//! then, so a crash never leaves a half-written spare under that name; a leftover
//! `spare.zeroing` is deleted at open). A spare survives a close and is the next
//! open's first segment.
//!
//! - The **active** segment is the spare renamed to `<first lsn>.wal` (its directory
//!   entry `fsync`ed before its first record is written), or, when no spare is ready,
//!   a new empty file that grows by appending (the old way, slower per group but
//!   correct). Records are written at the segment's write offset; everything after
//!   it is zeros (or nothing).
//! - A segment is **sealed** when the next one becomes active: first its zero tail
//!   is cut off (`ftruncate` to the bytes written, then `fsync`), then the next
//!   segment's name is made durable. So only the last segment ever has a zero tail;
//!   every earlier one ends exactly at its last record, and anything else found
//!   there at recovery is damage (see `wal::recover`).
//! - Rotation happens before writing a group when the segment is not empty and
//!   either the group does not fit in the zeroed space and a spare is ready, or the
//!   segment has reached `segment_bytes` (then into a growing file if no spare is
//!   ready). It never waits for a spare.
//! - The next spare is requested once the active segment is half full (at once when
//!   it grows by appending, as when a store without a spare opens). Spares start at 1 MiB and double up to `segment_bytes`,
//!   so a store that writes little (a test, a short command) zeroes little.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use super::commit::{lock, wait};

/// The spare, complete.
const SPARE: &str = "spare.zeroed";
/// The spare while it is being written.
const SPARE_PARTIAL: &str = "spare.zeroing";
/// The first spare's size (capped by the segment size).
const MIN_SPARE: u64 = 1 << 20;
/// Zeros are written in pieces this large, checking for shutdown between them.
const ZERO_CHUNK: usize = 1 << 20;

pub(crate) fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Deletes a file, treating "already gone" as done.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A segment that is no longer written to, and the last LSN it holds.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) path: PathBuf,
    pub(crate) last_lsn: u64,
    /// Its size: the bytes of its records.
    pub(crate) bytes: u64,
}

/// A zero-filled, `fsync`ed file at `wal/spare.zeroed`.
#[derive(Debug)]
pub(crate) struct Spare {
    file: File,
    bytes: u64,
}

/// The segment being written.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    /// The write offset: records end here.
    len: u64,
    /// The bytes that were zeros and durable before the segment became active.
    zeroed: u64,
    /// The file's size.
    size: u64,
    /// Whether anything was ever written to it (then it is no spare any more).
    touched: bool,
}

impl Segment {
    /// A new empty segment that grows by appending, its name durable.
    fn create(dir: &Path, first_lsn: u64) -> io::Result<Self> {
        let path = segment_path(dir, first_lsn);
        // Never truncate an existing segment: it could hold acknowledged records.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(Self {
            file,
            path,
            len: 0,
            zeroed: 0,
            size: 0,
            touched: false,
        })
    }

    /// The spare, renamed to a segment starting at `first_lsn`, its name durable.
    fn from_spare(dir: &Path, spare: Spare, first_lsn: u64) -> io::Result<Self> {
        let path = segment_path(dir, first_lsn);
        // `rename` would silently replace an existing segment; we hold the store's
        // lock, so nothing else creates one between this check and the rename.
        if path.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        std::fs::rename(dir.join(SPARE), &path)?;
        sync_dir(dir)?;
        Ok(Self {
            file: spare.file,
            path,
            len: 0,
            zeroed: spare.bytes,
            size: spare.bytes,
            touched: false,
        })
    }

    /// Cuts off the zero tail and makes the size durable: the segment then ends at
    /// its last record. A segment that grew by appending already does (each
    /// `fdatasync` committed its size).
    fn trim(&mut self) -> io::Result<()> {
        if self.size > self.len {
            self.file.set_len(self.len)?;
            self.file.sync_all()?;
            self.size = self.len;
        }
        Ok(())
    }
}

/// `bytes` within the sizes a spare may have: from 1 MiB (or the segment size, if
/// smaller) to the segment size.
fn spare_size(bytes: u64, segment_bytes: u64) -> u64 {
    bytes.clamp(MIN_SPARE.min(segment_bytes), segment_bytes)
}

/// The write-ahead log's files, owned by the flusher thread.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    active: Segment,
    segment_bytes: u64,
    /// The size of the next spare to ask for.
    next_spare: u64,
    spares: Arc<Spares>,
}

impl Wal {
    /// Starts the log at `first_lsn` in the spare if one is ready (kept from the
    /// last close), else in a new growing segment. Call after recovery, which left
    /// no segment at or after `first_lsn`.
    pub(crate) fn open(
        dir: &Path,
        first_lsn: u64,
        segment_bytes: u64,
        spares: Arc<Spares>,
    ) -> io::Result<Self> {
        let active = match spares.take() {
            Some(spare) => Segment::from_spare(dir, spare, first_lsn)?,
            None => Segment::create(dir, first_lsn)?,
        };
        let mut next_spare = spare_size(active.zeroed * 2, segment_bytes);
        // Starting in a growing segment: have a spare ready by the first appends.
        if active.zeroed == 0 && spares.request(next_spare) {
            next_spare = spare_size(next_spare * 2, segment_bytes);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next_spare,
            active,
            segment_bytes,
            spares,
        })
    }

    /// Makes room for a group of `bytes` whose first record is `first_lsn`: starts a
    /// new segment if it is time (see the module docs), returning the sealed one.
    /// Call only when everything written so far is durable.
    pub(crate) fn make_room(&mut self, bytes: u64, first_lsn: u64) -> io::Result<Option<Sealed>> {
        let active = &self.active;
        if active.len == 0 {
            return Ok(None);
        }
        let full = active.len + bytes > active.zeroed;
        let due = active.len >= self.segment_bytes;
        if !(due || (full && self.spares.is_ready())) {
            return Ok(None);
        }
        let spare = self.spares.take();
        // The old segment's end must be durable before the new one's name is: a
        // segment followed by another is read as sealed, and zeros there are damage.
        self.active.trim()?;
        let next = match spare {
            Some(spare) => Segment::from_spare(&self.dir, spare, first_lsn)?,
            None => Segment::create(&self.dir, first_lsn)?,
        };
        let old = std::mem::replace(&mut self.active, next);
        self.spares.retry();
        Ok(Some(Sealed {
            path: old.path,
            last_lsn: first_lsn.saturating_sub(1),
            bytes: old.len,
        }))
    }

    /// Writes framed records at the write offset (not yet durable), and asks for
    /// the next spare once the segment is half full.
    pub(crate) fn write(&mut self, framed: &[u8]) -> io::Result<()> {
        let active = &mut self.active;
        active.touched = true;
        active.file.write_all_at(framed, active.len)?;
        active.len += framed.len() as u64;
        active.size = active.size.max(active.len);
        if active.len * 2 >= active.zeroed && self.spares.request(self.next_spare) {
            self.next_spare = spare_size(self.next_spare * 2, self.segment_bytes);
        }
        Ok(())
    }

    /// Makes everything written so far durable: one `fdatasync`.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.active.file.sync_data()
    }

    /// The size at which segments are sealed.
    pub(crate) fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Closes the log. An active segment that was never written to is kept as the
    /// spare (it is still all zeros); otherwise it is deleted if every record in it
    /// is at or below `applied`, or else left for the next open to replay.
    pub(crate) fn close(self, last_lsn: u64, applied: u64) -> io::Result<()> {
        let Self {
            dir,
            active,
            spares,
            ..
        } = self;
        drop(active.file);
        if !active.touched && active.zeroed > 0 && !spares.is_ready() {
            std::fs::rename(&active.path, dir.join(SPARE))?;
            return sync_dir(&dir);
        }
        if last_lsn <= applied {
            remove_if_present(&active.path)?;
            sync_dir(&dir)?;
        }
        Ok(())
    }
}

/// The spare, shared by the flusher (which takes it) and the preparer (which
/// writes it).
#[derive(Debug)]
pub(crate) struct Spares {
    dir: PathBuf,
    state: Mutex<SpareState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct SpareState {
    ready: Option<Spare>,
    /// A spare of this size was asked for and is not ready yet.
    wanted: Option<u64>,
    /// The last preparation failed; asking again waits for the next rotation.
    failed: bool,
    stop: bool,
}

impl Spares {
    /// Deletes a half-written spare and picks up a complete one left by the last
    /// close.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        remove_if_present(&dir.join(SPARE_PARTIAL))?;
        let path = dir.join(SPARE);
        let ready = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => {
                let bytes = file.metadata()?.len();
                if bytes == 0 {
                    drop(file);
                    remove_if_present(&path)?;
                    None
                } else {
                    Some(Spare { file, bytes })
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(SpareState {
                ready,
                ..SpareState::default()
            }),
            wake: Condvar::new(),
        })
    }

    fn is_ready(&self) -> bool {
        lock(&self.state).ready.is_some()
    }

    fn take(&self) -> Option<Spare> {
        lock(&self.state).ready.take()
    }

    /// Asks for a spare of `bytes` unless one is ready or on its way. Returns
    /// whether this asked.
    fn request(&self, bytes: u64) -> bool {
        let mut state = lock(&self.state);
        if state.ready.is_some() || state.wanted.is_some() || state.failed || state.stop {
            return false;
        }
        state.wanted = Some(bytes);
        self.wake.notify_one();
        true
    }

    /// Allows asking again after a failed preparation.
    fn retry(&self) {
        lock(&self.state).failed = false;
    }

    /// Stops the preparer (a spare being written is abandoned).
    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_all();
    }

    fn stopping(&self) -> bool {
        lock(&self.state).stop
    }

    /// Writes `bytes` of zeros to the partial spare, `fsync`s it and renames it to
    /// the spare's name. `Ok(None)` if stopped meanwhile.
    fn prepare(&self, bytes: u64) -> io::Result<Option<Spare>> {
        let partial = self.dir.join(SPARE_PARTIAL);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)?;
        let zeros = vec![0u8; ZERO_CHUNK];
        let mut written = 0;
        while written < bytes {
            if self.stopping() {
                drop(file);
                remove_if_present(&partial)?;
                return Ok(None);
            }
            let n = (bytes - written).min(ZERO_CHUNK as u64);
            // `n` is at most `ZERO_CHUNK`, so it fits the buffer.
            file.write_all(&zeros[..n as usize])?;
            written += n;
        }
        // Complete and durable before it gets the name that says so; the rename
        // itself becomes durable with the directory sync that activates it.
        file.sync_all()?;
        std::fs::rename(&partial, self.dir.join(SPARE))?;
        Ok(Some(Spare { file, bytes }))
    }
}

/// The preparer thread: writes a spare whenever one is asked for, until stopped.
pub(crate) fn run_preparer(spares: &Spares) {
    loop {
        let bytes = {
            let mut state = lock(&spares.state);
            while state.wanted.is_none() && !state.stop {
                state = wait(&spares.wake, state);
            }
            if state.stop {
                return;
            }
            state.wanted.unwrap_or(MIN_SPARE)
        };
        let prepared = spares.prepare(bytes);
        let mut state = lock(&spares.state);
        state.wanted = None;
        match prepared {
            Ok(Some(spare)) => {
                state.ready = Some(spare);
                spares.wake.notify_all();
            }
            Ok(None) => return,
            Err(e) => {
                // Nothing is lost: segments grow by appending until the next try.
                tracing::warn!("preparing the next write-ahead-log segment failed: {e}");
                state.failed = true;
                drop(state);
                let _ = remove_if_present(&spares.dir.join(SPARE_PARTIAL));
            }
        }
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
