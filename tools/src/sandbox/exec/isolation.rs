//! Optional OS isolation of commands (Linux).
//!
//! Two layers, each used where the kernel and the privileges allow:
//! - **Landlock** (unprivileged, Linux 5.13+): writes are confined to the workspace,
//!   a private temporary directory (`TMPDIR`) and configured `writable` paths; TCP
//!   bind/connect are denied (ABI 4+, UDP too from ABI 10); signals to processes
//!   outside the sandbox and abstract Unix sockets are scoped (ABI 6+); ioctls on
//!   devices are denied (ABI 5+: no TIOCSTI even with a terminal). Landlock
//!   restricts the calling *thread* and its future children, so it is applied on
//!   the dedicated thread that spawns the command, never on the caller's.
//! - **Namespaces** (needs `CAP_SYS_ADMIN`, e.g. root): a new network namespace
//!   (no interfaces: no network at all, UDP and raw sockets included) and a new PID
//!   namespace (the kernel kills every process of the command when its shell
//!   exits, so nothing escapes). Also applied on the spawning thread, with
//!   `unshare`, which only changes that thread's namespaces for its children.
//!
//! `best-effort` applies what it can and the output says what it could not;
//! `required` refuses to run a command unless every requested restriction holds.
//! `isolation_support` tells what this system offers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

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
    /// New network and PID namespaces can be made (privileged).
    pub namespaces: bool,
}

fn probe_landlock<F>(build: F) -> bool
where
    F: FnOnce(Ruleset) -> Result<Ruleset, landlock::RulesetError>,
{
    build(Ruleset::default().set_compatibility(CompatLevel::HardRequirement))
        .and_then(|r| r.create())
        .is_ok()
}

fn probe_namespaces() -> bool {
    // On a throwaway thread: unshare only changes the calling thread.
    std::thread::spawn(|| unshare(true).is_ok())
        .join()
        .unwrap_or(false)
}

/// What this system offers (probed once).
pub fn isolation_support() -> IsolationSupport {
    static SUPPORT: OnceLock<IsolationSupport> = OnceLock::new();
    *SUPPORT.get_or_init(|| IsolationSupport {
        landlock_fs: probe_landlock(|r| r.handle_access(AccessFs::from_write(ABI::V1))),
        landlock_tcp: probe_landlock(|r| r.handle_access(AccessNet::from_all(ABI::V4))),
        landlock_udp: probe_landlock(|r| r.handle_access(AccessNet::from_all(NET_ABI))),
        landlock_ioctl_dev: probe_landlock(|r| r.handle_access(AccessFs::IoctlDev)),
        landlock_scopes: probe_landlock(|r| r.scope(Scope::from_all(SCOPE_ABI))),
        namespaces: probe_namespaces(),
    })
}

/// What isolation a command gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationReport {
    /// Restrictions in force.
    pub applied: Vec<String>,
    /// Requested restrictions this system could not apply.
    pub missing: Vec<String>,
}

/// The isolation to apply to one command, decided before it is spawned.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    landlock_fs: bool,
    writable: Vec<PathBuf>,
    landlock_net: bool,
    scopes: bool,
    namespaces: bool,
    net_namespace: bool,
    pub report: IsolationReport,
}

/// Decides what to apply, or why the command may not run (`required` mode).
pub(crate) fn plan(
    cfg: &IsolationConfig,
    workspace: &Path,
    tmp: Option<&Path>,
) -> Result<Option<Plan>, String> {
    if cfg.mode == IsolationMode::Off {
        return Ok(None);
    }
    let mut s = isolation_support();
    s.namespaces &= cfg.namespaces;
    let mut report = IsolationReport::default();
    let mut writable = vec![workspace.to_path_buf()];
    writable.extend(tmp.map(Path::to_path_buf));
    writable.extend(cfg.writable.iter().cloned());
    if cfg.restrict_writes {
        if s.landlock_fs {
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
    if cfg.block_network {
        if s.namespaces {
            report
                .applied
                .push("no network (an empty network namespace)".into());
        } else if s.landlock_tcp && s.landlock_udp {
            report.applied.push("no TCP or UDP (Landlock)".into());
        } else if s.landlock_tcp {
            report.applied.push("no TCP (Landlock)".into());
            report.missing.push(
                "UDP is not blocked: Landlock has UDP rules from ABI 10, and a network namespace needs CAP_SYS_ADMIN"
                    .into(),
            );
        } else {
            report.missing.push(
                "blocking the network needs Landlock ABI 4 (Linux 6.7+) or CAP_SYS_ADMIN for a network namespace"
                    .into(),
            );
        }
    }
    if s.namespaces {
        report
            .applied
            .push("own PID namespace (no process outlives the command)".into());
    }
    if s.landlock_ioctl_dev && cfg.restrict_writes {
        report.applied.push("no device ioctls".into());
    }
    if cfg.mode == IsolationMode::Required && !report.missing.is_empty() {
        return Err(format!(
            "isolation is required but this system cannot provide it: {}. Set isolation.mode to \"best-effort\" to run with what is available, or \"off\"",
            report.missing.join("; ")
        ));
    }
    Ok(Some(Plan {
        landlock_fs: cfg.restrict_writes && s.landlock_fs,
        writable,
        landlock_net: cfg.block_network && s.landlock_tcp,
        scopes: s.landlock_scopes,
        namespaces: s.namespaces,
        net_namespace: cfg.block_network && s.namespaces,
        report,
    }))
}

fn unshare(net: bool) -> std::io::Result<()> {
    let mut flags = rustix::thread::UnshareFlags::NEWPID;
    if net {
        flags |= rustix::thread::UnshareFlags::NEWNET;
    }
    // SAFETY: `unshare_unsafe` is unsafe only because `UnshareFlags::FILES` would
    // give this thread its own descriptor table, which other threads' descriptors
    // would then not be valid in. Only NEWPID and NEWNET are passed: they change
    // which namespaces this thread's future children are created in, nothing that
    // other threads share. The calling thread is a dedicated spawner (or a probe)
    // that runs no other work.
    #[allow(unsafe_code)]
    unsafe {
        rustix::thread::unshare_unsafe(flags)?;
    }
    Ok(())
}

/// Applies the plan to the calling thread, which must be the dedicated thread that
/// then spawns the command (and nothing else).
pub(crate) fn apply(plan: &Plan) -> Result<(), String> {
    if plan.namespaces {
        unshare(plan.net_namespace)
            .map_err(|e| format!("could not create the command's namespaces: {e}"))?;
    }
    if !(plan.landlock_fs || plan.landlock_net || plan.scopes) {
        return Ok(());
    }
    let fail = |e: landlock::RulesetError| format!("could not apply Landlock: {e}");
    let mut ruleset = Ruleset::default();
    if plan.landlock_fs {
        ruleset = ruleset
            .handle_access(AccessFs::from_write(FS_ABI))
            .map_err(fail)?;
    }
    if plan.landlock_net {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(NET_ABI))
            .map_err(fail)?;
    }
    if plan.scopes {
        let scopes = if plan.landlock_net || plan.net_namespace {
            Scope::from_all(SCOPE_ABI)
        } else {
            Scope::Signal.into()
        };
        ruleset = ruleset.scope(scopes).map_err(fail)?;
    }
    let mut created = ruleset.create().map_err(fail)?;
    if plan.landlock_fs {
        let dirs: Vec<&PathBuf> = plan.writable.iter().filter(|p| p.exists()).collect();
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
    let status = created.restrict_self().map_err(fail)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("Landlock accepted the rules but enforces none of them".into());
    }
    Ok(())
}
