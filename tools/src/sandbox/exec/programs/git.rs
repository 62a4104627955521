//! `git`: its global options (`-c`, `--config-env`, `--exec-path` can make it run
//! anything), then the subcommand. Options are read the way git's parse-options
//! reads them (unambiguous prefixes, `--opt=value`, `-x'cmd'`). For each subcommand
//! Keel knows, the options that run commands or write outside the repository are
//! listed; its other options are harmless. Subcommands that exist to run other
//! programs (`difftool`, `filter-branch`, `help`, ...), writing configuration, and
//! any subcommand Keel does not know (an alias, a `git-foo` program) need a person.
//!
//! What git would run from a repository's own configuration (filters, textconv,
//! hooks, fsmonitor) is handled when the command runs: `exec` sets git's
//! configuration through the environment, and asks a person when the repository's
//! configuration names a command it cannot switch off (see `exec::repo`).

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{self, Syntax, Table};

/// git's own global options: exact names, up to the subcommand.
const GLOBAL: Syntax = Syntax {
    permute: false,
    abbrev: false,
    unknown_ok: false,
};

/// A subcommand's options, of which only the listed ones matter.
const SUB: Syntax = Syntax {
    permute: true,
    abbrev: true,
    unknown_ok: true,
};

fn global_table() -> Option<&'static Table> {
    table!(
        "C= c=!S config-env=!R exec-path?!R git-dir= work-tree= namespace= bare no-pager P \
         p,paginate no-replace-objects no-lazy-fetch no-optional-locks no-advice \
         literal-pathspecs glob-pathspecs noglob-pathspecs icase-pathspecs list-cmds= \
         attr-source= super-prefix=!U html-path man-path info-path v,version h,help!R"
    )
}

/// Options every subcommand is read against.
macro_rules! common {
    () => {
        "output=!T ext-diff!R textconv!R text open-files-in-pager?!R exec=!S upload-pack=!S \
         receive-pack=!S template=!R config=!R help!R "
    };
}

fn sub_table(sub: &str) -> Option<&'static Table> {
    match sub {
        "clone" => table!(concat!(
            common!(),
            "u= c= separate-git-dir=!T reference= o,origin= b,branch= depth= j,jobs= \
             filter= server-option= shallow-since= shallow-exclude= bundle-uri= ref-format="
        )),
        "rebase" => table!(concat!(
            common!(),
            "x=!S s,strategy= X,strategy-option= onto= C= whitespace= S,gpg-sign?"
        )),
        "grep" => table!(concat!(
            common!(),
            "O?!S e= f= A,after-context= B,before-context= C,context= m,max-count= \
             max-depth= threads="
        )),
        "format-patch" => table!(concat!(
            common!(),
            "o,output-directory=!T v,reroll-count= subject-prefix= in-reply-to= to= cc= \
             from? base= interdiff= range-diff="
        )),
        "archive" => table!(concat!(
            common!(),
            "o= remote= prefix= format= add-file= add-virtual-file= mtime="
        )),
        "apply" | "am" => table!(concat!(
            common!(),
            "unsafe-paths!W directory=!T p= C= whitespace= exclude= include="
        )),
        "init" => table!(concat!(
            common!(),
            "separate-git-dir=!T b,initial-branch= object-format= ref-format= shared?"
        )),
        "commit" => table!(concat!(
            common!(),
            "F,file= t= m,message= C,reuse-message= c,reedit-message= fixup= squash= \
             author= date= trailer= S,gpg-sign?"
        )),
        _ => table!(common!()),
    }
}

/// Subcommands that run other programs or talk to other systems by design.
const RUNNERS: &[&str] = &[
    "difftool",
    "mergetool",
    "filter-branch",
    "filter-repo",
    "send-email",
    "daemon",
    "instaweb",
    "help",
    "web--browse",
    "credential",
    "credential-store",
    "credential-cache",
    "shell",
    "upload-pack",
    "receive-pack",
    "upload-archive",
    "http-backend",
    "remote-ext",
    "remote-fd",
    "svn",
    "p4",
    "cvsimport",
    "cvsserver",
    "cvsexportcommit",
    "archimport",
    "quiltimport",
    "gui",
    "citool",
    "gitk",
    "imap-send",
    "run-command",
    "hook",
];

/// Subcommands that only work on the repository (and its worktree).
const KNOWN: &[&str] = &[
    "status",
    "log",
    "show",
    "diff",
    "add",
    "commit",
    "branch",
    "switch",
    "checkout",
    "restore",
    "reset",
    "rm",
    "mv",
    "stash",
    "tag",
    "merge",
    "rebase",
    "cherry-pick",
    "revert",
    "fetch",
    "pull",
    "push",
    "clone",
    "init",
    "remote",
    "rev-parse",
    "rev-list",
    "ls-files",
    "ls-tree",
    "ls-remote",
    "cat-file",
    "blame",
    "annotate",
    "describe",
    "shortlog",
    "reflog",
    "grep",
    "clean",
    "worktree",
    "apply",
    "am",
    "format-patch",
    "archive",
    "bisect",
    "submodule",
    "config",
    "notes",
    "gc",
    "fsck",
    "count-objects",
    "show-ref",
    "for-each-ref",
    "symbolic-ref",
    "update-ref",
    "update-index",
    "write-tree",
    "read-tree",
    "commit-tree",
    "hash-object",
    "merge-base",
    "name-rev",
    "range-diff",
    "whatchanged",
    "sparse-checkout",
    "version",
    "var",
    "check-ignore",
    "check-attr",
    "check-ref-format",
    "check-mailmap",
    "mktag",
    "mktree",
    "pack-objects",
    "prune",
    "prune-packed",
    "repack",
    "verify-pack",
    "diff-tree",
    "diff-files",
    "diff-index",
    "merge-file",
    "merge-tree",
    "interpret-trailers",
    "show-branch",
    "stripspace",
    "column",
    "bundle",
    "replay",
    "verify-commit",
    "verify-tag",
    "pack-refs",
    "get-tar-commit-id",
    "unpack-file",
    "maintenance",
    "cherry",
    "diff-pairs",
    "backfill",
    "rerere",
    "mailinfo",
    "mailsplit",
    "fmt-merge-msg",
    "unpack-objects",
    "index-pack",
    "multi-pack-index",
    "commit-graph",
    "refs",
    "show-index",
    "patch-id",
];

/// The global options of a git command that decide which repository it uses
/// (`-C`, `--git-dir`, `--work-tree`, `--bare`), to ask git about that repository.
pub(crate) fn discovery(argv: &[String]) -> Vec<String> {
    let Some(t) = global_table() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in options::parse(t, GLOBAL, argv, 1).found {
        let Some(o) = f.opt else { continue };
        match (t.opt(o).name.as_str(), f.value) {
            ("-C", Some(v)) => out.extend(["-C".to_owned(), v]),
            (name @ ("--git-dir" | "--work-tree"), Some(v)) => out.push(format!("{name}={v}")),
            ("--bare", _) => out.push("--bare".to_owned()),
            _ => {}
        }
    }
    out
}

/// Reads `git`.
pub(super) fn read(argv: &[String]) -> Reading {
    let Some(t) = global_table() else {
        return broken("git", argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, "git", t, GLOBAL, argv, 1);
    for f in &parsed.found {
        let Some(o) = f.opt else { continue };
        // `-c key=value` is read as shell code (the values that run commands are
        // shell commands); one that pulls in another config file hides what it sets.
        if t.opt(o).name == "-c"
            && f.value.as_deref().is_some_and(|v| {
                let key = v.split('=').next().unwrap_or(v).to_ascii_lowercase();
                key.starts_with("include")
            })
        {
            r.push(
                f.at.clone(),
                Kind::Code,
                format!("`git {}` includes another config file", f.text),
            );
        }
        if matches!(t.opt(o).name.as_str(), "-C" | "--git-dir" | "--work-tree")
            && let Some(v) = &f.value
        {
            r.push(
                f.at.clone(),
                Kind::Target(v.clone()),
                format!("`git {}` works on the repository there", f.text),
            );
        }
    }
    let Some(&sub) = parsed.operands.first() else {
        return r;
    };
    let name = argv[sub].as_str();
    if RUNNERS.contains(&name) {
        r.push(
            (sub..argv.len()).collect(),
            Kind::Code,
            format!("`git {name}` runs other programs"),
        );
        return r;
    }
    if !KNOWN.contains(&name) {
        r.push(
            vec![sub],
            Kind::Unknown,
            format!("`git {name}` is not a git command Keel knows (an alias or an external `git-{name}` runs anything)"),
        );
        return r;
    }
    let Some(st) = sub_table(name) else {
        return broken("git", argv);
    };
    let prog = format!("git {name}");
    let sp = with_table(&mut r, &prog, st, SUB, argv, sub + 1);
    let ops: Vec<usize> = sp.operands.clone();
    let op = |k: usize| ops.get(k).map(|&i| argv[i].as_str());
    for f in &sp.found {
        let Some(o) = f.opt else { continue };
        let shown = st.opt(o).name.as_str();
        let runs = match (name, shown) {
            ("clone", "-u") => Some(Kind::Shell),
            ("clone", "-c") => Some(Kind::Shell),
            ("archive", "-o") => Some(Kind::Target(f.value.clone().unwrap_or_default())),
            _ => None,
        };
        if let Some(kind) = runs {
            r.push(f.at.clone(), kind, format!("`{}` ({prog} {shown})", f.text));
        }
    }
    match name {
        "submodule" if op(0) == Some("foreach") => r.push(
            ops[1..].to_vec(),
            Kind::Shell,
            "`git submodule foreach` runs a command in each submodule",
        ),
        "bisect" if op(0) == Some("run") => {
            if let Some(&k) = ops.get(1) {
                r.push(
                    (k..argv.len()).collect(),
                    Kind::Command(k),
                    "`git bisect run` runs a command at each step",
                );
            }
        }
        "config" if !config_reads_only(argv, sub, &ops) => r.push(
            (sub..argv.len()).collect(),
            Kind::Code,
            "`git config` changes git's configuration, which can make git run commands",
        ),
        "clone" | "init" => {
            let dir = ops.get(usize::from(name == "clone")).copied();
            if let Some(d) = dir {
                r.push(
                    vec![d],
                    Kind::Target(argv[d].clone()),
                    format!("`git {name}` creates a repository at `{}`", argv[d]),
                );
            }
        }
        "worktree" if op(0) == Some("add") => {
            if let Some(&d) = ops.get(1) {
                r.push(
                    vec![d],
                    Kind::Target(argv[d].clone()),
                    format!("`git worktree add` checks out at `{}`", argv[d]),
                );
            }
        }
        "maintenance" if matches!(op(0), Some("start" | "register")) => r.push(
            vec![ops[0]],
            Kind::Writes,
            "`git maintenance start` schedules jobs with the system",
        ),
        _ => {}
    }
    r
}

/// `git config --get x`, `git config --list`, `git config get x`: reads only.
fn config_reads_only(argv: &[String], sub: usize, ops: &[usize]) -> bool {
    let words = &argv[sub + 1..];
    let writes = words.iter().any(|w| {
        let w = w.split('=').next().unwrap_or(w);
        matches!(
            w,
            "-e" | "--edit" | "--add" | "--replace-all" | "--rename-section" | "--remove-section"
        ) || w.starts_with("--unset")
    });
    let reads = words
        .iter()
        .any(|w| w == "-l" || w.starts_with("--get") || w == "--list" || w.starts_with("--show-"))
        || ops
            .first()
            .is_some_and(|&i| matches!(argv[i].as_str(), "get" | "list"));
    reads && !writes
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn options_that_run_commands() {
        assert_eq!(kinds("git status --short"), vec![]);
        assert_eq!(kinds("git log --oneline -n 5 -- src"), vec![]);
        assert_eq!(kinds("git -c core.pager=x log"), vec![Kind::Shell]);
        assert_eq!(
            kinds("git -c include.path=/tmp/x log"),
            vec![Kind::Shell, Kind::Code]
        );
        assert_eq!(kinds("git --config-env=a=B log"), vec![Kind::Code]);
        assert_eq!(
            kinds("git --exec-path=. x"),
            vec![Kind::Code, Kind::Unknown]
        );
        assert_eq!(kinds("git rebase -xid main"), vec![Kind::Shell]);
        assert_eq!(kinds("git rebase -ix id main"), vec![Kind::Shell]);
        assert_eq!(kinds("git rebase --exe=id main"), vec![Kind::Shell]);
        assert_eq!(kinds("git clone -uid x y").first(), Some(&Kind::Shell));
        assert_eq!(kinds("git fetch --upload-pac=id origin"), vec![Kind::Shell]);
        assert_eq!(kinds("git grep -Oid x"), vec![Kind::Shell]);
        assert_eq!(kinds("git grep --open-files-in=id x"), vec![Kind::Code]);
        assert_eq!(kinds("git log --ext-diff"), vec![Kind::Code]);
        assert_eq!(kinds("git diff --text"), vec![]);
        assert_eq!(kinds("git diff --textc"), vec![Kind::Code]);
        assert_eq!(
            kinds("git log --output=/tmp/x"),
            vec![Kind::Target("/tmp/x".into())]
        );
        assert_eq!(kinds("git submodule foreach rm x"), vec![Kind::Shell]);
        assert_eq!(kinds("git bisect run ./t.sh"), vec![Kind::Command(3)]);
        assert_eq!(kinds("git config core.pager x"), vec![Kind::Code]);
        assert_eq!(kinds("git config --get user.name"), vec![]);
        assert_eq!(kinds("git difftool"), vec![Kind::Code]);
        assert_eq!(kinds("git st"), vec![Kind::Unknown]);
        assert_eq!(
            kinds("git archive --remote=x --exec=id HEAD"),
            vec![Kind::Shell]
        );
        assert_eq!(
            kinds("git apply --unsafe-paths x.patch"),
            vec![Kind::Writes]
        );
        assert_eq!(kinds("git log --help"), vec![Kind::Code]);
    }
}
