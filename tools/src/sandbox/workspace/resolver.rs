//! [`PathResolver`]: the workspace's path resolution, public for fuzzing and tests.
//!
//! The file tools keep their workspace private; this thin wrapper lets the
//! `path_resolver` fuzz target (and tests outside this crate) drive exactly the code
//! the tools use, and check what it opened against the kernel's own answer. It adds
//! no behaviour of its own.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{Workspace, WriteTarget};
use crate::error::Result;

/// The one path resolver every file tool goes through, for fuzzing and tests.
///
/// Errors are the text the model would read.
///
/// ```no_run
/// use keel_tools::sandbox::PathResolver;
///
/// let ws = PathResolver::open("/tmp/ws".as_ref(), None, &[".git".into()])?;
/// assert!(ws.open_read("../../etc/passwd").is_err());
/// # Ok::<(), keel_tools::Error>(())
/// ```
#[derive(Debug)]
pub struct PathResolver(Workspace);

/// Where a write would land, as [`PathResolver::write_target`] found it. Nothing has
/// been changed.
#[derive(Debug)]
pub struct ResolvedWrite(WriteTarget);

impl ResolvedWrite {
    /// The deepest existing directory on the way, opened: the file (and any missing
    /// directories) would be created beneath it.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.0.dir_fd()
    }

    /// The directories that would be created beneath [`ResolvedWrite::dir`], in order.
    pub fn missing(&self) -> &[std::ffi::OsString] {
        self.0.missing_dirs()
    }

    /// The real path of the file relative to the root.
    pub fn rel(&self) -> &Path {
        &self.0.rel
    }

    /// Whether the file exists (and would be replaced).
    pub fn exists(&self) -> bool {
        self.0.existing.is_some()
    }
}

impl PathResolver {
    /// Opens a workspace as the sandbox tools do: `cwd` must lie beneath
    /// `restriction` (the root; `cwd` itself when `None`); `protected` are the
    /// protected-path patterns.
    pub fn open(cwd: &Path, restriction: Option<&Path>, protected: &[String]) -> Result<Self> {
        Workspace::open(cwd, restriction, protected).map(Self)
    }

    /// The root, canonicalised once at open.
    pub fn root(&self) -> &Path {
        self.0.root_path()
    }

    /// Opens a regular file for reading, as `read` does; also returns its real path
    /// relative to the root.
    pub fn open_read(&self, user: &str) -> Result<(File, PathBuf), String> {
        self.0
            .open_read(user)
            .map(|o| (o.file, o.rel))
            .map_err(|e| e.to_string())
    }

    /// Opens a directory, as `glob`, `grep` and `exec`'s working directory do.
    pub fn open_dir(&self, user: &str) -> Result<(OwnedFd, PathBuf), String> {
        self.0.open_dir(user).map_err(|e| e.to_string())
    }

    /// Opens a file or directory to look at it (an `O_PATH` handle), as search roots are.
    pub fn open_path(&self, user: &str) -> Result<(OwnedFd, PathBuf), String> {
        self.0
            .open_path(user)
            .map(|(file, _, rel)| (OwnedFd::from(file), rel))
            .map_err(|e| e.to_string())
    }

    /// Works out where a write to `user` would land, as `write` and `edit` do,
    /// without changing anything.
    pub fn write_target(&self, user: &str, create_parents: bool) -> Result<ResolvedWrite, String> {
        self.0
            .write_target(user, create_parents)
            .map(ResolvedWrite)
            .map_err(|e| e.to_string())
    }
}

impl AsFd for ResolvedWrite {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dir()
    }
}
