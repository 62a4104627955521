//! Agent definitions: provider and model, system prompt, tools, stop conditions, limits.

use std::fmt;
use std::sync::Arc;

use keel_providers::{LlmProvider, SharedProvider, ToolDefinition};
use keel_tools::{Tool, ToolRegistry};

use crate::ask_user::AskUser;
use crate::event::{AgentSnapshot, Definition};
use crate::state::RunState;

/// When a run stops on its own, besides the model ending its turn.
///
/// Every condition is a pure function of the run's state, so replay reaches the
/// same decision.
#[derive(Clone)]
pub enum StopCondition {
    /// After this many LLM responses.
    MaxSteps(u32),
    /// When input plus output tokens over the run reach this many.
    MaxTokens(u64),
    /// After a turn in which this tool ran.
    ExecutedTool(String),
    /// A condition of your own; `name` describes it in the log and the fingerprint.
    Custom {
        /// Shown in the log and part of the agent's fingerprint.
        name: String,
        /// Returns true to stop. Must depend only on the state.
        check: Arc<dyn Fn(&RunState) -> bool + Send + Sync>,
    },
}

impl StopCondition {
    /// Stop after `n` LLM responses (`max_steps`).
    pub fn max_steps(n: u32) -> Self {
        StopCondition::MaxSteps(n)
    }

    /// Stop when the run's tokens reach `n`.
    pub fn max_tokens(n: u64) -> Self {
        StopCondition::MaxTokens(n)
    }

    /// Stop after a turn in which the tool `name` ran.
    pub fn executed_tool(name: impl Into<String>) -> Self {
        StopCondition::ExecutedTool(name.into())
    }

    /// Stop when `check` says so.
    pub fn custom(
        name: impl Into<String>,
        check: impl Fn(&RunState) -> bool + Send + Sync + 'static,
    ) -> Self {
        StopCondition::Custom {
            name: name.into(),
            check: Arc::new(check),
        }
    }

    /// Whether the run should stop now (all calls of the latest turn finished).
    pub fn is_met(&self, state: &RunState) -> bool {
        match self {
            StopCondition::MaxSteps(n) => state.responses() >= *n,
            StopCondition::MaxTokens(n) => {
                state.usage().total_input() + state.usage().output_tokens >= *n
            }
            StopCondition::ExecutedTool(name) => state.latest_turn_ran(name),
            StopCondition::Custom { check, .. } => check(state),
        }
    }
}

impl fmt::Display for StopCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCondition::MaxSteps(n) => write!(f, "max_steps({n})"),
            StopCondition::MaxTokens(n) => write!(f, "max_tokens({n})"),
            StopCondition::ExecutedTool(t) => write!(f, "executed_tool({t})"),
            StopCondition::Custom { name, .. } => write!(f, "custom({name})"),
        }
    }
}

impl fmt::Debug for StopCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Per-run limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Max tokens per LLM call.
    pub max_tokens_per_call: u32,
    /// Sampling temperature, if set.
    pub temperature: Option<f32>,
    /// Tool outputs longer than this many bytes are stored once in the blob space
    /// and referenced from the log.
    pub inline_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tokens_per_call: 4096,
            temperature: None,
            inline_output_bytes: 16 * 1024,
        }
    }
}

struct AgentInner {
    id: String,
    provider: SharedProvider,
    model: String,
    system_prompt: String,
    tools: ToolRegistry,
    stop_conditions: Vec<StopCondition>,
    limits: Limits,
    snapshot: AgentSnapshot,
    tool_definitions: Vec<ToolDefinition>,
    definition: Option<Definition>,
    /// Unique per built agent: tells whether these tools' memory of a run is live.
    instance: u64,
}

static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An agent: who to ask (provider and model), how (system prompt), with what
/// (tools), and when to stop. Cheap to clone.
///
/// ```no_run
/// # fn demo(provider: keel_providers::SharedProvider, tools: keel_tools::ToolRegistry) {
/// use keel_engine::{Agent, StopCondition};
/// let agent = Agent::builder("local_coding_agent")
///     .provider(provider)
///     .model("claude-sonnet-4-5")
///     .system_prompt("You are a coding agent.")
///     .tools(tools)
///     .stop_when(StopCondition::max_steps(30))
///     .build();
/// # }
/// ```
#[derive(Clone)]
pub struct Agent(Arc<AgentInner>);

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.0.id)
            .field("model", &self.0.model)
            .field("tools", &self.0.tools)
            .field("fingerprint", &self.0.snapshot.fingerprint)
            .finish()
    }
}

impl Agent {
    /// Starts defining an agent with this id.
    pub fn builder(id: impl Into<String>) -> AgentBuilder {
        AgentBuilder {
            id: id.into(),
            provider: None,
            model: String::new(),
            system_prompt: String::new(),
            tools: ToolRegistry::new(),
            stop_conditions: Vec::new(),
            limits: Limits::default(),
            definition: None,
        }
    }

    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The provider.
    pub fn provider(&self) -> &SharedProvider {
        &self.0.provider
    }

    /// The model.
    pub fn model(&self) -> &str {
        &self.0.model
    }

    /// The system prompt.
    pub fn system_prompt(&self) -> &str {
        &self.0.system_prompt
    }

    /// The tools.
    pub fn tools(&self) -> &ToolRegistry {
        &self.0.tools
    }

    /// The tools as the model sees them.
    pub fn tool_definitions(&self) -> &[ToolDefinition] {
        &self.0.tool_definitions
    }

    /// The stop conditions.
    pub fn stop_conditions(&self) -> &[StopCondition] {
        &self.0.stop_conditions
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The full definition its embedder gave ([`AgentBuilder::definition`]), which
    /// runs record when they start.
    pub fn definition(&self) -> Option<&Definition> {
        self.0.definition.as_ref()
    }

    /// Which built agent this is (clones share it).
    pub(crate) fn instance(&self) -> u64 {
        self.0.instance
    }

    /// What a run records about this agent, including its fingerprint.
    pub fn snapshot(&self) -> &AgentSnapshot {
        &self.0.snapshot
    }

    /// A digest of the definition: id, model, system prompt, tools (names,
    /// descriptions, schemas), max tokens, temperature and stop conditions. The
    /// provider's name is left out: the same agent may be served through another
    /// transport (scripted in tests, a proxy) without changing what it is.
    pub fn fingerprint(&self) -> &str {
        &self.0.snapshot.fingerprint
    }
}

/// Builds an [`Agent`].
pub struct AgentBuilder {
    id: String,
    provider: Option<SharedProvider>,
    model: String,
    system_prompt: String,
    tools: ToolRegistry,
    stop_conditions: Vec<StopCondition>,
    limits: Limits,
    definition: Option<Definition>,
}

impl fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("id", &self.id)
            .finish()
    }
}

impl AgentBuilder {
    /// The provider to call.
    #[must_use]
    pub fn provider(mut self, provider: impl LlmProvider) -> Self {
        self.provider = Some(SharedProvider::new(provider));
        self
    }

    /// The provider to call, already shared.
    #[must_use]
    pub fn shared_provider(mut self, provider: SharedProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The model's name at the provider.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The system prompt.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// Adds every tool of a registry (e.g. `sandbox_tools(...)`).
    #[must_use]
    pub fn tools(mut self, tools: ToolRegistry) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Adds one tool.
    #[must_use]
    pub fn tool(mut self, tool: impl Tool) -> Self {
        self.tools.register(tool);
        self
    }

    /// Adds the built-in `ask_user` tool: the model asks the person a question (with
    /// text, number, boolean or select fields) and the run waits for the answer.
    #[must_use]
    pub fn ask_user(self) -> Self {
        self.tool(AskUser)
    }

    /// Adds a stop condition.
    #[must_use]
    pub fn stop_when(mut self, condition: StopCondition) -> Self {
        self.stop_conditions.push(condition);
        self
    }

    /// Max tokens per LLM call.
    #[must_use]
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.limits.max_tokens_per_call = n;
        self
    }

    /// Sampling temperature.
    #[must_use]
    pub fn temperature(mut self, t: f32) -> Self {
        self.limits.temperature = Some(t);
        self
    }

    /// The agent's full definition as you declare it (a document of your own, e.g.
    /// JSON), recorded in every run's first event. With a rebuilder set on the
    /// runtime ([`crate::Keel::with_rebuilder`]), a run is continued, answered and
    /// forked with the agent rebuilt from the definition it recorded — not with
    /// whatever is registered under its id now. Never put a secret in it.
    #[must_use]
    pub fn definition(mut self, kind: impl Into<String>, document: impl Into<String>) -> Self {
        self.definition = Some(Definition {
            kind: kind.into(),
            document: document.into(),
        });
        self
    }

    /// Replaces the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Finishes the definition. Without a provider, calls fail with a clear error.
    pub fn build(mut self) -> Agent {
        let provider = self
            .provider
            .take()
            .unwrap_or_else(|| SharedProvider::new(crate::runtime::NoProvider));
        let tool_definitions: Vec<ToolDefinition> = self
            .tools
            .specs()
            .into_iter()
            .map(|s| ToolDefinition {
                name: s.name,
                description: s.description,
                input_schema: s.input_schema.into(),
            })
            .collect();
        let mut tools_hasher = blake3::Hasher::new();
        for def in &tool_definitions {
            for part in [
                def.name.as_str(),
                def.description.as_str(),
                &def.input_schema.to_text(),
            ] {
                hash_part(&mut tools_hasher, part);
            }
        }
        let tools_digest = tools_hasher.finalize().to_hex().to_string();
        let stop_conditions: Vec<String> =
            self.stop_conditions.iter().map(|c| c.to_string()).collect();
        let mut hasher = blake3::Hasher::new();
        hash_part(&mut hasher, "keel-agent-v1");
        hash_part(&mut hasher, &self.id);
        hash_part(&mut hasher, &self.model);
        hash_part(&mut hasher, &self.system_prompt);
        hash_part(&mut hasher, &tools_digest);
        hash_part(&mut hasher, &self.limits.max_tokens_per_call.to_string());
        hash_part(&mut hasher, &format!("{:?}", self.limits.temperature));
        for c in &stop_conditions {
            hash_part(&mut hasher, c);
        }
        let snapshot = AgentSnapshot {
            id: self.id.clone(),
            provider: provider.name().to_owned(),
            model: self.model.clone(),
            system_prompt: self.system_prompt.clone(),
            tools: self.tools.names().to_vec(),
            tools_digest,
            max_tokens: self.limits.max_tokens_per_call,
            stop_conditions,
            fingerprint: hasher.finalize().to_hex().to_string(),
            recovery: self
                .tools
                .names()
                .iter()
                .filter_map(|n| self.tools.get(n).map(|t| t.recovery()))
                .collect(),
        };
        self.finish(provider, tool_definitions, snapshot)
    }

    /// The agent with a snapshot given rather than computed (an agent rebuilt from
    /// a run's record keeps the fingerprint it recorded).
    pub(crate) fn finish(
        self,
        provider: SharedProvider,
        tool_definitions: Vec<ToolDefinition>,
        snapshot: AgentSnapshot,
    ) -> Agent {
        Agent(Arc::new(AgentInner {
            id: self.id,
            provider,
            model: self.model,
            system_prompt: self.system_prompt,
            tools: self.tools,
            stop_conditions: self.stop_conditions,
            limits: self.limits,
            snapshot,
            tool_definitions,
            definition: self.definition,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }))
    }
}

/// Hashes a length-prefixed part, so `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn hash_part(hasher: &mut blake3::Hasher, part: &str) {
    hasher.update(&(part.len() as u64).to_le_bytes());
    hasher.update(part.as_bytes());
}
