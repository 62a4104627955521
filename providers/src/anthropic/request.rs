//! The Messages API request body.
//!
//! The conversation is sent the way the API documents it must be:
//! - consecutive messages of one role are merged, so all tool results of a turn are
//!   in one user message, and within a user message the `tool_result` blocks come
//!   first (the API rejects text before them);
//! - thinking and redacted-thinking blocks are sent back byte for byte, with their
//!   signatures (the API verifies them); blocks of unknown types go back as received;
//! - empty text blocks are dropped (the API rejects them), and a message left empty
//!   with them;
//! - with prompt caching on, `cache_control: {"type": "ephemeral"}` marks the system
//!   prompt, the last tool, the last block of the latest message (so the next turn
//!   reads everything before it from the cache), and the last block of the user
//!   message before that (which the previous request wrote: the cache only looks
//!   back 20 blocks from a breakpoint, and a turn with many tool calls adds more).
//!   That is 4 breakpoints, the API's maximum.

use serde_json::{Map, Value, json};

use crate::types::{ContentBlock, Message, Request, Role};

/// The JSON body of a streamed Messages request.
pub(crate) fn body(request: &Request, caching: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("stream".into(), json!(true));
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        let mut block = json!({"type": "text", "text": system});
        if caching {
            mark(&mut block);
        }
        body.insert("system".into(), json!([block]));
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": t.input_schema.0,
                })
            })
            .collect();
        if caching && let Some(last) = tools.last_mut() {
            mark(last);
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    body.insert(
        "messages".into(),
        Value::Array(messages(&request.messages, caching)),
    );
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if !request.stop_sequences.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop_sequences));
    }
    if let Some(thinking) = &request.thinking {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": thinking.budget_tokens}),
        );
    }
    Value::Object(body)
}

fn messages(messages: &[Message], caching: bool) -> Vec<Value> {
    let mut merged: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in messages {
        let blocks: Vec<Value> = message.content.iter().filter_map(block).collect();
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, existing)) if *role == message.role => existing.extend(blocks),
            _ => merged.push((message.role, blocks)),
        }
    }
    for (role, blocks) in &mut merged {
        if *role == Role::User {
            // A stable sort keeps the results in the order the engine gave them.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
        }
    }
    if caching {
        let last = merged.len().checked_sub(1);
        let previous_user = last.and_then(|last| {
            merged[..last]
                .iter()
                .rposition(|(role, _)| *role == Role::User)
        });
        for index in [last, previous_user].into_iter().flatten() {
            if let Some(block) = merged[index].1.iter_mut().rev().find(|b| cacheable(b)) {
                mark(block);
            }
        }
    }
    merged
        .into_iter()
        .map(|(role, content)| {
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect()
}

/// One content block in the wire format; `None` for blocks the API would reject.
fn block(block: &ContentBlock) -> Option<Value> {
    Some(match block {
        ContentBlock::Text { text } if text.is_empty() => return None,
        ContentBlock::Text { text } => json!({"type": "text", "text": text}),
        ContentBlock::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input.0})
        }
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut result =
                json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
            if *is_error {
                result["is_error"] = json!(true);
            }
            result
        }
        // A block without a signature came from another provider: Anthropic would
        // reject it, and it carries nothing this model can verify.
        ContentBlock::Thinking { signature, .. } if signature.is_empty() => return None,
        ContentBlock::Thinking {
            thinking,
            signature,
        } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
        ContentBlock::RedactedThinking { data } => {
            json!({"type": "redacted_thinking", "data": data})
        }
        ContentBlock::Unknown { raw, .. } => raw.0.clone(),
    })
}

/// Block types the API lets carry `cache_control` (not thinking blocks).
fn cacheable(block: &Value) -> bool {
    matches!(
        block["type"].as_str(),
        Some("text" | "tool_use" | "tool_result" | "image" | "document")
    )
}

fn mark(block: &mut Value) {
    if let Value::Object(map) = block {
        map.insert("cache_control".into(), json!({"type": "ephemeral"}));
    }
}
