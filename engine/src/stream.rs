//! The live view of a run: typed events, recorded ones and ephemeral text deltas.

use keel_providers::{Json, Response};
use keel_storage::{RunId, Seq, Timestamp};
use keel_tools::ApprovalForm;
use serde::{Deserialize, Serialize};

use crate::event::{Event, FinishKind, Resolution, Stamped};
use crate::ids::{CallId, StepKey, Turn};
use crate::state::RunState;

/// One thing that happened in a run, as subscribers see it.
///
/// Every variant but the deltas is a recorded event (with its `seq`); deltas are
/// live only and never stored. `ToolCallRequested` is derived from the response that
/// made the call (requests are derived, not stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The run.
        run: RunId,
        /// The agent's id.
        agent: String,
        /// The input.
        input: String,
        /// For a fork: the parent run and the prefix length.
        parent: Option<(RunId, Seq)>,
    },
    /// An LLM call is about to be sent.
    LlmCallStarted {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The turn.
        turn: Turn,
    },
    /// More text from the model (live only).
    TextDelta {
        /// The turn.
        turn: Turn,
        /// The text.
        text: String,
    },
    /// The provider hit a transient fault and sends the call again (live only): the
    /// deltas of this turn so far belonged to the failed attempt.
    LlmRetrying {
        /// The turn.
        turn: Turn,
        /// The attempt about to start (2 for the first retry).
        attempt: u32,
        /// How long the provider waits first.
        delay_ms: u64,
        /// The fault.
        reason: String,
    },
    /// More visible reasoning from the model (live only).
    ThinkingDelta {
        /// The turn.
        turn: Turn,
        /// The text.
        text: String,
    },
    /// The model answered.
    LlmResponded {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The turn.
        turn: Turn,
        /// The response.
        response: Box<Response>,
        /// How long the call took.
        latency_ms: u64,
    },
    /// The model asked for a tool call.
    ToolCallRequested {
        /// Position in the log (of the response that asked).
        seq: Seq,
        /// The call.
        call: CallId,
        /// The tool.
        name: String,
        /// The arguments.
        input: Json,
    },
    /// The run waits for a person.
    ApprovalRequested {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The call.
        call: CallId,
        /// The step to answer.
        step: StepKey,
        /// What to show.
        form: Box<ApprovalForm>,
        /// Already answered further on in the log: a subscriber that joins late
        /// sees the history's approvals again, and must not answer these
        /// (`Error::AlreadyAnswered`). Always false for a live approval.
        #[serde(default)]
        answered: bool,
    },
    /// A person answered.
    ApprovalResolved {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The call.
        call: CallId,
        /// The step.
        step: StepKey,
        /// The answer.
        resolution: Resolution,
    },
    /// A tool call started.
    ToolStarted {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The call.
        call: CallId,
        /// The tool.
        name: String,
        /// Which attempt.
        attempt: u32,
    },
    /// A tool call ended.
    ToolFinished {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The call.
        call: CallId,
        /// The tool.
        name: String,
        /// The result text.
        output: String,
        /// Whether the model is told it failed.
        is_error: bool,
        /// How it ended.
        kind: FinishKind,
        /// How long it ran.
        duration_ms: u64,
    },
    /// The run finished.
    RunCompleted {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The output.
        output: String,
        /// The stop condition that ended it, if one did.
        stopped_by: Option<String>,
    },
    /// The run failed.
    RunFailed {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// What went wrong.
        error: String,
        /// A stable code, where there is one.
        code: Option<String>,
    },
    /// The run was cancelled.
    RunCancelled {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
    /// A person adopted another definition of the agent; what follows uses it.
    AgentChanged {
        /// Position in the log.
        seq: Seq,
        /// When.
        at: Timestamp,
        /// The agent's id.
        agent: String,
        /// Its model.
        model: String,
        /// Who changed it.
        by: String,
        /// Why.
        reason: String,
    },
}

impl RunEvent {
    /// Whether the run ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunEvent::RunCompleted { .. }
                | RunEvent::RunFailed { .. }
                | RunEvent::RunCancelled { .. }
        )
    }

    /// The seq of the recorded event this comes from; `None` for live deltas.
    pub fn seq(&self) -> Option<Seq> {
        match self {
            RunEvent::TextDelta { .. }
            | RunEvent::ThinkingDelta { .. }
            | RunEvent::LlmRetrying { .. } => None,
            RunEvent::RunStarted { seq, .. }
            | RunEvent::LlmCallStarted { seq, .. }
            | RunEvent::LlmResponded { seq, .. }
            | RunEvent::ToolCallRequested { seq, .. }
            | RunEvent::ApprovalRequested { seq, .. }
            | RunEvent::ApprovalResolved { seq, .. }
            | RunEvent::ToolStarted { seq, .. }
            | RunEvent::ToolFinished { seq, .. }
            | RunEvent::RunCompleted { seq, .. }
            | RunEvent::RunFailed { seq, .. }
            | RunEvent::RunCancelled { seq, .. }
            | RunEvent::AgentChanged { seq, .. } => Some(*seq),
        }
    }

    /// Builds the subscriber view of a recorded event. `state` is the run's state
    /// *after* applying it; `output` is the resolved text of a `ToolFinished`.
    pub(crate) fn from_recorded(
        state: &RunState,
        seq: Seq,
        stamped: &Stamped,
        output: Option<String>,
    ) -> Vec<RunEvent> {
        let at = stamped.at;
        let name_of = |call: CallId| state.call(call).map(|c| c.name.clone()).unwrap_or_default();
        match &stamped.event {
            Event::RunStarted(s) => vec![RunEvent::RunStarted {
                seq,
                at,
                run: state.run(),
                agent: s.agent.id.clone(),
                input: s.input.clone(),
                parent: s.parent,
            }],
            Event::LlmRequested { turn, .. } => {
                vec![RunEvent::LlmCallStarted {
                    seq,
                    at,
                    turn: *turn,
                }]
            }
            Event::LlmResponded {
                turn,
                response,
                latency_ms,
            } => {
                let mut out = vec![RunEvent::LlmResponded {
                    seq,
                    at,
                    turn: *turn,
                    response: response.clone(),
                    latency_ms: *latency_ms,
                }];
                out.extend(
                    response
                        .tool_uses()
                        .enumerate()
                        .map(|(i, (_, name, input))| RunEvent::ToolCallRequested {
                            seq,
                            call: CallId::new(*turn, i as u32),
                            name: name.to_owned(),
                            input: input.clone(),
                        }),
                );
                out
            }
            Event::ApprovalRequested { call, step, form } => vec![RunEvent::ApprovalRequested {
                seq,
                at,
                call: *call,
                step: step.clone(),
                form: form.clone(),
                answered: false,
            }],
            Event::ApprovalResolved {
                call,
                step,
                resolution,
            } => vec![RunEvent::ApprovalResolved {
                seq,
                at,
                call: *call,
                step: step.clone(),
                resolution: resolution.clone(),
            }],
            Event::ToolStarted { call, attempt } => vec![RunEvent::ToolStarted {
                seq,
                at,
                call: *call,
                name: name_of(*call),
                attempt: *attempt,
            }],
            Event::ToolFinished {
                call,
                is_error,
                kind,
                duration_ms,
                ..
            } => vec![RunEvent::ToolFinished {
                seq,
                at,
                call: *call,
                name: name_of(*call),
                output: output.unwrap_or_default(),
                is_error: *is_error,
                kind: *kind,
                duration_ms: *duration_ms,
            }],
            Event::RunCompleted { output, stopped_by } => vec![RunEvent::RunCompleted {
                seq,
                at,
                output: output.clone(),
                stopped_by: stopped_by.clone(),
            }],
            Event::RunFailed { error, code } => vec![RunEvent::RunFailed {
                seq,
                at,
                error: error.clone(),
                code: code.clone(),
            }],
            Event::RunCancelled { reason } => vec![RunEvent::RunCancelled {
                seq,
                at,
                reason: reason.clone(),
            }],
            Event::AgentChanged(c) => vec![RunEvent::AgentChanged {
                seq,
                at,
                agent: c.agent.id.clone(),
                model: c.agent.model.clone(),
                by: c.by.clone(),
                reason: c.reason.clone(),
            }],
        }
    }
}
