//! [`Local`]: the [`Source`] of a runtime that owns its store in this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, future};
use keel_engine::{Agent, Event, Keel, RunEvent, StepKey, decode};
use keel_providers::pricing::PriceTable;
use keel_storage::{BlobHash, EventStore, RunId, RunInfo, RunStatus, Seq};

use crate::error::{Error, Result};
use crate::paging::{Filter, children, waiting};
use crate::source::{
    Answer, Decided, Delta, Entry, EventsQuery, RunPage, RunQuery, RunRow, RunView, Source, Update,
};
use crate::spend::Spend;

/// How stale the runs list may be (runs changed by others than this source). The
/// list's live feed compares the index as often, so pages learn of changes anyway.
pub const INDEX_MAX_AGE: Duration = Duration::from_secs(1);

/// The run index as last read, and when.
type Index = (Instant, Arc<Vec<RunInfo>>);

/// The runtime owning the store, and the agents runs may be started with by name.
#[derive(Clone)]
pub struct Local {
    keel: Keel,
    agents: Arc<BTreeMap<String, Agent>>,
    costs: Arc<Mutex<HashMap<RunId, Spend>>>,
    index: Arc<tokio::sync::Mutex<Option<Index>>>,
    prices: Arc<PriceTable>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Local {
    /// A source over `keel`. Runs can be started with `agents` (registered here);
    /// nothing else can be started from the API.
    pub fn new(keel: Keel, agents: impl IntoIterator<Item = Agent>) -> Self {
        let agents: BTreeMap<String, Agent> =
            agents.into_iter().map(|a| (a.id().to_owned(), a)).collect();
        for agent in agents.values() {
            keel.register(agent.clone());
        }
        Self {
            keel,
            agents: Arc::new(agents),
            costs: Arc::default(),
            index: Arc::default(),
            prices: Arc::new(PriceTable::default()),
        }
    }

    /// The runtime.
    pub fn keel(&self) -> &Keel {
        &self.keel
    }

    async fn entries(&self, run: RunId, from: u64, to: u64) -> Result<Vec<Entry>> {
        let records = self.keel.store().read(run, Seq(from)).await?;
        records
            .into_iter()
            .take_while(|r| r.seq.0 < to)
            .map(|r| {
                let stamped = decode(run, r.seq, &r.bytes).map_err(Error::internal)?;
                Ok(Entry::new(r.seq, stamped))
            })
            .collect()
    }

    /// Fills in the model and the estimated cost, reading only the events after
    /// those already counted.
    async fn with_costs(&self, mut row: RunRow) -> Result<RunRow> {
        let mut spend = self
            .costs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.id)
            .cloned()
            .unwrap_or_default();
        if spend.next < row.events {
            for record in self.keel.store().read(row.id, Seq(spend.next)).await? {
                let stamped = decode(row.id, record.seq, &record.bytes).map_err(Error::internal)?;
                spend.add(&self.prices, record.seq.0, &stamped.event);
            }
            self.costs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(row.id, spend.clone());
        }
        row.model = spend.model;
        row.cost_usd = spend.usd;
        Ok(row)
    }

    async fn summary(&self, run: RunId) -> Result<RunRow> {
        let info = self
            .keel
            .store()
            .run_info(run)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no run {run} in this store")))?;
        let row = RunRow::from_info(&info)
            .ok_or_else(|| Error::NotFound(format!("run {run} is still being created")))?;
        self.with_costs(row).await
    }

    /// The steps a suspended run of `len` events waits at, reading back from the
    /// end until its last response.
    async fn waiting_of(
        &self,
        run: RunId,
        len: u64,
        page: &[Entry],
    ) -> Result<Vec<crate::Waiting>> {
        if page.last().is_some_and(|e| e.seq + 1 == len)
            && let Some(w) = waiting(page)
        {
            return Ok(w);
        }
        let mut window = 64u64;
        loop {
            let from = len.saturating_sub(window);
            let tail = self.entries(run, from, len).await?;
            if let Some(w) = waiting(&tail) {
                return Ok(w);
            }
            if from == 0 {
                return Ok(Vec::new());
            }
            window *= 4;
        }
    }

    /// The store's run index, read at most once per [`INDEX_MAX_AGE`] (listing
    /// every run's summary is the costly part of the list: the store has no paged
    /// listing); what this source itself changes drops it at once.
    async fn cached_index(&self) -> Result<Arc<Vec<RunInfo>>> {
        let mut cached = self.index.lock().await;
        if let Some((at, infos)) = cached.as_ref()
            && at.elapsed() < INDEX_MAX_AGE
        {
            return Ok(infos.clone());
        }
        let infos = Arc::new(self.keel.store().list_runs().await?);
        *cached = Some((Instant::now(), infos.clone()));
        Ok(infos)
    }

    fn forget_index(&self) {
        if let Ok(mut cached) = self.index.try_lock() {
            *cached = None;
        }
    }
}

impl Source for Local {
    async fn index(&self) -> Result<Vec<RunInfo>> {
        Ok(self.cached_index().await?.to_vec())
    }

    async fn row(&self, run: RunId) -> Result<RunRow> {
        self.summary(run).await
    }

    async fn runs(&self, query: RunQuery) -> Result<RunPage> {
        let filter = Filter::new(&query)?;
        let infos = self.cached_index().await?;
        let (rows, next, total) = filter.page(&infos);
        let runs = future::try_join_all(rows.into_iter().map(|r| self.with_costs(r))).await?;
        Ok(RunPage { runs, next, total })
    }

    async fn run(&self, run: RunId, page: EventsQuery) -> Result<RunView> {
        let row = self.summary(run).await?;
        let (from, to) = page.range(row.events);
        let events = self.entries(run, from, to).await?;
        let waiting = if row.status == RunStatus::Suspended.as_str() {
            self.waiting_of(run, row.events, &events).await?
        } else {
            Vec::new()
        };
        let infos = self.cached_index().await?;
        Ok(RunView {
            children: children(&infos, run),
            run: row,
            waiting,
            events,
            from,
            to,
        })
    }

    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Update>> {
        let this = self.clone();
        Box::pin(async_stream::try_stream! {
            let row = this.summary(run).await?;
            let ended = RunStatus::Running.as_str() != row.status && RunStatus::Suspended.as_str() != row.status;
            if ended && from.0 >= row.events {
                yield Update::End;
                return;
            }
            // Live text comes from the runtime's own stream of the run, which ends
            // with the run; only its deltas are used here.
            let deltas = if ended {
                futures::stream::empty().boxed()
            } else {
                this.keel
                    .events(run)
                    .filter_map(|e| future::ready(e.ok().and_then(delta)))
                    .map(Live::Delta)
                    .boxed()
            };
            let records = this.keel.store().watch(run, from).map(Live::Record);
            let mut merged = futures::stream::select(records, deltas);
            while let Some(item) = merged.next().await {
                match item {
                    Live::Record(record) => {
                        let record = record?;
                        let stamped = decode(run, record.seq, &record.bytes).map_err(Error::internal)?;
                        let terminal = stamped.event.is_terminal();
                        let changes_row = !matches!(
                            stamped.event,
                            Event::LlmRequested { .. } | Event::ToolStarted { .. }
                        );
                        yield Update::Entry(Box::new(Entry::new(record.seq, stamped)));
                        if changes_row {
                            yield Update::Run(Box::new(this.summary(run).await?));
                        }
                        if terminal {
                            yield Update::End;
                            return;
                        }
                    }
                    Live::Delta(d) => yield Update::Delta(d),
                }
            }
        })
    }

    async fn start(&self, agent: &str, input: String) -> Result<RunId> {
        let definition = self
            .agents
            .get(agent)
            .ok_or_else(|| Error::unknown_agent(agent, &self.agents()))?;
        let handle = self.keel.invoke(definition, input).await?;
        self.forget_index();
        Ok(handle.id())
    }

    async fn decide(&self, run: RunId, answer: Answer) -> Result<Decided> {
        let step = match &answer.step {
            Some(step) => StepKey::from(step.as_str()),
            None => self
                .run(run, EventsQuery::default())
                .await?
                .step_for(None)?,
        };
        let decision = answer.decision();
        let agent_known = self
            .keel
            .store()
            .run_info(run)
            .await?
            .and_then(|i| i.summary)
            .is_some_and(|s| self.keel.agent(&s.agent).is_some());
        if agent_known {
            match self.keel.resume(run, &step, decision.clone()).await {
                Ok(()) => {
                    self.forget_index();
                    return Ok(Decided {
                        step,
                        continued: true,
                    });
                }
                // The run's recorded agent differs from the one known here: record
                // the answer only; `keel resume` continues it.
                Err(
                    keel_engine::Error::NonDeterminism(_) | keel_engine::Error::UnknownAgent { .. },
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.keel.record_decision(run, &step, decision).await?;
        self.forget_index();
        Ok(Decided {
            step,
            continued: false,
        })
    }

    async fn cancel(&self, run: RunId, reason: String) -> Result<()> {
        self.keel.cancel(run, reason).await?;
        self.forget_index();
        Ok(())
    }

    async fn blob(&self, hash: BlobHash) -> Result<String> {
        match self.keel.store().get_blob(hash).await? {
            Some(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            None => Err(Error::NotFound(format!("no blob {hash} in this store"))),
        }
    }

    fn agents(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }
}

/// The live-only part of a runtime event.
pub fn delta(event: RunEvent) -> Option<Delta> {
    match event {
        RunEvent::TextDelta { turn, text } => Some(Delta {
            turn: turn.0,
            kind: "text".to_owned(),
            text,
        }),
        RunEvent::ThinkingDelta { turn, text } => Some(Delta {
            turn: turn.0,
            kind: "thinking".to_owned(),
            text,
        }),
        RunEvent::LlmRetrying { turn, reason, .. } => Some(Delta {
            turn: turn.0,
            kind: "retry".to_owned(),
            text: reason,
        }),
        _ => None,
    }
}

enum Live {
    Record(keel_storage::Result<keel_storage::Record>),
    Delta(Delta),
}
