//! Answers to waiting runs, and continuing runs nothing executes.

use keel_storage::RunId;
use tokio::sync::broadcast;

use super::{Claim, Keel};
use crate::ask_user::validate_answer;
use crate::decision::Decision;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::{Event, Resolution};
use crate::ids::StepKey;
use crate::replay::replay;
use crate::state::RunState;

use super::live::Live;

impl Keel {
    /// Records a person's decision at `step`, durably, and continues the run in this
    /// process. Returns once the decision is durable.
    pub async fn resume(&self, run: RunId, step: &StepKey, decision: Decision) -> Result<()> {
        let (claim, state) = self.record_decision_claimed(run, step, decision).await?;
        let agent = self.agent_of(&state)?;
        // The log was folded without checks to record the decision; continuing
        // requires the full determinism check.
        let records = self.read_log(run).await?;
        let state = replay(run, &records, Some(&agent))?;
        self.spawn(Driver::new(self.clone(), agent, state, claim));
        Ok(())
    }

    /// Records a person's decision at `step`, durably, without continuing the run
    /// (another process, or a later `continue_run`, continues it).
    pub async fn record_decision(
        &self,
        run: RunId,
        step: &StepKey,
        decision: Decision,
    ) -> Result<()> {
        self.record_decision_claimed(run, step, decision)
            .await
            .map(|_| ())
    }

    async fn record_decision_claimed(
        &self,
        run: RunId,
        step: &StepKey,
        decision: Decision,
    ) -> Result<(Claim, RunState)> {
        let claim = self.claim_when_idle(run).await?;
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let state = replay(run, &records, None)?;
        if state.end().is_some() {
            return Err(Error::Ended {
                run,
                status: state.status(),
            });
        }
        let waiting: Vec<(StepKey, crate::state::CallState)> = state
            .waiting()
            .into_iter()
            .map(|(s, c)| (s.clone(), c.clone()))
            .collect();
        let Some((_, call)) = waiting.iter().find(|(s, _)| s == step) else {
            let answered = state
                .turns()
                .iter()
                .flat_map(|t| t.calls.iter())
                .any(|c| c.resolutions.iter().any(|(s, _)| s == step));
            return Err(if answered {
                Error::AlreadyAnswered {
                    run,
                    step: step.clone(),
                }
            } else {
                Error::UnknownStep {
                    run,
                    step: step.clone(),
                    waiting: waiting.into_iter().map(|(s, _)| s).collect(),
                }
            });
        };
        let form = call.form.clone().ok_or_else(|| Error::UnknownStep {
            run,
            step: step.clone(),
            waiting: Vec::new(),
        })?;
        if let Some(shown) = &decision.shown_digest
            && *shown != form.digest
        {
            return Err(Error::DigestMismatch {
                run,
                step: step.clone(),
                shown: shown.clone(),
                waiting: form.digest.clone(),
            });
        }
        let answer = match (&decision.answer, call.is_question() && decision.approved) {
            (Some(values), true) => {
                Some(validate_answer(&form, values).map_err(Error::InvalidAnswer)?)
            }
            (None, true) => {
                return Err(Error::InvalidAnswer(
                    "this step is a question: give an answer (field values), or decline it"
                        .to_owned(),
                ));
            }
            (_, false) => None,
        };
        let remember = if decision.always && decision.approved && !call.is_question() {
            let agent = self.agent_of(&state)?;
            let tool = agent.tools().get(&call.name).ok_or_else(|| {
                Error::InvalidAnswer(format!("the agent has no tool `{}`", call.name))
            })?;
            Some(
                tool.always_rule_json(&call.input)
                    .map_err(Error::InvalidAnswer)?,
            )
        } else {
            None
        };
        let event = Event::ApprovalResolved {
            call: call.id,
            step: step.clone(),
            resolution: Resolution {
                approved: decision.approved,
                note: decision.note.filter(|n| !n.trim().is_empty()),
                remember,
                answer,
                by: decision.by.unwrap_or_else(|| "user".to_owned()),
            },
        };
        let mut state = state;
        self.append_events(&mut state, vec![event], Vec::new())
            .await?;
        Ok((claim, state))
    }

    /// Continues an unfinished run that nothing executes and that waits for nobody
    /// (after a crash or a shutdown, or after decisions recorded elsewhere).
    /// Returns whether it started executing.
    pub async fn continue_run(&self, run: RunId) -> Result<bool> {
        let claim = self.claim(run)?;
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let plain = replay(run, &records, None)?;
        if plain.end().is_some() || !plain.waiting().is_empty() {
            return Ok(false);
        }
        let agent = self.agent_of(&plain)?;
        let state = replay(run, &records, Some(&agent))?;
        self.spawn(Driver::new(self.clone(), agent, state, claim));
        Ok(true)
    }

    /// Claims the run, waiting a moment if it is just suspending: a driver publishes
    /// the event that suspends the run an instant before it lets go of it, and a
    /// quick answer must not fail for that.
    async fn claim_when_idle(&self, run: RunId) -> Result<Claim> {
        let mut rx = self.subscribe(run);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match self.claim(run) {
                Err(Error::Busy(_)) => {
                    let idle = async {
                        loop {
                            match rx.recv().await {
                                Ok(Live::Idle) | Err(broadcast::error::RecvError::Closed) => break,
                                _ => {}
                            }
                        }
                    };
                    if tokio::time::timeout_at(deadline, idle).await.is_err() {
                        return Err(Error::Busy(run));
                    }
                }
                other => return other,
            }
        }
    }
}
