//! The Chat Completions request body.
//!
//! Mapping from the neutral model:
//! - the system prompt is the first message, `role: system`;
//! - a user message's tool results become `role: tool` messages (`tool_call_id`,
//!   `content`), in order, before any user text of that message, since they must
//!   directly follow the assistant message that asked for them; a failed result's
//!   content is prefixed with `Error: ` (the format has no error flag);
//! - an assistant message's text is joined into `content` and its tool uses become
//!   `tool_calls` with the arguments as JSON text (a non-JSON argument string a model
//!   produced earlier is sent back as it was);
//! - thinking blocks are not sent: Chat Completions has no field for them, and
//!   servers that stream reasoning (DeepSeek, vLLM) reject it when sent back;
//! - unknown blocks (from another provider) are skipped.

use serde_json::{Map, Value, json};

use super::MaxTokensField;
use crate::types::{ContentBlock, Request, Role};

/// The JSON body of a streamed chat completion.
pub(crate) fn body(request: &Request, max_tokens: MaxTokensField, include_usage: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages(request)));
    body.insert("stream".into(), json!(true));
    if include_usage {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let field = match max_tokens {
        MaxTokensField::MaxTokens => "max_tokens",
        MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
    };
    body.insert(field.into(), json!(request.max_tokens));
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if !request.stop_sequences.is_empty() {
        body.insert("stop".into(), json!(request.stop_sequences));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.input_schema.0,
                    }
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

fn messages(request: &Request) -> Vec<Value> {
    let mut out = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        out.push(json!({"role": "system", "content": system}));
    }
    for message in request.messages.iter() {
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in &message.content {
            match block {
                ContentBlock::Text { text: piece } => text.push_str(piece),
                ContentBlock::ToolUse { id, name, input } => {
                    let arguments = match &input.0 {
                        Value::String(raw) => raw.clone(),
                        other => other.to_string(),
                    };
                    calls.push(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }));
                }
                ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    let content = if *is_error {
                        format!("Error: {content}")
                    } else {
                        content.clone()
                    };
                    out.push(
                        json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}),
                    );
                }
                ContentBlock::Thinking { .. }
                | ContentBlock::RedactedThinking { .. }
                | ContentBlock::Unknown { .. } => {}
            }
        }
        match message.role {
            Role::User => {
                if !text.is_empty() {
                    out.push(json!({"role": "user", "content": text}));
                }
            }
            Role::Assistant => {
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let mut assistant = json!({
                    "role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { json!(text) },
                });
                if !calls.is_empty() {
                    assistant["tool_calls"] = Value::Array(calls);
                }
                out.push(assistant);
            }
        }
    }
    out
}
