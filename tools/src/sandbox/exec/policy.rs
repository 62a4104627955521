//! The exec policy: given a command line, its directory and the rules remembered
//! for the run, does it run, wait for a person, or never run?
//!
//! In order:
//! 1. **Deny rules** apply to every argv the analysis found, however nested (in
//!    `sh -c`, `$(...)`, `find -exec`, `xargs`, `env`, `timeout`, `ssh host cmd`,
//!    `git -c alias.x=!cmd`, ...), also with the command name reduced to its last
//!    component (`/bin/rm` is `rm`). A match refuses the command outright.
//! 2. **Exact approvals**: a line a person answered "always" for runs again
//!    unasked exactly so, in the same directory.
//! 3. **Unchecked deny rules**: if there are deny rules and the line runs code they
//!    cannot see into (an awk program, `perl -e`, `sed e`, `find -delete`, a script
//!    on standard input, anything the shell expands), a person decides — in every
//!    mode, `allow-always` included.
//! 4. **`allow-always`** runs everything else.
//! 5. **Concerns** (redirections, substitutions, `&`, assignments, compound
//!    commands, functions, control characters, unparsed text) always need a person.
//! 6. **Coverage**: every simple command must be covered by a rule remembered for
//!    the run (a prefix a person chose) or by an allowlist pattern (`allowlist`
//!    mode), and the words the rule does not name literally must all be harmless
//!    as the program's model reads them (`programs`): no option that runs code,
//!    runs a command, writes where the operands do not say, or that Keel does not
//!    understand; no path written outside the workspace or onto a protected path.
//!    Otherwise a person decides.

use std::path::{Path, PathBuf};

use super::always::{Remembered, applies, exact_rule};
use super::analyze::{Analysis, analyze, static_word};
use super::programs::{self, Kind, Place, Reading};
use super::trampoline::basename;
use crate::approval::AllowRule;
use crate::config::ExecSecurity;
use crate::error::{Error, Result};
use crate::sandbox::workspace::Protected;

/// How deep `timeout 5 nice cmd` is followed to find what covers `cmd`.
const MAX_WRAPPERS: usize = 8;

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// This exact argument.
    Literal(String),
    /// Any one argument.
    Any,
    /// Any arguments, none included (a trailing `*`).
    Rest,
}

/// An allowlist or deny pattern such as `npm install *`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self> {
        let words = split_words(text).ok_or_else(|| {
            Error::InvalidConfig(format!("exec pattern `{text}` has an unclosed quote"))
        })?;
        if words.is_empty() {
            return Err(Error::InvalidConfig("an empty exec pattern".into()));
        }
        let mut tokens = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let token = if w == "*" {
                if i + 1 == words.len() {
                    Token::Rest
                } else {
                    Token::Any
                }
            } else {
                let literal = static_word(w).ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "exec pattern `{text}`: `{w}` is not a plain word; patterns match whole \
                         arguments, with `*` alone standing for any argument(s)"
                    ))
                })?;
                Token::Literal(literal)
            };
            tokens.push(token);
        }
        if i_first_is_wild(&tokens) {
            return Err(Error::InvalidConfig(format!(
                "exec pattern `{text}` must start with a command name, not `*`"
            )));
        }
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    fn matches(&self, argv: &[String]) -> bool {
        self.named(argv).is_some()
    }

    /// Whether the pattern matches `argv`, and if so which words it names
    /// literally (the others matched `*`).
    fn named(&self, argv: &[String]) -> Option<Vec<bool>> {
        let mut named = vec![false; argv.len()];
        let mut i = 0;
        for token in &self.tokens {
            match token {
                Token::Rest => return Some(named),
                Token::Any => {
                    if i >= argv.len() {
                        return None;
                    }
                    i += 1;
                }
                Token::Literal(l) => {
                    if argv.get(i) != Some(l) {
                        return None;
                    }
                    named[i] = true;
                    i += 1;
                }
            }
        }
        (i == argv.len()).then_some(named)
    }
}

/// Splits a pattern into words the way the shell would (quotes keep spaces), each
/// still in its raw form; `None` if a quote is not closed.
fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
                continue;
            }
            (None, '\\') => {
                let w = word.get_or_insert_with(String::new);
                w.push(c);
                w.push(chars.next()?);
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                let w = word.get_or_insert_with(String::new);
                w.push(c);
                w.push(chars.next()?);
                continue;
            }
            _ => {}
        }
        word.get_or_insert_with(String::new).push(c);
    }
    if quote.is_some() {
        return None;
    }
    words.extend(word);
    Some(words)
}

fn i_first_is_wild(tokens: &[Token]) -> bool {
    !matches!(tokens.first(), Some(Token::Literal(_)))
}

/// The verdict on one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCheck {
    /// It runs without asking.
    Allowed {
        /// Why (the rules that covered it, or the mode).
        because: String,
    },
    /// A person must approve it.
    NeedsApproval {
        /// Why.
        reason: String,
        /// Rules that covered some of its commands, if any.
        matched_rule: Option<String>,
    },
    /// It may not run.
    Denied {
        /// Why.
        reason: String,
    },
}

/// The compiled exec policy.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    security: ExecSecurity,
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
    bounds: Option<Bounds>,
}

/// The workspace, for judging the paths commands write.
#[derive(Debug, Clone)]
struct Bounds {
    root: PathBuf,
    protected: Protected,
}

impl ExecPolicy {
    /// Compiles the allowlist and deny patterns.
    pub fn new(security: ExecSecurity, allowlist: &[String], deny: &[String]) -> Result<Self> {
        Ok(Self {
            security,
            allow: allowlist
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
            deny: deny
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
            bounds: None,
        })
    }

    /// Judges the paths commands write against this workspace: inside it and off
    /// protected paths they need no naming. Without it, every written path must be
    /// named by a rule.
    pub(crate) fn within(mut self, root: &Path, protected: Protected) -> Self {
        self.bounds = Some(Bounds {
            root: root.to_path_buf(),
            protected,
        });
        self
    }

    /// Decides on `command`, run in `cwd`, given the rules remembered for the run.
    pub fn check(&self, command: &str, cwd: &str, rules: &[AllowRule]) -> CommandCheck {
        let a = analyze(command);
        if let Some(reason) = self.denied(&a) {
            return CommandCheck::Denied { reason };
        }
        if rules
            .iter()
            .any(|r| applies(r, command, cwd) == Some(Remembered::Exact))
        {
            return CommandCheck::Allowed {
                because: "a person allowed exactly this command in this directory".into(),
            };
        }
        if !self.deny.is_empty() && !a.opaque.is_empty() {
            return CommandCheck::NeedsApproval {
                reason: format!(
                    "it cannot be fully checked against the deny rules: {}",
                    a.opaque.join("; ")
                ),
                matched_rule: None,
            };
        }
        if self.security == ExecSecurity::AllowAlways {
            return CommandCheck::Allowed {
                because: "security is allow-always".into(),
            };
        }
        if !a.concerns.is_empty() {
            return CommandCheck::NeedsApproval {
                reason: a.concerns.join("; "),
                matched_rule: None,
            };
        }
        let mut matched = Vec::new();
        let mut uncovered = Vec::new();
        let mut partial = Vec::new();
        for argv in &a.commands {
            match self.cover(argv, command, cwd, rules, 0) {
                Ok(rule) => {
                    if !matched.contains(&rule) {
                        matched.push(rule);
                    }
                }
                Err(Some(why)) => partial.push(why),
                Err(None) => uncovered.push(argv.join(" ")),
            }
        }
        let matched_rule = (!matched.is_empty()).then(|| matched.join(", "));
        if uncovered.is_empty() && partial.is_empty() && !a.commands.is_empty() {
            return CommandCheck::Allowed {
                because: format!("covered by {}", matched.join(", ")),
            };
        }
        let mut reasons = partial;
        if !uncovered.is_empty() {
            reasons.push(match self.security {
                ExecSecurity::ApprovalAlways => {
                    "every command needs approval (security: approval-always)".to_owned()
                }
                _ => format!("not covered by the allowlist: `{}`", uncovered.join("`, `")),
            });
        }
        if a.commands.is_empty() {
            reasons.push("it runs no simple command the policy can check".into());
        }
        CommandCheck::NeedsApproval {
            reason: reasons.join("; "),
            matched_rule,
        }
    }

    /// The rule that covers `argv`: `Err(None)` when no rule matches it, or
    /// `Err(Some(why))` when rules match but leave a word that is not harmless.
    fn cover(
        &self,
        argv: &[String],
        command: &str,
        cwd: &str,
        rules: &[AllowRule],
        depth: usize,
    ) -> Result<String, Option<String>> {
        let mut candidates: Vec<(String, Vec<bool>)> = Vec::new();
        for rule in rules {
            if let Some(Remembered::Prefix(prefix)) = applies(rule, command, cwd)
                && argv.starts_with(&prefix)
            {
                let named = (0..argv.len()).map(|i| i < prefix.len()).collect();
                candidates.push((rule.to_string(), named));
            }
        }
        if self.security == ExecSecurity::Allowlist {
            for p in &self.allow {
                if let Some(named) = p.named(argv) {
                    candidates.push((format!("allowlist `{}`", p.text), named));
                }
            }
        }
        if candidates.is_empty() {
            return Err(None);
        }
        let reading = self.read(argv, cwd);
        let mut first_why = None;
        for (rule, named) in candidates {
            let left: Vec<&programs::Item> = reading
                .items
                .iter()
                .filter(|item| !item.at.iter().all(|&i| named.get(i) == Some(&true)))
                .filter(|item| match item.kind {
                    Kind::Wraps(k) if depth < MAX_WRAPPERS && k < argv.len() => self
                        .cover(&argv[k..], command, cwd, rules, depth + 1)
                        .is_err(),
                    _ => true,
                })
                .collect();
            if left.is_empty() {
                return Ok(rule);
            }
            first_why.get_or_insert_with(|| {
                format!(
                    "{rule} matches `{}` but does not name what a person must see: {}",
                    argv.join(" "),
                    left.iter()
                        .map(|i| i.what.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            });
        }
        Err(first_why)
    }

    /// `argv` as its program's model reads it, with the paths it writes judged
    /// against the workspace (those inside it, off protected paths, need no naming).
    fn read(&self, argv: &[String], cwd: &str) -> Reading {
        let mut reading = programs::read(argv);
        if let Some(b) = &self.bounds {
            let protected = |rel: &Path| b.protected.matches(rel).is_some();
            let place = Place {
                root: &b.root,
                cwd: Path::new(cwd),
                protected: &protected,
            };
            reading.items.retain_mut(|item| match &item.kind {
                Kind::Target(path) => match place.judge(path) {
                    None => false,
                    Some(why) => {
                        item.what = format!("{} ({why})", item.what);
                        true
                    }
                },
                _ => true,
            });
        }
        reading
    }

    fn denied(&self, a: &Analysis) -> Option<String> {
        for argv in &a.deny_candidates {
            let mut short = argv.clone();
            if let Some(first) = short.first_mut() {
                *first = basename(first).to_owned();
            }
            for p in &self.deny {
                if p.matches(argv) || p.matches(&short) {
                    return Some(format!(
                        "`{}` matches the deny rule `{}`",
                        argv.join(" "),
                        p.text
                    ));
                }
            }
        }
        None
    }

    /// The rule a person's plain "always" stores: exactly this command line in this
    /// directory (see `always` for the broader choice).
    pub fn always_rule(&self, command: &str, cwd: &str) -> AllowRule {
        exact_rule(command, cwd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn patterns_match_whole_tokens() {
        let p = Pattern::parse("npm install *").unwrap();
        assert!(p.matches(&argv("npm install")));
        assert!(p.matches(&argv("npm install lodash --save")));
        assert!(!p.matches(&argv("npm test")));
        assert!(!p.matches(&argv("npm")));
        let exact = Pattern::parse("git status").unwrap();
        assert!(exact.matches(&argv("git status")));
        assert!(!exact.matches(&argv("git status --short")));
        let middle = Pattern::parse("docker * ps").unwrap();
        assert!(middle.matches(&argv("docker x ps")));
        assert!(!middle.matches(&argv("docker ps")));
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for bad in ["", "*", "node*", "node $(x)", "* rm"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_substitution_hiding_in_a_here_document_is_not_allowed() {
        // Found by the `exec_policy` fuzz target: allowed as `node`, run by bash.
        let line = "node $(rm -rf /tmp/x <<y\ny)";
        let allowlist =
            ExecPolicy::new(ExecSecurity::Allowlist, &["node *".to_owned()], &[]).unwrap();
        assert!(matches!(
            allowlist.check(line, "/w", &[]),
            CommandCheck::NeedsApproval { .. }
        ));
        let deny = ExecPolicy::new(ExecSecurity::AllowAlways, &[], &["rm *".to_owned()]).unwrap();
        assert!(!matches!(
            deny.check(line, "/w", &[]),
            CommandCheck::Allowed { .. }
        ));
    }

    #[test]
    fn always_is_exact() {
        let p = ExecPolicy::new(ExecSecurity::ApprovalAlways, &[], &[]).unwrap();
        let rule = p.always_rule("rm build.log", "/w");
        assert_eq!(rule, exact_rule("rm build.log", "/w"));
        let rules = [rule];
        assert!(matches!(
            p.check("rm build.log", "/w", &rules),
            CommandCheck::Allowed { .. }
        ));
        for other in ["rm build.log -rf /home", "rm build.log /etc/x"] {
            assert!(
                matches!(
                    p.check(other, "/w", &rules),
                    CommandCheck::NeedsApproval { .. }
                ),
                "{other}"
            );
        }
        assert!(matches!(
            p.check("rm build.log", "/elsewhere", &rules),
            CommandCheck::NeedsApproval { .. }
        ));
    }

    #[test]
    fn patterns_split_like_the_shell_and_name_what_they_spell() {
        let p = Pattern::parse("awk '{print $1}' *").unwrap();
        assert_eq!(
            p.named(&argv("awk {print$1} f")),
            None,
            "the program is one word"
        );
        let words = vec!["awk".to_owned(), "{print $1}".to_owned(), "f".to_owned()];
        assert_eq!(p.named(&words), Some(vec![true, true, false]));
        assert!(Pattern::parse("awk '{print").is_err());
        let star = Pattern::parse("echo '*'").unwrap();
        assert!(star.matches(&argv("echo *")));
        assert!(!star.matches(&argv("echo x")));
    }
}
