//! Commands that run other code than their argv shows, as a whole: `eval`, wrappers
//! Keel has no finer model of (`sudo`, `setsid`, `flock`, ...), shell builtins that
//! change what later commands mean (`alias`, `export`, `trap`, ...), editors,
//! debuggers and database shells that run commands from their arguments or input.
//! Every argument of one of these must be named by a rule (a person wrote it) for
//! an allowlist entry to cover it; deny rules are checked against every tail of
//! its argv and against any argument that reads as shell code.
//!
//! Shells, interpreters, `env`, `xargs`, `timeout` and the other programs with a
//! model of their own are read option by option (`programs`).

/// The last path component of a command name (`/usr/bin/env` → `env`).
pub(crate) fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Why `name` runs code its argv does not show, if it is one of the programs read
/// as a whole.
pub(crate) fn generic(name: &str) -> Option<&'static str> {
    Some(match name {
        "busybox" | "toybox" => "runs any of its applets, shells included",
        "eval" | "source" | "." => "evaluates text as shell code",
        "exec" | "command" | "builtin" | "setsid" | "time" | "chrt" | "taskset" | "ionice"
        | "watch" | "script" | "flock" | "parallel" | "strace" | "ltrace" | "systemd-run"
        | "unbuffer" | "expect" | "nsenter" | "unshare" | "firejail" | "bwrap" | "chroot"
        | "aa-exec" | "setpriv" | "prlimit" | "numactl" | "cpulimit" | "catchsegv" => {
            "runs another command"
        }
        "sudo" | "doas" | "su" | "pkexec" | "runuser" => {
            "runs another command with other privileges"
        }
        "alias" | "unalias" | "export" | "set" | "unset" | "trap" | "readonly" | "declare"
        | "typeset" | "local" | "hash" | "enable" | "shopt" | "read" | "mapfile" | "readarray"
        | "getopts" | "let" | "ulimit" | "umask" | "cd" | "pushd" | "popd" => {
            "changes the shell's state (variables, aliases, traps, directory), which changes what later commands do"
        }
        "vi" | "vim" | "nvim" | "view" | "ex" | "ed" | "red" | "emacs" | "nano" | "pico"
        | "joe" | "mcedit" => "is an editor, which runs commands from its options and input",
        "gdb" | "lldb" | "pdb" | "valgrind" => "runs programs and commands",
        "docker" | "podman" | "kubectl" | "nerdctl" | "lxc" | "ctr" => {
            "runs commands in containers (and often as root)"
        }
        "sqlite3" | "psql" | "mysql" | "mariadb" | "redis-cli" | "mongo" | "mongosh" => {
            "runs statements and shell escapes from its arguments and input"
        }
        "systemctl" | "busctl" | "dbus-send" | "gdbus" | "at" | "batch" | "crontab" => {
            "asks the system to run or change services and jobs"
        }
        "nc" | "ncat" | "netcat" | "socat" | "telnet" | "ftp" | "tftp" => {
            "connects to or listens on the network and can run commands"
        }
        "dc" | "bc" | "R" | "Rscript" | "julia" | "irb" | "jjs" | "osascript" | "pwsh" => {
            "runs code from its arguments or input"
        }
        "dpkg" | "apt" | "apt-get" | "aptitude" | "rpm" | "yum" | "dnf" | "apk" | "pacman"
        | "snap" | "flatpak" | "brew" => "installs software and runs its scripts",
        _ => return None,
    })
}
