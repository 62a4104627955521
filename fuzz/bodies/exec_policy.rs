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
use keel_tools::sandbox::{CommandCheck, ExecPolicy, exec_always_choices};

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
        for line in [
            format!("frob -{quoted}"),
            format!("frob +{quoted}"),
            format!("frob x --{quoted} y"),
        ] {
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

/// Ways to reach `rm` through another program; the input is appended to each.
const RUNNERS: &[&str] = &[
    "awk 'BEGIN{system(\"rm -rf /\")}'",
    "perl -e 'unlink \"/x\"'",
    "python3 -c 'import os; os.remove(\"/x\")'",
    "node -e 'require(\"fs\").rmSync(\"/x\")'",
    "sed 'e rm -rf /'",
    "find / -delete",
    "find / -exec rm -rf {} ';'",
    "xargs rm -rf",
    "env rm -rf",
    "/usr/bin/env rm -rf",
    "timeout 5 rm -rf",
    "nice -n 1 rm -rf",
    "nohup rm -rf",
    "git -c alias.x='!rm -rf /' x",
    "tar -xf a.tar --to-command='rm -rf /'",
    "ssh -oProxyCommand='rm -rf /' host",
    "make --eval='x: ; rm -rf /' x",
    "sort --compress-program='rm -rf /'",
    "sh -c 'rm -rf /'",
];

/// The programs `RUNNERS` start with, all allowlisted in `runners_deny`.
const RUNNER_PROGRAMS: &[&str] = &[
    "awk", "perl", "python3", "node", "sed", "find", "xargs", "env", "timeout", "nice", "nohup",
    "git", "tar", "ssh", "make", "sort", "sh",
];

/// Long options of tar the policy knows (a prefix of one is understood).
const TAR_LONG: &[&str] = &[
    "catenate",
    "concatenate",
    "create",
    "diff",
    "compare",
    "delete",
    "append",
    "list",
    "test-label",
    "update",
    "extract",
    "get",
    "show-defaults",
    "no-recursion",
    "recursion",
    "auto-compress",
    "bzip2",
    "xz",
    "lzip",
    "lzma",
    "lzop",
    "gzip",
    "gunzip",
    "ungzip",
    "compress",
    "uncompress",
    "zstd",
    "use-compress-program",
    "file",
    "directory",
    "info-script",
    "new-volume-script",
    "to-command",
    "checkpoint",
    "checkpoint-action",
    "rsh-command",
    "rmt-command",
    "index-file",
    "listed-incremental",
    "incremental",
    "absolute-names",
    "blocking-factor",
    "read-full-records",
    "ignore-zeros",
    "ignore-failed-read",
    "ignore-command-error",
    "warning",
    "dereference",
    "hard-dereference",
    "format",
    "keep-old-files",
    "skip-old-files",
    "keep-newer-files",
    "keep-directory-symlink",
    "overwrite",
    "overwrite-dir",
    "no-overwrite-dir",
    "unlink-first",
    "recursive-unlink",
    "remove-files",
    "to-stdout",
    "touch",
    "preserve-permissions",
    "same-permissions",
    "no-same-permissions",
    "same-owner",
    "no-same-owner",
    "numeric-owner",
    "owner",
    "group",
    "mode",
    "mtime",
    "sort",
    "strip-components",
    "transform",
    "xform",
    "exclude",
    "exclude-from",
    "exclude-vcs",
    "exclude-vcs-ignores",
    "exclude-backups",
    "exclude-caches",
    "exclude-caches-all",
    "exclude-caches-under",
    "exclude-tag",
    "exclude-tag-all",
    "exclude-tag-under",
    "files-from",
    "null",
    "no-null",
    "wildcards",
    "no-wildcards",
    "anchored",
    "no-anchored",
    "ignore-case",
    "no-ignore-case",
    "wildcards-match-slash",
    "no-wildcards-match-slash",
    "unquote",
    "no-unquote",
    "verbatim-files-from",
    "no-verbatim-files-from",
    "verbose",
    "totals",
    "utc",
    "full-time",
    "check-links",
    "preserve-order",
    "same-order",
    "sparse",
    "sparse-version",
    "verify",
    "interactive",
    "confirmation",
    "one-file-system",
    "one-top-level",
    "newer",
    "after-date",
    "newer-mtime",
    "starting-file",
    "tape-length",
    "multi-volume",
    "label",
    "block-number",
    "quoting-style",
    "quote-chars",
    "no-quote-chars",
    "show-transformed-names",
    "show-stored-names",
    "level",
    "atime-preserve",
    "delay-directory-restore",
    "no-delay-directory-restore",
    "xattrs",
    "no-xattrs",
    "xattrs-include",
    "xattrs-exclude",
    "selinux",
    "no-selinux",
    "acls",
    "no-acls",
    "force-local",
    "no-auto-compress",
    "occurrence",
    "backup",
    "suffix",
    "volno-file",
    "record-size",
    "posix",
    "old-archive",
    "portability",
    "seek",
    "no-seek",
    "clamp-mtime",
    "pax-option",
    "set-mtime-format",
    "help",
    "usage",
    "version",
];

/// Long options node has (node takes no abbreviations).
const NODE_LONG: &[&str] = &[
    "eval",
    "print",
    "require",
    "import",
    "loader",
    "experimental-loader",
    "interactive",
    "check",
    "inspect",
    "inspect-brk",
    "inspect-port",
    "inspect-wait",
    "env-file",
    "env-file-if-exists",
    "test",
    "watch",
    "watch-path",
    "no-warnings",
    "enable-source-maps",
    "max-old-space-size",
    "stack-size",
    "input-type",
    "version",
    "help",
    "trace-warnings",
    "trace-deprecation",
    "pending-deprecation",
    "throw-deprecation",
    "abort-on-uncaught-exception",
    "experimental-vm-modules",
    "experimental-strip-types",
    "conditions",
    "title",
    "unhandled-rejections",
    "no-deprecation",
    "preserve-symlinks",
    "redirect-warnings",
    "test-reporter",
    "test-name-pattern",
    "test-only",
    "run",
    "openssl-config",
    "icu-data-dir",
    "report-on-signal",
];

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

/// Characters the policy treats as hiding what runs (it is stricter than the shell).
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF)
}

/// What the small lexer made of a line.
#[derive(Debug)]
enum Lexed {
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
fn lex(line: &str) -> Lexed {
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

/// The policy does not trust the parser with a here-document operator next to a
/// command substitution (brush-parser 0.3 loses the substitution), wherever they are
/// in the line, quoted or not.
fn heredoc_and_substitution(line: &str) -> bool {
    line.contains("<<") && (line.contains("$(") || line.contains('`'))
}
