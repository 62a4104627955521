//! The one path resolver every file tool goes through.
//!
//! The workspace root is opened once, as a directory handle. Every path a model
//! gives is turned into a path relative to that handle *by text only* (nothing is
//! looked up), and then opened with `openat2(root, path, RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)`: the kernel resolves every component (`..`, symlinks in
//! any position, `/proc/self/...` magic links) and refuses (`EXDEV`/`ELOOP`) any
//! resolution that would leave the root, atomically with the open. There is no
//! check-then-open window: what is checked is the file descriptor that is used.
//! Symlinks that stay inside the root work as usual.
//!
//! Writes never go through a path twice: the parent directory is opened beneath
//! the root, and the new content is written to a temporary file in it and renamed
//! over the name (`renameat` on the directory handle). A directory swapped for a
//! symlink after it was opened changes nothing (the handle still names the
//! original); a name swapped for a symlink is replaced, not followed.
//!
//! Hard links: the kernel cannot tell which of a file's names is "inside". Reads
//! follow the link (the content is the same file). Writes and edits replace the
//! name by rename, so a multiply-linked inode is never modified in place: its other
//! names, inside or outside the workspace, keep their old content.
//!
//! Protected paths (`.git`, `.keel`, `keel.toml` at any depth, bare-repository and
//! store layouts, configurable: see `protect`) are matched against the *real*
//! location a write would land on (read back from `/proc/self/fd`), so a symlink
//! inside the workspace pointing into `.git/hooks` does not get around them.
//!
//! Linux only: `openat2` (5.6+) is required; without it the sandbox refuses to start.

mod error;
mod protect;
mod resolver;
mod write;

pub(crate) use error::PathError;
pub use protect::BUILTIN as BUILTIN_PROTECTED;
pub(crate) use protect::Protected;
pub use resolver::{PathResolver, ResolvedWrite};
pub(crate) use write::WriteTarget;

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// A file opened beneath the root, with where it really is.
#[derive(Debug)]
pub(crate) struct Opened {
    pub file: File,
    pub meta: Metadata,
    /// The real path relative to the root (no symlinks).
    pub rel: PathBuf,
}

/// The workspace: a directory handle and the rules for paths beneath it.
#[derive(Debug)]
pub(crate) struct Workspace {
    root: OwnedFd,
    root_path: PathBuf,
    aliases: Vec<PathBuf>,
    cwd_rel: PathBuf,
    protected: Protected,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

impl Workspace {
    /// Opens the restriction root and checks that `cwd` lies beneath it.
    pub fn open(cwd: &Path, restriction: Option<&Path>, protected: &[String]) -> Result<Self> {
        let cwd_abs = absolute(cwd)?;
        let root_given = match restriction {
            Some(r) => absolute(r)?,
            None => cwd_abs.clone(),
        };
        let root_path = std::fs::canonicalize(&root_given).map_err(|source| Error::Workspace {
            path: root_given.clone(),
            source,
        })?;
        let cwd_real = std::fs::canonicalize(&cwd_abs).map_err(|source| Error::Workspace {
            path: cwd_abs.clone(),
            source,
        })?;
        let root = rustix::fs::open(
            &root_path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Workspace {
            path: root_path.clone(),
            source: e.into(),
        })?;
        match rustix::fs::openat2(
            &root,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(_) => {}
            Err(Errno::NOSYS) => {
                return Err(Error::Unsupported(
                    "the kernel has no openat2 (Linux 5.6 or later is needed); the file tools refuse to run without it"
                        .into(),
                ));
            }
            Err(e) => {
                return Err(Error::Workspace {
                    path: root_path,
                    source: e.into(),
                });
            }
        }
        let cwd_rel = cwd_real
            .strip_prefix(&root_path)
            .map_err(|_| {
                Error::InvalidConfig(format!(
                    "cwd `{}` is outside path_restriction `{}`",
                    cwd_real.display(),
                    root_path.display()
                ))
            })?
            .to_path_buf();
        let mut aliases = vec![normalize(&root_given)];
        aliases.retain(|a| *a != root_path);
        Ok(Self {
            root,
            root_path,
            aliases,
            cwd_rel,
            protected: Protected::new(protected)?,
        })
    }

    /// The root as it was canonicalised at start.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The working directory as an absolute path.
    pub fn cwd_path(&self) -> PathBuf {
        self.absolute(&self.cwd_rel)
    }

    /// An absolute path for a path relative to the root.
    pub fn absolute(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() || rel == Path::new(".") {
            self.root_path.clone()
        } else {
            self.root_path.join(rel)
        }
    }

    /// How to show a real path to the model: relative to the working directory when
    /// beneath it, absolute otherwise.
    pub fn display(&self, rel: &Path) -> String {
        match rel.strip_prefix(&self.cwd_rel) {
            Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) => self.absolute(rel).to_string_lossy().into_owned(),
        }
    }

    /// Turns a model's path into a path relative to the root, by text only.
    pub fn lexical(&self, user: &str) -> Result<PathBuf, PathError> {
        if user.is_empty() {
            return Err(PathError::Empty);
        }
        if user.contains('\0') {
            return Err(PathError::Nul);
        }
        if user.starts_with('~') {
            return Err(PathError::Tilde(user.to_owned()));
        }
        let path = Path::new(user);
        let rel = if path.is_absolute() {
            let stripped = std::iter::once(&self.root_path)
                .chain(self.aliases.iter())
                .find_map(|base| path.strip_prefix(base).ok());
            match stripped {
                Some(r) => r.to_path_buf(),
                None => return Err(self.outside(user)),
            }
        } else {
            self.cwd_rel.join(path)
        };
        // `.` components carry nothing; `..` is left for the kernel to resolve
        // (beneath the root) so that symlinks before it are honoured correctly.
        let cleaned: PathBuf = rel
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        Ok(if cleaned.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cleaned
        })
    }

    pub(super) fn outside(&self, user: &str) -> PathError {
        PathError::Outside {
            path: user.to_owned(),
            root: self.root_path.display().to_string(),
        }
    }

    pub(super) fn map_errno(&self, user: &str, e: Errno) -> PathError {
        match e {
            Errno::XDEV => self.outside(user),
            Errno::LOOP => PathError::Loop(user.to_owned()),
            Errno::NOENT => PathError::NotFound(user.to_owned()),
            Errno::NOTDIR => PathError::NotADirectory(user.to_owned()),
            Errno::ISDIR => PathError::IsADirectory(user.to_owned()),
            Errno::NAMETOOLONG => PathError::Io {
                path: user.to_owned(),
                message: "the name is too long".into(),
            },
            other => PathError::Io {
                path: user.to_owned(),
                message: io::Error::from(other).to_string(),
            },
        }
    }

    /// `openat2` beneath the root, retried when the kernel saw a concurrent rename
    /// (`EAGAIN`), which it reports rather than risk a wrong answer.
    pub fn open_beneath(
        &self,
        rel: &Path,
        flags: OFlags,
        extra: ResolveFlags,
    ) -> Result<OwnedFd, Errno> {
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.root,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH | extra,
            ) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// Where an open handle really is, relative to the root. Fails closed: a handle
    /// that is not beneath the root (it cannot be, unless the root moved) is refused.
    pub fn real_rel(&self, user: &str, fd: impl AsFd) -> Result<PathBuf, PathError> {
        let target = fd_path(fd.as_fd()).map_err(|e| PathError::Io {
            path: user.to_owned(),
            message: format!("cannot tell where it is ({e}); is /proc mounted?"),
        })?;
        let root_now = fd_path(self.root.as_fd()).map_err(|e| PathError::Io {
            path: user.to_owned(),
            message: format!("cannot tell where the workspace is ({e})"),
        })?;
        if target.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return Err(PathError::NotFound(user.to_owned()));
        }
        target
            .strip_prefix(&root_now)
            .map(Path::to_path_buf)
            .map_err(|_| self.outside(user))
    }

    /// Opens a regular file for reading. FIFOs, devices and sockets are refused
    /// before anything is read (the open is non-blocking, so a FIFO cannot hang it).
    pub fn open_read(&self, user: &str) -> Result<Opened, PathError> {
        let rel = self.lexical(user)?;
        let fd = self
            .open_beneath(
                &rel,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
                ResolveFlags::empty(),
            )
            .map_err(|e| self.map_errno(user, e))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| PathError::Io {
            path: user.to_owned(),
            message: e.to_string(),
        })?;
        check_regular(user, &meta)?;
        let rel = self.real_rel(user, &file)?;
        Ok(Opened { file, meta, rel })
    }

    /// Opens a directory (for searching or as a working directory).
    pub fn open_dir(&self, user: &str) -> Result<(OwnedFd, PathBuf), PathError> {
        let rel = self.lexical(user)?;
        let fd = self
            .open_beneath(
                &rel,
                OFlags::PATH | OFlags::DIRECTORY,
                ResolveFlags::empty(),
            )
            .map_err(|e| self.map_errno(user, e))?;
        let real = self.real_rel(user, &fd)?;
        Ok((fd, real))
    }

    /// Opens a file or directory to look at it (search roots may be either).
    pub fn open_path(&self, user: &str) -> Result<(File, Metadata, PathBuf), PathError> {
        let rel = self.lexical(user)?;
        let fd = self
            .open_beneath(&rel, OFlags::PATH, ResolveFlags::empty())
            .map_err(|e| self.map_errno(user, e))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| PathError::Io {
            path: user.to_owned(),
            message: e.to_string(),
        })?;
        let real = self.real_rel(user, &file)?;
        Ok((file, meta, real))
    }

    /// The protected pattern that covers `rel` or one of its ancestors, if any.
    pub fn protected_by(&self, rel: &Path) -> Option<String> {
        self.protected.matches(rel)
    }

    /// The protected paths.
    pub fn protected(&self) -> &Protected {
        &self.protected
    }
}

pub(super) fn check_regular(user: &str, meta: &Metadata) -> Result<(), PathError> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    if ft.is_dir() {
        return Err(PathError::IsADirectory(user.to_owned()));
    }
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_fifo() {
        "named pipe (FIFO)"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(PathError::NotRegular {
        path: user.to_owned(),
        kind,
    })
}

/// Splits `a/b/c` into `a/b` and `c`; `None` when the last part is not a name.
pub(super) fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    match rel.components().next_back() {
        Some(Component::Normal(name)) => Some((rel.parent().unwrap_or(Path::new("")), name)),
        _ => None,
    }
}

fn fd_path(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|source| Error::Workspace {
        path: p.to_path_buf(),
        source,
    })
}

/// Removes `.` and resolves `..` by text, for comparing a configured path with the
/// paths a model gives, and for judging the paths a command names (never for access
/// decisions of the file tools, which the kernel makes).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
