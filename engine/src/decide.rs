//! The replay executor's pure core: `decide(state) -> Action`, and the check that a
//! recorded event is what `decide` would have led to.
//!
//! The runtime performs each action and appends its result; resuming a run is
//! folding its log and continuing the same loop. On replay, every recorded event is
//! compared with the action the current definition decides at that point, so a
//! changed agent or engine is caught as a [`NonDeterminism`] instead of silently
//! diverging.

use keel_providers::StopReason;
use keel_tools::Recovery;

use crate::agent::Agent;
use crate::error::NonDeterminism;
use crate::event::{AgentSnapshot, Event, FinishKind};
use crate::ids::{CallId, Digest, StepKey, Turn};
use crate::state::{CallPhase, RunState};
use keel_storage::Seq;

/// What the run does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this turn's request to the model (recording the intent first).
    CallLlm {
        /// The turn.
        turn: Turn,
        /// The request's digest.
        digest: Digest,
    },
    /// Ask the tool whether this call may run (validate, approve, refuse).
    Check {
        /// The call.
        call: CallId,
    },
    /// Run the call (recording the intent first).
    RunTool {
        /// The call.
        call: CallId,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// Ask a person again about a call a crash interrupted.
    AskAgain {
        /// The call.
        call: CallId,
        /// The new step.
        step: StepKey,
    },
    /// End a call without running anything (denied, answered, interrupted, unknown).
    Finish {
        /// The call.
        call: CallId,
        /// How it ends.
        kind: FinishKind,
        /// What the model is told.
        output: String,
        /// Whether the model is told it failed.
        is_error: bool,
    },
    /// Wait for a person at these steps. The run suspends.
    Wait {
        /// The steps.
        steps: Vec<StepKey>,
    },
    /// End the run with an output.
    Complete {
        /// The final text.
        output: String,
        /// The stop condition that ended it, if one did.
        stopped_by: Option<String>,
    },
    /// Nothing: the run ended.
    Ended,
}

/// What a crash-interrupted call that is reported (not re-run) tells the model.
pub fn interrupted_message(attempt: u32) -> String {
    format!(
        "This call was interrupted: the process running it stopped before it finished (attempt {attempt}). \
         It may or may not have taken effect; check before trying again."
    )
}

/// Decides the next action. Pure: depends only on the state and the definition.
pub fn decide(state: &RunState, agent: &Agent) -> Action {
    if state.end().is_some() || state.started().is_none() {
        return Action::Ended;
    }
    let Some(turn) = state.turns().last() else {
        return call_llm(state, Turn(0));
    };
    let Some(response) = &turn.response else {
        return call_llm(state, turn.turn);
    };
    // Calls run one at a time, in the order the model made them.
    for call in &turn.calls {
        let tool = agent.tools().get(&call.name);
        match &call.phase {
            CallPhase::Finished { .. } => continue,
            CallPhase::New => {
                return match tool {
                    Some(_) => Action::Check { call: call.id },
                    None => Action::Finish {
                        call: call.id,
                        kind: FinishKind::InvalidCall,
                        output: format!(
                            "Error: there is no tool named `{}`. Available tools: {}.",
                            call.name,
                            agent.tools().names().join(", ")
                        ),
                        is_error: true,
                    },
                };
            }
            CallPhase::Waiting { step } => {
                return Action::Wait {
                    steps: vec![step.clone()],
                };
            }
            CallPhase::Approved => {
                return Action::RunTool {
                    call: call.id,
                    attempt: call.attempts + 1,
                };
            }
            CallPhase::Declined { note } => {
                let (what, kind) = if call.is_question() {
                    ("The user declined to answer.", FinishKind::Denied)
                } else {
                    (
                        "The user denied this call; it did not run.",
                        FinishKind::Denied,
                    )
                };
                let output = match note {
                    Some(n) if !n.trim().is_empty() => format!("{what} Their note: {n}"),
                    _ => what.to_owned(),
                };
                return Action::Finish {
                    call: call.id,
                    kind,
                    output,
                    is_error: true,
                };
            }
            CallPhase::Answered { answer } => {
                return Action::Finish {
                    call: call.id,
                    kind: FinishKind::Answered,
                    output: answer.clone(),
                    is_error: false,
                };
            }
            CallPhase::Running { attempt } => {
                // Found on replay: the process died while the call ran.
                let recovery = tool.map_or(Recovery::ReportInterrupted, |t| t.recovery());
                return match recovery {
                    Recovery::Rerun => Action::RunTool {
                        call: call.id,
                        attempt: attempt + 1,
                    },
                    Recovery::AskAgain => Action::AskAgain {
                        call: call.id,
                        step: StepKey::for_call(call.id, call.asks + 1),
                    },
                    Recovery::ReportInterrupted => Action::Finish {
                        call: call.id,
                        kind: FinishKind::Interrupted,
                        output: interrupted_message(*attempt),
                        is_error: true,
                    },
                };
            }
        }
    }
    if !turn.calls.is_empty() {
        if let Some(condition) = agent.stop_conditions().iter().find(|c| c.is_met(state)) {
            return Action::Complete {
                output: state.last_text(),
                stopped_by: Some(condition.to_string()),
            };
        }
        return call_llm(state, Turn(turn.turn.0 + 1));
    }
    if response.stop_reason == StopReason::PauseTurn {
        if let Some(condition) = agent.stop_conditions().iter().find(|c| c.is_met(state)) {
            return Action::Complete {
                output: state.last_text(),
                stopped_by: Some(condition.to_string()),
            };
        }
        return call_llm(state, Turn(turn.turn.0 + 1));
    }
    Action::Complete {
        output: state.last_text(),
        stopped_by: None,
    }
}

fn call_llm(state: &RunState, turn: Turn) -> Action {
    Action::CallLlm {
        turn,
        digest: state.request_digest(turn),
    }
}

/// Whether `current` differs from the recorded definition only in the text of its
/// tools (their descriptions or schemas: a newer Keel describes its built-in tools
/// differently), everything the person defined being the same.
pub(crate) fn only_tool_texts_differ(recorded: &AgentSnapshot, current: &AgentSnapshot) -> bool {
    recorded.fingerprint != current.fingerprint
        && recorded.tools_digest != current.tools_digest
        && recorded.id == current.id
        && recorded.model == current.model
        && recorded.system_prompt == current.system_prompt
        && recorded.tools == current.tools
        && recorded.max_tokens == current.max_tokens
        && recorded.stop_conditions == current.stop_conditions
}

/// Compares the agent a run recorded with the current definition.
pub fn check_agent(
    state: &RunState,
    recorded: &AgentSnapshot,
    current: &AgentSnapshot,
) -> Result<(), Box<NonDeterminism>> {
    if recorded.fingerprint == current.fingerprint {
        return Ok(());
    }
    let diff = |what: &str, r: String, c: String| {
        Box::new(NonDeterminism::new(state.run(), Seq::ZERO, what, r, c))
    };
    let quote = |s: &str| format!("{s:?}");
    Err(if recorded.id != current.id {
        diff("agent.id", quote(&recorded.id), quote(&current.id))
    } else if recorded.system_prompt != current.system_prompt {
        diff(
            "agent.system_prompt",
            quote(&recorded.system_prompt),
            quote(&current.system_prompt),
        )
    } else if recorded.model != current.model {
        diff("agent.model", quote(&recorded.model), quote(&current.model))
    } else if recorded.tools != current.tools {
        diff(
            "agent.tools",
            recorded.tools.join(", "),
            current.tools.join(", "),
        )
    } else if recorded.tools_digest != current.tools_digest {
        diff(
            "agent.tools (descriptions or schemas; digest)",
            recorded.tools_digest.clone(),
            current.tools_digest.clone(),
        )
    } else if recorded.max_tokens != current.max_tokens {
        diff(
            "agent.max_tokens",
            recorded.max_tokens.to_string(),
            current.max_tokens.to_string(),
        )
    } else if recorded.stop_conditions != current.stop_conditions {
        diff(
            "agent.stop_conditions",
            recorded.stop_conditions.join(", "),
            current.stop_conditions.join(", "),
        )
    } else {
        diff(
            "agent fingerprint",
            recorded.fingerprint.clone(),
            current.fingerprint.clone(),
        )
    })
}

fn describe(action: &Action) -> String {
    match action {
        Action::CallLlm { turn, digest } => {
            format!("llm_requested for turn {turn} (request digest {digest})")
        }
        Action::Check { call } => format!("a check of call {call} (approval, start or refusal)"),
        Action::RunTool { call, attempt } => {
            format!("tool_started for call {call} attempt {attempt}")
        }
        Action::AskAgain { call, step } => {
            format!("approval_requested for call {call} at step {step}")
        }
        Action::Finish { call, kind, .. } => format!("tool_finished for call {call} ({kind:?})"),
        Action::Wait { steps } => {
            let steps: Vec<&str> = steps.iter().map(StepKey::as_str).collect();
            format!("a wait for a person at {}", steps.join(", "))
        }
        Action::Complete { stopped_by, .. } => match stopped_by {
            Some(s) => format!("run_completed (stopped by {s})"),
            None => "run_completed".to_owned(),
        },
        Action::Ended => "nothing (the run ended)".to_owned(),
    }
}

fn describe_event(event: &Event) -> String {
    match event {
        Event::LlmRequested {
            turn,
            request_digest,
        } => format!("llm_requested for turn {turn} (request digest {request_digest})"),
        Event::LlmResponded { turn, .. } => format!("llm_responded for turn {turn}"),
        Event::ApprovalRequested { call, step, .. } => {
            format!("approval_requested for call {call} at step {step}")
        }
        Event::ApprovalResolved { call, step, .. } => {
            format!("approval_resolved for call {call} at step {step}")
        }
        Event::ToolStarted { call, attempt } => {
            format!("tool_started for call {call} attempt {attempt}")
        }
        Event::ToolFinished { call, kind, .. } => {
            format!("tool_finished for call {call} ({kind:?})")
        }
        Event::RunCompleted { stopped_by, .. } => match stopped_by {
            Some(s) => format!("run_completed (stopped by {s})"),
            None => "run_completed".to_owned(),
        },
        other => other.kind().to_owned(),
    }
}

/// Checks that `event`, recorded at `seq`, is what the run would do at this point
/// under the current definition (`action = decide(state)`).
pub fn check_recorded(
    state: &RunState,
    action: &Action,
    seq: Seq,
    event: &Event,
) -> Result<(), Box<NonDeterminism>> {
    let ok = match (action, event) {
        // Outside decisions: a failure, a cancellation or a person adopting another
        // definition may come at any point (apply refuses a change mid-call).
        (_, Event::RunFailed { .. } | Event::RunCancelled { .. } | Event::AgentChanged(_)) => true,
        // A call that is running ends the way it ended; decide only sees "running"
        // as a crash, which replay of a complete record is not.
        (
            _,
            Event::ToolFinished {
                call,
                kind: FinishKind::Ran | FinishKind::Cancelled,
                ..
            },
        ) => state
            .call(*call)
            .is_some_and(|c| matches!(c.phase, CallPhase::Running { .. })),
        (
            Action::CallLlm { turn, digest },
            Event::LlmRequested {
                turn: t,
                request_digest,
            },
        ) => {
            if turn == t && digest != request_digest {
                return Err(Box::new(NonDeterminism::new(
                    state.run(),
                    seq,
                    format!("the request digest of turn {turn}"),
                    request_digest.to_string(),
                    digest.to_string(),
                )));
            }
            turn == t
        }
        (Action::CallLlm { turn, .. }, Event::LlmResponded { turn: t, .. }) => {
            turn == t
                && state
                    .turns()
                    .last()
                    .is_some_and(|l| l.turn == *t && l.requested.is_some())
        }
        (Action::Check { call }, Event::ApprovalRequested { call: c, step, .. }) => {
            call == c
                && state
                    .call(*call)
                    .is_some_and(|s| *step == StepKey::for_call(*call, s.asks + 1))
        }
        (Action::Check { call }, Event::ToolStarted { call: c, attempt }) => {
            call == c && *attempt == 1
        }
        (
            Action::Check { call },
            Event::ToolFinished {
                call: c,
                kind: FinishKind::InvalidCall | FinishKind::Refused,
                ..
            },
        ) => call == c,
        (
            Action::RunTool { call, attempt },
            Event::ToolStarted {
                call: c,
                attempt: a,
            },
        ) => call == c && attempt == a,
        (
            Action::AskAgain { call, step },
            Event::ApprovalRequested {
                call: c, step: s, ..
            },
        ) => call == c && step == s,
        (
            Action::Finish { call, kind, .. },
            Event::ToolFinished {
                call: c, kind: k, ..
            },
        ) => call == c && kind == k,
        (Action::Wait { steps }, Event::ApprovalResolved { step, .. }) => steps.contains(step),
        (
            Action::Complete { stopped_by, .. },
            Event::RunCompleted {
                stopped_by: recorded,
                ..
            },
        ) => stopped_by == recorded,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(NonDeterminism::new(
            state.run(),
            seq,
            "the next step",
            describe_event(event),
            describe(action),
        )))
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
