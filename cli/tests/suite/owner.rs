//! One owner per store, everyone else through it: while `keel run` waits at its
//! prompt, `keel approve` from a second process answers, and `keel log --follow`
//! from a third shows the run to its end.

use std::io::Read;
use std::process::Stdio;

use crate::support::*;

#[test]
fn approve_and_follow_from_other_processes() {
    let project = Project::new(hello_script());
    let mut cmd = project.keel();
    cmd.args(["run", "coding_agent", "Create hello.sh and run it"]);
    let mut first = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    first.exp_string("WRITE APPROVAL REQUIRED").unwrap();
    first.exp_string("call in this run):").unwrap();
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();

    // A third process follows the run through the owner.
    let mut follow = project
        .keel()
        .args(["log", &run, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A second process approves the write, then the command.
    let (code, _, err) = project.run(&["approve", &run, "--step", "0.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("continues in the process that owns the store"),
        "{err}"
    );
    first.exp_string("answered from another terminal").unwrap();
    first.exp_string("COMMAND APPROVAL REQUIRED").unwrap();
    let (code, _, err) = project.run(&["approve", &run, "--step", "1.0", "--note", "go ahead"]);
    assert_eq!(code, 0, "{err}");
    first.exp_string("Done: it printed Hello, world!").unwrap();
    first.exp_eof().unwrap();

    let status = follow.wait().unwrap();
    let mut out = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    follow
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(
        out.contains("Done: it printed Hello, world!"),
        "{out}\n{err}"
    );
    assert!(err.contains("run completed"), "{err}");
    assert!(project.workspace().join("hello.sh").exists());
    // A second answer to the same step is refused.
    let (code, _, err) = project.run(&["approve", &run, "--step", "0.0"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already ended") || err.contains("already answered"),
        "{err}"
    );
}

#[test]
fn a_stale_socket_from_a_killed_owner_is_cleaned_up() {
    let project = Project::new(hello_script());
    project.server.hold(0);
    let mut child = project
        .keel()
        .args(["run", "coding_agent", "hi", "--approve-all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    project.server.wait_holding(0);
    assert!(project.path().join(".keel/keel.sock").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    project.server.release();
    // The socket file is left behind; the next command notices nobody owns the
    // store and takes it over.
    assert!(project.path().join(".keel/keel.sock").exists());
    let runs = project.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "running");
}

#[test]
fn two_terminals_run_two_agents_on_one_store() {
    let project = Project::new(hello_script());
    let spawn = |prompt: &str| {
        project
            .keel()
            .args(["run", "coding_agent", prompt, "--approve-all"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("first");
    let second = spawn("second");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Done: it printed Hello, world!"));
    }
    let runs = project.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "completed"), "{runs:?}");
    let mut titles: Vec<&str> = runs.iter().map(|r| r["title"].as_str().unwrap()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["first", "second"]);
}

#[test]
fn a_store_held_by_a_process_that_does_not_answer_says_which() {
    let project = Project::new(hello_script());
    // This test process holds the store without serving its socket.
    let _held = keel_storage::SledStore::open(project.path().join(".keel")).unwrap();
    let out = project
        .keel()
        .env("KEEL_OWNER_WAIT_MS", "300")
        .args(["runs"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use by another process"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}
