//! SECURITY.md item 48: runners need a person unless the rule names them, and deny
//! rules hold through them in every mode. The techniques are the public GTFOBins
//! catalogue's "command" and "file write" entries for the programs on this machine;
//! each is also run for real (under `allow-always`) to show it does what it says.

use keel_tools::{Approval, ExecSecurity};
use serde_json::json;

use super::common::*;
use super::sec_options::{allowlist, reason, verdict};

/// (allowlist, command, what the reason names): programs that run code or write
/// files from their arguments need a person unless the rule names the exact form.
const RUNNERS: &[(&[&str], &str, &str)] = &[
    (
        &["awk *"],
        "awk 'BEGIN{system(\"touch x\")}'",
        "awk program",
    ),
    (&["awk *"], "awk '{print $1}' f", "awk program"),
    (&["awk '{print $1}' *"], "awk '{print $2}' f", "not covered"),
    (&["mawk *"], "mawk '{print > \"/tmp/x\"}' f", "mawk program"),
    (&["sed *"], "sed '1e touch x' f", "runs a command (`e`)"),
    (&["sed *"], "sed 's/a/touch x/e' f", "`s///e`"),
    (&["sed *"], "sed -n 'w /tmp/x' f", "writes a file"),
    (&["sed *"], "sed 's/[/]/x/w /tmp/y' f", "`s///w`"),
    (
        &["sed *"],
        "sed -n ':l e touch x' f",
        "runs a command (`e`)",
    ),
    (&["sed *"], "sed -i 's/a/b/' f", "--in-place"),
    (&["sed -i *"], "sed -i 's/a/b/e' f", "`s///e`"),
    (
        &["find *"],
        "find . -exec touch x ';'",
        "`find -exec` runs `touch x`",
    ),
    (&["find *"], "find . -execdir touch x +", "-execdir"),
    (&["find *"], "find . -ok touch x ';'", "-ok"),
    (&["find *"], "find . -name x -delete", "-delete"),
    (
        &["find *"],
        "find . -fprint0 /tmp/x",
        "outside the workspace",
    ),
    (
        &["find *"],
        "find . -fprintf ../x %p",
        "outside the workspace",
    ),
    (&["find *"], "find . -fls /tmp/x", "outside the workspace"),
    (
        &["make *"],
        "make CC='touch x' all",
        "overrides a make variable",
    ),
    (&["make *"], "make -f /tmp/x.mk", "outside the workspace"),
    (
        &["git *"],
        "git log --output=/tmp/x",
        "outside the workspace",
    ),
    (
        &["git *"],
        "git log --output=.git/hooks/pre-commit",
        "protected path",
    ),
    (&["git *"], "git submodule foreach 'touch x'", "foreach"),
    (&["git *"], "git bisect run ./t.sh", "bisect run"),
    (
        &["git *"],
        "git config core.fsmonitor 'touch x'",
        "git config",
    ),
    (
        &["git *"],
        "git filter-branch --tree-filter x",
        "runs other programs",
    ),
    (&["git *"], "git difftool -x x", "runs other programs"),
    (&["git *"], "git mergetool", "runs other programs"),
    (&["git *"], "git help log", "runs other programs"),
    (&["git *"], "git st", "not a git command Keel knows"),
    (
        &["git *"],
        "git apply --unsafe-paths --directory=/ x.patch",
        "--unsafe-paths",
    ),
    (
        &["git *"],
        "git worktree add /tmp/w",
        "outside the workspace",
    ),
    (&["sort *"], "sort -o ../x f", "outside the workspace"),
    (&["tee *"], "tee /tmp/x", "outside the workspace"),
    (&["tee *"], "tee .git/config", "protected path"),
    (&["cp *"], "cp f ../../x", "outside the workspace"),
    (&["cp *"], "cp f sub/keel.toml", "protected path"),
    (&["mv *"], "mv f /tmp/x", "outside the workspace"),
    (&["ln *"], "ln -sf f /tmp/x", "outside the workspace"),
    (&["rm *"], "rm build.log -rf /home", "outside the workspace"),
    (
        &["chmod *"],
        "chmod 777 /etc/passwd",
        "outside the workspace",
    ),
    (&["dd *"], "dd if=f of=/tmp/x", "outside the workspace"),
    (&["xxd *"], "xxd -r -p hex /tmp/x", "outside the workspace"),
    (&["uniq *"], "uniq -c f /tmp/x", "outside the workspace"),
    (&["split *"], "split -l 5 f /tmp/x", "outside the workspace"),
    (&["date *"], "date -s 2020-01-01", "--set"),
    (&["date *"], "date 0101000020", "sets the system clock"),
    (&["perl *"], "perl -e 'unlink \"f\"'", "-e"),
    (&["perl *"], "perl -ne 'print' f", "-e"),
    (&["python3 *"], "python3 -c 'import os'", "-c"),
    (&["python3 *"], "python3 -m http.server", "-m"),
    (&["python3 *"], "python3", "standard input"),
    (&["node *"], "node -e 'process.exit()'", "--eval"),
    (&["node *"], "node -p 1", "--print"),
    (&["node *"], "node", "standard input"),
    (&["bash *"], "bash -c 'touch x'", "`bash` runs a shell"),
    (&["sh *"], "sh", "standard input"),
    (&["less *"], "less '+!touch x' f", "less command"),
    (&["vim *"], "vim -c '!touch x' f", "is an editor"),
    (&["vi *"], "vi f", "is an editor"),
    (&["gdb *"], "gdb -batch -ex '!touch x'", "runs programs"),
    (&["xargs *"], "xargs touch", "`xargs` runs `touch`"),
    (&["env *"], "env touch x", "`env` runs `touch x`"),
    (
        &["timeout *"],
        "timeout 5 touch x",
        "`timeout` runs `touch x`",
    ),
    (&["nice *"], "nice touch x", "`nice` runs `touch x`"),
    (&["nohup *"], "nohup touch x", "`nohup` runs `touch x`"),
    (
        &["stdbuf *"],
        "stdbuf -o0 touch x",
        "`stdbuf` runs `touch x`",
    ),
    (&["ssh *"], "ssh host 'touch x'", "on the remote host"),
    (&["npx *"], "npx cowsay", "runs the package"),
    (&["npm *"], "npm exec cowsay", "runs code"),
    (
        &["npm *"],
        "npm config set script-shell /tmp/x",
        "configuration",
    ),
    (
        &["pip *"],
        "pip config set global.index-url x",
        "configuration",
    ),
    (&["pip *"], "pip install --user x", "--user"),
    (&["cargo *"], "cargo install ripgrep", "cargo install"),
    (
        &["curl *"],
        "curl -O https://example.com/x",
        "--remote-name",
    ),
    (&["unzip *"], "unzip -: a.zip", "writes"),
    (
        &["unzip *"],
        "unzip a.zip -d /tmp/x",
        "outside the workspace",
    ),
    (&["zip *"], "zip /tmp/a.zip f", "outside the workspace"),
    (&["printf *"], "printf -v PATH /tmp", "runs code"),
    (
        &["frob *"],
        "frob --any-option",
        "Keel has no model of `frob`",
    ),
    (&["sudo *"], "sudo make install", "other privileges"),
    (&["docker *"], "docker run alpine touch x", "containers"),
    (
        &["sqlite3 *"],
        "sqlite3 db '.shell touch x'",
        "shell escapes",
    ),
];

#[test]
fn sec_48_runners_need_a_person_unless_the_rule_names_them() {
    for (patterns, command, named) in RUNNERS {
        let ws = allowlist(patterns);
        std::fs::create_dir_all(ws.path("sub")).unwrap();
        let r = reason(&ws, command);
        assert!(r.contains(named), "`{command}` under {patterns:?}: {r}");
    }
    // Named exactly by the rule, the same forms are the person's choice.
    for (pattern, command) in [
        ("awk 'BEGIN{print 1}'", "awk 'BEGIN{print 1}'"),
        ("sed -i 's/a/b/' *", "sed -i 's/a/b/' f"),
        ("find . -name '*.o' -delete", "find . -name '*.o' -delete"),
        ("timeout *", "timeout 60 timeout 5 true"),
        ("xargs -0 grep foo", "xargs -0 grep foo"),
    ] {
        let ws = allowlist(&[pattern, "true"]);
        assert_eq!(verdict(&ws, command), Approval::NotNeeded, "{command}");
    }
    // A wrapper is covered where the command it runs is covered.
    let ws = allowlist(&["timeout *", "nice *", "npm test"]);
    assert_eq!(
        verdict(&ws, "timeout 60 nice npm test"),
        Approval::NotNeeded
    );
    needed(verdict(&ws, "timeout 60 npm exec x"));
}

/// Writes the workspace the real runs need: a file, a tar archive, a git
/// repository with two commits.
fn fixtures(ws: &Ws) {
    ws.put("f", "a\nhello\n");
    let run = |args: &[&str]| {
        let st = std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(&ws.root)
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    };
    run(&["tar", "-cf", "plain.tar", "f"]);
    run(&["git", "init", "-q", "g"]);
    std::fs::write(ws.path("g/a"), "hello\n").unwrap();
    for (i, add) in [["add", "a"], ["add", "a"]].iter().enumerate() {
        std::fs::write(ws.path("g/a"), format!("hello {i}\n")).unwrap();
        run(&["git", "-C", "g", add[0], add[1]]);
        run(&[
            "git",
            "-C",
            "g",
            "-c",
            "user.name=k",
            "-c",
            "user.email=k@k",
            "commit",
            "-qm",
            "c",
        ]);
    }
}

/// (command, the file it creates): each technique the policy stops, run for real.
const REAL: &[(&str, &str)] = &[
    ("tar -xf plain.tar --to-comm='touch T1'", "T1"),
    (
        "tar -cf /dev/null f --checkpoint=1 --checkpoint-act=exec='touch T2'",
        "T2",
    ),
    ("tar -c -I'sh -c \"touch T3; cat\"' -f x.tar f", "T3"),
    ("tar cIf 'sh -c \"touch T4; cat\"' y.tar f", "T4"),
    ("ssh -oProxyCommand='touch T5' nowhere", "T5"),
    ("find . -maxdepth 0 -fprint0 T6", "T6"),
    ("find . -maxdepth 0 -exec touch T7 ';'", "T7"),
    ("sed -n 'w T8' f", "T8"),
    ("sed '1e touch T9' f", "T9"),
    ("sed 's/a/touch T10/e' f", "T10"),
    ("sed 's/[/]/x/w T11' f", "T11"),
    ("sed -n ':l e touch T33' f", "T33"),
    ("sed -n 'v 4.2 e touch T34' f", "T34"),
    ("awk 'BEGIN{system(\"touch T12\")}'", "T12"),
    ("make --ev='all: ; touch T13' all", "T13"),
    ("sort --out=T14 f", "T14"),
    ("zip -q z.zip f -T -TT 'touch T15 #'", "T15"),
    ("echo T16 | xargs touch", "T16"),
    (
        "printf 'output = \"T17\"\\nurl = \"file:///etc/hostname\"\\n' > cfg; curl -s -K cfg",
        "T17",
    ),
    ("perl -e 'open(F, \">T18\")'", "T18"),
    ("python3 -c 'open(\"T19\", \"w\")'", "T19"),
    (
        "node -e 'require(\"fs\").writeFileSync(\"T20\", \"\")'",
        "T20",
    ),
    ("cd g && git grep -O'touch ../T21' hello", "T21"),
    (
        "cd g && git -c user.name=k -c user.email=k@k rebase -q -x'touch ../T22' HEAD~1",
        "T22",
    ),
    ("cd g && git -c alias.x='!touch ../T23' x", "T23"),
    ("git clone -q -u'touch T24; git-upload-pack' g g2", "T24"),
    (
        "git clone -q --upload-pac='touch T25; git-upload-pack' g g3",
        "T25",
    ),
    ("cd g && git log -1 --output=../T26", "T26"),
    ("env touch T27", "T27"),
    ("timeout 5 touch T28", "T28"),
    ("nice touch T29", "T29"),
    ("nohup touch T30", "T30"),
    ("stdbuf -o0 touch T31", "T31"),
    (
        "echo 'require(\"fs\").writeFileSync(\"T32\", \"\")' | node",
        "T32",
    ),
];

#[tokio::test]
async fn sec_48_each_technique_really_runs_on_this_machine() {
    let ws = Ws::exec();
    fixtures(&ws);
    for (command, marker) in REAL {
        let out = ws.sh(command).await;
        assert!(
            exists(&ws.path(marker)),
            "`{command}` did not create {marker}: {}",
            out.content
        );
    }
}

/// Ways to delete `victim` that do not say `rm` where an argv starts.
const DELETERS: &[&str] = &[
    "awk 'BEGIN{system(\"rm victim\")}'",
    "perl -e 'unlink \"victim\"'",
    "python3 -c 'import os; os.remove(\"victim\")'",
    "node -e 'require(\"fs\").unlinkSync(\"victim\")'",
    "sed '1e rm victim' f",
    "find . -name victim -delete",
    "find . -name victim -exec rm {} ';'",
    "echo victim | xargs rm",
    "env rm victim",
    "/usr/bin/env rm victim",
    "timeout 5 rm victim",
    "nice -n 5 rm victim",
    "nohup rm victim",
    "stdbuf -o0 rm victim",
    "sh -c 'rm victim'",
    "bash -c \"true; rm victim\"",
    "echo 'rm victim' | sh",
    "git -c alias.x='!rm victim' x",
    "git -c core.pager='rm victim' log",
    "tar -xf plain.tar --to-command='rm victim'",
    "tar -cf /dev/null f --checkpoint=1 --checkpoint-action=exec='rm victim'",
    "ssh -oProxyCommand='rm victim' host",
    "make --eval='all: ; rm victim' all",
    "sort --compress-program='rm victim' f",
    "split --filter='rm victim' f",
    "zip -q z.zip f -T -TT 'rm victim'",
];

#[tokio::test]
async fn sec_48_deny_rules_hold_through_runners_in_every_mode() {
    for security in [
        ExecSecurity::AllowAlways,
        ExecSecurity::Allowlist,
        ExecSecurity::ApprovalAlways,
    ] {
        let ws = Ws::with(|c| {
            c.exec.security = security;
            // Every program allowlisted: only the deny rule stands in the way.
            c.exec.allowlist = [
                "awk *",
                "perl *",
                "python3 *",
                "node *",
                "sed *",
                "find *",
                "echo *",
                "xargs *",
                "env *",
                "timeout *",
                "nice *",
                "nohup *",
                "stdbuf *",
                "sh *",
                "bash *",
                "git *",
                "tar *",
                "ssh *",
                "make *",
                "sort *",
                "split *",
                "zip *",
            ]
            .map(String::from)
            .to_vec();
            c.exec.deny = vec!["rm *".into()];
        });
        fixtures(&ws);
        ws.put("victim", "keep me");
        let exec = ws.reg.get("exec").unwrap();
        for command in DELETERS {
            let args = json!({ "command": command });
            // Even a person's broad rule for the runner does not cover its code.
            let offered = exec.always_rules_json(&args).unwrap();
            let rules: Vec<_> = offered.into_iter().skip(1).map(|(r, _)| r).collect();
            let v = ws.approval_with("exec", args.clone(), &rules);
            assert!(
                !matches!(v, Approval::NotNeeded),
                "{security:?}: `{command}` would run unasked"
            );
            if let Approval::Refused(why) = &v {
                assert!(why.contains("deny rule `rm *`"), "{why}");
                // The tool refuses it at call time too.
                let out = err(ws.call("exec", args).await);
                assert!(out.starts_with("refused:"), "{out}");
            }
            assert!(exists(&ws.path("victim")), "{security:?}: `{command}`");
        }
    }
}
