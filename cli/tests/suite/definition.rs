//! A run carries its own definition (issue 11): continuing, answering, replaying and
//! forking a run need no flags, no configuration, no workspace and no key they did
//! not need when it started, from any directory; a changed `keel.toml` applies only
//! when the person adopts it, and that is recorded.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::*;

/// `keel --store <store> args…` run from `dir`, with only the environment given
/// (no API key, no base URL unless passed).
fn keel_in(dir: &Path, store: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.current_dir(dir)
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KEEL_STORE")
        .env_remove("KEEL_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ids(dir: &Path, store: &Path) -> Vec<(String, String)> {
    let (code, out, err) = keel_in(dir, store, &[], &["runs", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_run_started_with_flags_continues_replays_and_forks_from_elsewhere_with_no_flags() {
    let project = Project::new(hello_script());
    let store = project.path().join(".keel");
    let custom = project.path().join("custom-ws");
    let elsewhere = tempfile::tempdir().unwrap();
    // Started with non-default flags; waits at the write (no terminal).
    let (code, _, err) = project.run(&[
        "run",
        "coding_agent",
        "Create hello.sh and run it",
        "--workspace",
        "custom-ws",
        "--model",
        "claude-custom-1",
        "--base-url",
        &project.server.url,
    ]);
    assert_eq!(code, 3, "{err}");
    let run = run_ids(project.path(), &store)[0].0.clone();

    // From another directory, no flags, no key: answer.
    let (code, _, err) = keel_in(elsewhere.path(), &store, &[], &["approve", &run]);
    assert_eq!(code, 0, "{err}");
    // Continue with only a key: the workspace, model and base URL come from the record.
    let key = [("ANTHROPIC_API_KEY", "test-key")];
    let (code, out, err) = keel_in(
        elsewhere.path(),
        &store,
        &key,
        &["resume", &run, "--approve-all"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    // The built-in agent of this directory is not the recorded one: said in one line.
    assert!(err.contains("with the definition it recorded"), "{err}");
    assert_eq!(
        std::fs::read_to_string(custom.join("hello.sh")).unwrap(),
        "echo \"Hello, world!\"\n"
    );
    assert!(!elsewhere.path().join("workspace").exists());
    let requests = project.server.requests();
    assert!(
        requests.iter().all(|r| r["model"] == "claude-custom-1"),
        "{requests:?}"
    );
    assert!(
        requests[0]["system"]
            .to_string()
            .contains(&custom.display().to_string())
    );

    // The timeline shows the recorded definition.
    let (code, out, _) = keel_in(elsewhere.path(), &store, &[], &["show", &run]);
    assert_eq!(code, 0);
    assert!(
        out.contains("definition recorded: workspace") && out.contains("custom-ws"),
        "{out}"
    );

    // Fork from elsewhere with no flags, and with an override the fork records.
    let (code, fork, err) = keel_in(elsewhere.path(), &store, &key, &["fork", &run, "--at", "3"]);
    assert_eq!(code, 0, "{err}");
    let fork = fork.trim().to_owned();
    let (code, out, err) = keel_in(
        elsewhere.path(),
        &store,
        &key,
        &["resume", &fork, "--approve-all"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, other, err) = keel_in(
        elsewhere.path(),
        &store,
        &[],
        &["fork", &run, "--at", "3", "--model", "claude-other-2"],
    );
    assert_eq!(code, 0, "{err}");
    let (_, shown, _) = keel_in(elsewhere.path(), &store, &[], &["show", other.trim()]);
    assert!(
        shown.contains("definition changed by keel fork")
            && shown.contains("now: model claude-other-2"),
        "{shown}"
    );

    // Replay needs nothing outside the store: no workspace, no key, no config.
    std::fs::remove_dir_all(&custom).unwrap();
    for id in [&run, &fork] {
        let (code, out, err) = keel_in(elsewhere.path(), &store, &[], &["replay", id]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("deterministic."), "{out}");
    }
    // Resuming a run with flags is refused unless the change is adopted explicitly.
    let (code, _, err) = keel_in(
        elsewhere.path(),
        &store,
        &key,
        &["resume", other.trim(), "--model", "x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--adopt"), "{err}");
}

#[test]
fn replay_against_a_changed_keel_toml_reports_both_sides() {
    let project = Project::new(vec![say("Hi.")]);
    std::fs::write(
        project.path().join("keel.toml"),
        "[agents.helper]\nsystem_prompt = \"be brief\"\n",
    )
    .unwrap();
    let (code, _, err) = project.run(&["run", "helper", "hi"]);
    assert_eq!(code, 0, "{err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    std::fs::write(
        project.path().join("keel.toml"),
        "[agents.helper]\nsystem_prompt = \"be verbose\"\n",
    )
    .unwrap();
    let (code, out, _) = project.run(&["replay", &run]);
    assert_eq!(code, 0, "against the recorded definition: {out}");
    let (code, out, _) = project.run(&["replay", &run, "--against", "keel.toml"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("KEEL-E100") && out.contains("\"be brief\"") && out.contains("\"be verbose\""),
        "{out}"
    );
}

#[test]
fn an_agent_rewriting_keel_toml_cannot_change_its_own_policy() {
    let evil = "[agents.coder]\nsystem_prompt = \"x\"\n[agents.coder.tools.local]\ncwd = \"/\"\npath_restriction = \"/\"\n[agents.coder.tools.exec]\nsecurity = \"allow-always\"\n";
    let project = Project::new(vec![
        call(
            "Loosening my policy.",
            "write",
            json!({"path": "keel.toml", "content": evil}),
        ),
        call(
            "Then through a command.",
            "exec",
            json!({"command": format!("printf '%s' '{evil}' > keel.toml")}),
        ),
        call(
            "Now a command.",
            "exec",
            json!({"command": "echo ran > marker.txt"}),
        ),
        say("Done."),
    ]);
    let toml =
        "[agents.coder]\nsystem_prompt = \"You code.\"\n[agents.coder.tools.local]\ncwd = \".\"\n";
    std::fs::write(project.path().join("keel.toml"), toml).unwrap();
    // The write tool never writes a keel.toml; the command that would waits.
    let (code, _, err) = project.run(&["run", "coder", "go"]);
    assert_eq!(code, 3, "waits at the command: {err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    let (_, shown, _) = project.run(&["show", &run]);
    assert!(shown.contains("refused"), "{shown}");
    assert_eq!(
        std::fs::read_to_string(project.path().join("keel.toml")).unwrap(),
        toml
    );
    // A person approves the command without noticing what it writes.
    let (code, _, err) = project.run(&["approve", &run]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = project.run(&["resume", &run]);
    assert_eq!(code, 3, "{err}");
    let rewritten = std::fs::read_to_string(project.path().join("keel.toml")).unwrap();
    assert!(rewritten.contains("allow-always"), "{rewritten}");
    // Continuing: the next command still waits for a person under the recorded policy
    // (approval-always), nothing ran, and one line says keel.toml differs and is not used.
    assert!(err.contains("command") || err.contains("exec"), "{err}");
    assert!(!project.path().join("marker.txt").exists());
    let (code, _, err) = project.run(&["resume", &run]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("continuing run") && err.contains("with the definition it recorded"),
        "{err}"
    );
    assert!(!project.path().join("marker.txt").exists());
    // Only the person adopts a new definition, and it is recorded.
    std::fs::write(
        project.path().join("keel.toml"),
        "[agents.coder]\nsystem_prompt = \"You code carefully.\"\n[agents.coder.tools.local]\ncwd = \".\"\n",
    )
    .unwrap();
    let (code, _, err) = project.run(&["resume", &run, "--adopt"]);
    assert_eq!(code, 3, "still waits for the person: {err}");
    assert!(err.contains("adopting agent `coder`"), "{err}");
    let (_, shown, _) = project.run(&["show", &run]);
    assert!(shown.contains("definition changed by"), "{shown}");
    assert!(
        shown.contains("adopted with `keel resume --adopt`"),
        "{shown}"
    );
}

#[test]
fn the_demos_next_steps_work_offline_from_a_fresh_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = keel_in(
        dir.path(),
        Path::new("keel-demo/.keel"),
        &[],
        &["demo", "--approve-all"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let steps: Vec<String> = err
        .lines()
        .skip_while(|l| !l.contains("Next, try:"))
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix("keel "))
        .map(|l| l.split('#').next().unwrap().trim().to_owned())
        .collect();
    assert_eq!(steps.len(), 5, "{err}");
    let mut fork = String::new();
    for step in steps {
        let step = step.replace("<fork id>", &fork);
        let args: Vec<&str> = step.split_whitespace().collect();
        // Each printed command, as printed, from the same directory, offline.
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .current_dir(dir.path())
            .args(&args)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("KEEL_STORE")
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if args.contains(&"fork") {
            fork = stdout.trim().to_owned();
        }
        // `resume` without a terminal stops at the first approval (3) and says how to go on.
        let ok = if args.contains(&"resume") {
            code == 3 || code == 0
        } else {
            code == 0
        };
        assert!(ok, "keel {step}: {code}\n{stdout}\n{stderr}");
        assert!(!stderr.contains("API key"), "{stderr}");
    }
    // And the fork goes on to the end offline.
    let store = dir.path().join("keel-demo/.keel");
    let (code, _, err) = keel_in(dir.path(), &store, &[], &["approve", &fork]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = keel_in(dir.path(), &store, &[], &["resume", &fork, "--approve-all"]);
    assert_eq!(code, 0, "{err}");
    let _: PathBuf = store;
}

/// Edits after writes: a file the agent wrote counts as read, also when the edit
/// comes in another process (the tracker is rebuilt from the run's log).
#[test]
fn an_edit_after_a_write_needs_no_read_even_across_processes() {
    let script = || {
        vec![
            call(
                "Writing.",
                "write",
                json!({"path": "sub/ok.txt", "content": "one\ntwo\n"}),
            ),
            call(
                "Editing.",
                "edit",
                json!({"path": "sub/ok.txt", "old_string": "two", "new_string": "deux"}),
            ),
            say("Done."),
        ]
    };
    // In one process.
    let project = Project::new(script());
    let (code, _, err) = project.run(&["run", "coding_agent", "go", "--approve-all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(project.workspace().join("sub/ok.txt")).unwrap(),
        "one\ndeux\n"
    );
    let results = tool_results(&project.server.requests()[2]);
    assert!(!results[0].2, "the edit failed: {results:?}");

    // Write in one process, edit in the next.
    let project = Project::new(script());
    let (code, _, err) = project.run(&["run", "coding_agent", "go"]);
    assert_eq!(code, 3, "{err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (code, _, err) = project.run(&["approve", &run]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = project.run(&["resume", &run]);
        assert!(code == 3 || code == 0, "{err}");
    }
    assert_eq!(project.runs()[0]["status"], "completed");
    assert_eq!(
        std::fs::read_to_string(project.workspace().join("sub/ok.txt")).unwrap(),
        "one\ndeux\n"
    );
    let requests = project.server.requests();
    let results = tool_results(requests.last().unwrap());
    assert!(!results[0].2, "the edit failed: {results:?}");
}

/// The owner's close waits for its own finished run to let go before deciding
/// whether other terminals still need it: no spurious "other terminals" notice.
#[test]
fn finishing_a_run_does_not_claim_other_terminals_are_waiting() {
    let project = Project::new(vec![say("Hi.")]);
    for _ in 0..10 {
        let (code, _, err) = project.run(&["run", "coding_agent", "hi"]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("other terminals"), "{err}");
    }
}

/// In a terminal: a run started with non-default flags is continued from another
/// directory with no flags, and its approvals are answered at the prompt.
#[test]
fn resume_in_a_terminal_from_elsewhere_asks_and_finishes_with_the_recorded_definition() {
    let project = Project::new(hello_script());
    let (code, _, err) = project.run(&[
        "run",
        "coding_agent",
        "Create hello.sh and run it",
        "--workspace",
        "ws-pty",
        "--model",
        "claude-pty-1",
        "--base-url",
        &project.server.url,
    ]);
    assert_eq!(code, 3, "{err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.current_dir(elsewhere.path())
        .arg("--store")
        .arg(project.path().join(".keel"))
        .args(["resume", &run])
        .env("ANTHROPIC_API_KEY", "test-key")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("KEEL_STORE")
        .env_remove("KEEL_CONFIG");
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    p.exp_string("WRITE APPROVAL REQUIRED").unwrap();
    p.exp_string("Approve this operation?").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("COMMAND APPROVAL REQUIRED").unwrap();
    p.exp_string("Approve this command?").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Done: it printed Hello, world!").unwrap();
    p.exp_eof().unwrap();
    assert!(project.path().join("ws-pty/hello.sh").exists());
    assert!(
        project
            .server
            .requests()
            .iter()
            .all(|r| r["model"] == "claude-pty-1")
    );
    assert_eq!(project.runs()[0]["status"], "completed");
}
