//! `write`: creates or replaces a whole file, atomically.
//!
//! Parents are created as needed; the content goes to a temporary file in the same
//! directory and is renamed over the name, so readers see the old file or the new
//! one, never half of it (see `workspace` for why this also keeps
//! hard links and symlinks from being written through).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use super::tracker::Fingerprint;
use crate::approval::{AllowRule, FormContext};
use crate::tool::{Approval, CallContext, Recovery, Tool, ToolOutput, ToolSpec};

/// Characters of new content shown on an approval form; the approval still covers
/// the whole content (the digest is of the full arguments).
const FORM_CONTENT_CHARS: usize = 20_000;

/// The `write` tool.
#[derive(Debug, Clone)]
pub struct WriteTool {
    sandbox: Arc<Sandbox>,
}

impl WriteTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// Arguments of `write`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The file.
    pub path: String,
    /// Its whole new content.
    pub content: String,
}

impl Tool for WriteTool {
    type Args = WriteArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write".into(),
            description: "Create a file, or replace a file's whole content, in the workspace. \
                          Missing parent directories are created. The write is atomic. \
                          To change part of an existing file prefer `edit`."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "The file to write."},
                    "content": {"type": "string", "description": "The file's complete new content."}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        }
    }

    fn recovery(&self) -> Recovery {
        self.sandbox.config.recovery.write.into()
    }

    fn approval(&self, args: &WriteArgs, raw: &serde_json::Value, rules: &[AllowRule]) -> Approval {
        let sandbox = &self.sandbox;
        if let Err(message) = check_size(sandbox, args) {
            return Approval::Refused(message);
        }
        let target = match sandbox.ws.write_target(&args.path, true) {
            Ok(t) => t,
            Err(e) => return Approval::Refused(e.to_string()),
        };
        let mut content: String = args.content.chars().take(FORM_CONTENT_CHARS).collect();
        if content.len() < args.content.len() {
            content.push_str(&format!(
                "\n[... {} more bytes not shown]",
                args.content.len() - content.len()
            ));
        }
        let context = FormContext::Write {
            path: sandbox
                .ws
                .absolute(&target.rel)
                .to_string_lossy()
                .into_owned(),
            content,
            overwrites: target.existing.is_some(),
        };
        sandbox.file_approval("write", raw, rules, "WRITE APPROVAL REQUIRED", context)
    }

    fn restore(&self, run: &str, args: &WriteArgs) {
        if let Ok(rel) = self.sandbox.ws.lexical(&args.path) {
            self.sandbox.tracker.record(
                run,
                &rel,
                Fingerprint::of_content(args.content.as_bytes()),
            );
        }
    }

    async fn call(&self, args: WriteArgs, ctx: CallContext) -> ToolOutput {
        let sandbox = self.sandbox.clone();
        match super::blocking(move || write(&sandbox, &ctx.run, &args)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

fn check_size(sandbox: &Sandbox, args: &WriteArgs) -> Result<(), String> {
    let max = sandbox.config.files.max_file_bytes;
    if args.content.len() as u64 > max {
        return Err(format!(
            "the content is {} bytes; `write` takes at most {max} bytes",
            args.content.len()
        ));
    }
    Ok(())
}

fn write(sandbox: &Sandbox, run: &str, args: &WriteArgs) -> Result<String, String> {
    check_size(sandbox, args)?;
    let target = sandbox
        .ws
        .write_target(&args.path, true)
        .map_err(|e| e.to_string())?;
    let rel = target.rel.clone();
    let replaced = target.existing.is_some();
    let meta = sandbox
        .ws
        .commit(&args.path, target, args.content.as_bytes())
        .map_err(|e| e.to_string())?;
    sandbox.tracker.record(
        run,
        &rel,
        Fingerprint::new(&meta, Some(args.content.as_bytes())),
    );
    let shown = sandbox.ws.display(&rel);
    let what = if replaced { "replaced" } else { "created" };
    Ok(format!(
        "Wrote {} bytes to `{shown}` ({what}).",
        args.content.len()
    ))
}
