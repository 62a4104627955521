//! `edit`: replaces an exact piece of a file.
//!
//! Matching is literal and byte-exact: no regex, no whitespace folding, so `$1`,
//! `$&` and `\1` in the replacement are inserted as written, and every byte outside
//! the replaced range (CRLF line ends, tabs, a BOM, invalid UTF-8) is kept. One
//! convenience: when the file uses CRLF and `old_string` (as models write it) uses
//! bare LF and matches nothing as given, both strings are retried with CRLF line
//! ends, so the file keeps its own line ends.
//!
//! The file must have been read (or written) by the agent in this run and must not
//! have changed since (see the `tracker` module).

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{OFlags, ResolveFlags};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use super::tracker::Fingerprint;
use super::workspace::WriteTarget;
use crate::approval::{AllowRule, FormContext};
use crate::tool::{Approval, CallContext, Recovery, Tool, ToolOutput, ToolSpec};

/// The `edit` tool.
#[derive(Debug, Clone)]
pub struct EditTool {
    sandbox: Arc<Sandbox>,
}

impl EditTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// Arguments of `edit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    /// The file.
    pub path: String,
    /// The exact text to replace.
    pub old_string: String,
    /// What to put instead.
    pub new_string: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    pub replace_all: bool,
}

impl Tool for EditTool {
    type Args = EditArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit".into(),
            description: "Replace exact text in a file in the workspace. `old_string` must match \
                          the file exactly (whitespace and indentation included) and occur once, \
                          unless `replace_all` is true. Read the file first: an edit of a file \
                          not read in this run, or changed since it was read, is refused. \
                          Replacement text is literal (no regex, no `$1`)."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "The file to edit."},
                    "old_string": {"type": "string", "description": "The exact text to replace."},
                    "new_string": {"type": "string", "description": "The text to put instead."},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence. Default false."}
                },
                "required": ["path", "old_string", "new_string"],
                "additionalProperties": false
            }),
        }
    }

    fn recovery(&self) -> Recovery {
        self.sandbox.config.recovery.edit.into()
    }

    fn restore(&self, run: &str, args: &EditArgs) {
        self.sandbox.remember_as_is(run, &args.path);
    }

    fn approval(&self, args: &EditArgs, raw: &serde_json::Value, rules: &[AllowRule]) -> Approval {
        // The run is not known here, so staleness is checked when the edit runs; the
        // rest (path, match count) is checked now so a person never approves an edit
        // that cannot apply.
        let plan = match plan(&self.sandbox, None, args) {
            Ok(p) => p,
            Err(message) => return Approval::Refused(message),
        };
        let shown = self.sandbox.ws.display(&plan.target.rel);
        let old = String::from_utf8_lossy(&plan.old);
        let new = String::from_utf8_lossy(&plan.new);
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string();
        let context = FormContext::Edit {
            path: self
                .sandbox
                .ws
                .absolute(&plan.target.rel)
                .to_string_lossy()
                .into_owned(),
            diff,
        };
        self.sandbox
            .file_approval("edit", raw, rules, "EDIT APPROVAL REQUIRED", context)
    }

    async fn call(&self, args: EditArgs, ctx: CallContext) -> ToolOutput {
        let sandbox = self.sandbox.clone();
        match super::blocking(move || edit(&sandbox, &ctx.run, &args)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

struct Plan {
    target: WriteTarget,
    old: Vec<u8>,
    new: Vec<u8>,
    count: usize,
    crlf: bool,
    /// Byte offset of the first replacement in the new content.
    first_at: usize,
    /// Length of the text inserted there.
    inserted_len: usize,
}

/// Checks the edit and computes the new content. With a run, also checks that the
/// agent's last view of the file is current.
fn plan(sandbox: &Sandbox, run: Option<&str>, args: &EditArgs) -> Result<Plan, String> {
    if args.old_string.is_empty() {
        return Err(
            "`old_string` is empty; to create a file or replace all of it, use `write`".into(),
        );
    }
    if args.old_string == args.new_string {
        return Err(
            "`old_string` and `new_string` are the same; there is nothing to change".into(),
        );
    }
    let target = sandbox
        .ws
        .write_target(&args.path, false)
        .map_err(|e| e.to_string())?;
    let shown = sandbox.ws.display(&target.rel);
    let Some(meta) = target.existing.clone() else {
        return Err(format!(
            "`{shown}` does not exist; use `write` to create it"
        ));
    };
    let max = sandbox.config.files.max_file_bytes;
    if meta.len() > max {
        return Err(format!(
            "`{shown}` is {} bytes; `edit` changes files of at most {max} bytes",
            meta.len()
        ));
    }
    // Read the file the target names (its real path, no symlinks), and make sure it
    // is still the one that was looked at.
    let fd = sandbox
        .ws
        .open_beneath(
            &target.rel,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|_| format!("`{shown}` changed while it was being opened; try again"))?;
    let file = std::fs::File::from(fd);
    let now_meta = file.metadata().map_err(|e| format!("`{shown}`: {e}"))?;
    if now_meta.ino() != meta.ino() || now_meta.dev() != meta.dev() {
        return Err(format!(
            "`{shown}` changed while it was being opened; try again"
        ));
    }
    let mut old = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut old)
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if let Some(run) = run {
        let now = Fingerprint::new(&now_meta, Some(&old));
        match sandbox.tracker.get(run, &target.rel) {
            None => {
                return Err(format!(
                    "`{shown}` has not been read in this run; read it first, then edit it"
                ));
            }
            Some(seen) if !seen.same_content(&now) => {
                return Err(format!(
                    "`{shown}` changed on disk since it was last read; read it again before editing it"
                ));
            }
            Some(_) => {}
        }
    }
    let mut needle = args.old_string.as_bytes().to_vec();
    let mut replacement = args.new_string.as_bytes().to_vec();
    let mut count = memchr::memmem::find_iter(&old, &needle).count();
    let mut crlf = false;
    if count == 0
        && args.old_string.contains('\n')
        && !args.old_string.contains('\r')
        && memchr::memmem::find(&old, b"\r\n").is_some()
    {
        let crlf_needle = args.old_string.replace('\n', "\r\n").into_bytes();
        let crlf_count = memchr::memmem::find_iter(&old, &crlf_needle).count();
        if crlf_count > 0 {
            needle = crlf_needle;
            replacement = args
                .new_string
                .replace("\r\n", "\n")
                .replace('\n', "\r\n")
                .into_bytes();
            count = crlf_count;
            crlf = true;
        }
    }
    if count == 0 {
        return Err(format!(
            "`old_string` was not found in `{shown}`. It must match the file exactly, including \
             whitespace and indentation; read the file again and copy the text exactly"
        ));
    }
    if count > 1 && !args.replace_all {
        return Err(format!(
            "`old_string` occurs {count} times in `{shown}`; add surrounding lines to make it \
             unique, or set `replace_all` to true to replace all {count}"
        ));
    }
    let mut new = Vec::with_capacity(old.len() + count * replacement.len());
    let mut last = 0;
    let mut first_at = None;
    for at in memchr::memmem::find_iter(&old, &needle) {
        if at < last {
            continue; // overlapping occurrence: already replaced
        }
        new.extend_from_slice(&old[last..at]);
        first_at.get_or_insert(new.len());
        new.extend_from_slice(&replacement);
        last = at + needle.len();
    }
    new.extend_from_slice(&old[last..]);
    Ok(Plan {
        target,
        old,
        new,
        count,
        crlf,
        first_at: first_at.unwrap_or(0),
        inserted_len: replacement.len(),
    })
}

fn edit(sandbox: &Sandbox, run: &str, args: &EditArgs) -> Result<String, String> {
    let plan = plan(sandbox, Some(run), args)?;
    let rel = plan.target.rel.clone();
    let shown = sandbox.ws.display(&rel);
    let first_line = 1 + memchr::memchr_iter(b'\n', &plan.new[..plan.first_at]).count();
    let inserted = &plan.new[plan.first_at..plan.first_at + plan.inserted_len];
    let inserted = inserted.strip_suffix(b"\n").unwrap_or(inserted);
    let last_line = first_line + memchr::memchr_iter(b'\n', inserted).count();
    let meta = sandbox
        .ws
        .commit(&args.path, plan.target, &plan.new)
        .map_err(|e| e.to_string())?;
    sandbox
        .tracker
        .record(run, &rel, Fingerprint::new(&meta, Some(&plan.new)));
    let replaced = if plan.count == 1 {
        "1 occurrence".to_owned()
    } else {
        format!("{} occurrences", plan.count)
    };
    let crlf = if plan.crlf {
        " (matched with the file's CRLF line ends, which were kept)"
    } else {
        ""
    };
    let lines = if first_line == last_line {
        format!("line {first_line}")
    } else {
        format!("lines {first_line}-{last_line}")
    };
    Ok(format!(
        "Edited `{shown}`: replaced {replaced}{crlf}. The first replacement is at {lines}."
    ))
}
