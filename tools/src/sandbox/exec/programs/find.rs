//! GNU `find`: the expression's actions that run commands (`-exec`, `-execdir`,
//! `-ok`, `-okdir`), delete (`-delete`) or write files (`-fprint`, `-fprint0`,
//! `-fprintf`, `-fls`). Tests and the printing actions are harmless; a primary Keel
//! does not know is not understood. find takes no abbreviations.

use super::{Kind, Reading};

/// Primaries that take no argument.
const NO_ARG: &[&str] = &[
    "-print",
    "-print0",
    "-ls",
    "-prune",
    "-quit",
    "-true",
    "-false",
    "-empty",
    "-nouser",
    "-nogroup",
    "-readable",
    "-writable",
    "-executable",
    "-depth",
    "-d",
    "-follow",
    "-mount",
    "-xdev",
    "-noleaf",
    "-ignore_readdir_race",
    "-noignore_readdir_race",
    "-daystart",
    "-warn",
    "-nowarn",
    "-help",
    "--help",
    "-version",
    "--version",
    "-not",
    "-a",
    "-and",
    "-o",
    "-or",
    "!",
    "(",
    ")",
    ",",
];

/// Primaries that take one argument.
const ONE_ARG: &[&str] = &[
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-wholename",
    "-iwholename",
    "-regex",
    "-iregex",
    "-lname",
    "-ilname",
    "-type",
    "-xtype",
    "-size",
    "-perm",
    "-user",
    "-group",
    "-uid",
    "-gid",
    "-links",
    "-inum",
    "-samefile",
    "-newer",
    "-anewer",
    "-cnewer",
    "-mtime",
    "-mmin",
    "-atime",
    "-amin",
    "-ctime",
    "-cmin",
    "-used",
    "-maxdepth",
    "-mindepth",
    "-regextype",
    "-fstype",
    "-context",
    "-printf",
    "-files0-from",
];

/// Reads `find`.
pub(super) fn read(argv: &[String]) -> Reading {
    let mut r = Reading::default();
    let mut i = 1;
    // Options before the paths: -H -L -P, -D debugopts, -Olevel.
    while let Some(a) = argv.get(i) {
        match a.as_str() {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            o if o.starts_with("-O") && o.len() > 2 => i += 1,
            _ => break,
        }
    }
    // The paths: until the first word that starts an expression.
    while let Some(a) = argv.get(i) {
        if a.starts_with('-') || matches!(a.as_str(), "(" | ")" | "!" | ",") {
            break;
        }
        i += 1;
    }
    while let Some(a) = argv.get(i) {
        let p = a.as_str();
        if NO_ARG.contains(&p) {
            i += 1;
        } else if ONE_ARG.contains(&p) || is_newer_xy(p) {
            i += 2;
        } else if p == "-delete" {
            r.push(
                vec![i],
                Kind::Code,
                "`find -delete` deletes files (as `rm` would)",
            );
            i += 1;
        } else if matches!(p, "-fprint" | "-fprint0" | "-fls") {
            push_target(&mut r, argv, i, p);
            i += 2;
        } else if p == "-fprintf" {
            push_target(&mut r, argv, i, p);
            i += 3;
        } else if matches!(p, "-exec" | "-execdir" | "-ok" | "-okdir") {
            let term = (i + 1..argv.len())
                .find(|&j| argv[j] == ";" || (argv[j] == "+" && argv[j - 1] == "{}"));
            let (payload_end, end) = match term {
                Some(j) => (j, j + 1),
                None => (argv.len(), argv.len()),
            };
            let shown = argv
                .get(i + 1..payload_end)
                .map(|s| s.join(" "))
                .unwrap_or_default();
            r.push(
                (i..end).collect(),
                Kind::Command(i + 1),
                format!("`find {p}` runs `{shown}`"),
            );
            i = end;
        } else {
            r.push(
                vec![i],
                Kind::Unknown,
                format!("`{p}` is not a find primary Keel knows"),
            );
            i += 1;
        }
    }
    r
}

fn push_target(r: &mut Reading, argv: &[String], i: usize, p: &str) {
    let file = argv.get(i + 1).cloned().unwrap_or_default();
    let at = if i + 1 < argv.len() {
        vec![i, i + 1]
    } else {
        vec![i]
    };
    r.push(
        at,
        Kind::Target(file.clone()),
        format!("`find {p}` writes `{file}`"),
    );
}

/// `-newerXY` (`-newermt`, `-newerct`, ...).
fn is_newer_xy(p: &str) -> bool {
    p.len() == 8
        && p.starts_with("-newer")
        && p[6..]
            .chars()
            .all(|c| matches!(c, 'a' | 'B' | 'c' | 'm' | 't'))
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn actions() {
        assert_eq!(kinds("find . -name *.rs -type f -print"), vec![]);
        assert_eq!(kinds("find -L src ( -name a -o -newermt x ) -ls"), vec![]);
        assert_eq!(kinds("find . -delete"), vec![Kind::Code]);
        assert_eq!(kinds("find . -exec rm {} ; -print"), vec![Kind::Command(3)]);
        assert_eq!(kinds("find . -execdir rm {} +"), vec![Kind::Command(3)]);
        assert_eq!(
            kinds("find . -fprint0 /tmp/x"),
            vec![Kind::Target("/tmp/x".into())]
        );
        assert_eq!(
            kinds("find . -fprintf out %p"),
            vec![Kind::Target("out".into())]
        );
        assert_eq!(kinds("find . -exe rm"), vec![Kind::Unknown, Kind::Unknown]);
        assert_eq!(kinds("find . -exec"), vec![Kind::Command(3)]);
        assert_eq!(kinds("find . -exec rm {}"), vec![Kind::Command(3)]);
    }
}
