//! Build tools and package managers. They run the project's own code by design —
//! `make` its makefile's recipes, `npm test` the `test` script of `package.json`,
//! `cargo build` build scripts, `pip install .` the package's build — so an entry
//! like `npm test` trusts those files (which the agent can change: `write` and
//! `edit` ask a person by default). What they never do unasked here: run code given
//! on the command line (`make --eval`, `npx pkg`, `npm exec`, `cargo --config`),
//! take a makefile or manifest from outside the workspace, or change their own
//! configuration.

use super::{Kind, Reading, broken, table, with_table};
use crate::sandbox::exec::options::{GNU, Syntax};

/// clap and nopt-style parsers: options anywhere, no abbreviations assumed.
const EXACT: Syntax = Syntax {
    permute: true,
    abbrev: false,
    unknown_ok: false,
};

/// Reads one of the build tools.
pub(super) fn read(name: &str, argv: &[String]) -> Reading {
    match name {
        "make" | "gmake" => make(name, argv),
        "npx" => npx(argv, 1),
        "npm" | "yarn" | "pnpm" => package_manager(name, argv),
        "cargo" => cargo(argv),
        _ => pip(name, argv),
    }
}

fn make(name: &str, argv: &[String]) -> Reading {
    let Some(t) = table!(
        "B,always-make C,directory= d debug? e,environment-overrides E,eval=!R \
         f,file,makefile= h,help i,ignore-errors I,include-dir= j,jobs? jobserver-style= \
         k,keep-going l,load-average,max-load? L,check-symlink-times n,just-print,dry-run,recon \
         no-print-directory o,old-file,assume-old= O,output-sync? p,print-data-base q,question \
         r,no-builtin-rules R,no-builtin-variables shuffle? s,silent,quiet \
         S,no-keep-going,stop t,touch trace v,version w,print-directory \
         W,what-if,new-file,assume-new= warn-undefined-variables"
    ) else {
        return broken(name, argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, name, t, GNU, argv, 1);
    for f in &parsed.found {
        let Some(o) = f.opt else { continue };
        let opt = t.opt(o).name.as_str();
        if matches!(opt, "--directory" | "--file" | "--include-dir")
            && let Some(v) = &f.value
        {
            r.push(
                f.at.clone(),
                Kind::Target(v.clone()),
                format!("`{}` takes makefiles from `{v}`", f.text),
            );
        }
    }
    for &i in &parsed.operands {
        if argv[i].contains('=') {
            r.push(
                vec![i],
                Kind::Code,
                format!(
                    "`{}` overrides a make variable, which can change the commands make runs",
                    argv[i]
                ),
            );
        }
    }
    r
}

/// `npx [options] <package> [args]`: runs a package (downloading it if needed).
fn npx(argv: &[String], start: usize) -> Reading {
    let Some(t) = table!("y,yes no p,package=!R c,call=!S q,quiet h,help v,version") else {
        return broken("npx", argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, "npx", t, npm_syntax(), argv, start);
    if let Some(&k) = parsed.operands.first() {
        r.push(
            vec![k],
            Kind::Code,
            format!(
                "`{}` runs the package `{}` (fetched if missing)",
                argv[..=k].join(" "),
                argv[k]
            ),
        );
    }
    r
}

/// npm stops reading its own options at the first word after the package.
fn npm_syntax() -> Syntax {
    Syntax {
        permute: false,
        abbrev: false,
        unknown_ok: false,
    }
}

/// `npm`, `yarn`, `pnpm`: scripts of package.json run (trusted like a makefile);
/// `exec`, `dlx`, `explore`, `config set`, `edit` need a person.
fn package_manager(name: &str, argv: &[String]) -> Reading {
    let Some(t) = table!(
        "s,silent q,quiet d loglevel= verbose json y,yes no-audit audit no-fund fund \
         S,save D,save-dev E,save-exact O,save-optional B,save-bundle P,save-prod no-save \
         save-peer ignore-scripts production omit= include= w,workspace= ws,workspaces \
         include-workspace-root if-present dry-run legacy-peer-deps strict-peer-deps f,force \
         prefer-offline prefer-online offline no-package-lock package-lock-only depth= long \
         parseable all color= no-color progress no-progress foreground-scripts install-links \
         no-bin-links frozen-lockfile immutable l cache=!T g,global!W prefix=!T \
         script-shell=!R node-options=!R userconfig=!R globalconfig=!R registry=!U \
         c,call=!S package=!R filter= r,recursive h,help v,version usage"
    ) else {
        return broken(name, argv);
    };
    let mut r = Reading::default();
    // Options before `--` belong to the package manager; after it, to the script.
    let parsed = with_table(&mut r, name, t, EXACT, argv, 1);
    let ops = &parsed.operands;
    let Some(&sub) = ops.first() else {
        return r;
    };
    let rest = ops.get(1).map(|&i| argv[i].as_str());
    let code = match argv[sub].as_str() {
        "exec" | "x" | "dlx" | "explore" | "edit" | "set" => true,
        "create" | "init" => ops.len() > 1,
        "config" | "c" => !matches!(rest, Some("get" | "list" | "ls")),
        _ => false,
    };
    if code {
        r.push(
            ops.clone(),
            Kind::Code,
            format!(
                "`{name} {}` runs code or changes {name}'s configuration",
                argv[sub]
            ),
        );
    }
    r
}

fn cargo(argv: &[String]) -> Reading {
    let Some(t) = table!(
        "config=!R Z=!U C=!T manifest-path=!T target-dir=!T locked offline frozen q,quiet \
         v,verbose color= release r p,package= F,features= all-features no-default-features \
         target= bin? example? test? bench? lib bins examples tests benches all-targets \
         workspace all exclude= j,jobs= message-format= profile= no-run doc no-fail-fast \
         keep-going timings? h,help V,version list future-incompat-report \
         ignore-rust-version open no-deps document-private-items check allow-dirty \
         allow-staged fix n,dry-run name= vcs= edition= dev build optional git= branch= \
         tag= rev= path= depth= e,edges= i,invert= prefix= format= no-dedupe \
         duplicates charset="
    ) else {
        return broken("cargo", argv);
    };
    let mut r = Reading::default();
    let end = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let head = &argv[..end];
    let start = if head.get(1).is_some_and(|a| a.starts_with('+')) {
        2
    } else {
        1
    };
    let parsed = with_table(&mut r, "cargo", t, EXACT, head, start);
    let Some(&sub) = parsed.operands.first() else {
        return r;
    };
    const HARMLESS: &[&str] = &[
        "build",
        "b",
        "check",
        "c",
        "test",
        "t",
        "bench",
        "run",
        "r",
        "doc",
        "d",
        "fmt",
        "clippy",
        "tree",
        "metadata",
        "clean",
        "update",
        "fetch",
        "add",
        "remove",
        "rm",
        "new",
        "init",
        "search",
        "version",
        "help",
        "generate-lockfile",
        "locate-project",
        "pkgid",
        "verify-project",
        "vendor",
        "package",
        "fix",
        "report",
        "info",
    ];
    let s = argv[sub].as_str();
    if !HARMLESS.contains(&s) {
        let kind = if matches!(s, "install" | "uninstall") {
            Kind::Writes
        } else {
            Kind::Unknown
        };
        r.push(
            vec![sub],
            kind,
            format!("`cargo {s}` is not a cargo command Keel treats as harmless"),
        );
    }
    r
}

fn pip(name: &str, argv: &[String]) -> Reading {
    let Some(t) = table!(
        "t,target=!T prefix=!T root=!T src=!T log=!T cache-dir=!T report=!T user!W \
         break-system-packages!W i,index-url=!U extra-index-url=!U f,find-links=!U \
         trusted-host=!U global-option=!R install-option=!R C,config-settings=!R python=!R \
         r,requirement= c,constraint= e,editable= no-deps U,upgrade upgrade-strategy= \
         force-reinstall I,ignore-installed pre no-cache-dir q,quiet v,verbose isolated \
         require-virtualenv no-input disable-pip-version-check no-color proxy= retries= \
         timeout= exists-action= cert= client-cert= no-index only-binary= no-binary= \
         prefer-binary dry-run y,yes format= o,outdated u,uptodate l,local not-required \
         no-build-isolation use-pep517 no-warn-script-location progress-bar= d,dest= \
         platform= python-version= implementation= abi= h,help V,version"
    ) else {
        return broken(name, argv);
    };
    let mut r = Reading::default();
    let parsed = with_table(&mut r, name, t, GNU, argv, 1);
    if let Some(&sub) = parsed.operands.first()
        && matches!(argv[sub].as_str(), "config" | "completion" | "debug")
    {
        r.push(
            vec![sub],
            Kind::Code,
            format!(
                "`{name} {}` changes pip's configuration or environment",
                argv[sub]
            ),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::kinds;

    #[test]
    fn builds() {
        assert_eq!(kinds("make -j4 all"), vec![]);
        assert_eq!(kinds("make --ev=x"), vec![Kind::Code]);
        assert_eq!(kinds("make CC=evil"), vec![Kind::Code]);
        assert_eq!(
            kinds("make -f /tmp/x.mk"),
            vec![Kind::Target("/tmp/x.mk".into())]
        );
        assert_eq!(kinds("npm test"), vec![]);
        assert_eq!(kinds("npm run build -- --watch"), vec![]);
        assert_eq!(kinds("npm install --save-dev lodash"), vec![]);
        assert_eq!(kinds("npm exec foo"), vec![Kind::Code]);
        assert_eq!(kinds("npm test --script-shell=/tmp/x"), vec![Kind::Code]);
        assert_eq!(kinds("npm config get registry"), vec![]);
        assert_eq!(kinds("npm config set script-shell x"), vec![Kind::Code]);
        assert_eq!(kinds("npx cowsay hi"), vec![Kind::Code]);
        assert_eq!(kinds("cargo test --release -- --nocapture"), vec![]);
        assert_eq!(kinds("cargo +nightly build"), vec![]);
        assert_eq!(kinds("cargo build --config x"), vec![Kind::Code]);
        assert_eq!(kinds("cargo frob"), vec![Kind::Unknown]);
        assert_eq!(kinds("pip install -r requirements.txt"), vec![]);
        assert_eq!(
            kinds("pip install --targ /tmp x"),
            vec![Kind::Target("/tmp".into())]
        );
        assert_eq!(kinds("pip config set x y"), vec![Kind::Code]);
    }
}
