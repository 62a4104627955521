//! `exec`: runs a shell command in the workspace.
//!
//! Whether it may run is the [`policy`]'s call (with `analyze` reading the
//! command line); how it runs is `process` (timeout, killing every process,
//! bounded `output`), started by `launch` (PID namespace or subreaper supervisor)
//! in the confinement [`isolation`] plans, with a scrubbed `env`.

pub(crate) mod always;
pub(crate) mod analyze;
pub(crate) mod env;
pub mod guarantees;
pub mod isolation;
pub(crate) mod launch;
pub(crate) mod options;
pub(crate) mod output;
pub mod policy;
pub(crate) mod process;
pub(crate) mod procs;
pub(crate) mod programs;
pub(crate) mod repo;
pub(crate) mod trampoline;
pub(crate) mod words;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::Sandbox;
use crate::approval::{AllowRule, ApprovalForm, FormContext, approval_digest};
use crate::tool::{Approval, CallContext, Recovery, Tool, ToolOutput, ToolSpec};
use policy::CommandCheck;
use process::Ending;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The `exec` tool.
#[derive(Debug, Clone)]
pub struct ExecTool {
    sandbox: Arc<Sandbox>,
}

impl ExecTool {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }

    /// The directory a call runs in, resolved beneath the workspace, as a handle and
    /// as the absolute path shown to people.
    fn cwd(&self, cwd: Option<&str>) -> Result<(std::os::fd::OwnedFd, String), String> {
        let (fd, rel) = self
            .sandbox
            .ws
            .open_dir(cwd.unwrap_or("."))
            .map_err(|e| format!("cwd: {e}"))?;
        let shown = self
            .sandbox
            .ws
            .absolute(&rel)
            .to_string_lossy()
            .into_owned();
        Ok((fd, shown))
    }
}

/// Arguments of `exec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// The command line.
    pub command: String,
    /// The directory to run it in; the working directory by default.
    pub cwd: Option<String>,
    /// Seconds before it is killed.
    pub timeout: Option<u64>,
}

fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!(
        "{}-{n}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    blake3::hash(seed.as_bytes()).to_hex()[..32].to_owned()
}

impl Tool for ExecTool {
    type Args = ExecArgs;

    fn spec(&self) -> ToolSpec {
        let exec = &self.sandbox.config.exec;
        ToolSpec {
            name: "exec".into(),
            description: format!(
                "Run a shell command (`{} -c`) in the workspace and return its combined \
                 stdout and stderr, exit code and duration. Standard input is empty and there \
                 is no terminal. The timeout is {} s unless `timeout` says otherwise (at most \
                 {} s). Output over {} bytes keeps its start and end. Commands may need a \
                 person's approval: inline code, options that run commands or write outside the \
                 workspace, and options of programs the policy does not know are shown to a \
                 person first.\n{}",
                exec.shell.display(),
                exec.timeout_secs,
                exec.max_timeout_secs,
                exec.max_output_bytes,
                guarantees::for_model(&self.sandbox.config.isolation)
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "minLength": 1, "description": "The command line."},
                    "cwd": {"type": "string", "description": "The directory to run in, inside the workspace. Default: the working directory."},
                    "timeout": {"type": "integer", "minimum": 1, "maximum": exec.max_timeout_secs, "description": "Seconds before the command is killed."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        }
    }

    fn recovery(&self) -> Recovery {
        self.sandbox.config.recovery.exec.into()
    }

    fn approval(&self, args: &ExecArgs, raw: &serde_json::Value, rules: &[AllowRule]) -> Approval {
        let (_, cwd) = match self.cwd(args.cwd.as_deref()) {
            Ok(c) => c,
            Err(message) => return Approval::Refused(message),
        };
        let check = match self.sandbox.policy.check(&args.command, &cwd, rules) {
            CommandCheck::Allowed { because } => {
                repo::gate(&self.sandbox, &args.command, &cwd, because)
            }
            other => other,
        };
        match check {
            CommandCheck::Allowed { .. } => Approval::NotNeeded,
            CommandCheck::Denied { reason } => Approval::Refused(format!("refused: {reason}")),
            CommandCheck::NeedsApproval {
                reason,
                matched_rule,
            } => Approval::Needed(Box::new(ApprovalForm {
                title: "COMMAND APPROVAL REQUIRED".into(),
                tool: "exec".into(),
                digest: approval_digest("exec", raw, &cwd),
                context: FormContext::Command {
                    command: args.command.clone(),
                    cwd,
                    reason,
                    matched_rule,
                },
                fields: Vec::new(),
            })),
        }
    }

    fn always_rules(&self, args: &ExecArgs) -> Vec<(AllowRule, String)> {
        let cwd = match self.cwd(args.cwd.as_deref()) {
            Ok((_, cwd)) => cwd,
            Err(_) => args.cwd.clone().unwrap_or_default(),
        };
        always::always_choices(&args.command, &cwd)
    }

    async fn call(&self, args: ExecArgs, ctx: CallContext) -> ToolOutput {
        match self.run(args, ctx).await {
            Ok(out) => out,
            Err(message) => ToolOutput::error(message),
        }
    }
}

impl ExecTool {
    async fn run(&self, args: ExecArgs, ctx: CallContext) -> Result<ToolOutput, String> {
        let sandbox = &self.sandbox;
        let cfg = &sandbox.config;
        let (cwd_fd, cwd) = self.cwd(args.cwd.as_deref())?;
        // Deny rules hold whatever happened before this call (defence in depth: the
        // engine asked `approval` first).
        if let CommandCheck::Denied { reason } = sandbox.policy.check(&args.command, &cwd, &[]) {
            return Err(format!("refused: {reason}"));
        }
        let timeout_secs = args.timeout.unwrap_or(cfg.exec.timeout_secs);
        if timeout_secs == 0 || timeout_secs > cfg.exec.max_timeout_secs {
            return Err(format!(
                "`timeout` must be between 1 and {} seconds",
                cfg.exec.max_timeout_secs
            ));
        }
        let id = unique_id();
        let tmp = PrivateTmp::create(cfg, &id)?;
        let plan = isolation::plan(
            &cfg.isolation,
            sandbox.ws.root_path(),
            tmp.path.as_deref(),
            &sandbox.host_env,
        )?;
        let mut extra = vec![("PWD".to_owned(), cwd.clone())];
        if let Some(t) = &tmp.path {
            let t = t.to_string_lossy().into_owned();
            for name in ["TMPDIR", "TMP", "TEMP"] {
                extra.push((name.to_owned(), t.clone()));
            }
        }
        let env = env::build(&cfg.exec.env, &sandbox.host_env, &extra);
        let notes: Vec<String> = if cfg.isolation.mode == crate::config::IsolationMode::Off {
            Vec::new()
        } else {
            plan.report.missing.clone()
        };
        let spec = process::Spec {
            shell: cfg.exec.shell.clone(),
            command: args.command.clone(),
            cwd: cwd_fd,
            cwd_path: cwd.clone(),
            env,
            timeout: Duration::from_secs(timeout_secs),
            max_output: cfg.exec.max_output_bytes,
            max_processes: cfg.exec.max_processes,
            plan,
        };
        let finished = process::run(spec, ctx.cancel.clone()).await?;
        drop(tmp);

        let mut text = finished.output.render();
        if text.trim().is_empty() {
            text = "(no output)".to_owned();
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let secs = finished.duration.as_secs_f64();
        let status = match &finished.status {
            Ok(status) => process::describe(status),
            Err(why) => format!("exit status unknown: {why}"),
        };
        let (summary, failed) = match finished.ending {
            Ending::Exited => (
                format!("[{status} · {secs:.2} s]"),
                !finished.status.as_ref().is_ok_and(|s| s.success()),
            ),
            Ending::TimedOut => (
                format!(
                    "[timed out after {timeout_secs} s: the command and all its processes were killed · {secs:.2} s]"
                ),
                true,
            ),
            Ending::Cancelled => (
                "[cancelled: the run was cancelled; the command and all its processes were killed]"
                    .into(),
                true,
            ),
            Ending::ProcessLimit => (
                format!(
                    "[killed: the command started more than {} processes (a fork bomb?); all of them were killed]",
                    cfg.exec.max_processes
                ),
                true,
            ),
        };
        text.push_str(&summary);
        if finished.ending == Ending::Exited && finished.leftovers == Some(true) {
            text.push_str(
                "\n[processes still running when the command ended were killed; commands cannot leave processes behind]",
            );
        }
        for note in notes {
            text.push_str(&format!("\n[isolation not applied: {note}]"));
        }
        Ok(if failed {
            ToolOutput::error(text)
        } else {
            ToolOutput::ok(text)
        })
    }
}

/// A private temporary directory for one command (only with isolation confining
/// writes), removed when dropped.
struct PrivateTmp {
    path: Option<std::path::PathBuf>,
}

impl PrivateTmp {
    fn create(cfg: &crate::config::SandboxConfig, id: &str) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        if cfg.isolation.mode == crate::config::IsolationMode::Off || !cfg.isolation.restrict_writes
        {
            return Ok(Self { path: None });
        }
        let path = std::env::temp_dir().join(format!("keel-exec-{id}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                format!(
                    "cannot create a temporary directory `{}`: {e}",
                    path.display()
                )
            })?;
        Ok(Self { path: Some(path) })
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            // remove_dir_all does not follow symlinks the command may have left.
            let _ = std::fs::remove_dir_all(p);
        }
    }
}
