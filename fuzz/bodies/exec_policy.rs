//! `exec_policy`: the shell-command policy (`keel_tools::sandbox::ExecPolicy`).
//!
//! The input is a command line. It is checked under five policies (an allowlist
//! `["frob *", "ls"]` — `frob` is a program Keel has no model of; an allowlist
//! `["node *", "ls"]`, with and without a deny rule; `allow-always` with deny rules;
//! `approval-always`) and in a few constructed forms. Properties:
//! - never a panic;
//! - under `approval-always` nothing runs unasked, except what a person allowed
//!   "always" — the exact rule, or the prefix rule when chosen — and neither lets a
//!   second command appended to the line run, nor the line in another directory;
//! - a command that runs a denied program is `Denied`, however it is quoted (unless
//!   the line nests too deeply to be parsed, when it needs a person), and is never
//!   `Allowed` wherever it sits in the line — also reached through a runner (awk,
//!   perl, python, node, sed, find, xargs, env, timeout, git aliases, ...), in
//!   every mode;
//! - under the allowlists, an independent, deliberately small POSIX lexer reads the
//!   line: if it sees an unquoted `$`, backquote, `<`, `>`, `&`, `(`, glob character,
//!   `~` where the shell expands it, an assignment or a control character, the line
//!   is never `Allowed`; if it reads the line completely, it is `Allowed` under
//!   `["frob *", "ls"]` exactly when every simple command is `ls` or `frob` with no
//!   option (a word starting with `-` or `+` before `--`): an option of a program
//!   the policy has no model of is one it cannot classify, so a person decides;
//! - an allowlisted program with an option its model does not know is never
//!   `Allowed` (`node --<input>`, `tar --<input>=x` for inputs that name no option).

use std::sync::atomic::{AtomicBool, Ordering};

use keel_tools::ExecSecurity;

mod lexer;
mod tables;

use keel_tools::sandbox::{CommandCheck, ExecPolicy, exec_always_choices};
use lexer::{Lexed, is_hidden, lex};
use tables::{NODE_LONG, RUNNER_PROGRAMS, RUNNERS, TAR_LONG};

const CWD: &str = "/ws";
const SENTINEL: &str = "keel-fuzz-sentinel";

/// The policies, compiled once.
#[derive(Debug)]
pub struct Policies {
    unmodelled: ExecPolicy,
    tar: ExecPolicy,
    runners_deny: ExecPolicy,
    allowlist: ExecPolicy,
    allowlist_deny: ExecPolicy,
    allow_always_deny: ExecPolicy,
    approval_always: ExecPolicy,
}

impl Policies {
    /// Compiles the policies the properties use.
    pub fn new() -> Result<Self, keel_tools::Error> {
        let allow = ["node *".to_owned(), "ls".to_owned()];
        let deny = [
            "rm *".to_owned(),
            "curl *".to_owned(),
            "git push *".to_owned(),
        ];
        let runners: Vec<String> = RUNNER_PROGRAMS.iter().map(|p| format!("{p} *")).collect();
        Ok(Self {
            tar: ExecPolicy::new(ExecSecurity::Allowlist, &["tar *".to_owned()], &[])?,
            runners_deny: ExecPolicy::new(ExecSecurity::Allowlist, &runners, &deny[..1])?,
            unmodelled: ExecPolicy::new(
                ExecSecurity::Allowlist,
                &["frob *".to_owned(), "ls".to_owned()],
                &[],
            )?,
            allowlist: ExecPolicy::new(ExecSecurity::Allowlist, &allow, &[])?,
            allowlist_deny: ExecPolicy::new(ExecSecurity::Allowlist, &allow, &deny[..1])?,
            allow_always_deny: ExecPolicy::new(ExecSecurity::AllowAlways, &[], &deny)?,
            approval_always: ExecPolicy::new(ExecSecurity::ApprovalAlways, &[], &deny[..1])?,
        })
    }

    /// Runs one input. Each constructed form costs a parse, so the fuzzer checks a
    /// sample of them (inputs that hash differently reach the others); the corpus
    /// test checks `every_form`.
    pub fn run(&self, data: &[u8], every_form: bool) {
        self.run_with(data, (!every_form).then(|| hash(data)));
    }

    fn run_with(&self, data: &[u8], sample: Option<usize>) {
        let command = String::from_utf8_lossy(data);
        let command = command.as_ref();

        let strict = self.approval_always.check(command, CWD, &[]);
        assert!(
            !is_allowed(&strict),
            "`{command:?}` ran unasked under approval-always: {strict:?}"
        );
        let lexed = lex(command);
        self.always_rule(command, &lexed);

        let allowlisted = self.allowlist.check(command, CWD, &[]);
        let unmodelled = self.unmodelled.check(command, CWD, &[]);
        let with_deny = self.allowlist_deny.check(command, CWD, &[]);
        let allow_always = self.allow_always_deny.check(command, CWD, &[]);
        if is_allowed(&with_deny) {
            assert!(
                is_allowed(&allowlisted),
                "`{command:?}`: adding a deny rule allowed it"
            );
        }

        match &lexed {
            Lexed::Dangerous(why) => {
                for check in [&allowlisted, &unmodelled] {
                    assert!(
                        !is_allowed(check),
                        "`{command:?}` has {why} but an allowlist allowed it: {check:?}"
                    );
                }
            }
            Lexed::Known(argvs) => {
                let covered = !argvs.is_empty() && argvs.iter().all(|a| unmodelled_covers(a));
                if heredoc_and_substitution(command) {
                    // Not trusted to the parser, even quoted: a person decides.
                    assert!(
                        !is_allowed(&unmodelled),
                        "`{command:?}` has a here-document and a substitution: {unmodelled:?}"
                    );
                } else {
                    assert_eq!(
                        is_allowed(&unmodelled),
                        covered,
                        "`{command:?}` reads as {argvs:?}; the allowlist said {unmodelled:?}"
                    );
                }
                // Under `node *`, only what the pattern matches can be allowed.
                if is_allowed(&allowlisted) {
                    assert!(
                        argvs.iter().all(|a| allowlist_matches(a)),
                        "`{command:?}` reads as {argvs:?}, not all `node *` or `ls`: {allowlisted:?}"
                    );
                }
                if let Some(argv) = argvs.iter().find(|a| denied_by_rules(a)) {
                    assert!(
                        matches!(allow_always, CommandCheck::Denied { .. }),
                        "`{command:?}` runs {argv:?}, which a deny rule names, but: {allow_always:?}"
                    );
                }
            }
            Lexed::Unknown => {}
        }

        self.compositions(command, &lexed, sample);
    }

    /// The rule a person's "always" stores allows the command (unless denied), and
    /// not a command appended on a line of its own (checked when the lexer can tell
    /// the appended line stays a command: no open quote, continuation or here-document).
    fn always_rule(&self, command: &str, lexed: &Lexed) {
        let p = &self.approval_always;
        let rule = p.always_rule(command, CWD);
        let rules = [rule.clone()];
        let again = p.check(command, CWD, &rules);
        assert!(
            matches!(
                again,
                CommandCheck::Allowed { .. } | CommandCheck::Denied { .. }
            ),
            "`{command:?}`: its own \"always\" rule {rule:?} does not allow it: {again:?}"
        );
        let elsewhere = p.check(command, "/elsewhere", &rules);
        assert!(
            !is_allowed(&elsewhere),
            "`{command:?}` allowed \"always\" in {CWD} is also allowed elsewhere: {elsewhere:?}"
        );
        // The broader rule a person may choose: the command itself runs (unless a
        // deny rule stops it or cannot see into it), a second command does not.
        let choices = exec_always_choices(command, CWD);
        assert_eq!(choices.first().map(|c| &c.0), Some(&rule));
        let Some((prefix, words)) = choices.get(1) else {
            return;
        };
        assert!(words.starts_with("any command starting `"), "{words}");
        let prefixed = [prefix.clone()];
        let again = p.check(command, CWD, &prefixed);
        match &again {
            CommandCheck::Allowed { .. } | CommandCheck::Denied { .. } => {}
            CommandCheck::NeedsApproval { reason, .. } => assert!(
                reason.contains("deny rules"),
                "`{command:?}`: its prefix rule {prefix:?} does not allow it: {again:?}"
            ),
        }
        let elsewhere = p.check(command, "/elsewhere", &prefixed);
        assert!(
            !is_allowed(&elsewhere),
            "`{command:?}` elsewhere: {elsewhere:?}"
        );
        if !command.contains(SENTINEL) && !matches!(lexed, Lexed::Unknown) {
            for rules in [&rules[..], &prefixed[..]] {
                let longer = format!("{command}\n{SENTINEL}");
                let check = p.check(&longer, CWD, rules);
                assert!(
                    !is_allowed(&check),
                    "`{command:?}` allowed \"always\" as {rules:?} also allows `{longer:?}`"
                );
            }
        }
    }

    /// A denied command placed in or around the input. Before the input, it runs
    /// whatever the input says; after it, only when the lexer read the input whole
    /// and it has no comment (a `#` or a trailing backslash would swallow it).
    fn compositions(&self, input: &str, lexed: &Lexed, sample: Option<usize>) {
        let quoted = shell_quote(input);
        // The policy does not hand lines with more than 64 brackets or backquotes
        // (quoted or not) to the parser, whose recursion the stack must bound: such
        // a line needs a person. Only "never allowed" is promised for it.
        let deep = input.chars().filter(|c| "([{`".contains(*c)).count() > 60;
        let plain = !deep && !input.chars().any(char::is_control);
        // The input as the arguments of a denied program, quoted every way.
        let rms = ["rm", "/bin/rm", "\\rm", "'rm'", "\"rm\"", "r''m"];
        for rm in pick(&rms, sample) {
            let line = format!("{rm} -rf {quoted}");
            for policy in [&self.allow_always_deny, &self.allowlist_deny] {
                let check = policy.check(&line, CWD, &[]);
                if plain {
                    assert!(
                        matches!(check, CommandCheck::Denied { .. }),
                        "`{line:?}` is not denied: {check:?}"
                    );
                } else {
                    assert!(!is_allowed(&check), "`{line:?}` was allowed: {check:?}");
                }
            }
        }
        // The input as a whole argument of an allowlisted program: node's script
        // (unless it reads as an option), an operand of a program without a model.
        let harmless_word =
            plain && !heredoc_and_substitution(input) && !input.chars().any(is_hidden);
        let as_option = input.starts_with('-') || input.starts_with('+');
        let line = format!("node {quoted}");
        let check = self.allowlist.check(&line, CWD, &[]);
        if harmless_word && !as_option {
            assert!(is_allowed(&check), "`{line:?}` is not allowed: {check:?}");
        }
        let line = format!("frob -- {quoted}");
        let check = self.unmodelled.check(&line, CWD, &[]);
        if harmless_word {
            assert!(is_allowed(&check), "`{line:?}` is not allowed: {check:?}");
        }
        // The input as an option: of a program without a model, of node (whose
        // options are all listed), of tar (when it names no tar option).
        let word: String = input
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        for (line, word) in [
            (format!("frob -{quoted}"), format!("-{input}")),
            (format!("frob +{quoted}"), format!("+{input}")),
            (format!("frob x --{quoted} y"), format!("--{input}")),
        ] {
            // `-`, `+` alone are operands and `--` ends the options.
            if matches!(word.as_str(), "-" | "+" | "--") {
                continue;
            }
            let check = self.unmodelled.check(&line, CWD, &[]);
            assert!(!is_allowed(&check), "`{line:?}` was allowed: {check:?}");
        }
        if !word.is_empty() && !TAR_LONG.iter().any(|o| o.starts_with(word.as_str())) {
            let line = format!("tar -xf a.tar --{word}=x");
            let check = self.tar.check(&line, CWD, &[]);
            assert!(!is_allowed(&check), "`{line:?}` was allowed: {check:?}");
        }
        if !word.is_empty() && !NODE_LONG.contains(&word.as_str()) {
            let line = format!("node --{word} a.js");
            let check = self.allowlist.check(&line, CWD, &[]);
            assert!(!is_allowed(&check), "`{line:?}` was allowed: {check:?}");
        }
        // A denied program reached through a runner, next to the input: never
        // allowed, in any mode (here-documents aside, every one of these runs `rm`).
        for runner in pick(RUNNERS, sample) {
            let line = format!("{runner} {quoted}");
            for policy in [
                &self.allow_always_deny,
                &self.allowlist_deny,
                &self.runners_deny,
            ] {
                let check = policy.check(&line, CWD, &[]);
                assert!(
                    !is_allowed(&check),
                    "`{line:?}` runs `rm` but was allowed: {check:?}"
                );
            }
        }
        let d = "rm -rf /";
        let mut lines = vec![
            format!("{d}; {input}"),
            format!("{d}\n{input}"),
            format!("{d} && {input}"),
            format!("{d} | {input}"),
            format!("{d} & {input}"),
            format!("sh -c '{d}'; {input}"),
            format!("({d}); {input}"),
            format!("{{ {d}; }}; {input}"),
            format!("xargs {d} {input}"),
            format!("echo \"$({d})\" {input}"),
            format!("echo `{d}` {input}"),
        ];
        if matches!(lexed, Lexed::Known(_)) && !input.contains('#') {
            lines.extend([
                format!("{input}; {d}"),
                format!("{input}\n{d}"),
                format!("{input} && {d}"),
                format!("{input} || {d}"),
                format!("{input} | {d}"),
                format!("{input} $({d})"),
                format!("{input} `{d}`"),
                format!("{input} \"$({d})\""),
            ]);
        }
        for line in pick(&lines, sample) {
            for policy in [&self.allow_always_deny, &self.allowlist_deny] {
                let check = policy.check(line, CWD, &[]);
                assert!(
                    !is_allowed(&check),
                    "`{line:?}` runs `{d}` but was allowed: {check:?}"
                );
            }
        }
    }
}

/// Keeps the shell parser's panics quiet. The policy catches them (brush-parser 0.3
/// unwraps an overflowing fd number, e.g. `99999999999999999999>x`) and then needs a
/// person for the line, which the properties check; but libFuzzer's panic hook aborts
/// on every panic, caught or not, and the test harness prints each. Every other panic
/// goes to the hook that was installed before, unchanged; a parser panic that escaped
/// the policy would still fail (libfuzzer-sys aborts on any panic that reaches it).
pub fn quiet_parser_panics() {
    static TOLD: AtomicBool = AtomicBool::new(false);
    let before = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_parser = info
            .location()
            .is_some_and(|l| l.file().contains("brush-parser"));
        if !in_parser {
            before(info);
        } else if !TOLD.swap(true, Ordering::Relaxed) {
            eprintln!("(the shell parser panicked, as it does on some inputs: {info})");
        }
    }));
}

/// All of `items`, or the two that `sample` picks.
fn pick<T>(items: &[T], sample: Option<usize>) -> Vec<&T> {
    match sample {
        None => items.iter().collect(),
        Some(h) => {
            let n = items.len();
            let (a, b) = (h % n, (h / n) % n);
            if a == b {
                vec![&items[a]]
            } else {
                vec![&items[a], &items[b]]
            }
        }
    }
}

/// FNV-1a: cheap, and every byte moves it.
fn hash(data: &[u8]) -> usize {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h >> 16) as usize
}

fn is_allowed(check: &CommandCheck) -> bool {
    matches!(check, CommandCheck::Allowed { .. })
}

/// `["frob *", "ls"]` covers `argv`: `ls` alone, or `frob` with no option.
fn unmodelled_covers(argv: &[String]) -> bool {
    match argv {
        [only] if only == "ls" => true,
        [first, rest @ ..] if first == "frob" => rest
            .iter()
            .take_while(|a| *a != "--")
            .all(|a| !(a.len() > 1 && (a.starts_with('-') || a.starts_with('+')))),
        _ => false,
    }
}

fn allowlist_matches(argv: &[String]) -> bool {
    match argv {
        [first, ..] if first == "node" => true,
        [only] => only == "ls",
        _ => false,
    }
}

fn denied_by_rules(argv: &[String]) -> bool {
    let name = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or_default();
    name == "rm" || name == "curl" || (name == "git" && argv.get(1).is_some_and(|a| a == "push"))
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The policy does not trust the parser with a here-document operator next to a
/// command substitution (brush-parser 0.3 loses the substitution), wherever they are
/// in the line, quoted or not.
fn heredoc_and_substitution(line: &str) -> bool {
    line.contains("<<") && (line.contains("$(") || line.contains('`'))
}
