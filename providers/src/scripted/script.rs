//! The script format of the [`Scripted`](super::Scripted) provider, and its checks.
//!
//! A script is JSON: either an object with `responses` (and optional `mode`, `model`)
//! or just the array of responses. Each response is one of:
//!
//! ```json
//! {
//!   "expect": {
//!     "tool_results": ["write"],
//!     "tool_error": false,
//!     "contains": "wrote 12 bytes",
//!     "system_contains": "coding agent",
//!     "tools": ["exec", "write"],
//!     "model": "claude-sonnet-4-5"
//!   },
//!   "content": [
//!     {"type": "thinking", "thinking": "Run it next.", "signature": "sig"},
//!     {"type": "text", "text": "Now I run it."},
//!     {"type": "tool_use", "id": "toolu_2", "name": "exec", "input": {"command": "sh hello.sh"}}
//!   ],
//!   "stop_reason": "tool_use",
//!   "usage": {"input_tokens": 900, "output_tokens": 40,
//!             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 800},
//!   "deltas": ["Now I ", "run it."],
//!   "delay_ms": 30
//! }
//! ```
//!
//! or an error the provider returns instead of answering:
//!
//! ```json
//! {"expect": {}, "error": {"status": 529, "type": "overloaded_error", "message": "Overloaded"}}
//! ```
//!
//! Fields:
//! - `content` (required unless `error`): blocks in Anthropic's JSON shape — `text`,
//!   `tool_use` (`id` optional: `toolu_<response>_<block>` is generated; `input`
//!   defaults to `{}`), `thinking` (`signature` optional), `redacted_thinking`.
//! - `stop_reason`: `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`,
//!   `pause_turn`, `refusal` or any other name; default `tool_use` when the content has
//!   a tool use, else `end_turn`.
//! - `usage`: token counts, each defaulting to 0.
//! - `deltas`: the text to stream, in pieces; they must join to the text blocks. By
//!   default each thinking block and each text block streams as one delta.
//! - `delay_ms`: a pause before each delta, to make streaming visible in demos.
//! - `expect`: checks on the request; a request that fails one gets
//!   [`Error::Script`] saying what was expected and found.
//!   `tool_results`: the last message carries results, in this order, for calls to
//!   these tools (names resolved through the conversation's `tool_use` ids);
//!   `tool_error`: whether any of those results is an error; `contains`: the last
//!   message's text or result content contains this; `system_contains`: so does the
//!   system prompt; `tools`: these tools are offered; `model`: the model asked for.
//! - `error`: `status` (an HTTP status: the error is [`Error::Api`],
//!   retryable as the APIs document it unless `retryable` says otherwise) or no
//!   `status` (a transport failure, retryable); `type` and `message` as a provider
//!   would send them.
//!
//! In text, `{{last_tool_result}}` is replaced by the content of the last tool result
//! in the request's last message, so a scripted report can quote what a real tool
//! produced. (Keep a placeholder within one delta.)
//!
//! `mode` is `sequential` (default: the n-th call gets the n-th response) or
//! `by_turn` (a call gets the response numbered by how many assistant messages the
//! request holds; stateless, so a process restarted mid-run continues at the right
//! response; error entries are not allowed in this mode).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::json::Json;
use crate::types::{ContentBlock, Request, Role, StopReason, Usage};

/// The placeholder replaced by the last tool result's content.
pub const LAST_TOOL_RESULT: &str = "{{last_tool_result}}";

/// How a call picks its response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The n-th call gets the n-th response.
    #[default]
    Sequential,
    /// A call gets the response numbered by the assistant messages in its request.
    ByTurn,
}

/// A whole script. See the [module docs](self) for the format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// How calls pick responses.
    #[serde(default)]
    pub mode: Mode,
    /// The model named in responses (default: the one the request asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The responses, in order.
    pub responses: Vec<Entry>,
}

/// One scripted response or failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Checks on the request.
    #[serde(default)]
    pub expect: Expect,
    /// The response's blocks.
    #[serde(default)]
    pub content: Vec<Block>,
    /// Why the model stopped (default from the content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The tokens reported.
    #[serde(default)]
    pub usage: ScriptUsage,
    /// The text to stream, in pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deltas: Option<Vec<String>>,
    /// A pause before each delta.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fail instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ScriptError>,
}

/// A content block in a script (Anthropic's JSON shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// The call id (generated when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool.
        name: String,
        /// The arguments.
        #[serde(default = "empty_object")]
        input: Value,
    },
    /// Visible reasoning.
    Thinking {
        /// The reasoning.
        thinking: String,
        /// Its signature.
        #[serde(default)]
        signature: String,
    },
    /// Encrypted reasoning.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Token counts of a scripted response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptUsage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// A scripted failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptError {
    /// The HTTP status; none for a transport failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The message.
    pub message: String,
    /// Overrides whether the error is retryable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// Checks a scripted response makes on the request it answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The last message carries results for calls to these tools, in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_results: Option<Vec<String>>,
    /// Whether any result in the last message is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_error: Option<bool>,
    /// The last message's text or result content contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// The system prompt contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_contains: Option<String>,
    /// These tools are offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// The model asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Entry {
    /// A response of one text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::default().then_text(text)
    }

    /// A response of one tool call (its id generated).
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Self::default().then_tool_use(name, input)
    }

    /// A failure: an API error with this status, type and message.
    pub fn error(status: u16, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: Some(ScriptError {
                status: Some(status),
                kind: Some(kind.into()),
                message: message.into(),
                retryable: None,
            }),
            ..Self::default()
        }
    }

    /// Appends a text block.
    pub fn then_text(mut self, text: impl Into<String>) -> Self {
        self.content.push(Block::Text { text: text.into() });
        self
    }

    /// Appends a tool call (its id generated).
    pub fn then_tool_use(mut self, name: impl Into<String>, input: Value) -> Self {
        self.content.push(Block::ToolUse {
            id: None,
            name: name.into(),
            input,
        });
        self
    }

    /// Expects the last message to carry results for calls to these tools, in order.
    pub fn expect_tool_results<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.expect.tool_results = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Expects the last message to contain this text.
    pub fn expect_contains(mut self, text: impl Into<String>) -> Self {
        self.expect.contains = Some(text.into());
        self
    }

    /// Sets the reported usage.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage.input_tokens = input_tokens;
        self.usage.output_tokens = output_tokens;
        self
    }

    /// Streams the text in these pieces, with `delay_ms` before each.
    pub fn deltas<S: Into<String>>(
        mut self,
        pieces: impl IntoIterator<Item = S>,
        delay_ms: u64,
    ) -> Self {
        self.deltas = Some(pieces.into_iter().map(Into::into).collect());
        self.delay_ms = delay_ms;
        self
    }
}

/// A checked entry, ready to play.
#[derive(Clone, Debug)]
pub(crate) enum Prepared {
    Answer {
        expect: Expect,
        content: Vec<ContentBlock>,
        stop_reason: StopReason,
        usage: Usage,
        deltas: Option<Vec<String>>,
        delay_ms: u64,
    },
    Fail {
        expect: Expect,
        error: ScriptError,
    },
}

impl Prepared {
    pub(crate) fn expect(&self) -> &Expect {
        match self {
            Prepared::Answer { expect, .. } | Prepared::Fail { expect, .. } => expect,
        }
    }
}

/// Checks a script and converts its entries.
pub(crate) fn prepare(script: &Script) -> Result<Vec<Prepared>> {
    let mut prepared = Vec::with_capacity(script.responses.len());
    for (index, entry) in script.responses.iter().enumerate() {
        let number = index + 1;
        let bad = |what: String| Error::Script(format!("response {number}: {what}"));
        if let Some(error) = &entry.error {
            if !entry.content.is_empty() || entry.deltas.is_some() {
                return Err(bad(
                    "has both `error` and `content`/`deltas`; give one".into()
                ));
            }
            if script.mode == Mode::ByTurn {
                return Err(bad(
                    "`error` entries cannot be used in `by_turn` mode (a turn has one response)"
                        .into(),
                ));
            }
            prepared.push(Prepared::Fail {
                expect: entry.expect.clone(),
                error: error.clone(),
            });
            continue;
        }
        if entry.content.is_empty() {
            return Err(bad("has no `content` (and no `error`)".into()));
        }
        let mut content = Vec::with_capacity(entry.content.len());
        for (position, block) in entry.content.iter().enumerate() {
            content.push(match block {
                Block::Text { text } => ContentBlock::Text { text: text.clone() },
                Block::ToolUse { id, name, input } => {
                    if name.is_empty() {
                        return Err(bad(format!(
                            "block {} is a tool_use without a name",
                            position + 1
                        )));
                    }
                    ContentBlock::ToolUse {
                        id: id
                            .clone()
                            .unwrap_or_else(|| format!("toolu_{number}_{position}")),
                        name: name.clone(),
                        input: Json(input.clone()),
                    }
                }
                Block::Thinking {
                    thinking,
                    signature,
                } => ContentBlock::Thinking {
                    thinking: thinking.clone(),
                    signature: signature.clone(),
                },
                Block::RedactedThinking { data } => {
                    ContentBlock::RedactedThinking { data: data.clone() }
                }
            });
        }
        if let Some(deltas) = &entry.deltas {
            let text: String = content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if deltas.concat() != text {
                return Err(bad(format!(
                    "`deltas` join to {:?} but the text blocks say {text:?}",
                    deltas.concat()
                )));
            }
        }
        let has_tool_use = content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }));
        let stop_reason = match entry.stop_reason.as_deref() {
            Some(name) => StopReason::from_name(name),
            None if has_tool_use => StopReason::ToolUse,
            None => StopReason::EndTurn,
        };
        let u = entry.usage;
        prepared.push(Prepared::Answer {
            expect: entry.expect.clone(),
            content,
            stop_reason,
            usage: Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
            },
            deltas: entry.deltas.clone(),
            delay_ms: entry.delay_ms,
        });
    }
    Ok(prepared)
}

/// Checks `request` against `expect`; the error says what differed.
pub(crate) fn check(expect: &Expect, request: &Request) -> std::result::Result<(), String> {
    let last = request.messages.last();
    let results: Vec<(&str, &str, bool)> = last
        .filter(|m| m.role == Role::User)
        .map(|m| {
            m.content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => Some((tool_use_id.as_str(), content.as_str(), *is_error)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(names) = &expect.tool_results {
        let found: Vec<String> = results
            .iter()
            .map(|(id, _, _)| {
                tool_name(request, id).unwrap_or_else(|| format!("<unknown id {id}>"))
            })
            .collect();
        if &found != names {
            return Err(format!(
                "the last message should carry results for {names:?}, but it carries results for {found:?}"
            ));
        }
    }
    if let Some(want) = expect.tool_error {
        let any = results.iter().any(|(_, _, e)| *e);
        if any != want {
            return Err(if want {
                "a tool result in the last message should be an error, but none is".into()
            } else {
                "no tool result in the last message should be an error, but one is".into()
            });
        }
    }
    if let Some(needle) = &expect.contains {
        let text = last.map(message_text).unwrap_or_default();
        if !text.contains(needle.as_str()) {
            return Err(format!(
                "the last message should contain {needle:?}, but it reads {:?}",
                crate::http::snippet(&text)
            ));
        }
    }
    if let Some(needle) = &expect.system_contains {
        let system = request.system.as_deref().unwrap_or_default();
        if !system.contains(needle.as_str()) {
            return Err(format!("the system prompt should contain {needle:?}"));
        }
    }
    if let Some(tools) = &expect.tools {
        let offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        if let Some(missing) = tools.iter().find(|t| !offered.contains(&t.as_str())) {
            return Err(format!(
                "tool {missing:?} should be offered, but the request offers {offered:?}"
            ));
        }
    }
    if let Some(model) = &expect.model
        && model != &request.model
    {
        return Err(format!(
            "the model should be {model:?}, but the request asks for {:?}",
            request.model
        ));
    }
    Ok(())
}

/// The name of the tool the conversation called with this id.
fn tool_name(request: &Request, id: &str) -> Option<String> {
    request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .find_map(|b| match b {
            ContentBlock::ToolUse { id: call, name, .. } if call == id => Some(name.clone()),
            _ => None,
        })
}

/// A message's text and tool-result contents, joined by newlines.
fn message_text(message: &crate::types::Message) -> String {
    message
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            ContentBlock::ToolResult { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The content of the last tool result in the request's last message, for
/// [`LAST_TOOL_RESULT`].
pub(crate) fn last_tool_result(request: &Request) -> Option<&str> {
    request
        .messages
        .last()?
        .content
        .iter()
        .rev()
        .find_map(|b| match b {
            ContentBlock::ToolResult { content, .. } => Some(content.as_str()),
            _ => None,
        })
}
