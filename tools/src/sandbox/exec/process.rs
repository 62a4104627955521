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
//! The thread then waits for the child. Meanwhile the caller reads the pipe into a
//! head-and-tail buffer, counts the command's processes now and then (a fork bomb
//! is killed at `max_processes`), and stops at the timeout or on cancellation.
//! Whatever the ending, every process of the command still alive is then killed
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
/// The first and the longest pause between process counts.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(500);

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
    ProcessLimit(usize),
}

/// A finished command.
#[derive(Debug)]
pub(crate) struct Finished {
    pub ending: Ending,
    pub status: Option<ExitStatus>,
    pub output: HeadTail,
    pub duration: Duration,
    /// Processes still running after the shell ended, killed.
    pub leftovers: usize,
}

/// Runs the command to its end.
pub(crate) async fn run(spec: Spec, cancel: CancellationToken) -> Result<Finished, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (pid_tx, pid_rx) = oneshot::channel::<Result<u32, String>>();
    let (exit_tx, mut exit_rx) = oneshot::channel::<std::io::Result<ExitStatus>>();
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
            // async-signal-safe calls are allowed. It makes three system calls
            // through rustix (setsid, fchdir, prctl(PR_SET_PDEATHSIG)), which
            // allocate nothing and take no locks, on a descriptor owned by the
            // closure. std offers no safe way to start a new session.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setsid()?;
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
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let _ = exit_tx.send(child.wait());
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
    let root = i32::try_from(pid).map_err(|_| format!("process id {pid} out of range"))?;
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| format!("cannot read the command's output: {e}"))?;
    let mut output = HeadTail::new(max_output);
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    let mut status = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut poll_every = POLL_FIRST;
    let poll = tokio::time::sleep(poll_every);
    tokio::pin!(poll);

    let ending = loop {
        tokio::select! {
            exit = &mut exit_rx => {
                status = exit.ok().and_then(Result::ok);
                break Ending::Exited;
            }
            read = pipe.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => output.push(&buf[..n]),
            },
            () = &mut deadline => break Ending::TimedOut,
            () = cancel.cancelled() => break Ending::Cancelled,
            () = &mut poll => {
                let n = tokio::task::spawn_blocking(move || procs::count(root))
                    .await
                    .unwrap_or(0);
                if n > max_processes {
                    break Ending::ProcessLimit(n);
                }
                poll_every = (poll_every * 2).min(POLL_MAX);
                poll.as_mut().reset(tokio::time::Instant::now() + poll_every);
            }
        }
    };
    let duration = start.elapsed();

    let marker_for_kill = marker.clone();
    let leftovers = tokio::task::spawn_blocking(move || procs::kill_all(root, &marker_for_kill))
        .await
        .unwrap_or(0);

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
    if status.is_none() {
        // The shell was killed; its thread reports the status once it is reaped.
        status = tokio::time::timeout(Duration::from_secs(5), exit_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(Result::ok);
    }
    Ok(Finished {
        ending,
        status,
        output,
        duration,
        leftovers,
    })
}

/// How an exit status reads.
pub(crate) fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit status".to_owned(),
    }
}
