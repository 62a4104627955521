//! The store directory's owner lock: one process per store, failing fast.
//!
//! sled locks its own `db` file too, but its error says nothing about who holds it,
//! and our write-ahead log must be guarded before sled is even opened. So the store
//! takes an exclusive `flock` on `LOCK` in its directory first, and writes the owner's
//! pid and command line into it for the error another process gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name inside the store directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds the store directory exclusively until dropped (the kernel releases the lock
/// when the file is closed, including when the process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist) or reports who holds it, without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::from_io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                    owner: read_owner(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::from_io(e)),
        }
        // Only the holder writes, so the text is never a mix of two owners.
        file.set_len(0).map_err(Error::from_io)?;
        file.seek(SeekFrom::Start(0)).map_err(Error::from_io)?;
        file.write_all(owner_text().as_bytes())
            .map_err(Error::from_io)?;
        file.flush().map_err(Error::from_io)?;
        Ok(Self { _file: file })
    }
}

/// `pid 1234: keel run …`, the description another process shows.
fn owner_text() -> String {
    let cmdline = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    format!("pid {}: {cmdline}", std::process::id())
}

fn read_owner(file: &mut File) -> Option<String> {
    let mut text = String::new();
    // flock is advisory, so reading the holder's file is allowed.
    file.take(4096).read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
