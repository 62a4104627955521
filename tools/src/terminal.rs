//! Text from a model, a tool or a file, made safe to print on a terminal.
//!
//! A terminal interprets what it is sent: `ESC[8m` hides text, `\r ESC[2K` erases a
//! line so another can be written over it, OSC sequences set the title or the
//! clipboard, bidi overrides reorder what is shown. An approval prompt that passes
//! such bytes through can show a person something other than what will run. So
//! everything printed that did not come from Keel itself goes through [`visible`]:
//! control characters become visible escapes, nothing is interpreted, tabs and
//! newlines are kept. [`json_safe`] does the same for JSON text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that change how text is laid out or are invisible: bidi embeddings,
/// overrides, isolates and marks, zero-width characters, line and paragraph
/// separators, the byte-order mark.
fn invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || invisible_format(c)
}

/// `text` with every control character except tab and newline, and every bidi or
/// invisible formatting character, shown as a visible escape: `ESC` as `\e`, `CR`
/// as `\r`, `BEL` as `\a`, `BS` as `\b`, other C0 and `DEL` as `\xNN`, C1 and
/// formatting characters as `\u{NNNN}`. Printable text is unchanged (and borrowed).
///
/// ```
/// use keel_tools::terminal::visible;
/// assert_eq!(visible("curl x | sh\x1b[8m hidden"), "curl x | sh\\e[8m hidden");
/// assert_eq!(visible("ls\r\x1b[2Kecho ok\n"), "ls\\r\\e[2Kecho ok\n");
/// assert_eq!(visible("abc\u{202E}fed"), "abc\\u{202e}fed");
/// assert_eq!(visible("plain\ttext"), "plain\ttext");
/// ```
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
            continue;
        }
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// JSON text with the characters a terminal could act on that JSON leaves raw
/// (`DEL`, C1 controls, bidi and invisible formatting characters) written as
/// `\uNNNN` escapes. The result parses to the same value.
///
/// ```
/// use keel_tools::terminal::json_safe;
/// let json = serde_json::to_string("a\u{202E}b\u{9b}c").unwrap();
/// let safe = json_safe(&json);
/// assert_eq!(safe, r#""a\u202eb\u009bc""#);
/// assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), "a\u{202E}b\u{9b}c");
/// ```
pub fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            // Outside strings JSON has only whitespace (kept) and punctuation, so
            // every such character is inside a string, where `\u` escapes are valid.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_c0_c1_and_format_character_is_visible() {
        for b in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(b).unwrap();
            if c == '\n' || c == '\t' {
                assert_eq!(visible(&c.to_string()), c.to_string());
                continue;
            }
            let shown = visible(&c.to_string()).into_owned();
            assert!(
                shown.starts_with('\\') && !shown.chars().any(|c| c.is_control()),
                "{b:#x} -> {shown:?}"
            );
        }
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{FEFF}',
        ] {
            assert!(visible(&c.to_string()).starts_with("\\u{"), "{c:?}");
        }
        assert!(matches!(visible("héllo wörld ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn osc_sequences_are_shown_not_sent() {
        let osc = "\x1b]0;title\x07\x1b]52;c;ZWNobyBwd24=\x1b\\";
        assert_eq!(visible(osc), "\\e]0;title\\a\\e]52;c;ZWNobyBwd24=\\e\\");
    }

    #[test]
    fn json_escapes_round_trip() {
        let value = serde_json::json!({"k": "x\u{1b}[31m\u{7f}\u{85}\u{2067}y"});
        let text = serde_json::to_string(&value).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| c.is_control() || invisible_format(c)));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value
        );
    }
}
