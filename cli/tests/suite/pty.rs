//! `keel run` in a real pseudo-terminal: the approval prompts answered with yes,
//! no (with feedback the model receives) and always.

use serde_json::json;

use crate::support::*;

fn spawn(project: &Project, args: &str) -> rexpect::session::PtySession {
    let mut cmd = project.keel();
    cmd.args(args.split(' '));
    rexpect::session::spawn_command(cmd, Some(30_000)).unwrap()
}

#[test]
fn prompts_take_yes_no_with_feedback_and_always() {
    let project = Project::new(vec![
        call(
            "I'll write it.",
            "write",
            json!({"path": "a.sh", "content": "echo a\n"}),
        ),
        call("Running.", "exec", json!({"command": "sh a.sh"})),
        call(
            "Trying again.",
            "exec",
            json!({"command": "sh a.sh --verbose"}),
        ),
        call("Once more.", "exec", json!({"command": "sh a.sh --quiet"})),
        say("All done."),
    ]);
    let mut p = spawn(&project, "run coding_agent write-and-run");
    p.exp_string("WRITE APPROVAL REQUIRED").unwrap();
    p.exp_string("Content:").unwrap();
    p.exp_string(
        "Approve this operation? [y]es / [n]o / [a]lways (any \"write\" call in this run):",
    )
    .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Approved. Resuming...").unwrap();
    p.exp_string("COMMAND APPROVAL REQUIRED").unwrap();
    p.exp_string("Command:   sh a.sh").unwrap();
    p.exp_string("Approve this command?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("Feedback for the agent").unwrap();
    p.send_line("use the verbose flag").unwrap();
    p.exp_string("Denied. Resuming...").unwrap();
    p.exp_string("Command:   sh a.sh --verbose").unwrap();
    p.exp_string("Approve this command? [y]es / [n]o / [a]lways (exactly this command here)")
        .unwrap();
    p.send_line("a").unwrap();
    p.exp_string("allowed again exactly so for the rest of this run")
        .unwrap();
    // `sh a.sh --quiet` is not covered by "always": it stores exactly
    // `sh a.sh --verbose` in this directory.
    p.exp_string("Command:   sh a.sh --quiet").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("All done.").unwrap();
    p.exp_eof().unwrap();

    let requests = project.server.requests();
    let denied = tool_results(&requests[2]);
    assert!(denied[0].2, "the denied call is an error result");
    assert!(denied[0].1.contains("use the verbose flag"), "{denied:?}");
    let ran = tool_results(&requests[3]);
    assert!(ran[0].1.contains('a'), "{ran:?}");
    let runs = project.runs();
    assert_eq!(runs[0]["status"], "completed");
    let (_, out, _) = project.run(&["export", "last"]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let resolutions: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "approval_resolved")
        .collect();
    assert_eq!(resolutions.len(), 4);
    assert_eq!(resolutions[1]["resolution"]["approved"], false);
    assert_eq!(resolutions[1]["resolution"]["note"], "use the verbose flag");
    assert!(
        resolutions[2]["resolution"]["remember"].is_object(),
        "always was recorded"
    );
}

#[test]
fn ctrl_c_at_a_prompt_leaves_the_run_waiting_and_resumable() {
    let project = Project::new(hello_script());
    let mut p = spawn(&project, "run coding_agent write-it");
    p.exp_string("Approve this operation?").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("keel: interrupted").unwrap();
    p.exp_eof().unwrap();
    let runs = project.runs();
    assert_eq!(runs[0]["status"], "suspended");
    let run = runs[0]["id"].as_str().unwrap().to_owned();
    let (code, out, err) = project.run(&["resume", &run, "--approve-all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Done: it printed Hello, world!"), "{out}");
}
