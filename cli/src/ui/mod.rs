//! What people see: approval prompts, live output, timelines.
//!
//! Everything printed that comes from a model, a tool or a file goes through
//! [`safe`] (or [`json_line`] for JSON): every secret value Keel holds is masked,
//! and control characters, escape sequences and bidi overrides are shown as
//! visible escapes (`\e[8m`, `\r`, `\u{202e}`), never sent to the terminal raw.

pub mod live;
pub mod prompt;
pub mod timeline;

use std::borrow::Cow;
use std::io::IsTerminal;

use keel_providers::Usage;

/// Whether we can ask the person at this terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Text from a model, a tool or a file, as it may be printed: secrets masked,
/// control characters visible (tabs and newlines kept).
pub fn safe(text: &str) -> Cow<'_, str> {
    match keel_tools::secrets::global().mask(text) {
        Cow::Borrowed(t) => keel_tools::terminal::visible(t),
        Cow::Owned(t) => Cow::Owned(keel_tools::terminal::visible(&t).into_owned()),
    }
}

/// A JSON value as one printable line: secrets masked, and the characters JSON
/// leaves raw that a terminal could act on (C1 controls, bidi overrides) escaped.
pub fn json_line(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let text = keel_tools::secrets::global().mask(&text).into_owned();
    keel_tools::terminal::json_safe(&text).into_owned()
}

/// Like [`json_line`], pretty-printed.
pub fn json_pretty(value: &impl serde::Serialize) -> String {
    let text =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let text = keel_tools::secrets::global().mask(&text).into_owned();
    keel_tools::terminal::json_safe(&text).into_owned()
}

/// `1.2s`, `340ms`.
pub fn duration_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// Tokens and the estimated cost of a run's usage.
pub fn usage_line(model: &str, usage: &Usage) -> String {
    let mut line = format!(
        "{} input tokens, {} output tokens",
        usage.total_input(),
        usage.output_tokens
    );
    if usage.cache_read_input_tokens + usage.cache_creation_input_tokens > 0 {
        line.push_str(&format!(
            " ({} cache reads, {} cache writes)",
            usage.cache_read_input_tokens, usage.cache_creation_input_tokens
        ));
    }
    if let Some(cost) = keel_providers::pricing::estimate(model, usage) {
        line.push_str(&format!(", ~${:.4} (estimated for {model})", cost.total()));
    }
    line
}

/// The first `lines` lines of `text`, each cut to `width` characters, with a note of
/// what was left out.
pub fn excerpt(text: &str, lines: usize, width: usize) -> String {
    let text = safe(text);
    let mut out = Vec::new();
    let total = text.lines().count();
    for line in text.lines().take(lines) {
        if line.chars().count() > width {
            let cut: String = line.chars().take(width).collect();
            out.push(format!("{cut}…"));
        } else {
            out.push(line.to_owned());
        }
    }
    if total > lines {
        out.push(format!("… ({} more lines)", total - lines));
    }
    out.join("\n")
}

/// One line: newlines shown as `⏎`, cut to `width` characters.
pub fn one_line(text: &str, width: usize) -> String {
    let flat = safe(text.trim()).replace('\n', " ⏎ ");
    if flat.chars().count() > width {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
