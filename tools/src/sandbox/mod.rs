//! The six sandbox tools (`exec`, `read`, `write`, `edit`, `glob`, `grep`), scoped to
//! one workspace.
//!
//! All six share one `Sandbox`: the workspace handle every path goes through
//! (`workspace`), the per-run read tracker `edit` consults (`tracker`), the
//! compiled exec policy and the environment commands inherit.

pub mod edit;
pub mod exec;
pub mod glob;
pub mod grep;
pub mod peer;
pub mod read;
pub(crate) mod tracker;
pub(crate) mod walk;
pub(crate) mod workspace;
pub mod write;

use std::ffi::OsString;
use std::sync::Arc;

use crate::approval::{AllowRule, ApprovalForm, FormContext, approval_digest};
use crate::config::{FileApproval, SandboxConfig};
use crate::error::Result;
use crate::registry::ToolRegistry;
use crate::tool::Approval;

pub use edit::EditTool;
pub use exec::ExecTool;
pub use exec::always::always_choices as exec_always_choices;
pub use exec::guarantees;
pub use exec::isolation::{
    IsolationReport, IsolationSupport, hide_from_commands, isolation_support,
};
pub use exec::policy::{CommandCheck, ExecPolicy};
pub use glob::GlobTool;
pub use grep::GrepTool;
pub use read::ReadTool;
pub use workspace::{BUILTIN_PROTECTED, PathResolver, ResolvedWrite};
pub use write::WriteTool;

use tracker::ReadTracker;
use workspace::Workspace;

/// State the six tools share.
pub(crate) struct Sandbox {
    pub ws: Workspace,
    pub config: SandboxConfig,
    pub tracker: ReadTracker,
    pub policy: ExecPolicy,
    pub host_env: Vec<(OsString, OsString)>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host environment holds secrets: never print its values.
        f.debug_struct("Sandbox")
            .field("root", &self.ws.root_path())
            .field("config", &self.config)
            .field("policy", &self.policy)
            .field(
                "host_env",
                &format_args!("{} variables", self.host_env.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Records `path` as the agent has seen it, as it is now on disk: restoring a
    /// read or an edit from a run's log (see `tracker`). A file that cannot be read
    /// any more is left unrecorded (its next edit asks for a read).
    fn remember_as_is(&self, run: &str, path: &str) {
        use std::io::Read;
        let Ok(opened) = self.ws.open_read(path) else {
            return;
        };
        let max = self.config.files.max_file_bytes;
        let mut content = Vec::new();
        let mut file = opened.file;
        if opened.meta.len() <= max && (&mut file).take(max + 1).read_to_end(&mut content).is_ok() {
            self.tracker.record(
                run,
                &opened.rel,
                tracker::Fingerprint::new(&opened.meta, Some(&content)),
            );
        } else {
            self.tracker.record(
                run,
                &opened.rel,
                tracker::Fingerprint::new(&opened.meta, None),
            );
        }
    }

    /// The approval decision for a file change, once the change itself was checked.
    fn file_approval(
        &self,
        tool: &str,
        raw: &serde_json::Value,
        rules: &[AllowRule],
        title: &str,
        context: FormContext,
    ) -> Approval {
        let allowed = self.config.file_approval == FileApproval::Never
            || rules
                .iter()
                .any(|r| matches!(r, AllowRule::Tool { tool: t } if t == tool));
        if allowed {
            return Approval::NotNeeded;
        }
        let cwd = self.ws.cwd_path().to_string_lossy().into_owned();
        Approval::Needed(Box::new(ApprovalForm {
            title: title.to_owned(),
            tool: tool.to_owned(),
            context,
            fields: Vec::new(),
            digest: approval_digest(tool, raw, &cwd),
        }))
    }
}

/// The six sandbox tools, built from one configuration.
///
/// ```no_run
/// use keel_tools::{SandboxConfig, SandboxTools};
///
/// let mut config = SandboxConfig::default();
/// config.local.cwd = "./workspace".into();
/// let tools = SandboxTools::new(config)?.registry();
/// assert_eq!(tools.names(), ["exec", "read", "write", "edit", "glob", "grep"]);
/// # Ok::<(), keel_tools::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SandboxTools {
    sandbox: Arc<Sandbox>,
}

impl SandboxTools {
    /// Opens the workspace and compiles the policy. Commands inherit this process's
    /// environment (minus what the configuration excludes).
    pub fn new(config: SandboxConfig) -> Result<Self> {
        Self::with_host_env(config, std::env::vars_os())
    }

    /// Like [`SandboxTools::new`], with the environment commands start from given
    /// explicitly instead of read from this process.
    pub fn with_host_env(
        config: SandboxConfig,
        host_env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self> {
        let ws = Workspace::open(
            &config.local.cwd,
            config.local.path_restriction.as_deref(),
            &config.protected_paths,
        )?;
        let policy = ExecPolicy::new(
            config.exec.security,
            &config.exec.allowlist,
            &config.exec.deny,
        )?
        .within(ws.root_path(), ws.protected().clone());
        if config.exec.timeout_secs == 0 || config.exec.max_timeout_secs < config.exec.timeout_secs
        {
            return Err(crate::Error::InvalidConfig(format!(
                "exec timeouts: timeout_secs ({}) must be at least 1 and at most max_timeout_secs ({})",
                config.exec.timeout_secs, config.exec.max_timeout_secs
            )));
        }
        exec::env::validate(&config.exec.env)?;
        let host_env: Vec<(OsString, OsString)> = host_env.into_iter().collect();
        // Secrets commands are given are masked wherever output is shown or recorded.
        for (name, value) in &host_env {
            if exec::env::is_secret(&config.exec.env, name)
                && let (Some(name), Some(value)) = (name.to_str(), value.to_str())
            {
                crate::secrets::global().add(name, value);
            }
        }
        Ok(Self {
            sandbox: Arc::new(Sandbox {
                ws,
                config,
                tracker: ReadTracker::default(),
                policy,
                host_env,
            }),
        })
    }

    /// The values of the host variables `exec.env.secrets` names: commands get them,
    /// and they must be masked wherever output is shown or recorded.
    pub fn exec_secret_values(&self) -> Vec<String> {
        exec::env::secrets(&self.sandbox.config.exec.env, &self.sandbox.host_env)
    }

    /// The workspace root, canonicalised.
    pub fn root(&self) -> &std::path::Path {
        self.sandbox.ws.root_path()
    }

    /// The `exec` tool.
    pub fn exec(&self) -> ExecTool {
        ExecTool::new(self.sandbox.clone())
    }
    /// The `read` tool.
    pub fn read(&self) -> ReadTool {
        ReadTool::new(self.sandbox.clone())
    }
    /// The `write` tool.
    pub fn write(&self) -> WriteTool {
        WriteTool::new(self.sandbox.clone())
    }
    /// The `edit` tool.
    pub fn edit(&self) -> EditTool {
        EditTool::new(self.sandbox.clone())
    }
    /// The `glob` tool.
    pub fn glob(&self) -> GlobTool {
        GlobTool::new(self.sandbox.clone())
    }
    /// The `grep` tool.
    pub fn grep(&self) -> GrepTool {
        GrepTool::new(self.sandbox.clone())
    }

    /// All six, in the order of the Polos local-coding-agent guide: exec, read, write, edit, glob, grep.
    pub fn registry(&self) -> ToolRegistry {
        let mut r = ToolRegistry::new();
        r.register(self.exec())
            .register(self.read())
            .register(self.write())
            .register(self.edit())
            .register(self.glob())
            .register(self.grep());
        r
    }
}

/// The six sandbox tools for `config`, ready for an agent.
pub fn sandbox_tools(config: SandboxConfig) -> Result<ToolRegistry> {
    Ok(SandboxTools::new(config)?.registry())
}

/// Runs blocking file work off the async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the tool's worker failed: {e}"))
}
