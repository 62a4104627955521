//! Rebuilding a run from its log: decode, fold, and (given the current agent)
//! check every recorded event against what the executor would decide.

use keel_storage::{Record, RunId, RunStatus, Seq};

use crate::agent::Agent;
use crate::codec::decode;
use crate::decide::{check_agent, check_recorded, decide};
use crate::error::{NonDeterminism, Result};
use crate::event::{Event, Stamped};
use crate::state::RunState;

/// Folds `records` into a state. With `agent` (the definition a run is about to
/// continue with), also checks determinism: every event against `decide` under the
/// definition in force at that point — `agent` itself where its fingerprint is the
/// recorded one, else the recorded definition ([`Agent::from_snapshot`]) — and, at
/// the end, the definition in force against `agent` (`check_agent`). The first
/// divergence is an `Error::NonDeterminism`.
pub fn replay(run: RunId, records: &[Record], agent: Option<&Agent>) -> Result<RunState> {
    let mut replayer = Replayer::new(run, agent);
    for record in records {
        let stamped = decode(run, record.seq, &record.bytes)?;
        replayer.step(record.seq, stamped)?;
    }
    replayer.finish()
}

/// [`replay`] over events already decoded (e.g. fetched from another process).
pub fn replay_events<'a>(
    run: RunId,
    events: impl IntoIterator<Item = (Seq, &'a Stamped)>,
    agent: Option<&Agent>,
) -> Result<RunState> {
    let mut replayer = Replayer::new(run, agent);
    for (seq, stamped) in events {
        replayer.step(seq, stamped.clone())?;
    }
    replayer.finish()
}

/// [`replay`] over decoded events it may take.
pub(crate) fn replay_owned(
    run: RunId,
    events: Vec<(Seq, Stamped)>,
    agent: Option<&Agent>,
) -> Result<RunState> {
    let mut replayer = Replayer::new(run, agent);
    for (seq, stamped) in events {
        replayer.step(seq, stamped)?;
    }
    replayer.finish()
}

/// [`replay_owned`] checking every event against the definitions the run recorded
/// only (no current agent to compare with at the end).
pub(crate) fn replay_owned_recorded(run: RunId, events: Vec<(Seq, Stamped)>) -> Result<RunState> {
    let mut replayer = Replayer::new(run, None);
    replayer.recorded_only = true;
    for (seq, stamped) in events {
        replayer.step(seq, stamped)?;
    }
    replayer.finish()
}

struct Replayer<'a> {
    state: RunState,
    current: Option<&'a Agent>,
    /// Check against the recorded definitions only (no `current`).
    recorded_only: bool,
    /// The definition in force, when it is not `current`.
    recorded: Option<Agent>,
}

impl<'a> Replayer<'a> {
    fn new(run: RunId, current: Option<&'a Agent>) -> Self {
        Self {
            state: RunState::new(run),
            current,
            recorded_only: false,
            recorded: None,
        }
    }

    fn step(&mut self, seq: Seq, stamped: Stamped) -> Result<()> {
        if self.recorded_only {
            match &stamped.event {
                Event::RunStarted(s) => self.recorded = Some(Agent::from_snapshot(&s.agent)),
                Event::AgentChanged(c) => {
                    self.recorded = Some(Agent::from_snapshot(&c.agent));
                }
                _ => {}
            }
            if let (false, Some(agent)) = (
                matches!(stamped.event, Event::RunStarted(_)),
                &self.recorded,
            ) {
                let action = decide(&self.state, agent);
                check_recorded(&self.state, &action, seq, &stamped.event)?;
            }
        } else if let Some(current) = self.current {
            let in_force = match &stamped.event {
                Event::RunStarted(started) => Some(&started.agent),
                Event::AgentChanged(changed) => Some(&changed.agent),
                _ => None,
            };
            if !matches!(stamped.event, Event::RunStarted(_)) {
                let agent = self.recorded.as_ref().unwrap_or(current);
                let action = decide(&self.state, agent);
                check_recorded(&self.state, &action, seq, &stamped.event)?;
            }
            if let Some(snapshot) = in_force {
                self.recorded = (snapshot.fingerprint != current.fingerprint())
                    .then(|| Agent::from_snapshot(snapshot));
            }
        }
        self.state.apply(seq, stamped)?;
        Ok(())
    }

    fn finish(self) -> Result<RunState> {
        if let (Some(current), Some(recorded)) = (self.current, self.state.agent()) {
            check_agent(&self.state, recorded, current.snapshot())?;
        }
        Ok(self.state)
    }
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

impl ReplayReport {
    fn of(
        state: &RunState,
        events: usize,
        verdict: std::result::Result<(), Box<NonDeterminism>>,
    ) -> Self {
        Self {
            run: state.run(),
            events: events as u64,
            turns: state.responses(),
            status: state.status(),
            verdict,
        }
    }
}

/// Replays a run's records against the definitions the run recorded (its first
/// event's, then each one a person adopted): needs nothing outside the store.
pub fn check_recorded_records(run: RunId, records: &[Record]) -> Result<ReplayReport> {
    let mut replayer = Replayer::new(run, None);
    replayer.recorded_only = true;
    let mut verdict = Ok(());
    for record in records {
        let stamped = decode(run, record.seq, &record.bytes)?;
        if verdict.is_ok() {
            match replayer.step(record.seq, stamped.clone()) {
                Ok(()) => continue,
                Err(crate::error::Error::NonDeterminism(nd)) => verdict = Err(nd),
                Err(other) => return Err(other),
            }
        }
        // After a divergence, the figures come from a plain fold.
        replayer.recorded_only = false;
        replayer.state.apply(record.seq, stamped)?;
    }
    let state = replayer.finish()?;
    Ok(ReplayReport::of(&state, records.len(), verdict))
}

/// [`check_recorded_records`] over decoded events.
pub fn check_recorded_events(run: RunId, events: &[(Seq, Stamped)]) -> Result<ReplayReport> {
    let records = events
        .iter()
        .map(|(seq, s)| {
            Ok(Record {
                seq: *seq,
                bytes: crate::codec::encode(s)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    check_recorded_records(run, &records)
}

/// [`check_events`] over stored records (decoded once, without copies).
pub fn check_records(run: RunId, records: &[Record], agent: &Agent) -> Result<ReplayReport> {
    let (state, verdict) = match replay(run, records, Some(agent)) {
        Ok(state) => (state, Ok(())),
        Err(crate::error::Error::NonDeterminism(nd)) => (replay(run, records, None)?, Err(nd)),
        Err(other) => return Err(other),
    };
    Ok(ReplayReport::of(&state, records.len(), verdict))
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
    Ok(ReplayReport::of(&state, events.len(), verdict))
}
