//! `read`: a file's lines, numbered from 1, a window at a time.
//!
//! Output is `cat -n` style (`     1\tline`). Long lines are cut, files with a NUL
//! byte in their first 8 KiB are reported as binary, and memory is bounded: files up
//! to `max_file_bytes` are read whole (and hashed, so `edit` can tell whether they
//! changed), larger ones are streamed and only the requested window is kept.

use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use super::tracker::Fingerprint;
use crate::tool::{CallContext, Tool, ToolOutput, ToolSpec};

/// Bytes examined for a NUL to call a file binary (what git and ripgrep do).
pub(crate) const BINARY_PROBE: usize = 8192;

/// The `read` tool.
#[derive(Debug, Clone)]
pub struct ReadTool {
    sandbox: Arc<Sandbox>,
}

impl ReadTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// Arguments of `read`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The file.
    pub path: String,
    /// The first line to show, from 1.
    pub offset: Option<u64>,
    /// How many lines to show.
    pub limit: Option<u64>,
}

impl Tool for ReadTool {
    type Args = ReadArgs;

    fn spec(&self) -> ToolSpec {
        let limits = &self.sandbox.config.files;
        ToolSpec {
            name: "read".into(),
            description: format!(
                "Read a text file in the workspace. Lines are numbered from 1 (`     1\\tline`). \
                 By default the first {} lines are shown; pass `offset` (1-based line number) and \
                 `limit` to read another window. Lines longer than {} characters are cut. Binary \
                 files are reported, not shown. Paths are relative to the working directory \
                 (or absolute inside the workspace).",
                limits.read_default_lines, limits.max_line_chars
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "The file to read."},
                    "offset": {"type": "integer", "minimum": 1, "description": "The first line to show (1-based). Default 1."},
                    "limit": {"type": "integer", "minimum": 1, "description": "How many lines to show."}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        }
    }

    fn is_mutating(&self) -> bool {
        false
    }

    fn restore(&self, run: &str, args: &ReadArgs) {
        self.sandbox.remember_as_is(run, &args.path);
    }

    async fn call(&self, args: ReadArgs, ctx: CallContext) -> ToolOutput {
        let sandbox = self.sandbox.clone();
        match super::blocking(move || read(&sandbox, &ctx.run, &args)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

fn read(sandbox: &Sandbox, run: &str, args: &ReadArgs) -> Result<String, String> {
    let limits = &sandbox.config.files;
    let offset = args.offset.unwrap_or(1);
    if offset == 0 {
        return Err("`offset` must be at least 1: lines are numbered from 1".into());
    }
    let limit = args.limit.unwrap_or(limits.read_default_lines as u64);
    if limit == 0 {
        return Err("`limit` must be at least 1".into());
    }
    let opened = sandbox
        .ws
        .open_read(&args.path)
        .map_err(|e| e.to_string())?;
    let shown = sandbox.ws.display(&opened.rel);
    let window = Window {
        offset,
        limit,
        max_line_chars: limits.max_line_chars,
        max_output_bytes: limits.read_max_output_bytes,
    };
    let mut file = opened.file;
    let rendered = if opened.meta.len() <= limits.max_file_bytes {
        let mut content = Vec::with_capacity(opened.meta.len() as usize);
        (&mut file)
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut content)
            .map_err(|e| format!("`{shown}`: {e}"))?;
        if is_binary(&content) {
            return Err(binary_message(&shown, opened.meta.len()));
        }
        let rendered = render(&mut content.as_slice(), &window, true)
            .map_err(|e| format!("`{shown}`: {e}"))?;
        sandbox.tracker.record(
            run,
            &opened.rel,
            Fingerprint::new(&opened.meta, Some(&content)),
        );
        rendered
    } else {
        let mut probe = vec![0u8; BINARY_PROBE];
        let n = read_full(&mut file, &mut probe).map_err(|e| format!("`{shown}`: {e}"))?;
        probe.truncate(n);
        if is_binary(&probe) {
            return Err(binary_message(&shown, opened.meta.len()));
        }
        let mut reader = probe.as_slice().chain(file);
        let rendered =
            render(&mut reader, &window, false).map_err(|e| format!("`{shown}`: {e}"))?;
        sandbox
            .tracker
            .record(run, &opened.rel, Fingerprint::new(&opened.meta, None));
        rendered
    };
    rendered.finish(&shown, &window)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether the first 8 KiB hold a NUL byte.
pub(crate) fn is_binary(content: &[u8]) -> bool {
    memchr::memchr(0, &content[..content.len().min(BINARY_PROBE)]).is_some()
}

fn binary_message(shown: &str, len: u64) -> String {
    format!("`{shown}` is a binary file ({len} bytes); `read` shows text files only")
}

struct Window {
    offset: u64,
    limit: u64,
    max_line_chars: usize,
    max_output_bytes: usize,
}

#[derive(Default)]
struct Rendered {
    text: String,
    /// Lines seen (all of them when `complete`).
    lines_seen: u64,
    /// The last line shown.
    last_shown: u64,
    /// Whether the file goes on past what was shown.
    more: bool,
    /// Whether the output budget, not the line limit, stopped it.
    cut_by_size: bool,
    /// Whether every line was counted (so `lines_seen` is the total).
    complete: bool,
}

impl Rendered {
    fn finish(self, shown: &str, w: &Window) -> Result<String, String> {
        if self.lines_seen == 0 {
            return Ok(format!("(`{shown}` is empty)"));
        }
        if self.last_shown == 0 {
            return Err(format!(
                "`offset` {} is past the end of `{shown}`, which has {} lines",
                w.offset, self.lines_seen
            ));
        }
        let mut out = self.text;
        if self.more {
            let next = self.last_shown + 1;
            let why = if self.cut_by_size {
                format!(
                    "output cut at {} bytes after line {}",
                    w.max_output_bytes, self.last_shown
                )
            } else {
                format!("showing lines {}-{}", w.offset, self.last_shown)
            };
            let total = if self.complete {
                format!(" of {}", self.lines_seen)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "\n({why}{total}; the file goes on: read with offset={next} to continue)"
            ));
        }
        Ok(out)
    }
}

/// Numbers and cuts the lines of the window. With `count_rest` it reads on to the
/// end to count the lines (cheap for a file already in memory); without, it stops
/// as soon as the window is rendered, so a huge file costs only what is shown.
fn render(reader: &mut impl Read, w: &Window, count_rest: bool) -> std::io::Result<Rendered> {
    let end = w.offset.saturating_add(w.limit); // first line not shown
    let keep_bytes = w.max_line_chars.saturating_mul(4).max(4);
    let mut out = Rendered::default();
    let mut line_no: u64 = 1;
    let mut line: Vec<u8> = Vec::new();
    let mut line_len: u64 = 0;
    let mut partial = false; // the current line has bytes but no newline yet
    let mut done = false; // the window is rendered
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        while !done && !chunk.is_empty() {
            let (segment, newline) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            chunk = if newline {
                &chunk[segment.len() + 1..]
            } else {
                &[]
            };
            let visible = line_no >= w.offset && line_no < end;
            if visible && line.len() < keep_bytes {
                let room = keep_bytes - line.len();
                line.extend_from_slice(&segment[..segment.len().min(room)]);
            }
            line_len += segment.len() as u64;
            partial = !newline;
            if newline {
                out.lines_seen += 1;
                if visible && !emit(&mut out, line_no, &line, line_len, w) {
                    done = true;
                }
                line.clear();
                line_len = 0;
                line_no += 1;
                if line_no >= end {
                    done = true;
                }
            }
        }
        if done && !chunk.is_empty() {
            out.more = true;
            if !count_rest {
                return Ok(out);
            }
            out.lines_seen += memchr::memchr_iter(b'\n', chunk).count() as u64;
            partial = chunk.last() != Some(&b'\n');
        }
    }
    if partial {
        out.lines_seen += 1;
        if done {
            out.more = true;
        } else if line_no >= w.offset && line_no < end {
            emit(&mut out, line_no, &line, line_len, w);
        }
    }
    out.complete = true;
    Ok(out)
}

/// Appends one numbered line; false when the output budget is spent.
fn emit(out: &mut Rendered, n: u64, line: &[u8], full_len: u64, w: &Window) -> bool {
    let mut text = String::from_utf8_lossy(line).into_owned();
    if n == 1 && text.starts_with('\u{feff}') {
        text.remove(0);
    }
    if text.ends_with('\r') {
        text.pop();
    }
    let cut = if text.chars().count() > w.max_line_chars {
        let kept: String = text.chars().take(w.max_line_chars).collect();
        Some(kept)
    } else if (line.len() as u64) < full_len {
        Some(text.clone())
    } else {
        None
    };
    let body = match cut {
        Some(kept) => format!("{kept}… [line cut: {full_len} bytes in total]"),
        None => text,
    };
    let entry = format!("{n:>6}\t{body}\n");
    if !out.text.is_empty() && out.text.len() + entry.len() > w.max_output_bytes {
        out.cut_by_size = true;
        out.more = true;
        return false;
    }
    out.text.push_str(&entry);
    out.last_shown = n;
    true
}
