//! A small, independent POSIX lexer: what `exec_policy` compares the policy with.

/// Characters the policy treats as hiding what runs (it is stricter than the shell).
pub fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF)
}

/// What the small lexer made of a line.
#[derive(Debug)]
pub enum Lexed {
    /// Every simple command's argv.
    Known(Vec<Vec<String>>),
    /// It uses something the allowlist must never cover.
    Dangerous(&'static str),
    /// Outside the small language: no claim.
    Unknown,
}

/// Reads a line as POSIX `sh` would, for the subset of the language made of words
/// (plain characters, single and double quotes, backslashes), `;`, `&&`, `||`, `|`,
/// newlines and comments.
pub fn lex(line: &str) -> Lexed {
    if line.chars().any(is_hidden) {
        return Lexed::Dangerous("a control or invisible character");
    }
    let mut argvs: Vec<Vec<String>> = Vec::new();
    let mut argv: Vec<String> = Vec::new();
    // The word being read: its text, and its raw form (for reserved words).
    let mut word: Option<(String, String)> = None;
    // An operator that needs a command after it (`|`, `&&`, `||`).
    let mut pending = false;
    let mut chars = line.chars().peekable();

    fn end_word(word: &mut Option<(String, String)>, argv: &mut Vec<String>) -> Result<(), Lexed> {
        if let Some((text, raw)) = word.take() {
            if argv.is_empty() {
                const RESERVED: [&str; 20] = [
                    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while",
                    "until", "for", "in", "function", "select", "time", "[[", "]]", "!", "coproc",
                ];
                if RESERVED.contains(&raw.as_str()) {
                    return Err(Lexed::Unknown);
                }
                if let Some((name, _)) = raw.split_once('=') {
                    let mut cs = name.chars();
                    if cs
                        .next()
                        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
                    {
                        return Err(Lexed::Dangerous("an assignment"));
                    }
                    return Err(Lexed::Unknown);
                }
            }
            argv.push(text);
        }
        Ok(())
    }

    macro_rules! end_word {
        () => {
            if let Err(l) = end_word(&mut word, &mut argv) {
                return l;
            }
        };
    }
    macro_rules! push {
        ($raw:expr, $text:expr) => {{
            let w = word.get_or_insert_with(Default::default);
            w.0.push_str($text);
            w.1.push_str($raw);
        }};
    }
    // Ends a simple command at an operator; `needs_next` for `|`, `&&`, `||`.
    macro_rules! end_command {
        ($needs_next:expr) => {{
            end_word!();
            if argv.is_empty() {
                return Lexed::Unknown;
            }
            argvs.push(std::mem::take(&mut argv));
            pending = $needs_next;
        }};
    }

    // The previous character this loop read (an escape's `\\`, a quote's opening
    // quote), as the policy's word reader sees it.
    let mut last: Option<char> = None;
    while let Some(c) = chars.next() {
        let before = last.replace(c);
        match c {
            ' ' | '\t' => end_word!(),
            '\n' => {
                end_word!();
                if !argv.is_empty() {
                    argvs.push(std::mem::take(&mut argv));
                    pending = false;
                }
            }
            ';' => {
                if chars.peek() == Some(&';') {
                    return Lexed::Unknown;
                }
                end_command!(false);
            }
            '|' => match chars.peek() {
                Some('|') => {
                    chars.next();
                    end_command!(true);
                }
                Some('&') => return Lexed::Unknown,
                _ => end_command!(true),
            },
            '&' => {
                if chars.peek() == Some(&'&') {
                    chars.next();
                    end_command!(true);
                } else {
                    return Lexed::Dangerous("a background job or redirection (`&`)");
                }
            }
            '$' => return Lexed::Dangerous("an expansion (`$`)"),
            '`' => return Lexed::Dangerous("a command substitution (backquote)"),
            '<' | '>' => return Lexed::Dangerous("a redirection"),
            '(' | ')' => return Lexed::Dangerous("a subshell or substitution"),
            '*' | '?' | '[' | ']' => return Lexed::Dangerous("a glob"),
            // `~` expands at the start of a word and after `=` or `:`.
            '~' if word.is_none() || matches!(before, Some('=' | ':')) => {
                return Lexed::Dangerous("`~` where the shell expands it");
            }
            '{' | '}' | '!' => return Lexed::Unknown,
            // The shell splits only at space, tab and newline, but a no-break or
            // other Unicode space looks like one to a person: the policy never
            // takes a word with one outside quotes as plain.
            c if c.is_whitespace() => return Lexed::Dangerous("a Unicode space outside quotes"),
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(x) => push!(&format!("\\{x}"), &x.to_string()),
                None => return Lexed::Unknown,
            },
            '\'' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => text.push(x),
                        None => return Lexed::Unknown,
                    }
                }
                push!(&format!("'{text}'"), &text);
            }
            '"' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('$') => return Lexed::Dangerous("an expansion in double quotes"),
                        Some('`') => return Lexed::Dangerous("a backquote in double quotes"),
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => text.push(x),
                            Some('\n') => {}
                            Some(x) => {
                                text.push('\\');
                                text.push(x);
                            }
                            None => return Lexed::Unknown,
                        },
                        Some(x) => text.push(x),
                        None => return Lexed::Unknown,
                    }
                }
                push!("\"…\"", &text);
            }
            x => {
                let s = x.to_string();
                push!(&s, &s);
            }
        }
        if pending && !argv.is_empty() {
            pending = false;
        }
    }
    end_word!();
    if !argv.is_empty() {
        argvs.push(argv);
    } else if pending {
        return Lexed::Unknown;
    }
    Lexed::Known(argvs)
}
