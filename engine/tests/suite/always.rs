//! "Always" remembers what the person chose among the rules the tool offers for
//! that call (SECURITY.md item 51), with the real `exec` tool: by default exactly
//! the command shown in its directory; a broader prefix only when chosen; a rule the
//! tool did not offer is refused.

use keel_engine::{Agent, Decision, Error, Keel, RunOutcome, StopCondition};
use keel_storage::MemoryStore;
use keel_tools::{AllowRule, SandboxConfig, SandboxTools};
use serde_json::json;

use crate::support::*;

fn exec_agent(provider: Scripted, root: &std::path::Path) -> Agent {
    let mut config = SandboxConfig::default();
    config.local.cwd = root.to_path_buf();
    let tools = SandboxTools::new(config).unwrap();
    Agent::builder("tester")
        .provider(provider)
        .model("scripted")
        .system_prompt("p")
        .tools(tools.registry())
        .stop_when(StopCondition::max_steps(50))
        .build()
}

fn script() -> Scripted {
    Scripted::new(vec![
        call("1", &[("exec", json!({"command": "echo one"}))]),
        call("2", &[("exec", json!({"command": "echo one two"}))]),
        say("done"),
    ])
}

async fn first_wait(
    keel: &Keel,
    agent: &Agent,
) -> (keel_engine::RunHandle, keel_engine::PendingStep) {
    let run = keel.invoke(agent, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!("expected a suspension")
    };
    (run, waiting[0].clone())
}

#[tokio::test]
async fn always_is_exact_unless_the_person_picks_an_offered_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let cwd = root.display().to_string();
    let keel = Keel::new(MemoryStore::new());

    // A plain "always": exactly `echo one` here; `echo one two` asks again.
    let agent = exec_agent(script(), &root);
    let (run, step) = first_wait(&keel, &agent).await;
    run.resume(&step.step, Decision::approve().always())
        .await
        .unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!("`echo one two` should wait")
    };
    assert_eq!(waiting[0].step.to_string(), "1.0");
    let state = keel.state(run.id()).await.unwrap();
    assert_eq!(
        state.rules(),
        [
            keel_tools::sandbox::exec_always_choices("echo one", &cwd)[0]
                .0
                .clone()
        ]
    );

    // A rule the tool does not offer for this call is refused; nothing is recorded.
    let agent = exec_agent(script(), &root);
    let (run, step) = first_wait(&keel, &agent).await;
    for foreign in [
        AllowRule::Tool {
            tool: "exec".into(),
        },
        AllowRule::ExecPrefix {
            argv: vec!["echo".into()],
        },
        keel_tools::sandbox::exec_always_choices("echo one", "/elsewhere")[1]
            .0
            .clone(),
    ] {
        let err = run
            .resume(&step.step, Decision::approve().always_as(foreign))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidAnswer(_)), "{err}");
    }
    assert!(keel.state(run.id()).await.unwrap().rules().is_empty());

    // The broader rule, chosen: `echo one two` runs without asking.
    let (prefix, words) = keel_tools::sandbox::exec_always_choices("echo one", &cwd)
        .into_iter()
        .nth(1)
        .unwrap();
    assert!(words.starts_with(&format!("any command starting `echo one` in {cwd}")));
    run.resume(&step.step, Decision::approve().always_as(prefix.clone()))
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    assert_eq!(keel.state(run.id()).await.unwrap().rules(), [prefix]);
}
