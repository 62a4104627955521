//! Where a write lands, and writing it: the parent directory is opened beneath the
//! root, the content goes to a temporary file in it, which is synced and renamed
//! over the name.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{PathError, Workspace, check_regular, split};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where a write will land.
#[derive(Debug)]
pub(crate) struct WriteTarget {
    /// The deepest directory that exists, opened for writing.
    dir: OwnedFd,
    /// Directories to create beneath `dir` before the file.
    missing: Vec<OsString>,
    /// The file name.
    name: OsString,
    /// The real path of the file relative to the root.
    pub rel: PathBuf,
    /// The file as it is now, if it exists.
    pub existing: Option<Metadata>,
}

impl WriteTarget {
    /// The directory the file (or its first missing parent) is created in.
    pub(crate) fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.dir)
    }

    /// The directories to create beneath it.
    pub(crate) fn missing_dirs(&self) -> &[OsString] {
        &self.missing
    }
}

impl Workspace {
    /// Works out where a write to `user` lands, refusing paths outside the root,
    /// protected paths, directories and special files. Nothing is changed yet.
    pub fn write_target(&self, user: &str, create_parents: bool) -> Result<WriteTarget, PathError> {
        let rel = self.lexical(user)?;
        if user.ends_with('/') {
            return Err(PathError::IsADirectory(user.to_owned()));
        }
        let target = match self.open_beneath(&rel, OFlags::PATH, ResolveFlags::empty()) {
            Ok(fd) => self.existing_target(user, fd)?,
            Err(Errno::NOENT) => self.new_target(user, &rel, create_parents)?,
            Err(e) => return Err(self.map_errno(user, e)),
        };
        if let Some(pattern) = self.protected_by(&target.rel) {
            return Err(PathError::Protected {
                path: user.to_owned(),
                pattern,
            });
        }
        if let Some(why) = self.layout_guard(&target.rel) {
            return Err(PathError::Layout {
                path: user.to_owned(),
                why,
            });
        }
        Ok(target)
    }

    fn existing_target(&self, user: &str, fd: OwnedFd) -> Result<WriteTarget, PathError> {
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| PathError::Io {
            path: user.to_owned(),
            message: e.to_string(),
        })?;
        check_regular(user, &meta)?;
        let real = self.real_rel(user, &file)?;
        let (parent, name) =
            split(&real).ok_or_else(|| PathError::IsADirectory(user.to_owned()))?;
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir = self
            .open_beneath(
                parent,
                OFlags::RDONLY | OFlags::DIRECTORY,
                ResolveFlags::NO_SYMLINKS,
            )
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOENT => PathError::Raced(user.to_owned()),
                e => self.map_errno(user, e),
            })?;
        // The name must still be the file we looked at, or someone moved things.
        let now = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|_| PathError::Raced(user.to_owned()))?;
        if now.st_ino != meta.ino() || now.st_dev != meta.dev() {
            return Err(PathError::Raced(user.to_owned()));
        }
        Ok(WriteTarget {
            dir,
            missing: Vec::new(),
            name: name.to_os_string(),
            rel: real,
            existing: Some(meta),
        })
    }

    fn new_target(
        &self,
        user: &str,
        rel: &Path,
        create_parents: bool,
    ) -> Result<WriteTarget, PathError> {
        let (parent, name) = split(rel).ok_or_else(|| PathError::IsADirectory(user.to_owned()))?;
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        // Walk down the parent path to the deepest directory that exists.
        let components: Vec<Component> = parent.components().collect();
        let mut existing = components.len();
        let dir = loop {
            let prefix: PathBuf = components[..existing].iter().collect();
            let prefix = if prefix.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                prefix
            };
            match self.open_beneath(
                &prefix,
                OFlags::RDONLY | OFlags::DIRECTORY,
                ResolveFlags::empty(),
            ) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if existing > 0 && create_parents => existing -= 1,
                Err(Errno::NOENT) => return Err(PathError::NotFound(parent.display().to_string())),
                Err(e) => return Err(self.map_errno(user, e)),
            }
        };
        let mut missing = Vec::new();
        for c in &components[existing..] {
            match c {
                Component::Normal(n) => missing.push(n.to_os_string()),
                _ => return Err(PathError::NotFound(user.to_owned())),
            }
        }
        if missing.is_empty() {
            // The parent exists: is the name a symlink that leads nowhere (or out)?
            match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st)
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Symlink =>
                {
                    return Err(PathError::DanglingLink(user.to_owned()));
                }
                Ok(_) => return Err(PathError::Raced(user.to_owned())),
                Err(_) => {}
            }
        }
        let mut real = self.real_rel(user, &dir)?;
        for m in &missing {
            real.push(m);
        }
        real.push(name);
        Ok(WriteTarget {
            dir,
            missing,
            name: name.to_os_string(),
            rel: real,
            existing: None,
        })
    }

    /// Writes `content` to the target: missing directories are created, the bytes go
    /// to a temporary file in the same directory, are synced, and the file is renamed
    /// over the name. An existing file's permission bits are kept.
    pub fn commit(
        &self,
        user: &str,
        target: WriteTarget,
        content: &[u8],
    ) -> Result<Metadata, PathError> {
        let io_err = |e: io::Error| PathError::Io {
            path: user.to_owned(),
            message: e.to_string(),
        };
        let mut dir = target.dir;
        for name in &target.missing {
            match rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io_err(e.into())),
            }
            dir = rustix::fs::openat(
                &dir,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => PathError::Raced(user.to_owned()),
                e => io_err(e.into()),
            })?;
        }
        let mode = target
            .existing
            .as_ref()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o666);
        let (tmp_name, tmp) = create_temp(&dir, mode).map_err(io_err)?;
        let result = (|| -> io::Result<Metadata> {
            let mut file = File::from(tmp);
            file.write_all(content)?;
            if target.existing.is_some() {
                // Created with the umask applied; an existing file keeps its own bits.
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            file.sync_all()?;
            let meta = file.metadata()?;
            rustix::fs::renameat(&dir, &tmp_name, &dir, target.name.as_os_str())?;
            Ok(meta)
        })();
        let meta = match result {
            Ok(meta) => meta,
            Err(e) => {
                let _ = rustix::fs::unlinkat(&dir, &tmp_name, AtFlags::empty());
                return Err(match e.raw_os_error() {
                    Some(code) if Errno::from_raw_os_error(code) == Errno::ISDIR => {
                        PathError::IsADirectory(user.to_owned())
                    }
                    _ => io_err(e),
                });
            }
        };
        // The rename is durable once the directory is synced; failing to sync a
        // directory (some filesystems refuse) does not undo the write.
        let _ = rustix::fs::fsync(&dir);
        Ok(meta)
    }
}

fn create_temp(dir: &OwnedFd, mode: u32) -> io::Result<(OsString, OwnedFd)> {
    for _ in 0..16 {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = format!(
            "{}-{n}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let hash = blake3::hash(seed.as_bytes()).to_hex();
        let name = OsString::from(format!(".keel-{}.tmp", &hash[..16]));
        match rustix::fs::openat(
            dir,
            name.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ) {
            Ok(fd) => return Ok((name, fd)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("could not create a temporary file"))
}
