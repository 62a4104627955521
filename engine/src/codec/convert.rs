//! Today's [`Event`] to and from the records of format 2 (`records.rs`): the
//! envelope and each event kind. Nested shapes are in `parts.rs`.

use keel_storage::{RunId, Seq, Timestamp};

use super::parts::{
    call_from, call_to, digest32, form_from, form_to, need, resolution_from, resolution_to,
    response_from, response_to, text_from, text_to,
};
use super::records::*;
use keel_tools::Recovery;

use crate::event::{
    AgentChanged, AgentSnapshot, Definition, DigestScheme, Event, FinishKind, RunStarted, Stamped,
};
use crate::ids::{Digest, StepKey, Turn};

/// Why a record's content is not an event this build can hold.
#[derive(Debug)]
pub(crate) enum Invalid {
    /// The bytes are well-formed but wrong (a missing part, a bad length).
    Corrupt(String),
    /// A part names a kind this build does not know: written by a newer Keel.
    Newer(String),
}

pub(crate) type Result<T> = std::result::Result<T, Invalid>;

/// The record of an event.
pub(crate) fn to_record(stamped: &Stamped) -> StampedRecord {
    let event = match &stamped.event {
        Event::RunStarted(s) => EventRecord::RunStarted(RunStartedRecord {
            agent: Some(snapshot_to(&s.agent)),
            input: s.input.clone(),
            parent: s.parent.map(|(run, at)| ParentRecord {
                run: run.as_bytes().to_vec(),
                at: at.0,
            }),
            digest_scheme: match s.digest_scheme {
                DigestScheme::Records => 0,
                DigestScheme::Postcard1 => 1,
            },
            definition: s.definition.as_ref().map(definition_to),
        }),
        Event::LlmRequested {
            turn,
            request_digest,
        } => EventRecord::LlmRequested(LlmRequestedRecord {
            turn: turn.0,
            request_digest: request_digest.0.to_vec(),
        }),
        Event::LlmResponded {
            turn,
            response,
            latency_ms,
        } => EventRecord::LlmResponded(LlmRespondedRecord {
            turn: turn.0,
            response: Some(response_to(response)),
            latency_ms: *latency_ms,
        }),
        Event::ApprovalRequested { call, step, form } => {
            EventRecord::ApprovalRequested(ApprovalRequestedRecord {
                call: Some(call_to(*call)),
                step: step.0.clone(),
                form: Some(form_to(form)),
            })
        }
        Event::ApprovalResolved {
            call,
            step,
            resolution,
        } => EventRecord::ApprovalResolved(ApprovalResolvedRecord {
            call: Some(call_to(*call)),
            step: step.0.clone(),
            resolution: Some(resolution_to(resolution)),
        }),
        Event::ToolStarted { call, attempt } => EventRecord::ToolStarted(ToolStartedRecord {
            call: Some(call_to(*call)),
            attempt: *attempt,
        }),
        Event::ToolFinished {
            call,
            output,
            is_error,
            kind,
            duration_ms,
        } => EventRecord::ToolFinished(ToolFinishedRecord {
            call: Some(call_to(*call)),
            output: Some(text_to(output)),
            is_error: *is_error,
            kind: finish_kind_to(*kind),
            duration_ms: *duration_ms,
        }),
        Event::RunCompleted { output, stopped_by } => {
            EventRecord::RunCompleted(RunCompletedRecord {
                output: output.clone(),
                stopped_by: stopped_by.clone(),
            })
        }
        Event::RunFailed { error, code } => EventRecord::RunFailed(RunFailedRecord {
            error: error.clone(),
            code: code.clone(),
        }),
        Event::RunCancelled { reason } => EventRecord::RunCancelled(RunCancelledRecord {
            reason: reason.clone(),
        }),
        Event::AgentChanged(c) => EventRecord::AgentChanged(AgentChangedRecord {
            agent: Some(snapshot_to(&c.agent)),
            definition: c.definition.as_ref().map(definition_to),
            by: c.by.clone(),
            reason: c.reason.clone(),
        }),
    };
    StampedRecord {
        at: stamped.at.0,
        event: Some(event),
    }
}

/// The event of a record. A record without an event kind this build knows is
/// refused by the caller, which names the kind's tag.
pub(crate) fn from_record(record: StampedRecord) -> Result<Stamped> {
    let event = match need(record.event, "an event")? {
        EventRecord::RunStarted(s) => Event::RunStarted(Box::new(RunStarted {
            agent: snapshot_from(need(s.agent, "the agent of run_started")?)?,
            input: s.input,
            parent: match s.parent {
                Some(p) => Some((run_id(&p.run)?, Seq(p.at))),
                None => None,
            },
            digest_scheme: match s.digest_scheme {
                0 => DigestScheme::Records,
                1 => DigestScheme::Postcard1,
                n => return Err(Invalid::Newer(format!("digest scheme {n}"))),
            },
            definition: s.definition.map(definition_from),
        })),
        EventRecord::LlmRequested(r) => Event::LlmRequested {
            turn: Turn(r.turn),
            request_digest: Digest(digest32(&r.request_digest, "request digest")?),
        },
        EventRecord::LlmResponded(r) => Event::LlmResponded {
            turn: Turn(r.turn),
            response: Box::new(response_from(need(r.response, "the response")?)?),
            latency_ms: r.latency_ms,
        },
        EventRecord::ApprovalRequested(r) => Event::ApprovalRequested {
            call: call_from(r.call)?,
            step: StepKey(r.step),
            form: Box::new(form_from(need(r.form, "the form")?)?),
        },
        EventRecord::ApprovalResolved(r) => Event::ApprovalResolved {
            call: call_from(r.call)?,
            step: StepKey(r.step),
            resolution: resolution_from(need(r.resolution, "the resolution")?)?,
        },
        EventRecord::ToolStarted(r) => Event::ToolStarted {
            call: call_from(r.call)?,
            attempt: r.attempt,
        },
        EventRecord::ToolFinished(r) => Event::ToolFinished {
            call: call_from(r.call)?,
            output: text_from(need(r.output, "the output")?)?,
            is_error: r.is_error,
            kind: finish_kind_from(r.kind)?,
            duration_ms: r.duration_ms,
        },
        EventRecord::RunCompleted(r) => Event::RunCompleted {
            output: r.output,
            stopped_by: r.stopped_by,
        },
        EventRecord::RunFailed(r) => Event::RunFailed {
            error: r.error,
            code: r.code,
        },
        EventRecord::RunCancelled(r) => Event::RunCancelled { reason: r.reason },
        EventRecord::AgentChanged(r) => Event::AgentChanged(Box::new(AgentChanged {
            agent: snapshot_from(need(r.agent, "the agent of agent_changed")?)?,
            definition: r.definition.map(definition_from),
            by: r.by,
            reason: r.reason,
        })),
    };
    Ok(Stamped {
        at: Timestamp(record.at),
        event,
    })
}

fn run_id(bytes: &[u8]) -> Result<RunId> {
    <[u8; 16]>::try_from(bytes)
        .map(RunId::from_bytes)
        .map_err(|_| Invalid::Corrupt(format!("a run id of {} bytes, not 16", bytes.len())))
}

fn snapshot_to(a: &AgentSnapshot) -> AgentSnapshotRecord {
    AgentSnapshotRecord {
        id: a.id.clone(),
        provider: a.provider.clone(),
        model: a.model.clone(),
        system_prompt: a.system_prompt.clone(),
        tools: a.tools.clone(),
        tools_digest: a.tools_digest.clone(),
        max_tokens: a.max_tokens,
        stop_conditions: a.stop_conditions.clone(),
        fingerprint: a.fingerprint.clone(),
        recovery: a.recovery.iter().map(|r| recovery_to(*r)).collect(),
    }
}

fn snapshot_from(a: AgentSnapshotRecord) -> Result<AgentSnapshot> {
    Ok(AgentSnapshot {
        id: a.id,
        provider: a.provider,
        model: a.model,
        system_prompt: a.system_prompt,
        tools: a.tools,
        tools_digest: a.tools_digest,
        max_tokens: a.max_tokens,
        stop_conditions: a.stop_conditions,
        fingerprint: a.fingerprint,
        recovery: a
            .recovery
            .into_iter()
            .map(recovery_from)
            .collect::<Result<_>>()?,
    })
}

fn recovery_to(r: Recovery) -> u32 {
    match r {
        Recovery::Rerun => 1,
        Recovery::AskAgain => 2,
        Recovery::ReportInterrupted => 3,
    }
}

fn recovery_from(n: u32) -> Result<Recovery> {
    Ok(match n {
        1 => Recovery::Rerun,
        2 => Recovery::AskAgain,
        3 => Recovery::ReportInterrupted,
        0 => return Err(Invalid::Corrupt("a recovery policy of 0".into())),
        n => return Err(Invalid::Newer(format!("recovery policy {n}"))),
    })
}

fn definition_to(d: &Definition) -> DefinitionRecord {
    DefinitionRecord {
        kind: d.kind.clone(),
        document: d.document.clone(),
    }
}

fn definition_from(d: DefinitionRecord) -> Definition {
    Definition {
        kind: d.kind,
        document: d.document,
    }
}

fn finish_kind_to(kind: FinishKind) -> u32 {
    match kind {
        FinishKind::Ran => 1,
        FinishKind::Denied => 2,
        FinishKind::Refused => 3,
        FinishKind::Interrupted => 4,
        FinishKind::InvalidCall => 5,
        FinishKind::Answered => 6,
        FinishKind::Cancelled => 7,
    }
}

fn finish_kind_from(n: u32) -> Result<FinishKind> {
    Ok(match n {
        1 => FinishKind::Ran,
        2 => FinishKind::Denied,
        3 => FinishKind::Refused,
        4 => FinishKind::Interrupted,
        5 => FinishKind::InvalidCall,
        6 => FinishKind::Answered,
        7 => FinishKind::Cancelled,
        0 => return Err(Invalid::Corrupt("a tool_finished without its kind".into())),
        n => return Err(Invalid::Newer(format!("tool finish kind {n}"))),
    })
}
