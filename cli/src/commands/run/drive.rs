//! Driving a run at the terminal: stream it, answer its approvals (asking the person,
//! or `--approve-all`), and take over the store if its owner goes away.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use futures::StreamExt;
use futures::stream::BoxStream;
use keel_engine::{Decision, PendingStep, RunEvent, StepKey};
use keel_storage::{RunId, Seq};

use crate::api::{AgentBody, DecisionBody};
use crate::args::DriveArgs;
use crate::backend::Backend;
use crate::client::ClientError;
use crate::config::AgentSpec;
use crate::ui::live::Live;
use crate::ui::prompt;

/// What a driven run needs.
#[derive(Debug)]
pub struct Session {
    /// The store directory (to reconnect).
    pub dir: PathBuf,
    /// The run's agent, for a run recorded without its definition (the owner
    /// rebuilds every other run's agent from its record).
    pub spec: Option<AgentSpec>,
    /// The provider variables.
    pub env: BTreeMap<String, String>,
    /// The isolation of the run's commands, for the banner of what holds here.
    pub isolation: keel_tools::IsolationConfig,
    /// How to drive.
    pub drive: DriveArgs,
}

/// The exit status for a run left waiting without a terminal to ask.
pub const WAITING: u8 = 3;

/// Streams the run from `from`, answering approvals, until it ends (0 completed,
/// 1 failed or cancelled), waits with nobody to ask (3), or Ctrl-C (130).
pub async fn drive(backend: &mut Backend, run: RunId, from: Seq, session: &Session) -> Result<u8> {
    let mut live = Live::new(session.drive.json).with_isolation(&session.isolation);
    let mut lines = None;
    let mut from = from;
    loop {
        let mut stream = backend.events(run, from);
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = tokio::signal::ctrl_c() => {
                    live.pause();
                    eprintln!("\nkeel: interrupted; the run stays resumable: keel resume {run}");
                    return Ok(130);
                }
            };
            let event = match next {
                Some(Ok(event)) => event,
                None | Some(Err(ClientError::Gone(_))) => break,
                Some(Err(ClientError::Api(e))) => return Err(e.into()),
            };
            if let Some(seq) = event.seq() {
                from = seq.next();
            }
            live.event(&event);
            match event {
                RunEvent::ApprovalRequested {
                    step,
                    call,
                    form,
                    answered: false,
                    ..
                } => {
                    let pending = PendingStep {
                        step: step.clone(),
                        call,
                        tool: form.tool.clone(),
                        form: Arc::new(*form),
                    };
                    let decision = if session.drive.approve_all {
                        live.note(&format!(
                            "  -> {}: approved (--approve-all)",
                            pending.form.title.to_lowercase()
                        ));
                        Decision::approve()
                            .by("--approve-all")
                            .shown(pending.form.digest.clone())
                    } else if crate::ui::interactive() {
                        live.pause();
                        let input = lines.get_or_insert_with(prompt::stdin_lines);
                        let mut stderr = std::io::stderr();
                        tokio::select! {
                            decision = prompt::ask(&pending, input, &mut stderr) => {
                                decision?.by(crate::commands::who())
                            }
                            () = answered_elsewhere(&mut stream, &step, &mut live, &mut from) => {
                                live.note("  -> answered from another terminal");
                                continue;
                            }
                            _ = tokio::signal::ctrl_c() => {
                                eprintln!("\nkeel: interrupted; the run waits at step {step}: keel resume {run}");
                                return Ok(130);
                            }
                        }
                    } else {
                        live.pause();
                        waiting_message(run, &pending);
                        return Ok(WAITING);
                    };
                    let body = DecisionBody {
                        step,
                        decision,
                        continue_run: true,
                        agent: session.spec.clone(),
                        env: session.env.clone(),
                    };
                    match backend.decide(run, body).await {
                        Ok(_) => {}
                        Err(ClientError::Api(e)) if e.kind == "conflict" => {
                            live.note(&format!("keel: {e}"));
                        }
                        Err(ClientError::Gone(_)) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                RunEvent::RunCompleted { .. } => return Ok(0),
                RunEvent::RunFailed { .. } | RunEvent::RunCancelled { .. } => return Ok(1),
                _ => {}
            }
        }
        drop(stream);
        // The store's owner went away before the run ended (it was stopped or
        // killed): take the store over and continue the run here.
        live.note("keel: the store's owner went away; continuing the run here");
        *backend = Backend::connect(&session.dir).await?;
        let body = AgentBody {
            agent: session.spec.clone(),
            adopt: None,
            by: String::new(),
            env: session.env.clone(),
        };
        match backend.continue_run(run, body).await {
            Ok(_) => {}
            // Someone else continues it (another terminal took over first).
            Err(ClientError::Api(e)) if e.kind == "conflict" => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the stream shows `step` answered (by another terminal), printing
/// what else arrives meanwhile.
async fn answered_elsewhere(
    stream: &mut BoxStream<'static, Result<RunEvent, ClientError>>,
    step: &StepKey,
    live: &mut Live,
    from: &mut Seq,
) {
    while let Some(Ok(event)) = stream.next().await {
        if let Some(seq) = event.seq() {
            *from = seq.next();
        }
        if let RunEvent::ApprovalResolved { step: s, .. } = &event
            && s == step
        {
            return;
        }
        live.event(&event);
    }
    std::future::pending::<()>().await;
}

/// Tells a person without a terminal how to continue a waiting run.
pub fn waiting_message(run: RunId, step: &PendingStep) {
    let what = match &step.form.context {
        keel_tools::FormContext::Command { command, .. } => format!("command `{command}`"),
        keel_tools::FormContext::Write { path, .. } => format!("write {path}"),
        keel_tools::FormContext::Edit { path, .. } => format!("edit {path}"),
        keel_tools::FormContext::Question { question } => format!("question: {question}"),
        keel_tools::FormContext::Call { .. } => format!("call of {}", step.tool),
    };
    eprintln!(
        "\nkeel: run {run} is waiting for a person at step {} ({}: {what}).\n\
         There is no terminal to ask here. To continue:\n  \
         keel approve {run} --step {}            # or --deny --note \"why\", or --always\n  \
         keel resume {run}\n\
         or run again with --approve-all.",
        step.step, step.form.title, step.step
    );
}
