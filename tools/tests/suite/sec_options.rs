//! SECURITY.md item 47: options read the way each program parses them —
//! unambiguous prefixes of long options, `--opt=value`, attached short values,
//! clusters, old-style tar letters. (Runners and deny rules: `sec_runners`.)

use keel_tools::{Approval, ExecSecurity, FormContext};
use serde_json::json;

use super::common::*;

pub(super) fn allowlist(patterns: &[&str]) -> Ws {
    Ws::with(|c| {
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = patterns.iter().map(|p| (*p).to_owned()).collect();
    })
}

pub(super) fn verdict(ws: &Ws, command: &str) -> Approval {
    ws.approval("exec", json!({ "command": command }))
}

pub(super) fn reason(ws: &Ws, command: &str) -> String {
    match verdict(ws, command) {
        Approval::Needed(form) => match form.context {
            FormContext::Command { reason, .. } => reason,
            other => panic!("{other:?}"),
        },
        other => panic!("`{command}` should need a person, got {other:?}"),
    }
}

/// (allowlist pattern, command, what the reason names): each runs code or writes
/// where its argv does not say, through an abbreviation or an attached value.
const ABBREVIATED: &[(&str, &str, &str)] = &[
    ("tar *", "tar -xf a.tar --to-comm='touch x'", "--to-command"),
    (
        "tar *",
        "tar -cf a.tar f --checkpoint-act=exec='touch x'",
        "--checkpoint-action",
    ),
    (
        "tar *",
        "tar -cf a.tar f --use-compress-prog='touch x'",
        "--use-compress-program",
    ),
    (
        "tar *",
        "tar -cI'touch x' -f a.tar f",
        "--use-compress-program",
    ),
    (
        "tar *",
        "tar cIf 'touch x' a.tar f",
        "--use-compress-program",
    ),
    ("tar *", "tar -cf a.tar f --info-scr=x", "--info-script"),
    ("tar *", "tar -cf a.tar f --rsh-comm=x", "--rsh-command"),
    ("tar *", "tar -cf host:a.tar f", "remote archive"),
    ("git *", "git rebase -x'touch x' HEAD~1", "git rebase -x"),
    ("git *", "git rebase --exe='touch x' HEAD~1", "--exec"),
    ("git *", "git clone -u'touch x' a b", "git clone -u"),
    (
        "git *",
        "git clone --upload-pac='touch x' a b",
        "--upload-pack",
    ),
    ("git *", "git fetch --upload-pac=x origin", "--upload-pack"),
    ("git *", "git push --receive-p=x origin", "--receive-pack"),
    ("git *", "git push --exec=x origin", "--exec"),
    ("git *", "git grep -O'touch x' hello", "git grep -O"),
    (
        "git *",
        "git grep --open-files=x hello",
        "--open-files-in-pager",
    ),
    ("git *", "git diff --ext-diff", "--ext-diff"),
    ("git *", "git log -p --textc", "--textconv"),
    ("git *", "git -c core.pager=x log", "git -c"),
    ("git *", "git --config-env=core.pager=X log", "--config-env"),
    ("git *", "git --exec-path=. status", "--exec-path"),
    ("git *", "git archive --remote=x --exe=y HEAD", "--exec"),
    ("git *", "git clone -c core.fsmonitor=x a b", "git clone -c"),
    ("git *", "git init --templ=/tmp/t r", "--template"),
    ("ssh *", "ssh -oProxyCommand='touch x' host", "ProxyCommand"),
    (
        "ssh *",
        "ssh -o 'LocalCommand touch x' host",
        "LocalCommand",
    ),
    (
        "ssh *",
        "ssh host -oKnownHostsCommand=x",
        "KnownHostsCommand",
    ),
    ("ssh *", "ssh -vF ./cfg host", "-F"),
    ("ssh *", "ssh -I ./p11.so host", "-I"),
    ("scp *", "scp -S ./x a host:b", "-S"),
    ("scp *", "scp -oProxyCommand=x a host:b", "ProxyCommand"),
    ("sftp *", "sftp -b cmds host", "-b"),
    ("rsync *", "rsync -e 'sh -c x' a host:b", "--rsh"),
    (
        "rsync *",
        "rsync --rs=x a host:b",
        "`--rs=x` is not an option",
    ),
    ("rsync *", "rsync --rsync-p=x a host:b", "--rsync-path"),
    ("sort *", "sort --compress-prog=x f", "--compress-program"),
    ("sort *", "sort --out=/tmp/x f", "--output"),
    ("sort *", "sort -o/tmp/x f", "--output"),
    ("make *", "make --ev='all: ; touch x' all", "--eval"),
    ("make *", "make -E 'all: ; touch x'", "--eval"),
    ("gawk *", "gawk --lo=./x.so 1 f", "--load"),
    ("gawk *", "gawk --sour='BEGIN{}' f", "--source"),
    ("sed *", "sed --fil=x f", "--file"),
    (
        "curl *",
        "curl --out=/tmp/x file:///etc/hostname",
        "`--out=/tmp/x` is not an option",
    ),
    (
        "curl *",
        "curl --output-d=/tmp -O file:///etc/hostname",
        "outside the workspace",
    ),
    ("curl *", "curl -o/tmp/x file:///etc/hostname", "--output"),
    ("curl *", "curl -K cfg", "--config"),
    ("wget *", "wget --exec=x https://example.com", "--execute"),
    (
        "wget *",
        "wget -O/tmp/x https://example.com",
        "--output-document",
    ),
    (
        "wget *",
        "wget --use-askp=x https://example.com",
        "--use-askpass",
    ),
    ("zip *", "zip a.zip f -T -TT 'touch x'", "--unzip-command"),
    (
        "zip *",
        "zip a.zip f --unzip-c='touch x'",
        "--unzip-command",
    ),
    ("man *", "man -P 'touch x' ls", "--pager"),
    ("man *", "man --ht=x ls", "--html"),
    ("less *", "less -o/tmp/x f", "--log-file"),
    ("less *", "less --lesskey-s=x f", "--lesskey-src"),
    ("node *", "node --requ=./x a.js", "--requ"),
    ("node *", "node -r ./x a.js", "--require"),
    ("node *", "node --import=./x a.js", "--import"),
    ("python3 *", "python3 -Bc 'import os' ", "-c"),
    ("perl *", "perl -MPOSIX a.pl", "-M"),
    ("perl *", "perl -pie 's/a/b/' f", "-i"),
    ("ruby *", "ruby -rx a.rb", "-r"),
    ("npm *", "npm test --script-shell=/tmp/x", "--script-shell"),
    (
        "npm *",
        "npm install --node-options=--require=./x",
        "--node-options",
    ),
    (
        "cargo *",
        "cargo build --config 'build.rustc-wrapper=\"x\"'",
        "--config",
    ),
    ("pip *", "pip install --targ=/tmp/x y", "--target"),
    ("split *", "split --filt='sh -c x' f", "--filter"),
    ("install *", "install --strip-prog=x a b", "--strip-program"),
    ("date *", "date --se=2020-01-01", "--set"),
    ("env *", "env --split-s='touch x'", "--split-string"),
];

#[test]
fn sec_47_abbreviations_and_attached_values_need_a_person() {
    for (pattern, command, named) in ABBREVIATED {
        let ws = allowlist(&[pattern]);
        let r = reason(&ws, command);
        assert!(
            r.contains(named) && r.contains(&format!("allowlist `{pattern}`")),
            "`{command}` under `{pattern}`: {r}"
        );
    }
}

/// (allowlist pattern, command): the ordinary uses stay allowed.
const HARMLESS: &[(&str, &str)] = &[
    ("tar *", "tar -xzvf a.tgz"),
    ("tar *", "tar xzf a.tgz -C out"),
    ("tar *", "tar --extract --file=a.tar --strip-components=1"),
    ("tar *", "tar -cf a.tar --exclude=.git src"),
    ("git *", "git status --short"),
    ("git *", "git log --oneline -n 20 -- src"),
    ("git *", "git diff --stat HEAD~1"),
    ("git *", "git diff --text a b"),
    ("git *", "git commit -am 'fix the tests'"),
    ("git *", "git rebase -i --autosquash main"),
    ("git *", "git grep -n -e foo -- src"),
    ("git *", "git -C sub status"),
    ("git *", "git log --output=log.txt -1"),
    ("git *", "git config --get user.name"),
    ("ssh *", "ssh -p 2222 -o ConnectTimeout=5 -i key host"),
    ("sort *", "sort -u -k2,2 -t, -o sorted.txt f"),
    ("make *", "make -j4 -C sub test"),
    ("sed *", "sed -n '1,20p' f"),
    ("sed *", "sed 's/[/]/x/g' f"),
    (
        "find *",
        "find . -name '*.rs' -type f -newer Cargo.toml -print0",
    ),
    ("curl *", "curl -sSL -o out.json https://example.com"),
    (
        "node *",
        "node --max-old-space-size=4096 a.js --port 3000 -e x",
    ),
    ("python3 *", "python3 -u manage.py test -c settings"),
    ("npm *", "npm run build -- --watch"),
    ("npm *", "npm install --save-dev lodash"),
    (
        "cargo *",
        "cargo test --release -p keel-tools -- --nocapture",
    ),
    ("cp *", "cp -r src dst"),
    ("rm *", "rm -rf build"),
    ("zip *", "zip -r a.zip src"),
    ("awk '{print $1}' *", "awk '{print $1}' f"),
    ("sed -i *", "sed -i 's/a/b/' f"),
];

#[test]
fn sec_47_ordinary_options_stay_allowed() {
    for (pattern, command) in HARMLESS {
        let ws = allowlist(&[pattern]);
        std::fs::create_dir_all(ws.path("sub")).unwrap();
        assert_eq!(
            verdict(&ws, command),
            Approval::NotNeeded,
            "`{command}` under `{pattern}`"
        );
    }
}
