//! What subscribers see: the live channel of each run (records once durable, text
//! deltas, the driver letting go, failures), the event stream built on it, and
//! `result`, which waits until nothing executes a run.

use std::sync::Arc;

use futures::stream::BoxStream;
use keel_providers::Delta;
use keel_storage::{EventStore, Record, RunId};
use tokio::sync::broadcast;

use super::Keel;
use crate::codec::decode;
use crate::decision::{PendingStep, RunOutcome};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ids::Turn;
use crate::replay::replay;
use crate::state::{RunEnd, RunState};
use crate::stream::RunEvent;

/// How many live items a slow subscriber may fall behind before it re-reads the log.
const HUB_CAPACITY: usize = 4096;

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
    pub fn events(&self, run: RunId) -> BoxStream<'static, Result<RunEvent>> {
        let keel = self.clone();
        let mut rx = self.subscribe(run);
        Box::pin(async_stream::try_stream! {
            let mut state = RunState::new(run);
            let records = keel.read_log(run).await?;
            if records.is_empty() {
                Err(Error::UnknownRun(run))?;
            }
            for record in records {
                for event in keel.apply_for_stream(&mut state, &record).await? {
                    yield event;
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
                    Ok(Live::Delta(turn, Delta::Text(text))) => yield RunEvent::TextDelta { turn, text },
                    Ok(Live::Delta(turn, Delta::Thinking(text))) => yield RunEvent::ThinkingDelta { turn, text },
                    Ok(Live::Delta(turn, Delta::Retry { attempt, delay_ms, reason })) => {
                        yield RunEvent::LlmRetrying { turn, attempt, delay_ms, reason };
                    }
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
        let output = match &stamped.event {
            Event::ToolFinished { output, .. } => Some(self.text(output).await?),
            _ => None,
        };
        // Built from the state before the event: the calls it names already exist.
        let events = RunEvent::from_recorded(state, record.seq, &stamped, output);
        state.apply(record.seq, stamped)?;
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
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        hubs.entry(run)
            .or_insert_with(|| broadcast::channel(HUB_CAPACITY).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, run: RunId, live: Live) {
        let hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = hubs.get(&run) {
            // An error only means nobody listens right now.
            let _ = sender.send(live);
        }
    }

    pub(super) fn drop_idle_hub(&self, run: RunId) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if hubs.get(&run).is_some_and(|s| s.receiver_count() == 0) {
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
