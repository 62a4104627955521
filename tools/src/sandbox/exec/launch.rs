//! Starting a command's processes: the only code that runs between a fork and an
//! exec. Everything it needs is prepared beforehand ([`Prepared`]); the child side
//! makes raw system calls only — no allocation, no lock, no panic — because it
//! runs in a copy of a multi-threaded process in which another thread may have held
//! the allocator's lock at the moment of the fork.
//!
//! Every command runs under a **supervisor**: a copy of Keel made by `clone`,
//! named [`SUPERVISOR_NAME`](crate::sandbox::peer::SUPERVISOR_NAME), not dumpable,
//! ignoring every signal it can, dying with Keel (`PR_SET_PDEATHSIG`). It starts
//! the shell with `CLONE_VM | CLONE_VFORK` (no second copy of Keel's page tables),
//! then only reaps, and reports on a pipe the shell's exit status and whether any
//! other process was still running when the shell exited. Two shapes ([`Shape`]):
//! - **namespaced**: the supervisor is created with `CLONE_NEWPID | CLONE_NEWNS`
//!   (plus `CLONE_NEWUSER` when not root — the parent then writes the id maps, the
//!   same uid and gid inside as outside, while the child waits on a pipe — and
//!   `CLONE_NEWNET` when the network is cut). It is pid 1 of the command's PID
//!   namespace: the kernel drops every signal the command sends it, and when it
//!   exits (right after the shell) the kernel kills every process left in the
//!   namespace. It mounts a `/proc` of its own (showing only the command's
//!   processes) and hides the paths it is given under empty read-only mounts.
//! - **supervised**: no namespace; the supervisor is a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`): every process the command starts stays in its
//!   subtree whatever it does (`setsid`, double forks, `env -i`), so Keel can find
//!   and kill them all.
//!
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// How a command's processes are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The shell is pid 1 of a new PID (and mount) namespace.
    Namespaced {
        /// Also a new user namespace (not root).
        user: bool,
        /// Also a new, empty network namespace.
        net: bool,
    },
    /// A subreaper supervisor process, then the shell.
    Supervised,
}

/// A path to hide from the command (namespaced shape only).
#[derive(Debug)]
pub(crate) enum Hide {
    /// Under an empty read-only tmpfs.
    Dir(CString),
    /// Under `/dev/null` (a socket becomes something nothing can connect to).
    File(CString),
}

/// Capabilities root's commands lose: those that read other processes' memory
/// (ptrace, BPF, perf, raw I/O, modules), undo mounts or reach files by handle.
const DROPPED_CAPS: &[libc::c_int] = &[
    2,  // CAP_DAC_READ_SEARCH (open_by_handle_at)
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
    38, // CAP_PERFMON
    39, // CAP_BPF
];

/// Everything the child side needs, prepared before the fork.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub shape: Shape,
    pub shell: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: OwnedFd,
    /// The working directory's absolute path (namespaced shape): a descriptor
    /// opened outside the command's mount namespace would resolve `..` and paths
    /// below it in the outer namespace's mounts, where nothing is hidden, so the
    /// shell enters it by path and checks it is the same directory as `cwd`.
    pub cwd_path: Option<CString>,
    pub output: OwnedFd,
    pub stdin: OwnedFd,
    /// `RLIMIT_NPROC` for the command.
    pub nproc: Option<u64>,
    /// A Landlock ruleset to enforce.
    pub landlock: Option<OwnedFd>,
    pub hide: Vec<Hide>,
    /// Drop [`DROPPED_CAPS`] from the bounding set (root).
    pub drop_caps: bool,
    /// The supervisor's name.
    pub name: CString,
}

/// What was started.
#[derive(Debug)]
pub(crate) struct Started {
    pub shape: Shape,
    /// The supervisor, which Keel waits for.
    pub pid: rustix::process::Pid,
    pub pidfd: Option<OwnedFd>,
    /// The supervisor's report arrives here (see [`read_report`]).
    pub status: OwnedFd,
}

/// Steps of the child side, as reported on the error pipe.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Step {
    Sync = 1,
    DeathSignal,
    MountPrivate,
    MountProc,
    Hide,
    Session,
    Limit,
    Chdir,
    Stdio,
    Caps,
    NoNewPrivs,
    Landlock,
    Exec,
    Supervisor,
    Fork,
}

fn describe_step(step: u32, index: u32) -> String {
    match step {
        1 => "wait for the user namespace's id maps".into(),
        2 => "set the parent-death signal".into(),
        3 => "make the mount namespace private".into(),
        4 => "mount a /proc of its own".into(),
        5 => format!("hide path #{index}"),
        6 => "start a new session".into(),
        7 => "set the process limit".into(),
        8 if index == 1 => "enter the working directory: it is not the directory that was checked (it was replaced, or it is hidden from commands)".into(),
        8 => "enter the working directory".into(),
        9 => "set up stdin/stdout/stderr".into(),
        10 => "drop capabilities".into(),
        11 => "set no_new_privs".into(),
        12 => "apply Landlock".into(),
        13 => "execute the shell".into(),
        14 => "become a supervisor".into(),
        15 => "start the shell".into(),
        _ => format!("step {step}"),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))
}

/// Bytes of stack for the shell's side of the `CLONE_VFORK` clone.
const SHELL_STACK: usize = 128 * 1024;

/// Starts the command. Blocking (until the shell has been executed or failed).
pub(crate) fn start(p: &Prepared) -> Result<Started, String> {
    let argv: Vec<*const libc::c_char> = p
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = p
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let mut stack = vec![0u8; SHELL_STACK];
    let (err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let sync = match p.shape {
        Shape::Namespaced { user: true, .. } => Some(pipe()?),
        _ => None,
    };
    let flags = match p.shape {
        Shape::Namespaced { user, net } => {
            let mut f = libc::CLONE_NEWPID | libc::CLONE_NEWNS;
            if user {
                f |= libc::CLONE_NEWUSER;
            }
            if net {
                f |= libc::CLONE_NEWNET;
            }
            f
        }
        Shape::Supervised => 0,
    };
    let child = Child {
        p,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        err: err_w.as_raw_fd(),
        sync: sync.as_ref().map(|(r, w)| (r.as_raw_fd(), w.as_raw_fd())),
        status: status_w.as_raw_fd(),
        // The stack grows down from the end of the buffer, 16-byte aligned.
        stack_top: (stack.as_mut_ptr() as usize + SHELL_STACK) & !15,
    };
    let pid = raw_clone(flags)?;
    if pid == 0 {
        // In the supervisor: never returns.
        child.supervise();
    }
    drop(err_w);
    drop(status_w);
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| format!("clone returned an invalid pid {pid}"))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    if let Some((sync_r, sync_w)) = sync {
        drop(sync_r);
        let mapped = write_id_maps(pid);
        if mapped.is_ok() {
            let _ = rustix::io::write(&sync_w, &[1]);
        }
        drop(sync_w);
        if let Err(e) = mapped {
            reap(pid);
            return Err(e);
        }
    }
    // EOF: the shell was executed (its copy closes at exec, the supervisor's right
    // after). Otherwise a report.
    let mut report = [0u8; 12];
    let mut got = 0;
    while got < report.len() {
        match rustix::io::read(&err_r, &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("reading the command's start-up report failed: {e}")),
        }
    }
    drop(stack);
    if got == 0 {
        return Ok(Started {
            shape: p.shape,
            pid,
            pidfd,
            status: status_r,
        });
    }
    reap(pid);
    let word = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&report[i..i + 4]);
        u32::from_ne_bytes(b)
    };
    let (step, errno, index) = (word(0), word(4) as i32, word(8));
    Err(format!(
        "could not start the command: failed to {}: {}",
        describe_step(step, index),
        std::io::Error::from_raw_os_error(errno)
    ))
}

fn reap(pid: rustix::process::Pid) {
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
}

fn write_id_maps(pid: rustix::process::Pid) -> Result<(), String> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let base = format!("/proc/{}", pid.as_raw_nonzero());
    for (file, text) in [
        ("setgroups", "deny".to_owned()),
        ("uid_map", format!("{uid} {uid} 1\n")),
        ("gid_map", format!("{gid} {gid} 1\n")),
    ] {
        std::fs::write(format!("{base}/{file}"), text)
            .map_err(|e| format!("cannot write the command's user namespace {file}: {e}"))?;
    }
    Ok(())
}

/// `clone` with `flags | SIGCHLD` and no new stack: a fork, into new namespaces.
fn raw_clone(flags: libc::c_int) -> Result<libc::pid_t, String> {
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: without CLONE_VM or a new stack this is fork(2) with namespace flags:
    // the child gets a copy of this address space and continues from here on its
    // own copy of the stack. glibc's fork bookkeeping is skipped, which is sound
    // only because the child makes raw system calls until it execs or exits (see
    // `Child`), never touching glibc state another thread may have held.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if rc < 0 {
        return Err(format!(
            "could not start the command: clone failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    libc::pid_t::try_from(rc).map_err(|_| format!("clone returned {rc}"))
}

/// The child side. Every method runs between fork and exec: raw system calls only.
struct Child<'a> {
    p: &'a Prepared,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    err: RawFd,
    sync: Option<(RawFd, RawFd)>,
    status: RawFd,
    stack_top: usize,
}

/// The entry of the shell's side of the `CLONE_VFORK` clone.
extern "C" fn shell_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` the supervisor passed to `clone`; it lives on
    // the supervisor's stack, which stays put while this side runs (CLONE_VFORK
    // suspends the supervisor until this side executes the shell or exits).
    #[allow(unsafe_code)]
    let child = unsafe { &*(arg as *const Child<'_>) };
    child.shell()
}

/// The errno of the last failed call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

// SAFETY (for every `unsafe` block below): these are the async-signal-safe system
// call wrappers of libc (write, read, close, prctl, mount, setsid, setrlimit,
// fchdir, dup2, signal, sigprocmask, syscall, execve, waitpid, _exit), called with
// pointers to memory prepared before the fork (C strings, pointer arrays, stack
// buffers), which stays valid because this process is a copy that only execs or
// exits.
#[allow(unsafe_code)]
impl Child<'_> {
    fn fail(&self, step: Step, index: u32) -> ! {
        let mut report = [0u8; 12];
        report[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        report[4..8].copy_from_slice(&errno().to_ne_bytes());
        report[8..].copy_from_slice(&index.to_ne_bytes());
        unsafe {
            libc::write(self.err, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        }
    }

    fn check(&self, rc: libc::c_long, step: Step) {
        if rc < 0 {
            self.fail(step, 0);
        }
    }

    /// The shell's side: set everything up, then exec.
    fn shell(&self) -> ! {
        let p = self.p;
        unsafe {
            self.check(
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into(),
                Step::DeathSignal,
            );
            self.check(libc::setsid().into(), Step::Session);
            if let Some(n) = p.nproc {
                let limit = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                self.check(
                    libc::setrlimit(libc::RLIMIT_NPROC, &limit).into(),
                    Step::Limit,
                );
            }
            match &p.cwd_path {
                Some(path) => {
                    self.check(libc::chdir(path.as_ptr()).into(), Step::Chdir);
                    let mut checked: libc::stat = std::mem::zeroed();
                    let mut entered: libc::stat = std::mem::zeroed();
                    self.check(
                        libc::fstat(p.cwd.as_raw_fd(), &mut checked).into(),
                        Step::Chdir,
                    );
                    self.check(libc::stat(c".".as_ptr(), &mut entered).into(), Step::Chdir);
                    if checked.st_dev != entered.st_dev || checked.st_ino != entered.st_ino {
                        self.fail(Step::Chdir, 1);
                    }
                }
                None => self.check(libc::fchdir(p.cwd.as_raw_fd()).into(), Step::Chdir),
            }
            for (from, to) in [
                (p.stdin.as_raw_fd(), 0),
                (p.output.as_raw_fd(), 1),
                (p.output.as_raw_fd(), 2),
            ] {
                self.check(libc::dup2(from, to).into(), Step::Stdio);
            }
            // Rust ignores SIGPIPE and the supervisor ignores more: an ignored
            // signal stays ignored across exec. Handlers reset themselves.
            for sig in 1..32 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if p.drop_caps {
                for cap in DROPPED_CAPS {
                    // EINVAL: a capability this kernel does not know; nothing to drop.
                    let rc = libc::prctl(libc::PR_CAPBSET_DROP, *cap, 0, 0, 0);
                    if rc < 0 && errno() != libc::EINVAL {
                        self.fail(Step::Caps, *cap as u32);
                    }
                }
            }
            if let Some(ruleset) = &p.landlock {
                self.check(
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(),
                    Step::NoNewPrivs,
                );
                self.check(
                    libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0),
                    Step::Landlock,
                );
            }
            // Descriptors an embedder left inheritable do not reach the command
            // (Linux 5.11+; before, Rust's own descriptors are close-on-exec anyway).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            libc::execve(p.shell.as_ptr(), self.argv, self.envp);
            self.fail(Step::Exec, 0)
        }
    }

    fn mounts(&self) {
        let p = self.p;
        unsafe {
            self.check(
                libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
                .into(),
                Step::MountPrivate,
            );
            self.check(
                libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                )
                .into(),
                Step::MountProc,
            );
            for (i, hide) in p.hide.iter().enumerate() {
                let rc = match hide {
                    Hide::Dir(path) => libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        c"size=4k,mode=0555".as_ptr().cast(),
                    ),
                    Hide::File(path) => libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                };
                if rc < 0 {
                    self.fail(Step::Hide, i as u32);
                }
            }
        }
    }

    /// The supervisor's side: set up, start the shell, then reap until no child
    /// is left, reporting the shell's status (see the module docs).
    fn supervise(&self) -> ! {
        let p = self.p;
        unsafe {
            if let Some((r, w)) = self.sync {
                libc::close(w);
                let mut byte = 0u8;
                if libc::read(r, (&raw mut byte).cast(), 1) != 1 {
                    self.fail(Step::Sync, 0);
                }
                libc::close(r);
            }
            self.check(
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0).into(),
                Step::DeathSignal,
            );
            // It holds a copy of Keel's memory: nothing may read it.
            self.check(
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).into(),
                Step::Supervisor,
            );
            self.check(
                libc::prctl(libc::PR_SET_NAME, p.name.as_ptr(), 0, 0, 0).into(),
                Step::Supervisor,
            );
            let namespaced = matches!(p.shape, Shape::Namespaced { .. });
            if namespaced {
                self.mounts();
            } else {
                self.check(
                    libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0).into(),
                    Step::Supervisor,
                );
            }
            // Only SIGKILL and SIGSTOP still reach it (and, as pid 1 of the
            // command's namespace, not even those from inside). The shell resets them.
            for sig in 1..32 {
                if ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD].contains(&sig) {
                    libc::signal(sig, libc::SIG_IGN);
                }
            }
            let arg = std::ptr::from_ref(self).cast_mut().cast::<libc::c_void>();
            let shell = libc::clone(
                shell_entry,
                self.stack_top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                arg,
            );
            if shell < 0 {
                self.fail(Step::Fork, 0);
            }
            // Keep only the report pipe (as descriptor 3): the output pipe, the
            // error pipe and everything else of Keel's must not stay open here, or
            // the output would never end (other commands' pipes neither).
            if libc::dup2(self.status, 3) < 0 {
                libc::_exit(126);
            }
            if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0) < 0 {
                for fd in 4..4096 {
                    libc::close(fd);
                }
            }
            loop {
                let mut status: libc::c_int = 0;
                let pid = libc::waitpid(-1, &mut status, 0);
                if pid < 0 {
                    if errno() == libc::EINTR {
                        continue;
                    }
                    libc::_exit(0);
                }
                if pid != shell {
                    continue;
                }
                // Anything still running? Orphans are re-parented to this process,
                // so any process left has it as an ancestor, and some as parent.
                let mut other: libc::c_int = 0;
                let left = libc::waitpid(-1, &mut other, libc::WNOHANG) >= 0;
                let mut report = [0u8; 8];
                report[..4].copy_from_slice(&status.to_ne_bytes());
                report[4..].copy_from_slice(&i32::from(left).to_ne_bytes());
                libc::write(3, report.as_ptr().cast(), report.len());
                if namespaced {
                    // Pid 1 leaves: the kernel kills everything else in the namespace.
                    libc::_exit(0);
                }
            }
        }
    }
}

/// The supervisor's report: the shell's raw wait status, and whether other
/// processes were still running when it exited. `None` until it is there.
pub(crate) fn read_report(fd: &OwnedFd) -> Option<(i32, bool)> {
    let mut bytes = [0u8; 8];
    match rustix::io::read(fd, &mut bytes) {
        Ok(8) => {
            let mut status = [0u8; 4];
            status.copy_from_slice(&bytes[..4]);
            let mut left = [0u8; 4];
            left.copy_from_slice(&bytes[4..]);
            Some((i32::from_ne_bytes(status), i32::from_ne_bytes(left) != 0))
        }
        _ => None,
    }
}
