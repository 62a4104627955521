//! GNU `sed`: its script is read command by command. `e`, `s///e` run commands and
//! `w`, `W`, `s///w` write files, so a script with one of them needs a person
//! (unless `--sandbox`, which makes sed refuse them). A script Keel cannot read to
//! the end is not understood. `-i`/`--in-place` edits the files named.

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::GNU;

/// Reads `sed`.
pub(super) fn read(argv: &[String]) -> Reading {
    let Some(t) = table!(
        "n,quiet,silent debug e,expression= f,file=!R l,line-length= posix \
         E,r,regexp-extended s,separate sandbox u,unbuffered z,null-data i,in-place?!W \
         follow-symlinks b,binary help version"
    ) else {
        return broken("sed", argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, "sed", t, GNU, argv, 1);
    let is = |f: &crate::sandbox::exec::options::Found, name: &str| {
        f.opt.is_some_and(|o| t.opt(o).name == name)
    };
    let sandbox = parsed.found.iter().any(|f| is(f, "--sandbox"));
    let in_place = parsed.found.iter().any(|f| is(f, "--in-place"));
    let mut scripts: Vec<(Vec<usize>, String)> = parsed
        .found
        .iter()
        .filter(|f| is(f, "--expression"))
        .map(|f| (f.at.clone(), f.value.clone().unwrap_or_default()))
        .collect();
    let has_file = parsed.found.iter().any(|f| is(f, "--file"));
    let mut files = parsed.operands.as_slice();
    if scripts.is_empty()
        && !has_file
        && let Some((&first, rest)) = files.split_first()
    {
        scripts.push((vec![first], argv[first].clone()));
        files = rest;
    }
    if !sandbox {
        for (at, script) in scripts {
            if let Err(why) = check(&script) {
                r.push(at, Kind::Code, format!("the sed script `{script}` {why}"));
            }
        }
    }
    if in_place {
        for &i in files {
            r.push(
                vec![i],
                Kind::Target(argv[i].clone()),
                format!("`sed -i` rewrites `{}`", argv[i]),
            );
        }
    }
    r
}

/// Commands that take nothing.
const PLAIN: &str = "=dDgGhHnNpPxzF";

/// Whether a sed script only reads and prints: `Err` says why not.
///
/// GNU sed reads a bracket expression in a regex as one piece (`s/[/]/x/` has the
/// regex `[/]`; older seds did not): the script is read both ways. It must not run
/// or write either way, and must be understood at least one way (a sed that reads
/// it the other way rejects it).
pub(crate) fn check(script: &str) -> Result<(), String> {
    let runs = |r: &Result<(), String>| r.as_ref().is_err_and(|e| !e.contains("understood"));
    let (a, b) = (read_script(script, true), read_script(script, false));
    match (&a, &b) {
        _ if runs(&a) => a,
        _ if runs(&b) => b,
        (Err(_), Err(_)) => a,
        _ => Ok(()),
    }
}

fn read_script(script: &str, brackets: bool) -> Result<(), String> {
    let s: Vec<char> = script.chars().collect();
    let mut i = 0;
    let at_end = |i: usize| i >= s.len();
    while !at_end(i) {
        // Separators, blanks, braces.
        if matches!(s[i], ' ' | '\t' | '\n' | ';' | '{' | '}') {
            i += 1;
            continue;
        }
        if s[i] == '#' {
            while !at_end(i) && s[i] != '\n' {
                i += 1;
            }
            continue;
        }
        i = address(&s, i, brackets)?;
        if !at_end(i) && s[i] == ',' {
            i = address(&s, i + 1, brackets)?;
        }
        while !at_end(i) && matches!(s[i], ' ' | '\t' | '!') {
            i += 1;
        }
        let Some(&c) = s.get(i) else {
            return Err("ends after an address (not understood)".into());
        };
        i += 1;
        match c {
            '{' | '}' => {}
            'e' => return Err("runs a command (`e`)".into()),
            'w' | 'W' => return Err(format!("writes a file (`{c}`)")),
            's' => i = substitute(&s, i, brackets)?,
            'y' => {
                let d = delimiter(&s, i)?;
                i = part(&s, part(&s, i + 1, d, false)?, d, false)?;
            }
            'a' | 'i' | 'c' | 'r' | 'R' => i = to_line_end(&s, i),
            // A label or version ends at a blank too (`:l e cmd` runs `e cmd`), so
            // whatever follows is read as commands.
            ':' | 'b' | 't' | 'T' | 'v' => {
                while !at_end(i) && matches!(s[i], ' ' | '\t') {
                    i += 1;
                }
                while !at_end(i) && !matches!(s[i], ';' | '\n' | '}' | ' ' | '\t') {
                    i += 1;
                }
            }
            'q' | 'Q' | 'l' | 'L' => {
                while !at_end(i) && matches!(s[i], ' ' | '\t') {
                    i += 1;
                }
                while !at_end(i) && s[i].is_ascii_digit() {
                    i += 1;
                }
            }
            c if PLAIN.contains(c) => {}
            other => {
                return Err(format!(
                    "has a command Keel does not know (`{other}`, not understood)"
                ));
            }
        }
    }
    Ok(())
}

/// Skips an address: a line number, `$`, `first~step`, `+N`, `~N`, `/re/` or
/// `\cREc` with `I`/`M` flags. None is fine.
fn address(s: &[char], mut i: usize, brackets: bool) -> Result<usize, String> {
    match s.get(i) {
        Some('/') => {
            i = part(s, i + 1, '/', brackets)?;
        }
        Some('\\') => {
            let d = *s.get(i + 1).ok_or("ends in an address (not understood)")?;
            i = part(s, i + 2, d, brackets)?;
        }
        Some(c) if c.is_ascii_digit() || matches!(c, '$' | '+' | '~') => {
            i += 1;
            while s.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '~') {
                i += 1;
            }
            return Ok(i);
        }
        _ => return Ok(i),
    }
    while s.get(i).is_some_and(|c| matches!(c, 'I' | 'M')) {
        i += 1;
    }
    Ok(i)
}

fn delimiter(s: &[char], i: usize) -> Result<char, String> {
    match s.get(i) {
        Some('\\' | '\n') | None => {
            Err("has a substitution Keel cannot read (not understood)".into())
        }
        Some(d) => Ok(*d),
    }
}

/// Skips to just after the next unescaped `d`; with `brackets`, a bracket
/// expression (`[...]`, `[]...]`, `[^...]`, `[[:alpha:]]`) is skipped whole.
fn part(s: &[char], mut i: usize, d: char, brackets: bool) -> Result<usize, String> {
    while let Some(&c) = s.get(i) {
        if c == '\\' {
            i += 2;
        } else if c == '[' && brackets {
            i = bracket(s, i + 1)?;
        } else if c == d {
            return Ok(i + 1);
        } else {
            i += 1;
        }
    }
    Err("has an unterminated expression (not understood)".into())
}

/// Skips a bracket expression whose `[` was just before `i`.
fn bracket(s: &[char], mut i: usize) -> Result<usize, String> {
    if s.get(i) == Some(&'^') {
        i += 1;
    }
    if s.get(i) == Some(&']') {
        i += 1;
    }
    while let Some(&c) = s.get(i) {
        match c {
            ']' => return Ok(i + 1),
            '[' if matches!(s.get(i + 1), Some(':' | '.' | '=')) => {
                let kind = s[i + 1];
                i += 2;
                while s.get(i).is_some() && !(s[i] == kind && s.get(i + 1) == Some(&']')) {
                    i += 1;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err("has an unterminated bracket expression (not understood)".into())
}

/// `s/re/replacement/flags`: the flags `e` and `w file` are refused.
fn substitute(s: &[char], i: usize, brackets: bool) -> Result<usize, String> {
    let d = delimiter(s, i)?;
    let mut i = part(s, part(s, i + 1, d, brackets)?, d, false)?;
    while let Some(&f) = s.get(i) {
        match f {
            'e' => return Err("runs a command (`s///e`)".into()),
            'w' => return Err("writes a file (`s///w`)".into()),
            'g' | 'p' | 'i' | 'I' | 'm' | 'M' => i += 1,
            c if c.is_ascii_digit() => i += 1,
            _ => break,
        }
    }
    Ok(i)
}

/// `a text`, `r file`: the rest of the line, with backslash-continued lines.
fn to_line_end(s: &[char], mut i: usize) -> usize {
    while let Some(&c) = s.get(i) {
        match c {
            '\\' => i += 2,
            '\n' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_that_only_print() {
        for ok in [
            "s/a/b/g",
            "1,20p",
            "/^#/d",
            "s|x|y|2; $d",
            "/a/,/b/{s/x/y/;p}",
            "0,/re/I s/a\\/b/c/gI",
            "1~2d",
            "y/abc/xyz/",
            "$a\\\nend",
            "s/x/\\n/",
            ":a;N;$!ba;s/\\n/ /g",
            "s/[/]/x/",
            "# comment\np",
            "r other.txt",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn scripts_that_run_or_write() {
        for bad in [
            "e id",
            "1e id",
            "s/x/id/e",
            "s/x/y/w /tmp/out",
            "s/x/y/gw out",
            "w /tmp/x",
            "/a/W x",
            "p;e rm -rf /",
            "$!{e touch x\n}",
            "s|a|b|;s/x/y/e",
            "s/a\\/b/c/e",
            "s/[/]/x/e",
            "/[/]/e id",
            "s/[[:alpha:]/]/x/w f",
            // Found by the `exec_policy` fuzz target's review: GNU sed ends a label
            // or a version at a blank, and runs what follows.
            ":l e touch x",
            ":l;e touch x",
            "v 4.2 e touch x",
            "bx e id",
            "l 1 e id",
            "s/a",
            "k",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
