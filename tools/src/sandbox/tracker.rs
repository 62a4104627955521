//! What the agent last saw of each file, per run: `edit` refuses to change a file
//! that changed on disk since the agent last read (or wrote) it, because the model's
//! `old_string` was chosen from content that is no longer there.
//!
//! A file the agent wrote or edited in this run counts as read, with the content it
//! wrote (as in Claude Code): `write` and `edit` record it like `read` does.
//!
//! The tracker lives in memory, keyed by the run id from
//! [`CallContext::run`](crate::CallContext), and is derived from the run's log: a
//! process that continues a run it did not execute (a resume, a recovery) replays
//! the run's successful `read`, `write` and `edit` calls into it first
//! ([`Tool::restore`](crate::Tool::restore)). A `write` is restored with the hash of
//! the content it wrote (so a file changed on disk since is caught); a `read` or an
//! `edit`, whose resulting content the log does not hold whole, with the file as it
//! is at restore time. Memory is bounded: past [`MAX_ENTRIES`] files, the oldest
//! entries are forgotten (their next edit asks for a read again).

use std::collections::{HashMap, VecDeque};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files remembered across all runs before the oldest are forgotten.
pub(crate) const MAX_ENTRIES: usize = 20_000;

/// What identifies a file's content as the agent saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// A hash of the whole content, when the file was small enough to hash.
    pub hash: Option<[u8; 32]>,
    pub len: u64,
    pub mtime_ns: i128,
    pub ino: u64,
}

impl Fingerprint {
    /// Exactly this content (no metadata: the content decides).
    pub fn of_content(content: &[u8]) -> Self {
        Self {
            hash: Some(*blake3::hash(content).as_bytes()),
            len: content.len() as u64,
            mtime_ns: 0,
            ino: 0,
        }
    }

    /// From a file's metadata and (when it was read whole) its content.
    pub fn new(meta: &Metadata, content: Option<&[u8]>) -> Self {
        Self {
            hash: content.map(|c| *blake3::hash(c).as_bytes()),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }

    /// Whether `now` (always hashed) shows the same content. With a hash on both
    /// sides the content decides (an editor's rename or a touch does not matter);
    /// without, size, modification time and inode must all be unchanged.
    pub fn same_content(&self, now: &Fingerprint) -> bool {
        match (self.hash, now.hash) {
            (Some(a), Some(b)) => a == b,
            _ => self.len == now.len && self.mtime_ns == now.mtime_ns && self.ino == now.ino,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<(String, PathBuf), Fingerprint>,
    order: VecDeque<(String, PathBuf)>,
}

/// Per-run memory of what the agent read.
#[derive(Debug, Default)]
pub(crate) struct ReadTracker {
    inner: Mutex<Inner>,
}

impl ReadTracker {
    /// Records that the agent saw `rel` (a real path relative to the root) as `fp`.
    pub fn record(&self, run: &str, rel: &Path, fp: Fingerprint) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (run.to_owned(), rel.to_path_buf());
        if inner.files.insert(key.clone(), fp).is_none() {
            inner.order.push_back(key);
        }
        while inner.files.len() > MAX_ENTRIES {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.files.remove(&old);
                }
                None => break,
            }
        }
    }

    /// What the agent last saw of `rel` in this run.
    pub fn get(&self, run: &str, rel: &Path) -> Option<Fingerprint> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .files
            .get(&(run.to_owned(), rel.to_path_buf()))
            .cloned()
    }
}
