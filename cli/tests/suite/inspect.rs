//! Inspecting and debugging runs: show (snapshot), export, replay, fork + resume.

use crate::support::*;

fn finished_project() -> (Project, String) {
    let project = Project::new(hello_script());
    let (code, _, err) = project.run(&[
        "run",
        "coding_agent",
        "Create hello.sh and run it",
        "--approve-all",
    ]);
    assert_eq!(code, 0, "{err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    (project, run)
}

#[test]
fn show_prints_the_timeline() {
    let (project, run) = finished_project();
    let (code, out, err) = project.run(&["show", "last"]);
    assert_eq!(code, 0, "{err}");
    let workspace = project.workspace().display().to_string();
    insta::with_settings!({filters => vec![
        (run.as_str(), "[RUN]"),
        (workspace.as_str(), "[WORKSPACE]"),
        (r"\+\d+\.\d{3}s", "+[T]"),
        (r"\d+\.\d+ s\]", "[DUR]]"),
        (r"\d+(\.\d)?m?s\b", "[DUR]"),
    ]}, {
        insta::assert_snapshot!(out);
    });
    // A prefix of the id works too.
    let (code, again, _) = project.run(&["show", &run[..10]]);
    assert_eq!(code, 0);
    assert_eq!(again, out);
}

#[test]
fn show_json_and_export_carry_every_event() {
    let (project, run) = finished_project();
    let (code, out, _) = project.run(&["show", &run, "--json"]);
    assert_eq!(code, 0);
    let show: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(show["status"], "completed");
    assert_eq!(show["agent"], "coding_agent");
    let (code, out, _) = project.run(&["export", &run]);
    assert_eq!(code, 0);
    let events: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(events.len(), show["events"].as_array().unwrap().len());
    assert_eq!(events[0]["type"], "run_started");
    assert_eq!(events.last().unwrap()["type"], "run_completed");
    let exec = events.iter().find(|e| {
        e["type"] == "tool_finished" && e["output"].as_str().unwrap_or("").contains("Hello, world!")
    });
    assert!(exec.is_some(), "the exec output is exported");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64);
    }
}

#[test]
fn replay_is_deterministic_and_calls_nothing_then_catches_a_changed_prompt() {
    let (project, run) = finished_project();
    let before = project.server.requests().len();
    let (code, out, err) = project.run(&["replay", &run]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("deterministic"), "{out}");
    assert_eq!(
        project.server.requests().len(),
        before,
        "replay calls no LLM"
    );
    // The same agent id with another system prompt: non-deterministic, exit 4.
    std::fs::write(
        project.path().join("keel.toml"),
        "[agents.coding_agent]\nsystem_prompt = \"Something else.\"\n[agents.coding_agent.tools.local]\ncwd = \"workspace\"\n",
    )
    .unwrap();
    // Replay checks against the definition the run recorded by default; against the
    // changed keel.toml only when asked.
    let (code, out, _) = project.run(&["replay", &run]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = project.run(&["replay", &run, "--against", "keel.toml"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("[KEEL-E100]") && out.contains("agent.system_prompt"),
        "{out}"
    );
    assert!(out.contains("current:  \"Something else.\""), "{out}");
}

#[test]
fn fork_then_resume_makes_a_second_run_sharing_the_prefix() {
    let (project, run) = finished_project();
    // Fork after the first response and its write were recorded (seq 0..=6).
    let (code, out, err) = project.run(&["fork", &run, "--at", "7"]);
    assert_eq!(code, 0, "{err}");
    let fork = out.trim().to_owned();
    assert_ne!(fork, run);
    let calls_before = (project.server.calls_of(0), project.server.calls_of(1));
    let (code, out, err) = project.run(&["resume", &fork, "--approve-all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The prefix's turn was not asked again; the rest was live.
    assert_eq!(project.server.calls_of(0), calls_before.0);
    assert_eq!(project.server.calls_of(1), calls_before.1 + 1);
    let (_, parent_log, _) = project.run(&["export", &run]);
    let (_, fork_log, _) = project.run(&["export", &fork]);
    let parent: Vec<serde_json::Value> = serde_json::from_str(&parent_log).unwrap();
    let forked: Vec<serde_json::Value> = serde_json::from_str(&fork_log).unwrap();
    assert_eq!(parent[1..7], forked[1..7], "the fork shares the prefix");
    assert_eq!(forked[0]["parent"][1], 7);
    let runs = project.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "completed"));
}
