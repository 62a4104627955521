//! The runtime: starts, resumes, cancels, forks and recovers runs, and streams their
//! events. A run that waits for a person holds no task and no memory here: it is
//! only its log.

mod decisions;
mod handle;
mod live;

pub use handle::RunHandle;
pub(crate) use live::Live;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use keel_providers::{LlmProvider, Request, Response};
use keel_storage::{Batch, EventStore, Record, RunId, RunStatus, Seq, SharedStore, Timestamp};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::codec::{decode, encode};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::{DigestScheme, Event, RunStarted, Stamped, Text};
use crate::replay::{ReplayReport, check_records, replay};
use crate::state::RunState;

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
            digest_scheme: DigestScheme::Records,
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
    /// no tool — and checks every event against the definition the run recorded
    /// (see [`Agent::from_snapshot`]). Needs nothing outside the store.
    pub async fn replay(&self, run: RunId) -> Result<ReplayReport> {
        let records = self.read_log(run).await?;
        let first = records.first().ok_or(Error::UnknownRun(run))?;
        let agent = match decode(run, first.seq, &first.bytes)?.event {
            Event::RunStarted(started) => Agent::from_snapshot(&started.agent),
            _ => return Err(Error::UnknownRun(run)),
        };
        check_records(run, &records, &agent)
    }

    /// [`Keel::replay`] against `agent`, a current definition: reports whether it
    /// would produce exactly the recorded log (`KEEL-E100` with both sides if not).
    pub async fn replay_against(&self, run: RunId, agent: &Agent) -> Result<ReplayReport> {
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        check_records(run, &records, agent)
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
            state.apply(Seq(i as u64), stamped.clone())?;
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
            encoded.push(encode(&stamped)?);
            state.apply(state.next_seq(), stamped)?;
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
