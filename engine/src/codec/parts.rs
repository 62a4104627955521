//! The nested shapes of format 2: responses and their blocks, forms, answers and
//! rules, texts. Arbitrary JSON is stored as JSON text.

use keel_providers::{ContentBlock, Json, Response, StopReason, Usage};
use keel_storage::BlobHash;
use keel_tools::{AllowRule, ApprovalForm, Field, FieldKind, FormContext};

use super::convert::{Invalid, Result};
use super::records::*;
use crate::event::{Resolution, Text};
use crate::ids::{CallId, Turn};

/// A part the record must have.
pub(crate) fn need<T>(part: Option<T>, what: &str) -> Result<T> {
    part.ok_or_else(|| Invalid::Corrupt(format!("the record has no {what}")))
}

pub(crate) fn digest32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| Invalid::Corrupt(format!("a {what} of {} bytes, not 32", bytes.len())))
}

fn json(text: &str) -> Result<Json> {
    serde_json::from_str(text)
        .map(Json)
        .map_err(|e| Invalid::Corrupt(format!("invalid JSON text: {e}")))
}

pub(crate) fn call_to(call: CallId) -> CallRecord {
    CallRecord {
        turn: call.turn.0,
        index: call.index,
    }
}

pub(crate) fn call_from(call: Option<CallRecord>) -> Result<CallId> {
    let c = need(call, "call id")?;
    Ok(CallId::new(Turn(c.turn), c.index))
}

pub(crate) fn response_to(r: &Response) -> ResponseRecord {
    ResponseRecord {
        id: r.id.clone(),
        model: r.model.clone(),
        content: r.content.iter().map(block_to).collect(),
        stop_reason: r.stop_reason.name().to_owned(),
        usage: Some(usage_to(&r.usage)),
    }
}

pub(crate) fn response_from(r: ResponseRecord) -> Result<Response> {
    Ok(Response {
        id: r.id,
        model: r.model,
        content: r
            .content
            .into_iter()
            .map(block_from)
            .collect::<Result<_>>()?,
        stop_reason: StopReason::from_name(&r.stop_reason),
        usage: r.usage.map(usage_from).unwrap_or_default(),
    })
}

fn usage_to(u: &Usage) -> UsageRecord {
    UsageRecord {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_creation_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
    }
}

fn usage_from(u: UsageRecord) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_creation_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
    }
}

pub(crate) fn block_to(b: &ContentBlock) -> ContentBlockRecord {
    let block = match b {
        ContentBlock::Text { text } => BlockRecord::Text(TextBlockRecord { text: text.clone() }),
        ContentBlock::ToolUse { id, name, input } => BlockRecord::ToolUse(ToolUseRecord {
            id: id.clone(),
            name: name.clone(),
            input_json: input.to_text(),
        }),
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => BlockRecord::ToolResult(ToolResultRecord {
            tool_use_id: tool_use_id.clone(),
            content: content.clone(),
            is_error: *is_error,
        }),
        ContentBlock::Thinking {
            thinking,
            signature,
        } => BlockRecord::Thinking(ThinkingRecord {
            thinking: thinking.clone(),
            signature: signature.clone(),
        }),
        ContentBlock::RedactedThinking { data } => {
            BlockRecord::RedactedThinking(RedactedThinkingRecord { data: data.clone() })
        }
        ContentBlock::Unknown { kind, raw } => BlockRecord::Unknown(UnknownBlockRecord {
            kind: kind.clone(),
            raw_json: raw.to_text(),
        }),
    };
    ContentBlockRecord { block: Some(block) }
}

fn block_from(b: ContentBlockRecord) -> Result<ContentBlock> {
    let Some(block) = b.block else {
        return Err(Invalid::Newer(
            "a content block of a kind this build does not know".into(),
        ));
    };
    Ok(match block {
        BlockRecord::Text(t) => ContentBlock::Text { text: t.text },
        BlockRecord::ToolUse(t) => ContentBlock::ToolUse {
            input: json(&t.input_json)?,
            id: t.id,
            name: t.name,
        },
        BlockRecord::ToolResult(t) => ContentBlock::ToolResult {
            tool_use_id: t.tool_use_id,
            content: t.content,
            is_error: t.is_error,
        },
        BlockRecord::Thinking(t) => ContentBlock::Thinking {
            thinking: t.thinking,
            signature: t.signature,
        },
        BlockRecord::RedactedThinking(t) => ContentBlock::RedactedThinking { data: t.data },
        BlockRecord::Unknown(t) => ContentBlock::Unknown {
            raw: json(&t.raw_json)?,
            kind: t.kind,
        },
    })
}

pub(crate) fn form_to(f: &ApprovalForm) -> FormRecord {
    let context = match &f.context {
        FormContext::Command {
            command,
            cwd,
            reason,
            matched_rule,
        } => ContextRecord::Command(CommandContextRecord {
            command: command.clone(),
            cwd: cwd.clone(),
            reason: reason.clone(),
            matched_rule: matched_rule.clone(),
        }),
        FormContext::Write {
            path,
            content,
            overwrites,
        } => ContextRecord::Write(WriteContextRecord {
            path: path.clone(),
            content: content.clone(),
            overwrites: *overwrites,
        }),
        FormContext::Edit { path, diff } => ContextRecord::Edit(EditContextRecord {
            path: path.clone(),
            diff: diff.clone(),
        }),
        FormContext::Question { question } => ContextRecord::Question(QuestionContextRecord {
            question: question.clone(),
        }),
        FormContext::Call { args } => ContextRecord::Call(CallContextRecord { args: args.clone() }),
    };
    FormRecord {
        title: f.title.clone(),
        tool: f.tool.clone(),
        context: Some(FormContextRecord {
            context: Some(context),
        }),
        fields: f.fields.iter().map(field_to).collect(),
        digest: f.digest.clone(),
    }
}

pub(crate) fn form_from(f: FormRecord) -> Result<ApprovalForm> {
    let context = need(f.context, "form context")?.context.ok_or_else(|| {
        Invalid::Newer("a form context of a kind this build does not know".into())
    })?;
    Ok(ApprovalForm {
        title: f.title,
        tool: f.tool,
        context: match context {
            ContextRecord::Command(c) => FormContext::Command {
                command: c.command,
                cwd: c.cwd,
                reason: c.reason,
                matched_rule: c.matched_rule,
            },
            ContextRecord::Write(c) => FormContext::Write {
                path: c.path,
                content: c.content,
                overwrites: c.overwrites,
            },
            ContextRecord::Edit(c) => FormContext::Edit {
                path: c.path,
                diff: c.diff,
            },
            ContextRecord::Question(c) => FormContext::Question {
                question: c.question,
            },
            ContextRecord::Call(c) => FormContext::Call { args: c.args },
        },
        fields: f
            .fields
            .into_iter()
            .map(field_from)
            .collect::<Result<_>>()?,
        digest: f.digest,
    })
}

fn field_to(f: &Field) -> FieldRecord {
    let (kind, options) = match &f.kind {
        FieldKind::Text => (1, Vec::new()),
        FieldKind::Number => (2, Vec::new()),
        FieldKind::Boolean => (3, Vec::new()),
        FieldKind::Select { options } => (4, options.clone()),
    };
    FieldRecord {
        name: f.name.clone(),
        label: f.label.clone(),
        kind,
        options,
        required: f.required,
    }
}

fn field_from(f: FieldRecord) -> Result<Field> {
    let kind = match f.kind {
        1 => FieldKind::Text,
        2 => FieldKind::Number,
        3 => FieldKind::Boolean,
        4 => FieldKind::Select { options: f.options },
        0 => return Err(Invalid::Corrupt("a form field without its kind".into())),
        n => return Err(Invalid::Newer(format!("form field kind {n}"))),
    };
    Ok(Field {
        name: f.name,
        label: f.label,
        kind,
        required: f.required,
    })
}

pub(crate) fn resolution_to(r: &Resolution) -> ResolutionRecord {
    ResolutionRecord {
        approved: r.approved,
        note: r.note.clone(),
        remember: r.remember.as_ref().map(rule_to),
        answer: r.answer.clone(),
        by: r.by.clone(),
    }
}

pub(crate) fn resolution_from(r: ResolutionRecord) -> Result<Resolution> {
    Ok(Resolution {
        approved: r.approved,
        note: r.note,
        remember: r.remember.map(rule_from).transpose()?,
        answer: r.answer,
        by: r.by,
    })
}

fn rule_to(rule: &AllowRule) -> AllowRuleRecord {
    let rule = match rule {
        AllowRule::Tool { tool } => RuleRecord::Tool(ToolRuleRecord { tool: tool.clone() }),
        AllowRule::ExecPrefix { argv } => {
            RuleRecord::ExecPrefix(ExecPrefixRuleRecord { argv: argv.clone() })
        }
        AllowRule::Custom { tool, rule } => RuleRecord::Custom(CustomRuleRecord {
            tool: tool.clone(),
            rule: rule.clone(),
        }),
    };
    AllowRuleRecord { rule: Some(rule) }
}

fn rule_from(rule: AllowRuleRecord) -> Result<AllowRule> {
    match rule.rule {
        Some(RuleRecord::Tool(r)) => Ok(AllowRule::Tool { tool: r.tool }),
        Some(RuleRecord::ExecPrefix(r)) => Ok(AllowRule::ExecPrefix { argv: r.argv }),
        Some(RuleRecord::Custom(r)) => Ok(AllowRule::Custom {
            tool: r.tool,
            rule: r.rule,
        }),
        None => Err(Invalid::Newer(
            "an allow rule of a kind this build does not know".into(),
        )),
    }
}

pub(crate) fn text_to(t: &Text) -> TextRecord {
    TextRecord {
        text: Some(match t {
            Text::Inline(s) => TextKind::Inline(s.clone()),
            Text::Blob { hash, len } => TextKind::Blob(BlobRefRecord {
                hash: hash.0.to_vec(),
                len: *len,
            }),
        }),
    }
}

pub(crate) fn text_from(t: TextRecord) -> Result<Text> {
    match t.text {
        Some(TextKind::Inline(s)) => Ok(Text::Inline(s)),
        Some(TextKind::Blob(b)) => Ok(Text::Blob {
            hash: BlobHash(digest32(&b.hash, "blob hash")?),
            len: b.len,
        }),
        // An empty inline string is the oneof's default: prost still writes a set
        // oneof field, so `None` means a kind this build does not know.
        None => Err(Invalid::Newer(
            "a text stored in a way this build does not know".into(),
        )),
    }
}
