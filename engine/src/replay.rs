//! Rebuilding a run from its log: decode, fold, and (given the current agent)
//! check every recorded event against what the executor would decide.

use keel_storage::{Record, RunId, RunStatus, Seq};

use crate::agent::Agent;
use crate::codec::decode;
use crate::decide::{check_agent, check_recorded, decide};
use crate::error::{NonDeterminism, Result};
use crate::event::{Event, Stamped};
use crate::state::RunState;

/// Folds `records` into a state. With `agent`, also checks determinism: the
/// recorded agent against the current definition, and every event against
/// `decide`; the first divergence is an `Error::NonDeterminism`.
pub fn replay(run: RunId, records: &[Record], agent: Option<&Agent>) -> Result<RunState> {
    let mut state = RunState::new(run);
    for record in records {
        let stamped = decode(run, record.seq, &record.bytes)?;
        step(&mut state, record.seq, stamped, agent)?;
    }
    Ok(state)
}

/// [`replay`] over events already decoded (e.g. fetched from another process).
pub fn replay_events<'a>(
    run: RunId,
    events: impl IntoIterator<Item = (Seq, &'a Stamped)>,
    agent: Option<&Agent>,
) -> Result<RunState> {
    let mut state = RunState::new(run);
    for (seq, stamped) in events {
        step(&mut state, seq, stamped.clone(), agent)?;
    }
    Ok(state)
}

fn step(state: &mut RunState, seq: Seq, stamped: Stamped, agent: Option<&Agent>) -> Result<()> {
    if let Some(agent) = agent {
        if let Event::RunStarted(started) = &stamped.event {
            check_agent(state, &started.agent, agent.snapshot())?;
        } else {
            let action = decide(state, agent);
            check_recorded(state, &action, seq, &stamped.event)?;
        }
    }
    state.apply(seq, stamped)?;
    Ok(())
}

/// What replaying a run found.
#[derive(Debug)]
pub struct ReplayReport {
    /// The run.
    pub run: RunId,
    /// Events replayed.
    pub events: u64,
    /// LLM responses replayed (none was requested again).
    pub turns: u32,
    /// Where the log leaves the run.
    pub status: RunStatus,
    /// `Ok` when the log is exactly what the current definition would produce.
    pub verdict: std::result::Result<(), Box<NonDeterminism>>,
}

/// [`check_events`] over stored records (decoded once, without copies).
pub fn check_records(run: RunId, records: &[Record], agent: &Agent) -> Result<ReplayReport> {
    let (state, verdict) = match replay(run, records, Some(agent)) {
        Ok(state) => (state, Ok(())),
        Err(crate::error::Error::NonDeterminism(nd)) => (replay(run, records, None)?, Err(nd)),
        Err(other) => return Err(other),
    };
    Ok(ReplayReport {
        run,
        events: records.len() as u64,
        turns: state.responses(),
        status: state.status(),
        verdict,
    })
}

/// Replays decoded events against `agent` — calling no model and no tool — and
/// reports whether the current definition would produce exactly that log.
pub fn check_events(run: RunId, events: &[(Seq, Stamped)], agent: &Agent) -> Result<ReplayReport> {
    let pairs = || events.iter().map(|(s, e)| (*s, e));
    let (state, verdict) = match replay_events(run, pairs(), Some(agent)) {
        Ok(state) => (state, Ok(())),
        // Where it diverges, the figures come from a plain fold of the whole log.
        Err(crate::error::Error::NonDeterminism(nd)) => {
            (replay_events(run, pairs(), None)?, Err(nd))
        }
        Err(other) => return Err(other),
    };
    Ok(ReplayReport {
        run,
        events: events.len() as u64,
        turns: state.responses(),
        status: state.status(),
        verdict,
    })
}
