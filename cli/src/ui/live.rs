//! Printing a run as it happens: the agent's text on standard output, progress and
//! tool activity on standard error, or every event as a JSON line with `--json`.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use keel_engine::{FinishKind, RunEvent, Turn};
use keel_providers::Usage;

use super::{duration_ms, excerpt, json_line, one_line, safe, usage_line};

/// Prints a run's events.
pub struct Live {
    json: bool,
    spinner: Option<ProgressBar>,
    streamed: HashSet<Turn>,
    /// Text printed by the model call's current attempt (a retry discards it).
    attempt_text: bool,
    mid_line: bool,
    model: String,
    usage: Usage,
    names: HashMap<String, String>,
    /// The isolation of the run's commands, for the banner.
    isolation: Option<keel_tools::IsolationConfig>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("json", &self.json).finish()
    }
}

impl Live {
    /// A printer; `json` prints JSON lines only.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            spinner: None,
            streamed: HashSet::new(),
            attempt_text: false,
            mid_line: false,
            model: String::new(),
            usage: Usage::default(),
            names: HashMap::new(),
            isolation: None,
        }
    }

    /// The banner will say how the run's commands are confined on this system, and
    /// what is not guaranteed here.
    pub fn with_isolation(mut self, isolation: &keel_tools::IsolationConfig) -> Self {
        self.isolation = Some(isolation.clone());
        self
    }

    /// Stops the spinner and ends a half-printed line, before prompting.
    pub fn pause(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }

    /// Prints a status line on standard error (nothing in JSON mode).
    pub fn note(&mut self, text: &str) {
        if self.json {
            return;
        }
        self.pause();
        eprintln!("{text}");
    }

    /// Prints one event.
    pub fn event(&mut self, event: &RunEvent) {
        if let RunEvent::LlmResponded { response, .. } = event {
            self.usage.add(&response.usage);
            self.model = response.model.clone();
        }
        if self.json {
            println!("{}", json_line(event));
            return;
        }
        match event {
            RunEvent::RunStarted {
                run, agent, parent, ..
            } => {
                let forked = parent
                    .map(|(p, at)| format!(", forked from {p} at seq {at}"))
                    .unwrap_or_default();
                self.note(&format!("keel: run {run} (agent {}{forked})", safe(agent)));
                if let Some(isolation) = &self.isolation {
                    let lines = containment_banner(isolation);
                    self.note(&lines.join("\n"));
                }
            }
            RunEvent::LlmCallStarted { .. } => {
                self.pause();
                self.attempt_text = false;
                if std::io::stderr().is_terminal() {
                    let spinner = ProgressBar::new_spinner();
                    spinner.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    spinner.set_message("waiting for the model…");
                    spinner.enable_steady_tick(Duration::from_millis(100));
                    self.spinner = Some(spinner);
                }
            }
            RunEvent::TextDelta { turn, text } => {
                if let Some(s) = self.spinner.take() {
                    s.finish_and_clear();
                }
                self.streamed.insert(*turn);
                self.attempt_text = true;
                print!("{}", safe(text));
                let _ = std::io::stdout().flush();
                self.mid_line = !text.ends_with('\n');
            }
            RunEvent::ThinkingDelta { .. } => {}
            RunEvent::LlmRetrying {
                attempt,
                delay_ms,
                reason,
                ..
            } => {
                // A server's message may span lines: fold it, as the final error does.
                let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                let discarded = if std::mem::take(&mut self.attempt_text) {
                    "; the text above from the failed attempt is discarded and the answer starts over"
                } else {
                    ""
                };
                self.note(&format!(
                    "keel: the model call failed ({}); trying again (attempt {attempt}) in {}{discarded}",
                    safe(&one_line(&reason, 300)),
                    duration_ms(*delay_ms)
                ));
            }
            RunEvent::LlmResponded { turn, response, .. } => {
                self.pause();
                let text = response.text();
                if !self.streamed.contains(turn) && !text.trim().is_empty() {
                    println!("{}", safe(text.trim_end()));
                }
            }
            RunEvent::ToolCallRequested { call, name, .. } => {
                self.names.insert(call.to_string(), name.clone());
            }
            RunEvent::ApprovalRequested { .. } | RunEvent::ApprovalResolved { .. } => {}
            RunEvent::ToolStarted {
                call,
                name,
                attempt,
                ..
            } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.note(&format!("  -> {} [{call}]{again}", safe(name)));
            }
            RunEvent::ToolFinished {
                name,
                output,
                is_error,
                kind,
                duration_ms: ms,
                ..
            } => {
                let mark = match (kind, is_error) {
                    (FinishKind::Ran, false) | (FinishKind::Answered, _) => "ok",
                    (FinishKind::Denied, _) => "denied",
                    (FinishKind::Interrupted, _) => "interrupted",
                    (FinishKind::Refused, _) => "refused",
                    (FinishKind::Cancelled, _) => "cancelled",
                    _ => "error",
                };
                self.note(&format!(
                    "     {}: {mark} ({})",
                    safe(name),
                    duration_ms(*ms)
                ));
                if !output.trim().is_empty() {
                    let shown: Vec<String> = excerpt(output, 8, 120)
                        .lines()
                        .map(|l| format!("     | {l}"))
                        .collect();
                    self.note(&shown.join("\n"));
                }
            }
            RunEvent::RunCompleted { stopped_by, .. } => {
                let by = stopped_by
                    .as_ref()
                    .map(|s| format!(" (stopped by {s})"))
                    .unwrap_or_default();
                let usage = usage_line(&self.model, &self.usage);
                self.note(&format!("\nkeel: run completed{by}; {usage}"));
            }
            RunEvent::RunFailed { error, code, .. } => {
                let code = code.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default();
                self.note(&format!(
                    "\nkeel: run failed: {code}{}",
                    one_line(error, 300)
                ));
            }
            RunEvent::RunCancelled { reason, .. } => {
                self.note(&format!("\nkeel: run cancelled: {}", safe(reason)));
            }
            RunEvent::AgentChanged {
                by, reason, model, ..
            } => {
                self.note(&format!(
                    "keel: the run's definition changed ({reason}, by {by}); model {model}"
                ));
            }
        }
    }
}

/// The banner's lines on confinement: what holds for the run's commands on this
/// system, then each thing that does not, said plainly.
pub fn containment_banner(isolation: &keel_tools::IsolationConfig) -> Vec<String> {
    let (holds, gaps) = keel_tools::sandbox::guarantees::for_people(isolation);
    let mode = match isolation.mode {
        keel_tools::IsolationMode::Off => "off",
        keel_tools::IsolationMode::BestEffort => "best-effort",
        keel_tools::IsolationMode::Required => "required",
    };
    let mut lines = vec![format!(
        "keel: isolation {mode}: {}",
        holds.first().map(String::as_str).unwrap_or_default()
    )];
    lines.extend(
        gaps.iter()
            .map(|g| format!("keel: not guaranteed here: {g}")),
    );
    lines
}
