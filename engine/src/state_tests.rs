//! Table tests of `RunState::apply`: what each event kind does to the state, and the
//! histories each arm refuses.

use keel_storage::{RunStatus, Seq, Timestamp};
use keel_tools::AllowRule;

use super::*;
use crate::event::{Event, FinishKind, Stamped};
use crate::testlog::{Log, call, form, resolution};

#[test]
fn each_event_kind_moves_the_state() {
    let c = call(0, 0);
    let mut log = Log::new();
    assert_eq!(log.state.status(), RunStatus::Running);
    assert_eq!(log.state.summary().title, "go");

    log.request();
    let t = &log.state.turns()[0];
    assert!(t.requested.is_some() && t.response.is_none());

    log.respond(&["exec", "read"]);
    let t = &log.state.turns()[0];
    assert_eq!(t.calls.len(), 2);
    assert_eq!(t.calls[1].name, "read");
    assert_eq!(log.state.responses(), 1);
    assert_eq!(log.state.usage().output_tokens, 5);

    log.ask(c, "0.0");
    assert_eq!(log.state.status(), RunStatus::Suspended);
    assert!(
        matches!(&log.state.call(c).unwrap().phase, CallPhase::Waiting { step } if step.as_str() == "0.0")
    );
    assert_eq!(log.state.call(c).unwrap().asks, 1);

    let rule = AllowRule::ExecPrefix {
        argv: vec!["ls".into()],
    };
    log.push(Event::ApprovalResolved {
        call: c,
        step: "0.0".into(),
        resolution: resolution(true, Some(rule.clone())),
    });
    assert_eq!(log.state.call(c).unwrap().phase, CallPhase::Approved);
    assert_eq!(log.state.rules(), &[rule]);
    assert_eq!(log.state.status(), RunStatus::Running);

    log.start(c, 1);
    assert_eq!(
        log.state.call(c).unwrap().phase,
        CallPhase::Running { attempt: 1 }
    );
    let before = log.state.request_digest(crate::ids::Turn(1));
    log.finish(c, FinishKind::Ran);
    assert!(log.state.call(c).unwrap().is_finished());
    // The turn's results enter the conversation only when every call finished.
    assert_eq!(log.state.request_digest(crate::ids::Turn(1)), before);
    log.start(call(0, 1), 1).finish(call(0, 1), FinishKind::Ran);
    assert_ne!(log.state.request_digest(crate::ids::Turn(1)), before);

    log.push(Event::RunCompleted {
        output: "done".into(),
        stopped_by: None,
    });
    assert_eq!(log.state.status(), RunStatus::Completed);
    assert_eq!(log.state.next_seq(), Seq(10));
}

#[test]
fn denials_answers_and_ends_set_their_phase() {
    let c = call(0, 0);
    let mut log = Log::new();
    log.turn(&["exec"]).ask(c, "0.0").answer(c, "0.0", false);
    assert_eq!(
        log.state.call(c).unwrap().phase,
        CallPhase::Declined {
            note: Some("no".into())
        }
    );
    let mut failed = Log::new();
    failed.push(Event::RunFailed {
        error: "e".into(),
        code: Some("KEEL-E200".into()),
    });
    assert_eq!(failed.state.status(), RunStatus::Failed);
    let mut cancelled = Log::new();
    cancelled.push(Event::RunCancelled { reason: "r".into() });
    assert_eq!(cancelled.state.status(), RunStatus::Cancelled);
}

/// `(what, history, event that does not fit it)`: each is refused with KEEL-E100.
#[test]
fn histories_that_do_not_fit_are_refused() {
    let c = call(0, 0);
    let mut rows: Vec<(&str, Log, Event)> = Vec::new();
    let started = Log::new().events[0].event.clone();
    rows.push(("a second run_started", Log::new(), started));
    rows.push(("a response before its request", Log::new(), {
        let mut l = Log::new();
        l.turn(&[]);
        l.events[2].event.clone()
    }));
    let mut l = Log::new();
    l.request();
    rows.push((
        "a request for a later turn",
        l,
        Event::LlmRequested {
            turn: crate::ids::Turn(3),
            request_digest: crate::ids::Digest([0; 32]),
        },
    ));
    let mut l = Log::new();
    l.turn(&[]);
    rows.push((
        "an approval for a call that does not exist",
        l,
        Event::ApprovalRequested {
            call: c,
            step: "0.0".into(),
            form: form(),
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "an answer to a step nobody waits at",
        l,
        Event::ApprovalResolved {
            call: c,
            step: "0.0".into(),
            resolution: resolution(true, None),
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]);
    rows.push((
        "a start that skips an attempt",
        l,
        Event::ToolStarted {
            call: c,
            attempt: 2,
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).ask(c, "0.0");
    rows.push((
        "a start of a waiting call",
        l,
        Event::ToolStarted {
            call: c,
            attempt: 1,
        },
    ));
    let mut l = Log::new();
    l.turn(&["exec"]).start(c, 1).finish(c, FinishKind::Ran);
    rows.push((
        "a call finished twice",
        l,
        Event::ToolFinished {
            call: c,
            output: crate::event::Text::Inline(String::new()),
            is_error: false,
            kind: FinishKind::Ran,
            duration_ms: 0,
        },
    ));
    let mut l = Log::new();
    l.push(Event::RunCancelled { reason: "r".into() });
    rows.push((
        "an event after the end",
        l,
        Event::RunCancelled {
            reason: "again".into(),
        },
    ));
    for (what, mut log, event) in rows {
        let seq = log.state.next_seq();
        let err = log
            .state
            .apply(
                seq,
                Stamped {
                    at: Timestamp(0),
                    event,
                },
            )
            .expect_err(what);
        assert_eq!(err.seq, seq, "{what}");
        assert!(err.to_string().contains("KEEL-E100"), "{what}");
    }
    // Out of order, and before run_started.
    let mut log = Log::new();
    let ev = Stamped {
        at: Timestamp(0),
        event: Event::RunCancelled { reason: "r".into() },
    };
    assert!(log.state.apply(Seq(5), ev.clone()).is_err());
    let mut empty = RunState::new(keel_storage::RunId::new());
    assert!(
        empty
            .apply(Seq(0), ev)
            .unwrap_err()
            .to_string()
            .contains("run_started at seq 0")
    );
}
