//! The OpenAI-compatible provider against a loopback server.

use keel_providers::{ContentBlock, Json, LlmProvider, Message, Request, Role, StopReason};
use serde_json::json;

use super::server::{Reply, Server};
use super::{Deltas, fixture, openai};

/// Two parallel calls streamed in fragments, as OpenAI sends them, with the usage
/// chunk and an SSE comment line (OpenRouter's keep-alive).
pub const TOOL_STREAM: &str = concat!(
    ": OPENROUTER PROCESSING\n\n",
    r#"data: {"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Checking both.","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
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

pub fn tool_stream_content() -> Vec<ContentBlock> {
    vec![
        ContentBlock::text("Checking both."),
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
}

#[tokio::test]
async fn streams_the_text_fixture_over_tcp() {
    let server = Server::start(vec![Reply::sse(fixture("openai/text_stream.sse"))]).await;
    let provider = openai(&server, 0);
    let deltas = Deltas::default();
    let request = Request::new("gpt-4o-mini", vec![Message::user("Hello!")]);
    let response = provider.complete(&request, &deltas.sink()).await.unwrap();
    assert_eq!(response.text(), "Hello");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(deltas.final_text(), "Hello");

    let sent = &server.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer test-openai-key"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Hello!"}])
    );
}

#[tokio::test]
async fn parallel_tool_calls_then_tool_messages_on_the_next_turn() {
    let server = Server::start(vec![
        Reply::sse(TOOL_STREAM),
        Reply::sse(fixture("openai/text_stream.sse")),
    ])
    .await;
    let provider = openai(&server, 0);
    let mut request = Request::new("gpt-4o", vec![Message::user("Boston and Zürich?")]);
    let first = provider.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(first.content, tool_stream_content());
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.usage.cache_read_input_tokens, 64);

    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::Assistant,
        content: first.content.clone(),
    });
    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::User,
        content: vec![
            ContentBlock::ToolResult {
                tool_use_id: "call_a".into(),
                content: "22 C".into(),
                is_error: false,
            },
            ContentBlock::ToolResult {
                tool_use_id: "call_b".into(),
                content: "18 C".into(),
                is_error: false,
            },
        ],
    });
    provider.complete(&request, &|_| {}).await.unwrap();
    let sent = server.requests()[1].json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Boston and Zürich?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Zürich 🇨🇭\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "22 C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "18 C"},
        ])
    );
}

#[tokio::test]
async fn a_server_answering_with_plain_json_is_understood() {
    let server = Server::start(vec![Reply::json(
        200,
        fixture("openai/tool_call.response.json"),
    )])
    .await;
    let response = openai(&server, 0)
        .complete(
            &Request::new("gpt-4o", vec![Message::user("weather?")]),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(response.tool_uses().count(), 1);
    assert_eq!(response.stop_reason, StopReason::ToolUse);
}
