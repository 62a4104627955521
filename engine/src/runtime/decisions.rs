//! Answers to waiting runs, and continuing runs nothing executes.

use keel_storage::RunId;
use tokio::sync::broadcast;

use super::{Claim, Keel};
use crate::agent::Agent;
use crate::ask_user::validate_answer;
use crate::codec::decode;
use crate::decide::only_tool_texts_differ;
use crate::decision::Decision;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::{AgentChanged, Event, Resolution};
use crate::ids::StepKey;
use crate::replay::{replay_owned, replay_owned_recorded};
use crate::state::RunState;

use super::live::Live;

impl Keel {
    /// Records a person's decision at `step`, durably, and continues the run in this
    /// process. Returns once the decision is durable.
    ///
    /// Everything is checked before the decision is written — the run waits at
    /// `step`, the answer fits, and the run's agent can be had (registered, or
    /// rebuilt from the definition the run recorded) and matches the log — so an
    /// error never leaves a half-done answer behind.
    pub async fn resume(&self, run: RunId, step: &StepKey, decision: Decision) -> Result<()> {
        let (claim, state, agent) = self
            .record_decision_claimed(run, step, decision, true)
            .await?;
        let agent = agent.ok_or_else(|| self.unknown_agent(&state))?;
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
        self.record_decision_claimed(run, step, decision, false)
            .await
            .map(|_| ())
    }

    /// Records the decision; with `check`, the log is folded under the determinism
    /// check against the run's agent (which must be registered), so the state can go
    /// straight to a driver.
    async fn record_decision_claimed(
        &self,
        run: RunId,
        step: &StepKey,
        decision: Decision,
        check: bool,
    ) -> Result<(Claim, RunState, Option<Agent>)> {
        let claim = self.claim_when_idle(run).await?;
        let (state, agent) = self.load(run, check).await?;
        if check && agent.is_none() {
            return Err(self.unknown_agent(&state));
        }
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
            let agent = match &agent {
                Some(agent) => agent.clone(),
                None => self.agent_of(&state)?,
            };
            let tool = agent.tools().get(&call.name).ok_or_else(|| {
                Error::InvalidAnswer(format!("the agent has no tool `{}`", call.name))
            })?;
            let offered = tool
                .always_rules_json(&call.input)
                .map_err(Error::InvalidAnswer)?;
            let chosen = match &decision.rule {
                None => offered.into_iter().next().map(|(rule, _)| rule),
                Some(rule) => Some(
                    offered
                        .into_iter()
                        .map(|(r, _)| r)
                        .find(|r| r == rule)
                        .ok_or_else(|| {
                            Error::InvalidAnswer(format!(
                                "`{}` does not offer the rule \"{rule}\" for this call; refused",
                                call.name
                            ))
                        })?,
                ),
            };
            Some(chosen.ok_or_else(|| {
                Error::InvalidAnswer(format!("`{}` cannot be allowed \"always\"", call.name))
            })?)
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
        Ok((claim, state, agent))
    }

    /// Continues an unfinished run that nothing executes and that waits for nobody
    /// (after a crash or a shutdown, or after decisions recorded elsewhere).
    /// Returns whether it started executing.
    pub async fn continue_run(&self, run: RunId) -> Result<bool> {
        let claim = self.claim(run)?;
        let (state, agent) = self.load(run, true).await?;
        if state.end().is_some() || !state.waiting().is_empty() {
            return Ok(false);
        }
        let agent = agent.ok_or_else(|| self.unknown_agent(&state))?;
        self.spawn(Driver::new(self.clone(), agent, state, claim));
        Ok(true)
    }

    /// Reads and folds a run's log in one pass. With `check`, the run's agent is
    /// resolved first (rebuilt from the definition in force, or registered) and the
    /// fold checks determinism against it; the agent is returned, and the state is
    /// then fit for a driver. An agent that cannot be had is an error with `check`.
    async fn load(&self, run: RunId, check: bool) -> Result<(RunState, Option<Agent>)> {
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let events = records
            .iter()
            .map(|r| Ok((r.seq, decode(run, r.seq, &r.bytes)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut tools_changed = false;
        let agent = if check {
            let (mut snapshot, mut definition) = (None, None);
            for (_, stamped) in &events {
                match &stamped.event {
                    Event::RunStarted(s) => {
                        (snapshot, definition) = (Some(&s.agent), s.definition.as_ref())
                    }
                    Event::AgentChanged(c) => {
                        (snapshot, definition) = (Some(&c.agent), c.definition.as_ref())
                    }
                    _ => {}
                }
            }
            let agent = match self.agent_for(run, snapshot, definition) {
                Ok(agent) => Some(agent),
                Err(Error::UnknownAgent { .. }) => None,
                Err(e) => return Err(e),
            };
            tools_changed = matches!((snapshot, &agent), (Some(recorded), Some(agent))
                if only_tool_texts_differ(recorded, agent.snapshot()));
            agent
        } else {
            None
        };
        if !tools_changed {
            let state = replay_owned(run, events, agent.as_ref())?;
            return Ok((state, agent));
        }
        // Everything the person defined is as recorded; only this build describes its
        // tools differently (an upgrade). The run continues, saying so in its log: the
        // recorded events are checked against the recorded definitions, and the new
        // tool texts are recorded as in force from here (so replay stays exact).
        let mut state = replay_owned_recorded(run, events)?;
        if let (None, Some(agent)) = (state.end(), &agent) {
            let event = Event::AgentChanged(Box::new(AgentChanged {
                agent: agent.snapshot().clone(),
                definition: agent.definition().cloned(),
                by: "keel".to_owned(),
                reason: "this Keel build describes the agent's tools differently (an upgrade); \
                         everything else is as recorded"
                    .to_owned(),
            }));
            self.append_events(&mut state, vec![event], Vec::new())
                .await?;
        }
        Ok((state, agent))
    }

    fn unknown_agent(&self, state: &RunState) -> Error {
        Error::UnknownAgent {
            run: state.run(),
            agent: state
                .started()
                .map(|s| s.agent.id.clone())
                .unwrap_or_default(),
        }
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
