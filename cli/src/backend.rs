//! One way to reach a store, whoever owns it: this process (it opened the store and
//! serves its socket) or another one (reached through that socket).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use keel_engine::{RunEvent, Stamped, Text};
use keel_storage::{RunId, Seq};

use crate::api::{AgentBody, ApiError, DecisionBody, ForkBody, LogEntry, RunRow, SubmitRun};
use crate::client::{ClientError, Remote};
use crate::owner::{Local, SOCKET};

/// How long to keep trying when the store is locked but its owner does not answer
/// yet (it is starting, or dying and about to release the lock). `KEEL_OWNER_WAIT_MS`
/// overrides it.
fn owner_patience() -> Duration {
    std::env::var("KEEL_OWNER_WAIT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// A store, reached directly or through its owner.
#[derive(Debug)]
pub enum Backend {
    /// This process owns the store.
    Local(Local),
    /// Another process owns it.
    Remote(Remote),
}

impl Backend {
    /// Opens the store directly, or reaches its owner. A stale socket left by a
    /// killed owner is detected (the store's lock is free) and replaced.
    pub async fn connect(dir: &Path) -> Result<Self> {
        let deadline = Instant::now() + owner_patience();
        loop {
            match Local::open(dir).await {
                Ok(local) => return Ok(Backend::Local(local)),
                Err(keel_storage::Error::Locked { owner, .. }) => {
                    match Remote::connect(&dir.join(SOCKET)).await {
                        Ok(remote) => return Ok(Backend::Remote(remote)),
                        // The owner refused this process (a command an agent runs):
                        // waiting will not change that.
                        Err(ClientError::Api(e)) if e.kind == "forbidden" => {
                            bail!(
                                "the owner of the store {} refused this process: {}",
                                dir.display(),
                                e.message
                            )
                        }
                        Err(e) if Instant::now() >= deadline => bail!(
                            "the store {} is in use by another process{} that does not answer on its control socket ({e})",
                            dir.display(),
                            owner.map(|o| format!(" ({o})")).unwrap_or_default()
                        ),
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("opening the store {}", dir.display()));
                }
            }
        }
    }

    /// Lets go of the store: an owner first waits for other processes that still
    /// need it.
    pub async fn close(self) {
        if let Backend::Local(local) = self {
            local.close().await;
        }
    }

    /// Lets go of the store at once (after Ctrl-C): runs executing here stop at
    /// their next safe point and stay resumable.
    pub async fn stop(self) {
        if let Backend::Local(local) = self {
            local.stop().await;
        }
    }

    /// Every run, oldest first.
    pub async fn list(&self) -> Result<Vec<RunRow>, ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().list().await?),
            Backend::Remote(r) => r.list().await,
        }
    }

    /// A run's log, decoded.
    pub async fn log(&self, run: RunId) -> Result<Vec<(Seq, Stamped)>, ClientError> {
        let entries = match self {
            Backend::Local(l) => l.owner().log(run).await?,
            Backend::Remote(r) => r.log(run).await?,
        };
        Ok(entries.into_iter().map(LogEntry::into_pair).collect())
    }

    /// The text of a recorded output.
    pub async fn text(&self, text: &Text) -> Result<String, ClientError> {
        match text {
            Text::Inline(s) => Ok(s.clone()),
            Text::Blob { hash, .. } => match self {
                Backend::Local(l) => Ok(l.owner().blob(*hash).await?),
                Backend::Remote(r) => r.blob(*hash).await,
            },
        }
    }

    /// A run's events from `from` on, live, until it ends.
    pub fn events(
        &self,
        run: RunId,
        from: Seq,
    ) -> BoxStream<'static, Result<RunEvent, ClientError>> {
        match self {
            Backend::Local(l) => Box::pin(
                l.owner()
                    .events(run, from)
                    .map(|e| e.map_err(ClientError::Api)),
            ),
            Backend::Remote(r) => r.events(run, from),
        }
    }

    /// Starts a run.
    pub async fn submit(&self, body: SubmitRun) -> Result<RunId, ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().submit(body).await?),
            Backend::Remote(r) => r.submit(&body).await,
        }
    }

    /// Answers a step; returns whether the owner continues the run.
    pub async fn decide(&self, run: RunId, body: DecisionBody) -> Result<bool, ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().decide(run, body).await?),
            Backend::Remote(r) => r.decide(run, &body).await,
        }
    }

    /// Continues an interrupted run (adopting a definition first, if the body says
    /// so); returns (started, adopted).
    pub async fn continue_run(
        &self,
        run: RunId,
        body: AgentBody,
    ) -> Result<(bool, bool), ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().continue_run(run, body).await?),
            Backend::Remote(r) => r.continue_run(run, &body).await,
        }
    }

    /// Cancels a run.
    pub async fn cancel(&self, run: RunId, reason: &str) -> Result<(), ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().cancel(run, reason.to_owned()).await?),
            Backend::Remote(r) => r.cancel(run, reason).await,
        }
    }

    /// Forks a run.
    pub async fn fork(&self, run: RunId, body: ForkBody) -> Result<RunId, ClientError> {
        match self {
            Backend::Local(l) => Ok(l.owner().fork(run, body).await?),
            Backend::Remote(r) => r.fork(run, &body).await,
        }
    }

    /// Finds a run by id, unique id prefix, or `last` (the newest run).
    pub async fn resolve(&self, text: &str) -> Result<RunId> {
        let text = text.trim();
        if let Ok(run) = text.parse::<RunId>() {
            return Ok(run);
        }
        let runs = self.list().await?;
        if text == "last" || text == "latest" {
            return runs
                .iter()
                .max_by_key(|r| r.id)
                .map(|r| r.id)
                .context("there are no runs in this store yet (start one with `keel run`)");
        }
        let matches: Vec<RunId> = runs
            .iter()
            .map(|r| r.id)
            .filter(|id| !text.is_empty() && id.to_string().starts_with(&text.to_lowercase()))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(ApiError {
                message: format!(
                    "no run matches `{text}` in this store; `keel runs` lists the runs (an id, a unique prefix of one, or `last`)"
                ),
                code: None,
                kind: "not_found".to_owned(),
            }
            .into()),
            many => bail!(
                "`{text}` matches {} runs; give more of the id",
                many.len()
            ),
        }
    }
}
