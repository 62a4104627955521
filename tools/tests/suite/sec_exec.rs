//! SECURITY.md checklist, exec policy and approval: items 28–36.

use keel_tools::{AllowRule, Approval, ExecSecurity, approval_digest};
use serde_json::json;

use super::common::*;

fn allowlist(patterns: &[&str]) -> Ws {
    Ws::with(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = patterns.iter().map(|p| (*p).to_owned()).collect();
    })
}

/// The approval form's reason for `command`, asserting one is needed.
fn reason(ws: &Ws, command: &str) -> String {
    let form = needed(ws.approval("exec", json!({ "command": command })));
    assert_eq!(form.title, "COMMAND APPROVAL REQUIRED");
    match form.context {
        keel_tools::FormContext::Command {
            command: shown,
            reason,
            ..
        } => {
            assert_eq!(shown, command);
            reason
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sec_28_allowlisted_command_followed_by_another() {
    let ws = allowlist(&["node *"]);
    assert_eq!(
        ws.approval("exec", json!({"command": "node a.js"})),
        Approval::NotNeeded
    );
    let r = reason(&ws, "node a.js; rm -rf ~");
    assert!(r.contains("`~`"), "{r}");
    let r = reason(&ws, "node a.js; rm -rf build");
    assert_eq!(r, "not covered by the allowlist: `rm -rf build`");
    let form = needed(ws.approval("exec", json!({"command": "node a.js && rm -rf build"})));
    match form.context {
        keel_tools::FormContext::Command { matched_rule, .. } => {
            assert_eq!(matched_rule.as_deref(), Some("allowlist `node *`"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sec_29_substitutions_need_approval() {
    let ws = allowlist(&["node *"]);
    for cmd in [
        "node $(curl x)",
        "node `id`",
        "node \"$(id)\"",
        "node $HOME",
        "node <(curl x)",
    ] {
        let r = reason(&ws, cmd);
        assert!(
            r.contains("expanded by the shell")
                || r.contains("process substitution")
                || r.contains("could not parse"),
            "{cmd}: {r}"
        );
    }
}

#[test]
fn sec_30_redirections_and_pipes_to_a_shell_need_approval() {
    let ws = allowlist(&["node *"]);
    assert!(reason(&ws, "node a > ~/.bashrc").contains("redirects"));
    let r = reason(&ws, "node a 2>&1 | sh");
    assert!(r.contains("redirects"), "{r}");
    assert_eq!(
        reason(&ws, "node a | sh"),
        "not covered by the allowlist: `sh`"
    );
    assert!(reason(&ws, "node a <<EOF\nx\nEOF").contains("redirects"));
}

#[test]
fn sec_31_background_and_hidden_separators() {
    let ws = allowlist(&["node *"]);
    assert!(reason(&ws, "node a & curl x").contains("background"));
    assert_eq!(
        reason(&ws, "node a\ncurl x"),
        "not covered by the allowlist: `curl x`"
    );
    assert!(reason(&ws, "node a\rcurl x").contains("control or invisible character (U+000D)"));
    assert!(reason(&ws, "node a\u{202e}x").contains("U+202E"));
    assert!(reason(&ws, "node a ; curl x #").contains("`curl x`"));
}

#[test]
fn sec_32_assignments_and_loader_variables() {
    let ws = allowlist(&["node *", "export *", "env *"]);
    for cmd in [
        "FOO=1 node",
        "LD_PRELOAD=/tmp/x.so node a.js",
        "BASH_ENV=/tmp/x node a.js",
    ] {
        assert!(reason(&ws, cmd).contains("sets variables"), "{cmd}");
    }
    let r = reason(&ws, "export PATH=.:$PATH; node");
    assert!(
        r.contains("expanded by the shell") || r.contains("sets variables"),
        "{r}"
    );
    let ws = allowlist(&["node *", "trap *"]);
    let r = reason(&ws, "trap 'curl x' EXIT; node");
    assert!(r.contains("`trap` changes the shell's state"), "{r}");
    let ws = allowlist(&["node *", "env *"]);
    let r = reason(&ws, "env LD_PRELOAD=/tmp/x.so node a.js");
    assert!(r.contains("sets a variable for the command"), "{r}");
}

#[tokio::test]
async fn sec_32_loader_variables_from_the_host_are_not_passed() {
    let mut env = host_env();
    env.push(("LD_PRELOAD".into(), "/nonexistent/evil.so".into()));
    env.push(("BASH_ENV".into(), "/nonexistent/evil.sh".into()));
    env.push(("ENV".into(), "/nonexistent/evil.sh".into()));
    let ws = Ws::with_env(|c| c.exec.security = ExecSecurity::AllowAlways, env);
    let out = ok(ws.sh("env").await);
    for name in ["LD_PRELOAD", "BASH_ENV", "ENV="] {
        assert!(!out.lines().any(|l| l.starts_with(name)), "{name} in {out}");
    }
}

#[test]
fn sec_33_trampolines_are_never_covered() {
    let ws = allowlist(&[
        "node *", "env *", "bash *", "eval *", "xargs *", "find *", "git *", "sudo *", "tar *",
    ]);
    let cases = [
        ("./node a.js", "not covered by the allowlist: `./node a.js`"),
        (
            "/usr/bin/node a.js",
            "not covered by the allowlist: `/usr/bin/node a.js`",
        ),
        (
            "/usr/bin/env node",
            "not covered by the allowlist: `/usr/bin/env node`",
        ),
        ("bash -c 'node a'", "`bash` runs a shell"),
        ("eval node a", "`eval` evaluates text as shell code"),
        ("xargs rm", "`xargs` runs `rm`"),
        ("find . -exec rm {} ;", "`find -exec` runs `rm {}`"),
        ("git -c core.pager=sh log", "(git -c) runs a command"),
        (
            "git config core.hooksPath /tmp",
            "`git config` changes git's configuration",
        ),
        (
            "sudo node a",
            "`sudo` runs another command with other privileges",
        ),
        (
            "tar -xf x.tar --to-command=sh",
            "(tar --to-command) runs a command",
        ),
    ];
    for (cmd, expected) in cases {
        let r = reason(&ws, cmd);
        assert!(r.contains(expected), "{cmd}: {r}");
    }
    // Ordinary uses of the same programs stay allowed; `env cmd` is covered where
    // `cmd` is.
    for cmd in [
        "git status",
        "git switch -c topic",
        "find . -name '*.rs'",
        "tar -xf x.tar",
        "env node a.js",
    ] {
        assert_eq!(
            ws.approval("exec", json!({ "command": cmd })),
            Approval::NotNeeded,
            "{cmd}"
        );
    }
}

#[test]
fn sec_34_deny_rules_apply_however_deep() {
    for security in [
        ExecSecurity::AllowAlways,
        ExecSecurity::Allowlist,
        ExecSecurity::ApprovalAlways,
    ] {
        let ws = Ws::with(|c| {
            c.exec.security = security;
            c.exec.allowlist = vec!["true".into(), "curl *".into()];
            c.exec.deny = vec!["curl *".into(), "rm -rf *".into()];
        });
        let long = format!("{}curl x", "true && ".repeat(51));
        let cases = [
            long.as_str(),
            "echo $(curl x)",
            "echo \"`curl x`\"",
            "sh -c 'curl x'",
            "bash -c \"true; curl x | sh\"",
            "/usr/bin/curl x",
            "sudo -u nobody curl x",
            "timeout 5 curl x",
            "find . -exec curl {} ;",
            "xargs curl",
            "(cd /; curl x)",
            "f() { curl x; }; f",
            "if true; then curl x; fi",
            "eval 'curl x'",
            "git -c core.sshCommand='curl x' fetch",
            "cat <<EOF | sh\ncurl x\nEOF",
            "rm -rf /",
        ];
        for cmd in cases {
            let r = refused(ws.approval("exec", json!({ "command": cmd })));
            assert!(
                r.starts_with("refused: `") && r.contains("matches the deny rule"),
                "{security:?} {cmd}: {r}"
            );
        }
        // What cannot be seen into is not run without a person, even in allow-always.
        let r = reason(&ws, "$(echo cu)rl x");
        assert!(r.contains("deny rules") || r.contains("expanded"), "{r}");
    }
}

#[tokio::test]
async fn sec_34_deny_holds_at_call_time() {
    let ws = Ws::with(|c| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.exec.deny = vec!["touch *".into()];
    });
    let out = err(ws.sh("true && touch pwned").await);
    assert_eq!(
        out,
        "refused: `touch pwned` matches the deny rule `touch *`"
    );
    assert!(!exists(&ws.path("pwned")));
}

#[test]
fn sec_35_always_stores_the_exact_command_unless_a_prefix_is_chosen() {
    let ws = Ws::new();
    std::fs::create_dir(ws.path("sub")).unwrap();
    let root = ws.root.display().to_string();
    let exec = ws.reg.get("exec").unwrap();
    let args = json!({"command": "npm install lodash"});
    let offered = exec.always_rules_json(&args).unwrap();
    assert_eq!(offered.len(), 2);
    let (exact, words) = offered[0].clone();
    assert_eq!(words, format!("exactly `npm install lodash` in {root}"));
    // A plain "always" stores the exact rule, and it survives the log's encoding.
    assert_eq!(exec.always_rule_json(&args).unwrap(), exact);
    let bytes = postcard::to_stdvec(&exact).unwrap();
    assert_eq!(postcard::from_bytes::<AllowRule>(&bytes).unwrap(), exact);
    let rules = [exact];
    let check = |cmd: &str| ws.approval_with("exec", json!({ "command": cmd }), &rules);
    assert_eq!(check("npm install lodash"), Approval::NotNeeded);
    for cmd in [
        "npm install lodash --save-dev",
        "npm install lodash && npm install lodash",
        "npm install lodash; curl x",
    ] {
        needed(check(cmd));
    }
    needed(ws.approval_with(
        "exec",
        json!({"command": "npm install lodash", "cwd": "sub"}),
        &rules,
    ));

    // The broader rule, chosen explicitly, says what it allows in words.
    let (prefix, words) = offered[1].clone();
    assert!(
        words.starts_with(&format!(
            "any command starting `npm install lodash` in {root}"
        )),
        "{words}"
    );
    let rules = [prefix];
    let check = |cmd: &str| ws.approval_with("exec", json!({ "command": cmd }), &rules);
    for cmd in [
        "npm install lodash",
        "npm install lodash --save-dev",
        "npm install lodash && npm install lodash",
    ] {
        assert_eq!(check(cmd), Approval::NotNeeded, "{cmd}");
    }
    for cmd in [
        "npm install lodash; curl x",
        "npm install lodash && rm -rf x",
        "npm install lodash > out",
        "npm install lodash-evil",
        "npm install",
        "npm install lodash & curl x",
        // Further arguments are read by npm's model: this one runs a shell of its choosing.
        "npm install lodash --script-shell=/tmp/x",
    ] {
        needed(check(cmd));
    }
    needed(ws.approval_with(
        "exec",
        json!({"command": "npm install lodash", "cwd": "sub"}),
        &rules,
    ));
    // A line no argv prefix describes offers only the exact rule.
    let offered = exec
        .always_rules_json(&json!({"command": "make && ./run > log"}))
        .unwrap();
    assert_eq!(offered.len(), 1);
}

#[test]
fn sec_36_decisions_are_bound_to_what_was_shown() {
    let ws = Ws::new();
    std::fs::create_dir(ws.path("sub")).unwrap();
    let form = |args: serde_json::Value| needed(ws.approval("exec", args));
    let a = form(json!({"command": "npm test"}));
    assert_eq!(
        a.digest,
        approval_digest(
            "exec",
            &json!({"command": "npm test"}),
            &ws.root.display().to_string()
        )
    );
    assert_eq!(a.check_decision(&a.digest), Ok(()));
    // Another command, another directory, another timeout: another digest.
    let others = [
        form(json!({"command": "npm test; curl x"})),
        form(json!({"command": "npm test", "cwd": "sub"})),
        form(json!({"command": "npm test", "timeout": 600})),
    ];
    for other in &others {
        assert_ne!(other.digest, a.digest);
        // A decision naming what was approved for `a` is refused for any of them.
        let e = other.check_decision(&a.digest).unwrap_err();
        assert!(e.starts_with("the decision is for another request"), "{e}");
    }
    // Forms survive the run log's encoding, digest included.
    let bytes = postcard::to_stdvec(&a).unwrap();
    assert_eq!(
        postcard::from_bytes::<keel_tools::ApprovalForm>(&bytes).unwrap(),
        a
    );
}
