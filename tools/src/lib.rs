//! Keel's tools.
//!
//! A [`Tool`] has a name, a JSON schema for its arguments, whether it mutates
//! anything ([`Tool::is_mutating`], true unless said otherwise), what to do with a
//! call a crash interrupted ([`Recovery`]), and whether a given call needs a person's
//! approval ([`Approval`], with the [`ApprovalForm`] to show them). A
//! [`ToolRegistry`] holds an agent's tools by name. The object-safe layer
//! ([`DynTool`]) checks a call's JSON against the tool's schema ([`schema`]) before
//! parsing it, so the model hears which field is wrong.
//!
//! [`sandbox_tools`] builds the six built-in tools of a coding agent (`exec`,
//! `read`, `write`, `edit`, `glob`, `grep`) from a [`SandboxConfig`], scoped to a
//! workspace:
//! - every path goes through one resolver beneath the workspace's directory handle
//!   (`openat2` with `RESOLVE_BENEATH`), so `..`, absolute paths, symlinks and
//!   check-then-open races cannot leave it; `.git`, `.keel` and `keel.toml` at any
//!   depth, bare-repository layouts and Keel stores cannot be written;
//! - `exec` commands are parsed with a shell grammar and checked against the policy
//!   (`approval-always` by default; allowlists match each simple command's argv,
//!   and cover only the words they name plus words the program's own option model
//!   finds harmless; redirections, substitutions and inline code need a person;
//!   deny rules apply however deeply nested, through runners too; "always" stores
//!   the exact command unless the person picks a prefix), run under a supervisor —
//!   pid 1 of a PID and mount namespace of their own where the system allows, else a
//!   child subreaper — with an empty stdin and a small named environment (git
//!   hardened), and every process they started is killed at the timeout or when
//!   they end;
//! - optional OS isolation (Landlock, namespaces) confines their writes, cuts the
//!   network and hides sockets that act for the person
//!   ([`sandbox::guarantees`] says what holds on a given system).
//!
//! Around them: [`harden_process`] keeps provider keys out of reach of commands,
//! [`secrets`] masks every secret value in whatever any tool returns,
//! [`sandbox::peer`] tells a control server whether a peer is a command's process,
//! and [`terminal::visible`] makes text safe to print.
//!
//! ```no_run
//! let mut config = keel_tools::SandboxConfig::default();
//! config.local.cwd = "./workspace".into();
//! config.exec.security = keel_tools::ExecSecurity::Allowlist;
//! config.exec.allowlist = vec!["node *".into(), "npm install *".into()];
//! let tools = keel_tools::sandbox_tools(config)?;
//! assert_eq!(tools.names(), ["exec", "read", "write", "edit", "glob", "grep"]);
//! # Ok::<(), keel_tools::Error>(())
//! ```
//!
//! A tool of your own:
//!
//! ```no_run
//! use keel_tools::{CallContext, Tool, ToolOutput, ToolRegistry, ToolSpec};
//!
//! struct Weather;
//!
//! #[derive(serde::Deserialize)]
//! struct Args { city: String }
//!
//! impl Tool for Weather {
//!     type Args = Args;
//!     fn spec(&self) -> ToolSpec {
//!         ToolSpec {
//!             name: "get_weather".into(),
//!             description: "Current weather in a city".into(),
//!             input_schema: serde_json::json!({
//!                 "type": "object",
//!                 "properties": {"city": {"type": "string"}},
//!                 "required": ["city"]
//!             }),
//!         }
//!     }
//!     fn is_mutating(&self) -> bool { false }
//!     async fn call(&self, args: Args, _ctx: CallContext) -> ToolOutput {
//!         ToolOutput::ok(format!("15 degrees in {}", args.city))
//!     }
//! }
//!
//! let mut tools = ToolRegistry::new();
//! tools.register(Weather);
//! ```

mod approval;
pub mod config;
mod error;
mod harden;
mod registry;
pub mod sandbox;
pub mod schema;
pub mod secrets;
pub mod terminal;
mod tool;

pub use approval::{AllowRule, ApprovalForm, Field, FieldKind, FormContext, approval_digest};
pub use config::{
    EnvInherit, EnvKind, ExecConfig, ExecEnvConfig, ExecSecurity, FileApproval, FileLimits,
    IsolationConfig, IsolationMode, LocalConfig, RecoveryConfig, RecoveryPolicy, SandboxConfig,
};
pub use error::{Error, Result};
pub use harden::{Hardening, harden_process};
pub use registry::ToolRegistry;
pub use sandbox::{SandboxTools, sandbox_tools};
pub use tool::{Approval, CallContext, DynTool, Recovery, SharedTool, Tool, ToolOutput, ToolSpec};
