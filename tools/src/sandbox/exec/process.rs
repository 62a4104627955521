//! Running one command: start, watch, bound, kill.
//!
//! A dedicated thread starts the command ([`launch`](super::launch), in the shape
//! the [`Plan`] chose) and then watches it through a pidfd: it wakes when the
//! watched process exits, when the caller asks for a kill (timeout, cancellation),
//! and every few milliseconds in between to watch for a fork bomb. Meanwhile the
//! caller reads the output pipe into a head-and-tail buffer.
//!
//! Every process of the command is gone when the call ends, whatever it did:
//! - **namespaced**: the shell is pid 1 of the command's PID namespace; when it
//!   exits (or Keel kills it), the kernel kills every other process in the
//!   namespace before the exit is reported. Nothing inside can see its parent.
//! - **supervised**: the supervisor reports the shell's exit; Keel then kills every
//!   descendant of the supervisor (a subreaper, so orphans stay its descendants),
//!   then the supervisor. If the command kills its supervisor (possible only with
//!   isolation off and no PID namespace: otherwise the supervisor is invisible or
//!   outside the command's Landlock signal scope), the shell dies with it
//!   (`PR_SET_PDEATHSIG`), the call ends at once with an error saying so, and
//!   processes that had already detached cannot all be found.
//!
//! Fork bombs: for an unprivileged user the kernel enforces the limit (the command
//! starts with `RLIMIT_NPROC`: its allowance in a user namespace of its own, or the
//! user's current task count plus the allowance without one). Root is exempt, so
//! the thread watches the system's task count (`/proc/loadavg`, one cheap read that
//! stays cheap while a bomb makes per-process files slow); when it has grown by
//! more than `max_processes`, the command's process group is stopped, its processes
//! are counted, and they are killed if over the limit or resumed if not.
//!
//! The thread runs at a raised priority where allowed, and all killing happens on
//! it: it exists before the command starts, so a bomb that fills the process table
//! cannot stop Keel from killing it by leaving no room for a new thread.

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::isolation::Plan;
use super::launch::{self, Prepared, Shape, Started};
use super::output::HeadTail;
use super::procs;
use crate::sandbox::peer::SUPERVISOR_NAME;

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
    /// The command ended and every process of it is gone.
    Done {
        status: Result<ExitStatus, String>,
        leftovers: Option<bool>,
    },
}

/// What to run.
#[derive(Debug)]
pub(crate) struct Spec {
    pub shell: PathBuf,
    pub command: String,
    pub cwd: OwnedFd,
    /// The working directory's absolute path.
    pub cwd_path: String,
    pub env: Vec<(OsString, OsString)>,
    pub timeout: Duration,
    pub max_output: usize,
    pub max_processes: usize,
    pub plan: Plan,
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
    /// Whether processes other than the shell were still running, and killed
    /// (`None`: not known, the kernel killed them with the PID namespace).
    pub leftovers: Option<bool>,
}

fn c_string(bytes: Vec<u8>, what: &str) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

/// Everything the child side needs, built off the async executor.
#[allow(clippy::too_many_arguments)]
fn prepare(
    shell: PathBuf,
    command: String,
    cwd: OwnedFd,
    cwd_path: String,
    env: Vec<(OsString, OsString)>,
    output: OwnedFd,
    nproc: Option<u64>,
    plan: Plan,
) -> Result<Prepared, String> {
    let stdin = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let argv0 = shell.file_name().map_or_else(
        || shell.as_os_str().as_bytes().to_vec(),
        |n| n.as_bytes().to_vec(),
    );
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in env {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(c_string(kv, "an environment variable")?);
    }
    Ok(Prepared {
        shape: plan.shape,
        shell: c_string(shell.into_os_string().into_vec(), "the shell's path")?,
        argv: vec![
            c_string(argv0, "the shell's name")?,
            c"-c".into(),
            c_string(command.into_bytes(), "the command")?,
        ],
        envp,
        cwd,
        cwd_path: match plan.shape {
            Shape::Namespaced { .. } => Some(c_string(cwd_path.into_bytes(), "the directory")?),
            Shape::Supervised => None,
        },
        output,
        stdin,
        nproc,
        landlock: plan.landlock,
        hide: plan.hide,
        drop_caps: plan.drop_caps,
        name: c_string(SUPERVISOR_NAME.as_bytes().to_vec(), "the supervisor's name")?,
    })
}

/// Runs the command to its end.
pub(crate) async fn run(spec: Spec, cancel: CancellationToken) -> Result<Finished, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (started_tx, started_rx) = oneshot::channel::<Result<(), String>>();
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
        cwd_path,
        env,
        timeout,
        max_output,
        max_processes,
        plan,
    } = spec;
    let root = rustix::process::getuid().is_root();
    let start = Instant::now();
    std::thread::Builder::new()
        .name("keel-exec".into())
        .spawn(move || {
            // The kernel counts processes for an unprivileged user: in a user
            // namespace of its own, the command's alone; otherwise all the user's.
            let nproc = match (root, plan.own_user_count) {
                (true, _) => None,
                (false, true) => Some(max_processes as u64),
                (false, false) => Some(procs::user_tasks() + max_processes as u64),
            };
            let prepared = prepare(
                shell,
                command,
                cwd,
                cwd_path,
                env,
                OwnedFd::from(writer),
                nproc,
                plan,
            );
            let started = prepared.and_then(|p| {
                let started = launch::start(&p);
                // Closes this side's copy of the output pipe.
                drop(p);
                started
            });
            match started {
                Ok(started) => {
                    let _ = started_tx.send(Ok(()));
                    let watched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        watch(started, max_processes, &kill_for_watch, &event_tx);
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
                            leftovers: None,
                        });
                    }
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("cannot start a thread for the command: {e}"))?;

    started_rx
        .await
        .map_err(|_| "the command's thread ended before starting it".to_owned())??;
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
            None,
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

/// What the watcher waits on, besides time.
struct Wake {
    exited: bool,
    report: bool,
    kill: bool,
}

fn wait_for(started: &Started, kill: &OwnedFd, pause: Duration) -> Wake {
    use rustix::event::{PollFd, PollFlags};
    let timeout = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: pause.as_nanos() as i64,
    };
    let mut fds = vec![
        PollFd::new(kill, PollFlags::IN),
        PollFd::new(&started.status, PollFlags::IN),
    ];
    if let Some(fd) = &started.pidfd {
        fds.push(PollFd::new(fd, PollFlags::IN));
    }
    let _ = rustix::event::poll(&mut fds, Some(&timeout));
    let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
    Wake {
        kill: ready(0),
        report: ready(1),
        exited: match &started.pidfd {
            Some(_) => ready(2),
            // No pidfd (Linux before 5.3): look.
            None => matches!(
                rustix::process::waitpid(Some(started.pid), rustix::process::WaitOptions::NOHANG),
                Ok(Some(_))
            ),
        },
    }
}

fn signal(started: &Started, sig: Signal) {
    match &started.pidfd {
        Some(fd) => {
            let _ = rustix::process::pidfd_send_signal(fd, sig);
        }
        None => {
            let _ = rustix::process::kill_process(started.pid, sig);
        }
    }
}

/// Kills every process of the command, the supervisor last; returns whether any
/// besides the supervisor was found (`None`: not counted, the kernel kills them
/// with the PID namespace).
fn kill_everything(started: &Started) -> Option<bool> {
    match started.shape {
        Shape::Namespaced { .. } => {
            signal(started, Signal::KILL);
            None
        }
        Shape::Supervised => {
            let found = procs::kill_tree(started.pid.as_raw_nonzero().get());
            signal(started, Signal::KILL);
            Some(found)
        }
    }
}

/// Watches the command on the thread that started it (see the module docs).
fn watch(
    started: Started,
    max_processes: usize,
    kill: &OwnedFd,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
) {
    let supervisor = started.pid.as_raw_nonzero().get();
    // A runaway command must not starve the thread that stops it: raise this
    // thread's priority where allowed (it sleeps almost all the time).
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), -15);
    let since = Instant::now();
    let mut counting = rustix::process::getuid().is_root();
    let mut leftovers: Option<bool> = None;
    let mut shell: Option<ExitStatus> = None;
    let mut killed = false;
    let mut baseline = procs::host_tasks();
    loop {
        let pause = if since.elapsed() < FAST_FOR {
            POLL_FAST
        } else {
            POLL_SLOW
        };
        let wake = wait_for(&started, kill, pause);
        if wake.kill && !killed {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(kill, &mut buf);
            leftovers = kill_everything(&started).or(leftovers);
            killed = true;
            counting = false;
        }
        if (wake.report || wake.exited)
            && shell.is_none()
            && let Some((raw, left)) = launch::read_report(&started.status)
        {
            // The shell exited. Namespaced: the supervisor leaves and the kernel
            // kills the rest. Supervised: Keel kills what is left, then it.
            shell = Some(ExitStatus::from_raw(raw));
            leftovers = Some(left);
            if started.shape == Shape::Supervised {
                if left {
                    procs::kill_tree(supervisor);
                }
                signal(&started, Signal::KILL);
            }
            if !left {
                // Nothing but the supervisor is left (it has no child, and every
                // process of the command would be its descendant): the call is over.
                // Tearing its namespaces down (an RCU grace period for the mounts)
                // need not delay the result; the supervisor is reaped after.
                let _ = events.send(Event::Done {
                    status: Ok(ExitStatus::from_raw(raw)),
                    leftovers,
                });
                let _ = rustix::process::waitpid(
                    Some(started.pid),
                    rustix::process::WaitOptions::empty(),
                );
                return;
            }
        }
        if wake.exited {
            let _ =
                rustix::process::waitpid(Some(started.pid), rustix::process::WaitOptions::empty());
            let status = match shell {
                Some(status) => Ok(status),
                None if killed => Err("killed with all its processes".into()),
                None => {
                    // Only the command could have killed its supervisor (possible
                    // without a PID namespace or Landlock's signal scope). The shell
                    // died with it; kill whatever can still be found.
                    procs::kill_tree(supervisor);
                    Err("the command killed its supervisor; the shell died with it, but processes that had detached may have survived (without a PID namespace Keel cannot find them)".into())
                }
            };
            let _ = events.send(Event::Done { status, leftovers });
            return;
        }
        if counting
            && let (Some(base), Some(now)) = (baseline, procs::host_tasks())
            && now > base + max_processes as u64
        {
            // The system gained many tasks since the command started. Counting the
            // command's processes while they fork is slow (their /proc files wait
            // on them), so first stop the process groups of the supervisor's
            // children (the shell leads one), then count its descendants.
            let groups = procs::children(supervisor);
            for g in groups
                .iter()
                .filter_map(|g| rustix::process::Pid::from_raw(*g))
            {
                let _ = rustix::process::kill_process_group(g, Signal::STOP);
            }
            let n = procs::count_tree(supervisor, max_processes);
            if n > max_processes {
                counting = false;
                killed = true;
                leftovers = kill_everything(&started).or(leftovers);
                let _ = events.send(Event::OverLimit);
            } else {
                // Mostly something else on the system grew: carry on, counting the
                // command's own processes as growth from here.
                for g in groups
                    .iter()
                    .filter_map(|g| rustix::process::Pid::from_raw(*g))
                {
                    let _ = rustix::process::kill_process_group(g, Signal::CONT);
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
