use keel_providers::{ContentBlock, Json, Response, StopReason, Usage};
use keel_storage::{BlobHash, Timestamp};
use keel_tools::{AllowRule, ApprovalForm, FormContext};
use proptest::prelude::*;

use super::*;
use crate::event::*;
use crate::ids::*;

fn samples() -> Vec<Stamped> {
    let call = CallId::new(Turn(1), 0);
    let events = vec![
        Event::RunStarted(Box::new(RunStarted {
            agent: AgentSnapshot {
                id: "a".into(),
                provider: "scripted".into(),
                model: "m".into(),
                system_prompt: "be brief — ünïcode".into(),
                tools: vec!["exec".into()],
                tools_digest: "d".into(),
                max_tokens: 1024,
                stop_conditions: vec!["max_steps(30)".into()],
                fingerprint: "f".into(),
            },
            input: "hi".into(),
            parent: Some((RunId::new(), Seq(4))),
        })),
        Event::LlmRequested {
            turn: Turn(1),
            request_digest: Digest([7; 32]),
        },
        Event::LlmResponded {
            turn: Turn(1),
            response: Box::new(Response {
                id: "r".into(),
                model: "m".into(),
                content: vec![
                    ContentBlock::text("ok"),
                    ContentBlock::ToolUse {
                        id: "t".into(),
                        name: "exec".into(),
                        input: Json(serde_json::json!({"command": "ls -la", "n": 1.5})),
                    },
                ],
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    cache_creation_input_tokens: 1,
                    cache_read_input_tokens: 2,
                },
            }),
            latency_ms: 12,
        },
        Event::ApprovalRequested {
            call,
            step: StepKey::for_call(call, 1),
            form: Box::new(ApprovalForm {
                title: "COMMAND APPROVAL REQUIRED".into(),
                tool: "exec".into(),
                context: FormContext::Command {
                    command: "ls -la".into(),
                    cwd: "/ws".into(),
                    reason: "approval-always".into(),
                    matched_rule: None,
                },
                fields: vec![],
                digest: "dd".into(),
            }),
        },
        Event::ApprovalResolved {
            call,
            step: StepKey::for_call(call, 1),
            resolution: Resolution {
                approved: true,
                note: Some("go".into()),
                remember: Some(AllowRule::ExecPrefix {
                    argv: vec!["ls".into()],
                }),
                answer: None,
                by: "me".into(),
            },
        },
        Event::ToolStarted { call, attempt: 1 },
        Event::ToolFinished {
            call,
            output: Text::Inline("file".into()),
            is_error: false,
            kind: FinishKind::Ran,
            duration_ms: 3,
        },
        Event::ToolFinished {
            call,
            output: Text::Blob {
                hash: BlobHash::of(b"x"),
                len: 1,
            },
            is_error: true,
            kind: FinishKind::Interrupted,
            duration_ms: 0,
        },
        Event::RunCompleted {
            output: "done".into(),
            stopped_by: None,
        },
        Event::RunFailed {
            error: "boom".into(),
            code: Some("KEEL-E100".into()),
        },
        Event::RunCancelled {
            reason: "user".into(),
        },
    ];
    events
        .into_iter()
        .map(|event| Stamped {
            at: Timestamp(1_700_000_000_000),
            event,
        })
        .collect()
}

#[test]
fn every_event_kind_round_trips() {
    let run = RunId::new();
    for (i, event) in samples().into_iter().enumerate() {
        let bytes = encode(&event).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(run, Seq(i as u64), &bytes).unwrap(), event);
    }
}

#[test]
fn every_truncation_is_a_typed_error_naming_run_and_seq() {
    let run = RunId::new();
    for event in samples() {
        let bytes = encode(&event).unwrap();
        for cut in 0..bytes.len() {
            let err = decode(run, Seq(7), &bytes[..cut]).unwrap_err();
            assert_eq!(err.run, run);
            assert_eq!(err.seq, Seq(7));
            let text = err.to_string();
            assert!(
                text.contains(&run.to_string()) && text.contains(" 7 "),
                "{text}"
            );
        }
    }
}

#[test]
fn newer_and_unknown_versions_are_refused() {
    let run = RunId::new();
    let mut bytes = encode(&samples()[1]).unwrap().to_vec();
    bytes[0] = FORMAT_VERSION + 1;
    let err = decode(run, Seq(1), &bytes).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::NewerVersion {
            found: FORMAT_VERSION + 1
        }
    );
    assert!(err.to_string().contains("upgrade Keel"));
    bytes[0] = 0;
    assert!(matches!(
        decode(run, Seq(1), &bytes).unwrap_err().kind,
        DecodeErrorKind::UnknownVersion { found: 0 }
    ));
    assert_eq!(
        decode(run, Seq(1), &[]).unwrap_err().kind,
        DecodeErrorKind::Empty
    );
}

#[test]
fn trailing_garbage_is_corrupt() {
    let run = RunId::new();
    let mut bytes = encode(&samples()[1]).unwrap().to_vec();
    bytes.push(0);
    assert!(matches!(
        decode(run, Seq(0), &bytes).unwrap_err().kind,
        DecodeErrorKind::Corrupt(_)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(RunId::new(), Seq(0), &bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(index in 0usize..4096, flip in 1u8..=255, which in 0usize..11) {
        let samples = samples();
        let mut bytes = encode(&samples[which % samples.len()]).unwrap().to_vec();
        let i = index % bytes.len();
        bytes[i] ^= flip;
        let _ = decode(RunId::new(), Seq(0), &bytes);
    }
}
