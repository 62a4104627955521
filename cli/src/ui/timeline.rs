//! A run's timeline (`keel show`) and its JSON form (`show --json`, `export`).

use std::collections::HashMap;
use std::fmt::Write as _;

use keel_engine::{Event, FinishKind, RunState, Stamped, replay_events};
use keel_providers::{StopReason, Usage};
use keel_storage::{RunId, Seq};

use super::{duration_ms, excerpt, one_line, usage_line};

/// The text of every `ToolFinished` output, by seq (blobs already read).
pub type Outputs = HashMap<Seq, String>;

fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn => "end_turn".to_owned(),
        StopReason::ToolUse => "tool_use".to_owned(),
        StopReason::MaxTokens => "max_tokens".to_owned(),
        StopReason::StopSequence => "stop_sequence".to_owned(),
        StopReason::PauseTurn => "pause_turn".to_owned(),
        StopReason::Refusal => "refusal".to_owned(),
        StopReason::Other(s) => s.clone(),
    }
}

fn kind_word(kind: FinishKind, is_error: bool) -> &'static str {
    match kind {
        FinishKind::Ran if is_error => "error",
        FinishKind::Ran => "ok",
        FinishKind::Denied => "denied",
        FinishKind::Refused => "refused by policy",
        FinishKind::Interrupted => "interrupted by a crash",
        FinishKind::InvalidCall => "invalid call",
        FinishKind::Answered => "answered",
        FinishKind::Cancelled => "cancelled",
    }
}

/// Renders the timeline. Times are shown relative to the run's start, so the output
/// is the same wherever and whenever it is rendered.
pub fn render(run: RunId, events: &[(Seq, Stamped)], outputs: &Outputs) -> String {
    let state = replay_events(run, events.iter().map(|(s, e)| (*s, e)), None).ok();
    let mut out = String::new();
    let start = events.first().map_or(0, |(_, e)| e.at.0);
    if let Some(state) = &state {
        header(&mut out, run, state);
    }
    let mut names: HashMap<String, String> = HashMap::new();
    let pad = "                 ";
    for (seq, stamped) in events {
        let t = stamped.at.0.saturating_sub(start);
        let _ = write!(
            out,
            "{:>4}  {:>9}  ",
            seq.0,
            format!("+{:.3}s", t as f64 / 1000.0)
        );
        match &stamped.event {
            Event::RunStarted(s) => {
                let _ = writeln!(
                    out,
                    "run started: agent {}, model {} ({} tools: {})",
                    s.agent.id,
                    s.agent.model,
                    s.agent.tools.len(),
                    s.agent.tools.join(", ")
                );
                if let Some((parent, at)) = s.parent {
                    let _ = writeln!(out, "{pad}forked from run {parent} at seq {at}");
                }
                if let Some(d) = s
                    .definition
                    .as_ref()
                    .and_then(crate::config::describe_definition)
                {
                    let _ = writeln!(out, "{pad}definition recorded: {d}");
                }
            }
            Event::LlmRequested { turn, .. } => {
                let _ = writeln!(out, "LLM call, turn {turn}");
            }
            Event::LlmResponded {
                turn,
                response,
                latency_ms,
            } => {
                let u: &Usage = &response.usage;
                let _ = writeln!(
                    out,
                    "LLM response, turn {turn}: {}, {} in / {} out tokens, stop {}",
                    duration_ms(*latency_ms),
                    u.total_input(),
                    u.output_tokens,
                    stop_reason(&response.stop_reason)
                );
                let text = response.text();
                if !text.trim().is_empty() {
                    let _ = writeln!(out, "{pad}\"{}\"", one_line(&text, 100));
                }
                for (i, (_, name, input)) in response.tool_uses().enumerate() {
                    names.insert(format!("{turn}.{i}"), name.to_owned());
                    let _ = writeln!(
                        out,
                        "{pad}-> call {turn}.{i} {name} {}",
                        one_line(&input.to_text(), 90)
                    );
                }
            }
            Event::ApprovalRequested { call, step, form } => {
                let _ = writeln!(
                    out,
                    "waiting for a person at step {step} (call {call}): {}",
                    form.title
                );
                let what = match &form.context {
                    keel_tools::FormContext::Command { command, cwd, .. } => {
                        format!("command `{}` in {cwd}", one_line(command, 80))
                    }
                    keel_tools::FormContext::Write { path, content, .. } => {
                        format!("write {path} ({} bytes)", content.len())
                    }
                    keel_tools::FormContext::Edit { path, .. } => format!("edit {path}"),
                    keel_tools::FormContext::Question { question } => {
                        format!("question: {}", one_line(question, 80))
                    }
                    keel_tools::FormContext::Call { args } => one_line(args, 90),
                };
                let _ = writeln!(out, "{pad}{what}");
            }
            Event::ApprovalResolved {
                step, resolution, ..
            } => {
                let verdict = match (resolution.approved, resolution.answer.is_some()) {
                    (true, true) => "answered",
                    (true, false) if resolution.remember.is_some() => "approved always",
                    (true, false) => "approved",
                    (false, _) => "denied",
                };
                let _ = writeln!(out, "{verdict} by {} at step {step}", resolution.by);
                if let Some(rule) = &resolution.remember {
                    let _ = writeln!(out, "{pad}remembered for this run: {rule}");
                }
                if let Some(answer) = &resolution.answer {
                    let _ = writeln!(out, "{pad}answer: {}", one_line(answer, 90));
                }
                if let Some(note) = &resolution.note {
                    let _ = writeln!(out, "{pad}note: \"{}\"", one_line(note, 90));
                }
            }
            Event::ToolStarted { call, attempt } => {
                let name = names.get(&call.to_string()).cloned().unwrap_or_default();
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                let _ = writeln!(out, "tool {call} {name} started{again}");
            }
            Event::ToolFinished {
                call,
                is_error,
                kind,
                duration_ms: ms,
                ..
            } => {
                let name = names.get(&call.to_string()).cloned().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "tool {call} {name} finished: {}, {}",
                    kind_word(*kind, *is_error),
                    duration_ms(*ms)
                );
                if let Some(text) = outputs.get(seq) {
                    for line in excerpt(text, 6, 100).lines() {
                        let _ = writeln!(out, "{pad}| {line}");
                    }
                }
            }
            Event::RunCompleted { output, stopped_by } => {
                let by = stopped_by
                    .as_ref()
                    .map(|s| format!(" (stopped by {s})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "run completed{by}");
                for line in excerpt(output, 12, 100).lines() {
                    let _ = writeln!(out, "{pad}{line}");
                }
            }
            Event::RunFailed { error, code } => {
                let code = code.as_ref().map(|c| format!("[{c}] ")).unwrap_or_default();
                let _ = writeln!(out, "run failed: {code}{}", one_line(error, 100));
            }
            Event::RunCancelled { reason } => {
                let _ = writeln!(out, "run cancelled: {}", one_line(reason, 100));
            }
            Event::AgentChanged(c) => {
                let _ = writeln!(
                    out,
                    "definition changed by {}: {}",
                    one_line(&c.by, 60),
                    one_line(&c.reason, 100)
                );
                let d = c
                    .definition
                    .as_ref()
                    .and_then(crate::config::describe_definition);
                let _ = writeln!(
                    out,
                    "{pad}now: model {}{}",
                    c.agent.model,
                    d.map(|d| format!("; {d}")).unwrap_or_default()
                );
            }
        }
    }
    if let Some(state) = &state {
        let waiting = state.waiting();
        if !waiting.is_empty() && state.end().is_none() {
            let steps: Vec<String> = waiting.iter().map(|(s, _)| s.to_string()).collect();
            let _ = writeln!(
                out,
                "\nwaiting at step {}: answer with `keel approve {run} --step {}` (or --deny)",
                steps.join(", "),
                steps[0]
            );
        }
    }
    // Everything above that came from a model, a tool or a file was made safe
    // where it was cut; this covers what was printed whole (names, titles, paths).
    super::safe(&out).into_owned()
}

fn header(out: &mut String, run: RunId, state: &RunState) {
    let Some(started) = state.started() else {
        return;
    };
    let _ = writeln!(
        out,
        "run {run}  agent {}  {}  {} turns",
        started.agent.id,
        state.status(),
        state.responses(),
    );
    let _ = writeln!(out, "{}", usage_line(&started.agent.model, state.usage()));
    let _ = writeln!(out, "input: {}\n", one_line(&started.input, 110));
}

/// One event as JSON: `{"seq", "at", "type", ...fields}`, tool outputs as text.
pub fn event_json(seq: Seq, stamped: &Stamped, output: Option<&String>) -> serde_json::Value {
    let mut value = serde_json::to_value(&stamped.event).unwrap_or_default();
    // Externally tagged `{"Variant": fields}` becomes `{"type": "variant", ...fields}`.
    let mut object = serde_json::Map::new();
    object.insert("seq".into(), seq.0.into());
    object.insert("at".into(), stamped.at.0.into());
    object.insert("type".into(), stamped.event.kind().into());
    if let Some(fields) = value
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|f| f.as_object())
    {
        for (k, v) in fields {
            object.insert(k.clone(), v.clone());
        }
    }
    if let Some(text) = output {
        object.insert("output".into(), text.clone().into());
    }
    serde_json::Value::Object(object)
}
