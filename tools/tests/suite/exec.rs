//! Semantics of `exec`: what runs, where, and what the model reads back.

use keel_tools::{
    AllowRule, Approval, CallContext, ExecSecurity, FormContext, Recovery, RecoveryPolicy,
};
use serde_json::json;

use super::common::*;

#[tokio::test]
async fn output_exit_code_and_duration() {
    let ws = Ws::exec();
    let out = ok(ws.sh("echo out; echo err >&2").await);
    assert!(out.starts_with("out\nerr\n[exit code 0 · "), "{out}");
    assert!(out.ends_with(" s]"), "{out}");
    let out = err(ws.sh("echo failing; exit 3").await);
    assert!(out.starts_with("failing\n[exit code 3 · "), "{out}");
    let out = err(ws.sh("kill -TERM $$").await);
    assert!(
        out.starts_with("(no output)\n[killed by signal 15 · "),
        "{out}"
    );
    let out = err(ws.sh("definitely-not-a-command-xyz").await);
    assert!(
        out.contains("not found") && out.contains("[exit code 127"),
        "{out}"
    );
}

#[tokio::test]
async fn runs_in_the_workspace_or_the_given_directory() {
    let ws = Ws::exec();
    std::fs::create_dir(ws.path("sub")).unwrap();
    let out = ok(ws.sh("pwd; echo $PWD").await);
    let root = ws.root.display().to_string();
    assert!(out.starts_with(&format!("{root}\n{root}\n")), "{out}");
    let out = ok(ws
        .call("exec", json!({"command": "pwd", "cwd": "sub"}))
        .await);
    assert!(out.starts_with(&format!("{root}/sub\n")), "{out}");
    let e = err(ws
        .call("exec", json!({"command": "pwd", "cwd": "missing"}))
        .await);
    assert_eq!(e, "cwd: `missing` does not exist");
}

#[tokio::test]
async fn timeout_argument() {
    let ws = Ws::exec();
    let out = err(ws
        .call("exec", json!({"command": "sleep 30", "timeout": 1}))
        .await);
    assert!(
        out.starts_with(
            "(no output)\n[timed out after 1 s: the command and all its processes were killed · "
        ),
        "{out}"
    );
    assert_eq!(
        err(ws
            .call("exec", json!({"command": "true", "timeout": 601}))
            .await),
        "invalid arguments for `exec`: `timeout` must be at most 600, got 601"
    );
    assert_eq!(
        err(ws
            .call("exec", json!({"command": "true", "timeout": 0}))
            .await),
        "invalid arguments for `exec`: `timeout` must be at least 1, got 0"
    );
}

#[tokio::test]
async fn cancellation_kills_the_command() {
    let ws = Ws::exec();
    let ctx = CallContext::detached();
    ctx.cancel.cancel();
    let out = ws
        .reg
        .get("exec")
        .unwrap()
        .call_json(json!({"command": "sleep 999"}), ctx)
        .await;
    assert!(out.is_error);
    assert!(
        out.content.ends_with(
            "[cancelled: the run was cancelled; the command and all its processes were killed]"
        ),
        "{}",
        out.content
    );
}

#[test]
fn approval_always_is_the_default() {
    let ws = Ws::new();
    let form = needed(ws.approval("exec", json!({"command": "node hello.js"})));
    assert_eq!(form.title, "COMMAND APPROVAL REQUIRED");
    assert_eq!(
        form.context,
        FormContext::Command {
            command: "node hello.js".into(),
            cwd: ws.root.display().to_string(),
            reason: "every command needs approval (security: approval-always)".into(),
            matched_rule: None,
        }
    );
    // A config allowlist does not apply in approval-always mode.
    let strict = Ws::with(|c| c.exec.allowlist = vec!["node *".into()]);
    needed(strict.approval("exec", json!({"command": "node hello.js"})));
}

#[test]
fn allowlist_mode_and_remembered_rules() {
    let ws = Ws::with(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = vec!["node *".into(), "npm install *".into(), "git status".into()];
    });
    for cmd in [
        "node hello.js",
        "npm install",
        "npm install lodash",
        "git status",
        "node a.js | node b.js",
    ] {
        assert_eq!(
            ws.approval("exec", json!({"command": cmd})),
            Approval::NotNeeded,
            "{cmd}"
        );
    }
    for cmd in ["npm test", "git status --short", "nodejs a.js"] {
        needed(ws.approval("exec", json!({"command": cmd})));
    }
    let rules = [AllowRule::ExecPrefix {
        argv: vec!["npm".into(), "test".into()],
    }];
    assert_eq!(
        ws.approval_with("exec", json!({"command": "npm test"}), &rules),
        Approval::NotNeeded
    );
    let form = needed(ws.approval_with("exec", json!({"command": "npm test && curl x"}), &rules));
    let FormContext::Command {
        reason,
        matched_rule,
        ..
    } = form.context
    else {
        panic!()
    };
    assert_eq!(reason, "not covered by the allowlist: `curl x`");
    assert_eq!(
        matched_rule.as_deref(),
        Some("commands starting `npm test`")
    );
}

#[test]
fn recovery_policies() {
    let ws = Ws::new();
    let recovery = |name: &str| ws.reg.get(name).unwrap().recovery();
    assert_eq!(recovery("exec"), Recovery::ReportInterrupted);
    assert_eq!(recovery("write"), Recovery::ReportInterrupted);
    assert_eq!(recovery("edit"), Recovery::ReportInterrupted);
    for name in ["read", "glob", "grep"] {
        assert_eq!(recovery(name), Recovery::Rerun);
        assert!(!ws.reg.get(name).unwrap().is_mutating());
    }
    assert_eq!(
        ws.approval("read", json!({"path": "x"})),
        Approval::NotNeeded
    );
    assert_eq!(
        ws.approval("glob", json!({"pattern": "x"})),
        Approval::NotNeeded
    );
    assert_eq!(
        ws.approval("grep", json!({"pattern": "x"})),
        Approval::NotNeeded
    );
    let asking = Ws::with(|c| {
        c.recovery.exec = RecoveryPolicy::AskAgain;
        c.recovery.write = RecoveryPolicy::Rerun;
    });
    assert_eq!(
        asking.reg.get("exec").unwrap().recovery(),
        Recovery::AskAgain
    );
    assert_eq!(asking.reg.get("write").unwrap().recovery(), Recovery::Rerun);
}

#[tokio::test]
async fn commands_never_wait_for_a_terminal() {
    let ws = Ws::exec();
    let out = ok(ws
        .sh("test -t 0 || echo 'stdin is not a terminal'; tty || true")
        .await);
    assert!(
        out.starts_with("stdin is not a terminal\nnot a tty\n"),
        "{out}"
    );
    let out = ok(ws.sh("echo $GIT_EDITOR $GIT_TERMINAL_PROMPT $PAGER").await);
    assert!(out.starts_with("true 0 cat\n"), "{out}");
}

/// CI runs the tests in a PID namespace whose session leader lives outside it, where
/// `getsid` and `getpgrp` answer 0. `exec` once panicked on its watching thread there
/// and lost every exit status. This runs the exit-status test again in such a
/// namespace (`unshare --pid --fork`), when the machine lets us make one.
#[test]
fn exit_statuses_survive_a_session_leader_outside_the_pid_namespace() {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"]);
    if !rustix::process::getuid().is_root() {
        cmd.arg("--map-root-user");
    }
    cmd.arg(&exe)
        .args(["suite::exec::output_exit_code_and_duration", "--exact"])
        .args(["--test-threads", "1"]);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run `unshare`: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.starts_with("unshare:") {
        eprintln!("skipped: this machine refuses a new PID namespace: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}
