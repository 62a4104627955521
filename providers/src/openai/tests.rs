use std::sync::Mutex;

use serde_json::json;

use reqwest::header::HeaderValue;

use super::*;
use crate::json::Json;
use crate::sse::Parser;
use crate::types::{ContentBlock, Delta, Message, Role, StopReason, ToolDefinition};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openai/{name}",
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

fn provider() -> OpenAi {
    OpenAi::builder()
        .api_key("k")
        .base_url("http://127.0.0.1:9/v1")
        .build()
        .unwrap()
}

#[test]
fn the_text_stream_fixture_parses_as_documented() {
    let (response, deltas) = decode(&fixture("text_stream.sse"));
    let response = response.unwrap();
    assert_eq!(response.text(), "Hello");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.id, "chatcmpl-123");
    assert_eq!(response.model, "gpt-4o-mini");
    assert_eq!(deltas, vec![Delta::Text("Hello".into())]);
}

/// Two parallel calls, fragments interleaved by `index`, then the usage chunk; with
/// an OpenRouter-style comment line.
pub(crate) const TOOL_STREAM: &str = concat!(
    ": OPENROUTER PROCESSING\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loca"}}]},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"location\""}}]},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"tion\": \"Boston, MA\"}"}}]},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":": \"Zürich 🇨🇭\"}"}}]},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":64}}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn tool_call_fragments_assemble_by_index_and_usage_counts_cached_tokens() {
    let (response, deltas) = decode(TOOL_STREAM.as_bytes());
    let response = response.unwrap();
    assert_eq!(
        response.content,
        vec![
            ContentBlock::ToolUse {
                id: "call_a".into(),
                name: "get_weather".into(),
                input: Json(json!({"location": "Boston, MA"})),
            },
            ContentBlock::ToolUse {
                id: "call_b".into(),
                name: "get_weather".into(),
                input: Json(json!({"location": "Zürich 🇨🇭"})),
            },
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage.input_tokens, 18);
    assert_eq!(response.usage.cache_read_input_tokens, 64);
    assert_eq!(response.usage.output_tokens, 17);
    assert!(deltas.is_empty());
}

#[test]
fn a_stream_without_done_is_incomplete() {
    let text = TOOL_STREAM.replace("data: [DONE]\n\n", "");
    let (response, _) = decode(text.as_bytes());
    assert!(
        matches!(&response, Err(e @ Error::Transport { .. }) if e.is_retryable()),
        "{response:?}"
    );
}

#[test]
fn reasoning_refusals_and_odd_servers_are_handled() {
    let chunks = [
        json!({"id": "x", "model": "deepseek-r1", "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}),
        json!({"id": "x", "choices": [{"index": 0, "delta": {"reasoning": " ok"}}]}),
        json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        // A second choice is ignored; Ollama-style whole calls without `index`.
        json!({"id": "x", "choices": [{"index": 1, "delta": {"content": "ignored"}}]}),
        json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"id": "c1", "function": {"name": "exec", "arguments": "{\"command\": \"ls\"}"}},
            {"function": {"name": "exec", "arguments": "{broken"}}
        ]}}]}),
        json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ];
    let mut body = String::new();
    for chunk in &chunks {
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    let (response, deltas) = decode(body.as_bytes());
    let response = response.unwrap();
    assert_eq!(
        response.content,
        vec![
            ContentBlock::Thinking {
                thinking: "hmm ok".into(),
                signature: String::new()
            },
            ContentBlock::text("Hi"),
            ContentBlock::ToolUse {
                id: "c1".into(),
                name: "exec".into(),
                input: Json(json!({"command": "ls"}))
            },
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "exec".into(),
                input: Json(json!("{broken"))
            },
        ]
    );
    assert_eq!(
        response.stop_reason,
        StopReason::ToolUse,
        "stop with tool calls"
    );
    assert_eq!(response.usage, crate::types::Usage::default());
    assert_eq!(
        deltas,
        vec![
            Delta::Thinking("hmm".into()),
            Delta::Thinking(" ok".into()),
            Delta::Text("Hi".into())
        ]
    );

    let refusal = concat!(
        r#"data: {"id":"r","choices":[{"index":0,"delta":{"refusal":"I can't help with that."}}]}"#,
        "\n\n",
        r#"data: {"id":"r","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "\n\ndata: [DONE]\n\n"
    );
    let response = decode(refusal.as_bytes()).0.unwrap();
    assert_eq!(response.stop_reason, StopReason::Refusal);
    assert_eq!(response.text(), "I can't help with that.");

    for (reason, expected) in [
        ("length", StopReason::MaxTokens),
        ("content_filter", StopReason::Other("content_filter".into())),
    ] {
        let body = format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": reason}]})
        );
        assert_eq!(decode(body.as_bytes()).0.unwrap().stop_reason, expected);
    }
}

#[test]
fn an_error_chunk_fails_the_attempt() {
    let body = concat!(
        r#"data: {"id":"x","choices":[{"index":0,"delta":{"content":"par"}}]}"#,
        "\n\n",
        r#"data: {"error":{"code":502,"message":"Provider returned error"}}"#,
        "\n\n"
    );
    let (response, _) = decode(body.as_bytes());
    match response {
        Err(e @ Error::Api { status: 200, .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("Provider returned error"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (response, _) = decode(b"data: {not json}\n\n");
    assert!(matches!(response, Err(Error::Protocol { .. })));
}

#[test]
fn the_non_streamed_tool_call_fixture_parses() {
    let response = stream::parse_completion(&fixture("tool_call.response.json")).unwrap();
    assert_eq!(
        response.content,
        vec![ContentBlock::ToolUse {
            id: "call_abc123".into(),
            name: "get_current_weather".into(),
            input: Json(json!({"location": "Boston, MA"})),
        }]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage.input_tokens, 82);
    assert_eq!(response.usage.output_tokens, 17);
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_current_weather".into(),
        description: "Get the current weather in a given location".into(),
        input_schema: Json(json!({
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["location"]
        })),
    }
}

#[test]
fn the_request_matches_the_documented_function_calling_example() {
    let mut request = Request::new(
        "gpt-4o",
        vec![Message::user("What's the weather like in Boston today?")],
    );
    request.tools = vec![weather_tool()];
    let mut expected: Value = serde_json::from_slice(&fixture("tool_call.request.json")).unwrap();
    // Keel leaves tool_choice at its default ("auto") and always streams with usage.
    expected.as_object_mut().unwrap().remove("tool_choice");
    expected["stream"] = json!(true);
    expected["stream_options"] = json!({"include_usage": true});
    expected["max_tokens"] = json!(4096);
    assert_eq!(provider().request_body(&request), expected);
}

#[test]
fn tool_results_become_tool_messages_after_the_calls() {
    let mut request = Request::new(
        "gpt-4o",
        vec![
            Message::user("weather in Boston and Paris?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::Thinking {
                        thinking: "two calls".into(),
                        signature: String::new(),
                    },
                    ContentBlock::ToolUse {
                        id: "call_a".into(),
                        name: "get_current_weather".into(),
                        input: Json(json!({"location": "Boston, MA"})),
                    },
                    ContentBlock::ToolUse {
                        id: "call_b".into(),
                        name: "get_current_weather".into(),
                        input: Json(json!("{broken")),
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentBlock::text("Be quick."),
                    ContentBlock::ToolResult {
                        tool_use_id: "call_a".into(),
                        content: "22 C".into(),
                        is_error: false,
                    },
                    ContentBlock::ToolResult {
                        tool_use_id: "call_b".into(),
                        content: "bad arguments".into(),
                        is_error: true,
                    },
                ],
            },
            Message::assistant("Boston is 22 C."),
        ],
    );
    request.system = Some("Be brief.".into());
    request.stop_sequences = vec!["\n\n".into()];
    request.temperature = Some(0.0);
    let body = provider().request_body(&request);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather in Boston and Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_current_weather", "arguments": "{broken"}},
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "22 C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "Error: bad arguments"},
            {"role": "user", "content": "Be quick."},
            {"role": "assistant", "content": "Boston is 22 C."},
        ])
    );
    assert_eq!(body["stop"], json!(["\n\n"]));
    assert_eq!(body["temperature"], json!(0.0));
}

#[test]
fn base_urls_compose_like_the_sdk_and_pick_the_token_field() {
    let env = |name: &str| match name {
        "OPENAI_API_KEY" => Some("sk-proj-secret".to_owned()),
        "OPENAI_BASE_URL" => Some("http://localhost:11434/v1/".to_owned()),
        _ => None,
    };
    let ollama = OpenAi::builder().build_with_env(env).unwrap();
    assert_eq!(ollama.url(), "http://localhost:11434/v1/chat/completions");
    let request = Request::new("qwen3", vec![Message::user("hi")]);
    assert_eq!(ollama.request_body(&request)["max_tokens"], json!(4096));
    assert!(!format!("{ollama:?}").contains("secret"));

    let official = OpenAi::builder()
        .build_with_env(|n| (n == "OPENAI_API_KEY").then(|| "sk".to_owned()))
        .unwrap();
    assert_eq!(official.url(), "https://api.openai.com/v1/chat/completions");
    let body = official.request_body(&request);
    assert_eq!(body["max_completion_tokens"], json!(4096));
    assert!(body.get("max_tokens").is_none());

    match OpenAi::builder().build_with_env(|_| None) {
        Err(e @ Error::MissingApiKey { .. }) => assert!(e.to_string().contains("OPENAI_API_KEY")),
        other => panic!("{other:?}"),
    }
    let builder = OpenAi::builder()
        .api_key("sk-in-builder")
        .header("x-proxy-token", "proxy-secret");
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains("sk-in-builder") && !shown.contains("proxy-secret"),
        "{shown}"
    );
    assert!(shown.contains("x-proxy-token"), "{shown}");
    let with_org = OpenAi::builder()
        .api_key("k")
        .build_with_env(|n| (n == "OPENAI_ORG_ID").then(|| "org-1".to_owned()))
        .unwrap();
    assert!(format!("{with_org:?}").contains("openai-organization"));
    assert!(matches!(
        OpenAi::builder()
            .api_key("k")
            .header("bad name", "v")
            .build(),
        Err(Error::Config(_))
    ));
    let keyless = OpenAi::builder()
        .without_api_key()
        .base_url("http://127.0.0.1:1/v1")
        .include_usage(false)
        .build_with_env(|_| None)
        .unwrap();
    assert!(
        keyless
            .request_body(&request)
            .get("stream_options")
            .is_none()
    );
}

#[test]
fn status_errors_follow_the_documented_shapes() {
    let quota = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let error = status_error(429, &HeaderMap::new(), quota);
    assert!(!error.is_retryable(), "insufficient_quota fails at once");
    assert!(
        error.to_string().contains("exceeded your current quota"),
        "{error}"
    );

    let rate = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    assert!(status_error(429, &HeaderMap::new(), rate).is_retryable());

    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("req_9"));
    let ollama = status_error(
        404,
        &headers,
        br#"{"error":"model \"qwen9\" not found, try pulling it first"}"#,
    );
    match &ollama {
        Error::Api {
            message, retryable, ..
        } => {
            assert_eq!(
                message,
                "model \"qwen9\" not found, try pulling it first (x-request-id req_9)"
            );
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    let vllm = status_error(400, &HeaderMap::new(), br#"{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}"#);
    assert!(
        vllm.to_string().contains("max_tokens is too large"),
        "{vllm}"
    );
    assert!(
        status_error(503, &HeaderMap::new(), b"")
            .to_string()
            .contains("Service Unavailable")
    );
}
