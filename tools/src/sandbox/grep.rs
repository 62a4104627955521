//! `grep`: searches file contents with a Rust regex, in-process, with ripgrep's own
//! crates (`ignore` for the walk, `grep-regex` and `grep-searcher` for matching).
//!
//! The pattern is only ever a regex: there is no command line, so `--pre=sh` or
//! `-f/etc/passwd` are searched for as text. Every file is opened beneath the
//! workspace handle, symlinks refused. Binary files (a NUL byte) are skipped.
//!
//! Results are sorted by path and capped: while walking, only the path-smallest
//! results within the limit are kept (larger ones are evicted), so the output is
//! deterministic and memory is bounded whatever the tree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::overrides::OverrideBuilder;
use rustix::fs::{OFlags, ResolveFlags};
use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use super::walk::{Budget, cut_line, walker};
use crate::tool::{CallContext, Tool, ToolOutput, ToolSpec};

/// Largest line buffer one file search may use (a longer line skips the file).
const HEAP_LIMIT: usize = 64 * 1024 * 1024;
/// Most context lines around a match.
const MAX_CONTEXT: u64 = 50;

/// The `grep` tool.
#[derive(Debug, Clone)]
pub struct GrepTool {
    sandbox: Arc<Sandbox>,
}

impl GrepTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// What `grep` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// The paths of files with a match.
    #[default]
    FilesWithMatches,
    /// The matching lines, with line numbers and context.
    Content,
    /// How many lines match, per file.
    Count,
}

/// Arguments of `grep`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrepArgs {
    /// The regex.
    pub pattern: String,
    /// A file or directory to search; the working directory by default.
    pub path: Option<String>,
    /// Only search files whose name matches this glob (e.g. `*.rs`, `src/**/*.ts`).
    pub glob: Option<String>,
    /// What to return.
    #[serde(default)]
    pub output_mode: OutputMode,
    /// Lines of context around each match (content mode).
    pub context: Option<u64>,
    /// Match without regard to case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// How many results (files, or lines in content mode) to return at most.
    pub limit: Option<u64>,
}

impl Tool for GrepTool {
    type Args = GrepArgs;

    fn spec(&self) -> ToolSpec {
        let limits = &self.sandbox.config.files;
        ToolSpec {
            name: "grep".into(),
            description: format!(
                "Search file contents in the workspace with a regular expression (Rust regex \
                 syntax, like ripgrep). `output_mode`: `files_with_matches` (default: paths of \
                 matching files), `content` (matching lines as `path:line:text`, with `context` \
                 lines around), or `count` (matches per file). Filter files with `glob` (e.g. \
                 `*.rs`). Files ignored by .gitignore and binary files are skipped. Results are \
                 sorted by path; at most {} by default (`limit` up to {}).",
                limits.search_default_limit, limits.search_max_limit
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "minLength": 1, "description": "The regular expression."},
                    "path": {"type": "string", "description": "A file or directory to search. Default: the working directory."},
                    "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `*.rs`."},
                    "output_mode": {"type": "string", "enum": ["files_with_matches", "content", "count"]},
                    "context": {"type": "integer", "minimum": 0, "maximum": MAX_CONTEXT, "description": "Lines of context around each match (content mode)."},
                    "case_insensitive": {"type": "boolean"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": limits.search_max_limit, "description": "The most files (or lines, in content mode) to return."}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
        }
    }

    fn is_mutating(&self) -> bool {
        false
    }

    async fn call(&self, args: GrepArgs, ctx: CallContext) -> ToolOutput {
        let sandbox = self.sandbox.clone();
        match super::blocking(move || grep(&sandbox, &args, &ctx)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

/// One line of content output.
#[derive(Debug, Clone)]
struct Line {
    number: u64,
    is_match: bool,
    /// A context line after a match (shown with its match even at the limit).
    after: bool,
    text: String,
}

/// What one file gave.
#[derive(Debug, Default)]
struct FileHits {
    matches: u64,
    lines: Vec<Line>,
    binary: bool,
}

impl FileHits {
    fn kept_matches(&self) -> usize {
        self.lines.iter().filter(|l| l.is_match).count()
    }
}

/// Results kept so far: the path-smallest within the limit.
#[derive(Debug, Default)]
struct Results {
    files: BTreeMap<PathBuf, FileHits>,
    /// Matching lines kept (context lines do not count toward the limit).
    kept_matches: usize,
    matched_files: u64,
    matched_lines: u64,
    unreadable: u64,
}

impl Results {
    fn add(&mut self, mode: OutputMode, limit: usize, rel: PathBuf, hits: FileHits) {
        self.matched_files += 1;
        self.matched_lines += hits.matches;
        self.kept_matches += hits.kept_matches();
        self.files.insert(rel, hits);
        // Evict the largest paths while what remains still fills the limit.
        loop {
            let over = match mode {
                OutputMode::Content => self
                    .files
                    .last_key_value()
                    .is_some_and(|(_, last)| self.kept_matches - last.kept_matches() >= limit),
                _ => self.files.len() > limit,
            };
            if !over {
                break;
            }
            if let Some((_, last)) = self.files.pop_last() {
                self.kept_matches -= last.kept_matches();
            }
        }
    }
}

struct Collect<'a> {
    mode: OutputMode,
    /// Matching lines kept per file at most.
    per_file_matches: usize,
    max_line_chars: usize,
    hits: &'a mut FileHits,
    kept_matches: usize,
}

impl Collect<'_> {
    fn keep(&mut self, number: Option<u64>, is_match: bool, after: bool, bytes: &[u8]) {
        // Past the limit, only the after-context of the last kept match is kept.
        if self.kept_matches >= self.per_file_matches && (is_match || !after) {
            return;
        }
        if is_match {
            self.kept_matches += 1;
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches(['\n', '\r']);
        self.hits.lines.push(Line {
            number: number.unwrap_or(0),
            is_match,
            after,
            text: cut_line(text, self.max_line_chars),
        });
    }
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        let first = mat.line_number();
        for (i, line) in mat.lines().enumerate() {
            self.hits.matches += 1;
            if self.mode == OutputMode::Content {
                self.keep(first.map(|n| n + i as u64), true, false, line);
            }
        }
        // For a list of files, one match is enough.
        Ok(self.mode != OutputMode::FilesWithMatches)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, Self::Error> {
        if self.mode == OutputMode::Content {
            let after = matches!(ctx.kind(), grep_searcher::SinkContextKind::After);
            self.keep(ctx.line_number(), false, after, ctx.bytes());
        }
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, Self::Error> {
        self.hits.binary = true;
        Ok(false)
    }
}

fn build_matcher(args: &GrepArgs) -> Result<RegexMatcher, String> {
    RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive)
        .line_terminator(Some(b'\n'))
        .build(&args.pattern)
        .map_err(|e| {
            format!(
                "invalid regex `{}`: {e}\n(the pattern is Rust regex syntax; escape characters such as `(`, `[`, `{{`, `.` or `*` with `\\` to match them literally)",
                args.pattern
            )
        })
}

fn searcher(context: u64) -> Searcher {
    SearcherBuilder::new()
        .binary_detection(BinaryDetection::quit(b'\x00'))
        .line_number(true)
        .before_context(context as usize)
        .after_context(context as usize)
        .heap_limit(Some(HEAP_LIMIT))
        .build()
}

/// Searches one file, opened beneath the workspace with symlinks refused.
fn search_one(
    sandbox: &Sandbox,
    searcher: &mut Searcher,
    matcher: &RegexMatcher,
    rel: &Path,
    collect: &mut Collect<'_>,
) -> std::io::Result<()> {
    let fd = sandbox
        .ws
        .open_beneath(
            rel,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            ResolveFlags::NO_SYMLINKS,
        )
        .map_err(std::io::Error::from)?;
    let file = File::from(fd);
    searcher.search_file(matcher, &file, collect)
}

fn grep(sandbox: &Sandbox, args: &GrepArgs, ctx: &CallContext) -> Result<String, String> {
    let limits = &sandbox.config.files;
    let limit = args
        .limit
        .map(|l| l as usize)
        .unwrap_or(limits.search_default_limit)
        .clamp(1, limits.search_max_limit);
    let context = args.context.unwrap_or(0).min(MAX_CONTEXT);
    let matcher = build_matcher(args)?;
    let path_arg = args.path.as_deref().unwrap_or(".");
    let (_, meta, search_rel) = sandbox.ws.open_path(path_arg).map_err(|e| e.to_string())?;
    let mode = args.output_mode;
    let results = Mutex::new(Results::default());
    let budget = Budget::new(limits, ctx.cancel.clone());

    let run_file = |searcher: &mut Searcher, rel: &Path| {
        let mut hits = FileHits::default();
        let mut collect = Collect {
            mode,
            per_file_matches: limit,
            max_line_chars: limits.max_line_chars,
            hits: &mut hits,
            kept_matches: 0,
        };
        let outcome = search_one(sandbox, searcher, &matcher, rel, &mut collect);
        let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Err(_) => results.unreadable += 1,
            Ok(()) if hits.binary || hits.matches == 0 => {}
            Ok(()) => results.add(mode, limit, rel.to_path_buf(), hits),
        }
    };

    if meta.is_file() {
        let mut s = searcher(context);
        run_file(&mut s, &search_rel);
    } else if meta.is_dir() {
        let search_abs = sandbox.ws.absolute(&search_rel);
        let overrides = match &args.glob {
            Some(g) => {
                let mut b = OverrideBuilder::new(&search_abs);
                b.add(g).map_err(|e| format!("invalid glob `{g}`: {e}"))?;
                Some(b.build().map_err(|e| format!("invalid glob `{g}`: {e}"))?)
            }
            None => None,
        };
        let root = sandbox.ws.root_path().to_path_buf();
        walker(&search_abs, overrides).build_parallel().run(|| {
            let (root, budget, run_file) = (&root, &budget, &run_file);
            let mut s = searcher(context);
            Box::new(move |entry| {
                let state = budget.tick();
                let Ok(entry) = entry else { return state };
                // Regular files only: symlinks are not followed (as ripgrep).
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return state;
                }
                if let Ok(rel) = entry.path().strip_prefix(root) {
                    run_file(&mut s, rel);
                }
                state
            })
        });
    } else {
        return Err(format!("`{path_arg}` is not a regular file or a directory"));
    }

    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(render(sandbox, args, &results, limit, budget.stopped()))
}

fn render(
    sandbox: &Sandbox,
    args: &GrepArgs,
    results: &Results,
    limit: usize,
    stopped: Option<String>,
) -> String {
    let max_bytes = sandbox.config.files.search_max_output_bytes;
    let mut out = String::new();
    let mut cut_by_size = false;
    let push = |out: &mut String, line: &str| -> bool {
        if out.len() + line.len() + 1 > max_bytes {
            return false;
        }
        out.push_str(line);
        out.push('\n');
        true
    };
    let mut shown = 0usize;
    match args.output_mode {
        OutputMode::FilesWithMatches => {
            for rel in results.files.keys() {
                if !push(&mut out, &sandbox.ws.display(rel)) {
                    cut_by_size = true;
                    break;
                }
                shown += 1;
            }
        }
        OutputMode::Count => {
            for (rel, hits) in &results.files {
                let line = format!("{}:{}", sandbox.ws.display(rel), hits.matches);
                if !push(&mut out, &line) {
                    cut_by_size = true;
                    break;
                }
                shown += 1;
            }
        }
        OutputMode::Content => {
            let mut first_file = true;
            'files: for (rel, hits) in &results.files {
                let name = sandbox.ws.display(rel);
                let mut prev: Option<u64> = None;
                for line in &hits.lines {
                    if shown >= limit && !line.after {
                        break 'files;
                    }
                    let gap = match prev {
                        None => !first_file,
                        Some(p) => line.number != p + 1,
                    };
                    if gap && args.context.unwrap_or(0) > 0 && !push(&mut out, "--") {
                        cut_by_size = true;
                        break 'files;
                    }
                    let sep = if line.is_match { ':' } else { '-' };
                    let digits = line.number.checked_ilog10().unwrap_or(0) as usize + 1;
                    if out.len() + name.len() + digits + line.text.len() + 3 > max_bytes {
                        cut_by_size = true;
                        break 'files;
                    }
                    let _ = writeln!(out, "{name}{sep}{}{sep}{}", line.number, line.text);
                    prev = Some(line.number);
                    if line.is_match {
                        shown += 1;
                    }
                }
                first_file = false;
            }
        }
    }
    let mut notes = Vec::new();
    let (unit, total) = match args.output_mode {
        OutputMode::Content => ("matching lines", results.matched_lines),
        _ => ("files", results.matched_files),
    };
    if total == 0 {
        out = format!("No matches for `{}`.\n", args.pattern);
    } else if args.output_mode == OutputMode::Count {
        notes.push(format!(
            "Found {} matching lines in {} files.",
            results.matched_lines, results.matched_files
        ));
    } else if args.output_mode == OutputMode::FilesWithMatches {
        out = format!("Found {total} files\n{out}");
    }
    if (shown as u64) < total || cut_by_size {
        notes.push(format!(
            "(results truncated: showing {shown} of {total} {unit}, sorted by path; narrow the search with `path` or `glob`{})",
            if cut_by_size { "" } else { ", or raise `limit`" }
        ));
    }
    if results.unreadable > 0 {
        notes.push(format!(
            "({} files could not be searched: unreadable, or a line over {} MiB)",
            results.unreadable,
            HEAP_LIMIT / (1024 * 1024)
        ));
    }
    if let Some(reason) = stopped {
        notes.push(format!(
            "(the search stopped early because {reason}; results are incomplete)"
        ));
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out.trim_end().to_owned()
}
