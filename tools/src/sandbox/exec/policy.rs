//! The exec policy: given a command line, its directory and the rules remembered
//! for the run, does it run, wait for a person, or never run?
//!
//! In order:
//! 1. **Deny rules** apply to every argv the analysis found, however nested, also
//!    with the command name reduced to its last component (`/bin/rm` is `rm`). A
//!    match refuses the command outright. If parts of the line could not be seen
//!    into and there are deny rules, the line needs a person.
//! 2. **Exact approvals**: a line a person answered "always" for, but that no argv
//!    prefix can describe (several commands, redirections, ...), is remembered as
//!    its exact text and directory, and runs again only exactly so.
//! 3. **`allow-always`** runs everything else.
//! 4. **Concerns** (redirections, substitutions, `&`, assignments, compound
//!    commands, functions, trampolines, control characters, unparsed text) always
//!    need a person.
//! 5. **Coverage**: every simple command must be covered, by an argv-prefix rule
//!    remembered for the run (any mode) or by an allowlist pattern (`allowlist`
//!    mode). Otherwise a person decides.

use serde_json::json;

use super::analyze::{Analysis, analyze, static_word};
use super::trampoline::basename;
use crate::approval::AllowRule;
use crate::config::ExecSecurity;
use crate::error::{Error, Result};

/// The tool name exact-command rules are stored under.
const TOOL: &str = "exec";

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
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err(Error::InvalidConfig("an empty exec pattern".into()));
        }
        let mut tokens = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let token = if *w == "*" {
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
        let mut i = 0;
        for token in &self.tokens {
            match token {
                Token::Rest => return true,
                Token::Any => {
                    if i >= argv.len() {
                        return false;
                    }
                    i += 1;
                }
                Token::Literal(l) => {
                    if argv.get(i) != Some(l) {
                        return false;
                    }
                    i += 1;
                }
            }
        }
        i == argv.len()
    }
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
        })
    }

    /// Decides on `command`, run in `cwd`, given the rules remembered for the run.
    pub fn check(&self, command: &str, cwd: &str, rules: &[AllowRule]) -> CommandCheck {
        let a = analyze(command);
        if let Some(reason) = self.denied(&a) {
            return CommandCheck::Denied { reason };
        }
        let unchecked_deny = if !self.deny.is_empty() && !a.opaque.is_empty() {
            Some(format!(
                "it cannot be fully checked against the deny rules: {}",
                a.opaque.join("; ")
            ))
        } else {
            None
        };
        let exact = exact_rule(command, cwd);
        if rules.contains(&exact) {
            return CommandCheck::Allowed {
                because: "a person allowed exactly this command in this directory".into(),
            };
        }
        if self.security == ExecSecurity::AllowAlways {
            return match unchecked_deny {
                Some(reason) => CommandCheck::NeedsApproval {
                    reason,
                    matched_rule: None,
                },
                None => CommandCheck::Allowed {
                    because: "security is allow-always".into(),
                },
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
        for argv in &a.commands {
            match self.cover(argv, rules) {
                Some(rule) => {
                    if !matched.contains(&rule) {
                        matched.push(rule);
                    }
                }
                None => uncovered.push(argv.join(" ")),
            }
        }
        let matched_rule = (!matched.is_empty()).then(|| matched.join(", "));
        if uncovered.is_empty() && !a.commands.is_empty() {
            return CommandCheck::Allowed {
                because: format!("covered by {}", matched.join(", ")),
            };
        }
        let reason = match self.security {
            ExecSecurity::ApprovalAlways => {
                "every command needs approval (security: approval-always)".to_owned()
            }
            _ if a.commands.is_empty() => "it runs no simple command the policy can check".into(),
            _ => format!("not covered by the allowlist: `{}`", uncovered.join("`, `")),
        };
        CommandCheck::NeedsApproval {
            reason,
            matched_rule,
        }
    }

    /// The rule that covers `argv`, if one does.
    fn cover(&self, argv: &[String], rules: &[AllowRule]) -> Option<String> {
        for rule in rules {
            if let AllowRule::ExecPrefix { argv: prefix } = rule
                && !prefix.is_empty()
                && argv.starts_with(prefix)
            {
                return Some(rule.to_string());
            }
        }
        if self.security == ExecSecurity::Allowlist {
            for p in &self.allow {
                if p.matches(argv) {
                    return Some(format!("allowlist `{}`", p.text));
                }
            }
        }
        None
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

    /// The rule to remember when a person answers "always": the exact argv of a
    /// plain single command (so it and its extensions run), otherwise the exact
    /// command line in this directory.
    pub fn always_rule(&self, command: &str, cwd: &str) -> AllowRule {
        let a = analyze(command);
        match a.commands.as_slice() {
            [argv] if a.concerns.is_empty() => AllowRule::ExecPrefix { argv: argv.clone() },
            _ => exact_rule(command, cwd),
        }
    }
}

/// The rule that allows exactly this command line in this directory.
pub(crate) fn exact_rule(command: &str, cwd: &str) -> AllowRule {
    AllowRule::Custom {
        tool: TOOL.to_owned(),
        rule: json!({"command": command, "cwd": cwd}).to_string(),
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
    fn always_rules() {
        let p = ExecPolicy::new(ExecSecurity::ApprovalAlways, &[], &[]).unwrap();
        assert_eq!(
            p.always_rule("npm install lodash", "/w"),
            AllowRule::ExecPrefix {
                argv: argv("npm install lodash")
            }
        );
        assert!(matches!(
            p.always_rule("npm i && npm t", "/w"),
            AllowRule::Custom { .. }
        ));
    }
}
