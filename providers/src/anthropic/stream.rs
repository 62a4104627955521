//! Assembling a Messages API response from its stream of events.
//!
//! Events, as documented: `message_start` (id, model, input usage), then per content
//! block `content_block_start`, `content_block_delta`s (`text_delta`,
//! `input_json_delta`, `thinking_delta`, `signature_delta`) and `content_block_stop`;
//! `message_delta` (stop reason and *cumulative* usage), `message_stop`. `ping` is a
//! keep-alive; `error` reports a failure after the HTTP 200. Unknown event, block and
//! delta types are tolerated: unknown blocks are kept whole as
//! [`ContentBlock::Unknown`] (their `input_json_delta`s assembled into `input`), other
//! unknown things are logged and skipped.
//!
//! The response exists only once `message_stop` arrived: a stream that ends before it
//! is a retryable transport error, never a short answer.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{Decoder, Flow, snippet};
use crate::json::Json;
use crate::provider::DeltaSink;
use crate::sse;
use crate::types::{ContentBlock, Delta, Response, StopReason, Usage};

const PROVIDER: &str = "anthropic";

/// Builds a [`Response`] from Messages API stream events, calling back with deltas.
///
/// Pure apart from the callback: feed it [`sse::Event`]s with [`Accumulator::event`]
/// until it returns [`Flow::Done`], then take the response with [`Accumulator::finish`].
#[derive(Debug, Default)]
pub struct Accumulator {
    id: String,
    model: String,
    started: bool,
    stopped: bool,
    blocks: Vec<Option<Partial>>,
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Debug)]
enum Partial {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
        json: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted(String),
    Unknown {
        kind: String,
        raw: Value,
        json: String,
    },
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct MessageStart {
    message: MessageHead,
}

#[derive(Deserialize)]
struct MessageHead {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

/// Usage as the API reports it; absent fields keep their previous value.
#[derive(Deserialize, Default)]
pub(crate) struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn apply(&self, usage: &mut Usage) {
        let fields = [
            (self.input_tokens, &mut usage.input_tokens),
            (self.output_tokens, &mut usage.output_tokens),
            (
                self.cache_creation_input_tokens,
                &mut usage.cache_creation_input_tokens,
            ),
            (
                self.cache_read_input_tokens,
                &mut usage.cache_read_input_tokens,
            ),
        ];
        for (value, field) in fields {
            if let Some(value) = value {
                *field = value;
            }
        }
    }
}

#[derive(Deserialize)]
struct BlockStart {
    index: usize,
    content_block: Value,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    index: usize,
    #[serde(borrow)]
    delta: WireDelta<'a>,
}

/// The hot path: one per streamed token. The type name borrows from the event.
#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct BlockStop {
    index: usize,
}

#[derive(Deserialize)]
struct MessageDelta {
    delta: MessageDeltaBody,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: WireError,
}

#[derive(Deserialize)]
pub(crate) struct WireError {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// Whether an error type the API reports is transient.
pub(crate) fn error_type_is_retryable(kind: &str) -> bool {
    matches!(
        kind,
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
    )
}

fn protocol(detail: impl Into<String>) -> Error {
    Error::Protocol {
        provider: PROVIDER,
        detail: detail.into(),
    }
}

fn parse<'a, T: Deserialize<'a>>(event: sse::EventRef<'a>) -> Result<T> {
    serde_json::from_str(event.data).map_err(|e| {
        protocol(format!(
            "cannot read a {} event: {e}: {}",
            event.event,
            snippet(event.data)
        ))
    })
}

impl Accumulator {
    /// An empty accumulator, before `message_start`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one event; [`Flow::Done`] after `message_stop`.
    pub fn event(&mut self, event: sse::EventRef<'_>, on_delta: DeltaSink<'_>) -> Result<Flow> {
        let owned_kind;
        let kind = if event.event == "message" {
            owned_kind = parse::<TypeOnly>(event)?.kind;
            owned_kind.as_str()
        } else {
            event.event
        };
        if self.stopped {
            return Err(protocol(format!("a {kind} event after message_stop")));
        }
        if !self.started && !matches!(kind, "message_start" | "ping" | "error") {
            return Err(protocol(format!("a {kind} event before message_start")));
        }
        match kind {
            "message_start" => {
                let start: MessageStart = parse(event)?;
                self.id = start.message.id;
                self.model = start.message.model;
                start.message.usage.apply(&mut self.usage);
                self.started = true;
            }
            "content_block_start" => {
                let start: BlockStart = parse(event)?;
                self.start_block(start)?;
            }
            "content_block_delta" => {
                let delta: BlockDelta = parse(event)?;
                self.delta(delta, on_delta)?;
            }
            "content_block_stop" => {
                let stop: BlockStop = parse(event)?;
                if !matches!(self.blocks.get(stop.index), Some(Some(_))) {
                    return Err(protocol(format!(
                        "content_block_stop for block {} which never started",
                        stop.index
                    )));
                }
            }
            "message_delta" => {
                let delta: MessageDelta = parse(event)?;
                if let Some(reason) = delta.delta.stop_reason {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = delta.usage {
                    usage.apply(&mut self.usage);
                }
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(Flow::Done);
            }
            "ping" => {}
            "error" => {
                let body: ErrorBody = parse(event)?;
                return Err(Error::Api {
                    provider: PROVIDER,
                    status: 200,
                    retryable: error_type_is_retryable(&body.error.kind),
                    kind: body.error.kind,
                    message: body.error.message,
                });
            }
            other => tracing::debug!(event = other, "skipping an unknown stream event"),
        }
        Ok(Flow::Continue)
    }

    fn start_block(&mut self, start: BlockStart) -> Result<()> {
        let index = start.index;
        // Indices are small and dense; a wild one would only waste memory.
        if index > self.blocks.len() + 1024 {
            return Err(protocol(format!(
                "content block index {index} out of range"
            )));
        }
        if self.blocks.len() <= index {
            self.blocks.resize_with(index + 1, || None);
        }
        if self.blocks[index].is_some() {
            return Err(protocol(format!("content block {index} started twice")));
        }
        let raw = start.content_block;
        let text = |field: &str| raw[field].as_str().unwrap_or_default().to_owned();
        let partial = match raw["type"].as_str().unwrap_or_default() {
            "text" => Partial::Text(text("text")),
            "tool_use" => Partial::ToolUse {
                id: text("id"),
                name: text("name"),
                input: raw["input"].clone(),
                json: String::new(),
            },
            "thinking" => Partial::Thinking {
                thinking: text("thinking"),
                signature: text("signature"),
            },
            "redacted_thinking" => Partial::Redacted(text("data")),
            kind => Partial::Unknown {
                kind: kind.to_owned(),
                raw,
                json: String::new(),
            },
        };
        self.blocks[index] = Some(partial);
        Ok(())
    }

    fn delta(&mut self, delta: BlockDelta<'_>, on_delta: DeltaSink<'_>) -> Result<()> {
        let index = delta.index;
        let Some(Some(block)) = self.blocks.get_mut(index) else {
            return Err(protocol(format!(
                "a delta for content block {index} which never started"
            )));
        };
        let d = delta.delta;
        match (block, &*d.kind) {
            (Partial::Text(text), "text_delta") => {
                let piece = d.text.unwrap_or_default();
                text.push_str(&piece);
                on_delta(Delta::Text(piece));
            }
            (Partial::ToolUse { json, .. } | Partial::Unknown { json, .. }, "input_json_delta") => {
                json.push_str(d.partial_json.as_deref().unwrap_or_default());
            }
            (Partial::Thinking { thinking, .. }, "thinking_delta") => {
                let piece = d.thinking.unwrap_or_default();
                thinking.push_str(&piece);
                on_delta(Delta::Thinking(piece));
            }
            (Partial::Thinking { signature, .. }, "signature_delta") => {
                signature.push_str(d.signature.as_deref().unwrap_or_default());
            }
            (Partial::Unknown { .. }, kind) | (_, kind @ "citations_delta") => {
                tracing::debug!(delta = kind, index, "skipping a delta Keel does not model");
            }
            (_, kind) => {
                return Err(protocol(format!(
                    "a {kind} for content block {index} of another type"
                )));
            }
        }
        Ok(())
    }

    /// The response, once `message_stop` arrived; a retryable [`Error::Transport`] if
    /// the stream ended before it.
    pub fn finish(self) -> Result<Response> {
        if !self.stopped {
            let stage = if self.started {
                "message_stop"
            } else {
                "message_start"
            };
            return Err(Error::Transport {
                provider: PROVIDER,
                detail: format!("the stream ended before {stage}: the response is incomplete"),
            });
        }
        let stop_reason = self
            .stop_reason
            .as_deref()
            .map(StopReason::from_name)
            .ok_or_else(|| protocol("message_stop arrived without a stop_reason"))?;
        let mut content = Vec::with_capacity(self.blocks.len());
        for (index, block) in self.blocks.into_iter().enumerate() {
            let Some(block) = block else {
                return Err(protocol(format!("content block {index} never started")));
            };
            content.push(finish_block(block, index, &stop_reason)?);
        }
        Ok(Response {
            id: self.id,
            model: self.model,
            content,
            stop_reason,
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

fn finish_block(block: Partial, index: usize, stop: &StopReason) -> Result<ContentBlock> {
    let parse_input = |json: &str| match serde_json::from_str::<Value>(json) {
        Ok(value) => Ok(value),
        // The API documents that `max_tokens` can cut a tool call short; the caller
        // must retry with a larger limit. Keep the partial input as text so the
        // response is still faithful, instead of failing the call.
        Err(_) if *stop == StopReason::MaxTokens => Ok(Value::String(json.to_owned())),
        Err(e) => Err(protocol(format!(
            "the input of content block {index} is not JSON ({e}): {}",
            snippet(json)
        ))),
    };
    Ok(match block {
        Partial::Text(text) => ContentBlock::Text { text },
        Partial::ToolUse {
            id,
            name,
            input,
            json,
        } => ContentBlock::ToolUse {
            id,
            name,
            input: Json(if json.is_empty() {
                input
            } else {
                parse_input(&json)?
            }),
        },
        Partial::Thinking {
            thinking,
            signature,
        } => ContentBlock::Thinking {
            thinking,
            signature,
        },
        Partial::Redacted(data) => ContentBlock::RedactedThinking { data },
        Partial::Unknown {
            kind,
            mut raw,
            json,
        } => {
            if !json.is_empty()
                && let Value::Object(map) = &mut raw
            {
                map.insert("input".into(), parse_input(&json)?);
            }
            ContentBlock::Unknown {
                kind,
                raw: Json(raw),
            }
        }
    })
}

/// A whole (non-streamed) Messages response, as `POST /v1/messages` without `stream`
/// returns it.
pub(crate) fn parse_message(body: &[u8]) -> Result<Response> {
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        id: String,
        #[serde(default)]
        model: String,
        content: Vec<Value>,
        stop_reason: Option<String>,
        #[serde(default)]
        usage: WireUsage,
    }
    let message: Message = serde_json::from_slice(body).map_err(|e| {
        protocol(format!(
            "cannot read the message: {e}: {}",
            snippet(&String::from_utf8_lossy(body))
        ))
    })?;
    let mut accumulator = Accumulator {
        id: message.id,
        model: message.model,
        started: true,
        stopped: true,
        stop_reason: message.stop_reason,
        ..Accumulator::default()
    };
    message.usage.apply(&mut accumulator.usage);
    for (index, block) in message.content.into_iter().enumerate() {
        accumulator.start_block(BlockStart {
            index,
            content_block: block,
        })?;
    }
    accumulator.finish()
}
