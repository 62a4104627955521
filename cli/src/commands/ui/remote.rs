//! The dashboard's [`Source`] when another process owns the store: everything goes
//! through that owner's control socket. The socket API has no paging, so lists and
//! logs are read whole and paged here; live updates re-read the log once per burst
//! of events.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use keel_dashboard::paging::{Filter, children, waiting};
use keel_dashboard::{
    Answer, Decided, Entry, Error, EventsQuery, Result, RunPage, RunQuery, RunRow, RunView, Source,
    Spend, Update, delta,
};
use keel_providers::pricing::PriceTable;
use keel_storage::{BlobHash, RunId, RunInfo, Seq};

use crate::api::{DecisionBody, SubmitRun};
use crate::client::{ClientError, Remote as Client};
use crate::config::AgentSpec;

/// The store through its owner.
#[derive(Clone, Debug)]
pub struct Remote {
    client: Client,
    agents: Arc<BTreeMap<String, AgentSpec>>,
    env: Arc<BTreeMap<String, String>>,
    prices: Arc<PriceTable>,
}

impl Remote {
    /// A source through `client`; runs start with `agents` (sent to the owner with
    /// this process's provider variables `env`, as `keel run` does).
    pub fn new(client: Client, agents: Vec<AgentSpec>, env: BTreeMap<String, String>) -> Self {
        Self {
            client,
            agents: Arc::new(agents.into_iter().map(|a| (a.id.clone(), a)).collect()),
            env: Arc::new(env),
            prices: Arc::new(PriceTable::default()),
        }
    }

    async fn entries(&self, run: RunId) -> Result<Vec<Entry>> {
        let log = self.client.log(run).await.map_err(failure)?;
        Ok(log
            .into_iter()
            .map(|e| {
                let (seq, stamped) = e.into_pair();
                Entry::new(seq, stamped)
            })
            .collect())
    }

    fn with_spend(&self, mut row: RunRow, entries: &[Entry]) -> RunRow {
        let mut spend = Spend::default();
        for e in entries {
            spend.add(&self.prices, e.seq, &e.event);
        }
        row.model = spend.model;
        row.cost_usd = spend.usd;
        row
    }
}

/// The owner's error, classified for the API.
fn failure(e: ClientError) -> Error {
    match e {
        ClientError::Api(e) => match e.kind.as_str() {
            "not_found" => Error::NotFound(e.message),
            "bad_request" => Error::BadRequest(e.message),
            "conflict" => Error::Conflict {
                message: e.message,
                code: e.code,
            },
            _ => Error::internal(e.message),
        },
        ClientError::Gone(message) => Error::Internal {
            message: format!("the store's owner went away: {message}"),
            unavailable: true,
        },
    }
}

impl Source for Remote {
    async fn index(&self) -> Result<Vec<RunInfo>> {
        let rows = self.client.list().await.map_err(failure)?;
        Ok(rows
            .into_iter()
            .map(|r| RunInfo {
                run: r.id,
                next_seq: Seq(r.events),
                summary: r.summary,
            })
            .collect())
    }

    async fn row(&self, run: RunId) -> Result<RunRow> {
        self.index()
            .await?
            .iter()
            .find(|i| i.run == run)
            .and_then(RunRow::from_info)
            .ok_or_else(|| Error::NotFound(format!("no run {run} in this store")))
    }

    async fn runs(&self, query: RunQuery) -> Result<RunPage> {
        let filter = Filter::new(&query)?;
        let (runs, next, total) = filter.page(&self.index().await?);
        Ok(RunPage { runs, next, total })
    }

    async fn run(&self, run: RunId, page: EventsQuery) -> Result<RunView> {
        let infos = self.index().await?;
        let row = infos
            .iter()
            .find(|i| i.run == run)
            .and_then(RunRow::from_info)
            .ok_or_else(|| Error::NotFound(format!("no run {run} in this store")))?;
        let all = self.entries(run).await?;
        let row = self.with_spend(row, &all);
        let (from, to) = page.range(all.len() as u64);
        let waiting = if row.status == "suspended" {
            waiting(&all).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(RunView {
            children: children(&infos, run),
            run: row,
            waiting,
            events: all
                .into_iter()
                .filter(|e| e.seq >= from && e.seq < to)
                .collect(),
            from,
            to,
        })
    }

    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Update>> {
        let this = self.clone();
        Box::pin(async_stream::try_stream! {
            let mut next = from.0;
            let mut events = this.client.events(run, from);
            while let Some(event) = events.next().await {
                let event = event.map_err(failure)?;
                let Some(seq) = event.seq() else {
                    if let Some(d) = delta(event) {
                        yield Update::Delta(d);
                    }
                    continue;
                };
                if seq.0 < next {
                    continue;
                }
                // One read of the log brings every event recorded so far.
                let entries = this.entries(run).await?;
                let mut ended = false;
                for entry in entries.iter().filter(|e| e.seq >= next) {
                    ended |= entry.event.is_terminal();
                    yield Update::Entry(Box::new(entry.clone()));
                }
                next = entries.last().map_or(next, |e| e.seq + 1);
                let row = this.row(run).await?;
                yield Update::Run(Box::new(this.with_spend(row, &entries)));
                if ended {
                    yield Update::End;
                    return;
                }
            }
            // The owner's stream ends with the run, also when it had ended before
            // `from`: say so, or the browser would reconnect again and again.
            let row = this.row(run).await?;
            if !matches!(row.status.as_str(), "running" | "suspended") {
                yield Update::End;
            }
        })
    }

    async fn start(&self, agent: &str, input: String) -> Result<RunId> {
        let spec = self
            .agents
            .get(agent)
            .ok_or_else(|| Error::unknown_agent(agent, &self.agents()))?;
        let body = SubmitRun {
            agent: spec.clone(),
            input,
            env: (*self.env).clone(),
        };
        self.client.submit(&body).await.map_err(failure)
    }

    async fn decide(&self, run: RunId, answer: Answer) -> Result<Decided> {
        let view = self.run(run, EventsQuery::default()).await?;
        let step = view.step_for(answer.step.as_deref())?;
        let decision = answer.decision();
        let spec = self.agents.get(&view.run.agent).cloned();
        let continued = spec.is_some();
        let body = DecisionBody {
            step: step.clone(),
            decision,
            continue_run: continued,
            agent: spec,
            env: (*self.env).clone(),
        };
        self.client.decide(run, &body).await.map_err(failure)?;
        Ok(Decided { step, continued })
    }

    async fn cancel(&self, run: RunId, reason: String) -> Result<()> {
        self.client.cancel(run, &reason).await.map_err(failure)
    }

    async fn blob(&self, hash: BlobHash) -> Result<String> {
        self.client.blob(hash).await.map_err(failure)
    }

    fn agents(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }
}
