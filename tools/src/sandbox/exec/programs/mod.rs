//! What one simple command does, option by option: the programs Keel has a model
//! of, and how each reads its arguments.
//!
//! [`read`] turns an argv into a [`Reading`]: the words that run code, run another
//! command, write files beyond the operands, name a path the program writes, or
//! that Keel does not understand. An allowlist entry covers an invocation only if
//! each of those words is one the entry names literally (a person wrote it); every
//! other word must be harmless. So `tar *` admits `tar -xzf a.tgz` but not
//! `tar -xf a.tar --to-comm=sh`, and `awk *` admits no awk program at all, while
//! `awk '{print $1}' *` admits exactly that one.
//!
//! A program without a model is read strictly: any option is not understood (a
//! person decides); plain operands are fine.
//!
//! The models follow each program's own parser (GNU `getopt_long`, git's
//! parse-options, OpenSSH's getopt, ...; see `options`) and the public GTFOBins
//! catalogue of "command" and "file write" techniques.

mod archive;
mod build;
mod find;
mod git;
mod interp;
mod net;
mod sed;
mod simple;
mod wrap;

use std::path::Path;

use crate::sandbox::workspace::normalize;

pub(crate) use git::discovery as git_discovery;

use super::options::{self, Class, Parsed, Syntax, Table};
use super::trampoline::{basename, generic};

/// What a word (or words) of an argv does, when it is not harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Runs code the command line does not show as a command (an awk program,
    /// `perl -e`, `sed e`, a git config key, a script read from standard input).
    Code,
    /// Runs a shell command line or argv written in these words (`find -exec`,
    /// `tar --to-command=`, `ssh host cmd`, `sh -c`): the policy reads it.
    Shell,
    /// Runs the command that starts at this argv index (`xargs cmd`,
    /// `find -exec cmd ;`): all of it must be named.
    Command(usize),
    /// Runs the command that starts at this argv index and nothing else
    /// (`timeout 5 cmd`, `nice cmd`): covered where that command is covered.
    Wraps(usize),
    /// Writes or deletes files its operands do not plainly name, or changes the
    /// system (`sort -o`, `find -delete`, `date -s`).
    Writes,
    /// A path the program writes (an operand of `cp`, `rm`, `tee`; `sort -o`):
    /// harmless inside the workspace and outside protected paths.
    Target(String),
    /// Not understood.
    Unknown,
}

/// One thing a person must see, at these argv positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    /// The argv positions (all must be named by a rule for it to cover them).
    pub at: Vec<usize>,
    /// What they do.
    pub kind: Kind,
    /// Why, for the person (`` `--to-comm=sh` runs a command (tar --to-command) ``).
    pub what: String,
}

/// How one argv reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// What is not harmless; empty: every word is.
    pub items: Vec<Item>,
}

impl Reading {
    fn push(&mut self, at: Vec<usize>, kind: Kind, what: impl Into<String>) {
        self.items.push(Item {
            at,
            kind,
            what: what.into(),
        });
    }

    /// Code read from standard input: no rule can name it (its position is past
    /// the argv), so only a person's exact approval covers it.
    fn stdin_code(&mut self, argv: &[String], what: impl Into<String>) {
        self.push(vec![argv.len()], Kind::Code, what);
    }

    /// Whether it runs other commands or code at all.
    pub fn runs(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(
                i.kind,
                Kind::Code | Kind::Shell | Kind::Command(_) | Kind::Wraps(_)
            )
        })
    }

    /// Where the commands it runs start.
    pub fn commands(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().filter_map(|i| match i.kind {
            Kind::Command(k) | Kind::Wraps(k) => Some(k),
            _ => None,
        })
    }
}

/// Where a command runs, for judging the paths it writes.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    /// The workspace root.
    pub root: &'a Path,
    /// The command's directory (absolute).
    pub cwd: &'a Path,
    /// Whether a path (relative to the root) is protected.
    pub protected: &'a dyn Fn(&Path) -> bool,
}

impl Place<'_> {
    /// Why writing `word` is not harmless, if it is not: it leaves the workspace
    /// (by its text: `..`, an absolute path) or lands on a protected path. Symlinks
    /// inside the workspace are not followed here; OS isolation confines writes.
    pub fn judge(&self, word: &str) -> Option<String> {
        if word.is_empty() || word == "-" {
            return None;
        }
        let p = Path::new(word);
        let full = normalize(&if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.cwd.join(p)
        });
        match full.strip_prefix(self.root) {
            Ok(rel) if (self.protected)(rel) => Some(format!("`{word}` is a protected path")),
            Ok(_) => None,
            Err(_) => Some(format!("`{word}` is outside the workspace")),
        }
    }
}

/// Reads one simple command.
pub(crate) fn read(argv: &[String]) -> Reading {
    let Some(first) = argv.first() else {
        return Reading::default();
    };
    let name = basename(first);
    if let Some(r) = special(name, argv) {
        return r;
    }
    if let Some(why) = generic(name) {
        let mut r = Reading::default();
        if argv.len() > 1 {
            r.push(
                (1..argv.len()).collect(),
                Kind::Shell,
                format!("`{name}` {why}"),
            );
        }
        return r;
    }
    if let Some(model) = simple::model(name) {
        return model.read(name, argv);
    }
    unmodelled(name, argv)
}

fn special(name: &str, argv: &[String]) -> Option<Reading> {
    Some(match name {
        "git" => git::read(argv),
        "tar" => archive::tar(argv),
        "zip" => archive::zip(argv),
        "unzip" => archive::unzip(argv),
        "find" => find::read(argv),
        "sed" => sed::read(argv),
        "awk" | "gawk" | "mawk" | "nawk" => interp::awk(name, argv),
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "yash" | "fish" | "csh" | "tcsh"
        | "ash" => interp::shell(name, argv),
        "perl" | "python" | "python2" | "python3" | "ruby" | "node" | "nodejs" | "php" | "lua"
        | "luajit" | "tclsh" | "deno" | "bun" => interp::interpreter(name, argv),
        "env" | "timeout" | "nice" | "nohup" | "stdbuf" | "xargs" => wrap::read(name, argv),
        "ssh" | "scp" | "sftp" | "rsync" | "curl" | "wget" => net::read(name, argv),
        "make" | "gmake" | "npm" | "npx" | "yarn" | "pnpm" | "cargo" | "pip" | "pip3" => {
            build::read(name, argv)
        }
        "dd" => simple::dd(argv),
        "date" => simple::date(argv),
        _ => return None,
    })
}

/// A program Keel has no model of: options are not understood.
fn unmodelled(name: &str, argv: &[String]) -> Reading {
    let mut r = Reading::default();
    for (i, a) in argv.iter().enumerate().skip(1) {
        if a == "--" {
            break;
        }
        if a.len() > 1 && (a.starts_with('-') || a.starts_with('+')) {
            r.push(
                vec![i],
                Kind::Unknown,
                format!("`{a}`: Keel has no model of `{name}`'s options"),
            );
        }
    }
    r
}

/// Reads `argv[start..]` against a table and turns each option that is not
/// harmless into an item.
pub(crate) fn with_table(
    r: &mut Reading,
    prog: &str,
    table: &Table,
    syntax: Syntax,
    argv: &[String],
    start: usize,
) -> Parsed {
    let parsed = options::parse(table, syntax, argv, start);
    for f in &parsed.found {
        let Some(o) = f.opt else {
            if syntax.unknown_ok && !f.ambiguous {
                continue;
            }
            r.push(
                f.at.clone(),
                Kind::Unknown,
                format!("`{}` is not an option of `{prog}` that Keel knows", f.text),
            );
            continue;
        };
        let opt = table.opt(o);
        let shown = format!("`{}` ({prog} {})", f.text, opt.name);
        match opt.class {
            Class::Safe => {}
            Class::Runs => r.push(f.at.clone(), Kind::Code, format!("{shown} runs code")),
            Class::Shell => r.push(f.at.clone(), Kind::Shell, format!("{shown} runs a command")),
            Class::Writes => r.push(
                f.at.clone(),
                Kind::Writes,
                format!("{shown} writes or deletes files, or changes the system"),
            ),
            Class::Target => r.push(
                f.at.clone(),
                Kind::Target(f.value.clone().unwrap_or_default()),
                format!("{shown} writes there"),
            ),
            Class::Other => r.push(
                f.at.clone(),
                Kind::Unknown,
                format!("{shown}: a person decides"),
            ),
        }
    }
    parsed
}

/// A table compiled once; a table that does not parse (a bug, caught by the unit
/// tests) leaves its program without a model, which fails closed.
macro_rules! table {
    ($spec:expr) => {{
        static T: std::sync::OnceLock<Option<$crate::sandbox::exec::options::Table>> =
            std::sync::OnceLock::new();
        T.get_or_init(|| $crate::sandbox::exec::options::Table::parse($spec).ok())
            .as_ref()
    }};
}
pub(crate) use table;

/// The item for a program whose table failed to compile (never in a release: the
/// unit tests compile every table).
fn broken(prog: &str, argv: &[String]) -> Reading {
    let mut r = Reading::default();
    r.push(
        (1..argv.len()).collect(),
        Kind::Unknown,
        format!("Keel's model of `{prog}` is broken"),
    );
    r
}

#[cfg(test)]
mod tests;
