//! Rebuilding a run from its log: decode, fold, and (given the current agent)
//! check every recorded event against what the executor would decide.

use keel_storage::{Record, RunId};

use crate::agent::Agent;
use crate::codec::decode;
use crate::decide::{check_agent, check_recorded, decide};
use crate::error::Result;
use crate::event::Event;
use crate::state::RunState;

/// Folds `records` into a state. With `agent`, also checks determinism: the
/// recorded agent against the current definition, and every event against
/// `decide`; the first divergence is an `Error::NonDeterminism`.
pub fn replay(run: RunId, records: &[Record], agent: Option<&Agent>) -> Result<RunState> {
    let mut state = RunState::new(run);
    for record in records {
        let stamped = decode(run, record.seq, &record.bytes)?;
        if let Some(agent) = agent {
            if let Event::RunStarted(started) = &stamped.event {
                check_agent(&state, &started.agent, agent.snapshot())?;
            } else {
                let action = decide(&state, agent);
                check_recorded(&state, &action, record.seq, &stamped.event)?;
            }
        }
        state.apply(record.seq, &stamped)?;
    }
    Ok(state)
}
