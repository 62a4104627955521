//! What a person's "always" answer to a command stores.
//!
//! By default, exactly what was shown: the command line and its directory
//! ([`AllowRule::Custom`] with `{"command", "cwd"}`), which runs again unasked only
//! exactly so. A broader rule — any command that starts with the same argv, run in
//! the same directory (`{"prefix", "cwd"}`) — exists only when the person picks it,
//! and is offered with its words ("any command starting `npm test` in /w"). Even
//! then, each further argument is read by the program's model: an option that runs
//! code or writes outside the workspace still needs a person.
//!
//! Runs recorded by earlier builds may hold [`AllowRule::ExecPrefix`] rules (an argv
//! prefix in any directory); they are still honoured, the same way.

use serde::Deserialize;
use serde_json::json;

use super::analyze::analyze;
use crate::approval::AllowRule;

/// The tool name the rules are stored under.
pub(crate) const TOOL: &str = "exec";

/// The rule that allows exactly this command line in this directory.
pub(crate) fn exact_rule(command: &str, cwd: &str) -> AllowRule {
    AllowRule::Custom {
        tool: TOOL.to_owned(),
        rule: json!({"command": command, "cwd": cwd}).to_string(),
    }
}

/// The rule that allows commands starting with `argv` in this directory.
pub(crate) fn prefix_rule(argv: &[String], cwd: &str) -> AllowRule {
    AllowRule::Custom {
        tool: TOOL.to_owned(),
        rule: json!({"cwd": cwd, "prefix": argv}).to_string(),
    }
}

/// The rules a person may choose for "always", exact first, each with its words.
pub fn always_choices(command: &str, cwd: &str) -> Vec<(AllowRule, String)> {
    let mut out = vec![(
        exact_rule(command, cwd),
        format!("exactly `{command}` in {cwd}"),
    )];
    let a = analyze(command);
    if let [argv] = a.commands.as_slice()
        && a.concerns.is_empty()
    {
        out.push((
            prefix_rule(argv, cwd),
            format!(
                "any command starting `{}` in {cwd} (each further argument is still checked)",
                argv.join(" ")
            ),
        ));
    }
    out
}

/// A remembered exec rule, as the policy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// This command line in this directory.
    Exact,
    /// Commands starting with this argv (in `cwd`, if given).
    Prefix(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Exact { command: String, cwd: String },
    Prefix { prefix: Vec<String>, cwd: String },
}

/// What `rule` allows for `command` run in `cwd`, if it applies at all.
pub(crate) fn applies(rule: &AllowRule, command: &str, cwd: &str) -> Option<Remembered> {
    match rule {
        AllowRule::ExecPrefix { argv } if !argv.is_empty() => {
            Some(Remembered::Prefix(argv.clone()))
        }
        AllowRule::Custom { tool, rule } if tool == TOOL => {
            match serde_json::from_str::<Stored>(rule).ok()? {
                Stored::Exact { command: c, cwd: d } => {
                    (c == command && d == cwd).then_some(Remembered::Exact)
                }
                Stored::Prefix { prefix, cwd: d } => {
                    (d == cwd && !prefix.is_empty()).then_some(Remembered::Prefix(prefix))
                }
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_first_then_the_prefix_in_words() {
        let c = always_choices("npm test", "/w/x");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, exact_rule("npm test", "/w/x"));
        assert_eq!(c[0].1, "exactly `npm test` in /w/x");
        assert!(
            c[1].1
                .starts_with("any command starting `npm test` in /w/x")
        );
        assert_eq!(
            applies(&c[1].0, "npm test --watch", "/w/x"),
            Some(Remembered::Prefix(vec!["npm".into(), "test".into()]))
        );
        assert_eq!(applies(&c[1].0, "npm test", "/w/y"), None);
        assert_eq!(
            applies(&c[0].0, "npm test", "/w/x"),
            Some(Remembered::Exact)
        );
        assert_eq!(applies(&c[0].0, "npm test ", "/w/x"), None);
        // A line no argv prefix describes gets only the exact choice.
        assert_eq!(always_choices("make && ./run > log", "/w").len(), 1);
        assert_eq!(always_choices("a; b", "/w").len(), 1);
    }
}
