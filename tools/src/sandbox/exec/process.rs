//! Running one command: spawn, watch, bound, kill.
//!
//! The command runs as `shell -c command` from a dedicated thread (which applies
//! the isolation plan to itself first, since Landlock and `unshare` act on the
//! calling thread and its future children). The child becomes the leader of a new
//! session, with no controlling terminal (so TIOCSTI has no terminal to inject
//! into), starts in the workspace directory by handle (`fchdir`), gets SIGKILL if
//! the spawning thread dies with Keel, reads an empty stdin (`/dev/null`), and
//! writes stdout and stderr into one pipe, as a terminal would show them.
//!
//! The thread then watches the child through a pidfd: it wakes when the child
//! exits, when the caller asks for a kill (timeout, cancellation), and every few
//! milliseconds in between to watch for a fork bomb. Fork bombs:
//! - for an unprivileged user, the kernel enforces the limit: the command starts
//!   with `RLIMIT_NPROC` set to the user's current task count plus
//!   `max_processes`;
//! - root is exempt from that limit, so the thread watches the system's task count
//!   (`/proc/loadavg`, one cheap read that stays cheap while a bomb makes every
//!   per-process file slow); when it has grown by more than `max_processes`, the
//!   command's process group is stopped (SIGSTOP, so it cannot fork while being
//!   counted), its processes are counted, and it is killed if over the limit or
//!   resumed if not. Measured here (2 cores, root): a `bomb | bomb &` bomb is
//!   caught within 20–60 ms at a few hundred processes on a quiet system.
//!
//! The thread runs at a raised priority where allowed, and all killing happens on
//! it: it exists before the command starts, so a bomb that fills the process table
//! cannot stop Keel from killing it by leaving no room for a new thread. Meanwhile
//! the caller reads the pipe into a head-and-tail buffer.
//!
//! Whatever the ending, every process of the command still alive is killed
//! (background jobs included: a command does not outlive its call), and the pipe
//! is drained for a short grace period.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::isolation::{self, Plan};
use super::output::HeadTail;
use super::procs;

/// How long to keep reading output after the command's processes were killed
/// (a process that escaped the kill may still hold the pipe).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Pause between process counts: short while a command is young (fork bombs go
/// off early and grow exponentially), longer once it has run for a while.
const POLL_FAST: Duration = Duration::from_millis(5);
const POLL_SLOW: Duration = Duration::from_millis(100);
const FAST_FOR: Duration = Duration::from_secs(3);
/// How long to wait for the watching thread to finish a kill.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What the watching thread reports.
#[derive(Debug)]
enum Event {
    /// The command started more processes than allowed; they are being killed.
    OverLimit,
    /// The shell was reaped and every other process of the command killed.
    Done {
        status: Result<ExitStatus, String>,
        leftovers: bool,
    },
}

/// What to run.
#[derive(Debug)]
pub(crate) struct Spec {
    pub shell: PathBuf,
    pub command: String,
    pub cwd: OwnedFd,
    pub env: Vec<(OsString, OsString)>,
    pub timeout: Duration,
    pub max_output: usize,
    pub max_processes: usize,
    pub isolation: Option<Plan>,
    /// `NAME=value` in every process's environment, to find escapees.
    pub marker: String,
}

/// Why the command stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its shell exited.
    Exited,
    /// It ran out of time.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
    /// It started more processes than allowed.
    ProcessLimit,
}

/// A finished command.
#[derive(Debug)]
pub(crate) struct Finished {
    pub ending: Ending,
    /// The shell's exit status, or why it is not known.
    pub status: Result<ExitStatus, String>,
    pub output: HeadTail,
    pub duration: Duration,
    /// Whether processes other than the shell were still running, and killed.
    pub leftovers: bool,
}

/// Runs the command to its end.
pub(crate) async fn run(spec: Spec, cancel: CancellationToken) -> Result<Finished, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (pid_tx, pid_rx) = oneshot::channel::<Result<u32, String>>();
    let (event_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let kill = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )
    .map_err(|e| format!("cannot create an eventfd: {e}"))?;
    let kill = std::sync::Arc::new(kill);
    let kill_for_watch = kill.clone();
    let Spec {
        shell,
        command,
        cwd,
        env,
        timeout,
        max_output,
        max_processes,
        isolation,
        marker,
    } = spec;
    // For an unprivileged user the kernel enforces the process limit itself: the
    // user's tasks now, plus the command's allowance (root is exempt from it).
    let nproc =
        (!rustix::process::getuid().is_root()).then(|| procs::user_tasks() + max_processes as u64);
    let start = Instant::now();
    std::thread::Builder::new()
        .name("keel-exec".into())
        .spawn(move || {
            if let Some(plan) = &isolation
                && let Err(e) = isolation::apply(plan)
            {
                let _ = pid_tx.send(Err(e));
                return;
            }
            let mut cmd = std::process::Command::new(&shell);
            cmd.arg("-c")
                .arg(&command)
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .stdout(writer)
                .stderr(writer2);
            // SAFETY: the closure runs in the child between fork and exec, where only
            // async-signal-safe calls are allowed. It makes only system calls
            // through rustix (setsid, setrlimit, fchdir, prctl(PR_SET_PDEATHSIG)), which
            // allocate nothing and take no locks, on a descriptor owned by the
            // closure. std offers no safe way to start a new session.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setsid()?;
                    if let Some(limit) = nproc {
                        rustix::process::setrlimit(
                            rustix::process::Resource::Nproc,
                            rustix::process::Rlimit {
                                current: Some(limit),
                                maximum: Some(limit),
                            },
                        )?;
                    }
                    rustix::process::fchdir(&cwd)?;
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::KILL,
                    ))?;
                    Ok(())
                });
            }
            let spawned = cmd.spawn();
            // Dropping the command closes this side's copies of the pipe.
            drop(cmd);
            match spawned {
                Ok(child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let watched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        watch(child, max_processes, &marker, &kill_for_watch, &event_tx);
                    }));
                    if let Err(panic) = watched {
                        // A bug, not the command's doing: say so rather than lose it.
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let _ = event_tx.send(Event::Done {
                            status: Err(format!("the thread watching the command failed: {why}")),
                            leftovers: false,
                        });
                    }
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(format!("could not start `{}`: {e}", shell.display())));
                }
            }
        })
        .map_err(|e| format!("cannot start a thread for the command: {e}"))?;

    let pid = pid_rx
        .await
        .map_err(|_| "the command's thread ended before starting it".to_owned())??;
    i32::try_from(pid).map_err(|_| format!("process id {pid} out of range"))?;
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| format!("cannot read the command's output: {e}"))?;
    let mut output = HeadTail::new(max_output);
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let mut done = None;
    let ending = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Done { status, leftovers }) => {
                    done = Some((status, leftovers));
                    break Ending::Exited;
                }
                Some(Event::OverLimit) => break Ending::ProcessLimit,
                None => break Ending::Exited,
            },
            read = pipe.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&buf[..n]),
            },
            () = &mut deadline => break Ending::TimedOut,
            () = cancel.cancelled() => break Ending::Cancelled,
        }
    };
    let duration = start.elapsed();
    if done.is_none() {
        // Ask the watching thread to kill everything, then wait until it has.
        let _ = rustix::io::write(&*kill, &1u64.to_ne_bytes());
        let reaped = tokio::time::timeout(KILL_WAIT, async {
            while let Some(event) = events.recv().await {
                if let Event::Done { status, leftovers } = event {
                    return Some((status, leftovers));
                }
            }
            None
        });
        done = reaped.await.ok().flatten();
    }
    let (status, leftovers) = done.unwrap_or_else(|| {
        (
            Err("the thread watching the command ended without reporting it".to_owned()),
            false,
        )
    });

    // Read what is left in the pipe; stop at EOF or after the grace period.
    let grace = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(grace);
    while !eof {
        tokio::select! {
            read = pipe.read(&mut buf) => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&buf[..n]),
            },
            () = &mut grace => break,
        }
    }
    Ok(Finished {
        ending,
        status,
        output,
        duration,
        leftovers,
    })
}

/// Waits for the child on the spawning thread, counting the command's processes
/// in between and killing them all when asked, over the limit, or at the end
/// (see the module docs).
fn watch(
    mut child: std::process::Child,
    max_processes: usize,
    marker: &str,
    kill: &OwnedFd,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
) {
    let pid = rustix::process::Pid::from_child(&child);
    let root = pid.as_raw_nonzero().get();
    // A runaway command must not starve the thread that stops it: raise this
    // thread's priority where allowed (it sleeps almost all the time).
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), -15);
    let started = Instant::now();
    let mut counting = true;
    let mut killed = false;
    let mut leftovers = false;
    let mut baseline = procs::host_tasks();
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    loop {
        let pause = if started.elapsed() < FAST_FOR {
            POLL_FAST
        } else {
            POLL_SLOW
        };
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: pause.as_nanos() as i64,
        };
        let (exited, kill_asked) = match &pidfd {
            Some(fd) => {
                let mut fds = [
                    rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN),
                    rustix::event::PollFd::new(kill, rustix::event::PollFlags::IN),
                ];
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
            }
            None => {
                // No pidfd (Linux before 5.3): look, then wait on the kill request.
                let mut fds = [rustix::event::PollFd::new(
                    kill,
                    rustix::event::PollFlags::IN,
                )];
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
                (
                    matches!(child.try_wait(), Ok(Some(_))),
                    !fds[0].revents().is_empty(),
                )
            }
        };
        if kill_asked && !killed {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(kill, &mut buf);
            leftovers |= procs::kill_all(root, marker);
            killed = true;
            counting = false;
        }
        if exited {
            let status = child
                .wait()
                .map_err(|e| format!("waiting for the shell failed: {e}"));
            // Background jobs and escapees do not outlive the command.
            leftovers |= procs::kill_all(root, marker);
            let _ = events.send(Event::Done { status, leftovers });
            return;
        }
        if counting
            && let (Some(base), Some(now)) = (baseline, procs::host_tasks())
            && now > base + max_processes as u64
        {
            // The system gained many tasks since the command started. Counting the
            // command's own processes while they fork is slow (their /proc files
            // wait on them), so freeze the command's group first, then count.
            let group = rustix::process::Pid::from_raw(root);
            if let Some(g) = group {
                let _ = rustix::process::kill_process_group(g, rustix::process::Signal::STOP);
            }
            let n = procs::count_session(root, max_processes);
            if n > max_processes {
                counting = false;
                killed = true;
                leftovers |= procs::kill_all(root, marker);
                let _ = events.send(Event::OverLimit);
            } else {
                // Mostly something else on the system grew: carry on, counting the
                // command's own processes as growth from here.
                if let Some(g) = group {
                    let _ = rustix::process::kill_process_group(g, rustix::process::Signal::CONT);
                }
                baseline = Some(now.saturating_sub(n as u64));
            }
        }
    }
}

/// How an exit status reads.
pub(crate) fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit status".to_owned(),
    }
}
