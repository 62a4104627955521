//! The provider-neutral conversation model: requests, messages, content blocks,
//! responses and usage. Every provider maps its wire format to and from these.
//!
//! These types are recorded in Keel's event log (through postcard), so they avoid
//! serde features a non-self-describing codec cannot carry (internally tagged enums,
//! `flatten`, skipped fields). Arbitrary JSON is a [`Json`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::json::Json;

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The person, or tool results going back to the model.
    User,
    /// The model.
    Assistant,
}

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        /// The provider's id for the call, echoed back in the result.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as the model produced them.
        input: Json,
    },
    /// The result of a tool call, going back to the model.
    ToolResult {
        /// The `id` of the matching [`ContentBlock::ToolUse`].
        tool_use_id: String,
        /// The result text.
        content: String,
        /// Whether the call failed.
        is_error: bool,
    },
    /// The model's visible reasoning, with the signature that must be sent back unchanged.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The provider's signature over it.
        signature: String,
    },
    /// Reasoning the provider encrypted; sent back unchanged.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// A block type this version of Keel does not know, carried as the provider sent it.
    Unknown {
        /// The block's `type`.
        kind: String,
        /// The whole block as JSON.
        raw: Json,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message of plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![ContentBlock::text(text)],
        }
    }

    /// An assistant message of plain text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: vec![ContentBlock::text(text)],
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The name the model uses.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON schema of its arguments.
    pub input_schema: Json,
}

/// Extended thinking settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThinkingConfig {
    /// Tokens the model may spend thinking.
    pub budget_tokens: u32,
}

/// One call to a model, in provider-neutral form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The model's name at the provider.
    pub model: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation so far. Shared, not copied: a runtime appends to its own
    /// conversation between calls and hands each call a reference to it.
    pub messages: Arc<Vec<Message>>,
    /// The tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// The most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Sequences that end generation.
    pub stop_sequences: Vec<String>,
    /// Extended thinking, if enabled.
    pub thinking: Option<ThinkingConfig>,
}

impl Request {
    /// A request with defaults: no system prompt, no tools, 4096 max tokens.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            system: None,
            messages: Arc::new(messages),
            tools: Vec::new(),
            max_tokens: 4096,
            temperature: None,
            stop_sequences: Vec::new(),
            thinking: None,
        }
    }

    /// A stable digest of the request (BLAKE3 of its canonical JSON), recorded in the
    /// log instead of the request itself and compared on replay.
    pub fn digest(&self) -> String {
        let text = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&text).to_hex().to_string()
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopReason {
    /// It finished its turn.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit `max_tokens`.
    MaxTokens,
    /// It produced a stop sequence.
    StopSequence,
    /// The provider paused a long turn; send the response back to continue.
    PauseTurn,
    /// It declined to answer.
    Refusal,
    /// A reason this version of Keel does not know, as the provider named it.
    Other(String),
}

impl StopReason {
    /// The reason named as Anthropic's API (and Keel's scripts) name it: `end_turn`,
    /// `tool_use`, `max_tokens`, `stop_sequence`, `pause_turn`, `refusal`; any other
    /// name is [`StopReason::Other`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            other => StopReason::Other(other.to_owned()),
        }
    }

    /// The name [`StopReason::from_name`] reads.
    pub fn name(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Refusal => "refusal",
            StopReason::Other(name) => name,
        }
    }
}

/// Tokens spent by one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the prompt cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    /// Adds another call's usage.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// A complete response from a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The provider's id for the response.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// What it said, in order.
    pub content: Vec<ContentBlock>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// What it cost in tokens.
    pub usage: Usage,
}

impl Response {
    /// The text blocks joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// The tool calls, in the order the model made them: `(id, name, input)`.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Json)> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}

/// A piece of a response as it streams in. Ephemeral: shown live, never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delta {
    /// More text.
    Text(String),
    /// More visible reasoning.
    Thinking(String),
    /// The attempt streaming so far failed (a transient fault) and the provider will
    /// send the whole request again after `delay_ms`. Every `Text` and `Thinking` delta
    /// received since the call began (or since the previous `Retry`) belonged to the
    /// failed attempt: discard it; the next attempt streams from its beginning.
    Retry {
        /// The attempt about to start (2 for the first retry).
        attempt: u32,
        /// How long the provider waits before it.
        delay_ms: u64,
        /// The fault, for display.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_round_trips_through_postcard() {
        let response = Response {
            id: "msg_1".into(),
            model: "m".into(),
            content: vec![
                ContentBlock::text("hi"),
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "exec".into(),
                    input: Json(serde_json::json!({"command": "ls"})),
                },
                ContentBlock::Unknown {
                    kind: "server_tool_use".into(),
                    raw: Json(serde_json::json!({"type": "server_tool_use"})),
                },
            ],
            stop_reason: StopReason::Other("new_reason".into()),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        let bytes = postcard::to_allocvec(&response).unwrap();
        assert_eq!(postcard::from_bytes::<Response>(&bytes).unwrap(), response);
    }

    #[test]
    fn digest_changes_with_the_system_prompt() {
        let mut a = Request::new("m", vec![Message::user("hi")]);
        let b = a.clone();
        assert_eq!(a.digest(), b.digest());
        a.system = Some("other".into());
        assert_ne!(a.digest(), b.digest());
    }
}
