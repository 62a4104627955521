//! What confinement commands get, in words: for the model (in the exec tool's
//! description, which must not depend on the machine, since it is part of an
//! agent's fingerprint) and for people (what this system gives, and what it
//! cannot: printed at start-up and in `keel run`'s banner).

use super::isolation::{IsolationSupport, isolation_support};
use crate::config::{IsolationConfig, IsolationMode};

/// The confinement paragraph of the exec tool's description.
pub fn for_model(cfg: &IsolationConfig) -> String {
    let mut text = String::from(
        "Every process the command starts (background jobs, nohup, setsid, double forks \
         included) is killed when it ends: nothing keeps running between calls. Where the \
         system allows, the command runs in a PID namespace of its own with its own /proc, \
         seeing only its own processes. API keys are not in its environment.",
    );
    match cfg.mode {
        IsolationMode::Off => text.push_str(
            " Isolation is off: the command can read and write whatever the user running Keel can.",
        ),
        IsolationMode::BestEffort | IsolationMode::Required => {
            if cfg.restrict_writes {
                text.push_str(
                    " Writes outside the workspace and $TMPDIR fail (reads are not confined).",
                );
            }
            if cfg.block_network {
                text.push_str(" There is no network access.");
            }
            text.push_str(
                " Local sockets that act for the user (SSH agent, D-Bus, X11, Docker) are out of reach.",
            );
            if cfg.mode == IsolationMode::BestEffort {
                text.push_str(" Where the system lacks a restriction, the result says so.");
            }
        }
    }
    text
}

/// What commands get on this system under `cfg`, and what they do not: lines for
/// a person. The first list is what holds, the second what does not.
pub fn for_people(cfg: &IsolationConfig) -> (Vec<String>, Vec<String>) {
    describe(cfg, &isolation_support())
}

fn describe(cfg: &IsolationConfig, s: &IsolationSupport) -> (Vec<String>, Vec<String>) {
    let mut holds = Vec::new();
    let mut gaps = Vec::new();
    let on = cfg.mode != IsolationMode::Off;
    let namespaced = cfg.namespaces && s.pid_namespace;
    if namespaced {
        holds.push(format!(
            "commands run in their own PID namespace with their own /proc{}: every process ends with its command, and they cannot see Keel or your other processes",
            if s.user_namespace {
                " (through a user namespace: setuid programs such as sudo do not work in them)"
            } else {
                ""
            }
        ));
        holds.push("the store directory is hidden from commands".into());
    } else {
        let why = if cfg.namespaces {
            "this system allows neither root nor unprivileged user namespaces"
        } else {
            "isolation.namespaces is false"
        };
        holds.push(
            "commands run under a supervisor (a child subreaper) that keeps every process they start; all are killed when the command ends"
                .into(),
        );
        gaps.push(format!(
            "no PID namespace for commands ({why}): they see every process in /proc{}",
            if s.root {
                ""
            } else {
                " and can read the environment of your other processes (such as the shell that started Keel)"
            }
        ));
        if on && s.landlock_scopes {
            holds.push("commands cannot signal their supervisor (Landlock scope)".into());
        } else {
            gaps.push(
                "a command can kill its own supervisor; its detached processes may then survive the call"
                    .into(),
            );
        }
    }
    holds.push(
        "provider keys are not in Keel's environment or memory any command can read, and are masked in tool results and on screen"
            .into(),
    );
    if s.root {
        holds.push(
            "Keel runs as root: commands lose CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH"
                .into(),
        );
        if !on {
            gaps.push(
                "as root with isolation off, commands can still write anywhere, use the network, and act through root-owned daemons (e.g. the Docker socket)"
                    .into(),
            );
        }
    }
    if !on {
        gaps.push(
            "isolation is off: commands can read and write anything your user can, reach the network and every local socket (SSH agent, D-Bus, X11); the store's control socket refuses them"
                .into(),
        );
        return (holds, gaps);
    }
    if cfg.restrict_writes {
        if s.landlock_fs {
            holds.push("writes are confined to the workspace, a private TMPDIR and isolation.writable (Landlock); reads are not confined".into());
        } else {
            gaps.push("writes are not confined: this kernel has no Landlock".into());
        }
    }
    if cfg.block_network {
        if cfg.namespaces && s.namespaces {
            holds.push("no network (an empty network namespace)".into());
        } else if s.landlock_tcp {
            holds.push("no TCP (Landlock)".into());
            if !s.landlock_udp {
                gaps.push(
                    "UDP is not blocked (needs Landlock ABI 10 or a network namespace)".into(),
                );
            }
        } else {
            gaps.push(
                "the network is not blocked (needs Landlock ABI 4 or a network namespace)".into(),
            );
        }
    }
    if namespaced {
        holds.push(
            "$XDG_RUNTIME_DIR, $SSH_AUTH_SOCK, /tmp/.X11-unix and the Docker socket are hidden"
                .into(),
        );
    } else {
        gaps.push("sockets that act for you ($XDG_RUNTIME_DIR, $SSH_AUTH_SOCK, X11, Docker) stay reachable: hiding them needs a mount namespace".into());
    }
    if s.landlock_scopes {
        holds.push(
            "abstract Unix sockets and signals reach only the command's own processes".into(),
        );
    } else if !(cfg.namespaces && s.namespaces) {
        gaps.push("abstract Unix sockets (X11, some D-Bus) stay reachable: scoping them needs Landlock ABI 6 or a network namespace".into());
    }
    (holds, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(pid: bool, user: bool, landlock: bool, root: bool) -> IsolationSupport {
        IsolationSupport {
            landlock_fs: landlock,
            landlock_tcp: landlock,
            landlock_udp: false,
            landlock_ioctl_dev: landlock,
            landlock_scopes: landlock,
            pid_namespace: pid,
            user_namespace: user,
            namespaces: pid,
            root,
        }
    }

    #[test]
    fn a_system_without_namespaces_or_landlock_says_what_it_lacks() {
        let cfg = IsolationConfig {
            mode: IsolationMode::BestEffort,
            ..IsolationConfig::default()
        };
        let (_, gaps) = describe(&cfg, &support(false, false, false, false));
        let all = gaps.join("\n");
        for needle in [
            "no PID namespace",
            "can kill its own supervisor",
            "writes are not confined",
            "network is not blocked",
            "stay reachable",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
        let (holds, gaps) = describe(&cfg, &support(true, true, true, false));
        assert!(holds.join("\n").contains("sudo do not work"), "{holds:?}");
        assert!(!gaps.join("\n").contains("PID namespace"), "{gaps:?}");
    }

    #[test]
    fn the_model_text_depends_on_the_configuration_only() {
        let off = for_model(&IsolationConfig::default());
        assert!(off.contains("Isolation is off"));
        let on = for_model(&IsolationConfig {
            mode: IsolationMode::Required,
            ..IsolationConfig::default()
        });
        assert!(on.contains("no network access") && on.contains("Writes outside"));
    }
}
