//! Building the sandbox tools, the registry and the object-safe layer.

use keel_tools::{
    Approval, CallContext, SandboxConfig, SandboxTools, Tool, ToolOutput, ToolRegistry, ToolSpec,
    sandbox_tools,
};
use serde_json::json;

use super::common::needed;

#[test]
fn sandbox_tools_are_the_seeds_six() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::default();
    config.local.cwd = dir.path().into();
    let reg = sandbox_tools(config).unwrap();
    assert_eq!(
        reg.names(),
        ["exec", "read", "write", "edit", "glob", "grep"]
    );
    for spec in reg.specs() {
        assert!(!spec.description.is_empty(), "{}", spec.name);
        assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
        assert_eq!(
            spec.input_schema["additionalProperties"], false,
            "{}",
            spec.name
        );
    }
}

#[test]
fn configuration_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let other = tempfile::tempdir().unwrap();
    let build = |f: &dyn Fn(&mut SandboxConfig)| {
        let mut c = SandboxConfig::default();
        c.local.cwd = inner.clone();
        f(&mut c);
        SandboxTools::new(c).map(|_| ()).unwrap_err().to_string()
    };
    let e = build(&|c| c.local.path_restriction = Some(other.path().into()));
    assert!(
        e.starts_with("invalid sandbox configuration: cwd `")
            && e.contains("is outside path_restriction"),
        "{e}"
    );
    let e = build(&|c| c.local.cwd = dir.path().join("missing"));
    assert!(
        e.starts_with("cannot open the workspace `") && e.contains("No such file"),
        "{e}"
    );
    let e = build(&|c| c.exec.allowlist = vec!["node*".into()]);
    assert_eq!(
        e,
        "invalid sandbox configuration: exec pattern `node*`: `node*` is not a plain word; patterns match whole arguments, with `*` alone standing for any argument(s)"
    );
    let e = build(&|c| c.exec.deny = vec!["* rm".into()]);
    assert_eq!(
        e,
        "invalid sandbox configuration: exec pattern `* rm` must start with a command name, not `*`"
    );
    let e = build(&|c| c.exec.timeout_secs = 0);
    assert!(e.contains("timeout_secs (0) must be at least 1"), "{e}");
    let e = build(&|c| c.protected_paths = vec!["[".into()]);
    assert!(
        e.starts_with("invalid sandbox configuration: protected path `[`"),
        "{e}"
    );
    // A restriction above the working directory is fine.
    let mut c = SandboxConfig::default();
    c.local.cwd = inner.clone();
    c.local.path_restriction = Some(dir.path().into());
    assert!(SandboxTools::new(c).is_ok());
}

#[test]
fn debug_output_does_not_show_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::default();
    config.local.cwd = dir.path().into();
    let tools =
        SandboxTools::with_host_env(config, [("OPENAI_API_KEY".into(), "sk-very-secret".into())])
            .unwrap();
    let text = format!("{tools:?} {:?}", tools.exec());
    assert!(!text.contains("sk-very-secret"), "{text}");
    assert!(text.contains("1 variables"), "{text}");
}

#[test]
fn config_from_toml_like_json() {
    let config: SandboxConfig = serde_json::from_value(json!({
        "env": "local",
        "local": {"cwd": "/tmp", "path_restriction": "/tmp"},
        "exec": {"security": "allowlist", "allowlist": ["node *", "npm install *"], "deny": ["curl *"]},
        "file_approval": "never",
        "isolation": {"mode": "best-effort"}
    }))
    .unwrap();
    assert_eq!(config.exec.allowlist, ["node *", "npm install *"]);
    assert_eq!(config.isolation.mode, keel_tools::IsolationMode::BestEffort);
    // `.git`, `.keel` and `keel.toml` are protected whatever this list says.
    assert!(config.protected_paths.is_empty());
    assert_eq!(
        keel_tools::config::DEFAULT_PROTECTED,
        [".git", ".keel", "keel.toml"]
    );
}

/// A user tool with the default approval policy (mutating: always asks).
struct Deploy;

#[derive(serde::Deserialize)]
struct DeployArgs {
    env: String,
}

impl Tool for Deploy {
    type Args = DeployArgs;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "deploy".into(),
            description: "Deploy".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"env": {"type": "string", "enum": ["staging", "prod"]}},
                "required": ["env"],
                "additionalProperties": false
            }),
        }
    }
    async fn call(&self, args: DeployArgs, _ctx: CallContext) -> ToolOutput {
        ToolOutput::ok(format!("deployed to {}", args.env))
    }
}

#[tokio::test]
async fn user_tools_get_schema_validation_and_approval() {
    let mut reg = ToolRegistry::new();
    reg.register(Deploy);
    let tool = reg.get("deploy").unwrap();
    assert_eq!(
        tool.approval_json(&json!({"env": "dev"}), &[]).unwrap_err(),
        "invalid arguments for `deploy`: `env` must be one of \"staging\", \"prod\", got \"dev\""
    );
    let form = needed(tool.approval_json(&json!({"env": "prod"}), &[]).unwrap());
    assert_eq!(form.tool, "deploy");
    let rule = tool.always_rule_json(&json!({"env": "prod"})).unwrap();
    assert_eq!(
        tool.approval_json(&json!({"env": "prod"}), &[rule])
            .unwrap(),
        Approval::NotNeeded
    );
    let out = tool
        .call_json(json!({"env": 1}), CallContext::detached())
        .await;
    assert_eq!(
        out,
        ToolOutput::error(
            "invalid arguments for `deploy`: `env` must be a string, got an integer (1)"
        )
    );
    let out = tool
        .call_json(json!({"env": "staging"}), CallContext::detached())
        .await;
    assert_eq!(out, ToolOutput::ok("deployed to staging"));
}
