//! Programs read with one option table: what they do to their operands, and which
//! options run commands or write files (coreutils and friends).

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{GNU, POSIX, Syntax, Table};

/// What a program does with its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Operands {
    /// Reads them (or nothing happens to them).
    Read,
    /// Writes, creates or deletes every one.
    Written,
    /// The last one is written (`cp src dst`).
    LastWritten,
    /// The first is a mode or owner, the rest are changed (`chmod`, `chown`).
    AfterFirstWritten,
    /// The second is written (`uniq in out`, `split in prefix`).
    SecondWritten,
}

/// A program read with one table.
pub(super) struct Model {
    table: Option<&'static Table>,
    syntax: Syntax,
    operands: Operands,
}

impl Model {
    pub(super) fn read(&self, name: &str, argv: &[String]) -> Reading {
        let Some(table) = self.table else {
            return broken(name, argv);
        };
        let mut r = Reading::default();
        let parsed = with_table(&mut r, name, table, self.syntax, argv, 1);
        let ops = &parsed.operands;
        let written: Vec<usize> = match self.operands {
            Operands::Read => Vec::new(),
            Operands::Written => ops.clone(),
            Operands::LastWritten => ops.last().copied().into_iter().collect(),
            Operands::AfterFirstWritten => {
                // With `--reference=file` there is no mode operand.
                let reference = parsed.found.iter().any(|f| f.text.starts_with("--ref"));
                ops.iter().skip(usize::from(!reference)).copied().collect()
            }
            Operands::SecondWritten => ops.get(1).copied().into_iter().collect(),
        };
        if matches!(name, "less" | "more") {
            // `less +cmd`: a command run when it starts.
            for &i in ops.iter().filter(|i| argv[**i].starts_with('+')) {
                r.push(
                    vec![i],
                    Kind::Code,
                    format!("`{}` runs a {name} command", argv[i]),
                );
            }
        }
        for i in written {
            r.push(
                vec![i],
                Kind::Target(argv[i].clone()),
                format!("`{name}` writes `{}`", argv[i]),
            );
        }
        r
    }
}

/// Programs whose options are all harmless: they read files and print.
const READERS: &[&str] = &[
    "cat",
    "ls",
    "dir",
    "vdir",
    "head",
    "tail",
    "wc",
    "echo",
    "pwd",
    "true",
    "false",
    ":",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "stat",
    "du",
    "df",
    "cut",
    "paste",
    "column",
    "od",
    "hexdump",
    "base64",
    "base32",
    "basenc",
    "tr",
    "nl",
    "fold",
    "fmt",
    "expand",
    "unexpand",
    "rev",
    "tac",
    "seq",
    "yes",
    "sleep",
    "which",
    "whoami",
    "id",
    "uname",
    "nproc",
    "grep",
    "egrep",
    "fgrep",
    "zgrep",
    "diff",
    "cmp",
    "comm",
    "jq",
    "printenv",
    "arch",
    "groups",
    "locale",
    "tty",
    "test",
    "[",
    "md5sum",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "b2sum",
    "cksum",
    "sum",
    "numfmt",
    "factor",
    "expr",
    "join",
    "ps",
    "free",
    "uptime",
    "type",
    "hostid",
    "logname",
    "users",
    "who",
    "w",
    "lsblk",
    "lscpu",
    "getconf",
    "gzip",
    "gunzip",
    "zcat",
    "bzip2",
    "bunzip2",
    "bzcat",
    "xz",
    "unxz",
    "xzcat",
    "lzma",
    "unlzma",
    "strings",
    "nm",
    "objdump",
    "readelf",
    "size",
    "ldd",
];

/// The table, syntax and operands of `name`, if it has a plain model.
pub(super) fn model(name: &str) -> Option<Model> {
    if READERS.contains(&name) {
        return Some(Model {
            table: table!("help version"),
            syntax: ANY,
            operands: Operands::Read,
        });
    }
    let (table, syntax, operands) = match name {
        // Its options are harmless, but their spelling is its own (`-cols 8`): every
        // operand after the input is judged as written.
        "xxd" => (table!("help version"), ANY, Operands::AfterFirstWritten),
        "printf" => (table!("v=!R help version"), POSIX, Operands::Read),
        "sort" => (
            table!(
                "b,ignore-leading-blanks d,dictionary-order f,ignore-case g,general-numeric-sort \
                 i,ignore-nonprinting M,month-sort h,human-numeric-sort n,numeric-sort \
                 R,random-sort random-source= r,reverse sort= V,version-sort batch-size= c \
                 check? C compress-program=!S debug files0-from= k,key= m,merge o,output=!T \
                 s,stable S,buffer-size= t,field-separator= T,temporary-directory= parallel= \
                 u,unique z,zero-terminated help version"
            ),
            GNU,
            Operands::Read,
        ),
        "tee" => (
            table!("a,append i,ignore-interrupts p output-error? help version"),
            GNU,
            Operands::Written,
        ),
        "cp" => (
            table!(
                "a,archive attributes-only backup? b copy-contents d debug f,force \
                 i,interactive H l,link L,dereference n,no-clobber P,no-dereference p \
                 preserve? no-preserve= parents R,r,recursive reflink? remove-destination \
                 sparse= strip-trailing-slashes s,symbolic-link S,suffix= t,target-directory=!T \
                 T,no-target-directory u update? v,verbose x,one-file-system Z context? \
                 keep-directory-symlink help version"
            ),
            GNU,
            Operands::LastWritten,
        ),
        "mv" => (
            table!(
                "b backup? f,force i,interactive n,no-clobber no-copy strip-trailing-slashes \
                 S,suffix= t,target-directory=!T T,no-target-directory u update? v,verbose \
                 Z,context exchange debug help version"
            ),
            GNU,
            Operands::Written,
        ),
        "ln" => (
            table!(
                "b backup? d,F,directory f,force i,interactive L,logical n,no-dereference \
                 P,physical r,relative s,symbolic S,suffix= t,target-directory=!T \
                 T,no-target-directory v,verbose help version"
            ),
            GNU,
            Operands::LastWritten,
        ),
        "install" => (
            table!(
                "b backup? C,compare c d,directory D g,group= m,mode= o,owner= \
                 p,preserve-timestamps s,strip strip-program=!S S,suffix= t,target-directory=!T \
                 T,no-target-directory v,verbose preserve-context Z context? debug help version"
            ),
            GNU,
            Operands::Written,
        ),
        "rm" => (
            table!(
                "f,force i I interactive? one-file-system no-preserve-root!W preserve-root? \
                 r,R,recursive d,dir v,verbose help version"
            ),
            GNU,
            Operands::Written,
        ),
        "rmdir" => (
            table!("ignore-fail-on-non-empty p,parents v,verbose help version"),
            GNU,
            Operands::Written,
        ),
        "mkdir" => (
            table!("m,mode= p,parents v,verbose Z context? help version"),
            GNU,
            Operands::Written,
        ),
        "touch" => (
            table!("a c,no-create d,date= f h,no-dereference m r,reference= t= time= help version"),
            GNU,
            Operands::Written,
        ),
        "chmod" | "chown" | "chgrp" => (
            table!(
                "c,changes f,silent,quiet v,verbose dereference h,no-dereference from= \
                 no-preserve-root!W preserve-root reference= R,recursive H L P help version"
            ),
            GNU,
            Operands::AfterFirstWritten,
        ),
        "truncate" => (
            table!("c,no-create o,io-blocks r,reference= s,size= help version"),
            GNU,
            Operands::Written,
        ),
        "shred" => (
            table!(
                "f,force n,iterations= random-source= s,size= u remove? v,verbose x,exact \
                 z,zero help version"
            ),
            GNU,
            Operands::Written,
        ),
        "unlink" | "link" => (table!("help version"), GNU, Operands::Written),
        "uniq" => (
            table!(
                "c,count d,repeated D all-repeated? f,skip-fields= group? i,ignore-case \
                 s,skip-chars= u,unique z,zero-terminated w,check-chars= help version"
            ),
            GNU,
            Operands::SecondWritten,
        ),
        "split" => (
            table!(
                "a,suffix-length= additional-suffix= b,bytes= C,line-bytes= d \
                 numeric-suffixes? x hex-suffixes? e,elide-empty-files filter=!S l,lines= \
                 n,number= separator= t= u,unbuffered verbose help version"
            ),
            GNU,
            Operands::SecondWritten,
        ),
        "csplit" => (
            table!(
                "b,suffix-format= f,prefix=!T k,keep-files suppress-matched n,digits= \
                 s,quiet,silent z,elide-empty-files help version"
            ),
            GNU,
            Operands::Read,
        ),
        "less" => (
            table!(
                "a b= B c C d e E f F g G h= i I j= J k,lesskey-file=!R K L m M n N \
                 o,log-file=!T O,LOG-FILE=!T p,pattern= P,prompt= q Q r R s S t,tag= \
                 T,tag-file= u U V w W x,tabs= X y= z= lesskey-src=!R lesskey-content=!R \
                 mouse no-keypad no-histdups rscroll= save-marks use-color quit-on-intr \
                 incsearch line-num-width= status-col-width= wordwrap help version"
            ),
            GNU,
            Operands::Read,
        ),
        "more" => (
            table!("d l f p c s u n,lines= e,exit-on-eof h,help V,version"),
            GNU,
            Operands::Read,
        ),
        "man" => (
            table!(
                "C,config-file=!R d,debug D,default warnings? f,whatis k,apropos K,global-apropos \
                 l,local-file w,where,path,location W,where-cat,location-cat c,catman \
                 R,recode= L,locale= m,systems= M,manpath= S,s,sections= e,extension= \
                 i,ignore-case I,match-case regex wildcard names-only a,all u,update no-subpages \
                 P,pager=!S r,prompt= 7,ascii E,encoding= no-hyphenation no-justification \
                 p,preprocessor= t,troff T,troff-device? H,html?!S X,gxditview? Z,ditroff \
                 h,help V,version"
            ),
            GNU,
            Operands::Read,
        ),
        "rg" => (
            table!("pre=!S pre-glob= hostname-bin=!S z,search-zip"),
            ANY_NO_ABBREV,
            Operands::Read,
        ),
        "fd" | "fdfind" => (
            table!("x,exec!S X,exec-batch!S"),
            ANY_NO_ABBREV,
            Operands::Read,
        ),
        _ => return None,
    };
    Some(Model {
        table,
        syntax,
        operands,
    })
}

/// Every option is harmless.
const ANY: Syntax = Syntax {
    permute: true,
    abbrev: true,
    unknown_ok: true,
};
/// Options as listed; anything else harmless too (programs without abbreviations
/// whose dangerous options are all listed: ripgrep, fd).
const ANY_NO_ABBREV: Syntax = Syntax {
    permute: true,
    abbrev: false,
    unknown_ok: true,
};

/// `dd`: `of=` is a path it writes.
pub(super) fn dd(argv: &[String]) -> Reading {
    let mut r = Reading::default();
    for (i, a) in argv.iter().enumerate().skip(1) {
        match a.split_once('=') {
            Some(("of", path)) => r.push(
                vec![i],
                Kind::Target(path.to_owned()),
                format!("`dd` writes `{path}`"),
            ),
            Some((
                "if" | "bs" | "ibs" | "obs" | "cbs" | "count" | "skip" | "seek" | "iseek" | "oseek"
                | "conv" | "iflag" | "oflag" | "status",
                _,
            )) => {}
            _ if a == "--help" || a == "--version" => {}
            _ => r.push(
                vec![i],
                Kind::Unknown,
                format!("`{a}` is not an operand of `dd` that Keel knows"),
            ),
        }
    }
    r
}

/// `date`: `-s` and a date operand set the system clock.
pub(super) fn date(argv: &[String]) -> Reading {
    let mut r = Reading::default();
    let Some(table) = table!(
        "d,date= debug f,file= I,iso-8601? R,rfc-email rfc-3339= r,reference= s,set=!W \
         u,utc,universal resolution help version"
    ) else {
        return broken("date", argv);
    };
    let parsed = with_table(&mut r, "date", table, GNU, argv, 1);
    for i in parsed.operands {
        if !argv[i].starts_with('+') {
            r.push(
                vec![i],
                Kind::Writes,
                format!("`date {}` sets the system clock", argv[i]),
            );
        }
    }
    r
}
