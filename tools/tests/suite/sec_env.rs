//! SECURITY.md item 54: commands get a small named environment. Secrets under any
//! name stay out unless a person lists them (`exec.env.secrets`, `passthrough`), and
//! inheriting everything is an explicit `inherit = "all"`.

use std::ffi::OsString;

use keel_tools::{EnvInherit, ExecSecurity, SandboxTools};

use super::common::*;

/// Secrets under names no pattern catches, and a plain setting.
fn host() -> Vec<(OsString, OsString)> {
    let mut env = host_env();
    for (name, value) in [
        ("GITHUB_PAT", "leak-github-pat"),
        ("MYSQL_PWD", "leak-mysql"),
        ("SENTRY_DSN", "https://leak-sentry@o1.ingest.sentry.io/1"),
        ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/leak"),
        ("DATABASE_URL", "postgres://u:leak-db@h/db"),
        ("STRIPE_KEY", "leak-stripe"),
        ("PGPASSWORD", "leak-pg"),
        ("KUBECONFIG", "/leak/kubeconfig"),
        ("SSH_AUTH_SOCK", "/leak/agent.sock"),
        ("NPM_TOKEN", "npm-needed"),
        ("CI", "true"),
        ("PLAIN_SETTING", "plain"),
        ("LC_ALL", "C.UTF-8"),
        ("TZ", "UTC"),
        ("TERM", "xterm"),
    ] {
        env.push((name.into(), value.into()));
    }
    env
}

#[tokio::test]
async fn sec_54_secrets_under_other_names_never_reach_commands() {
    let ws = Ws::with_env(|c| c.exec.security = ExecSecurity::AllowAlways, host());
    for cmd in ["env", "cat /proc/self/environ | tr '\\0' '\\n'", "set"] {
        let out = ok(ws.sh(cmd).await);
        assert!(!out.contains("leak"), "{cmd}: {out}");
        for absent in ["NPM_TOKEN=", "CI=", "PLAIN_SETTING="] {
            assert!(!out.contains(absent), "{cmd}: {absent} in {out}");
        }
        for present in ["PATH=", "HOME=", "LANG=", "LC_ALL=", "TZ=", "TERM="] {
            assert!(out.contains(present), "{cmd}: {present} not in {out}");
        }
    }
}

#[tokio::test]
async fn sec_54_listed_secrets_and_passthrough_are_passed_and_secrets_masked() {
    let config = |c: &mut keel_tools::SandboxConfig| {
        c.exec.security = ExecSecurity::AllowAlways;
        c.exec.env.secrets = vec!["NPM_TOKEN".into()];
        c.exec.env.passthrough = vec!["CI".into()];
    };
    let ws = Ws::with_env(config, host());
    let out = ok(ws.sh("env").await);
    // The command has the value, and what it prints of it is masked.
    assert!(out.contains("NPM_TOKEN=[masked: NPM_TOKEN]"), "{out}");
    assert!(!out.contains("npm-needed"), "{out}");
    let has = ok(ws
        .sh("test \"$NPM_TOKEN\" = npm-needed && echo has-the-token")
        .await);
    assert!(has.contains("has-the-token"), "{has}");
    assert!(out.contains("CI=true"), "{out}");
    assert!(
        !out.contains("leak") && !out.contains("PLAIN_SETTING"),
        "{out}"
    );
    // The values the masker hides.
    let mut c = keel_tools::SandboxConfig::default();
    c.local.cwd = ws.root.clone();
    config(&mut c);
    let tools = SandboxTools::with_host_env(c, host()).unwrap();
    assert_eq!(tools.exec_secret_values(), vec!["npm-needed".to_owned()]);
}

#[tokio::test]
async fn sec_54_inheriting_everything_is_explicit_and_still_excludes_known_patterns() {
    let ws = Ws::with_env(
        |c| {
            c.exec.security = ExecSecurity::AllowAlways;
            c.exec.env.inherit = EnvInherit::All;
        },
        host(),
    );
    let out = ok(ws.sh("env").await);
    assert!(out.contains("PLAIN_SETTING=plain"), "{out}");
    // `exclude` still drops what its patterns name…
    for gone in ["DATABASE_URL", "STRIPE_KEY", "SSH_AUTH_SOCK"] {
        assert!(!out.contains(&format!("{gone}=")), "{gone}: {out}");
    }
    // …and this is why it is not the default: names no pattern catches get through.
    assert!(out.contains("GITHUB_PAT=leak-github-pat"), "{out}");
    // An invalid name in the configuration is an error naming it.
    let mut c = keel_tools::SandboxConfig::default();
    c.local.cwd = ws.root.clone();
    c.exec.env.secrets = vec!["BAD=NAME".into()];
    let e = SandboxTools::with_host_env(c, host())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`BAD=NAME`"), "{e}");
}
