//! A run's state: `fold(events)`. Pure: no clock, no randomness, no I/O.
//!
//! The state keeps the conversation as references to what the log holds (responses,
//! tool outputs), never a copy per turn, and a running digest of it, so the request
//! digest of every turn is computed in O(new content) on replay.

use std::sync::Arc;

use keel_providers::{Json, Message, Response, Usage};
use keel_storage::{RunId, RunStatus, RunSummary, Seq, Timestamp};
use keel_tools::{AllowRule, ApprovalForm, FormContext};

use crate::agent::hash_part;
use crate::error::NonDeterminism;
use crate::event::{
    AgentChanged, AgentSnapshot, Definition, DigestScheme, Event, FinishKind, Resolution,
    RunStarted, Stamped, Text,
};
use crate::ids::{CallId, Digest, StepKey, Turn};
use crate::recorded::recovery_policies;

/// Where a tool call stands.
#[derive(Clone, Debug, PartialEq)]
pub enum CallPhase {
    /// Nothing has happened yet.
    New,
    /// Waiting for a person at this step.
    Waiting {
        /// The step.
        step: StepKey,
    },
    /// A person approved it; it has not started since.
    Approved,
    /// A person denied it (or declined the question).
    Declined {
        /// Their note.
        note: Option<String>,
    },
    /// A person answered the question.
    Answered {
        /// The answer, as JSON text.
        answer: String,
    },
    /// It started (attempt from 1) and has not finished. Found on replay, this means
    /// the process died while the call ran.
    Running {
        /// Which attempt.
        attempt: u32,
    },
    /// It ended.
    Finished {
        /// The output.
        output: Text,
        /// Whether the model is told it failed.
        is_error: bool,
        /// How it ended.
        kind: FinishKind,
    },
}

/// One tool call of a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct CallState {
    /// The call.
    pub id: CallId,
    /// The provider's id for it (echoed in the result).
    pub tool_use_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments.
    pub input: Json,
    /// Where it stands.
    pub phase: CallPhase,
    /// How many times a person was asked about it.
    pub asks: u32,
    /// How many times it started.
    pub attempts: u32,
    /// The latest form shown for it.
    pub form: Option<Arc<ApprovalForm>>,
    /// The answers people gave, in order.
    pub resolutions: Vec<(StepKey, Resolution)>,
}

impl CallState {
    /// Whether the call ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, CallPhase::Finished { .. })
    }

    /// Whether the latest form is a question (answered rather than approved).
    pub fn is_question(&self) -> bool {
        self.form
            .as_ref()
            .is_some_and(|f| matches!(f.context, FormContext::Question { .. }))
    }
}

/// One LLM call and the tool calls its response made.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnState {
    /// The turn.
    pub turn: Turn,
    /// The recorded request digest, once the call was about to be sent.
    pub requested: Option<Digest>,
    /// The response, once it completed.
    pub response: Option<Arc<Response>>,
    /// How long the call took.
    pub latency_ms: u64,
    /// The tool calls, in the order the model made them.
    pub calls: Vec<CallState>,
}

impl TurnState {
    /// Whether every tool call of the turn ended.
    pub fn calls_finished(&self) -> bool {
        self.calls.iter().all(CallState::is_finished)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// With an output.
    Completed {
        /// The final text.
        output: String,
        /// The stop condition that ended it, if one did.
        stopped_by: Option<String>,
    },
    /// With an error.
    Failed {
        /// What went wrong.
        error: String,
        /// A stable code, where the error has one.
        code: Option<String>,
    },
    /// On request.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// The state of a run, folded from its events.
#[derive(Clone, Debug)]
pub struct RunState {
    run: RunId,
    started: Option<Arc<RunStarted>>,
    /// The agent in force: the one the run started with, or the one last adopted.
    agent: Option<Arc<AgentChanged>>,
    created_at: Timestamp,
    updated_at: Timestamp,
    next_seq: Seq,
    turns: Vec<TurnState>,
    rules: Vec<AllowRule>,
    end: Option<RunEnd>,
    usage: Usage,
    chain: [u8; 32],
    /// Kept as the log is folded, so a summary costs O(1) per append.
    responses: u32,
    waiting: u32,
    title: String,
}

impl RunState {
    /// The state of a run with no events yet.
    pub fn new(run: RunId) -> Self {
        Self {
            run,
            started: None,
            agent: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            next_seq: Seq::ZERO,
            turns: Vec::new(),
            rules: Vec::new(),
            end: None,
            usage: Usage::default(),
            chain: *blake3::hash(b"keel-conversation-v1").as_bytes(),
            responses: 0,
            waiting: 0,
            title: String::new(),
        }
    }

    /// The run.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The first event's content, once applied.
    pub fn started(&self) -> Option<&RunStarted> {
        self.started.as_deref()
    }

    /// The agent in force: as the run started, or as last adopted (`agent_changed`).
    pub fn agent(&self) -> Option<&AgentSnapshot> {
        match (&self.agent, &self.started) {
            (Some(changed), _) => Some(&changed.agent),
            (None, Some(started)) => Some(&started.agent),
            (None, None) => None,
        }
    }

    /// The full definition in force, when the run recorded one.
    pub fn definition(&self) -> Option<&Definition> {
        match (&self.agent, &self.started) {
            (Some(changed), _) => changed.definition.as_ref(),
            (None, Some(started)) => started.definition.as_ref(),
            (None, None) => None,
        }
    }

    /// The seq the next event gets.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// The turns so far.
    pub fn turns(&self) -> &[TurnState] {
        &self.turns
    }

    /// The standing rules recorded by "always" answers.
    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    /// How the run ended, if it did.
    pub fn end(&self) -> Option<&RunEnd> {
        self.end.as_ref()
    }

    /// Tokens over all turns.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// When the run started and last changed (wall clock, for people).
    pub fn times(&self) -> (Timestamp, Timestamp) {
        (self.created_at, self.updated_at)
    }

    /// How many LLM responses were recorded.
    pub fn responses(&self) -> u32 {
        self.responses
    }

    /// Whether a call of `name` ran in the latest turn.
    pub fn latest_turn_ran(&self, name: &str) -> bool {
        self.turns.last().is_some_and(|t| {
            t.calls.iter().any(|c| {
                c.name == name
                    && matches!(
                        c.phase,
                        CallPhase::Finished {
                            kind: FinishKind::Ran,
                            ..
                        }
                    )
            })
        })
    }

    /// The call with this id.
    pub fn call(&self, id: CallId) -> Option<&CallState> {
        self.turns
            .get(id.turn.0 as usize)?
            .calls
            .get(id.index as usize)
    }

    fn call_mut(&mut self, id: CallId) -> Option<&mut CallState> {
        self.turns
            .get_mut(id.turn.0 as usize)?
            .calls
            .get_mut(id.index as usize)
    }

    /// The steps waiting for a person, with their calls.
    pub fn waiting(&self) -> Vec<(&StepKey, &CallState)> {
        self.turns
            .iter()
            .flat_map(|t| t.calls.iter())
            .filter_map(|c| match &c.phase {
                CallPhase::Waiting { step } => Some((step, c)),
                _ => None,
            })
            .collect()
    }

    /// Where the run stands, as the store's summary reports it.
    pub fn status(&self) -> RunStatus {
        match &self.end {
            Some(RunEnd::Completed { .. }) => RunStatus::Completed,
            Some(RunEnd::Failed { .. }) => RunStatus::Failed,
            Some(RunEnd::Cancelled { .. }) => RunStatus::Cancelled,
            None if self.waiting > 0 => RunStatus::Suspended,
            None => RunStatus::Running,
        }
    }

    /// The summary to store with the next append.
    pub fn summary(&self) -> RunSummary {
        let (agent, title, parent) = match &self.started {
            Some(s) => (s.agent.id.clone(), self.title.clone(), s.parent),
            None => (String::new(), String::new(), None),
        };
        RunSummary {
            agent,
            status: self.status(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            turns: self.responses(),
            input_tokens: self.usage.total_input(),
            output_tokens: self.usage.output_tokens,
            parent,
            title,
        }
    }

    /// The digest of the request for the next LLM call: the agent's fingerprint and
    /// the conversation so far, chained message by message.
    pub fn request_digest(&self, turn: Turn) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hash_part(
            &mut hasher,
            self.agent().map_or("", |a| a.fingerprint.as_str()),
        );
        hasher.update(&self.chain);
        hasher.update(&turn.0.to_le_bytes());
        Digest(*hasher.finalize().as_bytes())
    }

    /// The last text the model produced (the run's output when it stops).
    pub fn last_text(&self) -> String {
        self.turns
            .iter()
            .rev()
            .filter_map(|t| t.response.as_ref())
            .map(|r| r.text())
            .find(|t| !t.is_empty())
            .unwrap_or_default()
    }

    /// The conversation as the model sees it, with blob outputs resolved by `blob`.
    /// Turns whose tool calls are not all finished contribute the assistant message
    /// but no results yet.
    pub fn messages(&self, blob: &dyn Fn(&Text) -> String) -> Vec<Message> {
        let messages = crate::conversation::Conversation::new().sync(self, blob);
        Arc::try_unwrap(messages).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Applies the next event, taking it (no copy). Fails if the event does not fit
    /// the history (a corrupt or hand-edited log, or events from another run).
    pub fn apply(&mut self, seq: Seq, stamped: Stamped) -> Result<(), Box<NonDeterminism>> {
        let (run, kind) = (self.run, stamped.event.kind());
        let bad = |what: &str| {
            Box::new(NonDeterminism::new(
                run,
                seq,
                "the log's history",
                format!("a `{kind}` event"),
                what.to_owned(),
            ))
        };
        if seq != self.next_seq {
            return Err(bad(&format!("an event at seq {}", self.next_seq)));
        }
        if self.end.is_some() {
            return Err(bad("no event after the run ended"));
        }
        let Stamped { at, event } = stamped;
        match event {
            Event::RunStarted(started) => {
                if self.started.is_some() {
                    return Err(bad("a single run_started event, at seq 0"));
                }
                self.chain_message(b"user", |h| {
                    h.update(started.input.as_bytes());
                });
                self.title = preview(&started.input);
                self.started = Some(Arc::from(started));
                self.created_at = at;
            }
            _ if self.started.is_none() => return Err(bad("run_started at seq 0")),
            Event::LlmRequested {
                turn,
                request_digest,
            } => {
                let expected = self.next_turn();
                match self.turns.last_mut() {
                    Some(t) if t.turn == turn && t.response.is_none() => {
                        t.requested = Some(request_digest);
                    }
                    _ if turn == expected => self.turns.push(TurnState {
                        turn,
                        requested: Some(request_digest),
                        response: None,
                        latency_ms: 0,
                        calls: Vec::new(),
                    }),
                    _ => return Err(bad(&format!("a request for turn {expected}"))),
                }
            }
            Event::LlmResponded {
                turn,
                response,
                latency_ms,
            } => {
                let Some(t) = self.turns.last_mut() else {
                    return Err(bad("a request before its response"));
                };
                if t.turn != turn || t.response.is_some() || t.requested.is_none() {
                    return Err(bad(&format!("a response to turn {}", t.turn)));
                }
                t.calls = response
                    .tool_uses()
                    .enumerate()
                    .map(|(i, (id, name, input))| CallState {
                        id: CallId::new(turn, i as u32),
                        tool_use_id: id.to_owned(),
                        name: name.to_owned(),
                        input: input.clone(),
                        phase: CallPhase::New,
                        asks: 0,
                        attempts: 0,
                        form: None,
                        resolutions: Vec::new(),
                    })
                    .collect();
                t.latency_ms = latency_ms;
                self.responses += 1;
                self.usage.add(&response.usage);
                let response: Arc<Response> = Arc::from(response);
                t.response = Some(response.clone());
                let scheme = self.digest_scheme();
                self.chain_message(b"assistant", |h| {
                    crate::codec::digest_content(scheme, &response.content, h);
                });
            }
            Event::ApprovalRequested { call, step, form } => {
                let c = self
                    .call_mut(call)
                    .ok_or_else(|| bad(&format!("call {call} to exist")))?;
                if !matches!(
                    c.phase,
                    CallPhase::New | CallPhase::Running { .. } | CallPhase::Approved
                ) {
                    return Err(bad(&format!("call {call} not to be waiting or finished")));
                }
                c.asks += 1;
                c.phase = CallPhase::Waiting { step };
                c.form = Some(Arc::from(form));
                self.waiting += 1;
            }
            Event::ApprovalResolved {
                call,
                step,
                resolution,
            } => {
                let c = self
                    .call_mut(call)
                    .ok_or_else(|| bad(&format!("call {call} to exist")))?;
                if !matches!(&c.phase, CallPhase::Waiting { step: s } if *s == step) {
                    return Err(bad(&format!("call {call} to be waiting at step {step}")));
                }
                c.phase = match (resolution.approved, c.is_question()) {
                    (false, _) => CallPhase::Declined {
                        note: resolution.note.clone(),
                    },
                    (true, true) => CallPhase::Answered {
                        answer: resolution.answer.clone().unwrap_or_default(),
                    },
                    (true, false) => CallPhase::Approved,
                };
                let remember = resolution.remember.clone();
                c.resolutions.push((step, resolution));
                self.waiting -= 1;
                if let Some(rule) = remember
                    && !self.rules.contains(&rule)
                {
                    self.rules.push(rule);
                }
            }
            Event::ToolStarted { call, attempt } => {
                let c = self
                    .call_mut(call)
                    .ok_or_else(|| bad(&format!("call {call} to exist")))?;
                if attempt != c.attempts + 1
                    || !matches!(
                        c.phase,
                        CallPhase::New | CallPhase::Approved | CallPhase::Running { .. }
                    )
                {
                    return Err(bad(&format!(
                        "call {call} to start attempt {} from a startable phase",
                        c.attempts + 1
                    )));
                }
                c.attempts = attempt;
                c.phase = CallPhase::Running { attempt };
            }
            Event::ToolFinished {
                call,
                output,
                is_error,
                kind,
                ..
            } => {
                let c = self
                    .call_mut(call)
                    .ok_or_else(|| bad(&format!("call {call} to exist")))?;
                if c.is_finished() {
                    return Err(bad(&format!("call {call} to finish once")));
                }
                c.phase = CallPhase::Finished {
                    output,
                    is_error,
                    kind,
                };
                let scheme = self.digest_scheme();
                let turn = &self.turns[call.turn.0 as usize];
                if turn.calls_finished() {
                    chain_into(&mut self.chain, b"tool_results", |hasher| {
                        for c in &turn.calls {
                            hash_part(hasher, &c.tool_use_id);
                            if let CallPhase::Finished {
                                output, is_error, ..
                            } = &c.phase
                            {
                                crate::codec::digest_text(scheme, output, hasher);
                                hasher.update(&[u8::from(*is_error)]);
                            }
                        }
                    });
                }
            }
            Event::RunCompleted { output, stopped_by } => {
                self.end = Some(RunEnd::Completed { output, stopped_by });
            }
            Event::RunFailed { error, code } => {
                self.end = Some(RunEnd::Failed { error, code });
            }
            Event::RunCancelled { reason } => {
                self.end = Some(RunEnd::Cancelled { reason });
            }
            Event::AgentChanged(changed) => {
                // A call cut short by a crash is recovered by its tool's policy in force
                // when it started; a change that keeps every policy (a newer Keel's tool
                // texts, say) may come before that recovery.
                let same_recovery = self
                    .agent()
                    .is_some_and(|a| recovery_policies(a) == recovery_policies(&changed.agent));
                if !same_recovery
                    && self
                        .turns
                        .iter()
                        .flat_map(|t| &t.calls)
                        .any(|c| matches!(c.phase, CallPhase::Running { .. }))
                {
                    return Err(bad(
                        "no call running when the definition changes the tools' recovery policies",
                    ));
                }
                self.agent = Some(Arc::from(changed));
            }
        }
        self.next_seq = seq.next();
        self.updated_at = at;
        Ok(())
    }

    /// How this run's conversation digest is computed (the scheme it started with).
    fn digest_scheme(&self) -> DigestScheme {
        self.started
            .as_ref()
            .map_or(DigestScheme::Records, |s| s.digest_scheme)
    }

    /// The turn the next LLM call will be.
    pub fn next_turn(&self) -> Turn {
        match self.turns.last() {
            Some(t) if t.response.is_none() => t.turn,
            Some(t) => Turn(t.turn.0 + 1),
            None => Turn(0),
        }
    }

    /// Chains one message into the conversation digest: `content` feeds the
    /// message's bytes after the digest so far and the role.
    fn chain_message(&mut self, role: &[u8], content: impl FnOnce(&mut blake3::Hasher)) {
        chain_into(&mut self.chain, role, content);
    }
}

fn chain_into(chain: &mut [u8; 32], role: &[u8], content: impl FnOnce(&mut blake3::Hasher)) {
    let mut hasher = blake3::Hasher::new();
    hasher.update(chain);
    hasher.update(&(role.len() as u64).to_le_bytes());
    hasher.update(role);
    content(&mut hasher);
    *chain = *hasher.finalize().as_bytes();
}

fn preview(input: &str) -> String {
    let line = input.lines().next().unwrap_or_default();
    if line.chars().count() > 80 {
        let cut: String = line.chars().take(79).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
