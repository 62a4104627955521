//! What the conversation digest of a format-2 run covers: each part's kind and each
//! of its fields that is not empty, named by the tag its record gives it
//! (`records.rs`), hashed in place without building the record. A field added later
//! is empty in older content, so older digests stay what they were — the same rule
//! as the records themselves.

use keel_providers::ContentBlock;

use crate::event::Text;

fn field(h: &mut blake3::Hasher, tag: u8, value: &[u8]) {
    if !value.is_empty() {
        h.update(&[tag]);
        h.update(&(value.len() as u64).to_le_bytes());
        h.update(value);
    }
}

fn flag(h: &mut blake3::Hasher, tag: u8, value: bool) {
    if value {
        h.update(&[tag, 1]);
    }
}

/// A response's content, block by block (tags of `BlockRecord` and its messages).
pub(crate) fn content(content: &[ContentBlock], h: &mut blake3::Hasher) {
    for block in content {
        match block {
            ContentBlock::Text { text } => {
                h.update(&[1]);
                field(h, 1, text.as_bytes());
            }
            ContentBlock::ToolUse { id, name, input } => {
                h.update(&[2]);
                field(h, 1, id.as_bytes());
                field(h, 2, name.as_bytes());
                field(h, 3, input.to_text().as_bytes());
            }
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                h.update(&[3]);
                field(h, 1, tool_use_id.as_bytes());
                field(h, 2, content.as_bytes());
                flag(h, 3, *is_error);
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                h.update(&[4]);
                field(h, 1, thinking.as_bytes());
                field(h, 2, signature.as_bytes());
            }
            ContentBlock::RedactedThinking { data } => {
                h.update(&[5]);
                field(h, 1, data.as_bytes());
            }
            ContentBlock::Unknown { kind, raw } => {
                h.update(&[6]);
                field(h, 1, kind.as_bytes());
                field(h, 2, raw.to_text().as_bytes());
            }
        }
        // Field tags start at 1: 0 ends the block.
        h.update(&[0]);
    }
}

/// A tool's output (tags of `TextKind` and `BlobRefRecord`).
pub(crate) fn text(text: &Text, h: &mut blake3::Hasher) {
    match text {
        Text::Inline(s) => {
            h.update(&[1]);
            field(h, 1, s.as_bytes());
        }
        Text::Blob { hash, len } => {
            h.update(&[2]);
            field(h, 1, &hash.0);
            h.update(&[2]);
            h.update(&len.to_le_bytes());
        }
    }
    h.update(&[0]);
}
