//! The events of a run's log. The log is the run: its state is `fold(events)`.
//!
//! Requests sent to the model are never stored, only their digest: the conversation
//! is derived from the events. Large texts live once in the blob space ([`Text::Blob`]).

use keel_providers::Response;
use keel_storage::{BlobHash, RunId, Seq, Timestamp};
use keel_tools::{AllowRule, ApprovalForm, Recovery};
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, Digest, StepKey, Turn};

/// What a run recorded about its agent when it started: enough to detect, and show,
/// that the definition changed under a recorded run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    /// The agent's id.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The system prompt.
    pub system_prompt: String,
    /// The tools' names, in order.
    pub tools: Vec<String>,
    /// A digest of the tools' specs (names, descriptions, schemas).
    pub tools_digest: String,
    /// Max tokens per LLM call.
    pub max_tokens: u32,
    /// The stop conditions, described.
    pub stop_conditions: Vec<String>,
    /// A digest of everything above: the agent's fingerprint.
    pub fingerprint: String,
    /// Each tool's recovery policy, in the order of `tools` (empty in runs recorded
    /// before it was: the sandbox tools' defaults apply). Not part of the fingerprint.
    #[serde(default)]
    pub recovery: Vec<Recovery>,
}

/// An agent's full definition as its embedder declares it (for the `keel` CLI: the
/// resolved agent spec — tools, workspace, policy, provider, model — never a
/// secret), recorded so a run can be rebuilt from its log alone. Opaque to the
/// engine: `kind` names the document's schema, `document` is its text (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// The document's schema and version, e.g. `keel-cli/agent-spec@1`.
    pub kind: String,
    /// The document.
    pub document: String,
}

/// The first event of every run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    /// The agent, as defined when the run started.
    pub agent: AgentSnapshot,
    /// The person's input.
    pub input: String,
    /// For a fork: the run it was forked from and the length of the prefix it copied.
    pub parent: Option<(RunId, Seq)>,
    /// How the run's request digests are computed; kept by forks of the run.
    #[serde(default)]
    pub digest_scheme: DigestScheme,
    /// The agent's full definition, when its embedder gave one (runs recorded
    /// before definitions were recorded have none).
    #[serde(default)]
    pub definition: Option<Definition>,
}

/// A person adopted another definition for a run (or a fork started with
/// overrides): events after it follow the new definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentChanged {
    /// The agent as now defined.
    pub agent: AgentSnapshot,
    /// Its full definition, when the embedder gave one.
    pub definition: Option<Definition>,
    /// Who changed it (a user name, `keel fork`).
    pub by: String,
    /// Why, in words (e.g. `adopted keel.toml`, `fork overrides: model`).
    pub reason: String,
}

/// How a run's conversation digest (and so each request digest) is computed. A run
/// keeps the scheme it started with, so digests recorded by an older build still
/// match on replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigestScheme {
    /// Over the protobuf records of format 2 (every run started since format 2).
    #[default]
    Records,
    /// Over the postcard encoding of format 1 (runs started by round 1).
    Postcard1,
}

/// A text stored inline, or in the blob space when large.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    /// The text itself.
    Inline(String),
    /// The hash of a blob holding the text's UTF-8 bytes.
    Blob {
        /// The blob.
        hash: BlobHash,
        /// Its length in bytes.
        len: u64,
    },
}

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FinishKind {
    /// The tool ran (its output may still be an error).
    Ran,
    /// A person denied it.
    Denied,
    /// Policy refused it without asking (a deny rule, a protected path).
    Refused,
    /// It started but the process died before it finished, and its policy is to
    /// report that rather than run it again.
    Interrupted,
    /// The model named an unknown tool or gave invalid arguments.
    InvalidCall,
    /// A person answered a question (`ask_user`).
    Answered,
    /// The run was cancelled while it ran.
    Cancelled,
}

/// A person's answer to a step, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Approved (or, for a question, answered rather than declined).
    pub approved: bool,
    /// A note fed back to the model.
    pub note: Option<String>,
    /// The standing rule "always" recorded, if the person said always.
    pub remember: Option<AllowRule>,
    /// For a question: the answers as JSON text.
    pub answer: Option<String>,
    /// Who answered (a user name, `keel approve`, `--approve-all`).
    pub by: String,
}

/// One event of a run's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The run began. Always seq 0.
    RunStarted(Box<RunStarted>),
    /// Intent: the call for `turn` is about to be sent, with this request digest.
    LlmRequested {
        /// The turn.
        turn: Turn,
        /// The digest of the request (see `Request::digest`-style chaining in `state`).
        request_digest: Digest,
    },
    /// The call for `turn` completed. Commit point: no tool of the turn runs before
    /// this is durable, and the turn is never sent to the provider again.
    LlmResponded {
        /// The turn.
        turn: Turn,
        /// The complete response.
        response: Box<Response>,
        /// How long the call took, retries included.
        latency_ms: u64,
    },
    /// The run waits for a person at `step`. It holds no resources while it waits.
    ApprovalRequested {
        /// The call waiting.
        call: CallId,
        /// The wait's key; answers must name it.
        step: StepKey,
        /// What the person is shown.
        form: Box<ApprovalForm>,
    },
    /// A person answered `step`.
    ApprovalResolved {
        /// The call.
        call: CallId,
        /// The step answered.
        step: StepKey,
        /// The answer.
        resolution: Resolution,
    },
    /// Intent: the tool call is about to run (its `attempt`-th time, from 1).
    ToolStarted {
        /// The call.
        call: CallId,
        /// Which attempt.
        attempt: u32,
    },
    /// The tool call ended; `output` goes back to the model.
    ToolFinished {
        /// The call.
        call: CallId,
        /// The result text.
        output: Text,
        /// Whether the model is told it failed.
        is_error: bool,
        /// How it ended.
        kind: FinishKind,
        /// How long it ran.
        duration_ms: u64,
    },
    /// The run finished with an output.
    RunCompleted {
        /// The final text.
        output: String,
        /// The stop condition that ended it, when one did.
        stopped_by: Option<String>,
    },
    /// The run failed.
    RunFailed {
        /// What went wrong.
        error: String,
        /// A stable code, for errors that have one (e.g. `KEEL-E100`).
        code: Option<String>,
    },
    /// The run was cancelled.
    RunCancelled {
        /// Why.
        reason: String,
    },
    /// The person adopted another definition of the agent (never a tool call).
    AgentChanged(Box<AgentChanged>),
}

impl Event {
    /// The event's name, as shown in timelines and the JSON export.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted(_) => "run_started",
            Event::LlmRequested { .. } => "llm_requested",
            Event::LlmResponded { .. } => "llm_responded",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalResolved { .. } => "approval_resolved",
            Event::ToolStarted { .. } => "tool_started",
            Event::ToolFinished { .. } => "tool_finished",
            Event::RunCompleted { .. } => "run_completed",
            Event::RunFailed { .. } => "run_failed",
            Event::RunCancelled { .. } => "run_cancelled",
            Event::AgentChanged(_) => "agent_changed",
        }
    }

    /// Whether the run ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::RunCompleted { .. } | Event::RunFailed { .. } | Event::RunCancelled { .. }
        )
    }
}

/// An event with the wall-clock time it was recorded. The time is for people
/// (timelines, durations); replay never reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// When it was recorded.
    pub at: Timestamp,
    /// The event.
    pub event: Event,
}
