//! Helpers: a real workspace in a temporary directory and calls through the
//! object-safe tool interface, as the engine makes them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use keel_tools::{
    AllowRule, Approval, ApprovalForm, CallContext, ExecSecurity, SandboxConfig, SandboxTools,
    ToolOutput, ToolRegistry,
};
use serde_json::Value;

/// Tests hold this lock shared while they run; the fork-bomb test holds it
/// exclusively, so a bomb's few milliseconds of filling the process table cannot
/// make another test fail to start a thread or a process. It is a file lock, so it
/// also works when each test runs in its own process (cargo nextest).
pub struct ProcessSlot(#[allow(dead_code)] std::fs::File);

pub fn process_slot(exclusive: bool) -> ProcessSlot {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(std::env::temp_dir().join("keel-tools-tests.lock"))
        .unwrap();
    let mode = if exclusive {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::LockShared
    };
    rustix::fs::flock(&file, mode).unwrap();
    ProcessSlot(file)
}

pub struct Ws {
    /// Holds the temporary directories alive.
    _base: tempfile::TempDir,
    _slot: ProcessSlot,
    /// The workspace directory (canonical).
    pub root: PathBuf,
    /// A directory beside the workspace, outside it.
    pub outside: PathBuf,
    #[allow(dead_code)]
    pub tools: SandboxTools,
    pub reg: ToolRegistry,
}

/// A host environment for commands with secrets in it (never this process's own).
pub fn host_env() -> Vec<(OsString, OsString)> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    vec![
        ("PATH".into(), path),
        (
            "HOME".into(),
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        ),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

impl Ws {
    /// The seed's defaults: approval for every command and file change.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Commands run without approval (for tests of how they run).
    pub fn exec() -> Self {
        Self::with(|c| c.exec.security = ExecSecurity::AllowAlways)
    }

    pub fn with(f: impl FnOnce(&mut SandboxConfig)) -> Self {
        Self::with_env(f, host_env())
    }

    pub fn with_env(f: impl FnOnce(&mut SandboxConfig), env: Vec<(OsString, OsString)>) -> Self {
        Self::build(f, env, false)
    }

    /// The only workspace alive while it lives (for the fork-bomb test).
    pub fn exclusive(f: impl FnOnce(&mut SandboxConfig)) -> Self {
        Self::build(f, host_env(), true)
    }

    fn build(
        f: impl FnOnce(&mut SandboxConfig),
        env: Vec<(OsString, OsString)>,
        exclusive: bool,
    ) -> Self {
        let slot = process_slot(exclusive);
        let base = tempfile::tempdir().unwrap();
        let base_path = std::fs::canonicalize(base.path()).unwrap();
        let root = base_path.join("ws");
        let outside = base_path.join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let mut config = SandboxConfig::default();
        config.local.cwd = root.clone();
        f(&mut config);
        let tools = SandboxTools::with_host_env(config, env).unwrap();
        let reg = tools.registry();
        Self {
            _base: base,
            _slot: slot,
            root,
            outside,
            tools,
            reg,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn put(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub async fn call(&self, tool: &str, args: Value) -> ToolOutput {
        self.call_in("run-1", tool, args).await
    }

    pub async fn call_in(&self, run: &str, tool: &str, args: Value) -> ToolOutput {
        let ctx = CallContext {
            run: run.into(),
            call_id: "call".into(),
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        self.reg.get(tool).unwrap().call_json(args, ctx).await
    }

    pub fn approval(&self, tool: &str, args: Value) -> Approval {
        self.approval_with(tool, args, &[])
    }

    pub fn approval_with(&self, tool: &str, args: Value, rules: &[AllowRule]) -> Approval {
        self.reg
            .get(tool)
            .unwrap()
            .approval_json(&args, rules)
            .unwrap()
    }

    /// Runs a command (the workspace must allow commands without approval).
    pub async fn sh(&self, command: &str) -> ToolOutput {
        self.call("exec", serde_json::json!({ "command": command }))
            .await
    }
}

#[track_caller]
pub fn ok(out: ToolOutput) -> String {
    assert!(
        !out.is_error,
        "expected success, got error: {}",
        out.content
    );
    out.content
}

#[track_caller]
pub fn err(out: ToolOutput) -> String {
    assert!(out.is_error, "expected an error, got: {}", out.content);
    out.content
}

#[track_caller]
pub fn needed(a: Approval) -> ApprovalForm {
    match a {
        Approval::Needed(form) => *form,
        other => panic!("expected approval to be needed, got {other:?}"),
    }
}

#[track_caller]
pub fn refused(a: Approval) -> String {
    match a {
        Approval::Refused(reason) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether a process is gone (or only a zombie waiting to be reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            matches!(state, Some("Z") | Some("X"))
        }
    }
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
