use std::sync::Arc;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::json::Json;
use crate::sse::Parser;
use crate::types::{
    ContentBlock, Delta, Message, Role, StopReason, ThinkingConfig, ToolDefinition,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode(body: &[u8]) -> (Result<Response>, Vec<Delta>) {
    let deltas = Mutex::new(Vec::new());
    let sink = |d: Delta| deltas.lock().unwrap().push(d);
    let mut acc = Accumulator::new();
    for event in Parser::parse_all(body).unwrap() {
        match acc.event(event.as_ref(), &sink) {
            Ok(http::Flow::Continue) => {}
            Ok(http::Flow::Done) => break,
            Err(e) => return (Err(e), deltas.into_inner().unwrap()),
        }
    }
    (acc.finish(), deltas.into_inner().unwrap())
}

fn provider() -> Anthropic {
    Anthropic::builder()
        .api_key("k")
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap()
}

#[test]
fn the_tool_use_stream_fixture_parses_as_documented() {
    let (response, deltas) = decode(&fixture("tool_use_stream.sse"));
    let response = response.unwrap();
    assert_eq!(response.id, "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_eq!(response.model, "claude-opus-4-1-20250805");
    assert_eq!(
        response.content,
        vec![
            ContentBlock::text("Okay, let's check the weather for San Francisco, CA:"),
            ContentBlock::ToolUse {
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                name: "get_weather".into(),
                input: Json(json!({"location": "San Francisco, CA", "unit": "fahrenheit"})),
            },
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage.input_tokens, 472);
    assert_eq!(
        response.usage.output_tokens, 89,
        "message_delta usage is cumulative"
    );
    let streamed: String = deltas
        .iter()
        .map(|d| match d {
            Delta::Text(t) => t.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(streamed, response.text());
}

#[test]
fn the_text_stream_fixture_parses() {
    let (response, deltas) = decode(&fixture("text_stream.sse"));
    let response = response.unwrap();
    assert_eq!(response.text(), "Hello!");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.usage.output_tokens, 15);
    assert_eq!(
        deltas,
        vec![Delta::Text("Hello".into()), Delta::Text("!".into())]
    );
}

#[test]
fn an_error_event_after_http_200_is_a_retryable_api_error() {
    let (response, _) = decode(&fixture("error_midstream.sse"));
    match response {
        Err(Error::Api {
            status,
            kind,
            message,
            retryable,
            ..
        }) => {
            assert_eq!(
                (status, kind.as_str(), message.as_str()),
                (200, "overloaded_error", "Overloaded")
            );
            assert!(retryable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_cut_before_message_stop_is_never_a_response() {
    let body = fixture("tool_use_stream.sse");
    let text = String::from_utf8(body).unwrap();
    let cut = text.find("event: message_delta").unwrap();
    let (response, _) = decode(&text.as_bytes()[..cut]);
    assert!(
        matches!(&response, Err(e @ Error::Transport { .. }) if e.is_retryable()),
        "{response:?}"
    );
    let (response, _) = decode(b"");
    assert!(matches!(response, Err(Error::Transport { .. })));
}

const THINKING_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_t","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2000,"cache_read_input_tokens":5000,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"step by step."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"query\": \"rust\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: some_future_event
data: {"type":"some_future_event","anything":[1,2]}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"Done."}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"a_new_reason","stop_sequence":null},"usage":{"output_tokens":42}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn thinking_signatures_unknown_blocks_events_and_reasons_are_kept() {
    let (response, deltas) = decode(THINKING_STREAM.as_bytes());
    let response = response.unwrap();
    assert_eq!(
        response.content,
        vec![
            ContentBlock::Thinking {
                thinking: "Let me think step by step.".into(),
                signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into(),
            },
            ContentBlock::RedactedThinking {
                data: "EmwKAhgBEgy3va3pzix".into()
            },
            ContentBlock::Unknown {
                kind: "server_tool_use".into(),
                raw: Json(
                    json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust"}})
                ),
            },
            ContentBlock::text("Done."),
        ]
    );
    assert_eq!(
        response.stop_reason,
        StopReason::Other("a_new_reason".into())
    );
    assert_eq!(response.usage.cache_creation_input_tokens, 2000);
    assert_eq!(response.usage.cache_read_input_tokens, 5000);
    assert_eq!(response.usage.output_tokens, 42);
    assert_eq!(
        deltas,
        vec![
            Delta::Thinking("Let me think ".into()),
            Delta::Thinking("step by step.".into()),
            Delta::Text("Done.".into())
        ]
    );

    // Sent back, every block is byte-for-byte what came in.
    let mut request = Request::new("claude-sonnet-4-5", vec![Message::user("hi")]);
    Arc::make_mut(&mut request.messages).push(Message {
        role: Role::Assistant,
        content: response.content.clone(),
    });
    Arc::make_mut(&mut request.messages).push(Message::user("go on"));
    let body = provider().request_body(&request);
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Let me think step by step.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust"}},
            {"type": "text", "text": "Done."},
        ])
    );
}

#[test]
fn malformed_streams_are_protocol_errors() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{}}}\n\n";
    for bad in [
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n".to_owned(),
        format!("{start}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":5,\"delta\":{{\"type\":\"text_delta\",\"text\":\"x\"}}}}\n\n"),
        format!("{start}event: content_block_start\ndata: not json\n\n"),
        format!("{start}event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\nevent: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"thinking_delta\",\"thinking\":\"x\"}}}}\n\n"),
        format!("{start}event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{{}}}}}}\n\nevent: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{{oops\"}}}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"tool_use\"}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"),
        format!("{start}event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"),
    ] {
        let (response, _) = decode(bad.as_bytes());
        assert!(matches!(response, Err(Error::Protocol { .. })), "{bad}: {response:?}");
    }
}

#[test]
fn events_without_an_event_line_are_typed_by_their_data() {
    let body: String = String::from_utf8(fixture("text_stream.sse"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("event:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (response, _) = decode(body.as_bytes());
    assert_eq!(response.unwrap().text(), "Hello!");
}

#[test]
fn non_streamed_messages_parse() {
    let basic = stream::parse_message(&fixture("basic.response.json")).unwrap();
    assert_eq!(basic.text(), "Hi! My name is Claude.");
    assert_eq!(basic.stop_reason, StopReason::EndTurn);
    assert_eq!(
        (basic.usage.input_tokens, basic.usage.output_tokens),
        (2095, 503)
    );
    let tool = stream::parse_message(&fixture("tool_use.response.json")).unwrap();
    let calls: Vec<_> = tool.tool_uses().collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(
        calls[0].2.0,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(tool.stop_reason, StopReason::ToolUse);
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Get the current weather in a given location".into(),
        input_schema: Json(json!({
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
            "required": ["location"]
        })),
    }
}

#[test]
fn a_plain_request_matches_the_documented_example() {
    let provider = Anthropic::builder()
        .api_key("k")
        .base_url("http://127.0.0.1:9")
        .prompt_caching(false)
        .build()
        .unwrap();
    let mut request = Request::new(
        "claude-3-5-sonnet-20240620",
        vec![Message::user("Hello, world")],
    );
    request.max_tokens = 1024;
    let mut expected: serde_json::Value =
        serde_json::from_slice(&fixture("basic.request.json")).unwrap();
    // The documented example has string content; Keel always sends block arrays,
    // which the API documents as equivalent, and always streams.
    expected["messages"][0]["content"] = json!([{"type": "text", "text": "Hello, world"}]);
    expected["stream"] = json!(true);
    assert_eq!(provider.request_body(&request), expected);

    let mut request = Request::new(
        "claude-opus-4-1-20250805",
        vec![Message::user("What is the weather like in San Francisco?")],
    );
    request.max_tokens = 1024;
    request.tools = vec![weather_tool()];
    let mut expected: serde_json::Value =
        serde_json::from_slice(&fixture("tool_use_stream.request.json")).unwrap();
    expected.as_object_mut().unwrap().remove("tool_choice");
    expected["messages"][0]["content"] =
        json!([{"type": "text", "text": "What is the weather like in San Francisco?"}]);
    assert_eq!(provider.request_body(&request), expected);
}

#[test]
fn tool_results_of_a_turn_go_first_in_one_user_message() {
    let ok: serde_json::Value = serde_json::from_slice(&fixture("tool_result.json")).unwrap();
    let failed: serde_json::Value =
        serde_json::from_slice(&fixture("tool_result_error.json")).unwrap();
    let request = Request::new(
        "m",
        vec![
            Message::user("weather?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::text("Checking."),
                    ContentBlock::ToolUse {
                        id: "toolu_01A09q90qw90lq917835lq9".into(),
                        name: "get_weather".into(),
                        input: Json(json!({"location": "San Francisco, CA"})),
                    },
                    ContentBlock::ToolUse {
                        id: "toolu_2".into(),
                        name: "get_weather".into(),
                        input: Json(json!({"location": "Paris"})),
                    },
                ],
            },
            // Results and a follow-up arriving as separate messages, text first.
            Message {
                role: Role::User,
                content: vec![
                    ContentBlock::text("Also, hurry."),
                    ContentBlock::ToolResult {
                        tool_use_id: "toolu_01A09q90qw90lq917835lq9".into(),
                        content: "15 degrees".into(),
                        is_error: false,
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "toolu_2".into(),
                    content: "ConnectionError: the weather service API is not available (HTTP 500)"
                        .into(),
                    is_error: true,
                }],
            },
        ],
    );
    let body = Anthropic::builder()
        .api_key("k")
        .prompt_caching(false)
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap()
        .request_body(&request);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "consecutive user messages are merged");
    assert_eq!(messages[2]["role"], "user");
    let content = messages[2]["content"].as_array().unwrap();
    assert_eq!(
        content[0], ok["content"][0],
        "the documented tool_result shape"
    );
    let mut second = failed["content"][0].clone();
    second["tool_use_id"] = json!("toolu_2");
    assert_eq!(content[1], second, "the documented is_error shape");
    assert_eq!(content[2], json!({"type": "text", "text": "Also, hurry."}));
}

#[test]
fn cache_breakpoints_mark_system_last_tool_latest_and_previous_user_message() {
    let mut request = Request::new(
        "m",
        vec![
            Message::user("first"),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "get_weather".into(),
                    input: Json(json!({})),
                }],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "t1".into(),
                    content: "sunny".into(),
                    is_error: false,
                }],
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::Thinking {
                        thinking: "hm".into(),
                        signature: "sig".into(),
                    },
                    ContentBlock::text(""),
                ],
            },
        ],
    );
    request.system = Some("You are terse.".into());
    let mut other = weather_tool();
    other.name = "other".into();
    request.tools = vec![weather_tool(), other];
    request.thinking = Some(ThinkingConfig {
        budget_tokens: 2048,
    });
    request.temperature = Some(0.5);
    request.stop_sequences = vec!["END".into()];
    let body = provider().request_body(&request);
    let ephemeral = json!({"type": "ephemeral"});
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are terse.", "cache_control": ephemeral}])
    );
    assert!(body["tools"][0].get("cache_control").is_none());
    assert_eq!(body["tools"][1]["cache_control"], ephemeral);
    let messages = body["messages"].as_array().unwrap();
    // The latest message ends with a thinking block (not cacheable) and an empty text
    // block (dropped): no cacheable block, so no breakpoint there.
    assert_eq!(
        messages[3]["content"],
        json!([{"type": "thinking", "thinking": "hm", "signature": "sig"}])
    );
    assert_eq!(messages[2]["content"][0]["cache_control"], ephemeral);
    assert!(messages[0]["content"][0].get("cache_control").is_none());
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(body["temperature"], json!(0.5));
    assert_eq!(body["stop_sequences"], json!(["END"]));

    Arc::make_mut(&mut request.messages).push(Message::user("next"));
    let body = provider().request_body(&request);
    let marked: Vec<usize> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            m["content"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b.get("cache_control").is_some())
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        marked,
        [2, 4],
        "the latest message and the user message before it"
    );
    let text = body.to_string();
    assert_eq!(
        text.matches("cache_control").count(),
        4,
        "the API allows 4 breakpoints"
    );
}

#[test]
fn configuration_reads_the_environment_and_names_a_missing_variable() {
    let none = |_: &str| None;
    match Anthropic::builder().build_with_env(none) {
        Err(e @ Error::MissingApiKey { .. }) => {
            assert!(e.to_string().contains("ANTHROPIC_API_KEY"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let env = |name: &str| match name {
        "ANTHROPIC_API_KEY" => Some("sk-ant-very-secret".to_owned()),
        "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:8080/proxy/".to_owned()),
        _ => None,
    };
    let provider = Anthropic::builder().build_with_env(env).unwrap();
    assert_eq!(provider.url(), "http://127.0.0.1:8080/proxy/v1/messages");
    let shown = format!("{provider:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    let provider = Anthropic::builder()
        .base_url("https://example.test")
        .build_with_env(env)
        .unwrap();
    assert_eq!(provider.url(), "https://example.test/v1/messages");
    assert!(
        !Anthropic::builder()
            .build_with_env(|_| None)
            .unwrap_err()
            .is_retryable()
    );
    assert!(matches!(
        Anthropic::builder().api_key("k").base_url("::").build(),
        Err(Error::Config(_))
    ));
}

#[test]
fn status_errors_carry_the_providers_message() {
    let mut headers = HeaderMap::new();
    headers.insert("request-id", HeaderValue::from_static("req_123"));
    let body = br#"{"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."},"request_id":"req_123"}"#;
    match status_error(404, &headers, body) {
        Error::Api {
            status,
            kind,
            message,
            retryable,
            ..
        } => {
            assert_eq!(status, 404);
            assert_eq!(kind, "not_found_error");
            assert_eq!(
                message,
                "The requested resource could not be found. (request-id req_123)"
            );
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    let error = status_error(529, &HeaderMap::new(), b"<html>busy</html>");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("<html>busy</html>"), "{error}");
    let error = status_error(502, &HeaderMap::new(), b"");
    assert!(error.to_string().contains("Bad Gateway"), "{error}");
}

#[test]
fn a_tool_call_cut_by_max_tokens_keeps_its_partial_input() {
    let body = String::from_utf8(fixture("tool_use_stream.sse"))
        .unwrap()
        .replace(r#""partial_json":"renheit\"}""#, r#""partial_json":"ren""#)
        .replace(
            r#""stop_reason":"tool_use""#,
            r#""stop_reason":"max_tokens""#,
        );
    let response = decode(body.as_bytes()).0.unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    let (_, _, input) = response.tool_uses().next().unwrap();
    assert_eq!(
        input.0,
        json!(r#"{"location": "San Francisco, CA", "unit": "fahren"#)
    );
}
