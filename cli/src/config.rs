//! Agents from `keel.toml`, and the built-in `coding_agent`: a local coding agent
//! whose commands and file changes wait for approval.
//!
//! ```toml
//! [agents.reviewer]
//! provider = "anthropic"            # anthropic | openai | scripted
//! model = "claude-sonnet-4-5"
//! system_prompt = "You review code."
//! max_steps = 20
//! [agents.reviewer.tools.local]     # the sandbox tools (see keel_tools::SandboxConfig)
//! cwd = "./workspace"
//! [agents.reviewer.tools.exec]
//! security = "allowlist"
//! allowlist = ["cargo test *"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keel_engine::{Agent, Definition, StopCondition};
use keel_providers::SharedProvider;
use keel_tools::SandboxConfig;
use serde::{Deserialize, Serialize};

use crate::args::ProviderArgs;

/// The kind of the definition `keel` records in every run it starts: the resolved
/// [`AgentSpec`] as JSON (absolute paths; never a key).
pub const SPEC_KIND: &str = "keel-cli/agent-spec@1";

/// The id of the built-in agent.
pub const BUILTIN_AGENT: &str = "coding_agent";

/// The environment variables providers read (the official SDKs' names).
pub const PROVIDER_ENV: [&str; 4] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
];

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Agents by id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSpec>,
}

/// One agent, as declared. Serializable, so a process can hand it to the store's
/// owner, which builds and runs the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent's id (the table's key).
    #[serde(default)]
    pub id: String,
    /// `anthropic`, `openai` or `scripted`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// The model.
    pub model: Option<String>,
    /// The provider's base URL.
    pub base_url: Option<String>,
    /// The script file of the `scripted` provider.
    pub script: Option<PathBuf>,
    /// The system prompt.
    pub system_prompt: Option<String>,
    /// Stop after this many LLM responses.
    pub max_steps: Option<u32>,
    /// Max tokens per LLM call.
    pub max_tokens: Option<u32>,
    /// Stop when the run's tokens reach this many.
    pub max_total_tokens: Option<u64>,
    /// Stop after a turn in which this tool ran.
    pub stop_after_tool: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Give the agent the `ask_user` tool.
    #[serde(default)]
    pub ask_user: bool,
    /// The sandbox tools.
    #[serde(default)]
    pub tools: SandboxConfig,
}

fn default_provider() -> String {
    "anthropic".to_owned()
}

/// The model an agent gets when none is named.
pub fn default_model(provider: &str) -> &'static str {
    match provider {
        "openai" => "gpt-4o",
        "scripted" => "scripted",
        _ => "claude-sonnet-4-5",
    }
}

/// The built-in local coding agent, with its workspace at `workspace`.
pub fn builtin_coding_agent(workspace: &Path) -> AgentSpec {
    let dir = workspace.display();
    let mut tools = SandboxConfig::default();
    tools.local.cwd = workspace.to_path_buf();
    tools.local.path_restriction = Some(workspace.to_path_buf());
    AgentSpec {
        id: BUILTIN_AGENT.to_owned(),
        provider: default_provider(),
        model: None,
        base_url: None,
        script: None,
        system_prompt: Some(format!(
            "You are a coding agent with access to the local filesystem. \
             You can create files, edit code, run shell commands, and search the codebase. \
             Your workspace is at {dir}. \
             Use the tools to complete the task, then summarize what you did and show the output. \
             Always verify your work by running the code after writing it. \
             In your final response, include the actual output from running the code."
        )),
        max_steps: Some(30),
        max_tokens: None,
        max_total_tokens: None,
        stop_after_tool: None,
        temperature: None,
        ask_user: false,
        tools,
    }
}

/// The agents this invocation knows: those of the config file (explicit, or
/// `./keel.toml` when it exists) and the built-in `coding_agent` unless the file
/// declares its own.
#[derive(Debug, Clone)]
pub struct Agents {
    specs: BTreeMap<String, AgentSpec>,
}

impl Agents {
    /// Loads the config. `explicit` must exist; `./keel.toml` may not.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (cwd.join("keel.toml"), false),
        };
        let mut specs = BTreeMap::new();
        if path.exists() || required {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the configuration {}", path.display()))?;
            let base = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cwd.clone());
            let base = if base.as_os_str().is_empty() {
                cwd.clone()
            } else {
                base
            };
            for (id, spec) in parse(&text).with_context(|| format!("in {}", path.display()))? {
                specs.insert(id, absolutize(spec, &base));
            }
        }
        specs
            .entry(BUILTIN_AGENT.to_owned())
            .or_insert_with(|| builtin_coding_agent(&cwd.join("workspace")));
        Ok(Self { specs })
    }

    /// The agent with this id.
    pub fn get(&self, id: &str) -> Result<AgentSpec> {
        self.specs.get(id).cloned().with_context(|| {
            let known: Vec<&str> = self.specs.keys().map(String::as_str).collect();
            format!("no agent `{id}` (known agents: {})", known.join(", "))
        })
    }

    /// Every agent.
    pub fn all(&self) -> impl Iterator<Item = &AgentSpec> {
        self.specs.values()
    }
}

/// Parses the text of a `keel.toml`.
pub fn parse(text: &str) -> Result<BTreeMap<String, AgentSpec>> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut agents = BTreeMap::new();
    for (id, mut spec) in file.agents {
        if !spec.id.is_empty() && spec.id != id {
            bail!(
                "agent `{id}` says its id is `{}`; leave `id` out or make them equal",
                spec.id
            );
        }
        if !matches!(spec.provider.as_str(), "anthropic" | "openai" | "scripted") {
            bail!(
                "agent `{id}`: unknown provider `{}` (use anthropic, openai or scripted)",
                spec.provider
            );
        }
        // TOML has `nan` and `inf`; JSON (how a spec reaches the store's owner, and
        // how requests reach the provider) has neither, and would turn them into `null`.
        if let Some(t) = spec.temperature
            && !t.is_finite()
        {
            bail!("agent `{id}`: temperature must be a finite number, not `{t}`");
        }
        spec.id = id.clone();
        agents.insert(id, spec);
    }
    Ok(agents)
}

/// Makes the spec's relative paths relative to `base`.
fn absolutize(mut spec: AgentSpec, base: &Path) -> AgentSpec {
    // `join` keeps an absolute path as it is.
    spec.tools.local.cwd = base.join(&spec.tools.local.cwd);
    spec.tools.local.path_restriction = spec.tools.local.path_restriction.map(|p| base.join(p));
    spec.script = spec.script.map(|p| base.join(p));
    spec
}

impl AgentSpec {
    /// Applies command-line overrides (paths relative to the current directory).
    pub fn with_overrides(mut self, args: &ProviderArgs) -> Result<Self> {
        let cwd = std::env::current_dir()?;
        if let Some(p) = &args.provider {
            self.provider = p.clone();
        }
        if let Some(m) = &args.model {
            self.model = Some(m.clone());
        }
        if let Some(u) = &args.base_url {
            self.base_url = Some(u.clone());
        }
        if let Some(s) = &args.script {
            self.script = Some(cwd.join(s));
            if args.provider.is_none() {
                self.provider = "scripted".to_owned();
            }
        }
        if let Some(w) = &args.workspace {
            let w = cwd.join(w);
            if self.id == BUILTIN_AGENT {
                let ask_user = self.ask_user;
                self = Self {
                    provider: self.provider,
                    model: self.model,
                    base_url: self.base_url,
                    script: self.script,
                    ..builtin_coding_agent(&w)
                };
                self.ask_user = ask_user;
            } else {
                self.tools.local.cwd = w.clone();
                self.tools.local.path_restriction = Some(w);
            }
        }
        if let Some(p) = &args.system_prompt {
            self.system_prompt = Some(p.clone());
        }
        if !matches!(self.provider.as_str(), "anthropic" | "openai" | "scripted") {
            bail!(
                "unknown provider `{}` (use anthropic, openai or scripted)",
                self.provider
            );
        }
        Ok(self)
    }

    /// The workspace directory.
    pub fn workspace(&self) -> &Path {
        &self.tools.local.cwd
    }

    /// The definition a run of this agent records.
    pub fn definition(&self) -> Definition {
        Definition {
            kind: SPEC_KIND.to_owned(),
            document: serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// The spec a run recorded.
    pub fn from_definition(definition: &Definition) -> Result<Self> {
        if definition.kind != SPEC_KIND {
            bail!(
                "the run's definition is a `{}`, not a `{SPEC_KIND}` this keel reads",
                definition.kind
            );
        }
        serde_json::from_str(&definition.document)
            .with_context(|| format!("reading the run's recorded definition ({SPEC_KIND})"))
    }

    /// Builds the agent. `env` gives the provider's variables (API keys, base URLs).
    pub fn build(&self, env: &BTreeMap<String, String>) -> Result<Agent> {
        self.build_with(Some(self.provider(env)?))
    }

    fn build_with(&self, provider: Option<SharedProvider>) -> Result<Agent> {
        let tools = keel_tools::sandbox_tools(self.tools.clone()).with_context(|| {
            format!(
                "setting up the tools of agent `{}` in {}",
                self.id,
                self.workspace().display()
            )
        })?;
        let mut builder = Agent::builder(&self.id);
        if let Some(provider) = provider {
            builder = builder.shared_provider(provider);
        }
        let definition = self.definition();
        let mut builder = builder
            .definition(definition.kind, definition.document)
            .model(
                self.model
                    .clone()
                    .unwrap_or_else(|| default_model(&self.provider).to_owned()),
            )
            .system_prompt(self.system_prompt.clone().unwrap_or_default())
            .tools(tools);
        if self.ask_user {
            builder = builder.ask_user();
        }
        if let Some(n) = self.max_steps {
            builder = builder.stop_when(StopCondition::max_steps(n));
        }
        if let Some(n) = self.max_total_tokens {
            builder = builder.stop_when(StopCondition::max_tokens(n));
        }
        if let Some(t) = &self.stop_after_tool {
            builder = builder.stop_when(StopCondition::executed_tool(t.clone()));
        }
        if let Some(n) = self.max_tokens {
            builder = builder.max_tokens(n);
        }
        if let Some(t) = self.temperature {
            builder = builder.temperature(t);
        }
        Ok(builder.build())
    }

    /// Builds the agent without a provider: for replaying its runs, which calls no
    /// model (the provider is not part of an agent's fingerprint).
    pub fn build_offline(&self) -> Result<Agent> {
        self.build_with(None)
    }

    fn provider(&self, env: &BTreeMap<String, String>) -> Result<SharedProvider> {
        let get = |k: &str| env.get(k).cloned();
        Ok(match self.provider.as_str() {
            "anthropic" => {
                let mut b = keel_providers::Anthropic::builder();
                if let Some(u) = &self.base_url {
                    b = b.base_url(u.clone());
                }
                SharedProvider::new(b.build_with_env(get)?)
            }
            "openai" => {
                let mut b = keel_providers::OpenAi::builder();
                if let Some(u) = &self.base_url {
                    b = b.base_url(u.clone());
                }
                // Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) need no
                // key: with a base URL other than OpenAI's and no key set, none is sent.
                let key = get("OPENAI_API_KEY").filter(|k| !k.trim().is_empty());
                let base = self.base_url.clone().or_else(|| get("OPENAI_BASE_URL"));
                if key.is_none() && base.is_some_and(|u| !u.contains("api.openai.com")) {
                    b = b.without_api_key();
                }
                SharedProvider::new(b.build_with_env(get)?)
            }
            "scripted" => {
                let path = self.script.as_ref().with_context(|| {
                    format!(
                        "agent `{}` uses the scripted provider but names no script (give --script FILE)",
                        self.id
                    )
                })?;
                SharedProvider::new(keel_providers::Scripted::from_file(path)?)
            }
            other => bail!("unknown provider `{other}` (use anthropic, openai or scripted)"),
        })
    }
}

/// One line saying what a recorded definition holds, for timelines.
pub fn describe_definition(definition: &Definition) -> Option<String> {
    let spec = AgentSpec::from_definition(definition).ok()?;
    let mut parts = vec![
        format!("workspace {}", spec.workspace().display()),
        format!("provider {}", spec.provider),
    ];
    if let Some(url) = &spec.base_url {
        parts.push(format!("base URL {url}"));
    }
    if let Some(script) = &spec.script {
        parts.push(format!("script {}", script.display()));
    }
    parts.push(format!(
        "exec security {}",
        spec.tools.exec.security.as_str()
    ));
    Some(parts.join(", "))
}

/// The provider variables of this process: keys as captured at start-up (they are
/// no longer in the environment, see `keel_tools::harden_process`), base URLs from
/// the environment.
pub fn provider_env() -> BTreeMap<String, String> {
    PROVIDER_ENV
        .iter()
        .filter_map(|k| keel_tools::secrets::var(k).map(|v| ((*k).to_owned(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agents_with_sandbox_tools() {
        let agents = parse(
            r#"
            [agents.reviewer]
            provider = "openai"
            model = "gpt-4o-mini"
            system_prompt = "review"
            max_steps = 5
            [agents.reviewer.tools.local]
            cwd = "ws"
            [agents.reviewer.tools.exec]
            security = "allowlist"
            allowlist = ["cargo test *"]
            "#,
        )
        .unwrap();
        let spec = &agents["reviewer"];
        assert_eq!(spec.id, "reviewer");
        assert_eq!(spec.provider, "openai");
        assert_eq!(spec.max_steps, Some(5));
        assert_eq!(spec.tools.exec.allowlist, vec!["cargo test *".to_owned()]);
    }

    #[test]
    fn unknown_fields_and_providers_are_errors() {
        let err = parse("[agents.a]\nprovder = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("provder"), "{err}");
        let err = parse("[agents.a]\nprovider = \"gemini\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown provider `gemini`"), "{err}");
    }

    #[test]
    fn openai_compatible_local_servers_need_no_key() {
        let mut spec = builtin_coding_agent(Path::new("/"));
        spec.provider = "openai".into();
        let err = spec.provider(&BTreeMap::new()).err().unwrap().to_string();
        assert!(err.contains("OPENAI_API_KEY"), "{err}");
        spec.base_url = Some("http://127.0.0.1:11434/v1".into());
        assert!(spec.provider(&BTreeMap::new()).is_ok());
        let mut env = BTreeMap::new();
        env.insert(
            "OPENAI_BASE_URL".to_owned(),
            "http://localhost:8080/v1".to_owned(),
        );
        spec.base_url = None;
        assert!(spec.provider(&env).is_ok());
    }

    #[test]
    fn a_spec_round_trips_through_its_recorded_definition() {
        let spec = builtin_coding_agent(Path::new("/w"));
        let def = spec.definition();
        assert_eq!(def.kind, SPEC_KIND);
        // The key stays in the environment: the agent's recorded definition lacks it.
        let mut env = BTreeMap::new();
        env.insert("ANTHROPIC_API_KEY".to_owned(), "sk-ant-secret-1".to_owned());
        let mut with_ws = builtin_coding_agent(&std::env::temp_dir());
        with_ws.model = Some("m".into());
        let agent = with_ws.build(&env).unwrap();
        assert!(
            !agent
                .definition()
                .unwrap()
                .document
                .contains("sk-ant-secret-1")
        );
        assert_eq!(AgentSpec::from_definition(&def).unwrap(), spec);
        let other = Definition {
            kind: "x@1".into(),
            document: def.document.clone(),
        };
        assert!(AgentSpec::from_definition(&other).is_err());
        assert!(describe_definition(&def).unwrap().contains("workspace /w"));
    }

    #[test]
    fn non_finite_temperatures_are_errors() {
        // Found by the `keel_toml` fuzz target: `nan` reached the owner as `null`.
        for t in ["nan", "+inf", "-inf"] {
            let err = parse(&format!("[agents.a]\ntemperature = {t}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("temperature must be a finite number"), "{err}");
        }
        let agents = parse("[agents.a]\ntemperature = 0.5\n").unwrap();
        assert_eq!(agents["a"].temperature, Some(0.5));
    }

    #[test]
    fn the_builtin_agent_asks_before_every_command() {
        let spec = builtin_coding_agent(Path::new("/w"));
        assert_eq!(spec.max_steps, Some(30));
        assert_eq!(
            spec.tools.exec.security,
            keel_tools::ExecSecurity::ApprovalAlways
        );
        assert!(
            spec.system_prompt
                .unwrap()
                .contains("Your workspace is at /w.")
        );
    }
}
