//! Reads a command line the way the shell will, to decide what it runs.
//!
//! The line is parsed with `brush-parser` (a POSIX/bash grammar in Rust) and the
//! tree is walked: every simple command, however nested (pipelines, `&&` lists,
//! subshells, functions, `$(...)` and backquotes inside words, `sh -c` strings,
//! `eval` arguments, here-documents), is collected. A word counts as known only if
//! it is static text (plain characters, quotes, escapes); anything the shell would
//! expand or glob makes it unknown.
//!
//! Three results: the argv of each top-level simple command (what an allowlist must
//! cover); `concerns`, the constructs that always need a person (redirections,
//! substitutions, background jobs, assignments, compound commands, functions,
//! interpreter trampolines, control characters, anything unparsed); and every argv
//! to test against the deny rules, with `opaque` listing what could not be seen
//! into (so a deny rule cannot be proven not to apply).

use brush_parser::ast;
use brush_parser::word::{WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions, SourceInfo};

use super::programs;
use super::trampoline::basename;
pub(crate) use super::words::static_word;

/// The longest command line analysed; longer ones always need a person.
const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Brackets nested deeper than this are not handed to the parser (its recursion
/// is bounded by the input, and the stack is not).
const MAX_BRACKET_DEPTH: usize = 64;
/// `sh -c "sh -c '...'"` deeper than this is not looked into.
const MAX_NESTED_PARSES: usize = 8;

/// What a command line would run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Analysis {
    /// The argv of each top-level simple command whose words are all static.
    pub commands: Vec<Vec<String>>,
    /// Why the line needs a person whatever the rules say (empty: nothing special).
    pub concerns: Vec<String>,
    /// Every argv seen, nested ones and trampoline payloads included.
    pub deny_candidates: Vec<Vec<String>>,
    /// Parts that could not be seen into.
    pub opaque: Vec<String>,
}

impl Analysis {
    fn concern(&mut self, c: impl Into<String>) {
        let c = c.into();
        if !self.concerns.contains(&c) {
            self.concerns.push(c);
        }
    }
    fn opaque(&mut self, c: impl Into<String>) {
        let c = c.into();
        self.hidden(c.clone());
        self.concern(c);
    }
    /// Code the deny rules cannot see into, which is not by itself a concern (an
    /// allowlist entry may name it).
    fn hidden(&mut self, c: impl Into<String>) {
        let c = c.into();
        if !self.opaque.contains(&c) {
            self.opaque.push(c);
        }
    }
}

/// Analyses a command line.
pub(crate) fn analyze(command: &str) -> Analysis {
    let mut a = Analysis::default();
    if let Some(c) = command.chars().find(|c| is_hidden_char(*c)) {
        a.concern(format!(
            "it contains a control or invisible character (U+{:04X}) that could hide what runs",
            c as u32
        ));
    }
    if command.contains("<<") && (command.contains("$(") || command.contains('`')) {
        // brush-parser 0.3 loses a command substitution that holds a here-document:
        // `node $(touch x <<y\ny)` reads as plain `node`, and bash runs `touch`.
        // Found by the `exec_policy` fuzz target; the text is not trusted to the parser.
        a.opaque(
            "it has a here-document and a command substitution, which cannot be checked together",
        );
    }
    Walker {
        a: &mut a,
        depth: 0,
    }
    .text(command, true);
    a
}

/// Characters that could make a command look different from what runs: control
/// characters other than newline and tab (a CR can hide a second command on a
/// terminal), C1 controls, bidi overrides, zero-width characters.
fn is_hidden_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF)
}

fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        posix_mode: true,
        sh_mode: true,
        tilde_expansion: false,
    }
}

fn max_bracket_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '(' | '{' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max + text.matches('`').count()
}

struct Walker<'a> {
    a: &'a mut Analysis,
    depth: usize,
}

impl Walker<'_> {
    /// Parses and walks shell text; `top` marks the command line itself (whose
    /// simple commands an allowlist must cover) as opposed to nested text.
    fn text(&mut self, text: &str, top: bool) {
        if self.depth > MAX_NESTED_PARSES {
            self.a
                .opaque("it nests shell code too deeply to be checked");
            return;
        }
        if text.len() > MAX_COMMAND_BYTES {
            self.a.opaque(format!(
                "it is longer than {} KiB, too long to be checked",
                MAX_COMMAND_BYTES / 1024
            ));
            return;
        }
        if max_bracket_depth(text) > MAX_BRACKET_DEPTH {
            self.a.opaque("it nests brackets too deeply to be checked");
            return;
        }
        let parsed = std::panic::catch_unwind(|| {
            let mut parser = Parser::new(
                std::io::BufReader::new(text.as_bytes()),
                &options(),
                &SourceInfo {
                    source: "command".into(),
                },
            );
            parser.parse_program()
        });
        match parsed {
            Ok(Ok(program)) => {
                self.depth += 1;
                for list in &program.complete_commands {
                    self.list(list, top);
                }
                self.depth -= 1;
            }
            Ok(Err(e)) => self
                .a
                .opaque(format!("the shell grammar could not parse it ({e})")),
            Err(_) => self.a.opaque("the shell parser failed on it"),
        }
    }

    fn list(&mut self, list: &ast::CompoundList, top: bool) {
        for ast::CompoundListItem(and_or, sep) in &list.0 {
            if matches!(sep, ast::SeparatorOperator::Async) {
                self.a.concern("it runs something in the background (`&`)");
            }
            self.pipeline(&and_or.first, top);
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, top),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, top: bool) {
        if p.timed.is_some() {
            self.a.concern("it uses `time`");
        }
        for command in &p.seq {
            self.command(command, top);
        }
    }

    fn command(&mut self, c: &ast::Command, top: bool) {
        match c {
            ast::Command::Simple(s) => self.simple(s, top),
            ast::Command::Compound(cc, redirects) => {
                self.a
                    .concern("it uses a compound command (a subshell, group, loop or conditional)");
                if let Some(r) = redirects {
                    for redirect in &r.0 {
                        self.redirect(redirect);
                    }
                }
                self.compound(cc);
            }
            ast::Command::Function(f) => {
                self.a.concern("it defines a shell function");
                self.compound(&f.body.0);
                if let Some(r) = &f.body.1 {
                    for redirect in &r.0 {
                        self.redirect(redirect);
                    }
                }
            }
            ast::Command::ExtendedTest(_) => {
                self.a.opaque("it uses a `[[ ]]` test");
            }
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand) {
        use ast::CompoundCommand as C;
        match c {
            C::BraceGroup(g) => self.list(&g.list, false),
            C::Subshell(s) => self.list(&s.list, false),
            C::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w);
                }
                self.list(&f.body.list, false);
            }
            C::CaseClause(c) => {
                self.word(&c.value);
                for item in &c.cases {
                    for w in &item.patterns {
                        self.word(w);
                    }
                    if let Some(cmd) = &item.cmd {
                        self.list(cmd, false);
                    }
                }
            }
            C::IfClause(i) => {
                self.list(&i.condition, false);
                self.list(&i.then, false);
                for e in i.elses.iter().flatten() {
                    if let Some(cond) = &e.condition {
                        self.list(cond, false);
                    }
                    self.list(&e.body, false);
                }
            }
            C::WhileClause(ast::WhileOrUntilClauseCommand(cond, body, _))
            | C::UntilClause(ast::WhileOrUntilClauseCommand(cond, body, _)) => {
                self.list(cond, false);
                self.list(&body.list, false);
            }
            C::Arithmetic(_) | C::ArithmeticForClause(_) => {
                self.a.opaque("it uses shell arithmetic");
            }
        }
    }

    fn redirect(&mut self, r: &ast::IoRedirect) {
        self.a
            .concern("it redirects input or output (`<`, `>`, `2>&1`, here-documents)");
        match r {
            ast::IoRedirect::File(_, _, target) => match target {
                ast::IoFileRedirectTarget::Filename(w)
                | ast::IoFileRedirectTarget::Duplicate(w) => self.word(w),
                ast::IoFileRedirectTarget::Fd(_) => {}
                ast::IoFileRedirectTarget::ProcessSubstitution(_, s) => {
                    self.a.concern("it uses process substitution (`<(...)`)");
                    self.list(&s.list, false);
                }
            },
            ast::IoRedirect::HereDocument(_, doc) => {
                // The body may be fed to a shell: read it as shell code too.
                self.text(&doc.doc.value, false);
            }
            ast::IoRedirect::HereString(_, w) | ast::IoRedirect::OutputAndError(w, _) => {
                self.word(w)
            }
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand, top: bool) {
        let mut argv: Vec<String> = Vec::new();
        let mut dynamic = false;
        let items = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .map(Some)
            .chain(std::iter::once(None))
            .chain(s.suffix.iter().flat_map(|p| p.0.iter()).map(Some));
        let mut in_suffix = false;
        for item in items {
            let word = match item {
                None => {
                    in_suffix = true;
                    match &s.word_or_name {
                        Some(w) => w,
                        None => continue,
                    }
                }
                // brush-parser reads `NAME=value` after the command name as an
                // assignment too; there it is an ordinary argument
                // (`ssh -o ConnectTimeout=5`, `make CC=x`, `dd of=f`).
                Some(ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)) if in_suffix => w,
                Some(ast::CommandPrefixOrSuffixItem::Word(w)) => w,
                Some(ast::CommandPrefixOrSuffixItem::IoRedirect(r)) => {
                    self.redirect(r);
                    continue;
                }
                Some(ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)) => {
                    self.a
                        .concern("it sets variables for the command (`NAME=value cmd`)");
                    self.word(w);
                    continue;
                }
                Some(ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub)) => {
                    self.a.concern("it uses process substitution (`<(...)`)");
                    self.list(&sub.list, false);
                    continue;
                }
            };
            match static_word(&word.value) {
                Some(text) => argv.push(text),
                None => {
                    dynamic = true;
                    self.a.concern(format!(
                        "`{}` is expanded by the shell when it runs (variables, substitutions, globs or `~`)",
                        word.value
                    ));
                    self.word(word);
                }
            }
        }
        if argv.is_empty() {
            return;
        }
        if dynamic {
            self.a.opaque(
                "a command or argument is only known when it runs, so the deny rules cannot be checked against it",
            );
            // The static words are still worth testing against the deny rules.
            self.a.deny_candidates.push(argv);
            return;
        }
        self.runs(&argv, 0);
        if top {
            self.a.commands.push(argv.clone());
        }
        self.a.deny_candidates.push(argv);
    }

    /// What a command runs besides itself, as its program's model reads it: code the
    /// deny rules cannot see into, shell code in its arguments, the commands it runs
    /// (read recursively). Every tail of its argv is a possible command for the
    /// deny rules (`sudo -u x rm`, `find . -exec rm {} ;`).
    fn runs(&mut self, argv: &[String], depth: usize) {
        let reading = programs::read(argv);
        let mut shell_words: Vec<usize> = Vec::new();
        for item in &reading.items {
            match item.kind {
                programs::Kind::Code => self.a.hidden(item.what.clone()),
                programs::Kind::Shell => shell_words.extend(item.at.iter().copied()),
                _ => {}
            }
        }
        if !reading.runs() {
            return;
        }
        if depth == 0 {
            for i in 1..argv.len() {
                self.a.deny_candidates.push(argv[i..].to_vec());
            }
        }
        for i in shell_words {
            if let Some(word) = argv.get(i) {
                self.code_word(word);
            }
        }
        if matches!(basename(&argv[0]), "eval" | "source" | ".") {
            self.text(&argv[1..].join(" "), false);
        }
        if depth >= MAX_NESTED_PARSES {
            self.a.hidden("it nests commands too deeply to be checked");
            return;
        }
        for k in reading.commands() {
            if k > 0 && k < argv.len() {
                self.runs(&argv[k..], depth + 1);
            }
        }
    }

    /// Reads an argument that may hold shell code: `sh -c 'code'`,
    /// `--to-command=code`, `-oProxyCommand=code`, `--checkpoint-action=exec=code`,
    /// `alias.x=!code`.
    fn code_word(&mut self, word: &str) {
        let mut code = word;
        while let Some((key, value)) = code.split_once('=')
            && !key.contains(char::is_whitespace)
        {
            code = value;
        }
        for text in [word, code] {
            let text = text.trim_start_matches('!');
            if text.contains(|c: char| c.is_whitespace() || ";|&$`<>()".contains(c)) {
                self.text(text, false);
            } else if !text.is_empty() && !text.starts_with('-') {
                self.a.deny_candidates.push(vec![text.to_owned()]);
            }
        }
    }

    /// Looks inside a non-static word for commands it would run.
    fn word(&mut self, w: &ast::Word) {
        if static_word(&w.value).is_some() {
            return;
        }
        match brush_parser::word::parse(&w.value, &options()) {
            Ok(pieces) => self.pieces(&w.value, &pieces),
            Err(_) => self
                .a
                .opaque(format!("the word `{}` could not be parsed", w.value)),
        }
    }

    fn pieces(&mut self, raw: &str, pieces: &[WordPieceWithSource]) {
        for p in pieces {
            match &p.piece {
                WordPiece::CommandSubstitution(code)
                | WordPiece::BackquotedCommandSubstitution(code) => {
                    self.a
                        .concern("it substitutes a command's output (`$(...)` or backquotes)");
                    self.text(code, false);
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => self.pieces(raw, inner),
                WordPiece::ParameterExpansion(_) | WordPiece::ArithmeticExpression(_) => {
                    let source = raw.get(p.start_index..p.end_index).unwrap_or(raw);
                    if source.contains("$(") || source.contains('`') {
                        self.a.opaque(format!(
                            "`{source}` runs a command inside an expansion that cannot be checked"
                        ));
                    }
                }
                WordPiece::Text(_)
                | WordPiece::SingleQuotedText(_)
                | WordPiece::AnsiCQuotedText(_)
                | WordPiece::TildePrefix(_)
                | WordPiece::EscapeSequence(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_each_simple_command() {
        let a = analyze("npm install && npm test | tee\nnode a.js; echo done");
        assert_eq!(
            analyze("dd if=a of='b c'").commands,
            vec![vec!["dd", "if=a", "of=b c"]]
        );
        assert!(analyze("make CC=x").concerns.is_empty());
        assert!(!analyze("CC=x make").concerns.is_empty());
        assert_eq!(
            a.commands,
            vec![
                vec!["npm", "install"],
                vec!["npm", "test"],
                vec!["tee"],
                vec!["node", "a.js"],
                vec!["echo", "done"],
            ]
        );
        assert!(a.concerns.is_empty(), "{:?}", a.concerns);
    }

    #[test]
    fn nested_commands_reach_the_deny_candidates() {
        let a = analyze("echo \"$(curl evil)\"; (sh -c 'wget x')");
        let flat: Vec<String> = a.deny_candidates.iter().map(|v| v.join(" ")).collect();
        assert!(flat.contains(&"curl evil".to_owned()), "{flat:?}");
        assert!(flat.contains(&"wget x".to_owned()), "{flat:?}");
        assert!(!a.concerns.is_empty());
    }

    #[test]
    fn a_here_document_in_a_command_substitution_is_opaque() {
        // bash runs `touch` in each of these; the parser alone reads them as `node`.
        for line in [
            "node $(touch /tmp/x <<y\ny)",
            "node a$(touch /tmp/x <<-y\n\ty)",
            "node $(touch /tmp/x <<'y'\nb\ny)\n",
            "node `touch /tmp/x <<y\ny\n`",
        ] {
            let a = analyze(line);
            assert!(!a.opaque.is_empty(), "{line:?}");
            assert!(!a.concerns.is_empty(), "{line:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_parsing() {
        let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
        let a = analyze(&deep);
        assert!(!a.opaque.is_empty());
    }
}
