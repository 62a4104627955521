//! A provider that plays recorded responses: offline runs, demos and tests.
//!
//! The script (JSON, format in [`script`]) lists responses; each call gets the next
//! one (or, in `by_turn` mode, the one for its turn), after checking the request
//! against what the response expects. It fails with [`Error::Script`] when the
//! script has run out or the request does not fit, naming the call and what differed.
//! Every call is counted and its request kept, for tests to inspect.
//!
//! ```
//! use keel_providers::scripted::{Entry, Scripted};
//! use keel_providers::{LlmProvider, Message, Request};
//! use serde_json::json;
//!
//! # tokio_test_block_on(async {
//! let provider = Scripted::new(vec![
//!     Entry::tool_use("exec", json!({"command": "ls"})),
//!     Entry::text("Two files.").expect_tool_results(["exec"]),
//! ])
//! .unwrap();
//! let request = Request::new("any", vec![Message::user("what is here?")]);
//! let first = provider.complete(&request, &|_| {}).await.unwrap();
//! assert_eq!(first.tool_uses().next().unwrap().1, "exec");
//! assert_eq!(provider.calls(), 1);
//! # });
//! # fn tokio_test_block_on(f: impl std::future::Future) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f);
//! # }
//! ```

pub mod script;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use script::{Block, Entry, Expect, Mode, Script, ScriptError, ScriptUsage};

use crate::error::{Error, Result};
use crate::http::status_is_retryable;
use crate::provider::{DeltaSink, LlmProvider};
use crate::types::{ContentBlock, Delta, Request, Response, Role};
use script::{LAST_TOOL_RESULT, Prepared};

const PROVIDER: &str = "scripted";

/// A recorded coding session for `keel demo` and tests: write a shell script, run it,
/// report its output (quoted from the real `exec` result). It uses the `write`
/// (`path`, `content`) and `exec` (`command`) tools, in `by_turn` mode so a run
/// interrupted and resumed picks up at the right response.
pub const DEMO_CODING_SESSION: &str = include_str!("../../scripts/demo_coding_session.json");

/// The scripted provider. See the [module docs](self).
#[derive(Debug)]
pub struct Scripted {
    mode: Mode,
    model: Option<String>,
    entries: Vec<Prepared>,
    next: AtomicUsize,
    calls: AtomicUsize,
    requests: Mutex<Vec<Request>>,
}

impl Scripted {
    /// Plays these responses in order.
    pub fn new(entries: Vec<Entry>) -> Result<Self> {
        Self::from_script(Script {
            responses: entries,
            ..Script::default()
        })
    }

    /// Plays a script.
    pub fn from_script(script: Script) -> Result<Self> {
        Ok(Self {
            entries: script::prepare(&script)?,
            mode: script.mode,
            model: script.model,
            next: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        })
    }

    /// Reads a script from JSON text: an object with `responses`, or the bare array.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("the script is not JSON: {e}")))?;
        let script = if value.is_array() {
            serde_json::from_value(value).map(|responses| Script {
                responses,
                ..Script::default()
            })
        } else {
            serde_json::from_value(value)
        }
        .map_err(|e| Error::Config(format!("the script does not follow the format: {e}")))?;
        Self::from_script(script)
    }

    /// Reads a script file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read the script {}: {e}", path.display()))
        })?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Config(m) | Error::Script(m) => {
                Error::Config(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// The built-in [`DEMO_CODING_SESSION`].
    pub fn demo() -> Result<Self> {
        Self::from_json(DEMO_CODING_SESSION)
    }

    /// Calls made so far (including those that failed).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Responses not yet played (in `sequential` mode).
    pub fn remaining(&self) -> usize {
        self.entries
            .len()
            .saturating_sub(self.next.load(Ordering::SeqCst))
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    async fn play(&self, request: &Request, on_delta: DeltaSink<'_>) -> Result<Response> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.requests.lock() {
            Ok(mut requests) => requests.push(request.clone()),
            Err(poisoned) => poisoned.into_inner().push(request.clone()),
        }
        let index = match self.mode {
            Mode::Sequential => self.next.fetch_add(1, Ordering::SeqCst),
            Mode::ByTurn => request
                .messages
                .iter()
                .filter(|m| m.role == Role::Assistant)
                .count(),
        };
        let Some(entry) = self.entries.get(index) else {
            return Err(Error::Script(format!(
                "call {call} wants response {} but the script has only {}",
                index + 1,
                self.entries.len()
            )));
        };
        script::check(entry.expect(), request).map_err(|why| {
            Error::Script(format!(
                "call {call} does not fit response {}: {why}",
                index + 1
            ))
        })?;
        match entry {
            Prepared::Fail { error, .. } => Err(match error.status {
                Some(status) => Error::Api {
                    provider: PROVIDER,
                    status,
                    kind: error
                        .kind
                        .clone()
                        .unwrap_or_else(|| "scripted_error".into()),
                    message: error.message.clone(),
                    retryable: error
                        .retryable
                        .unwrap_or_else(|| status_is_retryable(status, &Default::default())),
                },
                None => Error::Transport {
                    provider: PROVIDER,
                    detail: error.message.clone(),
                },
            }),
            Prepared::Answer {
                content,
                stop_reason,
                usage,
                deltas,
                delay_ms,
                ..
            } => {
                let result = script::last_tool_result(request).unwrap_or_default();
                let render = |text: &str| text.replace(LAST_TOOL_RESULT, result);
                let content: Vec<ContentBlock> = content
                    .iter()
                    .map(|b| match b {
                        ContentBlock::Text { text } => ContentBlock::Text { text: render(text) },
                        other => other.clone(),
                    })
                    .collect();
                let pieces: Vec<Delta> = match deltas {
                    Some(pieces) => pieces.iter().map(|p| Delta::Text(render(p))).collect(),
                    None => content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text { text } => Some(Delta::Text(text.clone())),
                            ContentBlock::Thinking { thinking, .. } => {
                                Some(Delta::Thinking(thinking.clone()))
                            }
                            _ => None,
                        })
                        .collect(),
                };
                for piece in pieces {
                    if *delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
                    }
                    on_delta(piece);
                }
                Ok(Response {
                    id: format!("msg_scripted_{}", index + 1),
                    model: self.model.clone().unwrap_or_else(|| request.model.clone()),
                    content,
                    stop_reason: stop_reason.clone(),
                    usage: *usage,
                })
            }
        }
    }
}

impl LlmProvider for Scripted {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn complete(&self, request: &Request, on_delta: DeltaSink<'_>) -> Result<Response> {
        self.play(request, on_delta).await
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
