//! The task that executes one run: it asks `decide` for the next action, performs
//! it, and appends the result. It exists only while the run has something to do;
//! a run waiting for a person has no driver.
//!
//! Commit points: every effect (an LLM call, a tool call) is preceded by a durable
//! append of its intent together with everything decided since the last effect, so
//! a turn with one tool costs two flushes: `[LlmResponded, ToolStarted]` and
//! `[ToolFinished, LlmRequested]`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use keel_providers::{LlmProvider, Request};
use keel_storage::{BlobHash, Seq, Timestamp};
use keel_tools::{Approval, ApprovalForm, CallContext, FormContext, ToolOutput, approval_digest};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::codec::encode;
use crate::conversation::Conversation;
use crate::decide::{Action, decide};
use crate::error::Result;
use crate::event::{Event, FinishKind, Stamped, Text};
use crate::ids::{CallId, Digest, StepKey, Turn};
use crate::runtime::{Claim, Keel};
use crate::state::{CallPhase, RunState};

/// How long a cancelled tool call gets to stop on its own before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Whether the driver goes on after an action.
enum Flow {
    Continue,
    Stop,
}

pub(crate) struct Driver {
    keel: Keel,
    agent: Agent,
    state: RunState,
    /// Events applied to `state` but not yet appended, encoded.
    pending: Vec<Bytes>,
    pending_blobs: Vec<Bytes>,
    /// The store's length of the run.
    committed: Seq,
    /// Texts of the blobs this run referenced, for building requests.
    blobs: HashMap<BlobHash, String>,
    /// The conversation sent to the model, kept up to date incrementally.
    conversation: Conversation,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    _claim: Claim,
}

impl Driver {
    pub(crate) fn new(keel: Keel, agent: Agent, state: RunState, claim: Claim) -> Self {
        let (cancel, reason) = keel.cancel_token(state.run());
        Self {
            committed: state.next_seq(),
            keel,
            agent,
            state,
            pending: Vec::new(),
            pending_blobs: Vec::new(),
            blobs: HashMap::new(),
            conversation: Conversation::new(),
            cancel,
            reason,
            _claim: claim,
        }
    }

    pub(crate) fn run_id(&self) -> keel_storage::RunId {
        self.state.run()
    }

    /// Applies an event to the state and queues it for the next commit.
    pub(crate) fn push(&mut self, event: Event) -> Result<()> {
        let stamped = Stamped {
            at: Timestamp::now(),
            event,
        };
        self.pending.push(encode(&stamped)?);
        self.state.apply(self.state.next_seq(), stamped)?;
        Ok(())
    }

    /// Appends the queued events, durably.
    pub(crate) async fn commit(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let encoded = std::mem::take(&mut self.pending);
        let blobs = std::mem::take(&mut self.pending_blobs);
        self.keel
            .append_raw(
                self.state.run(),
                self.committed,
                encoded,
                blobs,
                &self.state,
            )
            .await?;
        self.committed = self.state.next_seq();
        Ok(())
    }

    /// Executes the run until it ends, waits for a person, or is stopped. A failure
    /// is told to subscribers before the run is let go, so they never mistake it
    /// for a plain interruption.
    pub(crate) async fn run(mut self) -> Result<()> {
        self.keel.restore_tools(&self.agent, &self.state);
        let result = self.execute().await;
        if let Err(e) = &result {
            tracing::warn!(run = %self.state.run(), "run stopped: {e}");
            self.keel.report_fault(self.state.run(), &e.to_string());
        }
        result
    }

    async fn execute(&mut self) -> Result<()> {
        loop {
            if self.cancel.is_cancelled() {
                return self.cancelled().await;
            }
            if self.keel.inner.shutdown.is_cancelled() {
                return self.commit().await;
            }
            let flow = match decide(&self.state, &self.agent) {
                Action::Ended | Action::Wait { .. } => {
                    return self.commit().await;
                }
                Action::Complete { output, stopped_by } => {
                    self.push(Event::RunCompleted { output, stopped_by })?;
                    return self.commit().await;
                }
                Action::CallLlm { turn, digest } => self.call_llm(turn, digest).await?,
                Action::Check { call } => self.check(call).await?,
                Action::RunTool { call, attempt } => self.run_tool(call, attempt).await?,
                Action::AskAgain { call, step } => {
                    let form = self.form_for_again(call);
                    self.push(Event::ApprovalRequested {
                        call,
                        step,
                        form: Box::new(form),
                    })?;
                    Flow::Continue
                }
                Action::Finish {
                    call,
                    kind,
                    output,
                    is_error,
                } => {
                    let output = self.store_text(output);
                    self.push(Event::ToolFinished {
                        call,
                        output,
                        is_error,
                        kind,
                        duration_ms: 0,
                    })?;
                    Flow::Continue
                }
            };
            if let Flow::Stop = flow {
                return Ok(());
            }
        }
    }

    async fn cancelled(&mut self) -> Result<()> {
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| "cancelled".to_owned());
        self.push(Event::RunCancelled { reason })?;
        self.commit().await
    }

    async fn call_llm(&mut self, turn: Turn, digest: Digest) -> Result<Flow> {
        self.push(Event::LlmRequested {
            turn,
            request_digest: digest,
        })?;
        self.commit().await?;
        let request = self.request().await?;
        let sink = self.keel.delta_sink(self.state.run(), turn);
        let provider = self.agent.provider().clone();
        let cancel = self.cancel.clone();
        let shutdown = self.keel.inner.shutdown.clone();
        let started = Instant::now();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            () = shutdown.cancelled() => return Ok(Flow::Stop),
            r = provider.complete(&request, &sink) => Some(r),
        };
        match result {
            None => {
                self.cancelled().await?;
                Ok(Flow::Stop)
            }
            Some(Ok(response)) => {
                self.push(Event::LlmResponded {
                    turn,
                    response: Box::new(response),
                    latency_ms: started.elapsed().as_millis() as u64,
                })?;
                Ok(Flow::Continue)
            }
            Some(Err(e)) => {
                self.push(Event::RunFailed {
                    error: format!("the LLM provider failed: {e}"),
                    code: Some("KEEL-E200".to_owned()),
                })?;
                self.commit().await?;
                Ok(Flow::Stop)
            }
        }
    }

    async fn check(&mut self, call: CallId) -> Result<Flow> {
        let Some((name, input, asks)) = self
            .state
            .call(call)
            .map(|c| (c.name.clone(), c.input.clone(), c.asks))
        else {
            return Ok(Flow::Continue);
        };
        let Some(tool) = self.agent.tools().get(&name).cloned() else {
            return Ok(Flow::Continue);
        };
        match tool.approval_json(&input, self.state.rules()) {
            Err(message) => self.finish_now(call, message, FinishKind::InvalidCall)?,
            Ok(Approval::Refused(reason)) => self.finish_now(call, reason, FinishKind::Refused)?,
            Ok(Approval::NotNeeded) => return self.run_tool(call, 1).await,
            Ok(Approval::Needed(form)) => {
                self.push(Event::ApprovalRequested {
                    call,
                    step: StepKey::for_call(call, asks + 1),
                    form,
                })?;
            }
        }
        Ok(Flow::Continue)
    }

    fn finish_now(&mut self, call: CallId, message: String, kind: FinishKind) -> Result<()> {
        let output = self.store_text(message);
        self.push(Event::ToolFinished {
            call,
            output,
            is_error: true,
            kind,
            duration_ms: 0,
        })
    }

    async fn run_tool(&mut self, call: CallId, attempt: u32) -> Result<Flow> {
        let Some((name, input)) = self
            .state
            .call(call)
            .map(|c| (c.name.clone(), c.input.clone()))
        else {
            return Ok(Flow::Continue);
        };
        let Some(tool) = self.agent.tools().get(&name).cloned() else {
            return Ok(Flow::Continue);
        };
        self.push(Event::ToolStarted { call, attempt })?;
        self.commit().await?;
        let ctx = CallContext {
            run: self.state.run().to_string(),
            call_id: call.to_string(),
            cancel: self.cancel.child_token(),
        };
        let cancel = self.cancel.clone();
        let started = Instant::now();
        let future = AssertUnwindSafe(tool.call_json(input.0, ctx)).catch_unwind();
        tokio::pin!(future);
        let outcome = tokio::select! {
            r = &mut future => Some(r),
            () = cancel.cancelled() => None,
        };
        let panicked = |payload: Box<dyn std::any::Any + Send>| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            ToolOutput::error(format!("the tool `{name}` panicked: {message}"))
        };
        let (output, kind) = match outcome {
            Some(Ok(output)) => (output, FinishKind::Ran),
            Some(Err(payload)) => (panicked(payload), FinishKind::Ran),
            // Cancelled: the tool saw the token; give it a moment to stop cleanly.
            None => match tokio::time::timeout(CANCEL_GRACE, &mut future).await {
                Ok(Ok(output)) => (output, FinishKind::Cancelled),
                Ok(Err(payload)) => (panicked(payload), FinishKind::Cancelled),
                Err(_) => (
                    ToolOutput::error("the call was cancelled"),
                    FinishKind::Cancelled,
                ),
            },
        };
        let text = self.store_text(output.content);
        self.push(Event::ToolFinished {
            call,
            output: text,
            is_error: output.is_error || kind == FinishKind::Cancelled,
            kind,
            duration_ms: started.elapsed().as_millis() as u64,
        })?;
        if kind == FinishKind::Cancelled {
            self.cancelled().await?;
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// The request for the next LLM call: the conversation brought up to date (its
    /// new tool outputs read from the blob space where stored there).
    async fn request(&mut self) -> Result<Request> {
        let new_turns = self.conversation.pending_turn();
        for turn in self.state.turns().iter().skip(new_turns) {
            for call in &turn.calls {
                if let CallPhase::Finished {
                    output: text @ Text::Blob { hash, .. },
                    ..
                } = &call.phase
                    && !self.blobs.contains_key(hash)
                {
                    let resolved = self.keel.text(text).await?;
                    self.blobs.insert(*hash, resolved);
                }
            }
        }
        let blobs = &self.blobs;
        let messages = self.conversation.sync(&self.state, &|text| match text {
            Text::Inline(s) => s.clone(),
            Text::Blob { hash, .. } => blobs.get(hash).cloned().unwrap_or_default(),
        });
        let system = self.agent.system_prompt();
        Ok(Request {
            model: self.agent.model().to_owned(),
            system: (!system.is_empty()).then(|| system.to_owned()),
            messages,
            tools: self.agent.tool_definitions().to_vec(),
            max_tokens: self.agent.limits().max_tokens_per_call,
            temperature: self.agent.limits().temperature,
            stop_sequences: Vec::new(),
            thinking: None,
        })
    }

    /// The form to show when asking again about a call a crash interrupted.
    fn form_for_again(&self, call: CallId) -> ApprovalForm {
        let Some(state) = self.state.call(call) else {
            return generic_form("", &serde_json::Value::Null);
        };
        if let Some(form) = &state.form {
            return (**form).clone();
        }
        if let Some(tool) = self.agent.tools().get(&state.name)
            && let Ok(Approval::Needed(form)) = tool.approval_json(&state.input, &[])
        {
            return *form;
        }
        generic_form(&state.name, &state.input)
    }

    /// Keeps short texts inline and puts long ones in the blob space.
    fn store_text(&mut self, text: String) -> Text {
        if text.len() <= self.agent.limits().inline_output_bytes {
            return Text::Inline(text);
        }
        let bytes = Bytes::from(text.clone().into_bytes());
        let hash = BlobHash::of(&bytes);
        let len = bytes.len() as u64;
        self.pending_blobs.push(bytes);
        self.blobs.insert(hash, text);
        Text::Blob { hash, len }
    }
}

fn generic_form(tool: &str, args: &serde_json::Value) -> ApprovalForm {
    ApprovalForm {
        title: "APPROVAL REQUIRED (THE PREVIOUS ATTEMPT WAS INTERRUPTED)".to_owned(),
        tool: tool.to_owned(),
        context: FormContext::Call {
            args: serde_json::to_string_pretty(args).unwrap_or_default(),
        },
        fields: Vec::new(),
        digest: approval_digest(tool, args, ""),
    }
}
