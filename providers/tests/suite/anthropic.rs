//! The Anthropic provider against a loopback server streaming the fixtures.

use keel_providers::{
    ContentBlock, Delta, Json, LlmProvider, Message, Request, Role, StopReason, ToolDefinition,
};
use serde_json::json;

use super::server::{Reply, Server};
use super::{Deltas, anthropic, fixture};

fn weather_request() -> Request {
    let mut request = Request::new(
        "claude-opus-4-1-20250805",
        vec![Message::user("What is the weather like in San Francisco?")],
    );
    request.max_tokens = 1024;
    request.system = Some("You are a weather bot.".into());
    request.tools = vec![ToolDefinition {
        name: "get_weather".into(),
        description: "Get the current weather in a given location".into(),
        input_schema: Json(
            json!({"type": "object", "properties": {"location": {"type": "string"}}}),
        ),
    }];
    request
}

#[tokio::test]
async fn streams_the_tool_use_fixture_over_tcp() {
    let server = Server::start(vec![Reply::sse(fixture("anthropic/tool_use_stream.sse"))]).await;
    let provider = anthropic(&server, 0);
    let deltas = Deltas::default();
    let request = weather_request();
    let response = provider.complete(&request, &deltas.sink()).await.unwrap();

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
    assert_eq!(response.usage.output_tokens, 89);
    assert_eq!(deltas.final_text(), response.text());

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let sent = &seen[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(sent.header("x-api-key"), Some("test-anthropic-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.json(), provider.request_body(&request));
    assert_eq!(sent.json()["stream"], json!(true));
}

pub const THINKING_TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_th","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"usage":{"input_tokens":50,"cache_creation_input_tokens":1200,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"I should call the tool — «météo»."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds/+=="}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Paris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// The engine's second turn: the first response's blocks verbatim, then the results.
#[tokio::test]
async fn a_second_turn_sends_thinking_back_unchanged_and_results_first() {
    let server = Server::start(vec![
        Reply::sse(THINKING_TOOL_STREAM),
        Reply::sse(fixture("anthropic/text_stream.sse")),
    ])
    .await;
    let provider = anthropic(&server, 0);
    let deltas = Deltas::default();
    let mut request = weather_request();
    request.thinking = Some(keel_providers::ThinkingConfig {
        budget_tokens: 1024,
    });
    let first = provider.complete(&request, &deltas.sink()).await.unwrap();
    assert_eq!(first.usage.cache_creation_input_tokens, 1200);
    assert!(
        deltas
            .all()
            .contains(&Delta::Thinking("I should call the tool — «météo».".into()))
    );

    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::Assistant,
        content: first.content.clone(),
    });
    std::sync::Arc::make_mut(&mut request.messages).push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: "toolu_9".into(),
            content: "15 degrees".into(),
            is_error: false,
        }],
    });
    let second = provider.complete(&request, &|_| {}).await.unwrap();
    assert_eq!(second.text(), "Hello!");

    let sent = server.requests()[1].json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool — «météo».",
             "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds/+=="},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"location": "Paris"}},
        ]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "15 degrees",
             "cache_control": {"type": "ephemeral"}},
        ]})
    );
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        sent["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
}

#[tokio::test]
async fn a_server_answering_with_plain_json_is_understood() {
    let server = Server::start(vec![Reply::json(
        200,
        fixture("anthropic/basic.response.json"),
    )])
    .await;
    let response = anthropic(&server, 0)
        .complete(
            &Request::new(
                "claude-3-5-sonnet-20240620",
                vec![Message::user("Hello, world")],
            ),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(response.text(), "Hi! My name is Claude.");
    assert_eq!(response.usage.input_tokens, 2095);
}
