//! Commands on one run.

pub mod approve;
pub mod cancel;
pub mod drive;
pub mod export;
pub mod fork;
pub mod log;
pub mod replay;
pub mod resume;
pub mod show;
pub mod start;

use anyhow::{Context, Result};
use keel_engine::{RunState, Stamped, replay_events};
use keel_storage::{RunId, Seq};

use crate::backend::Backend;
use crate::config::{AgentSpec, Agents};

/// A run's log and its folded state.
pub async fn load(backend: &Backend, run: RunId) -> Result<(Vec<(Seq, Stamped)>, RunState)> {
    let events = backend.log(run).await?;
    let state = replay_events(run, events.iter().map(|(s, e)| (*s, e)), None)
        .with_context(|| format!("reading the log of run {run}"))?;
    Ok((events, state))
}

/// The configured agent a run belongs to.
pub fn agent_of(agents: &Agents, state: &RunState) -> Result<AgentSpec> {
    let id = state
        .started()
        .map(|s| s.agent.id.clone())
        .unwrap_or_default();
    agents.get(&id).map_err(|e| {
        crate::usage(e.context(format!(
            "run {} belongs to agent `{id}`, which this configuration does not declare",
            state.run()
        )))
    })
}
