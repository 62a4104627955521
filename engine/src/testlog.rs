//! A small log builder for the pure core's unit tests (`state_tests.rs`,
//! `decide_tests.rs`): readable histories, folded without a store.

use keel_providers::{ContentBlock, Json, Response, StopReason, Usage};
use keel_storage::{RunId, Timestamp};
use keel_tools::{
    AllowRule, ApprovalForm, CallContext, FormContext, Recovery, Tool, ToolOutput, ToolSpec,
};

use crate::agent::{Agent, StopCondition};
use crate::event::{DigestScheme, Event, FinishKind, Resolution, RunStarted, Stamped, Text};
use crate::ids::{CallId, StepKey, Turn};
use crate::state::RunState;

/// A tool that does nothing, with the recovery policy given.
pub(crate) struct Fake {
    pub name: &'static str,
    pub recovery: Recovery,
}

impl Tool for Fake {
    type Args = serde_json::Value;
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.into(),
            description: "a fake".into(),
            input_schema: serde_json::json!({"type": "object"}),
        }
    }
    fn recovery(&self) -> Recovery {
        self.recovery
    }
    async fn call(&self, _args: serde_json::Value, _ctx: CallContext) -> ToolOutput {
        ToolOutput::ok("ok")
    }
}

/// An agent with `exec` (report interrupted), `read` (re-run) and `ask` (ask again).
pub(crate) fn agent(stop: Option<StopCondition>) -> Agent {
    let mut b = Agent::builder("t")
        .model("m")
        .tool(Fake {
            name: "exec",
            recovery: Recovery::ReportInterrupted,
        })
        .tool(Fake {
            name: "read",
            recovery: Recovery::Rerun,
        })
        .tool(Fake {
            name: "ask",
            recovery: Recovery::AskAgain,
        });
    if let Some(stop) = stop {
        b = b.stop_when(stop);
    }
    b.build()
}

/// The call `turn.index`.
pub(crate) fn call(turn: u32, index: u32) -> CallId {
    CallId::new(Turn(turn), index)
}

/// A form for a command.
pub(crate) fn form() -> Box<ApprovalForm> {
    Box::new(ApprovalForm {
        title: "COMMAND APPROVAL REQUIRED".into(),
        tool: "exec".into(),
        context: FormContext::Command {
            command: "ls".into(),
            cwd: "/ws".into(),
            reason: "approval-always".into(),
            matched_rule: None,
        },
        fields: Vec::new(),
        digest: "d".into(),
    })
}

/// A log being written, with the state it folds to.
pub(crate) struct Log {
    pub agent: Agent,
    pub events: Vec<Stamped>,
    pub state: RunState,
}

impl Log {
    /// A run of [`agent`] started on "go".
    pub fn new() -> Self {
        Self::with_agent(agent(None))
    }

    /// A run of `agent` started on "go".
    pub fn with_agent(agent: Agent) -> Self {
        let mut log = Self {
            state: RunState::new(RunId::from_bytes([7; 16])),
            events: Vec::new(),
            agent,
        };
        let started = RunStarted {
            agent: log.agent.snapshot().clone(),
            input: "go".into(),
            parent: None,
            digest_scheme: DigestScheme::Records,
            definition: log.agent.definition().cloned(),
        };
        log.push(Event::RunStarted(Box::new(started)));
        log
    }

    /// Appends an event, folding it.
    pub fn push(&mut self, event: Event) -> &mut Self {
        let stamped = Stamped {
            at: Timestamp(self.events.len() as u64),
            event,
        };
        self.state
            .apply(self.state.next_seq(), stamped.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        self.events.push(stamped);
        self
    }

    /// `llm_requested` for the next turn, with the digest the state computes.
    pub fn request(&mut self) -> &mut Self {
        let turn = self.state.next_turn();
        let digest = self.state.request_digest(turn);
        self.push(Event::LlmRequested {
            turn,
            request_digest: digest,
        })
    }

    /// `llm_responded` for the pending turn: some text and calls of `tools`.
    pub fn respond(&mut self, tools: &[&str]) -> &mut Self {
        let turn = self.state.next_turn();
        let mut content = vec![ContentBlock::text("ok")];
        for (i, name) in tools.iter().enumerate() {
            content.push(ContentBlock::ToolUse {
                id: format!("t{}.{i}", turn.0),
                name: (*name).into(),
                input: Json(serde_json::json!({})),
            });
        }
        let stop_reason = if tools.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        };
        self.push(Event::LlmResponded {
            turn,
            response: Box::new(Response {
                id: "r".into(),
                model: "m".into(),
                content,
                stop_reason,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                },
            }),
            latency_ms: 1,
        })
    }

    /// A request and its response, in one go.
    pub fn turn(&mut self, tools: &[&str]) -> &mut Self {
        self.request().respond(tools)
    }

    pub fn ask(&mut self, call: CallId, step: &str) -> &mut Self {
        self.push(Event::ApprovalRequested {
            call,
            step: StepKey::from(step),
            form: form(),
        })
    }

    pub fn answer(&mut self, call: CallId, step: &str, approved: bool) -> &mut Self {
        self.push(Event::ApprovalResolved {
            call,
            step: StepKey::from(step),
            resolution: resolution(approved, None),
        })
    }

    pub fn start(&mut self, call: CallId, attempt: u32) -> &mut Self {
        self.push(Event::ToolStarted { call, attempt })
    }

    pub fn finish(&mut self, call: CallId, kind: FinishKind) -> &mut Self {
        self.push(Event::ToolFinished {
            call,
            output: Text::Inline("out".into()),
            is_error: kind != FinishKind::Ran,
            kind,
            duration_ms: 1,
        })
    }
}

pub(crate) fn resolution(approved: bool, remember: Option<AllowRule>) -> Resolution {
    Resolution {
        approved,
        note: (!approved).then(|| "no".to_owned()),
        remember,
        answer: None,
        by: "me".into(),
    }
}
