//! The runtime: starts, resumes, cancels, forks and recovers runs, and streams their
//! events. A run that waits for a person holds no task and no memory here: it is
//! only its log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::stream::BoxStream;
use keel_providers::{Delta, LlmProvider, Request, Response};
use keel_storage::{Batch, EventStore, Record, RunId, RunStatus, Seq, SharedStore, Timestamp};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::ask_user::validate_answer;
use crate::codec::{decode, encode};
use crate::decision::{Decision, PendingStep, RunOutcome};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::{Event, Resolution, RunStarted, Stamped, Text};
use crate::ids::{StepKey, Turn};
use crate::replay::{ReplayReport, check_events, replay, replay_events};
use crate::state::{CallPhase, RunEnd, RunState};
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

struct ActiveRun {
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

pub(crate) struct Inner {
    pub(crate) store: SharedStore,
    agents: RwLock<HashMap<String, Agent>>,
    active: Mutex<HashMap<RunId, ActiveRun>>,
    hubs: Mutex<HashMap<RunId, broadcast::Sender<Live>>>,
    /// Why a run's last driver stopped with an error, until a new one starts.
    faults: Mutex<HashMap<RunId, Arc<str>>>,
    pub(crate) shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The Keel runtime, on any [`EventStore`]. Cheap to clone.
///
/// ```no_run
/// # async fn demo(agent: keel_engine::Agent) -> keel_engine::Result<()> {
/// use futures::StreamExt;
/// use keel_engine::{Decision, Keel, RunEvent};
///
/// let keel = Keel::new(keel_storage::MemoryStore::new());
/// keel.recover().await?; // resume runs a crash interrupted
/// let run = keel.invoke(&agent, "Create hello.js and run it").await?;
/// let mut events = run.events();
/// while let Some(event) = events.next().await {
///     match event? {
///         RunEvent::TextDelta { text, .. } => print!("{text}"),
///         RunEvent::ApprovalRequested { step, .. } => run.resume(&step, Decision::approve()).await?,
///         e if e.is_terminal() => break,
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Keel {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Keel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keel").finish_non_exhaustive()
    }
}

/// What `recover` did.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Runs that were interrupted and now execute again.
    pub resumed: Vec<RunId>,
    /// Runs waiting for people (nothing to do until they answer).
    pub waiting: Vec<RunId>,
    /// Runs that could not be resumed, and why.
    pub failed: Vec<(RunId, Error)>,
}

/// A handle on one run.
#[derive(Clone, Debug)]
pub struct RunHandle {
    keel: Keel,
    run: RunId,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.run
    }

    /// See [`Keel::events`].
    pub fn events(&self) -> BoxStream<'static, Result<RunEvent>> {
        self.keel.events(self.run)
    }

    /// See [`Keel::result`].
    pub async fn result(&self) -> Result<RunOutcome> {
        self.keel.result(self.run).await
    }

    /// See [`Keel::resume`].
    pub async fn resume(&self, step: &StepKey, decision: Decision) -> Result<()> {
        self.keel.resume(self.run, step, decision).await
    }

    /// See [`Keel::cancel`].
    pub async fn cancel(&self, reason: impl Into<String>) -> Result<()> {
        self.keel.cancel(self.run, reason).await
    }
}

/// Exclusive right to write a run, in this process. Dropping it tells
/// subscribers nothing executes the run any more.
pub(crate) struct Claim {
    keel: Keel,
    run: RunId,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.keel.lock_active().remove(&self.run);
        self.keel.publish(self.run, Live::Idle);
        self.keel.drop_idle_hub(self.run);
    }
}

impl Keel {
    /// A runtime on `store`. Call [`Keel::recover`] at start-up to resume runs a
    /// crash interrupted.
    pub fn new(store: impl EventStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: SharedStore::new(store),
                agents: RwLock::new(HashMap::new()),
                active: Mutex::new(HashMap::new()),
                hubs: Mutex::new(HashMap::new()),
                faults: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// Makes an agent known, so its runs can be resumed and recovered.
    pub fn register(&self, agent: Agent) {
        self.inner
            .agents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.id().to_owned(), agent);
    }

    /// The registered agent with this id.
    pub fn agent(&self, id: &str) -> Option<Agent> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Starts a run of `agent` on `input`. Returns once the run's start is durable;
    /// the run executes in the background.
    pub async fn invoke(&self, agent: &Agent, input: impl Into<String>) -> Result<RunHandle> {
        self.register(agent.clone());
        let run = RunId::new();
        let claim = self.claim(run)?;
        let mut driver = Driver::new(self.clone(), agent.clone(), RunState::new(run), claim);
        driver.push(Event::RunStarted(Box::new(RunStarted {
            agent: agent.snapshot().clone(),
            input: input.into(),
            parent: None,
        })))?;
        driver.commit().await?;
        self.spawn(driver);
        Ok(self.handle(run))
    }

    /// A handle on an existing run.
    pub fn handle(&self, run: RunId) -> RunHandle {
        RunHandle {
            keel: self.clone(),
            run,
        }
    }

    /// The run's state folded from its log (no determinism check).
    pub async fn state(&self, run: RunId) -> Result<RunState> {
        let records = self.read_log(run).await?;
        replay(run, &records, None)
    }

    /// The run's events, decoded, in order.
    pub async fn read_events(&self, run: RunId) -> Result<Vec<(Seq, Stamped)>> {
        let records = self.read_log(run).await?;
        records
            .iter()
            .map(|r| Ok((r.seq, decode(run, r.seq, &r.bytes)?)))
            .collect()
    }

    /// The text of a [`Text`], reading its blob if it has one.
    pub async fn text(&self, text: &Text) -> Result<String> {
        match text {
            Text::Inline(s) => Ok(s.clone()),
            Text::Blob { hash, .. } => match self.inner.store.get_blob(*hash).await? {
                Some(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                None => Err(Error::Store(keel_storage::Error::CorruptMeta {
                    what: "blob",
                    detail: format!("blob {hash} referenced by the log is missing"),
                })),
            },
        }
    }

    /// Rebuilds the run from its log with the replay executor — calling no model and
    /// no tool — and reports whether the current definition of its agent would
    /// produce exactly that log.
    pub async fn replay(&self, run: RunId) -> Result<ReplayReport> {
        let events = self.read_events(run).await?;
        if events.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let plain = replay_events(run, events.iter().map(|(s, e)| (*s, e)), None)?;
        let agent = self.agent_of(&plain)?;
        check_events(run, &events, &agent)
    }

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
        state.apply(record.seq, &stamped)?;
        let output = match &stamped.event {
            Event::ToolFinished { output, .. } => Some(self.text(output).await?),
            _ => None,
        };
        Ok(RunEvent::from_recorded(state, record.seq, &stamped, output))
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
        loop {
            // Whether a driver holds the run is read before catching up with the log:
            // a driver makes everything it writes durable before it lets go, so a
            // read after seeing it gone sees all of it.
            let active = self.is_active(run);
            for record in self.inner.store.read(run, state.next_seq()).await? {
                let stamped = decode(run, record.seq, &record.bytes)?;
                state.apply(record.seq, &stamped)?;
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
                    Ok(Live::Records(_) | Live::Idle)
                    | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => {
                        rx = self.subscribe(run);
                        break;
                    }
                }
            }
        }
    }

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

    /// Resumes every run a crash or shutdown interrupted. Call it at start-up, after
    /// registering the agents.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        for info in self.inner.store.list_runs().await? {
            match info.summary.as_ref().map(|s| s.status) {
                Some(status) if status.is_terminal() => {}
                Some(RunStatus::Suspended) => report.waiting.push(info.run),
                _ if self.is_active(info.run) => {}
                _ => match self.continue_run(info.run).await {
                    Ok(true) => report.resumed.push(info.run),
                    Ok(false) => report.waiting.push(info.run),
                    Err(e) => report.failed.push((info.run, e)),
                },
            }
        }
        Ok(report)
    }

    /// Cancels the run: an executing run stops at once (its tool call is told to
    /// stop); a waiting or interrupted run is marked cancelled.
    pub async fn cancel(&self, run: RunId, reason: impl Into<String>) -> Result<()> {
        let reason = reason.into();
        {
            let active = self.lock_active();
            if let Some(a) = active.get(&run) {
                *a.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                a.cancel.cancel();
                return Ok(());
            }
        }
        let _claim = self.claim(run)?;
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let mut state = replay(run, &records, None)?;
        if state.end().is_some() {
            return Err(Error::Ended {
                run,
                status: state.status(),
            });
        }
        self.append_events(&mut state, vec![Event::RunCancelled { reason }], Vec::new())
            .await
    }

    /// Starts a new run from the first `at` events of `run` (time travel): the prefix
    /// replays from the log, then the fork goes live. The fork records its parent.
    pub async fn fork(&self, run: RunId, at: Seq) -> Result<RunHandle> {
        self.fork_with(run, at, true).await
    }

    /// [`Keel::fork`], choosing whether the fork starts executing now (`start`) or
    /// waits for [`Keel::continue_run`].
    pub async fn fork_with(&self, run: RunId, at: Seq, start: bool) -> Result<RunHandle> {
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let len = records.len() as u64;
        if at.0 == 0 || at.0 > len {
            return Err(Error::BadForkPoint { run, at, len });
        }
        let fork = RunId::new();
        let mut events = Vec::with_capacity(at.0 as usize);
        for record in records.iter().take(at.0 as usize) {
            let mut stamped = decode(run, record.seq, &record.bytes)?;
            if let Event::RunStarted(started) = &mut stamped.event {
                started.parent = Some((run, at));
            }
            events.push(stamped);
        }
        let mut state = RunState::new(fork);
        for (i, stamped) in events.iter().enumerate() {
            state.apply(Seq(i as u64), stamped)?;
        }
        let agent = self.agent_of(&state)?;
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let fork_records: Vec<Record> = encoded
            .iter()
            .enumerate()
            .map(|(i, bytes)| Record {
                seq: Seq(i as u64),
                bytes: bytes.clone(),
            })
            .collect();
        // The copied prefix must be a history the current definition would produce.
        let state = replay(fork, &fork_records, Some(&agent))?;
        let claim = self.claim(fork)?;
        self.append_raw(fork, Seq::ZERO, encoded, Vec::new(), &state)
            .await?;
        if start && state.end().is_none() && state.waiting().is_empty() {
            self.spawn(Driver::new(self.clone(), agent, state, claim));
        }
        Ok(self.handle(fork))
    }

    /// Stops executing runs at their next step, leaving them resumable, and waits for
    /// the tasks to end. A tool call in progress finishes first and is recorded; an
    /// LLM call in progress is abandoned (its turn is sent again on resume).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// The runs executing in this process.
    pub fn active_runs(&self) -> Vec<RunId> {
        self.lock_active().keys().copied().collect()
    }

    /// Whether the run is executing in this process.
    pub fn is_active(&self, run: RunId) -> bool {
        self.lock_active().contains_key(&run)
    }

    // ---- internals shared with the driver ----

    pub(crate) fn agent_of(&self, state: &RunState) -> Result<Agent> {
        let id = state.started().map(|s| s.agent.id.as_str()).unwrap_or("");
        self.agent(id).ok_or_else(|| Error::UnknownAgent {
            run: state.run(),
            agent: id.to_owned(),
        })
    }

    async fn read_log(&self, run: RunId) -> Result<Vec<Record>> {
        Ok(self.inner.store.read(run, Seq::ZERO).await?)
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, ActiveRun>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
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

    pub(crate) fn claim(&self, run: RunId) -> Result<Claim> {
        let mut active = self.lock_active();
        if active.contains_key(&run) {
            return Err(Error::Busy(run));
        }
        active.insert(
            run,
            ActiveRun {
                cancel: CancellationToken::new(),
                reason: Arc::new(Mutex::new(None)),
            },
        );
        Ok(Claim {
            keel: self.clone(),
            run,
        })
    }

    /// The run's cancellation token and the reason given, while claimed.
    pub(crate) fn cancel_token(
        &self,
        run: RunId,
    ) -> (CancellationToken, Arc<Mutex<Option<String>>>) {
        let active = self.lock_active();
        match active.get(&run) {
            Some(a) => (a.cancel.clone(), a.reason.clone()),
            None => (CancellationToken::new(), Arc::new(Mutex::new(None))),
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

    fn fault(&self, run: RunId) -> Option<Arc<str>> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run)
            .cloned()
    }

    fn spawn(&self, driver: Driver) {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&driver.run_id());
        self.inner.tasks.spawn(async move {
            // The driver reports its own failure to subscribers.
            let _ = driver.run().await;
        });
    }

    fn subscribe(&self, run: RunId) -> broadcast::Receiver<Live> {
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

    fn drop_idle_hub(&self, run: RunId) {
        let mut hubs = self.inner.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if hubs.get(&run).is_some_and(|s| s.receiver_count() == 0) {
            hubs.remove(&run);
        }
    }

    /// Appends events to a run whose state is `state`, applying them, durably.
    pub(crate) async fn append_events(
        &self,
        state: &mut RunState,
        events: Vec<Event>,
        blobs: Vec<Bytes>,
    ) -> Result<()> {
        let expected = state.next_seq();
        let at = Timestamp::now();
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            let stamped = Stamped { at, event };
            state.apply(state.next_seq(), &stamped)?;
            encoded.push(encode(&stamped)?);
        }
        self.append_raw(state.run(), expected, encoded, blobs, state)
            .await
    }

    /// Appends encoded events at `expected`, with the summary of `state` (the state
    /// after them), and tells subscribers once durable.
    pub(crate) async fn append_raw(
        &self,
        run: RunId,
        expected: Seq,
        events: Vec<Bytes>,
        blobs: Vec<Bytes>,
        state: &RunState,
    ) -> Result<()> {
        let records: Arc<[Record]> = events
            .iter()
            .enumerate()
            .map(|(i, bytes)| Record {
                seq: expected.plus(i as u64),
                bytes: bytes.clone(),
            })
            .collect();
        let batch = Batch {
            events,
            blobs,
            summary: Some(state.summary()),
        };
        match self.inner.store.append(run, expected, batch).await? {
            Ok(_) => {
                self.publish(run, Live::Records(records));
                Ok(())
            }
            Err(conflict) => Err(Error::Conflict(conflict)),
        }
    }

    /// Builds the request for the next LLM call from the run's state.
    pub(crate) async fn build_request(
        &self,
        agent: &Agent,
        state: &RunState,
        blobs: &mut HashMap<keel_storage::BlobHash, String>,
    ) -> Result<Request> {
        for turn in state.turns() {
            for call in &turn.calls {
                if let CallPhase::Finished {
                    output: text @ Text::Blob { hash, .. },
                    ..
                } = &call.phase
                    && !blobs.contains_key(hash)
                {
                    let resolved = self.text(text).await?;
                    blobs.insert(*hash, resolved);
                }
            }
        }
        let messages = state.messages(&|text| match text {
            Text::Inline(s) => s.clone(),
            Text::Blob { hash, .. } => blobs.get(hash).cloned().unwrap_or_default(),
        });
        let system = agent.system_prompt();
        Ok(Request {
            model: agent.model().to_owned(),
            system: (!system.is_empty()).then(|| system.to_owned()),
            messages,
            tools: agent.tool_definitions().to_vec(),
            max_tokens: agent.limits().max_tokens_per_call,
            temperature: agent.limits().temperature,
            stop_sequences: Vec::new(),
            thinking: None,
        })
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

/// The provider agents get when none was configured: every call fails with a clear
/// error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoProvider;

impl LlmProvider for NoProvider {
    fn name(&self) -> &str {
        "none"
    }

    async fn complete<'a>(
        &'a self,
        _request: &'a Request,
        _on_delta: keel_providers::DeltaSink<'a>,
    ) -> keel_providers::Result<Response> {
        Err(keel_providers::Error::Config(
            "the agent has no provider; set one with `Agent::builder(..).provider(..)`".to_owned(),
        ))
    }
}
