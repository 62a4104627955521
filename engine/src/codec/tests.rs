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
                recovery: vec![keel_tools::Recovery::AskAgain],
            },
            input: "hi".into(),
            parent: Some((RunId::new(), Seq(4))),
            digest_scheme: DigestScheme::Postcard1,
            definition: Some(Definition {
                kind: "test/spec@1".into(),
                document: "{\"cwd\":\"/ws\"}".into(),
            }),
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
        Event::AgentChanged(Box::new(AgentChanged {
            agent: AgentSnapshot {
                id: "a".into(),
                provider: "openai".into(),
                model: "m2".into(),
                system_prompt: String::new(),
                tools: vec![],
                tools_digest: "d".into(),
                max_tokens: 1,
                stop_conditions: vec![],
                fingerprint: "f2".into(),
                recovery: vec![],
            },
            definition: None,
            by: "me".into(),
            reason: "adopted keel.toml".into(),
        })),
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
    let mut started = samples().remove(0);
    if let Event::RunStarted(s) = &mut started.event {
        s.digest_scheme = DigestScheme::Records;
        s.parent = None;
    }
    assert_eq!(
        decode(run, Seq(0), &encode(&started).unwrap()).unwrap(),
        started
    );
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

/// Every record of the canned round-1 stores (`tests/histories/v1/logs/`) decodes
/// through the frozen format-1 types, and re-encoded in format 2 gives the same event.
#[test]
fn format_1_records_of_the_canned_history_decode_and_convert() {
    let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/histories/v1/logs");
    let mut count = 0;
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let run: RunId = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let (seq, hex) = line.split_once(' ').unwrap();
            let seq = Seq(seq.parse().unwrap());
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(bytes[0], 1);
            let event = decode(run, seq, &bytes).unwrap_or_else(|e| panic!("{e}"));
            if let Event::RunStarted(s) = &event.event {
                assert_eq!(s.digest_scheme, DigestScheme::Postcard1);
            }
            let again = encode(&event).unwrap();
            assert_eq!(again[0], FORMAT_VERSION);
            assert_eq!(decode(run, seq, &again).unwrap(), event);
            count += 1;
        }
    }
    assert_eq!(count, 85, "the canned v1 logs hold 85 records");
}

/// The tags of format 2 never change: these bytes were written by the build that
/// introduced the format. A failure here means a stored shape changed in a way old
/// records would not survive.
#[test]
fn format_2_bytes_are_frozen() {
    let event = Stamped {
        at: Timestamp(1_700_000_000_000),
        event: Event::ToolFinished {
            call: CallId::new(Turn(3), 1),
            output: Text::Inline("ok".into()),
            is_error: true,
            kind: FinishKind::Interrupted,
            duration_ms: 9,
        },
    };
    // format 2 | at (tag 1) | tool_finished (tag 8, 18 bytes): call {3, 1}, output
    // inline "ok", is_error, kind 4 (interrupted), duration 9.
    let golden = "02\
                  0880d095ffbc31\
                  4212\
                  0a0408031001\
                  12040a026f6b\
                  1801\
                  2004\
                  2809"
        .replace(' ', "");
    let hex: String = encode(&event)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, golden);
    let bytes: Vec<u8> = (0..golden.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&golden[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(decode(RunId::new(), Seq(0), &bytes).unwrap(), event);
}

/// Evolution, both ways: a field a newer build added (an unknown tag) is skipped; a
/// field an older build did not write decodes as its default.
#[test]
fn unknown_fields_are_skipped_and_missing_fields_default() {
    use prost::Message;
    let run = RunId::new();
    let event = &samples()[2]; // llm_responded
    let mut record = convert::to_record(event);
    if let Some(records::EventRecord::LlmResponded(r)) = &mut record.event {
        r.response.as_mut().unwrap().usage = None; // as if written before usage existed
    }
    let mut bytes = vec![FORMAT_VERSION];
    record.encode(&mut bytes).unwrap();
    // A newer build's field 40 (varint 7) in the envelope.
    bytes.extend_from_slice(&[0xc0, 0x02, 0x07]);
    let decoded = decode(run, Seq(2), &bytes).unwrap();
    let Event::LlmResponded { response, .. } = decoded.event else {
        panic!("{decoded:?}")
    };
    assert_eq!(response.usage, Usage::default());
    let Event::LlmResponded {
        response: original, ..
    } = &event.event
    else {
        unreachable!()
    };
    assert_eq!(response.content, original.content);
}

/// An event kind this build does not know is refused, naming its tag and saying a
/// newer Keel wrote it; so is a part of a kind it does not know.
#[test]
fn newer_event_kinds_and_parts_are_refused_by_name() {
    let run = RunId::new();
    // at = 5, then field 13 (length-delimited, empty): a kind from a newer build.
    let bytes = [FORMAT_VERSION, 0x08, 0x05, 0x6a, 0x00];
    let err = decode(run, Seq(3), &bytes).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::NewerKind {
            what: "an event kind with tag 13".into()
        }
    );
    let text = format!("{}", crate::Error::from(err));
    assert!(text.starts_with("[KEEL-E102]"), "{text}");
    assert!(
        text.contains("tag 13") && text.contains("written by a newer Keel"),
        "{text}"
    );
    // A tool_finished whose kind is 8.
    let mut record = convert::to_record(&samples()[6]);
    if let Some(records::EventRecord::ToolFinished(r)) = &mut record.event {
        r.kind = 8;
    }
    let mut bytes = vec![FORMAT_VERSION];
    prost::Message::encode(&record, &mut bytes).unwrap();
    let err = decode(run, Seq(3), &bytes).unwrap_err();
    assert!(
        err.to_string()
            .contains("tool finish kind 8, written by a newer Keel"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(RunId::new(), Seq(0), &bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(index in 0usize..4096, flip in 1u8..=255, which in 0usize..12) {
        let samples = samples();
        let mut bytes = encode(&samples[which % samples.len()]).unwrap().to_vec();
        let i = index % bytes.len();
        bytes[i] ^= flip;
        let _ = decode(RunId::new(), Seq(0), &bytes);
    }
}
