//! `path_resolver`: the one path resolver of the file tools
//! (`keel_tools::sandbox::PathResolver`).
//!
//! A fixture workspace holds files, a protected `.git`, symlinks that stay inside
//! (relative and absolute), symlinks that leave it (relative, absolute, through
//! `/proc`), a dangling link, a loop and a socket; a sibling directory holds a
//! "secret", and the workspace is opened through an alias (a symlink to it), as a
//! root given by a symlinked path is. The input is a path a model might give, where
//! `{root}`, `{alias}` and `{out}` stand for the workspace's real path, its alias and
//! the outside directory.
//!
//! Properties, for every way the tools resolve a path (read, directory, look-at,
//! write target with and without creating parents): never a panic; either a refusal
//! with a message, or a handle whose real path — read back from `/proc/self/fd`, not
//! from the resolver — is beneath the root, agrees with the real path the resolver
//! reports, and with the kernel's own resolution of the same path (`realpath`). A
//! write target is never in a protected directory, and names only plain components.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Component, Path, PathBuf};

use keel_tools::sandbox::PathResolver;

/// The temporary workspace and the resolver opened on it.
#[derive(Debug)]
pub struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    alias: PathBuf,
    out: PathBuf,
    cwd_rel: PathBuf,
    resolver: PathResolver,
    _socket: UnixListener,
}

impl Fixture {
    /// Builds the workspace in a new temporary directory.
    pub fn new() -> std::io::Result<Self> {
        use std::fs;
        use std::os::unix::fs::symlink;

        let dir = tempfile::tempdir()?;
        let base = dir.path().canonicalize()?;
        let root = base.join("ws");
        let out = base.join("outside");
        fs::create_dir_all(root.join("sub/deep"))?;
        fs::create_dir_all(root.join(".git/hooks"))?;
        fs::create_dir_all(&out)?;
        fs::write(root.join("a.txt"), "a")?;
        fs::write(root.join("sub/b.txt"), "b")?;
        fs::write(root.join("sub/deep/c.txt"), "c")?;
        fs::write(root.join(".git/config"), "[core]")?;
        fs::write(out.join("secret.txt"), "secret")?;
        symlink("sub", root.join("in_dir"))?;
        symlink("sub/b.txt", root.join("in_file"))?;
        symlink("../a.txt", root.join("sub/up_file"))?;
        symlink("../../outside", root.join("sub/out_rel"))?;
        symlink("../outside/secret.txt", root.join("out_file"))?;
        symlink(&out, root.join("out_abs"))?;
        symlink("/etc", root.join("etc"))?;
        symlink("/proc/self/root", root.join("proc_root"))?;
        symlink(root.join("a.txt"), root.join("in_abs"))?;
        symlink(".git/hooks", root.join("hooks"))?;
        symlink("missing", root.join("dangling"))?;
        symlink("loop2", root.join("loop1"))?;
        symlink("loop1", root.join("loop2"))?;
        fs::hard_link(out.join("secret.txt"), root.join("hard"))?;
        let socket = UnixListener::bind(root.join("sock"))?;
        let alias = base.join("alias");
        symlink("ws", &alias)?;
        // `{root}_evil/x`: a sibling whose name starts with the root's (CVE-2025-53110).
        fs::create_dir_all(base.join("ws_evil"))?;
        fs::write(base.join("ws_evil/x"), "evil")?;
        let resolver = PathResolver::open(
            &alias.join("sub"),
            Some(&alias),
            &[".git".to_owned(), ".keel".to_owned()],
        )
        .map_err(std::io::Error::other)?;
        assert_eq!(resolver.root(), root, "the root is canonicalised once");
        Ok(Self {
            _dir: dir,
            root,
            alias,
            out,
            cwd_rel: PathBuf::from("sub"),
            resolver,
            _socket: socket,
        })
    }

    /// The resolver under test.
    pub fn resolver(&self) -> &PathResolver {
        &self.resolver
    }

    /// Runs one input.
    pub fn run(&self, data: &[u8]) {
        let text = String::from_utf8_lossy(data)
            .replace("{root}", &self.root.to_string_lossy())
            .replace("{alias}", &self.alias.to_string_lossy())
            .replace("{out}", &self.out.to_string_lossy());
        let user = text.as_str();
        let r = &self.resolver;

        if let Ok((file, rel)) = r.open_read(user) {
            let real = self.check_handle(user, file.as_fd(), &rel);
            let meta = file.metadata().ok();
            assert!(
                meta.is_some_and(|m| m.is_file()),
                "read opened a non-file: {real:?}"
            );
        }
        if let Ok((fd, rel)) = r.open_dir(user) {
            let real = self.check_handle(user, fd.as_fd(), &rel);
            assert!(real.is_dir(), "open_dir opened a non-directory: {real:?}");
        }
        if let Ok((fd, rel)) = r.open_path(user) {
            self.check_handle(user, fd.as_fd(), &rel);
        }
        for create_parents in [false, true] {
            if let Ok(target) = r.write_target(user, create_parents) {
                let dir_real = fd_path(target.dir());
                assert!(
                    dir_real.starts_with(&self.root),
                    "`{user}`: a write would land in {dir_real:?}, outside {:?}",
                    self.root
                );
                let rel = target.rel();
                assert!(
                    rel.components().all(|c| matches!(c, Component::Normal(_))),
                    "`{user}`: the write target {rel:?} is not a plain relative path"
                );
                let mut expected = dir_real.clone();
                for m in target.missing() {
                    expected.push(m);
                }
                assert!(
                    self.root.join(rel).starts_with(&expected),
                    "`{user}`: the write target {rel:?} is not beneath its directory {expected:?}"
                );
                if let Some(Component::Normal(first)) = rel.components().next() {
                    assert!(
                        first != ".git" && first != ".keel",
                        "`{user}`: a write would land in the protected {rel:?}"
                    );
                }
                if !create_parents {
                    assert!(target.missing().is_empty());
                }
            }
        }
    }

    /// Checks an opened handle; returns its real path.
    fn check_handle(&self, user: &str, fd: std::os::fd::BorrowedFd<'_>, rel: &Path) -> PathBuf {
        let real = fd_path(fd);
        assert!(
            real.starts_with(&self.root),
            "`{user}` opened {real:?}, outside the workspace {:?}",
            self.root
        );
        assert_eq!(
            real,
            self.root.join(rel).components().collect::<PathBuf>(),
            "`{user}`: the resolver reports {rel:?} but opened {real:?}"
        );
        // The kernel's own resolution of the same path (components as `Path` reads
        // them, which is how the resolver reads the text) must name the same file.
        let given = Path::new(user);
        let full = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.root.join(&self.cwd_rel).join(given)
        };
        let full: PathBuf = full.components().collect();
        if let Ok(kernel) = std::fs::canonicalize(&full) {
            assert_eq!(
                kernel, real,
                "`{user}`: realpath says {kernel:?}, the resolver opened {real:?}"
            );
        }
        real
    }
}

/// Where a handle really is, as the kernel says.
fn fd_path(fd: std::os::fd::BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap_or_else(|e| panic!("/proc/self/fd cannot be read ({e}); is /proc mounted?"))
}
