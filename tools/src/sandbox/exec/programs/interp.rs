//! Shells, script interpreters and awk: a script file in the workspace is what an
//! allowlist entry like `node *` is for; code written on the command line
//! (`-e`, `-c`, an awk program) or read from standard input needs a person unless
//! the rule names it.

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{POSIX, Syntax, Table};

/// Options after the script belong to it; node has no abbreviations.
const NODE: Syntax = Syntax {
    permute: false,
    abbrev: false,
    unknown_ok: false,
};

/// `awk`, `gawk`, `mawk`: the program text is code, always.
pub(super) fn awk(name: &str, argv: &[String]) -> Reading {
    let Some(t) = table!(
        "F,field-separator= v,assign= f,file=!R e,source=!R i,include=!R l,load=!R E,exec=!R \
         d,dump-variables?!T p,profile?!T o,pretty-print?!T D,debug?!R S,sandbox \
         b,characters-as-bytes c,traditional C,copyright g,gen-pot h,help k,csv L,lint? \
         M,bignum N,use-lc-numeric n,non-decimal-data O,optimize P,posix r,re-interval \
         s,no-optimize t,lint-old V,version W=!U I,trace"
    ) else {
        return broken(name, argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, name, t, POSIX, argv, 1);
    let has_program = r.items.iter().any(|i| i.kind == Kind::Code);
    if !has_program && let Some(&p) = parsed.operands.first() {
        r.push(
            vec![p],
            Kind::Code,
            format!(
                "the {name} program `{}` is code (it can run commands with system() and pipes, and write files)",
                argv[p]
            ),
        );
    }
    r
}

/// `sh`, `bash`, ...: `-c` code is read by the policy; a script from standard
/// input cannot be.
pub(super) fn shell(name: &str, argv: &[String]) -> Reading {
    let mut r = Reading::default();
    if argv.len() > 1 {
        r.push(
            (1..argv.len()).collect(),
            Kind::Shell,
            format!("`{name}` runs a shell"),
        );
    }
    let Some(t) = table!(
        "c s i l r e x u v n a b f h k m p t C E V B H P T D O=!U o=!U norc noprofile \
         rcfile=!R init-file=!R posix login noediting restricted verbose version help \
         debugger dump-strings dump-po-strings wordexp protected"
    ) else {
        return broken(name, argv);
    };
    let parsed = crate::sandbox::exec::options::parse(t, POSIX, argv, 1);
    let has = |c: char| {
        parsed
            .found
            .iter()
            .any(|f| f.opt.is_some_and(|o| t.opt(o).name == format!("-{c}")))
    };
    let reads_stdin = !has('c') && (parsed.operands.is_empty() || has('s'));
    let version = parsed.found.iter().any(|f| {
        f.opt
            .is_some_and(|o| matches!(t.opt(o).name.as_str(), "--version" | "--help"))
    });
    if reads_stdin && !version {
        r.stdin_code(
            argv,
            format!("`{name}` reads its script from standard input, which the policy cannot see"),
        );
    }
    r
}

fn interpreter_table(name: &str) -> Option<(&'static Table, Syntax)> {
    let t = match name {
        "python" | "python2" | "python3" => table!(
            "c=!R m=!U W= X= O B b d E h,help I i P q R s S u v V,version x \
             check-hash-based-pycs= help-env help-xoptions help-all"
        ),
        "perl" => table!(
            "e=!R E=!R M=!R m=!R I=!R x? i?!W n p a F= l? 0? c!R d?!R D? s S t T u U v V? w W \
             X C? h"
        ),
        "ruby" => table!(
            "e=!R r=!R I=!R C= E,encoding= F= i?!W l n p a c d,debug s S v w W? x? y 0? h \
             help version verbose enable= disable= jit yjit dump= external-encoding= \
             internal-encoding= backtrace-limit= crash-report=!T"
        ),
        "node" | "nodejs" => table!(
            "e,eval=!R p,print=!R r,require=!R import=!R loader=!R experimental-loader=!R \
             i,interactive c,check inspect?!R inspect-brk?!R inspect-port=!R inspect-wait?!R \
             env-file=!R env-file-if-exists=!R test watch watch-path= no-warnings \
             enable-source-maps max-old-space-size= stack-size= input-type= v,version h,help \
             trace-warnings trace-deprecation pending-deprecation throw-deprecation \
             abort-on-uncaught-exception experimental-vm-modules experimental-strip-types \
             conditions= C= title= unhandled-rejections= no-deprecation preserve-symlinks \
             redirect-warnings=!T test-reporter= test-name-pattern= test-only run=!R \
             openssl-config=!R icu-data-dir= report-on-signal="
        ),
        "php" => {
            table!("r=!R B=!R R=!R F=!R E=!R a d=!R c=!R n f= l s w i m v h H e z=!R S=!R t= q")
        }
        "lua" | "luajit" => table!("e=!R l=!R i v E W j=!R O? b=!U"),
        "tclsh" => table!("encoding="),
        _ => None,
    }?;
    Some((
        t,
        if name.starts_with("node") {
            NODE
        } else {
            POSIX
        },
    ))
}

/// Script interpreters: the script operand runs (that is what the entry is for);
/// inline code, modules and code from standard input need a person.
pub(super) fn interpreter(name: &str, argv: &[String]) -> Reading {
    let Some((t, syntax)) = interpreter_table(name) else {
        // Interpreters without a table (deno, bun) are read as a whole.
        let mut r = Reading::default();
        if argv.len() > 1 {
            r.push(
                (1..argv.len()).collect(),
                Kind::Code,
                format!("`{name}` runs code Keel has no model of"),
            );
        }
        return r;
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, name, t, syntax, argv, 1);
    let info = parsed.found.iter().any(|f| {
        f.opt.is_some_and(|o| {
            matches!(
                t.opt(o).name.as_str(),
                "--version" | "--help" | "-v" | "-V" | "-h"
            )
        })
    });
    let code_given = r.items.iter().any(|i| i.kind == Kind::Code);
    let script = parsed.operands.first().map(|&i| argv[i].as_str());
    if !info && !code_given && matches!(script, None | Some("-")) {
        r.stdin_code(
            argv,
            format!("`{name}` reads its program from standard input, which the policy cannot see"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn scripts_run_inline_code_does_not() {
        assert_eq!(kinds("node a.js --port 3000"), vec![]);
        assert_eq!(kinds("python3 -u manage.py test -c x"), vec![]);
        assert_eq!(kinds("node -e x"), vec![Kind::Code]);
        assert_eq!(kinds("node --require=./x a.js"), vec![Kind::Code]);
        // node has no abbreviations: `--requ` is not `--require`, and not understood.
        assert_eq!(kinds("node --requ=./x a.js"), vec![Kind::Unknown]);
        assert_eq!(kinds("python -c x"), vec![Kind::Code]);
        assert_eq!(kinds("python -Bc x"), vec![Kind::Code]);
        assert_eq!(kinds("perl -pie x f"), vec![Kind::Writes]);
        assert_eq!(kinds("perl -ne x f"), vec![Kind::Code]);
        assert_eq!(kinds("ruby -rx a.rb"), vec![Kind::Code]);
        assert_eq!(kinds("python"), vec![Kind::Code]);
        assert_eq!(kinds("python --version"), vec![]);
        assert_eq!(kinds("node -"), vec![Kind::Code]);
    }

    #[test]
    fn awk_programs_are_code() {
        assert_eq!(kinds("awk {print} f"), vec![Kind::Code]);
        assert_eq!(kinds("awk -F: -f p.awk f"), vec![Kind::Code]);
        assert_eq!(kinds("gawk --l=x.so"), vec![Kind::Unknown]);
        assert_eq!(kinds("gawk --lo=x.so"), vec![Kind::Code]);
        assert_eq!(kinds("awk"), vec![]);
    }

    #[test]
    fn shells() {
        assert_eq!(kinds("sh -c x"), vec![Kind::Shell]);
        assert_eq!(kinds("sh"), vec![Kind::Code]);
        assert_eq!(kinds("bash -s"), vec![Kind::Shell, Kind::Code]);
        assert_eq!(kinds("bash script.sh"), vec![Kind::Shell]);
        assert_eq!(kinds("bash -xc x"), vec![Kind::Shell]);
    }
}
