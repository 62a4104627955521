//! `tar` (GNU, with its old-style first word `tar xzf a.tgz`), `zip` and `unzip`.

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{self, GNU, Table};

fn tar_table() -> Option<&'static Table> {
    table!(
        "A,catenate,concatenate c,create d,diff,compare delete r,append t,list test-label \
         u,update x,extract,get show-defaults no-recursion recursion a,auto-compress \
         j,bzip2 J,xz lzip lzma lzop z,gzip,gunzip,ungzip Z,compress,uncompress zstd \
         I,use-compress-program=!S f,file= C,directory= F,info-script,new-volume-script=!S \
         to-command=!S checkpoint? checkpoint-action=!S rsh-command=!S rmt-command=!S \
         index-file=!T g,listed-incremental=!T G,incremental P,absolute-names!W \
         b,blocking-factor= B,read-full-records i,ignore-zeros ignore-failed-read \
         ignore-command-error warning= h,dereference hard-dereference H,format= \
         k,keep-old-files skip-old-files keep-newer-files keep-directory-symlink \
         overwrite overwrite-dir no-overwrite-dir U,unlink-first recursive-unlink \
         remove-files O,to-stdout m,touch p,preserve-permissions,same-permissions \
         no-same-permissions same-owner no-same-owner numeric-owner owner= group= mode= \
         mtime= sort= strip-components= transform,xform= exclude= exclude-from= X= \
         exclude-vcs exclude-vcs-ignores exclude-backups exclude-caches exclude-caches-all \
         exclude-caches-under exclude-tag= exclude-tag-all= exclude-tag-under= T,files-from= \
         null no-null wildcards no-wildcards anchored no-anchored ignore-case no-ignore-case \
         wildcards-match-slash no-wildcards-match-slash unquote no-unquote verbatim-files-from \
         no-verbatim-files-from v,verbose totals? utc full-time l,check-links \
         s,preserve-order,same-order S,sparse sparse-version= W,verify w,interactive,confirmation \
         one-file-system one-top-level? N,newer,after-date= newer-mtime= K,starting-file= \
         L,tape-length= M,multi-volume V,label= R,block-number quoting-style= quote-chars= \
         no-quote-chars= show-transformed-names,show-stored-names level= atime-preserve? \
         delay-directory-restore no-delay-directory-restore xattrs no-xattrs xattrs-include= \
         xattrs-exclude= selinux no-selinux acls no-acls force-local no-auto-compress \
         occurrence? backup? suffix= volno-file=!T record-size= posix o old-archive,portability \
         seek no-seek clamp-mtime? pax-option= set-mtime-format= help usage version"
    )
}

/// Reads `tar`, including the old-style first word (`tar xvIf cmd a.tar`: each
/// letter that takes a value takes the next word, in order).
pub(super) fn tar(argv: &[String]) -> Reading {
    let Some(t) = tar_table() else {
        return broken("tar", argv);
    };
    let mut r = Reading::default();
    let mut start = 1;
    let mut old: Vec<options::Found> = Vec::new();
    if let Some(first) = argv.get(1)
        && !first.starts_with('-')
    {
        let mut next = 2;
        for c in first.chars() {
            let Some(o) = t.short(c) else {
                old.push(options::Found {
                    at: vec![1],
                    opt: None,
                    value: None,
                    text: format!("{c} (in `{first}`)"),
                    ambiguous: false,
                });
                continue;
            };
            let mut at = vec![1];
            let mut value = None;
            if t.opt(o).arg == options::Arg::Required && next < argv.len() {
                at.push(next);
                value = Some(argv[next].clone());
                next += 1;
            }
            old.push(options::Found {
                at,
                opt: Some(o),
                value,
                text: format!("{c} (in `{first}`)"),
                ambiguous: false,
            });
        }
        start = next;
    }
    // The old-style letters as if written `-x -f a.tar`, then the rest.
    let mut old_reading = Reading::default();
    for f in &old {
        let shown = f.opt.map(|o| t.opt(o).name.clone()).unwrap_or_default();
        match f.opt.map(|o| t.opt(o).class) {
            None => old_reading.push(
                f.at.clone(),
                Kind::Unknown,
                format!("`{}` is not a tar option Keel knows", f.text),
            ),
            Some(options::Class::Shell) => old_reading.push(
                f.at.clone(),
                Kind::Shell,
                format!("`{}` (tar {shown}) runs a command", f.text),
            ),
            Some(options::Class::Writes) => old_reading.push(
                f.at.clone(),
                Kind::Writes,
                format!(
                    "`{}` (tar {shown}) writes outside the current directory",
                    f.text
                ),
            ),
            Some(options::Class::Target) => old_reading.push(
                f.at.clone(),
                Kind::Target(f.value.clone().unwrap_or_default()),
                format!("`{}` (tar {shown}) writes there", f.text),
            ),
            _ => {}
        }
    }
    r.items.extend(old_reading.items);
    let parsed = with_table(&mut r, "tar", t, GNU, argv, start);
    let all: Vec<&options::Found> = old.iter().chain(parsed.found.iter()).collect();
    let is = |f: &&options::Found, name: &str| f.opt.is_some_and(|o| t.opt(o).name == name);
    let force_local = all.iter().any(|f| is(f, "--force-local"));
    for f in &all {
        if is(f, "--file")
            && !force_local
            && let Some(v) = &f.value
            && remote_archive(v)
        {
            r.push(
                f.at.clone(),
                Kind::Code,
                format!("`{v}` is a remote archive: tar runs a remote shell to reach it"),
            );
        }
        if is(f, "--directory")
            && let Some(v) = &f.value
        {
            r.push(
                f.at.clone(),
                Kind::Target(v.clone()),
                format!("`tar -C {v}` writes there"),
            );
        }
    }
    r
}

/// `host:file` (not `./a:b`, not `/a:b`): tar reaches it through rsh/ssh.
fn remote_archive(v: &str) -> bool {
    match v.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/'),
        None => false,
    }
}

/// Reads `zip` (Info-ZIP): `-TT`/`--unzip-command` runs a command; the archive is
/// written.
pub(super) fn zip(argv: &[String]) -> Reading {
    const FLAGS: &[&str] = &[
        "-r", "-R", "-q", "-v", "-j", "-D", "-u", "-f", "-d", "-y", "-X", "-o", "-l", "-ll", "-k",
        "-T", "-@", "-0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9", "-x", "-i", "-FS",
        "-sf", "-h", "-v", "-A", "-J", "-g", "-L", "-c", "-z", "-ws", "-nw", "-db", "-dc", "-dd",
        "-dg", "-du", "-dv", "-MM", "-AC", "-AS", "-WW", "-$",
    ];
    const VALUED: &[&str] = &["-n", "-P", "-t", "-tt", "-Z", "-s", "-ds", "-UN"];
    let mut r = Reading::default();
    let mut i = 1;
    let mut archive = None;
    while let Some(a) = argv.get(i) {
        let w = a.as_str();
        let long_unzip =
            w.starts_with("--u") && "--unzip-command".starts_with(w.split('=').next().unwrap_or(w));
        if w.starts_with("-TT") || long_unzip {
            let separate = w == "-TT" || (long_unzip && !w.contains('='));
            let end = if separate {
                (i + 1).min(argv.len() - 1)
            } else {
                i
            };
            r.push(
                (i..=end).collect(),
                Kind::Shell,
                format!("`{w}` (zip --unzip-command) runs a command"),
            );
            i = end + 1;
        } else if matches!(w, "-lf" | "-O" | "-b") {
            let v = argv.get(i + 1).cloned().unwrap_or_default();
            r.push(
                vec![i, (i + 1).min(argv.len() - 1)],
                Kind::Target(v.clone()),
                format!("`zip {w} {v}` writes there"),
            );
            i += 2;
        } else if VALUED.contains(&w) {
            i += 2;
        } else if w.starts_with('-') && w != "-" && !FLAGS.contains(&w) {
            r.push(
                vec![i],
                Kind::Unknown,
                format!("`{w}` is not a zip option Keel knows"),
            );
            i += 1;
        } else {
            if !w.starts_with('-') && archive.is_none() {
                archive = Some(i);
            }
            i += 1;
        }
    }
    if let Some(a) = archive {
        r.push(
            vec![a],
            Kind::Target(argv[a].clone()),
            format!("`zip` writes `{}`", argv[a]),
        );
    }
    r
}

/// Reads `unzip`: `-d` names where it writes; `-:` lets it write outside.
pub(super) fn unzip(argv: &[String]) -> Reading {
    let Some(t) =
        table!("d=!T o n q l t v j x p c f u a b C L X K M P= Z z :!W ^ U O= I= h T D V W")
    else {
        return broken("unzip", argv);
    };
    let mut r = Reading::default();
    with_table(&mut r, "unzip", t, GNU, argv, 1);
    r
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn tar_options_as_tar_reads_them() {
        assert_eq!(kinds("tar -xzf a.tgz"), vec![]);
        assert_eq!(kinds("tar xzf a.tgz"), vec![]);
        assert_eq!(kinds("tar --to-comm=sh -xf a.tar"), vec![Kind::Shell]);
        assert_eq!(
            kinds("tar --checkpoint-act=exec=id -cf a.tar ."),
            vec![Kind::Shell]
        );
        assert_eq!(
            kinds("tar --use-compress-prog=x -cf a.tar ."),
            vec![Kind::Shell]
        );
        assert_eq!(kinds("tar -cIx -f a.tar ."), vec![Kind::Shell]);
        assert_eq!(kinds("tar cIf x a.tar ."), vec![Kind::Shell]);
        assert_eq!(kinds("tar -cf host:a.tar ."), vec![Kind::Code]);
        assert_eq!(kinds("tar --force-local -cf host:a.tar ."), vec![]);
        assert_eq!(
            kinds("tar -xf a.tar -C /etc"),
            vec![Kind::Target("/etc".into())]
        );
        assert_eq!(kinds("tar -xPf a.tar"), vec![Kind::Writes]);
        assert_eq!(kinds("tar -xf a.tar -- --to-command=sh"), vec![]);
        assert_eq!(kinds("tar --to=x"), vec![Kind::Unknown]);
    }

    #[test]
    fn zip_and_unzip() {
        assert_eq!(
            kinds("zip -r a.zip src"),
            vec![Kind::Target("a.zip".into())]
        );
        assert_eq!(kinds("zip a.zip x -T -TT id").first(), Some(&Kind::Shell));
        assert_eq!(
            kinds("zip a.zip x --unzip-command=id").first(),
            Some(&Kind::Shell)
        );
        assert_eq!(
            kinds("unzip -o a.zip -d out"),
            vec![Kind::Target("out".into())]
        );
        assert_eq!(kinds("unzip -: a.zip"), vec![Kind::Writes]);
    }
}
