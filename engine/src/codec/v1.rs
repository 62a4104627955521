//! Format 1, frozen: a copy of the serde shapes round 1 wrote with postcard (format
//! byte 1), and their conversion to today's [`Event`]. Never edit the types here:
//! postcard is positional, so these declarations *are* the format. Records written
//! by round 1 are read through this module forever.
//!
//! The conversation digest of runs first recorded in this format is computed over
//! the postcard encoding of these types too ([`content_digest_bytes`],
//! [`text_digest_bytes`]), so their recorded request digests still match on replay.

use keel_providers::{ContentBlock, Json, Response, StopReason, Usage};
use keel_storage::{BlobHash, RunId, Seq, Timestamp};
use keel_tools::{AllowRule, ApprovalForm, Field, FieldKind, FormContext};
use serde::{Deserialize, Serialize};

use crate::event::{
    AgentSnapshot, DigestScheme, Event, FinishKind, Resolution, RunStarted, Stamped, Text,
};
use crate::ids::{CallId, Digest, StepKey, Turn};

#[derive(Deserialize)]
pub(crate) struct V1Stamped {
    at: u64,
    event: V1Event,
}

/// A run id as round 1 wrote it: `uuid`'s binary serde form, 16 bytes.
struct V1RunId([u8; 16]);

impl<'de> Deserialize<'de> for V1RunId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = V1RunId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("16 bytes of a run id")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<V1RunId, E> {
                <[u8; 16]>::try_from(v)
                    .map(V1RunId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[derive(Deserialize)]
struct V1AgentSnapshot {
    id: String,
    provider: String,
    model: String,
    system_prompt: String,
    tools: Vec<String>,
    tools_digest: String,
    max_tokens: u32,
    stop_conditions: Vec<String>,
    fingerprint: String,
}

#[derive(Deserialize)]
struct V1RunStarted {
    agent: V1AgentSnapshot,
    input: String,
    parent: Option<(V1RunId, u64)>,
}

#[derive(Deserialize)]
struct V1CallId {
    turn: u32,
    index: u32,
}

#[derive(Deserialize)]
enum V1Event {
    RunStarted(Box<V1RunStarted>),
    LlmRequested {
        turn: u32,
        request_digest: [u8; 32],
    },
    LlmResponded {
        turn: u32,
        response: Box<V1Response>,
        latency_ms: u64,
    },
    ApprovalRequested {
        call: V1CallId,
        step: String,
        form: Box<V1Form>,
    },
    ApprovalResolved {
        call: V1CallId,
        step: String,
        resolution: V1Resolution,
    },
    ToolStarted {
        call: V1CallId,
        attempt: u32,
    },
    ToolFinished {
        call: V1CallId,
        output: V1Text,
        is_error: bool,
        kind: V1FinishKind,
        duration_ms: u64,
    },
    RunCompleted {
        output: String,
        stopped_by: Option<String>,
    },
    RunFailed {
        error: String,
        code: Option<String>,
    },
    RunCancelled {
        reason: String,
    },
}

#[derive(Deserialize)]
struct V1Response {
    id: String,
    model: String,
    content: Vec<V1Block>,
    stop_reason: V1StopReason,
    usage: V1Usage,
}

/// Arbitrary JSON travelled as JSON text.
#[derive(Serialize, Deserialize)]
enum V1Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: String,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    Unknown {
        kind: String,
        raw: String,
    },
}

#[derive(Deserialize)]
enum V1StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    PauseTurn,
    Refusal,
    Other(String),
}

#[derive(Deserialize)]
struct V1Usage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

#[derive(Deserialize)]
struct V1Form {
    title: String,
    tool: String,
    context: V1Context,
    fields: Vec<V1Field>,
    digest: String,
}

#[derive(Deserialize)]
enum V1Context {
    Command {
        command: String,
        cwd: String,
        reason: String,
        matched_rule: Option<String>,
    },
    Write {
        path: String,
        content: String,
        overwrites: bool,
    },
    Edit {
        path: String,
        diff: String,
    },
    Question {
        question: String,
    },
    Call {
        args: String,
    },
}

#[derive(Deserialize)]
struct V1Field {
    name: String,
    label: String,
    kind: V1FieldKind,
    required: bool,
}

#[derive(Deserialize)]
enum V1FieldKind {
    Text,
    Number,
    Boolean,
    Select { options: Vec<String> },
}

#[derive(Deserialize)]
enum V1Rule {
    Tool { tool: String },
    ExecPrefix { argv: Vec<String> },
    Custom { tool: String, rule: String },
}

#[derive(Deserialize)]
struct V1Resolution {
    approved: bool,
    note: Option<String>,
    remember: Option<V1Rule>,
    answer: Option<String>,
    by: String,
}

#[derive(Serialize, Deserialize)]
enum V1Text {
    Inline(String),
    Blob { hash: [u8; 32], len: u64 },
}

#[derive(Deserialize)]
enum V1FinishKind {
    Ran,
    Denied,
    Refused,
    Interrupted,
    InvalidCall,
    Answered,
    Cancelled,
}

/// Decodes the body of a format-1 record (after the format byte). `Err` carries
/// postcard's error; the caller names the run and seq.
pub(crate) fn decode(body: &[u8]) -> Result<Stamped, V1Error> {
    let (stamped, rest) = postcard::take_from_bytes::<V1Stamped>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => V1Error::Truncated,
        e => V1Error::Corrupt(e.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(V1Error::Corrupt(format!(
            "{} unexpected bytes after the event",
            rest.len()
        )));
    }
    stamped.into_current()
}

/// Why a format-1 record could not be read.
pub(crate) enum V1Error {
    Truncated,
    Corrupt(String),
}

fn json(text: String) -> Result<Json, V1Error> {
    serde_json::from_str(&text)
        .map(Json)
        .map_err(|e| V1Error::Corrupt(format!("invalid JSON text: {e}")))
}

impl V1Stamped {
    fn into_current(self) -> Result<Stamped, V1Error> {
        let call = |c: V1CallId| CallId::new(Turn(c.turn), c.index);
        let event = match self.event {
            V1Event::RunStarted(s) => {
                let s = *s;
                let a = s.agent;
                Event::RunStarted(Box::new(RunStarted {
                    agent: AgentSnapshot {
                        id: a.id,
                        provider: a.provider,
                        model: a.model,
                        system_prompt: a.system_prompt,
                        tools: a.tools,
                        tools_digest: a.tools_digest,
                        max_tokens: a.max_tokens,
                        stop_conditions: a.stop_conditions,
                        fingerprint: a.fingerprint,
                        recovery: Vec::new(),
                    },
                    input: s.input,
                    parent: s
                        .parent
                        .map(|(run, at)| (RunId::from_bytes(run.0), Seq(at))),
                    digest_scheme: DigestScheme::Postcard1,
                    definition: None,
                }))
            }
            V1Event::LlmRequested {
                turn,
                request_digest,
            } => Event::LlmRequested {
                turn: Turn(turn),
                request_digest: Digest(request_digest),
            },
            V1Event::LlmResponded {
                turn,
                response,
                latency_ms,
            } => Event::LlmResponded {
                turn: Turn(turn),
                response: Box::new(response.into_current()?),
                latency_ms,
            },
            V1Event::ApprovalRequested {
                call: c,
                step,
                form,
            } => Event::ApprovalRequested {
                call: call(c),
                step: StepKey(step),
                form: Box::new(form.into_current()),
            },
            V1Event::ApprovalResolved {
                call: c,
                step,
                resolution: r,
            } => Event::ApprovalResolved {
                call: call(c),
                step: StepKey(step),
                resolution: Resolution {
                    approved: r.approved,
                    note: r.note,
                    remember: r.remember.map(|rule| match rule {
                        V1Rule::Tool { tool } => AllowRule::Tool { tool },
                        V1Rule::ExecPrefix { argv } => AllowRule::ExecPrefix { argv },
                        V1Rule::Custom { tool, rule } => AllowRule::Custom { tool, rule },
                    }),
                    answer: r.answer,
                    by: r.by,
                },
            },
            V1Event::ToolStarted { call: c, attempt } => Event::ToolStarted {
                call: call(c),
                attempt,
            },
            V1Event::ToolFinished {
                call: c,
                output,
                is_error,
                kind,
                duration_ms,
            } => Event::ToolFinished {
                call: call(c),
                output: match output {
                    V1Text::Inline(s) => Text::Inline(s),
                    V1Text::Blob { hash, len } => Text::Blob {
                        hash: BlobHash(hash),
                        len,
                    },
                },
                is_error,
                kind: match kind {
                    V1FinishKind::Ran => FinishKind::Ran,
                    V1FinishKind::Denied => FinishKind::Denied,
                    V1FinishKind::Refused => FinishKind::Refused,
                    V1FinishKind::Interrupted => FinishKind::Interrupted,
                    V1FinishKind::InvalidCall => FinishKind::InvalidCall,
                    V1FinishKind::Answered => FinishKind::Answered,
                    V1FinishKind::Cancelled => FinishKind::Cancelled,
                },
                duration_ms,
            },
            V1Event::RunCompleted { output, stopped_by } => {
                Event::RunCompleted { output, stopped_by }
            }
            V1Event::RunFailed { error, code } => Event::RunFailed { error, code },
            V1Event::RunCancelled { reason } => Event::RunCancelled { reason },
        };
        Ok(Stamped {
            at: Timestamp(self.at),
            event,
        })
    }
}

impl V1Response {
    fn into_current(self) -> Result<Response, V1Error> {
        let content = self
            .content
            .into_iter()
            .map(|b| {
                Ok(match b {
                    V1Block::Text { text } => ContentBlock::Text { text },
                    V1Block::ToolUse { id, name, input } => ContentBlock::ToolUse {
                        id,
                        name,
                        input: json(input)?,
                    },
                    V1Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    },
                    V1Block::Thinking {
                        thinking,
                        signature,
                    } => ContentBlock::Thinking {
                        thinking,
                        signature,
                    },
                    V1Block::RedactedThinking { data } => ContentBlock::RedactedThinking { data },
                    V1Block::Unknown { kind, raw } => ContentBlock::Unknown {
                        kind,
                        raw: json(raw)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, V1Error>>()?;
        Ok(Response {
            id: self.id,
            model: self.model,
            content,
            stop_reason: match self.stop_reason {
                V1StopReason::EndTurn => StopReason::EndTurn,
                V1StopReason::ToolUse => StopReason::ToolUse,
                V1StopReason::MaxTokens => StopReason::MaxTokens,
                V1StopReason::StopSequence => StopReason::StopSequence,
                V1StopReason::PauseTurn => StopReason::PauseTurn,
                V1StopReason::Refusal => StopReason::Refusal,
                V1StopReason::Other(name) => StopReason::Other(name),
            },
            usage: Usage {
                input_tokens: self.usage.input_tokens,
                output_tokens: self.usage.output_tokens,
                cache_creation_input_tokens: self.usage.cache_creation_input_tokens,
                cache_read_input_tokens: self.usage.cache_read_input_tokens,
            },
        })
    }
}

impl V1Form {
    fn into_current(self) -> ApprovalForm {
        ApprovalForm {
            title: self.title,
            tool: self.tool,
            context: match self.context {
                V1Context::Command {
                    command,
                    cwd,
                    reason,
                    matched_rule,
                } => FormContext::Command {
                    command,
                    cwd,
                    reason,
                    matched_rule,
                },
                V1Context::Write {
                    path,
                    content,
                    overwrites,
                } => FormContext::Write {
                    path,
                    content,
                    overwrites,
                },
                V1Context::Edit { path, diff } => FormContext::Edit { path, diff },
                V1Context::Question { question } => FormContext::Question { question },
                V1Context::Call { args } => FormContext::Call { args },
            },
            fields: self
                .fields
                .into_iter()
                .map(|f| Field {
                    name: f.name,
                    label: f.label,
                    kind: match f.kind {
                        V1FieldKind::Text => FieldKind::Text,
                        V1FieldKind::Number => FieldKind::Number,
                        V1FieldKind::Boolean => FieldKind::Boolean,
                        V1FieldKind::Select { options } => FieldKind::Select { options },
                    },
                    required: f.required,
                })
                .collect(),
            digest: self.digest,
        }
    }
}

/// The bytes round 1 hashed for a response's content: postcard of format 1's blocks.
pub(crate) fn content_digest_bytes(content: &[ContentBlock], out: &mut impl std::io::Write) {
    let blocks: Vec<V1Block> = content
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text } => V1Block::Text { text: text.clone() },
            ContentBlock::ToolUse { id, name, input } => V1Block::ToolUse {
                id: id.clone(),
                name: name.clone(),
                input: input.to_text(),
            },
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => V1Block::ToolResult {
                tool_use_id: tool_use_id.clone(),
                content: content.clone(),
                is_error: *is_error,
            },
            ContentBlock::Thinking {
                thinking,
                signature,
            } => V1Block::Thinking {
                thinking: thinking.clone(),
                signature: signature.clone(),
            },
            ContentBlock::RedactedThinking { data } => {
                V1Block::RedactedThinking { data: data.clone() }
            }
            ContentBlock::Unknown { kind, raw } => V1Block::Unknown {
                kind: kind.clone(),
                raw: raw.to_text(),
            },
        })
        .collect();
    let _ = postcard::to_io(&blocks, out);
}

/// The bytes round 1 hashed for a tool's output: postcard of format 1's text.
pub(crate) fn text_digest_bytes(text: &Text, out: &mut impl std::io::Write) {
    let v1 = match text {
        Text::Inline(s) => V1Text::Inline(s.clone()),
        Text::Blob { hash, len } => V1Text::Blob {
            hash: hash.0,
            len: *len,
        },
    };
    let _ = postcard::to_io(&v1, out);
}
