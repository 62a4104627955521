//! Every model compiles, and reads the way its program does.

use super::*;

fn argv(line: &str) -> Vec<String> {
    line.split(' ').map(String::from).collect()
}

/// What `line` (words split at single spaces) reads as, kind by kind.
pub(super) fn kinds(line: &str) -> Vec<Kind> {
    read(&argv(line))
        .items
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

/// Programs with a model, and a harmless way to call each.
const HARMLESS: &[&str] = &[
    "cat -n a",
    "ls -la",
    "grep -rn x .",
    "sort -u a",
    "tee -a out",
    "cp -r a b",
    "mv a b",
    "ln -s a b",
    "install -m 644 a b",
    "rm -rf build",
    "rmdir d",
    "mkdir -p d",
    "touch f",
    "chmod +x f",
    "chown u f",
    "truncate -s 0 f",
    "shred -u f",
    "uniq a b",
    "split -l 5 a p",
    "csplit a /x/",
    "less -R f",
    "more f",
    "man -k x",
    "rg --hidden x",
    "fd -H x",
    "printf %s x",
    "dd if=a of=b bs=1M",
    "date +%s",
    "tar -czf a.tgz src",
    "zip -r a.zip s",
    "unzip -o a.zip",
    "find . -name x",
    "sed -n 1p f",
    "awk",
    "gawk --version",
    "python a.py",
    "perl a.pl",
    "ruby a.rb",
    "node a.js",
    "php a.php",
    "lua a.lua",
    "tclsh a.tcl",
    "env",
    "timeout 5",
    "nice",
    "nohup",
    "stdbuf",
    "xargs",
    "ssh -p 2 h",
    "scp a h:b",
    "rsync -a a h:b",
    "curl -s u",
    "wget -q u",
    "make -j4",
    "npm test",
    "npx",
    "yarn test",
    "pnpm test",
    "cargo build",
    "pip install x",
    "git status",
];

#[test]
fn every_model_compiles_and_reads_a_harmless_call() {
    for line in HARMLESS {
        let r = read(&argv(line));
        assert!(
            r.items.iter().all(|i| !i.what.contains("is broken")),
            "{line}: {r:?}"
        );
        assert!(
            r.items.iter().all(|i| matches!(i.kind, Kind::Target(_))),
            "{line}: {r:?}"
        );
    }
}

#[test]
fn unmodelled_programs_take_no_options() {
    assert_eq!(kinds("frob a b"), vec![]);
    assert_eq!(kinds("frob -x a"), vec![Kind::Unknown]);
    assert_eq!(kinds("frob a -- -x"), vec![]);
    assert_eq!(kinds("frob +x"), vec![Kind::Unknown]);
}

#[test]
fn coreutils_options() {
    assert_eq!(
        kinds("sort -o /etc/x a"),
        vec![Kind::Target("/etc/x".into())]
    );
    assert_eq!(
        kinds("sort --out=/etc/x a"),
        vec![Kind::Target("/etc/x".into())]
    );
    assert_eq!(kinds("sort --compress-prog=sh a"), vec![Kind::Shell]);
    assert_eq!(kinds("sort -S 1G -T /tmp a"), vec![]);
    assert_eq!(kinds("split --filter=sh a"), vec![Kind::Shell]);
    assert_eq!(kinds("date -s 2020-01-01"), vec![Kind::Writes]);
    assert_eq!(kinds("date 0101"), vec![Kind::Writes]);
    assert_eq!(kinds("printf -v PATH x"), vec![Kind::Code]);
    assert_eq!(kinds("less +!sh f"), vec![Kind::Code]);
    assert_eq!(
        kinds("less -o /tmp/log f"),
        vec![Kind::Target("/tmp/log".into())]
    );
    assert_eq!(kinds("man -P sh ls"), vec![Kind::Shell]);
    assert_eq!(kinds("man --html=sh ls"), vec![Kind::Shell]);
    assert_eq!(kinds("rg --pre sh x"), vec![Kind::Shell]);
    assert_eq!(kinds("fd -x rm"), vec![Kind::Shell]);
    assert_eq!(kinds("cp a /etc/b"), vec![Kind::Target("/etc/b".into())]);
    assert_eq!(
        kinds("install --strip-program=sh a b"),
        vec![
            Kind::Shell,
            Kind::Target("a".into()),
            Kind::Target("b".into())
        ]
    );
    assert_eq!(
        kinds("dd of=/dev/sda"),
        vec![Kind::Target("/dev/sda".into())]
    );
    assert_eq!(kinds("dd if=x oflag=direct"), vec![]);
    assert_eq!(
        kinds("xxd -cols 8 in /etc/x"),
        vec![Kind::Target("in".into()), Kind::Target("/etc/x".into())]
    );
}

#[test]
fn places_judge_paths_by_text() {
    let protected = |p: &Path| p.components().any(|c| c.as_os_str() == ".git");
    let place = Place {
        root: Path::new("/w"),
        cwd: Path::new("/w/sub"),
        protected: &protected,
    };
    assert_eq!(place.judge("x"), None);
    assert_eq!(place.judge("../x"), None);
    assert_eq!(place.judge("/w/x"), None);
    assert!(place.judge("../../x").is_some());
    assert!(place.judge("/etc/x").is_some());
    assert!(place.judge("/w2/x").is_some());
    assert!(place.judge(".git/hooks/pre-commit").is_some());
    assert!(place.judge("a/.git/config").is_some());
    assert_eq!(place.judge("-"), None);
}
