//! Runs end to end on the memory store: approvals, several calls per turn, questions,
//! errors the model sees, failures the user sees, cancel, fork.

use futures::StreamExt;
use keel_engine::{Decision, Error, FinishKind, Keel, RunEvent, RunOutcome, StepKey};
use keel_providers::{ContentBlock, Role};
use keel_storage::{EventStore, MemoryStore, RunStatus, Seq};
use serde_json::json;

use crate::support::*;

fn tool_results(req: &keel_providers::Request) -> Vec<(String, String, bool)> {
    let last = req.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    last.content
        .iter()
        .map(|b| match b {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => (tool_use_id.clone(), content.clone(), *is_error),
            other => panic!("expected tool results only, got {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn multi_turn_run_with_approvals_completes() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call(
            "I'll write it.",
            &[(
                "put",
                json!({"path": "hello.js", "content": "console.log(1)"}),
            )],
        ),
        call("Now check.", &[("look", json!({"key": "hello.js"}))]),
        say("Done: hello.js prints 1."),
    ]);
    let agent = agent(provider.clone(), &effects, "be brief");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "write hello.js").await.unwrap();

    let outcome = run.result().await.unwrap();
    let RunOutcome::Suspended { waiting } = outcome else {
        panic!("expected a suspension, got {outcome:?}");
    };
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].step, StepKey::from("0.0"));
    assert_eq!(waiting[0].tool, "put");
    assert_eq!(waiting[0].form.title, "WRITE APPROVAL REQUIRED");
    // Suspended: nothing executes it, it holds no task.
    assert!(!keel.is_active(run.id()));
    assert_eq!(
        keel.store()
            .run_info(run.id())
            .await
            .unwrap()
            .unwrap()
            .summary
            .unwrap()
            .status,
        RunStatus::Suspended
    );

    run.resume(
        &waiting[0].step,
        Decision::approve().shown(waiting[0].form.digest.clone()),
    )
    .await
    .unwrap();
    let outcome = run.result().await.unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Completed {
            output: "Done: hello.js prints 1.".into(),
            stopped_by: None
        }
    );
    assert_eq!(
        effects.files.lock().unwrap().get("hello.js").unwrap(),
        "console.log(1)"
    );
    assert_eq!(provider.total_calls(), 3);
    for turn in 0..3 {
        assert_eq!(provider.calls_of(turn), 1);
    }
    let requests = provider.requests.lock().unwrap().clone();
    assert_eq!(requests[0].system.as_deref(), Some("be brief"));
    assert_eq!(
        tool_results(&requests[1]),
        vec![(
            "toolu_0_0".into(),
            "wrote 14 bytes to hello.js".into(),
            false
        )]
    );
    let summary = keel
        .store()
        .run_info(run.id())
        .await
        .unwrap()
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.turns, 3);
    assert_eq!(summary.input_tokens, 30);
}

#[tokio::test]
async fn several_calls_in_one_turn_each_get_their_approval_and_keep_the_model_order() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call(
            "Three things.",
            &[
                ("append", json!({"line": "a"})),
                ("look", json!({"key": "k"})),
                ("append", json!({"line": "b"})),
            ],
        ),
        say("ok"),
    ]);
    let agent = agent(provider.clone(), &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let mut steps = Vec::new();
    loop {
        match run.result().await.unwrap() {
            RunOutcome::Suspended { waiting } => {
                steps.push(waiting[0].step.to_string());
                let decision = if waiting[0].step.as_str() == "0.2" {
                    Decision::deny().with_note("not b, please")
                } else {
                    Decision::approve()
                };
                run.resume(&waiting[0].step, decision).await.unwrap();
            }
            RunOutcome::Completed { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    // `look` needs no approval; each `append` got its own.
    assert_eq!(steps, vec!["0.0", "0.2"]);
    assert_eq!(*effects.appended.lock().unwrap(), vec!["a".to_string()]);
    let requests = provider.requests.lock().unwrap();
    let results = tool_results(&requests[1]);
    let ids: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, vec!["toolu_0_0", "toolu_0_1", "toolu_0_2"]);
    assert_eq!(
        results[2].1,
        "The user denied this call; it did not run. Their note: not b, please"
    );
    assert!(results[2].2);
}

#[tokio::test]
async fn errors_the_model_should_see_become_tool_results() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call(
            "Trying things.",
            &[
                ("rm_rf", json!({"path": "/"})),
                ("look", json!({"nope": 1})),
                ("look", json!({"key": "fail"})),
            ],
        ),
        say("I see the errors."),
    ]);
    let agent = agent(provider.clone(), &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let results = tool_results(&provider.requests.lock().unwrap()[1]);
    assert_eq!(
        results[0].1,
        "Error: there is no tool named `rm_rf`. Available tools: put, append, look, ask_user."
    );
    assert!(
        results[1]
            .1
            .starts_with("invalid arguments for `look`: missing required field `key`"),
        "{}",
        results[1].1
    );
    assert_eq!(results[2].1, "lookup failed: no such key");
    assert!(results.iter().all(|r| r.2));
    let state = keel.state(run.id()).await.unwrap();
    let kinds: Vec<FinishKind> = state.turns()[0]
        .calls
        .iter()
        .map(|c| match &c.phase {
            keel_engine::CallPhase::Finished { kind, .. } => *kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            FinishKind::InvalidCall,
            FinishKind::InvalidCall,
            FinishKind::Ran
        ]
    );
}

#[tokio::test]
async fn provider_failure_fails_the_run_with_a_clear_reason() {
    let effects = Effects::default();
    let mut provider = Scripted::new(vec![say("never")]);
    provider.fail_with = Some(std::sync::Arc::new(|| keel_providers::Error::Api {
        provider: "anthropic",
        status: 401,
        kind: "authentication_error".into(),
        message: "invalid x-api-key".into(),
        retryable: false,
    }));
    let agent = agent(provider, &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let RunOutcome::Failed { error, code } = run.result().await.unwrap() else {
        panic!("expected failure");
    };
    assert_eq!(code.as_deref(), Some("KEEL-E200"));
    assert!(
        error.contains("HTTP 401") && error.contains("invalid x-api-key"),
        "{error}"
    );
}

#[tokio::test]
async fn ask_user_suspends_and_returns_the_answer_to_the_model() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call(
            "Need a choice.",
            &[(
                "ask_user",
                json!({"question": "Which env?", "fields": [{"name": "env", "type": "select", "options": ["dev", "prod"]}]}),
            )],
        ),
        say("Deploying to dev."),
    ]);
    let agent = agent(provider.clone(), &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "deploy").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    assert!(
        matches!(&waiting[0].form.context, keel_tools::FormContext::Question { question } if question == "Which env?")
    );
    // A wrong answer is refused, the run keeps waiting.
    let err = run
        .resume(&waiting[0].step, Decision::answer(json!({"env": "qa"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidAnswer(ref m) if m == "field `env` must be one of dev, prod"),
        "{err}"
    );
    run.resume(&waiting[0].step, Decision::answer(json!({"env": "dev"})))
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let requests = provider.requests.lock().unwrap();
    assert_eq!(tool_results(&requests[1])[0].1, r#"{"env":"dev"}"#);
}

#[tokio::test]
async fn always_is_recorded_and_covers_later_calls_of_the_run() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call("1", &[("put", json!({"path": "a", "content": "1"}))]),
        call("2", &[("put", json!({"path": "b", "content": "2"}))]),
        say("done"),
    ]);
    let agent = agent(provider, &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    run.resume(&waiting[0].step, Decision::approve().always())
        .await
        .unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    assert_eq!(effects.files.lock().unwrap().len(), 2);
    let state = keel.state(run.id()).await.unwrap();
    assert_eq!(state.rules().len(), 1);
}

#[tokio::test]
async fn answers_are_bound_to_their_step_and_what_was_shown() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call("1", &[("put", json!({"path": "a", "content": "1"}))]),
        call("2", &[("put", json!({"path": "b", "content": "2"}))]),
        say("done"),
    ]);
    let agent = agent(provider, &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    let first = waiting[0].clone();
    // A digest of some other request is refused.
    let err = run
        .resume(&first.step, Decision::approve().shown("0000"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    // A step that does not exist is refused, naming the one waiting.
    let err = run
        .resume(&StepKey::from("7.0"), Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "run {} is not waiting at step `7.0` (it is waiting at: 0.0)",
            run.id()
        )
    );
    run.resume(&first.step, Decision::approve()).await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    assert_eq!(waiting[0].step.as_str(), "1.0");
    // Replaying the first answer is refused.
    let err = run
        .resume(&first.step, Decision::approve())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyAnswered { .. }), "{err}");
    assert_eq!(effects.files.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_event_stream_shows_the_run_live_in_order() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call(
            "Writing the file.",
            &[("put", json!({"path": "a", "content": "1"}))],
        ),
        say("All done here."),
    ]);
    let agent = agent(provider, &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let mut events = run.events();
    let mut kinds = Vec::new();
    let mut text = String::new();
    let mut last_seq = None;
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        let kind = serde_json::to_value(&event).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned();
        if let Some(seq) = serde_json::to_value(&event)
            .unwrap()
            .get("seq")
            .and_then(|s| s.as_u64())
        {
            assert!(last_seq.is_none_or(|l| seq >= l), "seqs go forward");
            last_seq = Some(seq);
        }
        match &event {
            RunEvent::TextDelta { text: t, .. } => text.push_str(t),
            RunEvent::ApprovalRequested { step, .. } => {
                run.resume(step, Decision::approve()).await.unwrap();
            }
            _ => {}
        }
        if kind != "text_delta" {
            kinds.push(kind);
        }
        if event.is_terminal() {
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![
            "run_started",
            "llm_call_started",
            "llm_responded",
            "tool_call_requested",
            "approval_requested",
            "approval_resolved",
            "tool_started",
            "tool_finished",
            "llm_call_started",
            "llm_responded",
            "run_completed"
        ]
    );
    assert!(text.contains("All done here."), "{text}");
}

#[tokio::test]
async fn cancel_stops_a_waiting_run_and_refuses_later_answers() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![call(
        "1",
        &[("put", json!({"path": "a", "content": "1"}))],
    )]);
    let agent = agent(provider, &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    let RunOutcome::Suspended { waiting } = run.result().await.unwrap() else {
        panic!()
    };
    run.cancel("changed my mind").await.unwrap();
    assert_eq!(
        run.result().await.unwrap(),
        RunOutcome::Cancelled {
            reason: "changed my mind".into()
        }
    );
    let err = run
        .resume(&waiting[0].step, Decision::approve())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Ended {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    assert!(effects.files.lock().unwrap().is_empty());
}

#[tokio::test]
async fn fork_replays_a_prefix_then_goes_live() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call("1", &[("look", json!({"key": "x"}))]),
        call("2", &[("look", json!({"key": "y"}))]),
        say("done"),
    ]);
    let agent = agent(provider.clone(), &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let parent = keel.read_events(run.id()).await.unwrap();
    // Fork right after the first response was recorded: [started, requested, responded].
    let fork = keel.fork(run.id(), Seq(3)).await.unwrap();
    assert!(matches!(
        fork.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let forked = keel.read_events(fork.id()).await.unwrap();
    assert_eq!(forked.len(), parent.len());
    for ((_, a), (_, b)) in parent.iter().zip(&forked).skip(1).take(2) {
        assert_eq!(a, b, "the prefix is shared");
    }
    let keel_engine::Event::RunStarted(started) = &forked[0].1.event else {
        panic!()
    };
    assert_eq!(started.parent, Some((run.id(), Seq(3))));
    // The prefix's LLM call was not made again; the fork made turns 1 and 2 live.
    assert_eq!(provider.calls_of(0), 1);
    assert_eq!(provider.calls_of(1), 2);
    let err = keel.fork(run.id(), Seq(99)).await.unwrap_err();
    assert!(matches!(err, Error::BadForkPoint { .. }), "{err}");
}

#[tokio::test]
async fn stop_conditions_end_the_run() {
    let effects = Effects::default();
    let looping: Vec<TurnScript> = (0..10)
        .map(|i| {
            call(
                &format!("step {i}"),
                &[("look", json!({"key": format!("k{i}")}))],
            )
        })
        .collect();
    let provider = Scripted::new(looping);
    let agent = keel_engine::Agent::builder("stopper")
        .provider(provider.clone())
        .model("m")
        .tool(Look(effects.clone()))
        .stop_when(keel_engine::StopCondition::max_steps(3))
        .build();
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "loop").await.unwrap();
    assert_eq!(
        run.result().await.unwrap(),
        RunOutcome::Completed {
            output: "step 2".into(),
            stopped_by: Some("max_steps(3)".into())
        }
    );
    assert_eq!(provider.total_calls(), 3);

    let agent = keel_engine::Agent::builder("stopper2")
        .provider(provider.clone())
        .model("m")
        .tool(Look(effects.clone()))
        .stop_when(keel_engine::StopCondition::executed_tool("look"))
        .build();
    let run = keel.invoke(&agent, "loop").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { stopped_by: Some(s), .. } if s == "executed_tool(look)"
    ));
}

#[tokio::test]
async fn every_request_is_a_prefix_of_the_conversation_derived_from_the_log() {
    let effects = Effects::default();
    let provider = Scripted::new(vec![
        call("one", &[("look", json!({"key": "a", "size": 20000}))]),
        call(
            "two",
            &[("look", json!({"key": "b"})), ("look", json!({"key": "c"}))],
        ),
        say("done"),
    ]);
    let agent = agent(provider.clone(), &effects, "p");
    let keel = Keel::new(MemoryStore::new());
    let run = keel.invoke(&agent, "go").await.unwrap();
    assert!(matches!(
        run.result().await.unwrap(),
        RunOutcome::Completed { .. }
    ));
    let state = keel.state(run.id()).await.unwrap();
    // The 20 KB output went to the blob space; the requests carried its text.
    let mut blobs = std::collections::HashMap::new();
    for turn in state.turns() {
        for call in &turn.calls {
            if let keel_engine::CallPhase::Finished { output, .. } = &call.phase {
                blobs.insert(format!("{output:?}"), keel.text(output).await.unwrap());
            }
        }
    }
    let full = state.messages(&|t| blobs[&format!("{t:?}")].clone());
    let requests = provider.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.messages[..], full[..request.messages.len()]);
    }
    assert!(matches!(
        &requests[1].messages[2].content[0],
        ContentBlock::ToolResult { content, .. } if content.len() >= 20000
    ));
}
