//! The sandbox tools' configuration, as a `keel.toml` embeds it.
//!
//! Field names follow the seed (`cwd`, `path_restriction`, `security`, ...); values
//! are kebab-case (`approval-always`). Every field has a default, and the defaults
//! are the seed's local mode: every command and every file change waits for a
//! person, file access is confined to the working directory, no OS isolation.
//!
//! ```toml
//! env = "local"
//! [local]
//! cwd = "./workspace"
//! path_restriction = "./workspace"
//! [exec]
//! security = "allowlist"
//! allowlist = ["node *", "npm install *"]
//! deny = ["curl *"]
//! [isolation]
//! mode = "best-effort"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tool::Recovery;

/// Everything `sandbox_tools` needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Where the tools run. Only `local` exists: the host, confined by the path
    /// resolver, the exec policy and the optional OS isolation below.
    pub env: EnvKind,
    /// The workspace.
    pub local: LocalConfig,
    /// The `exec` tool.
    pub exec: ExecConfig,
    /// Whether `write` and `edit` wait for a person.
    pub file_approval: FileApproval,
    /// Limits of `read`, `write`, `edit`, `glob` and `grep`.
    pub files: FileLimits,
    /// Further paths that `write` and `edit` may never create or change, nor
    /// anything beneath them. A pattern without `/` matches a name at any depth
    /// (`secrets`, `*.pem`); one with `/` is a glob from the workspace root
    /// (`config/prod/**`; `**/x/y` for any depth). Always protected, whatever this
    /// says: `.git`, `.keel` and `keel.toml` at any depth, directories laid out as a
    /// bare git repository, and Keel stores.
    pub protected_paths: Vec<String>,
    /// OS isolation of `exec` commands.
    pub isolation: IsolationConfig,
    /// What to do with a call a crash interrupted.
    pub recovery: RecoveryConfig,
}

/// Where the tools run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvKind {
    /// On the host.
    #[default]
    Local,
}

/// The workspace directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// The working directory: relative paths and commands start here.
    pub cwd: PathBuf,
    /// The directory no file tool may leave. Defaults to `cwd`; set it to `/` to
    /// lift the restriction (not recommended).
    pub path_restriction: Option<PathBuf>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            cwd: PathBuf::from("."),
            path_restriction: None,
        }
    }
}

/// Whether a shell command waits for a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecSecurity {
    /// Every command waits for approval (the default in local mode), except those a
    /// person answered "always" for in this run.
    #[default]
    ApprovalAlways,
    /// Commands whose every simple command matches an allowlist pattern run; the rest
    /// wait for approval.
    Allowlist,
    /// Every command runs without asking (deny rules still apply).
    AllowAlways,
}

impl ExecSecurity {
    /// The kebab-case name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecSecurity::ApprovalAlways => "approval-always",
            ExecSecurity::Allowlist => "allowlist",
            ExecSecurity::AllowAlways => "allow-always",
        }
    }
}

/// The `exec` tool's policy and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// When a command waits for a person.
    pub security: ExecSecurity,
    /// Patterns of allowed commands, matched against each simple command's argv:
    /// `npm install *` allows `npm install` followed by anything; without a trailing
    /// `*` the argv must match exactly; a `*` token elsewhere matches one argument.
    pub allowlist: Vec<String>,
    /// Patterns (same syntax) of commands that never run, whatever the mode or the
    /// allowlist says; checked against every simple command, however nested.
    pub deny: Vec<String>,
    /// The shell that runs a command line (`shell -c command`).
    pub shell: PathBuf,
    /// The timeout when the model gives none, in seconds.
    pub timeout_secs: u64,
    /// The largest timeout the model may ask for, in seconds.
    pub max_timeout_secs: u64,
    /// Output kept per command, in bytes: half from the start, half from the end.
    pub max_output_bytes: usize,
    /// A command whose processes outnumber this is killed (fork bombs).
    pub max_processes: usize,
    /// The environment commands see.
    pub env: ExecEnvConfig,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            security: ExecSecurity::default(),
            allowlist: Vec::new(),
            deny: Vec::new(),
            shell: PathBuf::from("/bin/sh"),
            timeout_secs: 120,
            max_timeout_secs: 600,
            max_output_bytes: 30_000,
            max_processes: 512,
            env: ExecEnvConfig::default(),
        }
    }
}

/// Which of the host's environment variables a command inherits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvInherit {
    /// All variables except those matching `exclude` (an explicit choice: a secret
    /// under a name no pattern catches reaches every command).
    All,
    /// Only `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LC_*`, `TERM`, `TZ`
    /// and `TMPDIR` (the default), plus `passthrough` and `secrets`.
    #[default]
    Core,
    /// None (only `passthrough` and `set`).
    None,
}

/// The environment commands see.
///
/// ```toml
/// [exec.env]
/// passthrough = ["CI", "NODE_ENV"]   # host variables commands also get
/// secrets = ["NPM_TOKEN"]            # host secrets commands get (masked in output)
/// set = { RUST_LOG = "info" }
/// # inherit = "all"                  # everything but `exclude` (not recommended)
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecEnvConfig {
    /// Which host variables to start from: `core` (a small named set, the
    /// default), `all` (everything but `exclude`) or `none`.
    pub inherit: EnvInherit,
    /// Name patterns (`*` wildcards, case-insensitive) never inherited: secrets.
    pub exclude: Vec<String>,
    /// Names (or patterns) inherited whatever `inherit` and `exclude` say, e.g. `CI`.
    pub passthrough: Vec<String>,
    /// Names (or patterns) of host variables that are secrets commands need (e.g.
    /// `NPM_TOKEN`): passed to commands like `passthrough`, and their values are
    /// masked wherever Keel shows or records a command's output.
    pub secrets: Vec<String>,
    /// Variables set for every command.
    pub set: BTreeMap<String, String>,
}

impl Default for ExecEnvConfig {
    fn default() -> Self {
        Self {
            inherit: EnvInherit::Core,
            exclude: [
                "*_API_KEY",
                "*APIKEY*",
                "*TOKEN*",
                "*SECRET*",
                "*PASSWORD*",
                "*PASSWD*",
                "*CREDENTIAL*",
                "*_KEY",
                "*PRIVATE*",
                "*SESSION*",
                "*COOKIE*",
                "AWS_*",
                "AZURE_*",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "SSH_AUTH_SOCK",
                "GPG_AGENT_INFO",
                "DATABASE_URL",
            ]
            .map(String::from)
            .to_vec(),
            passthrough: Vec::new(),
            secrets: Vec::new(),
            set: BTreeMap::new(),
        }
    }
}

/// Whether `write` and `edit` wait for a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileApproval {
    /// Every write and edit waits for approval (the default in local mode).
    #[default]
    Always,
    /// Writes and edits inside the workspace run without asking.
    Never,
}

/// Limits of the file tools. Every one bounds time or memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLimits {
    /// Lines `read` returns when the model gives no limit.
    pub read_default_lines: usize,
    /// Characters kept of one line in `read` and `grep` output.
    pub max_line_chars: usize,
    /// Bytes of text one `read` returns at most.
    pub read_max_output_bytes: usize,
    /// The largest file `edit` changes and `write` writes, in bytes.
    pub max_file_bytes: u64,
    /// Results `glob` and `grep` return when the model gives no limit.
    pub search_default_limit: usize,
    /// The largest limit the model may ask of `glob` and `grep`.
    pub search_max_limit: usize,
    /// Bytes of text one `glob` or `grep` returns at most.
    pub search_max_output_bytes: usize,
    /// Directory entries one search visits at most before it stops (huge trees).
    pub max_walk_entries: u64,
    /// Seconds one search runs at most before it stops.
    pub search_timeout_secs: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            read_default_lines: 2000,
            max_line_chars: 2000,
            read_max_output_bytes: 256 * 1024,
            max_file_bytes: 16 * 1024 * 1024,
            search_default_limit: 100,
            search_max_limit: 5000,
            search_max_output_bytes: 128 * 1024,
            max_walk_entries: 2_000_000,
            search_timeout_secs: 60,
        }
    }
}

/// Whether to confine `exec` commands with the kernel's help.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// No OS isolation (the path resolver and the exec policy still apply).
    #[default]
    Off,
    /// Apply what this kernel supports; say in the output what it could not.
    BestEffort,
    /// Refuse to run a command unless every requested restriction is in force.
    Required,
}

/// OS isolation of `exec` commands (Linux: Landlock, namespaces).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationConfig {
    /// Whether to isolate.
    pub mode: IsolationMode,
    /// Confine writes to the workspace, a private temporary directory (`TMPDIR`) and
    /// `writable`.
    pub restrict_writes: bool,
    /// Cut the network off.
    pub block_network: bool,
    /// Further directories commands may write to (e.g. a package cache).
    pub writable: Vec<PathBuf>,
    /// Use new network and PID namespaces where the privileges allow (root or
    /// `CAP_SYS_ADMIN`): no network at all, and no process outlives its command.
    /// Without them, the network is cut with Landlock (TCP; UDP from Landlock ABI 10).
    pub namespaces: bool,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        Self {
            mode: IsolationMode::Off,
            restrict_writes: true,
            block_network: true,
            writable: Vec::new(),
            namespaces: true,
        }
    }
}

/// What to do with a mutating call that a crash interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// For `exec`.
    pub exec: RecoveryPolicy,
    /// For `write`.
    pub write: RecoveryPolicy,
    /// For `edit`.
    pub edit: RecoveryPolicy,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            exec: RecoveryPolicy::ReportInterrupted,
            write: RecoveryPolicy::ReportInterrupted,
            edit: RecoveryPolicy::ReportInterrupted,
        }
    }
}

/// [`Recovery`] in configuration spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPolicy {
    /// Run it again.
    Rerun,
    /// Ask the person again.
    AskAgain,
    /// Tell the model it was interrupted.
    ReportInterrupted,
}

impl From<RecoveryPolicy> for Recovery {
    fn from(p: RecoveryPolicy) -> Self {
        match p {
            RecoveryPolicy::Rerun => Recovery::Rerun,
            RecoveryPolicy::AskAgain => Recovery::AskAgain,
            RecoveryPolicy::ReportInterrupted => Recovery::ReportInterrupted,
        }
    }
}

/// The names protected at any depth whatever `protected_paths` says: git's
/// metadata (hooks, config with its command settings), Keel's store and its
/// configuration.
pub const DEFAULT_PROTECTED: &[&str] = crate::sandbox::BUILTIN_PROTECTED;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_local_mode() {
        let c = SandboxConfig::default();
        assert_eq!(c.env, EnvKind::Local);
        assert_eq!(c.exec.security, ExecSecurity::ApprovalAlways);
        assert_eq!(c.file_approval, FileApproval::Always);
        assert_eq!(c.isolation.mode, IsolationMode::Off);
        assert_eq!(c.files.read_default_lines, 2000);
    }

    #[test]
    fn round_trips_through_json_with_kebab_case_values() {
        let mut c = SandboxConfig::default();
        c.exec.security = ExecSecurity::Allowlist;
        c.exec.allowlist = vec!["node *".into()];
        c.recovery.exec = RecoveryPolicy::AskAgain;
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"allowlist\""), "{text}");
        assert!(text.contains("\"ask-again\""), "{text}");
        let back: SandboxConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn partial_documents_take_defaults_and_unknown_fields_are_errors() {
        let c: SandboxConfig = serde_json::from_str(
            r#"{"local": {"cwd": "/w"}, "exec": {"security": "allow-always"}}"#,
        )
        .unwrap();
        assert_eq!(c.local.cwd, PathBuf::from("/w"));
        assert_eq!(c.exec.security, ExecSecurity::AllowAlways);
        assert_eq!(c.exec.timeout_secs, 120);
        let err = serde_json::from_str::<SandboxConfig>(r#"{"exec": {"securty": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `securty`"), "{err}");
        let err = serde_json::from_str::<SandboxConfig>(r#"{"env": "docker"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `docker`"), "{err}");
    }
}
