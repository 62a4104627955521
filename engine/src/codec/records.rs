//! The stored shape of format 2: protobuf messages, written by hand with `prost`'s
//! derive. Every type the log stores is here, owned by the engine, so a change to a
//! provider's or a tool's type never changes what is on disk.
//!
//! The rules (ARCHITECTURE.md, "How the log evolves"): a tag number, once used, keeps
//! its meaning forever and is never reused; a new field gets a new tag and decodes as
//! its default from older records; a new event kind gets a new tag in
//! [`StampedRecord::event`] and older builds refuse it by name. Enumerations start at
//! 1: the 0 of an absent field is never mistaken for a value.

use prost::{Message, Oneof};

/// The envelope: when, and which event.
#[derive(Clone, PartialEq, Message)]
pub struct StampedRecord {
    /// Milliseconds since the Unix epoch, for people; replay never reads it.
    #[prost(uint64, tag = "1")]
    pub at: u64,
    /// The event. Tags 2..=12 are the kinds so far; a new kind takes the next tag.
    #[prost(oneof = "EventRecord", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")]
    pub event: Option<EventRecord>,
}

/// The highest event tag this build knows; a record with a higher one was written by
/// a newer Keel.
pub const LAST_EVENT_TAG: u32 = 12;

/// One event kind per tag.
#[derive(Clone, PartialEq, Oneof)]
pub enum EventRecord {
    /// `run_started`.
    #[prost(message, tag = "2")]
    RunStarted(RunStartedRecord),
    /// `llm_requested`.
    #[prost(message, tag = "3")]
    LlmRequested(LlmRequestedRecord),
    /// `llm_responded`.
    #[prost(message, tag = "4")]
    LlmResponded(LlmRespondedRecord),
    /// `approval_requested`.
    #[prost(message, tag = "5")]
    ApprovalRequested(ApprovalRequestedRecord),
    /// `approval_resolved`.
    #[prost(message, tag = "6")]
    ApprovalResolved(ApprovalResolvedRecord),
    /// `tool_started`.
    #[prost(message, tag = "7")]
    ToolStarted(ToolStartedRecord),
    /// `tool_finished`.
    #[prost(message, tag = "8")]
    ToolFinished(ToolFinishedRecord),
    /// `run_completed`.
    #[prost(message, tag = "9")]
    RunCompleted(RunCompletedRecord),
    /// `run_failed`.
    #[prost(message, tag = "10")]
    RunFailed(RunFailedRecord),
    /// `run_cancelled`.
    #[prost(message, tag = "11")]
    RunCancelled(RunCancelledRecord),
    /// `agent_changed`.
    #[prost(message, tag = "12")]
    AgentChanged(AgentChangedRecord),
}

/// What a run recorded about its agent.
#[derive(Clone, PartialEq, Message)]
pub struct AgentSnapshotRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub provider: String,
    #[prost(string, tag = "3")]
    pub model: String,
    #[prost(string, tag = "4")]
    pub system_prompt: String,
    #[prost(string, repeated, tag = "5")]
    pub tools: Vec<String>,
    #[prost(string, tag = "6")]
    pub tools_digest: String,
    #[prost(uint32, tag = "7")]
    pub max_tokens: u32,
    #[prost(string, repeated, tag = "8")]
    pub stop_conditions: Vec<String>,
    #[prost(string, tag = "9")]
    pub fingerprint: String,
    /// Each tool's recovery policy (1 re-run, 2 ask again, 3 report interrupted).
    #[prost(uint32, repeated, tag = "10")]
    pub recovery: Vec<u32>,
}

/// An embedder's full definition of an agent (opaque to the engine).
#[derive(Clone, PartialEq, Message)]
pub struct DefinitionRecord {
    #[prost(string, tag = "1")]
    pub kind: String,
    #[prost(string, tag = "2")]
    pub document: String,
}

/// `agent_changed`.
#[derive(Clone, PartialEq, Message)]
pub struct AgentChangedRecord {
    #[prost(message, optional, tag = "1")]
    pub agent: Option<AgentSnapshotRecord>,
    #[prost(message, optional, tag = "2")]
    pub definition: Option<DefinitionRecord>,
    #[prost(string, tag = "3")]
    pub by: String,
    #[prost(string, tag = "4")]
    pub reason: String,
}

/// A fork's parent: the run and the length of the prefix copied.
#[derive(Clone, PartialEq, Message)]
pub struct ParentRecord {
    /// The run id's 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub run: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub at: u64,
}

/// `run_started`.
#[derive(Clone, PartialEq, Message)]
pub struct RunStartedRecord {
    #[prost(message, optional, tag = "1")]
    pub agent: Option<AgentSnapshotRecord>,
    #[prost(string, tag = "2")]
    pub input: String,
    #[prost(message, optional, tag = "3")]
    pub parent: Option<ParentRecord>,
    /// How the run's request digests are computed: 0 (absent) = over these records,
    /// 1 = over the postcard encoding of format 1 (runs first written by round 1).
    #[prost(uint32, tag = "4")]
    pub digest_scheme: u32,
    #[prost(message, optional, tag = "5")]
    pub definition: Option<DefinitionRecord>,
}

/// `llm_requested`.
#[derive(Clone, PartialEq, Message)]
pub struct LlmRequestedRecord {
    #[prost(uint32, tag = "1")]
    pub turn: u32,
    /// 32 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub request_digest: Vec<u8>,
}

/// `llm_responded`.
#[derive(Clone, PartialEq, Message)]
pub struct LlmRespondedRecord {
    #[prost(uint32, tag = "1")]
    pub turn: u32,
    #[prost(message, optional, tag = "2")]
    pub response: Option<ResponseRecord>,
    #[prost(uint64, tag = "3")]
    pub latency_ms: u64,
}

/// A model's complete response.
#[derive(Clone, PartialEq, Message)]
pub struct ResponseRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub model: String,
    #[prost(message, repeated, tag = "3")]
    pub content: Vec<ContentBlockRecord>,
    /// The reason's name (`end_turn`, `tool_use`, …, or the provider's own).
    #[prost(string, tag = "4")]
    pub stop_reason: String,
    #[prost(message, optional, tag = "5")]
    pub usage: Option<UsageRecord>,
}

/// Tokens spent by one call.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct UsageRecord {
    #[prost(uint64, tag = "1")]
    pub input_tokens: u64,
    #[prost(uint64, tag = "2")]
    pub output_tokens: u64,
    #[prost(uint64, tag = "3")]
    pub cache_creation_input_tokens: u64,
    #[prost(uint64, tag = "4")]
    pub cache_read_input_tokens: u64,
}

/// One block of a response.
#[derive(Clone, PartialEq, Message)]
pub struct ContentBlockRecord {
    #[prost(oneof = "BlockRecord", tags = "1, 2, 3, 4, 5, 6")]
    pub block: Option<BlockRecord>,
}

/// The kinds of block.
#[derive(Clone, PartialEq, Oneof)]
pub enum BlockRecord {
    #[prost(message, tag = "1")]
    Text(TextBlockRecord),
    #[prost(message, tag = "2")]
    ToolUse(ToolUseRecord),
    #[prost(message, tag = "3")]
    ToolResult(ToolResultRecord),
    #[prost(message, tag = "4")]
    Thinking(ThinkingRecord),
    #[prost(message, tag = "5")]
    RedactedThinking(RedactedThinkingRecord),
    #[prost(message, tag = "6")]
    Unknown(UnknownBlockRecord),
}

#[derive(Clone, PartialEq, Message)]
pub struct TextBlockRecord {
    #[prost(string, tag = "1")]
    pub text: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ToolUseRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// The arguments as JSON text.
    #[prost(string, tag = "3")]
    pub input_json: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ToolResultRecord {
    #[prost(string, tag = "1")]
    pub tool_use_id: String,
    #[prost(string, tag = "2")]
    pub content: String,
    #[prost(bool, tag = "3")]
    pub is_error: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct ThinkingRecord {
    #[prost(string, tag = "1")]
    pub thinking: String,
    #[prost(string, tag = "2")]
    pub signature: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RedactedThinkingRecord {
    #[prost(string, tag = "1")]
    pub data: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct UnknownBlockRecord {
    #[prost(string, tag = "1")]
    pub kind: String,
    /// The whole block as JSON text.
    #[prost(string, tag = "2")]
    pub raw_json: String,
}

/// `approval_requested`.
#[derive(Clone, PartialEq, Message)]
pub struct ApprovalRequestedRecord {
    #[prost(message, optional, tag = "1")]
    pub call: Option<CallRecord>,
    #[prost(string, tag = "2")]
    pub step: String,
    #[prost(message, optional, tag = "3")]
    pub form: Option<FormRecord>,
}

/// A tool call's id: `turn.index`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct CallRecord {
    #[prost(uint32, tag = "1")]
    pub turn: u32,
    #[prost(uint32, tag = "2")]
    pub index: u32,
}

/// What a person is shown.
#[derive(Clone, PartialEq, Message)]
pub struct FormRecord {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub tool: String,
    #[prost(message, optional, tag = "3")]
    pub context: Option<FormContextRecord>,
    #[prost(message, repeated, tag = "4")]
    pub fields: Vec<FieldRecord>,
    #[prost(string, tag = "5")]
    pub digest: String,
}

/// The specifics of a pending call.
#[derive(Clone, PartialEq, Message)]
pub struct FormContextRecord {
    #[prost(oneof = "ContextRecord", tags = "1, 2, 3, 4, 5")]
    pub context: Option<ContextRecord>,
}

/// The kinds of form context.
#[derive(Clone, PartialEq, Oneof)]
pub enum ContextRecord {
    #[prost(message, tag = "1")]
    Command(CommandContextRecord),
    #[prost(message, tag = "2")]
    Write(WriteContextRecord),
    #[prost(message, tag = "3")]
    Edit(EditContextRecord),
    #[prost(message, tag = "4")]
    Question(QuestionContextRecord),
    #[prost(message, tag = "5")]
    Call(CallContextRecord),
}

#[derive(Clone, PartialEq, Message)]
pub struct CommandContextRecord {
    #[prost(string, tag = "1")]
    pub command: String,
    #[prost(string, tag = "2")]
    pub cwd: String,
    #[prost(string, tag = "3")]
    pub reason: String,
    #[prost(string, optional, tag = "4")]
    pub matched_rule: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WriteContextRecord {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(string, tag = "2")]
    pub content: String,
    #[prost(bool, tag = "3")]
    pub overwrites: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct EditContextRecord {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(string, tag = "2")]
    pub diff: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct QuestionContextRecord {
    #[prost(string, tag = "1")]
    pub question: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct CallContextRecord {
    #[prost(string, tag = "1")]
    pub args: String,
}

/// A field of a question.
#[derive(Clone, PartialEq, Message)]
pub struct FieldRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub label: String,
    /// 1 text, 2 number, 3 boolean, 4 select.
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    /// The options of a select.
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
    #[prost(bool, tag = "5")]
    pub required: bool,
}

/// `approval_resolved`.
#[derive(Clone, PartialEq, Message)]
pub struct ApprovalResolvedRecord {
    #[prost(message, optional, tag = "1")]
    pub call: Option<CallRecord>,
    #[prost(string, tag = "2")]
    pub step: String,
    #[prost(message, optional, tag = "3")]
    pub resolution: Option<ResolutionRecord>,
}

/// A person's answer.
#[derive(Clone, PartialEq, Message)]
pub struct ResolutionRecord {
    #[prost(bool, tag = "1")]
    pub approved: bool,
    #[prost(string, optional, tag = "2")]
    pub note: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub remember: Option<AllowRuleRecord>,
    /// The answers of a question, as JSON text.
    #[prost(string, optional, tag = "4")]
    pub answer: Option<String>,
    #[prost(string, tag = "5")]
    pub by: String,
}

/// A standing permission recorded by an "always" answer.
#[derive(Clone, PartialEq, Message)]
pub struct AllowRuleRecord {
    #[prost(oneof = "RuleRecord", tags = "1, 2, 3")]
    pub rule: Option<RuleRecord>,
}

/// The kinds of rule.
#[derive(Clone, PartialEq, Oneof)]
pub enum RuleRecord {
    #[prost(message, tag = "1")]
    Tool(ToolRuleRecord),
    #[prost(message, tag = "2")]
    ExecPrefix(ExecPrefixRuleRecord),
    #[prost(message, tag = "3")]
    Custom(CustomRuleRecord),
}

#[derive(Clone, PartialEq, Message)]
pub struct ToolRuleRecord {
    #[prost(string, tag = "1")]
    pub tool: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExecPrefixRuleRecord {
    #[prost(string, repeated, tag = "1")]
    pub argv: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CustomRuleRecord {
    #[prost(string, tag = "1")]
    pub tool: String,
    #[prost(string, tag = "2")]
    pub rule: String,
}

/// `tool_started`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct ToolStartedRecord {
    #[prost(message, optional, tag = "1")]
    pub call: Option<CallRecord>,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

/// A text inline, or in the blob space.
#[derive(Clone, PartialEq, Message)]
pub struct TextRecord {
    #[prost(oneof = "TextKind", tags = "1, 2")]
    pub text: Option<TextKind>,
}

/// Where the text is.
#[derive(Clone, PartialEq, Oneof)]
pub enum TextKind {
    #[prost(string, tag = "1")]
    Inline(String),
    #[prost(message, tag = "2")]
    Blob(BlobRefRecord),
}

/// A blob's BLAKE3 hash (32 bytes) and length.
#[derive(Clone, PartialEq, Message)]
pub struct BlobRefRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub hash: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub len: u64,
}

/// `tool_finished`.
#[derive(Clone, PartialEq, Message)]
pub struct ToolFinishedRecord {
    #[prost(message, optional, tag = "1")]
    pub call: Option<CallRecord>,
    #[prost(message, optional, tag = "2")]
    pub output: Option<TextRecord>,
    #[prost(bool, tag = "3")]
    pub is_error: bool,
    /// 1 ran, 2 denied, 3 refused, 4 interrupted, 5 invalid call, 6 answered,
    /// 7 cancelled.
    #[prost(uint32, tag = "4")]
    pub kind: u32,
    #[prost(uint64, tag = "5")]
    pub duration_ms: u64,
}

/// `run_completed`.
#[derive(Clone, PartialEq, Message)]
pub struct RunCompletedRecord {
    #[prost(string, tag = "1")]
    pub output: String,
    #[prost(string, optional, tag = "2")]
    pub stopped_by: Option<String>,
}

/// `run_failed`.
#[derive(Clone, PartialEq, Message)]
pub struct RunFailedRecord {
    #[prost(string, tag = "1")]
    pub error: String,
    #[prost(string, optional, tag = "2")]
    pub code: Option<String>,
}

/// `run_cancelled`.
#[derive(Clone, PartialEq, Message)]
pub struct RunCancelledRecord {
    #[prost(string, tag = "1")]
    pub reason: String,
}
