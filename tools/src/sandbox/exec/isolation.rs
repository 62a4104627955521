//! How a command is confined (Linux), decided before it starts (its `Plan`).
//!
//! Whatever the isolation mode, where the system allows (root, or unprivileged
//! user namespaces), every command runs in a **PID namespace and mount namespace
//! of its own**, with a `/proc` of its own: no process outlives it, it sees and
//! signals only its own processes (not Keel, not the person's shell and its
//! environment), and the store directories registered with
//! [`hide_from_commands`] are hidden under an empty read-only mount. Elsewhere a
//! subreaper supervisor holds its processes. Root's commands lose the capabilities
//! that would read other processes' memory or undo mounts (see `launch`).
//!
//! With isolation on (`best-effort` or `required`), also:
//! - **Landlock** (unprivileged, Linux 5.13+): writes confined to the workspace, a
//!   private temporary directory (`TMPDIR`) and configured `writable` paths; TCP
//!   bind/connect denied (ABI 4+, UDP too from ABI 10); signals to processes
//!   outside the command and abstract Unix sockets scoped (ABI 6+); ioctls on
//!   devices denied (ABI 5+: no TIOCSTI even with a terminal). Applied in the
//!   command's process just before it executes the shell, so the supervisor stays
//!   outside the domain, out of the command's reach;
//! - **a new network namespace** (no interfaces: no network at all, UDP, raw and
//!   abstract Unix sockets included) where namespaces are available;
//! - **sockets that act for the person hidden**: `$XDG_RUNTIME_DIR` (D-Bus,
//!   Wayland, the keyring, GnuPG), `$SSH_AUTH_SOCK`, `/tmp/.X11-unix`, the Docker
//!   socket — where a mount namespace is available.
//!
//! `best-effort` applies what it can and the output says what it could not;
//! `required` refuses to run a command unless every requested restriction holds.
//! [`isolation_support`] tells what this system offers.

use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, path_beneath_rules,
};

use super::launch::{self, Hide, Prepared, Shape};
use crate::config::{IsolationConfig, IsolationMode};

/// The Landlock ABI whose rights this code was tested with for file access.
const FS_ABI: ABI = ABI::V5;
/// Network rights: TCP from ABI 4, UDP from ABI 10 (applied when the kernel has it).
const NET_ABI: ABI = ABI::V10;
/// Scopes (signals, abstract Unix sockets) from ABI 6.
const SCOPE_ABI: ABI = ABI::V6;

/// Device files every command may write to.
const DEV_FILES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Sockets (or their folders) that act for the person, hidden with isolation on.
const PERSONAL_SOCKETS: &[&str] = &["/tmp/.X11-unix", "/run/docker.sock", "/var/run/docker.sock"];

/// What this system offers for isolating commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolationSupport {
    /// Landlock can confine writes.
    pub landlock_fs: bool,
    /// Landlock can deny TCP.
    pub landlock_tcp: bool,
    /// Landlock can deny UDP.
    pub landlock_udp: bool,
    /// Landlock can deny device ioctls (e.g. TIOCSTI).
    pub landlock_ioctl_dev: bool,
    /// Landlock can scope signals and abstract Unix sockets.
    pub landlock_scopes: bool,
    /// Commands can get PID and mount namespaces and a `/proc` of their own.
    pub pid_namespace: bool,
    /// ... for which a user namespace is needed (Keel is not root).
    pub user_namespace: bool,
    /// Commands can get a new network namespace too.
    pub namespaces: bool,
    /// Keel runs as root.
    pub root: bool,
}

fn probe_landlock<F>(build: F) -> bool
where
    F: FnOnce(Ruleset) -> Result<Ruleset, landlock::RulesetError>,
{
    build(Ruleset::default().set_compatibility(CompatLevel::HardRequirement))
        .and_then(|r| r.create())
        .is_ok()
}

/// Starts `true` in `shape` and waits: whether that shape works here.
fn probe_shape(shape: Shape) -> bool {
    let open = |p: &str, flags| rustix::fs::open(p, flags, rustix::fs::Mode::empty()).ok();
    let flags = rustix::fs::OFlags::CLOEXEC;
    let (Some(cwd), Some(stdin), Some(output)) = (
        open("/", flags | rustix::fs::OFlags::DIRECTORY),
        open("/dev/null", flags | rustix::fs::OFlags::RDONLY),
        open("/dev/null", flags | rustix::fs::OFlags::WRONLY),
    ) else {
        return false;
    };
    let prepared = Prepared {
        shape,
        shell: c"/bin/sh".into(),
        argv: vec![c"sh".into(), c"-c".into(), c":".into()],
        envp: Vec::new(),
        cwd,
        cwd_path: None,
        output,
        stdin,
        nproc: None,
        landlock: None,
        hide: Vec::new(),
        drop_caps: rustix::process::geteuid().is_root(),
        name: c"keel-probe".into(),
    };
    match launch::start(&prepared) {
        Ok(started) => matches!(
            rustix::process::waitpid(Some(started.pid), rustix::process::WaitOptions::empty()),
            Ok(Some((_, status))) if status.exit_status() == Some(0)
        ),
        Err(e) => {
            tracing::debug!("{shape:?} is not available: {e}");
            false
        }
    }
}

/// What this system offers (probed once, by starting a process in each shape).
pub fn isolation_support() -> IsolationSupport {
    static SUPPORT: OnceLock<IsolationSupport> = OnceLock::new();
    *SUPPORT.get_or_init(|| {
        let root = rustix::process::geteuid().is_root();
        let user = if root
            && probe_shape(Shape::Namespaced {
                user: false,
                net: false,
            }) {
            Some(false)
        } else if probe_shape(Shape::Namespaced {
            user: true,
            net: false,
        }) {
            Some(true)
        } else {
            None
        };
        IsolationSupport {
            landlock_fs: probe_landlock(|r| r.handle_access(AccessFs::from_write(ABI::V1))),
            landlock_tcp: probe_landlock(|r| r.handle_access(AccessNet::from_all(ABI::V4))),
            landlock_udp: probe_landlock(|r| r.handle_access(AccessNet::from_all(NET_ABI))),
            landlock_ioctl_dev: probe_landlock(|r| r.handle_access(AccessFs::IoctlDev)),
            landlock_scopes: probe_landlock(|r| r.scope(Scope::from_all(SCOPE_ABI))),
            pid_namespace: user.is_some(),
            user_namespace: user == Some(true),
            namespaces: user.is_some_and(|user| probe_shape(Shape::Namespaced { user, net: true })),
            root,
        }
    })
}

fn hidden() -> &'static Mutex<Vec<PathBuf>> {
    static HIDDEN: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    HIDDEN.get_or_init(|| Mutex::new(Vec::new()))
}

/// Hides a directory (or file) from every command this process runs from now on,
/// where commands get a mount namespace: a store directory, so that no command
/// reaches its files or its control socket. The `keel` CLI registers its store.
pub fn hide_from_commands(path: &Path) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(mut list) = hidden().lock()
        && !list.contains(&path)
    {
        list.push(path);
    }
}

/// What isolation a command gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationReport {
    /// Restrictions in force.
    pub applied: Vec<String>,
    /// Requested restrictions this system could not apply.
    pub missing: Vec<String>,
}

/// How one command is confined, decided before it is spawned.
#[derive(Debug)]
pub(crate) struct Plan {
    pub shape: Shape,
    pub landlock: Option<OwnedFd>,
    pub hide: Vec<Hide>,
    pub drop_caps: bool,
    /// The kernel limits the command's processes by itself (a user namespace of
    /// its own): `RLIMIT_NPROC` is the allowance, not the user's total plus it.
    pub own_user_count: bool,
    pub report: IsolationReport,
}

fn env_value<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a Path> {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| Path::new(v.as_os_str()))
        .filter(|p| p.is_absolute())
}

/// The paths to hide from a command: existing, canonical, never the workspace or
/// one of its parents.
fn hide_list(
    cfg: &IsolationConfig,
    workspace: &Path,
    host_env: &[(OsString, OsString)],
) -> Vec<PathBuf> {
    let mut wanted: Vec<PathBuf> = hidden().lock().map(|l| l.clone()).unwrap_or_default();
    if cfg.mode != IsolationMode::Off {
        wanted.extend(env_value(host_env, "XDG_RUNTIME_DIR").map(Path::to_path_buf));
        wanted.extend(env_value(host_env, "SSH_AUTH_SOCK").map(Path::to_path_buf));
        wanted.extend(PERSONAL_SOCKETS.iter().map(PathBuf::from));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in wanted {
        let Ok(p) = std::fs::canonicalize(&p) else {
            continue;
        };
        if workspace.starts_with(&p) || out.contains(&p) {
            continue;
        }
        out.push(p);
    }
    out
}

/// Decides how to confine one command, or why it may not run (`required` mode).
pub(crate) fn plan(
    cfg: &IsolationConfig,
    workspace: &Path,
    tmp: Option<&Path>,
    host_env: &[(OsString, OsString)],
) -> Result<Plan, String> {
    let s = isolation_support();
    let on = cfg.mode != IsolationMode::Off;
    let mut report = IsolationReport::default();
    let namespaced = cfg.namespaces && s.pid_namespace;
    let net_ns = on && cfg.block_network && cfg.namespaces && s.namespaces;
    let shape = if namespaced {
        Shape::Namespaced {
            user: s.user_namespace,
            net: net_ns,
        }
    } else {
        Shape::Supervised
    };
    if namespaced {
        report.applied.push(
            "own PID namespace and /proc: no process outlives the command, and it sees only its own processes"
                .into(),
        );
    } else if on && cfg.namespaces {
        report.missing.push(
            "a PID namespace of its own needs root or unprivileged user namespaces: the command can see every process in /proc"
                .into(),
        );
    }
    let mut hide = Vec::new();
    let paths = hide_list(cfg, workspace, host_env);
    // Registered store directories are not counted as missing without a mount
    // namespace: their control socket checks its peers anyway.
    let personal: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| !hidden().lock().is_ok_and(|l| l.contains(p)))
        .collect();
    if namespaced {
        for p in &paths {
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            hide.push(if p.is_dir() {
                Hide::Dir(c)
            } else {
                Hide::File(c)
            });
        }
        if !paths.is_empty() && on {
            report.applied.push(format!(
                "hidden: {}",
                paths
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    } else if on && !personal.is_empty() {
        report.missing.push(format!(
            "hiding {} needs a mount namespace (root or unprivileged user namespaces)",
            personal
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let landlock = if on {
        landlock_plan(cfg, workspace, tmp, &s, net_ns, &mut report)?
    } else {
        None
    };
    if cfg.mode == IsolationMode::Required && !report.missing.is_empty() {
        return Err(format!(
            "isolation is required but this system cannot provide it: {}. Set isolation.mode to \"best-effort\" to run with what is available, or \"off\"",
            report.missing.join("; ")
        ));
    }
    Ok(Plan {
        shape,
        landlock,
        hide,
        drop_caps: s.root,
        own_user_count: matches!(shape, Shape::Namespaced { user: true, .. }),
        report,
    })
}

/// The Landlock part of the plan: a ruleset, created here (where allocating is
/// fine) and enforced by the command's process before it executes the shell.
fn landlock_plan(
    cfg: &IsolationConfig,
    workspace: &Path,
    tmp: Option<&Path>,
    s: &IsolationSupport,
    net_ns: bool,
    report: &mut IsolationReport,
) -> Result<Option<OwnedFd>, String> {
    let mut writable = vec![workspace.to_path_buf()];
    writable.extend(tmp.map(Path::to_path_buf));
    writable.extend(cfg.writable.iter().cloned());
    let fs = cfg.restrict_writes && s.landlock_fs;
    if cfg.restrict_writes {
        if fs {
            report.applied.push(format!(
                "writes only to {}",
                writable
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            report.missing.push(
                "confining writes needs Landlock (Linux 5.13+, with `landlock` in the kernel's LSM list)"
                    .into(),
            );
        }
    }
    let net = cfg.block_network && s.landlock_tcp;
    if cfg.block_network {
        if net_ns {
            report
                .applied
                .push("no network (an empty network namespace)".into());
        } else if s.landlock_tcp && s.landlock_udp {
            report.applied.push("no TCP or UDP (Landlock)".into());
        } else if s.landlock_tcp {
            report.applied.push("no TCP (Landlock)".into());
            report.missing.push(
                "UDP is not blocked: Landlock has UDP rules from ABI 10, and a network namespace needs root or user namespaces"
                    .into(),
            );
        } else {
            report.missing.push(
                "blocking the network needs Landlock ABI 4 (Linux 6.7+) or a network namespace (root or user namespaces)"
                    .into(),
            );
        }
    }
    if s.landlock_scopes {
        report.applied.push(
            "signals and abstract Unix sockets reach only the command's own processes (Landlock)"
                .into(),
        );
    }
    if s.landlock_ioctl_dev && fs {
        report.applied.push("no device ioctls".into());
    }
    if !(fs || net || s.landlock_scopes) {
        return Ok(None);
    }
    let fail = |e: landlock::RulesetError| format!("could not prepare Landlock: {e}");
    let mut ruleset = Ruleset::default();
    if fs {
        ruleset = ruleset
            .handle_access(AccessFs::from_write(FS_ABI))
            .map_err(fail)?;
    }
    if net {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(NET_ABI))
            .map_err(fail)?;
    }
    if s.landlock_scopes {
        ruleset = ruleset.scope(Scope::from_all(SCOPE_ABI)).map_err(fail)?;
    }
    let mut created = ruleset.create().map_err(fail)?;
    if fs {
        let dirs: Vec<&PathBuf> = writable.iter().filter(|p| p.exists()).collect();
        created = created
            .add_rules(path_beneath_rules(dirs, AccessFs::from_write(FS_ABI)))
            .map_err(fail)?;
        let devices: Vec<&str> = DEV_FILES
            .iter()
            .copied()
            .filter(|p| Path::new(p).exists())
            .collect();
        created = created
            .add_rules(path_beneath_rules(devices, AccessFs::from_write(FS_ABI)))
            .map_err(fail)?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.map(Some)
        .ok_or_else(|| "Landlock accepted the rules but enforces none of them".to_owned())
}
