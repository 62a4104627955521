//! SECURITY.md items 49 and 50: nested and bare repositories, `keel.toml` and the
//! store. `write`/`edit` cannot create them at any depth; and when a repository
//! gets its config some other way (a command the allowlist runs, a clone), git run
//! by `exec` runs no hook, fsmonitor or pager from it, and a git command needs a
//! person when the repository's config names a command git would run anyway
//! (filters, textconv, external diff, includes).

use std::process::Command;

use keel_tools::{Approval, ExecSecurity, FileApproval, FormContext};
use serde_json::json;

use super::common::*;

fn files_free(f: impl FnOnce(&mut keel_tools::SandboxConfig)) -> Ws {
    Ws::with(|c| {
        c.file_approval = FileApproval::Never;
        f(c);
    })
}

async fn write(ws: &Ws, path: &str, content: &str) -> keel_tools::ToolOutput {
    ws.call("write", json!({"path": path, "content": content}))
        .await
}

#[tokio::test]
async fn sec_49_git_metadata_at_any_depth_cannot_be_written() {
    let ws = files_free(|_| {});
    for path in [
        ".git/config",
        "sub/.git/config",
        "a/b/c/.git/hooks/pre-commit",
        "vendor/lib/.git",
        ".keel/x",
        "deep/.keel/LOCK",
        "keel.toml",
        "agents/keel.toml",
    ] {
        let out = err(write(&ws, path, "[core]\n\tfsmonitor = touch pwned\n").await);
        assert!(out.contains("is protected"), "{path}: {out}");
        assert!(!exists(&ws.path(path)), "{path}");
        // The approval step refuses it before any person is asked.
        let v = ws.approval("write", json!({"path": path, "content": "x"}));
        assert!(matches!(v, Approval::Refused(_)), "{path}: {v:?}");
    }
    // Through a symlink inside the workspace, and by `edit` of an existing file.
    std::fs::create_dir_all(ws.path("sub/.git")).unwrap();
    std::os::unix::fs::symlink("sub/.git", ws.path("innocent")).unwrap();
    let out = err(write(&ws, "innocent/config", "x").await);
    assert!(out.contains("is protected (`.git`)"), "{out}");
    ws.put("nested/keel.toml", "[agents.a]\n");
    ws.call("read", json!({"path": "nested/keel.toml"})).await;
    let out = err(ws
        .call(
            "edit",
            json!({"path": "nested/keel.toml", "old_string": "a", "new_string": "b"}),
        )
        .await);
    assert!(out.contains("is protected (`keel.toml`)"), "{out}");
    // More paths, configured: a name at any depth, or a glob from the root.
    let ws = files_free(|c| c.protected_paths = vec!["*.pem".into(), "config/prod".into()]);
    for path in ["keys/a/server.pem", "config/prod/db.yml", ".git/x"] {
        err(write(&ws, path, "x").await);
    }
    ok(write(&ws, "other/config/prod/db.yml", "x").await);
}

#[tokio::test]
async fn sec_49_a_bare_repository_cannot_be_laid_out_file_by_file() {
    let ws = files_free(|_| {});
    // The first piece alone is an ordinary file.
    ok(write(&ws, "b/HEAD", "ref: refs/heads/main\n").await);
    for path in ["b/config", "b/objects/info/x", "b/refs/heads/main"] {
        let out = err(write(&ws, path, "x").await);
        assert!(
            out.contains("laid out as a git repository"),
            "{path}: {out}"
        );
    }
    // Whatever order: a config first, then HEAD.
    ok(write(&ws, "c/config", "[core]\n").await);
    err(write(&ws, "c/HEAD", "ref: refs/heads/main\n").await);
    // A real bare repository (made by git, not the agent) cannot be changed either.
    git(&ws.root, &["init", "-q", "--bare", "real.git"]);
    let out = err(write(&ws, "real.git/config", "x").await);
    assert!(out.contains("laid out as a git repository"), "{out}");
    // A directory holding a Keel store, under any name.
    std::fs::create_dir_all(ws.path("data/store/wal")).unwrap();
    std::fs::write(ws.path("data/store/LOCK"), "").unwrap();
    let out = err(write(&ws, "data/store/sled/conf", "x").await);
    assert!(out.contains("holds a Keel store"), "{out}");
    // Ordinary project files named like git's stay writable (a hook in a folder
    // that is not a repository runs nowhere).
    ok(write(&ws, "b/hooks/post-checkout", "x").await);
    ok(write(&ws, "src/config", "x").await);
    ok(write(&ws, "docs/refs/index.md", "x").await);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let st = Command::new("git")
        .args(["-c", "user.name=k", "-c", "user.email=k@k"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// A repository at `sub` with one commit and a modified file, then config and
/// hooks written the way a command (`node plant.js`, allowlisted) could write them.
async fn planted(ws: &Ws) {
    let sub = ws.path("sub");
    std::fs::create_dir(&sub).unwrap();
    git(&sub, &["init", "-q"]);
    std::fs::write(sub.join("a.txt"), "one\n").unwrap();
    git(&sub, &["add", "a.txt"]);
    git(&sub, &["commit", "-qm", "one"]);
    std::fs::write(sub.join("a.txt"), "two\n").unwrap();
    // The write tool refuses every one of these files...
    err(write(ws, "sub/.git/config", "x").await);
    // ...so the agent uses a command the allowlist admits.
    ok(write(
        ws,
        "plant.js",
        r#"const fs = require("fs");
const m = (n) => `touch ${process.cwd()}/${n}`;
fs.appendFileSync("sub/.git/config",
  `[core]\n\tfsmonitor = "${m("FSMONITOR")}"\n\tpager = "${m("PAGER")}"\n` +
  `\thooksPath = .git/hooks\n\teditor = "${m("EDITOR")}"\n` +
  `[pager]\n\tstatus = "${m("PAGER2")}"\n`);
for (const h of ["pre-commit", "post-commit", "commit-msg", "post-checkout", "post-index-change"]) {
  fs.writeFileSync(`sub/.git/hooks/${h}`, `#!/bin/sh\n${m("HOOK-" + h)}\n`, { mode: 0o755 });
}
"#,
    )
    .await);
    ok(ws.sh("node plant.js").await);
}

#[tokio::test]
async fn sec_49_git_runs_no_hook_fsmonitor_or_pager_from_a_planted_repository() {
    let ws = files_free(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = vec!["node *".into(), "git *".into()];
    });
    planted(&ws).await;
    for command in [
        "git status",
        "git -p status --short",
        "git diff",
        "git log -p -1",
        "git add a.txt",
        "git commit -qm two",
        "git checkout -q -b topic",
        "git commit -q --allow-empty -m three",
    ] {
        let args = json!({"command": command, "cwd": "sub"});
        assert_eq!(
            ws.approval("exec", args.clone()),
            Approval::NotNeeded,
            "{command}"
        );
        let out = ws.call("exec", args).await;
        assert!(!out.is_error, "{command}: {}", out.content);
    }
    let left: Vec<String> = std::fs::read_dir(&ws.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("FSMONITOR")
                || n.starts_with("PAGER")
                || n.starts_with("HOOK")
                || n.starts_with("EDITOR")
        })
        .collect();
    assert!(left.is_empty(), "git ran {left:?}");
    // The commits happened: git worked, with the repository's commands off.
    let log = ok(ws
        .call(
            "exec",
            json!({"command": "git log --oneline", "cwd": "sub"}),
        )
        .await);
    assert!(
        log.lines().filter(|l| l.contains(' ')).count() >= 3,
        "{log}"
    );
    // The control: git run without Keel's environment runs them all.
    git(&ws.path("sub"), &["status", "--short"]);
    git(
        &ws.path("sub"),
        &["commit", "-q", "--allow-empty", "-m", "control"],
    );
    for marker in ["FSMONITOR", "HOOK-pre-commit", "HOOK-post-commit"] {
        assert!(exists(&ws.path(marker)), "the planted {marker} did not run");
    }
}

/// (config lines, a git command): the repository's config names a command git
/// runs whatever the environment says; the git command needs a person.
const RISKY: &[(&str, &str)] = &[
    (
        "[filter \"x\"]\n\tsmudge = touch PWN\n\tclean = touch PWN",
        "git status",
    ),
    ("[diff \"x\"]\n\ttextconv = touch PWN", "git diff"),
    ("[diff]\n\texternal = touch PWN", "git diff"),
    ("[merge \"x\"]\n\tdriver = touch PWN", "git merge topic"),
    ("[include]\n\tpath = ../../elsewhere.cfg", "git status"),
    (
        "[includeIf \"gitdir:/\"]\n\tpath = ../../elsewhere.cfg",
        "git log",
    ),
    ("[core]\n\tworktree = /tmp", "git checkout ."),
    ("[core]\n\tsshCommand = touch PWN", "git fetch"),
    ("[core]\n\tgitProxy = touch PWN", "git fetch"),
    ("[credential]\n\thelper = !touch PWN", "git push"),
    (
        "[remote \"origin\"]\n\tuploadpack = touch PWN",
        "git fetch origin",
    ),
    ("[gpg]\n\tprogram = touch PWN", "git log --show-signature"),
    ("[trailer \"x\"]\n\tcommand = touch PWN", "git commit -m x"),
    (
        "[submodule \"s\"]\n\tupdate = !touch PWN",
        "git submodule update",
    ),
];

#[tokio::test]
async fn sec_49_repository_config_git_cannot_switch_off_needs_a_person() {
    for (config, command) in RISKY {
        let ws = files_free(|c| {
            c.exec.security = ExecSecurity::Allowlist;
            c.exec.allowlist = vec!["git *".into()];
        });
        let sub = ws.path("sub");
        std::fs::create_dir(&sub).unwrap();
        git(&sub, &["init", "-q"]);
        let cfg = sub.join(".git/config");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(config);
        text.push('\n');
        std::fs::write(&cfg, text).unwrap();
        match ws.approval("exec", json!({"command": command, "cwd": "sub"})) {
            Approval::Needed(form) => match form.context {
                FormContext::Command { reason, .. } => {
                    assert!(
                        reason.contains("repository's own git config sets"),
                        "{reason}"
                    )
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{config:?} + `{command}`: {other:?}"),
        }
        // The same command elsewhere in the workspace is not affected.
        assert_eq!(
            ws.approval("exec", json!({ "command": command })),
            Approval::NotNeeded,
            "{command} at the root"
        );
    }
}

#[tokio::test]
async fn sec_49_git_finds_repositories_the_way_the_command_would() {
    let ws = files_free(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = vec!["git *".into()];
    });
    // A `.git` file pointing elsewhere (as a submodule or worktree has).
    let real = ws.path("store/real.git");
    std::fs::create_dir_all(ws.path("store")).unwrap();
    git(&ws.path("store"), &["init", "-q", "--bare", "real.git"]);
    std::fs::write(
        real.join("config"),
        "[core]\n\tbare = false\n[filter \"x\"]\n\tsmudge = touch PWN\n",
    )
    .unwrap();
    std::fs::create_dir_all(ws.path("w")).unwrap();
    std::fs::write(ws.path("w/.git"), format!("gitdir: {}\n", real.display())).unwrap();
    needed(ws.approval("exec", json!({"command": "git status", "cwd": "w"})));
    // `-C` and `--git-dir` are followed.
    needed(ws.approval("exec", json!({"command": "git -C w status"})));
    needed(ws.approval(
        "exec",
        json!({"command": "git --git-dir=store/real.git log"}),
    ));
    // A line that changes directory first cannot be checked.
    let ws2 = files_free(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = vec!["git *".into(), "cd *".into()];
    });
    needed(ws2.approval("exec", json!({"command": "cd w && git status"})));
    // A bare layout a command assembled is not a repository to git here
    // (`safe.bareRepository=explicit`): git refuses it, and runs nothing it names.
    let ws = Ws::exec();
    let bare = ws.path("bare");
    std::fs::create_dir(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare"]);
    let marker = ws.path("FSM");
    std::fs::write(
        bare.join("config"),
        format!(
            "[core]\n\tbare = true\n\tfsmonitor = touch {m}\n\tpager = touch {m}\n",
            m = marker.display()
        ),
    )
    .unwrap();
    for command in ["git status", "git log"] {
        let out = err(ws
            .call("exec", json!({"command": command, "cwd": "bare"}))
            .await);
        assert!(out.contains("safe.bareRepository"), "{command}: {out}");
    }
    err(ws
        .call("exec", json!({"command": "git diff", "cwd": "bare"}))
        .await);
    assert!(!exists(&marker));
    // And the hardening is in every command's environment.
    let out = ok(ws
        .sh("git config --show-scope --get-all core.hooksPath; git config --get safe.bareRepository")
        .await);
    assert!(out.starts_with("command\t/dev/null\nexplicit\n"), "{out}");
}
