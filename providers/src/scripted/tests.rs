use std::sync::Arc;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::json::Json;
use crate::types::{Message, StopReason, ToolDefinition};

#[derive(Default)]
struct Recorder(Mutex<Vec<Delta>>);

impl Recorder {
    fn sink(&self) -> impl Fn(Delta) + Send + Sync + '_ {
        move |d| self.0.lock().unwrap().push(d)
    }
    fn all(&self) -> Vec<Delta> {
        self.0.lock().unwrap().clone()
    }
}

fn with_results(mut request: Request, response: &Response, results: &[(&str, bool)]) -> Request {
    Arc::make_mut(&mut request.messages).push(Message {
        role: Role::Assistant,
        content: response.content.clone(),
    });
    let ids: Vec<&str> = response.tool_uses().map(|(id, _, _)| id).collect();
    Arc::make_mut(&mut request.messages).push(Message {
        role: Role::User,
        content: ids
            .iter()
            .zip(results)
            .map(|(id, (content, is_error))| ContentBlock::ToolResult {
                tool_use_id: (*id).to_owned(),
                content: (*content).to_owned(),
                is_error: *is_error,
            })
            .collect(),
    });
    request
}

#[tokio::test]
async fn plays_in_order_counts_calls_and_keeps_requests() {
    let provider = Scripted::new(vec![
        Entry::text("Let me look.")
            .then_tool_use("exec", json!({"command": "ls"}))
            .usage(100, 20),
        Entry::text("Two files.").expect_tool_results(["exec"]),
    ])
    .unwrap();
    let deltas = Recorder::default();
    let sink = deltas.sink();
    let request = Request::new("claude-sonnet-4-5", vec![Message::user("what is here?")]);
    let first = provider.complete(&request, &sink).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.id, "msg_scripted_1");
    assert_eq!(first.model, "claude-sonnet-4-5");
    assert_eq!(
        (first.usage.input_tokens, first.usage.output_tokens),
        (100, 20)
    );
    assert_eq!(
        first.tool_uses().next().unwrap(),
        ("toolu_1_1", "exec", &Json(json!({"command": "ls"})))
    );
    assert_eq!(deltas.all(), vec![Delta::Text("Let me look.".into())]);

    let request = with_results(request, &first, &[("a.txt\nb.txt", false)]);
    let second = provider.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(second.text(), "Two files.");
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    assert_eq!(provider.calls(), 2);
    assert_eq!(provider.remaining(), 0);
    assert_eq!(provider.requests().len(), 2);
    assert_eq!(provider.requests()[1], request);

    match provider.complete(&request, &|_| {}).await {
        Err(Error::Script(message)) => {
            assert_eq!(message, "call 3 wants response 3 but the script has only 2");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(provider.calls(), 3);
}

#[tokio::test]
async fn a_request_that_does_not_fit_is_an_error_saying_why() {
    let first = Entry::tool_use("write", json!({"path": "a"}));
    let request = Request::new("m", vec![Message::user("go")]);
    let response = Scripted::new(vec![first.clone()])
        .unwrap()
        .complete(&request, &|_| {})
        .await
        .unwrap();
    let answered = with_results(request.clone(), &response, &[("wrote 3 bytes", false)]);

    let cases: Vec<(Expect, &str)> = vec![
        (
            Expect {
                tool_results: Some(vec!["exec".into()]),
                ..Expect::default()
            },
            r#"the last message should carry results for ["exec"], but it carries results for ["write"]"#,
        ),
        (
            Expect {
                tool_error: Some(true),
                ..Expect::default()
            },
            "a tool result in the last message should be an error, but none is",
        ),
        (
            Expect {
                contains: Some("wrote 4".into()),
                ..Expect::default()
            },
            r#"the last message should contain "wrote 4", but it reads "wrote 3 bytes""#,
        ),
        (
            Expect {
                system_contains: Some("agent".into()),
                ..Expect::default()
            },
            r#"the system prompt should contain "agent""#,
        ),
        (
            Expect {
                tools: Some(vec!["exec".into()]),
                ..Expect::default()
            },
            r#"tool "exec" should be offered, but the request offers []"#,
        ),
        (
            Expect {
                model: Some("gpt-4o".into()),
                ..Expect::default()
            },
            r#"the model should be "gpt-4o", but the request asks for "m""#,
        ),
    ];
    for (expect, why) in cases {
        let second = Entry {
            expect,
            ..Entry::text("ok")
        };
        let provider = Scripted::new(vec![first.clone(), second]).unwrap();
        provider.complete(&request, &|_| {}).await.unwrap();
        match provider.complete(&answered, &|_| {}).await {
            Err(Error::Script(message)) => {
                assert_eq!(message, format!("call 2 does not fit response 2: {why}"));
            }
            other => panic!("{other:?}"),
        }
    }

    // And the same expectations met.
    let mut fitting = answered.clone();
    fitting.system = Some("a coding agent".into());
    fitting.tools = vec![ToolDefinition {
        name: "exec".into(),
        description: String::new(),
        input_schema: Json(json!({})),
    }];
    let second = Entry {
        expect: Expect {
            tool_results: Some(vec!["write".into()]),
            tool_error: Some(false),
            contains: Some("wrote 3".into()),
            system_contains: Some("agent".into()),
            tools: Some(vec!["exec".into()]),
            model: Some("m".into()),
        },
        ..Entry::text("ok")
    };
    let provider = Scripted::new(vec![first, second]).unwrap();
    provider.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(
        provider.complete(&fitting, &|_| {}).await.unwrap().text(),
        "ok"
    );
}

#[tokio::test]
async fn error_entries_simulate_provider_failures() {
    let provider = Scripted::from_json(
        r#"[
            {"error": {"status": 529, "type": "overloaded_error", "message": "Overloaded"}},
            {"error": {"status": 400, "type": "invalid_request_error", "message": "bad"}},
            {"error": {"status": 500, "message": "flaky", "retryable": false}},
            {"error": {"message": "connection reset by peer"}},
            {"content": [{"type": "text", "text": "fine"}]}
        ]"#,
    )
    .unwrap();
    let request = Request::new("m", vec![Message::user("hi")]);
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let error = provider.complete(&request, &|_| {}).await.unwrap_err();
        outcomes.push((error.is_retryable(), error.to_string()));
    }
    assert_eq!(
        outcomes,
        [
            (
                true,
                "scripted returned HTTP 529 (overloaded_error): Overloaded".to_owned()
            ),
            (
                false,
                "scripted returned HTTP 400 (invalid_request_error): bad".to_owned()
            ),
            (
                false,
                "scripted returned HTTP 500 (scripted_error): flaky".to_owned()
            ),
            (
                true,
                "transport error talking to scripted: connection reset by peer".to_owned()
            ),
        ]
    );
    assert_eq!(
        provider.complete(&request, &|_| {}).await.unwrap().text(),
        "fine"
    );
}

#[test]
fn bad_scripts_are_refused_with_the_reason() {
    let cases = [
        ("{", "the script is not JSON"),
        (
            r#"[{"content": [{"type": "txt", "text": "x"}]}]"#,
            "unknown variant `txt`",
        ),
        (r#"[{"contnet": []}]"#, "unknown field `contnet`"),
        (
            r#"[{"expect": {"tool_result": ["x"]}, "content": []}]"#,
            "unknown field `tool_result`",
        ),
        (r#"[{}]"#, "response 1: has no `content` (and no `error`)"),
        (
            r#"[{"content": [{"type": "text", "text": "ab"}], "deltas": ["a", "c"]}]"#,
            r#"response 1: `deltas` join to "ac" but the text blocks say "ab""#,
        ),
        (
            r#"[{"content": [{"type": "text", "text": "a"}], "error": {"message": "x"}}]"#,
            "has both `error` and `content`",
        ),
        (
            r#"{"mode": "by_turn", "responses": [{"error": {"message": "x"}}]}"#,
            "cannot be used in `by_turn` mode",
        ),
        (
            r#"[{"content": [{"type": "tool_use", "name": ""}]}]"#,
            "block 1 is a tool_use without a name",
        ),
    ];
    for (text, needle) in cases {
        let error = Scripted::from_json(text).unwrap_err();
        assert!(error.to_string().contains(needle), "{text}: {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn deltas_stream_in_pieces_with_delays_and_defaults_cover_thinking() {
    let provider = Scripted::from_json(
        r#"{"model": "recorded-model", "responses": [
            {"content": [{"type": "text", "text": "Hello, world"}], "deltas": ["Hel", "lo, ", "world"], "delay_ms": 250},
            {"content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"}
            ], "stop_reason": "max_tokens"}
        ]}"#,
    )
    .unwrap();
    let request = Request::new("m", vec![Message::user("hi")]);
    let deltas = Recorder::default();
    let sink = deltas.sink();
    let started = tokio::time::Instant::now();
    let first = provider.complete(&request, &sink).await.unwrap();
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(750));
    assert_eq!(first.model, "recorded-model");
    let second = provider.complete(&request, &sink).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::MaxTokens);
    assert_eq!(
        deltas.all(),
        ["Hel", "lo, ", "world"]
            .into_iter()
            .map(|t| Delta::Text(t.into()))
            .chain([
                Delta::Thinking("hmm".into()),
                Delta::Text("a".into()),
                Delta::Text("b".into())
            ])
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_demo_session_plays_by_turn_and_quotes_the_real_output() {
    let provider = Scripted::demo().unwrap();
    let mut request = Request::new(
        "claude-sonnet-4-5",
        vec![Message::user("write and run a script")],
    );
    let write = provider.complete(&request, &|_| {}).await.unwrap();
    let (_, name, input) = write.tool_uses().next().unwrap();
    assert_eq!(name, "write");
    assert_eq!(input["path"], "hello.sh");
    request = with_results(request, &write, &[("wrote 63 bytes to hello.sh", false)]);

    // A process restarted here (a fresh provider) continues at the right response.
    let restarted = Scripted::demo().unwrap();
    let exec = restarted.complete(&request, &|_| {}).await.unwrap();
    let (_, name, input) = exec.tool_uses().next().unwrap();
    assert_eq!(
        (name, input["command"].as_str()),
        ("exec", Some("sh hello.sh"))
    );
    request = with_results(request, &exec, &[("Hello from Keel!\n2 + 3 = 5", false)]);

    let report = restarted.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(report.stop_reason, StopReason::EndTurn);
    assert!(
        report
            .text()
            .contains("```\nHello from Keel!\n2 + 3 = 5\n```"),
        "{}",
        report.text()
    );
    assert_eq!(restarted.calls(), 2);
    assert_eq!(provider.calls(), 1);
}
