//! Keel's tools.
//!
//! A [`Tool`] has a name, a JSON schema for its arguments, whether it mutates
//! anything ([`Tool::is_mutating`], true unless said otherwise), what to do with a
//! call a crash interrupted ([`Recovery`]), and whether a given call needs a person's
//! approval ([`Approval`], with the [`ApprovalForm`] to show them). A
//! [`ToolRegistry`] holds an agent's tools by name.
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
mod registry;
pub mod sandbox;
pub mod schema;
mod tool;

pub use approval::{AllowRule, ApprovalForm, Field, FieldKind, FormContext, approval_digest};
pub use config::{
    EnvInherit, EnvKind, ExecConfig, ExecEnvConfig, ExecSecurity, FileApproval, FileLimits,
    IsolationConfig, IsolationMode, LocalConfig, RecoveryConfig, RecoveryPolicy, SandboxConfig,
};
pub use error::{Error, Result};
pub use registry::ToolRegistry;
pub use sandbox::{SandboxTools, sandbox_tools};
pub use tool::{Approval, CallContext, DynTool, Recovery, SharedTool, Tool, ToolOutput, ToolSpec};
