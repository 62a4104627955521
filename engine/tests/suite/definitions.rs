//! A run carries its own definition (issue 11, library side): late `events()`
//! subscribers miss no delta; answering checks everything before it writes; a
//! runtime rebuilds agents from recorded definitions; adopting a definition is a
//! recorded act; forks record their overrides.

use std::sync::Arc;

use futures::StreamExt;
use keel_engine::{Agent, Decision, Error, Event, Keel, RunEvent, RunOutcome};
use keel_providers::{Delta, DeltaSink, LlmProvider, Request, Response, Role};
use keel_storage::{MemoryStore, Seq};
use tokio::sync::{Notify, Semaphore};

use crate::support::{Effects, Scripted, TurnScript, agent, call, response_for, say};

/// Streams its text as deltas one character at a time, then waits for `release`
/// before answering: a subscriber can join in the middle of a turn.
#[derive(Clone)]
struct Slow {
    script: Arc<Vec<TurnScript>>,
    streamed: Arc<Notify>,
    release: Arc<Semaphore>,
}

impl LlmProvider for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    async fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> keel_providers::Result<Response> {
        let turn = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        let script = &self.script[turn];
        for c in script.text.chars() {
            on_delta(Delta::Text(c.to_string()));
        }
        self.streamed.notify_one();
        let _permit = self.release.acquire().await;
        Ok(response_for(turn, script))
    }
}

fn slow(script: Vec<TurnScript>) -> Slow {
    Slow {
        script: Arc::new(script),
        streamed: Arc::new(Notify::new()),
        release: Arc::new(Semaphore::new(0)),
    }
}

fn text_of(events: &[RunEvent], turn: u32) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::TextDelta { turn: t, text } if t.0 == turn => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

async fn collect(keel: &Keel, run: keel_storage::RunId) -> Vec<RunEvent> {
    let mut out = Vec::new();
    let mut stream = keel.events(run);
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        let end = event.is_terminal();
        out.push(event);
        if end {
            break;
        }
    }
    out
}

#[tokio::test]
async fn a_late_subscriber_gets_every_delta_of_the_turn_in_progress() {
    for _ in 0..20 {
        let provider = slow(vec![say("Hello, late subscriber!")]);
        let a = Agent::builder("a")
            .provider(provider.clone())
            .model("m")
            .build();
        let keel = Keel::new(MemoryStore::new());
        let run = keel.invoke(&a, "go").await.unwrap();
        // Every delta of turn 0 was published before anyone subscribed.
        provider.streamed.notified().await;
        let events = tokio::spawn({
            let keel = keel.clone();
            async move { collect(&keel, run.id()).await }
        });
        // The subscriber is in place (it holds its receiver) before the turn ends.
        tokio::task::yield_now().await;
        provider.release.add_permits(1);
        let events = events.await.unwrap();
        assert_eq!(text_of(&events, 0), "Hello, late subscriber!");
        // The deltas come before the recorded response, once.
        let responded = events
            .iter()
            .position(|e| matches!(e, RunEvent::LlmResponded { .. }))
            .unwrap();
        let last_delta = events
            .iter()
            .rposition(|e| matches!(e, RunEvent::TextDelta { .. }))
            .unwrap();
        assert!(last_delta < responded);
    }
}

#[tokio::test]
async fn a_subscriber_after_the_response_reads_it_from_the_log_without_deltas() {
    let provider = slow(vec![say("Done.")]);
    provider.release.add_permits(1);
    let a = Agent::builder("a").provider(provider).model("m").build();
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&a, "go").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let events = collect(&keel, run.id()).await;
    assert_eq!(text_of(&events, 0), "");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::LlmResponded { .. }))
    );
}

/// A run of the test agent, waiting for its first write to be approved.
async fn waiting_for_a_write() -> (
    MemoryStore,
    Keel,
    Agent,
    keel_engine::RunHandle,
    Vec<keel_engine::PendingStep>,
) {
    let store = MemoryStore::new();
    let keel = Keel::new(store.clone());
    let script = vec![
        call(
            "w",
            &[("put", serde_json::json!({"path": "k", "content": "v"}))],
        ),
        say("done"),
    ];
    let a = agent(Scripted::new(script), &Effects::default(), "p");
    let run = keel.invoke(&a, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    (store, keel, a, run, waiting)
}

#[tokio::test]
async fn replayed_approvals_that_were_answered_are_flagged() {
    let (_store, keel, _a, run, waiting) = waiting_for_a_write().await;
    run.resume(&waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let events = collect(&keel, run.id()).await;
    let approvals: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ApprovalRequested { answered, .. } => Some(*answered),
            _ => None,
        })
        .collect();
    assert_eq!(approvals, vec![true]);
}

#[tokio::test]
async fn answering_checks_the_agent_before_it_writes_the_decision() {
    let (store, _keel, a, run, waiting) = waiting_for_a_write().await;
    // Another process, where the agent is not registered.
    let other = Keel::new(store.clone());
    let err = other
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KEEL-E201"), "{err}");
    let len = other.read_events(run.id()).await.unwrap().len();
    // Nothing was written: the same answer works once the agent is there.
    other.register(a.clone());
    other
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert!(other.read_events(run.id()).await.unwrap().len() > len);
}

/// The embedder's definition: here just the system prompt, as JSON.
fn defined(prompt: &str, effects: &Effects, script: Vec<TurnScript>) -> Agent {
    let base = agent(Scripted::new(script), effects, prompt);
    let mut b = Agent::builder(base.id())
        .shared_provider(base.provider().clone())
        .model(base.model())
        .system_prompt(prompt)
        .tools(base.tools().clone())
        .definition(
            "test/prompt@1",
            serde_json::json!({ "prompt": prompt }).to_string(),
        );
    for c in base.stop_conditions() {
        b = b.stop_when(c.clone());
    }
    b.build()
}

#[tokio::test]
async fn runs_continue_with_the_definition_they_recorded_until_a_person_adopts_another() {
    let effects = Effects::default();
    let store = MemoryStore::new();
    let script = vec![
        call(
            "w",
            &[("put", serde_json::json!({"path": "k", "content": "v"}))],
        ),
        say("done"),
    ];
    let keel = Keel::new(store.clone());
    let v1 = defined("v1", &effects, script.clone());
    let run = keel.invoke(&v1, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    // A new process whose registered agent has changed, with a rebuilder.
    let effects2 = effects.clone();
    let script2 = script.clone();
    let keel2 = Keel::new(store.clone()).with_rebuilder(move |def, _snapshot| {
        let doc: serde_json::Value =
            serde_json::from_str(&def.document).map_err(|e| e.to_string())?;
        Ok(defined(
            doc["prompt"].as_str().unwrap_or(""),
            &effects2,
            script2.clone(),
        ))
    });
    keel2.register(defined("v2", &effects, script.clone()));
    // It continues with the recorded definition, not the registered one.
    keel2
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert!(matches!(
        keel2.result(run.id()).await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let events = keel2.read_events(run.id()).await.unwrap();
    let Event::RunStarted(started) = &events[0].1.event else {
        panic!()
    };
    assert_eq!(started.definition.as_ref().unwrap().kind, "test/prompt@1");
    assert!(keel2.replay(run.id()).await.unwrap().verdict.is_ok());

    // Adopting is explicit and recorded.
    let run = keel2.invoke(&v1, "again").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    let v3 = defined("v3", &effects, script.clone());
    assert!(
        keel2
            .adopt(run.id(), &v3, "me", "adopted v3")
            .await
            .unwrap()
    );
    assert!(!keel2.adopt(run.id(), &v3, "me", "again").await.unwrap());
    keel2
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert!(matches!(
        keel2.result(run.id()).await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let events = keel2.read_events(run.id()).await.unwrap();
    let changed: Vec<_> = events
        .iter()
        .filter_map(|(_, s)| match &s.event {
            Event::AgentChanged(c) => Some((c.agent.system_prompt.clone(), c.by.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(changed, vec![("v3".to_owned(), "me".to_owned())]);
    // Replay follows the definition in force at each point.
    assert!(keel2.replay(run.id()).await.unwrap().verdict.is_ok());

    // A fork with overrides records them; without, it keeps the recorded definition.
    let fork = keel2
        .fork_with_agent(
            run.id(),
            Seq(3),
            Some(&defined("v4", &effects, script.clone())),
            false,
        )
        .await
        .unwrap();
    let events = keel2.read_events(fork.id()).await.unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        matches!(&events[3].1.event, Event::AgentChanged(c) if c.by == "keel fork" && c.agent.system_prompt == "v4")
    );
    let plain = keel2.fork_with(run.id(), Seq(3), false).await.unwrap();
    assert_eq!(keel2.read_events(plain.id()).await.unwrap().len(), 3);
    // A rebuilder that cannot rebuild is an error before anything is written.
    let keel3 = Keel::new(store.clone()).with_rebuilder(|_, _| Err("no key".to_owned()));
    let err = keel3.continue_run(plain.id()).await.unwrap_err();
    assert!(matches!(err, Error::Rebuild { .. }), "{err}");
    assert_eq!(err.code(), Some("KEEL-E202"));
}

/// A tool whose description is whatever this build says it is.
struct Described(&'static str);

impl keel_tools::Tool for Described {
    type Args = serde_json::Value;
    fn spec(&self) -> keel_tools::ToolSpec {
        keel_tools::ToolSpec {
            name: "note".into(),
            description: self.0.into(),
            input_schema: serde_json::json!({"type": "object"}),
        }
    }
    fn is_mutating(&self) -> bool {
        false
    }
    async fn call(
        &self,
        _args: serde_json::Value,
        _ctx: keel_tools::CallContext,
    ) -> keel_tools::ToolOutput {
        keel_tools::ToolOutput::ok("noted")
    }
}

fn with_note(description: &'static str, effects: &Effects, script: Vec<TurnScript>) -> Agent {
    let base = agent(Scripted::new(script), effects, "p");
    let mut b = Agent::builder(base.id())
        .shared_provider(base.provider().clone())
        .model(base.model())
        .system_prompt("p")
        .tools(base.tools().clone())
        .tool(Described(description));
    for c in base.stop_conditions() {
        b = b.stop_when(c.clone());
    }
    b.build()
}

#[tokio::test]
async fn a_newer_builds_tool_texts_continue_the_run_and_are_recorded() {
    // A run recorded by one build waits for a person; a newer build describes a tool
    // differently (nothing the person defined changed). The run continues, the log
    // says the tools' texts changed and by whom, and it replays exactly.
    let effects = Effects::default();
    let store = MemoryStore::new();
    let script = vec![
        call(
            "w",
            &[("put", serde_json::json!({"path": "k", "content": "v"}))],
        ),
        say("done"),
    ];
    let old = Keel::new(store.clone());
    let run = old
        .invoke(&with_note("old words", &effects, script.clone()), "go")
        .await
        .unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    let new = Keel::new(store.clone());
    new.register(with_note("new words", &effects, script.clone()));
    new.resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap();
    assert!(matches!(
        new.result(run.id()).await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let events = new.read_events(run.id()).await.unwrap();
    let changes: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::AgentChanged(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 1, "{events:#?}");
    assert_eq!(changes[0].by, "keel");
    assert!(
        changes[0]
            .reason
            .contains("describes the agent's tools differently")
    );
    assert!(new.replay(run.id()).await.unwrap().verdict.is_ok());
    // What the person defined did change: that is refused, as before.
    let run = old
        .invoke(&with_note("old words", &effects, script.clone()), "again")
        .await
        .unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    let other = Keel::new(store.clone());
    other.register(defined("another prompt", &effects, script));
    let err = other
        .resume(run.id(), &waiting[0].step, Decision::approve())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NonDeterminism(_)), "{err}");
}
