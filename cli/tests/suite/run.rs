//! `keel run` unattended, and the errors a person can act on.

use serde_json::json;

use crate::support::*;

#[test]
fn run_with_approve_all_completes_and_the_files_exist() {
    let project = Project::new(hello_script());
    let (code, out, err) = project.run(&[
        "run",
        "coding_agent",
        "Create hello.sh and run it",
        "--approve-all",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Done: it printed Hello, world!"), "{out}");
    assert!(err.contains("run completed"), "{err}");
    assert!(err.contains("input tokens"), "{err}");
    let file = std::fs::read_to_string(project.workspace().join("hello.sh")).unwrap();
    assert_eq!(file, "echo \"Hello, world!\"\n");
    // The model saw the command's real output.
    let requests = project.server.requests();
    assert_eq!(requests.len(), 3);
    let results = tool_results(&requests[2]);
    assert!(results[0].1.contains("Hello, world!"), "{results:?}");
    assert_eq!(requests[0]["model"], "claude-sonnet-4-5");
    assert!(
        requests[0]["system"]
            .to_string()
            .contains("You are a coding agent")
    );
    let runs = project.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["agent"], "coding_agent");
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["turns"], 3);
}

#[test]
fn without_a_terminal_a_waiting_run_exits_3_and_says_how_to_continue() {
    let project = Project::new(hello_script());
    let (code, _, err) = project.run(&["run", "coding_agent", "Create hello.sh"]);
    assert_eq!(code, 3, "{err}");
    let run = project.runs()[0]["id"].as_str().unwrap().to_owned();
    assert!(
        err.contains(&format!("keel approve {run} --step 0.0")),
        "{err}"
    );
    assert!(err.contains(&format!("keel resume {run}")), "{err}");
    assert_eq!(project.runs()[0]["status"], "suspended");
    // Approve from "another terminal", then resume unattended.
    let (code, _, err) = project.run(&["approve", &run]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = project.run(&["resume", &run, "--approve-all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(project.runs()[0]["status"], "completed");
    assert!(project.workspace().join("hello.sh").exists());
}

#[test]
fn json_mode_prints_the_event_stream() {
    let project = Project::new(vec![say("Just text.")]);
    let (code, out, err) = project.run(&["run", "coding_agent", "hi", "--json"]);
    assert_eq!(code, 0, "{err}");
    let types: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .filter(|t| t != "text_delta")
        .collect();
    assert_eq!(
        types,
        [
            "run_started",
            "llm_call_started",
            "llm_responded",
            "run_completed"
        ]
    );
}

#[test]
fn errors_say_what_to_do() {
    let project = Project::new(hello_script());
    // A missing API key names the variable to set.
    let out = project
        .keel()
        .env_remove("ANTHROPIC_API_KEY")
        .args(["run", "coding_agent", "hi"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
    // An unknown agent lists the known ones.
    let (code, _, err) = project.run(&["run", "nope", "hi"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no agent `nope` (known agents: coding_agent)"),
        "{err}"
    );
    // An unknown run says how to find runs.
    project.run(&["run", "coding_agent", "hi", "--approve-all"]);
    let (code, _, err) = project.run(&["show", "ffff"]);
    assert_eq!(code, 1);
    assert!(err.contains("`keel runs` lists the runs"), "{err}");
    // A bad flag is a usage error.
    let (code, _, _) = project.run(&["run"]);
    assert_eq!(code, 2);
}

#[test]
fn agents_come_from_keel_toml() {
    let project = Project::new(vec![
        call("Listing.", "exec", json!({"command": "ls"})),
        say("Listed."),
    ]);
    std::fs::write(
        project.path().join("keel.toml"),
        r#"
[agents.lister]
model = "claude-haiku-4-5"
system_prompt = "You list files."
max_steps = 5
[agents.lister.tools.local]
cwd = "ws"
[agents.lister.tools.exec]
security = "allowlist"
allowlist = ["ls"]
"#,
    )
    .unwrap();
    std::fs::create_dir_all(project.path().join("ws")).unwrap();
    // `ls` is allowlisted: no approval needed, even without a terminal.
    let (code, out, err) = project.run(&["run", "lister", "list"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let requests = project.server.requests();
    assert_eq!(requests[0]["model"], "claude-haiku-4-5");
    assert!(
        requests[0]["system"]
            .to_string()
            .contains("You list files.")
    );
}

#[test]
fn demo_runs_offline_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .current_dir(dir.path())
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("KEEL_STORE")
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Hello from Keel!") && stdout.contains("2 + 3 = 5"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deterministic: 16 events and 3 LLM responses"),
        "{stdout}"
    );
    assert!(stderr.contains("approved (--approve-all)"), "{stderr}");
    assert!(dir.path().join("keel-demo/workspace/hello.sh").exists());
}
