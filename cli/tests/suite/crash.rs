//! A `keel run` killed with SIGKILL mid-way is finished by `keel resume`, without
//! re-sending any request whose response was recorded.

use std::process::Stdio;

use crate::support::*;

#[test]
fn sigkill_mid_run_then_resume_finishes_without_paying_twice() {
    let project = Project::new(hello_script());
    // Hold the last turn: the run is waiting on the model when it is killed.
    project.server.hold(2);
    let mut child = project
        .keel()
        .args([
            "run",
            "coding_agent",
            "Create hello.sh and run it",
            "--approve-all",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    project.server.wait_holding(2);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    project.server.release();

    let runs = project.runs();
    assert_eq!(runs[0]["status"], "running", "interrupted mid-run");
    let run = runs[0]["id"].as_str().unwrap().to_owned();
    let (code, out, err) = project.run(&["resume", &run, "--approve-all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Done: it printed Hello, world!"), "{out}");
    // Turns 0 and 1 had recorded responses: sent once. Turn 2 was in flight when
    // the process died: sent again, once.
    assert_eq!(project.server.calls_of(0), 1);
    assert_eq!(project.server.calls_of(1), 1);
    assert_eq!(project.server.calls_of(2), 2);
    assert_eq!(project.runs()[0]["status"], "completed");
    let (code, out, _) = project.run(&["replay", &run]);
    assert_eq!(code, 0, "{out}");
}
