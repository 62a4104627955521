//! The environment a command sees: a small named set of the host's variables.
//!
//! By default (`inherit = "core"`) only `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`,
//! `LANG`, `LC_*`, `TERM`, `TZ` and `TMPDIR` are inherited, plus the names listed
//! in `passthrough` and `secrets`, plus what `set` sets; a secret under any other
//! name (`GITHUB_PAT`, `MYSQL_PWD`, `DATABASE_URL`, ...) never reaches a command.
//! `inherit = "all"` passes everything but the `exclude` patterns (an explicit
//! choice). Variables that change how programs load or how the shell starts
//! (`LD_*`, `DYLD_*`, `BASH_ENV`, `ENV`, exported functions, `IFS`, ...) are never
//! inherited; relative entries are removed from `PATH` so a file the agent wrote
//! cannot shadow a command.
//!
//! Editors, pagers and prompts are turned off (`GIT_EDITOR=true`, `PAGER=cat`,
//! `GIT_TERMINAL_PROMPT=0`, `LESSSECURE=1`): there is no terminal. And git is
//! hardened for every command, through command-line configuration in the
//! environment (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, which
//! outranks a repository's own config): no hooks, no fsmonitor, no pager, no
//! askpass program, no implicit bare repositories, no `ext::` transport, no system
//! config. What a repository's config can still make git run (filters, textconv,
//! external diff, ...) is checked before the command runs (`repo`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::config::{EnvInherit, ExecEnvConfig};
use crate::error::{Error, Result};

/// Variables `core` inheritance keeps.
const CORE: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TERM", "TZ", "TMPDIR",
];

/// Never inherited: they change what programs load or how shells start.
const NEVER: &[&str] = &[
    "LD_*",
    "DYLD_*",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "PROMPT_COMMAND",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
];

/// Set for every command unless the configuration sets them: nothing may wait
/// for a terminal that is not there, and no pager runs commands.
const NON_INTERACTIVE: &[(&str, &str)] = &[
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_EDITOR", "true"),
    ("GIT_SEQUENCE_EDITOR", "true"),
    ("EDITOR", "true"),
    ("VISUAL", "true"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("MANPAGER", "cat"),
    ("SYSTEMD_PAGER", "cat"),
    ("LESSSECURE", "1"),
];

/// Set for every command, whatever the configuration says: git reads no system
/// config and takes these settings over any repository's.
const GIT_HARDENING: &[(&str, &str)] = &[
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.askPass", ""),
    ("safe.bareRepository", "explicit"),
    ("protocol.ext.allow", "never"),
];

/// Checks names and patterns in the configuration.
pub(crate) fn validate(cfg: &ExecEnvConfig) -> Result<()> {
    for p in cfg
        .exclude
        .iter()
        .chain(cfg.passthrough.iter())
        .chain(cfg.secrets.iter())
    {
        if p.is_empty() || p.contains(['=', '\0']) {
            return Err(Error::InvalidConfig(format!(
                "exec env pattern `{p}` must be a variable name, optionally with `*`"
            )));
        }
    }
    for name in cfg.set.keys() {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(Error::InvalidConfig(format!(
                "exec env: `{name}` is not a valid variable name"
            )));
        }
    }
    Ok(())
}

/// Case-insensitive match of a name against a pattern with `*` wildcards.
pub(crate) fn name_matches(pattern: &str, name: &[u8]) -> bool {
    let pattern = pattern.as_bytes();
    let name_upper: Vec<u8> = name.to_ascii_uppercase();
    let pattern_upper: Vec<u8> = pattern.to_ascii_uppercase();
    wildcard(&pattern_upper, &name_upper)
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    // Iterative glob match with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn any_match(patterns: &[impl AsRef<str>], name: &[u8]) -> bool {
    patterns.iter().any(|p| name_matches(p.as_ref(), name))
}

/// The environment for a command, from the host's variables and the configuration;
/// `extra` (the run's own variables, e.g. `TMPDIR`, the process marker) comes last.
pub(crate) fn build(
    cfg: &ExecEnvConfig,
    host: &[(OsString, OsString)],
    extra: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::new();
    for (name, value) in host {
        let n = name.as_bytes();
        if any_match(NEVER, n) {
            continue;
        }
        let passthrough = any_match(&cfg.passthrough, n) || any_match(&cfg.secrets, n);
        let keep = passthrough
            || match cfg.inherit {
                EnvInherit::All => !any_match(&cfg.exclude, n),
                EnvInherit::Core => any_match(CORE, n) && !any_match(&cfg.exclude, n),
                EnvInherit::None => false,
            };
        if !keep {
            continue;
        }
        let value = if n == b"PATH" {
            absolute_path_entries(value)
        } else {
            value.clone()
        };
        out.push((name.clone(), value));
    }
    let mut set = |name: &str, value: &str| {
        out.retain(|(n, _)| n.as_bytes() != name.as_bytes());
        out.push((name.into(), value.into()));
    };
    for (name, value) in NON_INTERACTIVE {
        if !cfg.set.contains_key(*name) {
            set(name, value);
        }
    }
    for (name, value) in &cfg.set {
        set(name, value);
    }
    for (name, value) in extra {
        set(name, value);
    }
    if !out.iter().any(|(n, _)| n == "PATH") {
        out.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    harden_git(&mut out);
    out
}

/// Adds git's hardening after any command-line configuration already there (later
/// entries win).
fn harden_git(env: &mut Vec<(OsString, OsString)>) {
    let get = |env: &[(OsString, OsString)], name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_string_lossy().into_owned())
    };
    let first = get(env, "GIT_CONFIG_COUNT")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut put = |name: String, value: &str| {
        env.retain(|(n, _)| n.as_bytes() != name.as_bytes());
        env.push((name.into(), value.into()));
    };
    for (i, (key, value)) in GIT_HARDENING.iter().enumerate() {
        put(format!("GIT_CONFIG_KEY_{}", first + i), key);
        put(format!("GIT_CONFIG_VALUE_{}", first + i), value);
    }
    put(
        "GIT_CONFIG_COUNT".to_owned(),
        &(first + GIT_HARDENING.len()).to_string(),
    );
    put("GIT_CONFIG_NOSYSTEM".to_owned(), "1");
}

/// The values of the host variables `exec.env.secrets` names, for masking.
pub(crate) fn secrets(cfg: &ExecEnvConfig, host: &[(OsString, OsString)]) -> Vec<String> {
    host.iter()
        .filter(|(n, v)| is_secret(cfg, n) && !v.is_empty())
        .map(|(_, v)| v.to_string_lossy().into_owned())
        .collect()
}

/// Whether `exec.env.secrets` names the host variable `name`.
pub(crate) fn is_secret(cfg: &ExecEnvConfig, name: &OsStr) -> bool {
    any_match(&cfg.secrets, name.as_bytes())
}

/// Keeps only absolute `PATH` entries: an empty or relative entry would make a file
/// in the working directory win over the real command.
fn absolute_path_entries(value: &OsStr) -> OsString {
    let kept: Vec<&[u8]> = value
        .as_bytes()
        .split(|b| *b == b':')
        .filter(|e| e.starts_with(b"/"))
        .collect();
    OsString::from(std::ffi::OsStr::from_bytes(&kept.join(&b':')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect()
    }

    fn names(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn wildcards() {
        assert!(name_matches("*_API_KEY", b"OPENAI_API_KEY"));
        assert!(name_matches("*token*", b"GITHUB_TOKEN"));
        assert!(name_matches("LC_*", b"LC_ALL"));
        assert!(!name_matches("*_API_KEY", b"API_KEYS_DIR"));
        assert!(name_matches("A*B*C", b"AxxBxxC"));
        assert!(!name_matches("A*B*C", b"AxxBxx"));
    }

    #[test]
    fn secrets_and_loader_variables_are_dropped() {
        let cfg = ExecEnvConfig {
            inherit: EnvInherit::All,
            passthrough: vec!["NPM_TOKEN".into()],
            ..ExecEnvConfig::default()
        };
        let env = build(
            &cfg,
            &host(&[
                ("PATH", ".:/usr/bin::bin:/bin"),
                ("HOME", "/home/u"),
                ("ANTHROPIC_API_KEY", "sk"),
                ("GITHUB_TOKEN", "t"),
                ("NPM_TOKEN", "n"),
                ("AWS_SECRET_ACCESS_KEY", "a"),
                ("LD_PRELOAD", "/evil.so"),
                ("BASH_ENV", "/evil.sh"),
                ("BASH_FUNC_ls%%", "() { evil; }"),
            ]),
            &[("KEEL_EXEC_ID".into(), "x".into())],
        );
        let n = names(&env);
        for gone in [
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "LD_PRELOAD",
            "BASH_ENV",
            "BASH_FUNC_ls%%",
        ] {
            assert!(!n.contains(&gone.to_owned()), "{gone} in {n:?}");
        }
        for kept in ["HOME", "NPM_TOKEN", "KEEL_EXEC_ID", "GIT_EDITOR"] {
            assert!(n.contains(&kept.to_owned()), "{kept} not in {n:?}");
        }
        let path = env.iter().find(|(n, _)| n == "PATH").unwrap();
        assert_eq!(path.1, "/usr/bin:/bin");
    }

    #[test]
    fn by_default_only_named_variables_and_secrets_listed_by_name() {
        let cfg = ExecEnvConfig {
            secrets: vec!["NPM_TOKEN".into()],
            passthrough: vec!["CI".into()],
            ..ExecEnvConfig::default()
        };
        let vars = host(&[
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("LC_ALL", "C"),
            ("TERM", "xterm"),
            ("CI", "1"),
            ("NPM_TOKEN", "npm-secret"),
            ("GITHUB_PAT", "p"),
            ("MYSQL_PWD", "p"),
            ("SENTRY_DSN", "https://k@sentry"),
            ("SLACK_WEBHOOK_URL", "https://hooks"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("STRIPE_KEY", "k"),
            ("EDITOR_FLAGS", "x"),
        ]);
        let n = names(&build(&cfg, &vars, &[]));
        for kept in ["PATH", "HOME", "LC_ALL", "TERM", "CI", "NPM_TOKEN"] {
            assert!(n.contains(&kept.to_owned()), "{kept} not in {n:?}");
        }
        for gone in [
            "GITHUB_PAT",
            "MYSQL_PWD",
            "SENTRY_DSN",
            "SLACK_WEBHOOK_URL",
            "DATABASE_URL",
            "STRIPE_KEY",
            "EDITOR_FLAGS",
        ] {
            assert!(!n.contains(&gone.to_owned()), "{gone} in {n:?}");
        }
        assert_eq!(secrets(&cfg, &vars), vec!["npm-secret".to_owned()]);
    }

    #[test]
    fn git_is_hardened_after_the_persons_own_command_line_config() {
        let mut cfg = ExecEnvConfig::default();
        cfg.set.insert("GIT_CONFIG_COUNT".into(), "1".into());
        cfg.set
            .insert("GIT_CONFIG_KEY_0".into(), "user.name".into());
        cfg.set.insert("GIT_CONFIG_VALUE_0".into(), "me".into());
        let env = build(&cfg, &host(&[("PATH", "/bin")]), &[]);
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("GIT_CONFIG_KEY_0").as_deref(), Some("user.name"));
        assert_eq!(get("GIT_CONFIG_KEY_1").as_deref(), Some("core.hooksPath"));
        assert_eq!(get("GIT_CONFIG_VALUE_1").as_deref(), Some("/dev/null"));
        assert_eq!(
            get("GIT_CONFIG_COUNT"),
            Some((1 + GIT_HARDENING.len()).to_string())
        );
        assert_eq!(get("GIT_CONFIG_NOSYSTEM").as_deref(), Some("1"));
    }

    #[test]
    fn core_and_none() {
        let vars = host(&[("PATH", "/bin"), ("FOO", "1"), ("LC_ALL", "C")]);
        let core = build(
            &ExecEnvConfig {
                inherit: EnvInherit::Core,
                ..ExecEnvConfig::default()
            },
            &vars,
            &[],
        );
        assert!(names(&core).contains(&"LC_ALL".to_owned()));
        assert!(!names(&core).contains(&"FOO".to_owned()));
        let none = build(
            &ExecEnvConfig {
                inherit: EnvInherit::None,
                ..ExecEnvConfig::default()
            },
            &vars,
            &[],
        );
        assert!(!names(&none).contains(&"FOO".to_owned()));
        assert!(names(&none).contains(&"PATH".to_owned()));
    }
}
