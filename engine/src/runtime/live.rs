//! What subscribers see: the live channel of each run (records once durable, text
//! deltas, the driver letting go, failures), the event stream built on it, and
//! `result`, which waits until nothing executes a run.

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::BoxStream;
use keel_providers::Delta;
use keel_storage::{EventStore, Record, RunId, Seq};
use tokio::sync::broadcast;

use super::Keel;
use crate::codec::decode;
use crate::decision::{PendingStep, RunOutcome};
use crate::error::{Error, Result};
use crate::event::{Event, Stamped};
use crate::ids::{StepKey, Turn};
use crate::replay::replay;
use crate::state::{RunEnd, RunState};
use crate::stream::RunEvent;

/// How many live items a slow subscriber may fall behind before it re-reads the log.
const HUB_CAPACITY: usize = 4096;

/// The live channel of one run, and the deltas of its turn in progress.
pub(crate) struct Hub {
    sender: broadcast::Sender<Live>,
    deltas: Vec<(Turn, Delta)>,
}

impl Hub {
    fn new() -> Self {
        Self {
            sender: broadcast::channel(HUB_CAPACITY).0,
            deltas: Vec::new(),
        }
    }
}

fn delta_event(turn: Turn, delta: Delta) -> RunEvent {
    match delta {
        Delta::Text(text) => RunEvent::TextDelta { turn, text },
        Delta::Thinking(text) => RunEvent::ThinkingDelta { turn, text },
        Delta::Retry {
            attempt,
            delay_ms,
            reason,
        } => RunEvent::LlmRetrying {
            turn,
            attempt,
            delay_ms,
            reason,
        },
    }
}

/// What the runtime tells subscribers of one run.
#[derive(Clone, Debug)]
pub(crate) enum Live {
    /// Records that just became durable.
    Records(Arc<[Record]>),
    /// A piece of a response, live only.
    Delta(Turn, Delta),
    /// Nothing executes the run any more (it suspended, ended, or stopped).
    Idle,
    /// The run stopped because of an error; it stays resumable.
    Fault(Arc<str>),
}

impl Keel {
    /// The run's events: everything recorded so far, then new events and text deltas
    /// live, until the run ends. A run executed in this process streams live; the
    /// stream stays open while the run waits for people.
    ///
    /// A subscriber may come late — after [`Keel::invoke`] or [`Keel::fork`]
    /// returned, in the middle of a turn — and still misses nothing: it gets the
    /// recorded history from seq 0, then every text, thinking and retry delta of the
    /// turn in progress from its beginning (the runtime keeps the current turn's
    /// deltas until its response is recorded), then the rest live. History includes
    /// approvals that were answered since: they come with `answered: true` and must
    /// not be answered again.
    pub fn events(&self, run: RunId) -> BoxStream<'static, Result<RunEvent>> {
        let keel = self.clone();
        let (mut rx, buffered) = self.subscribe_with_deltas(run);
        Box::pin(async_stream::try_stream! {
            let mut state = RunState::new(run);
            let records = keel.read_log(run).await?;
            if records.is_empty() {
                Err(Error::UnknownRun(run))?;
            }
            let mut history = Vec::with_capacity(records.len());
            for record in &records {
                history.push((record.seq, decode(run, record.seq, &record.bytes)?));
            }
            let answered: HashSet<StepKey> = history
                .iter()
                .filter_map(|(_, s)| match &s.event {
                    Event::ApprovalResolved { step, .. } => Some(step.clone()),
                    _ => None,
                })
                .collect();
            for (seq, stamped) in history {
                for mut event in keel.apply_decoded(&mut state, seq, stamped).await? {
                    if let RunEvent::ApprovalRequested { step, answered: a, .. } = &mut event {
                        *a = answered.contains(step);
                    }
                    yield event;
                }
            }
            // The turn in progress, from its first delta.
            for (turn, delta) in buffered {
                let responded = state
                    .turns()
                    .get(turn.0 as usize)
                    .is_some_and(|t| t.response.is_some());
                if !responded && state.end().is_none() {
                    yield delta_event(turn, delta);
                }
            }
            while state.end().is_none() {
                match rx.recv().await {
                    Ok(Live::Records(records)) => {
                        if records.first().is_some_and(|r| r.seq > state.next_seq()) {
                            // A gap: read what we missed from the log.
                            for record in keel.inner.store.read(run, state.next_seq()).await? {
                                for event in keel.apply_for_stream(&mut state, &record).await? {
                                    yield event;
                                }
                            }
                        }
                        let next = state.next_seq();
                        for record in records.iter().filter(|r| r.seq >= next) {
                            for event in keel.apply_for_stream(&mut state, record).await? {
                                yield event;
                            }
                        }
                    }
                    Ok(Live::Delta(turn, delta)) => yield delta_event(turn, delta),
                    Ok(Live::Idle) => {}
                    Ok(Live::Fault(reason)) => {
                        Err(Error::Halted { run, reason: reason.to_string() })?;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for record in keel.inner.store.read(run, state.next_seq()).await? {
                            for event in keel.apply_for_stream(&mut state, &record).await? {
                                yield event;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    async fn apply_for_stream(
        &self,
        state: &mut RunState,
        record: &Record,
    ) -> Result<Vec<RunEvent>> {
        let stamped = decode(state.run(), record.seq, &record.bytes)?;
        self.apply_decoded(state, record.seq, stamped).await
    }

    async fn apply_decoded(
        &self,
        state: &mut RunState,
        seq: Seq,
        stamped: Stamped,
    ) -> Result<Vec<RunEvent>> {
        let output = match &stamped.event {
            Event::ToolFinished { output, .. } => Some(self.text(output).await?),
            _ => None,
        };
        // Built from the state before the event: the calls it names already exist.
        let events = RunEvent::from_recorded(state, seq, &stamped, output);
        state.apply(seq, stamped)?;
        Ok(events)
    }

    /// Waits until nothing executes the run — it ended, waits for people, or was
    /// interrupted — and says which.
    pub async fn result(&self, run: RunId) -> Result<RunOutcome> {
        let mut rx = self.subscribe(run);
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let mut state = replay(run, &records, None)?;
        // Whether the log must be read again to be up to date (a gap or lag in the
        // notifications); otherwise the notified records are applied as they come.
        let mut behind = false;
        loop {
            // Whether a driver holds the run is read before catching up with the log:
            // a driver makes everything it writes durable before it lets go, so a
            // read after seeing it gone sees all of it.
            let active = self.is_active(run);
            if behind || !active {
                for record in self.inner.store.read(run, state.next_seq()).await? {
                    let stamped = decode(run, record.seq, &record.bytes)?;
                    state.apply(record.seq, stamped)?;
                }
                behind = false;
            }
            if let Some(end) = state.end() {
                return Ok(match end.clone() {
                    RunEnd::Completed { output, stopped_by } => {
                        RunOutcome::Completed { output, stopped_by }
                    }
                    RunEnd::Failed { error, code } => RunOutcome::Failed { error, code },
                    RunEnd::Cancelled { reason } => RunOutcome::Cancelled { reason },
                });
            }
            if !active {
                if let Some(reason) = self.fault(run) {
                    return Err(Error::Halted {
                        run,
                        reason: reason.to_string(),
                    });
                }
                let waiting = pending_steps(&state);
                return Ok(if waiting.is_empty() {
                    RunOutcome::Interrupted
                } else {
                    RunOutcome::Suspended { waiting }
                });
            }
            // Wait for news: new records, the driver letting go, or a failure.
            loop {
                match rx.recv().await {
                    Ok(Live::Delta(..)) => continue,
                    Ok(Live::Fault(reason)) => {
                        return Err(Error::Halted {
                            run,
                            reason: reason.to_string(),
                        });
                    }
                    Ok(Live::Records(records)) => {
                        let known = state.next_seq();
                        for record in records.iter().filter(|r| r.seq >= known) {
                            if record.seq != state.next_seq() {
                                behind = true;
                                break;
                            }
                            let stamped = decode(run, record.seq, &record.bytes)?;
                            state.apply(record.seq, stamped)?;
                        }
                        break;
                    }
                    Ok(Live::Idle) => break,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        behind = true;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        rx = self.subscribe(run);
                        behind = true;
                        break;
                    }
                }
            }
        }
    }

    /// Records why a run's driver stopped, and tells subscribers.
    pub(crate) fn report_fault(&self, run: RunId, reason: &str) {
        let reason: Arc<str> = Arc::from(reason);
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run, reason.clone());
        self.publish(run, Live::Fault(reason));
    }

    pub(super) fn fault(&self, run: RunId) -> Option<Arc<str>> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run)
            .cloned()
    }

    pub(super) fn subscribe(&self, run: RunId) -> broadcast::Receiver<Live> {
        self.subscribe_with_deltas(run).0
    }

    /// Subscribes, and takes the deltas of the turn in progress published so far
    /// (atomically: each later delta comes through the receiver).
    fn subscribe_with_deltas(&self, run: RunId) -> (broadcast::Receiver<Live>, Vec<(Turn, Delta)>) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        let hub = hubs.entry(run).or_insert_with(Hub::new);
        (hub.sender.subscribe(), hub.deltas.clone())
    }

    pub(crate) fn publish(&self, run: RunId, live: Live) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        let hub = match &live {
            // Deltas are kept for subscribers still to come, even with none now.
            Live::Delta(..) => Some(hubs.entry(run).or_insert_with(Hub::new)),
            _ => hubs.get_mut(&run),
        };
        let Some(hub) = hub else { return };
        match &live {
            Live::Delta(turn, delta) => {
                if hub.deltas.first().is_some_and(|(t, _)| t != turn) {
                    hub.deltas.clear();
                }
                hub.deltas.push((*turn, delta.clone()));
            }
            Live::Idle | Live::Fault(_) => hub.deltas.clear(),
            Live::Records(_) => {}
        }
        // An error only means nobody listens right now.
        let _ = hub.sender.send(live);
    }

    /// Publishes records that just became durable; the buffered deltas of a turn
    /// whose response they record are dropped in the same step (a subscriber from
    /// now on reads the response from the log).
    pub(crate) fn publish_records(&self, run: RunId, records: Arc<[Record]>, state: &RunState) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(hub) = hubs.get_mut(&run) else {
            return;
        };
        if let Some((turn, _)) = hub.deltas.first()
            && (state.end().is_some()
                || state
                    .turns()
                    .get(turn.0 as usize)
                    .is_some_and(|t| t.response.is_some()))
        {
            hub.deltas.clear();
        }
        let _ = hub.sender.send(Live::Records(records));
    }

    pub(super) fn drop_idle_hub(&self, run: RunId) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if hubs
            .get(&run)
            .is_some_and(|h| h.sender.receiver_count() == 0)
        {
            hubs.remove(&run);
        }
    }

    /// Streams the runs' live events to subscribers as they happen: used by the
    /// driver for text deltas.
    pub(crate) fn delta_sink(
        &self,
        run: RunId,
        turn: Turn,
    ) -> impl Fn(Delta) + Send + Sync + use<> {
        let keel = self.clone();
        move |delta| keel.publish(run, Live::Delta(turn, delta))
    }
}

/// The steps a state waits at.
pub(crate) fn pending_steps(state: &RunState) -> Vec<PendingStep> {
    state
        .waiting()
        .into_iter()
        .filter_map(|(step, call)| {
            Some(PendingStep {
                step: step.clone(),
                call: call.id,
                tool: call.name.clone(),
                form: call.form.clone()?,
            })
        })
        .collect()
}
