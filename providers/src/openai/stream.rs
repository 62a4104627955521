//! Assembling a chat completion from its stream of chunks.
//!
//! Each `data:` line is a `chat.completion.chunk`; the first choice's `delta` carries
//! text (`content`), tool-call fragments (`tool_calls`, assembled by their `index`:
//! the first fragment brings `id` and `name`, later ones pieces of `arguments`), and
//! possibly reasoning (`reasoning_content` from DeepSeek/vLLM/llama.cpp, `reasoning`
//! from Ollama/OpenRouter) or a `refusal`. `finish_reason` arrives on the last choice
//! chunk; with `stream_options.include_usage` one more chunk with empty `choices`
//! carries `usage`. The stream ends with `data: [DONE]`; a stream that ends without
//! it is a retryable transport error. A chunk carrying `error` (OpenRouter and
//! others report failures after the HTTP 200 this way) fails the attempt.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{Decoder, Flow, snippet};
use crate::json::Json;
use crate::provider::DeltaSink;
use crate::sse;
use crate::types::{ContentBlock, Delta, Response, StopReason, Usage};

const PROVIDER: &str = "openai";

/// Builds a [`Response`] from chat completion chunks, calling back with deltas.
///
/// Feed it [`sse::Event`]s with [`Accumulator::event`] until [`Flow::Done`], then take
/// the response with [`Accumulator::finish`].
#[derive(Debug, Default)]
pub struct Accumulator {
    id: String,
    model: String,
    text: String,
    reasoning: String,
    refusal: String,
    calls: BTreeMap<usize, PartialCall>,
    finish_reason: Option<String>,
    usage: Usage,
    done: bool,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    delta: Option<ChoiceDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceDelta {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<CallDelta>>,
}

#[derive(Deserialize)]
struct CallDelta {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

impl WireUsage {
    /// `prompt_tokens` includes the cached ones; the neutral model counts them apart.
    fn to_usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            output_tokens: self.completion_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
        }
    }
}

fn protocol(detail: impl Into<String>) -> Error {
    Error::Protocol {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

/// An error object as OpenAI (`{"message","type","code"}`) and compatible servers
/// report it, with the HTTP status it came with (200 inside a stream).
pub(crate) fn api_error(status: u16, error: &Value, retryable_status: bool) -> Error {
    let text = |field: &str| match &error[field] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let message = match error {
        Value::String(s) => s.clone(),
        _ => text("message").unwrap_or_else(|| error.to_string()),
    };
    let code = text("code");
    let kind = text("type")
        .or_else(|| code.clone())
        .unwrap_or_else(|| format!("http_{status}"));
    let quota = [Some(&kind), code.as_ref()]
        .into_iter()
        .flatten()
        .any(|k| k == "insufficient_quota");
    // Inside a stream the status is 200; OpenRouter puts the real one in `code`.
    let retryable = !quota
        && (retryable_status
            || matches!(kind.as_str(), "server_error" | "overloaded_error")
            || code
                .as_deref()
                .and_then(|c| c.parse::<u16>().ok())
                .is_some_and(|c| c == 429 || c >= 500));
    Error::Api {
        provider: PROVIDER,
        status,
        kind: if quota {
            "insufficient_quota".into()
        } else {
            kind
        },
        message,
        retryable,
    }
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one event; [`Flow::Done`] at `data: [DONE]`.
    pub fn event(&mut self, event: sse::EventRef<'_>, on_delta: DeltaSink<'_>) -> Result<Flow> {
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Flow::Done);
        }
        let chunk: Chunk = serde_json::from_str(event.data)
            .map_err(|e| protocol(format!("cannot read a chunk: {e}: {}", snippet(event.data))))?;
        if let Some(error) = chunk.error {
            return Err(api_error(200, &error, false));
        }
        if self.id.is_empty() {
            self.id = chunk.id;
        }
        if self.model.is_empty() {
            self.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.to_usage();
        }
        // Keel asks for one choice; a server sending more gets the first one heard.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, on_delta);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(Flow::Continue)
    }

    fn delta(&mut self, delta: ChoiceDelta, on_delta: DeltaSink<'_>) {
        for reasoning in [delta.reasoning_content, delta.reasoning]
            .into_iter()
            .flatten()
        {
            if !reasoning.is_empty() {
                self.reasoning.push_str(&reasoning);
                on_delta(Delta::Thinking(reasoning));
            }
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.text.push_str(&text);
            on_delta(Delta::Text(text));
        }
        if let Some(refusal) = delta.refusal.filter(|t| !t.is_empty()) {
            self.refusal.push_str(&refusal);
            on_delta(Delta::Text(refusal));
        }
        for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
            // Servers that send whole calls in one chunk may omit `index`.
            let index = call.index.unwrap_or(position);
            let partial = self.calls.entry(index).or_default();
            if let Some(id) = call.id.filter(|id| !id.is_empty())
                && partial.id.is_empty()
            {
                partial.id = id;
            }
            if let Some(function) = call.function {
                if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                    // Some servers repeat the name on every fragment.
                    if partial.name != name {
                        partial.name.push_str(&name);
                    }
                }
                if let Some(arguments) = function.arguments {
                    partial.arguments.push_str(&arguments);
                }
            }
        }
    }

    /// The response, once `[DONE]` arrived; a retryable [`Error::Transport`] if the
    /// stream ended before it.
    pub fn finish(self) -> Result<Response> {
        if !self.done {
            return Err(Error::Transport {
                provider: PROVIDER,
                detail: "the stream ended before [DONE]: the response is incomplete".into(),
            });
        }
        let reason = self
            .finish_reason
            .ok_or_else(|| protocol("the stream ended without a finish_reason"))?;
        let mut content = Vec::new();
        if !self.reasoning.is_empty() {
            // Chat Completions has no signatures; an empty one marks the block as
            // display-only (not sent back to any API).
            content.push(ContentBlock::Thinking {
                thinking: self.reasoning,
                signature: String::new(),
            });
        }
        if !self.text.is_empty() {
            content.push(ContentBlock::Text { text: self.text });
        }
        let refused = !self.refusal.is_empty();
        if refused {
            content.push(ContentBlock::Text { text: self.refusal });
        }
        let has_calls = !self.calls.is_empty();
        for (index, call) in self.calls {
            content.push(tool_use(index, call)?);
        }
        Ok(Response {
            id: self.id,
            model: self.model,
            content,
            stop_reason: if refused {
                StopReason::Refusal
            } else {
                finish_reason(&reason, has_calls)
            },
            usage: self.usage,
        })
    }
}

impl Decoder for Accumulator {
    fn event(&mut self, event: sse::EventRef<'_>, on_delta: DeltaSink<'_>) -> Result<Flow> {
        Accumulator::event(self, event, on_delta)
    }
    fn finish(self) -> Result<Response> {
        Accumulator::finish(self)
    }
}

fn tool_use(index: usize, call: PartialCall) -> Result<ContentBlock> {
    if call.name.is_empty() {
        return Err(protocol(format!("tool call {index} has no function name")));
    }
    let input = if call.arguments.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(&call.arguments).unwrap_or_else(|e| {
            // Small local models do emit broken JSON. Keeping the text lets the tool
            // report the problem to the model instead of failing the whole run.
            tracing::warn!(tool = %call.name, error = %e, "tool call arguments are not JSON");
            Value::String(call.arguments)
        })
    };
    Ok(ContentBlock::ToolUse {
        id: if call.id.is_empty() {
            format!("call_{index}")
        } else {
            call.id
        },
        name: call.name,
        input: Json(input),
    })
}

/// The neutral stop reason of a `finish_reason`.
fn finish_reason(reason: &str, has_calls: bool) -> StopReason {
    match reason {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        // Some servers (older Ollama) say `stop` after emitting tool calls.
        "stop" if has_calls => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    }
}

/// A whole (non-streamed) `chat.completion` object.
pub(crate) fn parse_completion(body: &[u8]) -> Result<Response> {
    #[derive(Deserialize)]
    struct Completion {
        #[serde(default)]
        id: String,
        #[serde(default)]
        model: String,
        choices: Vec<FullChoice>,
        usage: Option<WireUsage>,
    }
    #[derive(Deserialize)]
    struct FullChoice {
        #[serde(default)]
        index: u32,
        message: FullMessage,
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct FullMessage {
        content: Option<String>,
        reasoning_content: Option<String>,
        reasoning: Option<String>,
        refusal: Option<String>,
        #[serde(default)]
        tool_calls: Vec<FullCall>,
    }
    #[derive(Deserialize)]
    struct FullCall {
        #[serde(default)]
        id: String,
        function: FullFunction,
    }
    #[derive(Deserialize)]
    struct FullFunction {
        name: String,
        #[serde(default)]
        arguments: String,
    }
    let completion: Completion = serde_json::from_slice(body).map_err(|e| {
        protocol(format!(
            "cannot read the completion: {e}: {}",
            snippet(&String::from_utf8_lossy(body))
        ))
    })?;
    let choice = completion
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or_else(|| protocol("the completion has no choice"))?;
    let message = choice.message;
    let mut accumulator = Accumulator {
        id: completion.id,
        model: completion.model,
        text: message.content.unwrap_or_default(),
        reasoning: message
            .reasoning_content
            .or(message.reasoning)
            .unwrap_or_default(),
        refusal: message.refusal.unwrap_or_default(),
        finish_reason: choice.finish_reason,
        usage: completion.usage.map(|u| u.to_usage()).unwrap_or_default(),
        done: true,
        ..Accumulator::default()
    };
    for (index, call) in message.tool_calls.into_iter().enumerate() {
        accumulator.calls.insert(
            index,
            PartialCall {
                id: call.id,
                name: call.function.name,
                arguments: call.function.arguments,
            },
        );
    }
    accumulator.finish()
}
