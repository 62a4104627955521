//! Wrappers that run another command: `env`, `timeout`, `nice`, `nohup`, `stdbuf`
//! (covered where the command they run is covered), and `xargs` (whose command gets
//! more arguments from its input, so a rule must name it).

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{POSIX, Table};

fn wrapper_table(name: &str) -> Option<&'static Table> {
    match name {
        "env" => table!(
            "i,ignore-environment 0,null u,unset= C,chdir=!T S,split-string=!S v,debug \
             block-signal? default-signal? ignore-signal? list-signal-handling a,argv0= \
             help version"
        ),
        "timeout" => {
            table!("s,signal= k,kill-after= foreground preserve-status v,verbose help version")
        }
        "nice" => table!("n,adjustment= 0 1 2 3 4 5 6 7 8 9 help version"),
        "nohup" => table!("help version"),
        "stdbuf" => table!("i,input= o,output= e,error= help version"),
        "xargs" => table!(
            "0,null a,arg-file= d,delimiter= E= e,eof? I= i,replace? L= l,max-lines? \
             n,max-args= o,open-tty P,max-procs= p,interactive process-slot-var= \
             r,no-run-if-empty s,max-chars= show-limits t,verbose x,exit help version"
        ),
        _ => None,
    }
}

/// Reads a wrapper: its options, then the command it runs.
pub(super) fn read(name: &str, argv: &[String]) -> Reading {
    let Some(t) = wrapper_table(name) else {
        return broken(name, argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, name, t, POSIX, argv, 1);
    let mut ops = parsed.operands.iter().copied().peekable();
    if name == "timeout" {
        ops.next(); // the duration
    }
    if name == "env" {
        while let Some(&i) = ops.peek() {
            if !argv[i].contains('=') {
                break;
            }
            ops.next();
            r.push(
                vec![i],
                Kind::Code,
                format!(
                    "`{}` sets a variable for the command, which can change what it loads and runs",
                    argv[i]
                ),
            );
        }
    }
    if let Some(k) = ops.next() {
        let what = format!("`{name}` runs `{}`", argv[k..].join(" "));
        if name == "xargs" {
            r.push(
                (k..argv.len()).collect(),
                Kind::Command(k),
                format!("{what} with arguments from its input"),
            );
        } else {
            r.push((k..argv.len()).collect(), Kind::Wraps(k), what);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn wrappers_name_their_command() {
        assert_eq!(kinds("timeout -s KILL 5 npm test"), vec![Kind::Wraps(4)]);
        assert_eq!(kinds("nice -10 make"), vec![Kind::Wraps(2)]);
        assert_eq!(kinds("env -i FOO=1 rm x"), vec![Kind::Code, Kind::Wraps(3)]);
        assert_eq!(kinds("env"), vec![]);
        assert_eq!(kinds("xargs -0 rm"), vec![Kind::Command(2)]);
        assert_eq!(kinds("env -S x"), vec![Kind::Shell]);
        assert_eq!(kinds("timeout 5"), vec![]);
    }
}
