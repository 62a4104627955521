//! Fault injection in the store: appends failing with a full disk or an I/O error at
//! every commit point of a run, reads failing. The runtime reports the failure, loses
//! nothing, and once the fault clears the run resumes and ends as it would have.

use keel_engine::{Error, Event, Keel, RunOutcome};
use keel_storage::{EventStore, MemoryStore, Seq};
use serde_json::json;

use crate::support::*;

fn script() -> Vec<TurnScript> {
    vec![
        call("look", &[("look", json!({"key": "a"}))]),
        call(
            "two calls",
            &[("look", json!({"key": "b"})), ("look", json!({"key": "c"}))],
        ),
        say("done"),
    ]
}

fn inline(text: &keel_engine::Text) -> String {
    match text {
        keel_engine::Text::Inline(s) => s.clone(),
        keel_engine::Text::Blob { .. } => panic!("no blobs in this script"),
    }
}

fn agent_of(provider: &Scripted, effects: &Effects) -> keel_engine::Agent {
    keel_engine::Agent::builder("faulty")
        .provider(provider.clone())
        .model("m")
        .tool(Look(effects.clone()))
        .build()
}

async fn reference_appends() -> (usize, Vec<keel_providers::Message>) {
    let store = FaultStore::new(MemoryStore::new());
    let keel = Keel::new(store.clone());
    let provider = Scripted::new(script());
    let run = keel
        .invoke(&agent_of(&provider, &Effects::default()), "go")
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let state = keel.state(run.id()).await.unwrap();
    (store.appends(), state.messages(&inline))
}

#[tokio::test]
async fn a_failing_append_at_any_commit_point_loses_nothing_and_resumes() {
    let (appends, reference) = reference_appends().await;
    for fault in [Fault::DiskFull, Fault::Io] {
        // From 1: the start of the run itself failing is `invoke` failing.
        for at in 1..appends {
            let base = MemoryStore::new();
            let store = FaultStore::new(base.clone());
            store.fail_appends_from(at, fault);
            let keel = Keel::new(store.clone());
            let provider = Scripted::new(script());
            let effects = Effects::default();
            let run = keel
                .invoke(&agent_of(&provider, &effects), "go")
                .await
                .unwrap();
            // The runtime reports the failure, naming it.
            let err = run.result().await.unwrap_err();
            let Error::Halted { reason, .. } = &err else {
                panic!("expected the run to halt, got {err}");
            };
            let expected = if fault == Fault::DiskFull {
                "disk holding the store is full"
            } else {
                "I/O error"
            };
            assert!(reason.contains(expected), "at {at}: {reason}");
            // Nothing durable was lost: the log is the first `at` appends, whole.
            let before = base.read(run.id(), Seq::ZERO).await.unwrap();
            assert!(keel.read_events(run.id()).await.is_ok());
            let durable_turns: Vec<usize> = keel
                .read_events(run.id())
                .await
                .unwrap()
                .into_iter()
                .filter_map(|(_, e)| match e.event {
                    Event::LlmResponded { turn, .. } => Some(turn.0 as usize),
                    _ => None,
                })
                .collect();
            // Still failing: continuing fails the same way, changing nothing.
            assert!(keel.continue_run(run.id()).await.unwrap());
            assert!(run.result().await.is_err());
            assert_eq!(base.read(run.id(), Seq::ZERO).await.unwrap(), before);
            // The fault clears: the run resumes and ends as it would have.
            store.clear();
            assert!(keel.continue_run(run.id()).await.unwrap());
            assert!(
                matches!(run.result().await.unwrap(), RunOutcome::Completed { .. }),
                "at {at}"
            );
            let after = base.read(run.id(), Seq::ZERO).await.unwrap();
            assert_eq!(
                after[..before.len()],
                before[..],
                "the durable prefix is kept"
            );
            let state = keel.state(run.id()).await.unwrap();
            assert_eq!(state.messages(&inline), reference, "at {at}");
            for turn in durable_turns {
                assert_eq!(
                    provider.calls_of(turn),
                    1,
                    "turn {turn} (fault at {at}) was recorded, not re-sent"
                );
            }
        }
    }
}

#[tokio::test]
async fn failing_reads_are_reported_and_change_nothing() {
    let base = MemoryStore::new();
    let store = FaultStore::new(base.clone());
    let keel = Keel::new(store.clone());
    let provider = Scripted::new(vec![
        call("write", &[("put", json!({"path": "p", "content": "c"}))]),
        say("ok"),
    ]);
    let agent = keel_engine::Agent::builder("faulty")
        .provider(provider.clone())
        .model("m")
        .tool(Put(Effects::default()))
        .build();
    let run = keel.invoke(&agent, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    let before = base.read(run.id(), Seq::ZERO).await.unwrap();
    store.fail_reads(Fault::Io);
    let err = run
        .resume(&waiting[0].step, keel_engine::Decision::approve())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("I/O error"), "{err}");
    assert!(keel.recover().await.is_err());
    store.clear();
    assert_eq!(
        base.read(run.id(), Seq::ZERO).await.unwrap(),
        before,
        "nothing was written"
    );
    run.resume(&waiting[0].step, keel_engine::Decision::approve())
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    assert_eq!(provider.total_calls(), 2);
}
