//! Which shell words are plain text: what the policy may match against a rule.

/// The text a word stands for, if the shell would not expand it: plain characters,
/// single quotes, double quotes without `$` or backquotes, and backslash escapes.
/// Glob characters, `~` where the shell expands it, `$` and backquotes make a word
/// not static, and so do
/// unquoted braces that bash could expand (`{a,b}`, `{1..3}`); `{}` alone, and
/// braces inside quotes (`'{"a":1,"b":2}'`), are literal.
pub(crate) fn static_word(raw: &str) -> Option<String> {
    let mut unquoted_brace = false;
    let mut out = String::new();
    let mut chars = raw.chars();
    // The raw character before this one (quotes included).
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        let before = prev.replace(c);
        let prev = before;
        match c {
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(x) => out.push(x),
                None => return None,
            },
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(x) => out.push(x),
                    None => return None,
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(x @ ('"' | '\\' | '$' | '`')) => out.push(x),
                        Some('\n') => {}
                        Some(x) => {
                            out.push('\\');
                            out.push(x);
                        }
                        None => return None,
                    },
                    Some('$' | '`') | None => return None,
                    Some(x) => out.push(x),
                }
            },
            // `~` expands at the start of a word and after `=` or `:` (bash expands
            // `--prefix=~/x` too); elsewhere (`HEAD~1`) it is a plain character.
            '~' if prev.is_none_or(|p| matches!(p, '=' | ':')) => return None,
            '$' | '`' | '*' | '?' | '[' | ']' | '(' | ')' | '<' | '>' | '|' | '&' | ';' | '!' => {
                return None;
            }
            c if c.is_whitespace() => return None,
            x => {
                unquoted_brace |= matches!(x, '{' | '}');
                out.push(x);
            }
        }
    }
    if unquoted_brace && (raw.contains(',') || raw.contains("..")) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_words() {
        assert_eq!(static_word("node"), Some("node".into()));
        assert_eq!(static_word("'a b'"), Some("a b".into()));
        assert_eq!(static_word("\"a b\""), Some("a b".into()));
        assert_eq!(static_word("a\\ b"), Some("a b".into()));
        assert_eq!(static_word("c''url"), Some("curl".into()));
        assert_eq!(
            static_word("--flag=x,y:z@1+2%"),
            Some("--flag=x,y:z@1+2%".into())
        );
        assert_eq!(static_word("{}"), Some("{}".into()));
        // Found by the `exec_policy` fuzz target: quoted braces are not expanded, so
        // a JSON argument is a plain word.
        assert_eq!(
            static_word("'{\"a\":1,\"b\":2}'"),
            Some("{\"a\":1,\"b\":2}".into())
        );
        assert_eq!(static_word("\"{a,b}\""), Some("{a,b}".into()));
        assert_eq!(static_word("\\{a,b\\}"), Some("{a,b}".into()));
        assert_eq!(static_word("'{'a,b}"), None);
        assert_eq!(static_word("HEAD~1"), Some("HEAD~1".into()));
        assert_eq!(static_word("'~'"), Some("~".into()));
        for dynamic in [
            "$x",
            "\"$x\"",
            "`id`",
            "*.js",
            "a?",
            "{a,b}",
            "{1..3}",
            "~/x",
            "[ab]",
            "!x",
            "--prefix=~/x",
            "a:~/b",
            "~",
        ] {
            assert_eq!(static_word(dynamic), None, "{dynamic}");
        }
    }
}
