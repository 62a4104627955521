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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::codec::{decode, encode};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::event::{
    AgentChanged, AgentSnapshot, Definition, DigestScheme, Event, RunStarted, Stamped, Text,
};
use crate::replay::{ReplayReport, check_recorded_records, check_records, replay};
use crate::state::RunState;

struct ActiveRun {
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

/// Rebuilds an agent from the definition a run recorded (see
/// [`Keel::with_rebuilder`]): the definition in force and the agent snapshot
/// recorded with it. `Err` says why it cannot (a missing key, a workspace gone).
pub type Rebuilder =
    Arc<dyn Fn(&Definition, &AgentSnapshot) -> std::result::Result<Agent, String> + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) store: SharedStore,
    agents: RwLock<HashMap<String, Agent>>,
    rebuilder: RwLock<Option<Rebuilder>>,
    /// (run, agent instance) whose tools know the run's earlier calls.
    restored: Mutex<std::collections::HashSet<(RunId, u64)>>,
    active: Mutex<HashMap<RunId, ActiveRun>>,
    hubs: Mutex<HashMap<RunId, live::Hub>>,
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
///         RunEvent::ApprovalRequested { step, answered: false, .. } => {
///             run.resume(&step, Decision::approve()).await?
///         }
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
                rebuilder: RwLock::new(None),
                restored: Mutex::new(std::collections::HashSet::new()),
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

    /// Gives the runtime a way to rebuild agents from the definitions runs recorded
    /// ([`crate::AgentBuilder::definition`]). A run that recorded a definition is
    /// then continued, answered, recovered and forked with the agent rebuilt from it
    /// (or from the definition a person adopted since, [`Keel::adopt`]), whatever is
    /// registered under its id; runs without one use the registered agent.
    #[must_use]
    pub fn with_rebuilder(
        self,
        rebuild: impl Fn(&Definition, &AgentSnapshot) -> std::result::Result<Agent, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        *self
            .inner
            .rebuilder
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(rebuild));
        self
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
            definition: agent.definition().cloned(),
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
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        check_recorded_records(run, &records)
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
        let mut state = self.unfinished_state(run).await?;
        self.append_events(&mut state, vec![Event::RunCancelled { reason }], Vec::new())
            .await
    }

    /// Starts a new run from the first `at` events of `run` (time travel): the prefix
    /// replays from the log, then the fork goes live with the definition in force at
    /// `at`. The fork records its parent.
    pub async fn fork(&self, run: RunId, at: Seq) -> Result<RunHandle> {
        self.fork_with_agent(run, at, None, true).await
    }

    /// [`Keel::fork`], choosing whether the fork starts executing now (`start`) or
    /// waits for [`Keel::continue_run`].
    pub async fn fork_with(&self, run: RunId, at: Seq, start: bool) -> Result<RunHandle> {
        self.fork_with_agent(run, at, None, start).await
    }

    /// [`Keel::fork_with`], continuing under `agent` when it is given and differs
    /// from the definition in force at `at` (another model, provider, prompt): the
    /// change is recorded as the fork's first event after the copied prefix
    /// (`agent_changed`, by `keel fork`). The prefix is checked against the
    /// definitions it recorded, so forking needs no key and no workspace.
    pub async fn fork_with_agent(
        &self,
        run: RunId,
        at: Seq,
        agent: Option<&Agent>,
        start: bool,
    ) -> Result<RunHandle> {
        let records = self.read_log(run).await?;
        if records.is_empty() {
            return Err(Error::UnknownRun(run));
        }
        let len = records.len() as u64;
        if at.0 == 0 || at.0 > len {
            return Err(Error::BadForkPoint { run, at, len });
        }
        let fork = RunId::new();
        let mut events = Vec::with_capacity(at.0 as usize + 1);
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
        // The copied prefix must be a history its own definitions would produce.
        let recorded = state
            .agent()
            .map(Agent::from_snapshot)
            .ok_or(Error::UnknownRun(run))?;
        if let Some(agent) = agent
            && (agent.snapshot() != state.agent().unwrap_or(agent.snapshot())
                || agent.definition() != state.definition())
        {
            events.push(Stamped {
                at: Timestamp::now(),
                event: Event::AgentChanged(Box::new(AgentChanged {
                    agent: agent.snapshot().clone(),
                    definition: agent.definition().cloned(),
                    by: "keel fork".to_owned(),
                    reason: format!("forked from run {run} at seq {} with overrides", at.0),
                })),
            });
        }
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let fork_records: Vec<Record> = encoded
            .iter()
            .enumerate()
            .map(|(i, bytes)| Record {
                seq: Seq(i as u64),
                bytes: bytes.clone(),
            })
            .collect();
        let state = replay(fork, &fork_records, None)?;
        replay(fork, &fork_records[..at.0 as usize], Some(&recorded))?;
        let claim = self.claim(fork)?;
        self.append_raw(fork, Seq::ZERO, encoded, Vec::new(), &state)
            .await?;
        if start && state.end().is_none() && state.waiting().is_empty() {
            let agent = match agent {
                Some(agent) => agent.clone(),
                None => self.agent_of(&state)?,
            };
            self.spawn(Driver::new(self.clone(), agent, state, claim));
        }
        Ok(self.handle(fork))
    }

    /// Records that a person adopted `agent` as the run's definition from now on
    /// (`agent_changed`): the explicit act by which a changed definition applies to a
    /// run that started under another. Returns false (and records nothing) when
    /// `agent` is the definition in force. The run must not be executing or ended.
    pub async fn adopt(
        &self,
        run: RunId,
        agent: &Agent,
        by: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<bool> {
        let _claim = self.claim(run)?;
        let mut state = self.unfinished_state(run).await?;
        if state.agent() == Some(agent.snapshot()) && state.definition() == agent.definition() {
            return Ok(false);
        }
        let event = Event::AgentChanged(Box::new(AgentChanged {
            agent: agent.snapshot().clone(),
            definition: agent.definition().cloned(),
            by: by.into(),
            reason: reason.into(),
        }));
        self.append_events(&mut state, vec![event], Vec::new())
            .await?;
        Ok(true)
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

    /// The folded state of a run that has not ended (else `UnknownRun` or `Ended`).
    async fn unfinished_state(&self, run: RunId) -> Result<RunState> {
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
        Ok(state)
    }

    /// The agent to continue a run with: rebuilt from the definition in force when
    /// the run recorded one and a rebuilder is set, else the agent registered under
    /// its id.
    pub(crate) fn agent_of(&self, state: &RunState) -> Result<Agent> {
        self.agent_for(state.run(), state.agent(), state.definition())
    }

    pub(crate) fn agent_for(
        &self,
        run: RunId,
        snapshot: Option<&AgentSnapshot>,
        definition: Option<&Definition>,
    ) -> Result<Agent> {
        let id = snapshot.map(|s| s.id.as_str()).unwrap_or("");
        let rebuilder = self
            .inner
            .rebuilder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let (Some(definition), Some(snapshot), Some(rebuild)) = (definition, snapshot, rebuilder)
        {
            return rebuild(definition, snapshot).map_err(|reason| Error::Rebuild {
                run,
                agent: id.to_owned(),
                reason,
            });
        }
        self.agent(id).ok_or_else(|| Error::UnknownAgent {
            run,
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

    /// Replays a run's earlier successful calls into `agent`'s tools
    /// ([`keel_tools::Tool::restore`]) unless these tools already know them (they
    /// ran them, or were restored, in this process).
    pub(crate) fn restore_tools(&self, agent: &Agent, state: &RunState) {
        let key = (state.run(), agent.instance());
        if !self
            .inner
            .restored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
        {
            return;
        }
        let run = state.run().to_string();
        for call in state.turns().iter().flat_map(|t| &t.calls) {
            if let crate::state::CallPhase::Finished {
                kind: crate::event::FinishKind::Ran,
                is_error: false,
                ..
            } = call.phase
                && let Some(tool) = agent.tools().get(&call.name)
            {
                tool.restore_json(&run, &call.input);
            }
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
                self.publish_records(run, records, state);
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
