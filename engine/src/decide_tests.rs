//! Table tests of `decide` (one row per rule) and `check_recorded` (each recorded
//! event against the action it must follow, and the mismatches it must catch).

use keel_storage::Seq;

use super::*;
use crate::agent::StopCondition;
use crate::event::{Event, FinishKind, Text};
use crate::testlog::{Log, agent, call, form, resolution};

/// `(rule, history, expected action)`; digests are computed from the state.
type Row = (&'static str, Log, fn(&Log) -> Action);

fn decide_table() -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let next_llm = |l: &Log| Action::CallLlm {
        turn: l.state.next_turn(),
        digest: l.state.request_digest(l.state.next_turn()),
    };
    rows.push(("a new run calls the model for turn 0", Log::new(), next_llm));
    let mut l = Log::new();
    l.request();
    rows.push(("a request without a response is sent (again)", l, next_llm));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push(("a new call of a known tool is checked", l, |_| {
        Action::Check { call: call(0, 0) }
    }));
    let mut l = Log::new();
    l.turn(&["nope"]);
    rows.push(("a call of an unknown tool finishes as invalid", l, |_| {
        Action::Finish {
            call: call(0, 0),
            kind: FinishKind::InvalidCall,
            output: "Error: there is no tool named `nope`. Available tools: exec, read, ask."
                .into(),
            is_error: true,
        }
    }));
    let mut l = Log::new();
    l.turn(&["exec"]).ask(call(0, 0), "0.0");
    rows.push(("a waiting call waits", l, |_| Action::Wait {
        steps: vec!["0.0".into()],
    }));
    let mut l = Log::new();
    l.turn(&["exec"])
        .ask(call(0, 0), "0.0")
        .answer(call(0, 0), "0.0", true);
    rows.push(("an approved call runs", l, |_| Action::RunTool {
        call: call(0, 0),
        attempt: 1,
    }));
    let mut l = Log::new();
    l.turn(&["exec"])
        .ask(call(0, 0), "0.0")
        .answer(call(0, 0), "0.0", false);
    rows.push(("a denied call finishes with the note", l, |_| {
        Action::Finish {
            call: call(0, 0),
            kind: FinishKind::Denied,
            output: "The user denied this call; it did not run. Their note: no".into(),
            is_error: true,
        }
    }));
    let mut l = Log::new();
    l.turn(&["exec"]).start(call(0, 0), 1);
    rows.push((
        "a running exec found on replay is reported interrupted",
        l,
        |_| Action::Finish {
            call: call(0, 0),
            kind: FinishKind::Interrupted,
            output: interrupted_message(1),
            is_error: true,
        },
    ));
    let mut l = Log::new();
    l.turn(&["read"]).start(call(0, 0), 1);
    rows.push(("a running read is run again", l, |_| Action::RunTool {
        call: call(0, 0),
        attempt: 2,
    }));
    let mut l = Log::new();
    l.turn(&["ask"])
        .ask(call(0, 0), "0.0")
        .answer(call(0, 0), "0.0", true)
        .start(call(0, 0), 1);
    rows.push((
        "a running ask-again tool is asked again at a new step",
        l,
        |_| Action::AskAgain {
            call: call(0, 0),
            step: "0.0~2".into(),
        },
    ));
    let mut l = Log::new();
    l.turn(&["read", "exec"])
        .start(call(0, 0), 1)
        .finish(call(0, 0), FinishKind::Ran);
    rows.push(("calls run in order: the second is checked next", l, |_| {
        Action::Check { call: call(0, 1) }
    }));
    let mut l = Log::new();
    l.turn(&["read"])
        .start(call(0, 0), 1)
        .finish(call(0, 0), FinishKind::Ran);
    rows.push(("a finished turn calls the model again", l, next_llm));
    let mut l = Log::with_agent(agent(Some(StopCondition::max_steps(1))));
    l.turn(&["read"])
        .start(call(0, 0), 1)
        .finish(call(0, 0), FinishKind::Ran);
    rows.push(("a met stop condition completes the run", l, |_| {
        Action::Complete {
            output: "ok".into(),
            stopped_by: Some("max_steps(1)".into()),
        }
    }));
    let mut l = Log::new();
    l.turn(&[]);
    rows.push(("a response without calls completes the run", l, |_| {
        Action::Complete {
            output: "ok".into(),
            stopped_by: None,
        }
    }));
    let mut l = Log::new();
    l.turn(&[]).push(Event::RunCompleted {
        output: "ok".into(),
        stopped_by: None,
    });
    rows.push(("an ended run does nothing", l, |_| Action::Ended));
    rows
}

#[test]
fn decide_follows_each_rule() {
    for (rule, log, expected) in decide_table() {
        assert_eq!(decide(&log.state, &log.agent), expected(&log), "{rule}");
    }
}

#[test]
fn check_recorded_accepts_what_decide_leads_to() {
    // (what, history, the event recorded next)
    let exec = call(0, 0);
    let mut rows: Vec<(&str, Log, Event)> = Vec::new();
    let l = Log::new();
    let digest = l.state.request_digest(l.state.next_turn());
    rows.push((
        "the request of the next turn",
        l,
        Event::LlmRequested {
            turn: crate::ids::Turn(0),
            request_digest: digest,
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a check asks a person",
        l,
        Event::ApprovalRequested {
            call: exec,
            step: "0.0".into(),
            form: form(),
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a check starts the call",
        l,
        Event::ToolStarted {
            call: exec,
            attempt: 1,
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a check refuses the call",
        l,
        finished(exec, FinishKind::Refused),
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).ask(exec, "0.0");
    rows.push((
        "a wait is answered",
        l,
        Event::ApprovalResolved {
            call: exec,
            step: "0.0".into(),
            resolution: resolution(true, None),
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).start(exec, 1);
    rows.push((
        "a running call finishes",
        l,
        finished(exec, FinishKind::Ran),
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).start(exec, 1);
    rows.push((
        "a running call is cancelled",
        l,
        finished(exec, FinishKind::Cancelled),
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a failure may come at any point",
        l,
        Event::RunFailed {
            error: "x".into(),
            code: None,
        },
    ));
    let mut l = Log::new();
    l.turn(&[]);
    rows.push((
        "the run completes",
        l,
        Event::RunCompleted {
            output: "ok".into(),
            stopped_by: None,
        },
    ));
    for (what, log, event) in rows {
        let action = decide(&log.state, &log.agent);
        check_recorded(&log.state, &action, log.state.next_seq(), &event)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn check_recorded_catches_divergence() {
    let exec = call(0, 0);
    // (what differs, history, the event recorded next, text the error shows)
    let mut rows: Vec<(&str, Log, Event, &str)> = Vec::new();
    rows.push((
        "another request digest",
        Log::new(),
        Event::LlmRequested {
            turn: crate::ids::Turn(0),
            request_digest: crate::ids::Digest([0; 32]),
        },
        "the request digest of turn 0",
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a call started twice from new",
        l,
        Event::ToolStarted {
            call: exec,
            attempt: 2,
        },
        "a check of call 0.0",
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).ask(exec, "0.0");
    rows.push((
        "an answer to another step",
        l,
        Event::ApprovalResolved {
            call: exec,
            step: "0.0~2".into(),
            resolution: resolution(true, None),
        },
        "a wait for a person at 0.0",
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).start(exec, 1);
    rows.push((
        "an interrupted call re-run instead of reported",
        Log::new(),
        Event::ToolStarted {
            call: exec,
            attempt: 2,
        },
        "llm_requested for turn 0",
    ));
    rows.push((
        "an interrupted exec re-run",
        l,
        Event::ToolStarted {
            call: exec,
            attempt: 2,
        },
        "tool_finished for call 0.0 (Interrupted)",
    ));
    let mut l = Log::new();
    l.turn(&[]);
    rows.push((
        "a stop condition the definition does not have",
        l,
        Event::RunCompleted {
            output: "ok".into(),
            stopped_by: Some("max_steps(1)".into()),
        },
        "run_completed",
    ));
    for (what, log, event, shows) in rows {
        let action = decide(&log.state, &log.agent);
        let err =
            check_recorded(&log.state, &action, log.state.next_seq(), &event).expect_err(what);
        assert_eq!(err.seq, log.state.next_seq(), "{what}");
        let text = err.to_string();
        assert!(
            text.contains("KEEL-E100") && text.contains(shows),
            "{what}: {text}"
        );
    }
}

#[test]
fn check_agent_names_what_changed() {
    let log = Log::new();
    let recorded = log.agent.snapshot();
    let other = crate::Agent::builder("t")
        .model("m")
        .system_prompt("new")
        .build();
    let err = check_agent(&log.state, recorded, other.snapshot()).unwrap_err();
    assert_eq!(err.what, "agent.system_prompt");
    assert_eq!(err.seq, Seq::ZERO);
    assert!(check_agent(&log.state, recorded, recorded).is_ok());
}

fn finished(call: crate::ids::CallId, kind: FinishKind) -> Event {
    Event::ToolFinished {
        call,
        output: Text::Inline("x".into()),
        is_error: true,
        kind,
        duration_ms: 0,
    }
}
