//! Is a local peer one of the commands Keel runs? The check a control server
//! (the store owner's socket, the dashboard) makes before acting for a client.
//!
//! A process that a Keel command started is recognised by where it lives and
//! where it comes from, never by anything it could clear or set itself:
//! - **its PID namespace**: where the system allows, every command runs in a PID
//!   namespace of its own, nested below the one Keel runs in. A process whose
//!   `NSpid` line (in `/proc/<pid>/status`) is longer than Keel's own lives in a
//!   nested namespace and is refused. It cannot leave it: that would take a handle
//!   on an outer namespace, and it sees no process outside its own;
//! - **its ancestry**: without a PID namespace, a command runs under a supervisor
//!   process named [`SUPERVISOR_NAME`] that is a child subreaper, so every
//!   process the command starts — double forks, `setsid`, cleared environments
//!   included — keeps it as an ancestor while it lives. The supervisor's name
//!   cannot be taken off it by the command (only a process itself may rename
//!   itself), and a process that merely calls itself that is only refused more.
//!   A peer whose chain of parents passes through a supervisor, or through the
//!   process making the check, is refused.
//!
//! The socket check ([`check_unix_peer`]) also requires the peer to run as the
//! same user, and holds a pidfd of the connecting process (`SO_PEERPIDFD`,
//! Linux 6.5+) across the reads of `/proc`, so a pid reused by another process
//! cannot be mistaken for the peer: if the peer is gone by the end, it is refused.
//!
//! What this cannot see: a command that killed its supervisor where neither a PID
//! namespace nor Landlock's signal scoping could protect it (then its survivors
//! have `init` as an ancestor), or a process a command got started outside its
//! tree (a cron job or systemd unit it wrote, with isolation off). Keel's start-up
//! report says which protections this system has.

use std::os::fd::{AsFd, OwnedFd};

/// The name (`comm`) of every exec supervisor process.
pub const SUPERVISOR_NAME: &str = "keel-supervise";

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The peer runs as another user.
    #[error("the client runs as uid {peer}, not as this process's uid {own}")]
    OtherUser {
        /// The peer's uid.
        peer: u32,
        /// This process's uid.
        own: u32,
    },
    /// The peer was started by a command Keel runs.
    #[error("the client (pid {pid}) was started by a command Keel runs ({why})")]
    SandboxedCommand {
        /// The peer's pid, as this process sees it.
        pid: i32,
        /// How it was recognised.
        why: String,
    },
    /// Who the peer is could not be established.
    #[error("the client could not be identified: {0}")]
    Unverifiable(String),
}

/// The identity of an accepted peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its pid, as this process sees it.
    pub pid: i32,
    /// Its uid.
    pub uid: u32,
}

/// Whether the process `pid` was started by a command Keel runs (see the module
/// docs). A process that cannot be examined counts as one.
pub fn from_sandboxed_command(pid: i32) -> bool {
    classify(pid).is_err()
}

/// Like [`from_sandboxed_command`], with the reason.
pub fn classify(pid: i32) -> Result<(), Refusal> {
    if pid <= 0 {
        return Err(Refusal::Unverifiable(format!(
            "pid {pid} (a process outside this PID namespace)"
        )));
    }
    let own_depth = ns_depth("self")
        .ok_or_else(|| Refusal::Unverifiable("cannot read /proc/self/status".into()))?;
    let depth = ns_depth(&pid.to_string())
        .ok_or_else(|| Refusal::Unverifiable(format!("cannot read /proc/{pid}/status")))?;
    if depth > own_depth {
        return Err(Refusal::SandboxedCommand {
            pid,
            why: "it lives in a nested PID namespace".into(),
        });
    }
    let me = std::process::id() as i32;
    let mut current = pid;
    // Bounded: a chain of parents is never longer than the pid space, and a loop
    // (impossible, but /proc is read while it changes) must not hang the server.
    for _ in 0..4096 {
        if current == me && current != pid {
            return Err(Refusal::SandboxedCommand {
                pid,
                why: "it descends from this process".into(),
            });
        }
        let Some((comm, ppid)) = stat(current) else {
            return Err(Refusal::Unverifiable(format!(
                "cannot read /proc/{current}/stat"
            )));
        };
        if comm == SUPERVISOR_NAME {
            return Err(Refusal::SandboxedCommand {
                pid,
                why: format!("it descends from the exec supervisor {current}"),
            });
        }
        if ppid <= 1 && ppid != me {
            return Ok(());
        }
        current = ppid;
    }
    Err(Refusal::Unverifiable(
        "its chain of parents does not end".into(),
    ))
}

/// How deeply nested the PID namespace of `/proc/<who>` is (the number of pids in
/// its `NSpid` line).
fn ns_depth(who: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{who}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    Some(line.split_whitespace().count())
}

/// `comm` and the parent's pid, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(String, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let ppid = text
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((comm, ppid))
}

/// Checks the peer of a connected Unix socket: same user, not started by a Keel
/// command, and still the same process at the end of the check.
pub fn check_unix_peer(socket: impl AsFd) -> Result<Peer, Refusal> {
    let cred = rustix::net::sockopt::socket_peercred(&socket)
        .map_err(|e| Refusal::Unverifiable(format!("no peer credentials: {e}")))?;
    let own = rustix::process::geteuid().as_raw();
    let uid = cred.uid.as_raw();
    if uid != own {
        return Err(Refusal::OtherUser { peer: uid, own });
    }
    let pid = cred.pid.as_raw_nonzero().get();
    // The connecting process itself, whatever becomes of its pid. Without
    // SO_PEERPIDFD (Linux < 6.5) a pidfd opened now is the next best thing.
    let pidfd = peer_pidfd(&socket).or_else(|| {
        rustix::process::pidfd_open(cred.pid, rustix::process::PidfdFlags::empty()).ok()
    });
    classify(pid)?;
    if let Some(fd) = &pidfd
        && exited(fd)
    {
        return Err(Refusal::Unverifiable(format!(
            "process {pid} exited while it was being checked"
        )));
    }
    Ok(Peer { pid, uid })
}

/// Whether the process behind a pidfd has exited (its pidfd polls readable).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
fn peer_pidfd(socket: &impl AsFd) -> Option<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // asm-generic/socket.h; rustix has no wrapper for it yet.
    const SO_PEERPIDFD: libc::c_int = 77;
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (the size of `fd`, which it
    // points to) and the new length into `len`; the socket descriptor is borrowed
    // for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    #[allow(unsafe_code)]
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn peer_pidfd(_socket: &impl AsFd) -> Option<OwnedFd> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_parent_are_not_commands_but_its_children_are() {
        // The test runner's own parent chain has no supervisor.
        let me = std::process::id() as i32;
        let parent = stat(me).unwrap().1;
        assert_eq!(classify(parent), Ok(()));
        assert_eq!(classify(me), Ok(()));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let verdict = classify(child.id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            matches!(verdict, Err(Refusal::SandboxedCommand { .. })),
            "{verdict:?}"
        );
        assert!(matches!(classify(0), Err(Refusal::Unverifiable(_))));
    }

    #[test]
    fn a_socket_peer_is_identified_by_its_credentials() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = check_unix_peer(&a).unwrap();
        assert_eq!(peer.pid, std::process::id() as i32);
        assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
    }
}
