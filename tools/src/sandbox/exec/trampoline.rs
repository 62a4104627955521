//! Commands that run other code than their argv shows: shells, `eval`, wrappers
//! (`sudo`, `env`, `xargs`, `timeout`, ...), shell builtins that change what later
//! commands mean (`alias`, `export`, `trap`, ...), and options of ordinary programs
//! that run commands (`find -exec`, `git -c`, `tar --to-command`, ...). An
//! allowlist entry never covers one of these.

/// The last path component of a command name (`/usr/bin/env` → `env`).
pub(crate) fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Why a simple command is an interpreter trampoline or changes the shell itself:
/// it runs (or makes later commands run) code that its argv does not show, so an
/// allowlist entry must never cover it.
pub(crate) fn trampoline(argv: &[String]) -> Option<String> {
    let name = basename(&argv[0]);
    let args = &argv[1..];
    let has = |flags: &[&str]| {
        args.iter().any(|a| {
            flags
                .iter()
                .any(|f| a == f || a.starts_with(&format!("{f}=")))
        })
    };
    let generic = match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "yash" | "fish" | "csh" | "tcsh"
        | "busybox" => Some("runs a shell"),
        "eval" | "source" | "." => Some("evaluates text as shell code"),
        "exec" | "command" | "builtin" | "env" | "xargs" | "nohup" | "setsid" | "timeout"
        | "nice" | "ionice" | "stdbuf" | "time" | "chrt" | "taskset" | "watch" | "script"
        | "flock" | "parallel" | "strace" | "ltrace" | "systemd-run" | "unbuffer" => {
            Some("runs another command")
        }
        "sudo" | "doas" | "su" | "pkexec" | "runuser" | "chroot" | "unshare" | "nsenter"
        | "firejail" | "bwrap" => Some("runs another command with other privileges or namespaces"),
        "alias" | "unalias" | "export" | "set" | "unset" | "trap" | "readonly" | "declare"
        | "typeset" | "local" | "hash" | "enable" | "shopt" => Some(
            "changes the shell's variables, aliases or traps, which changes what later commands do",
        ),
        _ => None,
    };
    if let Some(why) = generic {
        return Some(format!("`{name}` {why}"));
    }
    let specific = match name {
        "find"
            if has(&[
                "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprintf", "-fls",
            ]) =>
        {
            Some("`find` with `-exec`/`-delete`/`-fprint` runs commands or changes files")
        }
        "git" => git_trampoline(args),
        "tar"
            if has(&[
                "--to-command",
                "--checkpoint-action",
                "--use-compress-program",
                "-I",
                "--info-script",
                "-F",
                "--new-volume-script",
                "--rsh-command",
            ]) =>
        {
            Some("`tar` with an option that runs a command")
        }
        "ssh" | "scp" | "rsync" if has(&["-e", "--rsh", "-o"]) => {
            Some("a remote-copy option that runs a command")
        }
        _ => None,
    };
    specific.map(str::to_owned)
}

/// `git` options and subcommands that make git run a command of someone's choosing.
fn git_trampoline(args: &[String]) -> Option<&'static str> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let a = args[i].as_str();
        if a == "-c" || a.starts_with("--config-env") || a.starts_with("--exec-path") {
            return Some("`git -c`/`--config-env`/`--exec-path` can make git run any command");
        }
        i += if matches!(a, "-C" | "--git-dir" | "--work-tree" | "--namespace") {
            2
        } else {
            1
        };
    }
    let sub = args.get(i).map(String::as_str)?;
    let rest = &args[(i + 1).min(args.len())..];
    let has = |flags: &[&str]| {
        rest.iter().any(|a| {
            flags
                .iter()
                .any(|f| a == f || a.starts_with(&format!("{f}=")))
        })
    };
    let runs = match sub {
        "config" | "filter-branch" => true,
        "clone" | "fetch" | "pull" | "push" | "ls-remote" | "archive" => {
            has(&["--upload-pack", "--receive-pack", "--exec"])
                || (sub == "clone" && has(&["-u", "--config", "-c"]))
        }
        "rebase" => has(&["-x", "--exec"]),
        "difftool" | "mergetool" => has(&["-x", "--extcmd"]),
        "submodule" => rest.first().is_some_and(|a| a == "foreach"),
        "bisect" => rest.first().is_some_and(|a| a == "run"),
        _ => false,
    };
    runs.then_some("this `git` subcommand or option runs other commands (or sets config that does)")
}
