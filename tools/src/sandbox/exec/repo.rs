//! What a repository the agent could have written can make git run.
//!
//! Every command runs with git hardened through the environment (`env`): no hooks,
//! no fsmonitor, no pager, no askpass, no implicit bare repository. What that
//! cannot switch off lives in the repository's own config: filter drivers,
//! textconv and external diff commands, merge drivers, `include.path`, a worktree
//! elsewhere, credential helpers, proxies, signing programs. Before a `git` command
//! runs without a person, git itself is asked which repository it would use and
//! what that repository's config says (`git config --list --show-scope`, from the
//! command's directory and with its `-C`/`--git-dir`/`--work-tree`, so a `.git`
//! file pointing elsewhere or a nested repository is found exactly as the command
//! would find it). If it sets any such key, a person decides.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::policy::CommandCheck;
use super::programs::git_discovery;
use super::{analyze, env, trampoline};
use crate::config::ExecSecurity;
use crate::sandbox::Sandbox;

/// How long git may take to print its config.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A line the policy allows still needs a person if a `git` in it would use a
/// repository whose own config makes git run commands. Under `allow-always`
/// without deny rules everything runs anyway.
pub(crate) fn gate(sandbox: &Sandbox, command: &str, cwd: &str, because: String) -> CommandCheck {
    let exec = &sandbox.config.exec;
    if exec.security == ExecSecurity::AllowAlways && exec.deny.is_empty() {
        return CommandCheck::Allowed { because };
    }
    let commands = analyze::analyze(command).commands;
    let is = |argv: &Vec<String>, names: &[&str]| {
        argv.first()
            .is_some_and(|a| names.contains(&trampoline::basename(a)))
    };
    let gits: Vec<&Vec<String>> = commands.iter().filter(|a| is(a, &["git"])).collect();
    if gits.is_empty() {
        return CommandCheck::Allowed { because };
    }
    let needs = |reason: String| CommandCheck::NeedsApproval {
        reason,
        matched_rule: None,
    };
    if commands.iter().any(|a| is(a, &["cd", "pushd", "popd"])) {
        return needs(
            "it changes directory before running git, so the repository git would use cannot be checked"
                .into(),
        );
    }
    let env = env::build(&exec.env, &sandbox.host_env, &[]);
    for argv in gits {
        if let Some(reason) = check(argv, Path::new(cwd), &env) {
            return needs(reason);
        }
    }
    CommandCheck::Allowed { because }
}

/// Why running `argv` (a git command) in `cwd` needs a person, if it does.
pub(crate) fn check(argv: &[String], cwd: &Path, env: &[(OsString, OsString)]) -> Option<String> {
    // Always the `git` on PATH: the repository's config is the same for any git,
    // and a `git` the agent wrote must not run before a person approves it.
    let mut cmd = Command::new("git");
    cmd.args(git_discovery(argv))
        .args(["config", "--list", "--show-scope", "-z"])
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = match run(cmd) {
        Ok(out) => out,
        // No git to ask: the command cannot run git either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(format!(
                "the repository's git config could not be read ({e})"
            ));
        }
    };
    if !out.0 {
        let first = out.2.lines().next().unwrap_or("").trim().to_owned();
        return Some(format!(
            "git could not read the repository's config ({first}); a person decides whether to run git here"
        ));
    }
    let risky = risky_keys(&out.1);
    (!risky.is_empty()).then(|| {
        format!(
            "the repository's own git config sets {}, which git would run or follow; a person decides",
            risky.join(", ")
        )
    })
}

/// Runs `cmd` to its end or the timeout: (success, stdout, stderr).
fn run(mut cmd: Command) -> std::io::Result<(bool, String, String)> {
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out);
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err);
        }
        let _ = tx.send((out, err));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok((out, err)) => {
            let status = child.wait()?;
            Ok((
                status.success(),
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
            ))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "git did not answer in time",
            ))
        }
    }
}

/// The keys of the repository's own config (`local`, `worktree` scopes, includes
/// followed) that name a command git runs or a place it goes.
fn risky_keys(listing: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fields = listing.split('\0');
    while let (Some(scope), Some(entry)) = (fields.next(), fields.next()) {
        if !matches!(scope, "local" | "worktree") {
            continue;
        }
        let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
        let shown = format!("`{key}`");
        if risky(&key.to_ascii_lowercase(), value) && !found.contains(&shown) {
            found.push(shown);
        }
    }
    found
}

fn risky(key: &str, value: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let (section, last) = match (parts.first(), parts.last()) {
        (Some(s), Some(l)) => (*s, *l),
        _ => return false,
    };
    match (section, last, parts.len()) {
        ("include", "path", 2) | ("includeif", "path", _) => true,
        ("filter", "clean" | "smudge" | "process", 3) => true,
        ("diff", "command" | "textconv", 3) | ("diff", "external", 2) => true,
        ("merge", "driver", 3) => true,
        ("core", "worktree" | "gitproxy" | "sshcommand" | "alternaterefscommand", 2) => true,
        ("remote", "uploadpack" | "receivepack" | "vcs" | "proxycommand", 3) => true,
        ("credential", "helper", _) => true,
        ("submodule", "update", 3) => value.trim_start().starts_with('!'),
        ("trailer", "command" | "cmd", 3) => true,
        ("gpg", "program", _) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_run_commands() {
        let listing = "global\0core.pager\nless\0local\0core.bare\nfalse\0local\0\
                       filter.x.smudge\ntouch p\0local\0diff.y.textconv\ncat\0worktree\0\
                       include.path\n../x\0local\0submodule.s.update\ncheckout\0local\0\
                       submodule.t.update\n!sh\0command\0core.fsmonitor\nfalse\0local\0\
                       gpg.ssh.program\nx\0";
        assert_eq!(
            risky_keys(listing),
            vec![
                "`filter.x.smudge`",
                "`diff.y.textconv`",
                "`include.path`",
                "`submodule.t.update`",
                "`gpg.ssh.program`"
            ]
        );
    }
}
