//! Reads a program's options the way `getopt_long` (and git's parse-options) does,
//! so that the policy sees what the program will see.
//!
//! - `--name=value` and `--name value` (when the option takes a value); an optional
//!   value only attached (`--name=value`);
//! - an unambiguous prefix of a long option stands for it (`--to-comm` is
//!   `--to-command`); an ambiguous or unknown one is not understood;
//! - short options cluster (`-xvf`), and a short option that takes a value takes the
//!   rest of its word (`-I'cmd'`, `-oProxyCommand=…`) or else the next word;
//! - `--` ends the options; `-` alone is an operand;
//! - GNU programs take options anywhere (permutation); others stop at the first
//!   operand.
//!
//! A program's options are written as a table: words like `o,output=!W` — names
//! separated by commas (one letter: a short option), then `=` (takes a value) or
//! `?` (takes an optional, attached value), then `!` and a class letter: `R` runs
//! code the command line does not show as a command, `S` runs a shell command or
//! argv given as its value (which the policy reads), `W` writes or deletes files
//! beyond the program's operands (or changes the system), `T` its value is a path
//! the program writes (checked against the workspace), `U` not understood (a person
//! decides). No class: harmless.

use std::collections::HashMap;

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// It takes none.
    No,
    /// It takes one: attached, or the next word.
    Required,
    /// It takes one only attached (`--opt=value`, `-ovalue`).
    Optional,
}

/// What an option does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Nothing a person must see.
    Safe,
    /// Runs code (not shell) the command line does not show as a command.
    Runs,
    /// Runs a shell command or argv given in its value.
    Shell,
    /// Writes or deletes files beyond the operands, or changes the system.
    Writes,
    /// Its value is a path the program writes.
    Target,
    /// Listed so that it is known, but a person decides.
    Other,
}

/// One option of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Opt {
    /// How it is shown: its first long name (`--output`) or its short one (`-o`).
    pub name: String,
    /// Whether it takes a value.
    pub arg: Arg,
    /// What it does.
    pub class: Class,
}

/// A program's options.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    opts: Vec<Opt>,
    short: HashMap<char, usize>,
    long: Vec<(String, usize)>,
}

impl Table {
    /// Parses a table written as described in the module docs.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut t = Table::default();
        for word in spec.split_whitespace() {
            let (head, class) = match word.split_once('!') {
                Some((h, c)) => (
                    h,
                    match c {
                        "R" => Class::Runs,
                        "S" => Class::Shell,
                        "W" => Class::Writes,
                        "T" => Class::Target,
                        "U" => Class::Other,
                        _ => return Err(format!("`{word}`: unknown class `{c}`")),
                    },
                ),
                None => (word, Class::Safe),
            };
            let (names, arg) = if let Some(n) = head.strip_suffix('=') {
                (n, Arg::Required)
            } else if let Some(n) = head.strip_suffix('?') {
                (n, Arg::Optional)
            } else {
                (head, Arg::No)
            };
            let names: Vec<&str> = names.split(',').collect();
            if names.iter().any(|n| n.is_empty()) {
                return Err(format!("`{word}`: an empty name"));
            }
            let i = t.opts.len();
            let shown = names
                .iter()
                .find(|n| n.chars().count() > 1)
                .map(|n| format!("--{n}"))
                .unwrap_or_else(|| format!("-{}", names[0]));
            t.opts.push(Opt {
                name: shown,
                arg,
                class,
            });
            for n in names {
                let mut chars = n.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => {
                        if t.short.insert(c, i).is_some() {
                            return Err(format!("`-{c}` twice"));
                        }
                    }
                    _ => {
                        if t.long.iter().any(|(l, _)| l == n) {
                            return Err(format!("`--{n}` twice"));
                        }
                        t.long.push((n.to_owned(), i));
                    }
                }
            }
        }
        Ok(t)
    }

    /// The option at an index.
    pub fn opt(&self, i: usize) -> &Opt {
        &self.opts[i]
    }

    /// The long option `name` stands for: an exact name, or a prefix of exactly
    /// one option's names. `Err(n)`: `n` options could be meant (0: none).
    pub fn long(&self, name: &str, abbrev: bool) -> Result<usize, usize> {
        if let Some((_, i)) = self.long.iter().find(|(l, _)| l == name) {
            return Ok(*i);
        }
        if !abbrev || name.is_empty() {
            return Err(0);
        }
        let mut found: Vec<usize> = self
            .long
            .iter()
            .filter(|(l, _)| l.starts_with(name))
            .map(|(_, i)| *i)
            .collect();
        found.dedup();
        match found.as_slice() {
            [one] => Ok(*one),
            many => Err(many.len()),
        }
    }

    /// The short option `c`.
    pub fn short(&self, c: char) -> Option<usize> {
        self.short.get(&c).copied()
    }
}

/// How a program reads its arguments.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// Options may follow operands (GNU); otherwise the first operand ends them.
    pub permute: bool,
    /// Unambiguous prefixes of long options are accepted.
    pub abbrev: bool,
    /// Options not in the table are harmless (the table lists every harmful one).
    pub unknown_ok: bool,
}

/// GNU `getopt_long`.
pub(crate) const GNU: Syntax = Syntax {
    permute: true,
    abbrev: true,
    unknown_ok: false,
};

/// Options up to the first operand (interpreters, wrappers, BSD-style programs).
pub(crate) const POSIX: Syntax = Syntax {
    permute: false,
    abbrev: true,
    unknown_ok: false,
};

/// One option found on a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The argv positions it occupies (its word, and its value's word if separate).
    pub at: Vec<usize>,
    /// The option (an index into the table), or `None` when not understood.
    pub opt: Option<usize>,
    /// Its value, if it took one.
    pub value: Option<String>,
    /// As written.
    pub text: String,
    /// Not understood because it abbreviates several options of the table.
    pub ambiguous: bool,
}

/// A command line read against a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The options, in order.
    pub found: Vec<Found>,
    /// The argv positions of the operands.
    pub operands: Vec<usize>,
}

/// Reads `argv[start..]` against `table`.
pub(crate) fn parse(table: &Table, syntax: Syntax, argv: &[String], start: usize) -> Parsed {
    let mut p = Parsed::default();
    let mut i = start;
    while i < argv.len() {
        let word = argv[i].as_str();
        if word == "--" {
            p.operands.extend(i + 1..argv.len());
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            i = long_option(table, syntax, argv, i, long, &mut p);
            continue;
        }
        if word.len() > 1 && word.starts_with('-') {
            i = short_cluster(table, argv, i, &mut p);
            continue;
        }
        if !syntax.permute {
            p.operands.extend(i..argv.len());
            break;
        }
        p.operands.push(i);
        i += 1;
    }
    p
}

fn long_option(
    table: &Table,
    syntax: Syntax,
    argv: &[String],
    i: usize,
    long: &str,
    p: &mut Parsed,
) -> usize {
    let (name, attached) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (long, None),
    };
    let o = match table.long(name, syntax.abbrev) {
        Ok(o) => o,
        Err(candidates) => {
            p.found.push(Found {
                at: vec![i],
                opt: None,
                value: attached,
                text: argv[i].clone(),
                ambiguous: candidates > 0,
            });
            return i + 1;
        }
    };
    let mut at = vec![i];
    let (opt, value) = match (table.opt(o).arg, attached) {
        (Arg::No, Some(v)) => (None, Some(v)),
        (Arg::No, None) => (Some(o), None),
        (_, Some(v)) => (Some(o), Some(v)),
        (Arg::Optional, None) => (Some(o), None),
        (Arg::Required, None) => match argv.get(i + 1) {
            Some(v) => {
                at.push(i + 1);
                (Some(o), Some(v.clone()))
            }
            None => (Some(o), None),
        },
    };
    let next = at.last().map_or(i, |l| *l) + 1;
    let text = words(argv, &at);
    p.found.push(Found {
        at,
        opt,
        value,
        text,
        ambiguous: false,
    });
    next
}

/// The words at `at`, as written.
fn words(argv: &[String], at: &[usize]) -> String {
    at.iter()
        .map(|j| argv[*j].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_cluster(table: &Table, argv: &[String], i: usize, p: &mut Parsed) -> usize {
    let word = &argv[i];
    let letters: Vec<(usize, char)> = word.char_indices().skip(1).collect();
    let mut next = i + 1;
    for (k, &(byte, c)) in letters.iter().enumerate() {
        let Some(o) = table.short(c) else {
            p.found.push(Found {
                at: vec![i],
                opt: None,
                value: None,
                text: format!("-{c} (in `{word}`)"),
                ambiguous: false,
            });
            continue;
        };
        let rest = &word[byte + c.len_utf8()..];
        match table.opt(o).arg {
            Arg::No => p.found.push(Found {
                at: vec![i],
                opt: Some(o),
                value: None,
                text: if letters.len() == 1 {
                    word.clone()
                } else {
                    format!("-{c} (in `{word}`)")
                },
                ambiguous: false,
            }),
            Arg::Optional => {
                p.found.push(Found {
                    at: vec![i],
                    opt: Some(o),
                    value: (!rest.is_empty()).then(|| rest.to_owned()),
                    text: if k == 0 {
                        word.clone()
                    } else {
                        format!("-{c}{rest} (in `{word}`)")
                    },
                    ambiguous: false,
                });
                break;
            }
            Arg::Required => {
                let (value, at) = if !rest.is_empty() {
                    (Some(rest.to_owned()), vec![i])
                } else if let Some(v) = argv.get(i + 1) {
                    next = i + 2;
                    (Some(v.clone()), vec![i, i + 1])
                } else {
                    (None, vec![i])
                };
                let text = words(argv, &at);
                p.found.push(Found {
                    at,
                    opt: Some(o),
                    value,
                    text,
                    ambiguous: false,
                });
                break;
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    fn table() -> Table {
        Table::parse(
            "x,extract v,verbose f,file= I,use-compress-program=!S to-command=!S \
             to-stdout checkpoint? checkpoint-action=!S o?",
        )
        .unwrap()
    }

    fn names(t: &Table, p: &Parsed) -> Vec<(String, Option<String>)> {
        p.found
            .iter()
            .map(|f| {
                (
                    f.opt.map_or("?".to_owned(), |o| t.opt(o).name.clone()),
                    f.value.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn long_options_abbreviated_with_values() {
        let t = table();
        let p = parse(&t, GNU, &argv("tar --to-comm=sh a --file x.tar"), 1);
        assert_eq!(
            names(&t, &p),
            vec![
                ("--to-command".into(), Some("sh".into())),
                ("--file".into(), Some("x.tar".into()))
            ]
        );
        assert_eq!(p.operands, vec![2]);
        // `--to` could be `--to-command` or `--to-stdout`: not understood.
        let p = parse(&t, GNU, &argv("tar --to=x"), 1);
        assert_eq!(p.found[0].opt, None);
        // An optional value is only taken attached.
        let p = parse(&t, GNU, &argv("tar --checkpoint 5"), 1);
        assert_eq!(names(&t, &p), vec![("--checkpoint".into(), None)]);
        assert_eq!(p.operands, vec![2]);
    }

    #[test]
    fn short_clusters_and_attached_values() {
        let t = table();
        let p = parse(&t, GNU, &argv("tar -xvf a.tar -Icmd -I cmd2"), 1);
        assert_eq!(
            names(&t, &p),
            vec![
                ("--extract".into(), None),
                ("--verbose".into(), None),
                ("--file".into(), Some("a.tar".into())),
                ("--use-compress-program".into(), Some("cmd".into())),
                ("--use-compress-program".into(), Some("cmd2".into())),
            ]
        );
        assert_eq!(p.found[4].at, vec![4, 5]);
        // The value swallows the rest of the cluster, options included.
        let p = parse(&t, GNU, &argv("tar -fI x"), 1);
        assert_eq!(names(&t, &p), vec![("--file".into(), Some("I".into()))]);
        assert_eq!(p.operands, vec![2]);
    }

    #[test]
    fn double_dash_and_permutation() {
        let t = table();
        let p = parse(&t, GNU, &argv("tar a -- -x"), 1);
        assert!(p.found.is_empty());
        assert_eq!(p.operands, vec![1, 3]);
        let p = parse(&t, POSIX, &argv("tar a -x"), 1);
        assert!(p.found.is_empty());
        assert_eq!(p.operands, vec![1, 2]);
        let p = parse(&t, GNU, &argv("tar a -x -"), 1);
        assert_eq!(p.found.len(), 1);
        assert_eq!(p.operands, vec![1, 3]);
    }

    #[test]
    fn bad_tables_are_errors() {
        for bad in ["a,a", "x!Q", "a b a", ",x"] {
            assert!(Table::parse(bad).is_err(), "{bad}");
        }
    }
}
