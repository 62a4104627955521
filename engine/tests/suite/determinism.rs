//! The determinism check: a changed agent definition or a tampered log is a
//! `NonDeterminism` error with both sides shown, never a silent divergence.

use keel_engine::{Decision, Error, Event, Keel, NonDeterminism, RunOutcome, Stamped, encode};
use keel_storage::{Batch, EventStore, MemoryStore, RunId, Seq};
use serde_json::json;

use crate::support::*;

fn script() -> Vec<TurnScript> {
    vec![
        call("look first", &[("look", json!({"key": "a"}))]),
        call(
            "then write",
            &[("put", json!({"path": "p", "content": "c"}))],
        ),
        say("done"),
    ]
}

async fn recorded_run(store: &MemoryStore, prompt: &str) -> (RunId, Scripted, Effects) {
    let effects = Effects::default();
    let provider = Scripted::new(script());
    let agent = agent(provider.clone(), &effects, prompt);
    let keel = Keel::new(store.clone());
    let run = keel.invoke(&agent, "go").await.unwrap();
    loop {
        match run.result().await.unwrap() {
            RunOutcome::Suspended { waiting } => run
                .resume(&waiting[0].step, Decision::approve())
                .await
                .unwrap(),
            RunOutcome::Completed { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    (run.id(), provider, effects)
}

#[tokio::test]
async fn replaying_an_unchanged_run_is_deterministic_and_calls_nothing() {
    let store = MemoryStore::new();
    let (run, provider, effects) = recorded_run(&store, "be brief").await;
    let calls = provider.total_calls();
    let executions = effects.executions.lock().unwrap().len();

    let fresh = Scripted::new(script());
    let keel = Keel::new(store.clone());
    keel.register(agent(fresh.clone(), &Effects::default(), "be brief"));
    let report = keel.replay(run).await.unwrap();
    assert!(report.verdict.is_ok(), "{:?}", report.verdict);
    assert_eq!(report.turns, 3);
    assert_eq!(fresh.total_calls(), 0, "replay calls no model");
    assert_eq!(provider.total_calls(), calls);
    assert_eq!(
        effects.executions.lock().unwrap().len(),
        executions,
        "replay runs no tool"
    );
}

#[tokio::test]
async fn a_changed_system_prompt_is_non_determinism_showing_both_values() {
    let store = MemoryStore::new();
    let (run, _, _) = recorded_run(&store, "be brief").await;
    let keel = Keel::new(store.clone());
    let current = agent(Scripted::new(script()), &Effects::default(), "be verbose");
    // Against what the run recorded, the log is deterministic; against the changed
    // definition, it is not.
    assert!(keel.replay(run).await.unwrap().verdict.is_ok());
    let report = keel.replay_against(run, &current).await.unwrap();
    let nd = report.verdict.unwrap_err();
    assert_eq!(nd.what, "agent.system_prompt");
    assert_eq!(nd.recorded, "\"be brief\"");
    assert_eq!(nd.current, "\"be verbose\"");
    let text = nd.to_string();
    assert!(
        text.starts_with("[KEEL-E100] non-determinism in run"),
        "{text}"
    );
    assert!(
        text.contains("recorded: \"be brief\"") && text.contains("current:  \"be verbose\""),
        "{text}"
    );
}

#[tokio::test]
async fn resuming_under_a_changed_definition_is_refused() {
    let store = MemoryStore::new();
    let effects = Effects::default();
    let keel = Keel::new(store.clone());
    let run = keel
        .invoke(&agent(Scripted::new(script()), &effects, "v1"), "go")
        .await
        .unwrap();
    // Runs until the write needs approval.
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    // A new process with a changed definition of the same agent.
    let keel2 = Keel::new(store.clone());
    keel2.register(agent(Scripted::new(script()), &effects, "v2"));
    let err = keel2
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap_err();
    let Error::NonDeterminism(nd) = &err else {
        panic!("expected non-determinism, got {err}")
    };
    assert_eq!(err.code(), Some(NonDeterminism::CODE));
    assert_eq!(
        (nd.recorded.as_str(), nd.current.as_str()),
        ("\"v1\"", "\"v2\"")
    );
    assert!(effects.files.lock().unwrap().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_tampered_request_digest_is_caught_at_its_seq() {
    let store = MemoryStore::new();
    let (run, _, _) = recorded_run(&store, "p").await;
    let keel = Keel::new(store.clone());
    let mut events = keel.read_events(run).await.unwrap();
    let (seq, stamped) = events
        .iter_mut()
        .find(|(_, s)| matches!(s.event, Event::LlmRequested { .. }))
        .unwrap();
    if let Event::LlmRequested { request_digest, .. } = &mut stamped.event {
        *request_digest = keel_engine::Digest([0xf0; 32]);
    }
    let seq = *seq;
    // Write the tampered copy as a new run.
    let copy = RunId::new();
    let bytes: Vec<_> = events
        .iter()
        .map(|(_, s): &(Seq, Stamped)| encode(s).unwrap())
        .collect();
    store
        .append(copy, Seq::ZERO, Batch::events(bytes))
        .await
        .unwrap()
        .unwrap();
    keel.register(agent(Scripted::new(script()), &Effects::default(), "p"));
    let nd = keel.replay(copy).await.unwrap().verdict.unwrap_err();
    assert_eq!(nd.seq, seq);
    assert_eq!(nd.recorded, "f0".repeat(32));
    assert!(nd.what.contains("request digest of turn 0"), "{}", nd.what);
}
