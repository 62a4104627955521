//! `glob`: files whose path matches a glob pattern, newest first.
//!
//! Real glob syntax (`*` stays within one directory, `**` crosses them, `?`, `[ab]`,
//! `{a,b}`), matched against paths relative to the search directory. The pattern is
//! only ever a pattern: there is no shell. Results are capped; the newest `limit`
//! are kept in a bounded heap while walking, so memory does not grow with the tree.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use globset::GlobBuilder;
use rustix::fs::{OFlags, ResolveFlags};
use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use super::walk::{Budget, walker};
use crate::tool::{CallContext, Tool, ToolOutput, ToolSpec};

/// The `glob` tool.
#[derive(Debug, Clone)]
pub struct GlobTool {
    sandbox: Arc<Sandbox>,
}

impl GlobTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// Arguments of `glob`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobArgs {
    /// The pattern, relative to `path`.
    pub pattern: String,
    /// The directory to search; the working directory by default.
    pub path: Option<String>,
    /// How many results to return at most.
    pub limit: Option<u64>,
}

impl Tool for GlobTool {
    type Args = GlobArgs;

    fn spec(&self) -> ToolSpec {
        let limits = &self.sandbox.config.files;
        ToolSpec {
            name: "glob".into(),
            description: format!(
                "Find files by path pattern in the workspace, most recently modified first. \
                 Glob syntax: `*` matches within one directory, `**` across directories \
                 (`**/*.rs` finds Rust files at any depth, `*.rs` only in the search \
                 directory), `?`, `[abc]`, `{{a,b}}`. Files ignored by .gitignore are skipped. \
                 At most {} results by default (`limit` up to {}).",
                limits.search_default_limit, limits.search_max_limit
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "minLength": 1, "description": "The glob pattern, relative to `path`."},
                    "path": {"type": "string", "description": "The directory to search. Default: the working directory."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": limits.search_max_limit, "description": "The most results to return."}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
        }
    }

    fn is_mutating(&self) -> bool {
        false
    }

    async fn call(&self, args: GlobArgs, ctx: CallContext) -> ToolOutput {
        let sandbox = self.sandbox.clone();
        match super::blocking(move || glob(&sandbox, &args, &ctx)).await {
            Ok(Ok(text)) => ToolOutput::ok(text),
            Ok(Err(message)) | Err(message) => ToolOutput::error(message),
        }
    }
}

/// Newest first; among equal times, by path.
type Ranked = (Reverse<SystemTime>, PathBuf);

struct Top {
    heap: BinaryHeap<Ranked>,
    limit: usize,
    total: u64,
}

impl Top {
    fn push(&mut self, item: Ranked) {
        self.total += 1;
        if self.heap.len() < self.limit {
            self.heap.push(item);
        } else if let Some(worst) = self.heap.peek()
            && item < *worst
        {
            self.heap.pop();
            self.heap.push(item);
        }
    }
}

fn glob(sandbox: &Sandbox, args: &GlobArgs, ctx: &CallContext) -> Result<String, String> {
    let limits = &sandbox.config.files;
    let limit = args
        .limit
        .map(|l| l as usize)
        .unwrap_or(limits.search_default_limit)
        .clamp(1, limits.search_max_limit);
    // `./src/*.rs` means `src/*.rs`: results are relative to the search directory.
    let pattern = args.pattern.trim_start_matches("./");
    if Path::new(pattern).is_absolute() {
        return Err(format!(
            "the pattern `{pattern}` is absolute; give a pattern relative to `path` (e.g. `**/*.rs`) and the directory in `path`"
        ));
    }
    if Path::new(pattern)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!(
            "the pattern `{pattern}` contains `..`; put the directory in `path` instead"
        ));
    }
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid glob pattern `{pattern}`: {}", e.kind()))?
        .compile_matcher();
    let dir_arg = args.path.as_deref().unwrap_or(".");
    let (_dir, search_rel) = sandbox.ws.open_dir(dir_arg).map_err(|e| e.to_string())?;
    let search_abs = sandbox.ws.absolute(&search_rel);
    let root = sandbox.ws.root_path().to_path_buf();
    let budget = Budget::new(limits, ctx.cancel.clone());
    let top = Mutex::new(Top {
        heap: BinaryHeap::new(),
        limit,
        total: 0,
    });
    walker(&search_abs, None).build_parallel().run(|| {
        let (matcher, search_abs, root, budget, top) =
            (&matcher, &search_abs, &root, &budget, &top);
        Box::new(move |entry| {
            let state = budget.tick();
            let Ok(entry) = entry else { return state };
            let Some(ft) = entry.file_type() else {
                return state;
            };
            if ft.is_dir() {
                return state;
            }
            let Ok(under_search) = entry.path().strip_prefix(search_abs) else {
                return state;
            };
            if !matcher.is_match(under_search) {
                return state;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else {
                return state;
            };
            let mtime = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            top.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((Reverse(mtime), rel.to_path_buf()));
            state
        })
    });
    let top = top.into_inner().unwrap_or_else(|p| p.into_inner());
    let total = top.total;
    let mut ranked = top.heap.into_vec();
    ranked.sort();
    let mut out = String::new();
    let mut shown = 0usize;
    let mut cut_by_size = false;
    for (_, rel) in &ranked {
        // Re-open each result beneath the workspace: only names that resolve to a
        // regular file inside it are ever shown.
        let Ok(fd) = sandbox
            .ws
            .open_beneath(rel, OFlags::PATH, ResolveFlags::empty())
        else {
            continue;
        };
        if !std::fs::File::from(fd)
            .metadata()
            .is_ok_and(|m| m.is_file())
        {
            continue;
        }
        let line = sandbox.ws.display(rel);
        if out.len() + line.len() + 1 > limits.search_max_output_bytes {
            cut_by_size = true;
            break;
        }
        out.push_str(&line);
        out.push('\n');
        shown += 1;
    }
    let stopped = budget.stopped();
    if shown == 0 && stopped.is_none() {
        return Ok(format!(
            "No files match `{pattern}` in `{}`.",
            sandbox.ws.display(&search_rel)
        ));
    }
    if (shown as u64) < total || cut_by_size {
        out.push_str(&format!(
            "(results truncated: showing the {shown} most recently modified of {total} matches; narrow the pattern or `path`{})\n",
            if cut_by_size { "" } else { ", or raise `limit`" }
        ));
    }
    if let Some(reason) = stopped {
        out.push_str(&format!(
            "(the search stopped early because {reason}; results are incomplete)\n"
        ));
    }
    Ok(out.trim_end().to_owned())
}
