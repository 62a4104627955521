//! The store's owner: the one process that opened the store. It executes runs, and
//! serves the control API on `<store>/keel.sock` (owner-only permissions) so every
//! other `keel` process on the store works through it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use futures::stream::BoxStream;
use keel_engine::{Agent, Error as EngineError, Keel, RunEvent, RunOutcome, Text};
use keel_storage::{BlobHash, EventStore, RunId, Seq, SledStore};
use serde::Deserialize;

use crate::api::{
    AgentBody, ApiError, CancelBody, DecisionBody, ForkBody, Health, LogEntry, RunRow, SubmitRun,
};
use crate::config::AgentSpec;

/// The name of the control socket in the store directory.
pub const SOCKET: &str = "keel.sock";

/// What the owner does, whoever asks: its own commands or other processes.
#[derive(Clone)]
pub struct Owner {
    keel: Keel,
    /// Event streams open to other processes.
    streams: Arc<AtomicUsize>,
    /// Provider variables (API keys, base URLs): the owner's own, overlaid with
    /// those its clients sent. Memory only; agents rebuilt from recorded
    /// definitions get their keys here.
    env: Arc<RwLock<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").finish_non_exhaustive()
    }
}

/// Maps an engine error to the API's.
pub fn api_error(e: EngineError) -> ApiError {
    let kind = match &e {
        EngineError::UnknownRun(_) => "not_found",
        EngineError::Busy(_)
        | EngineError::Conflict(_)
        | EngineError::AlreadyAnswered { .. }
        | EngineError::Ended { .. }
        | EngineError::UnknownStep { .. }
        | EngineError::DigestMismatch { .. }
        | EngineError::NonDeterminism(_)
        | EngineError::UnknownAgent { .. } => "conflict",
        EngineError::InvalidAnswer(_)
        | EngineError::BadForkPoint { .. }
        | EngineError::Rebuild { .. } => "bad_request",
        _ => "internal",
    };
    ApiError {
        message: e.to_string(),
        code: e.code().map(str::to_owned),
        kind: kind.to_owned(),
    }
}

fn config_error(e: anyhow::Error) -> ApiError {
    ApiError {
        message: format!("{e:#}"),
        code: None,
        kind: "bad_request".to_owned(),
    }
}

impl Owner {
    /// The runtime.
    pub fn keel(&self) -> &Keel {
        &self.keel
    }

    /// Builds an agent from its spec and registers it, so its runs can run here.
    pub fn register(
        &self,
        spec: &AgentSpec,
        env: &BTreeMap<String, String>,
    ) -> Result<Agent, ApiError> {
        self.use_env(env);
        let agent = spec.build(&self.env()).map_err(config_error)?;
        self.keel.register(agent.clone());
        Ok(agent)
    }

    /// Takes a client's provider variables (they override the owner's own).
    pub fn use_env(&self, env: &BTreeMap<String, String>) {
        // Keys a client handed over are secrets here too: masked in tool results.
        for (name, value) in env {
            if keel_tools::secrets::is_provider_key(name) {
                keel_tools::secrets::global().add(name, value);
            }
        }
        let mut own = self.env.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in env {
            own.insert(k.clone(), v.clone());
        }
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.env.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every run.
    pub async fn list(&self) -> Result<Vec<RunRow>, ApiError> {
        let runs = self
            .keel
            .store()
            .list_runs()
            .await
            .map_err(|e| api_error(e.into()))?;
        Ok(runs.into_iter().map(RunRow::from).collect())
    }

    /// A run's whole log.
    pub async fn log(&self, run: RunId) -> Result<Vec<LogEntry>, ApiError> {
        let events = self.keel.read_events(run).await.map_err(api_error)?;
        if events.is_empty() {
            return Err(api_error(EngineError::UnknownRun(run)));
        }
        Ok(events
            .into_iter()
            .map(|(seq, s)| LogEntry {
                seq,
                at: s.at,
                event: s.event,
            })
            .collect())
    }

    /// A run's events from `from` on, live.
    pub fn events(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<RunEvent, ApiError>> {
        Box::pin(self.keel.events(run).filter_map(move |e| {
            std::future::ready(match e {
                Ok(event) if event.seq().is_some_and(|s| s < from) => None,
                Ok(event) => Some(Ok(event)),
                Err(e) => Some(Err(api_error(e))),
            })
        }))
    }

    /// Waits until nothing executes the run.
    pub async fn result(&self, run: RunId) -> Result<RunOutcome, ApiError> {
        self.keel.result(run).await.map_err(api_error)
    }

    /// Starts a run.
    pub async fn submit(&self, body: SubmitRun) -> Result<RunId, ApiError> {
        let agent = self.register(&body.agent, &body.env)?;
        let handle = self
            .keel
            .invoke(&agent, body.input)
            .await
            .map_err(api_error)?;
        Ok(handle.id())
    }

    /// Records an answer, and continues the run here if asked and its agent can be
    /// had (rebuilt from the definition the run recorded, or, for a run recorded
    /// without one, from the spec sent). Returns whether the run continues here.
    pub async fn decide(&self, run: RunId, body: DecisionBody) -> Result<bool, ApiError> {
        self.use_env(&body.env);
        if let Some(spec) = &body.agent {
            // Legacy runs only; an agent that cannot be built here just answers.
            let _ = self.register(spec, &body.env);
        }
        if body.continue_run {
            match self
                .keel
                .resume(run, &body.step, body.decision.clone())
                .await
            {
                Ok(()) => return Ok(true),
                // Nothing was written: record the answer alone.
                Err(EngineError::Rebuild { .. } | EngineError::UnknownAgent { .. }) => {}
                Err(e) => return Err(api_error(e)),
            }
        }
        self.keel
            .record_decision(run, &body.step, body.decision)
            .await
            .map_err(api_error)?;
        Ok(false)
    }

    /// Continues an interrupted run here, first recording a definition the person
    /// adopts, if any. Returns (started, adopted).
    pub async fn continue_run(
        &self,
        run: RunId,
        body: AgentBody,
    ) -> Result<(bool, bool), ApiError> {
        self.use_env(&body.env);
        if let Some(spec) = &body.agent {
            self.register(spec, &body.env)?;
        }
        let mut adopted = false;
        if let Some(spec) = &body.adopt {
            let agent = spec.build(&self.env()).map_err(config_error)?;
            let by = if body.by.is_empty() {
                "user"
            } else {
                body.by.as_str()
            };
            adopted = self
                .keel
                .adopt(run, &agent, by, "adopted with `keel resume --adopt`")
                .await
                .map_err(api_error)?;
        }
        let started = self.keel.continue_run(run).await.map_err(api_error)?;
        Ok((started, adopted))
    }

    /// Cancels a run.
    pub async fn cancel(&self, run: RunId, reason: String) -> Result<(), ApiError> {
        self.keel.cancel(run, reason).await.map_err(api_error)
    }

    /// Forks a run from the definition in force at the fork point, with the
    /// overrides recorded in the fork; for a run recorded without a definition, with
    /// the spec sent.
    pub async fn fork(&self, run: RunId, body: ForkBody) -> Result<RunId, ApiError> {
        self.use_env(&body.env);
        let events = self.keel.read_events(run).await.map_err(api_error)?;
        let at = (body.at.0 as usize).min(events.len());
        let recorded = events[..at]
            .iter()
            .rev()
            .find_map(|(_, s)| match &s.event {
                keel_engine::Event::RunStarted(s) => Some(s.definition.clone()),
                keel_engine::Event::AgentChanged(c) => Some(c.definition.clone()),
                _ => None,
            })
            .flatten();
        let spec = match (&recorded, &body.agent) {
            (Some(def), _) => Some(AgentSpec::from_definition(def).map_err(config_error)?),
            (None, Some(spec)) => {
                self.register(spec, &body.env)?;
                None
            }
            (None, None) => None,
        };
        let agent = match spec {
            Some(spec) if body.overrides.any() => {
                let spec = spec.with_overrides(&body.overrides).map_err(config_error)?;
                // Forking needs no key: without one, the fork records the
                // definition and a later `keel resume` brings the key.
                let agent = spec
                    .build(&self.env())
                    .or_else(|_| spec.build_offline())
                    .map_err(config_error)?;
                Some(agent)
            }
            _ => None,
        };
        let handle = self
            .keel
            .fork_with_agent(run, body.at, agent.as_ref(), body.start)
            .await
            .map_err(api_error)?;
        Ok(handle.id())
    }

    /// The text of a blob.
    pub async fn blob(&self, hash: BlobHash) -> Result<String, ApiError> {
        self.keel
            .text(&Text::Blob { hash, len: 0 })
            .await
            .map_err(api_error)
    }

    /// Whether anything here still needs this process: a run executing, or another
    /// process following a run.
    pub fn busy(&self) -> bool {
        !self.keel.active_runs().is_empty() || self.streams.load(Ordering::SeqCst) > 0
    }
}

/// The owner of a store: the runtime on the sled store, and its control socket.
#[derive(Debug)]
pub struct Local {
    owner: Owner,
    socket: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Local {
    /// Opens the store (taking ownership) and starts serving its socket. Fails with
    /// `keel_storage::Error::Locked` when another process owns it.
    pub async fn open(dir: &Path) -> Result<Self, keel_storage::Error> {
        std::fs::create_dir_all(dir).map_err(keel_storage::Error::from_io)?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let store = SledStore::open(dir)?;
        // No command this process runs may see the store or its socket.
        keel_tools::sandbox::hide_from_commands(dir);
        let env = Arc::new(RwLock::new(crate::config::provider_env()));
        let rebuild_env = env.clone();
        let keel = Keel::new(store).with_rebuilder(move |definition, _| {
            let env = rebuild_env
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            AgentSpec::from_definition(definition)
                .and_then(|spec| spec.build(&env))
                .map_err(|e| format!("{e:#}"))
        });
        let owner = Owner {
            keel,
            streams: Arc::new(AtomicUsize::new(0)),
            env,
        };
        let socket = dir.join(SOCKET);
        // We hold the store's lock, so a socket file left here is stale: its owner died.
        let _ = std::fs::remove_file(&socket);
        let server = match tokio::net::UnixListener::bind(&socket) {
            Ok(listener) => {
                let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
                // Every connection's peer is checked when it is accepted; a command
                // Keel runs, or another user, gets 403 for everything (see `guard`).
                let app = router(owner.clone())
                    .layer(axum::middleware::from_fn(crate::guard::refuse_untrusted))
                    .into_make_service_with_connect_info::<crate::guard::PeerVerdict>();
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::warn!("the control socket stopped: {e}");
                    }
                })
            }
            Err(e) => {
                // Still usable alone; other processes will be told the store is locked.
                tracing::warn!("cannot serve the control socket {}: {e}", socket.display());
                tokio::spawn(async {})
            }
        };
        Ok(Self {
            owner,
            socket,
            server,
        })
    }

    /// What this owner does.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Stops at once: runs stop at their next safe point and stay resumable.
    pub async fn stop(self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.socket);
        self.owner.keel.shutdown().await;
    }

    /// Waits while other processes still need this one (runs executing here, streams
    /// open), then stops serving and lets runs stop at a safe point.
    pub async fn close(self) {
        // A run this process just drove to its end lets go of it an instant after
        // its last event reached the terminal: that is not another terminal.
        let settle = async {
            while self.owner.busy() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), settle).await;
        if self.owner.busy() {
            eprintln!(
                "keel: other terminals are using this store through this process; waiting for them (Ctrl-C to stop)"
            );
            let wait = async {
                while self.owner.busy() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                () = wait => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        self.server.abort();
        let _ = std::fs::remove_file(&self.socket);
        self.owner.keel.shutdown().await;
    }
}

/// Counts an open event stream for as long as it lives.
struct StreamGuard(Arc<AtomicUsize>);

impl StreamGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn router(owner: Owner) -> axum::Router {
    axum::Router::new()
        .route("/v1/health", get(health))
        .route("/v1/runs", get(list).post(submit))
        .route("/v1/runs/{id}/log", get(log))
        .route("/v1/runs/{id}/events", get(events))
        .route("/v1/runs/{id}/result", get(result))
        .route("/v1/runs/{id}/decisions", post(decide))
        .route("/v1/runs/{id}/continue", post(continue_run))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/fork", post(fork))
        .route("/v1/blobs/{hash}", get(blob))
        .with_state(owner)
}

struct Failure(ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.kind.as_str() {
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            "bad_request" => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(e)
    }
}

fn parse_run(id: &str) -> Result<RunId, Failure> {
    id.parse().map_err(|e: keel_storage::ParseRunIdError| {
        Failure(ApiError {
            message: e.to_string(),
            code: None,
            kind: "bad_request".to_owned(),
        })
    })
}

async fn health() -> Json<Health> {
    Json(Health {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

async fn list(State(owner): State<Owner>) -> Result<Json<Vec<RunRow>>, Failure> {
    Ok(Json(owner.list().await?))
}

async fn log(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<LogEntry>>, Failure> {
    Ok(Json(owner.log(parse_run(&id)?).await?))
}

#[derive(Deserialize)]
struct FromSeq {
    #[serde(default)]
    from: u64,
}

async fn events(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
    Query(from): Query<FromSeq>,
) -> Result<Response, Failure> {
    let run = parse_run(&id)?;
    let guard = StreamGuard::new(&owner.streams);
    let stream = owner.events(run, Seq(from.from));
    let lines = stream.map(move |item| {
        let _alive = &guard;
        let line = match item {
            Ok(event) => serde_json::to_string(&event),
            Err(e) => serde_json::to_string(&serde_json::json!({ "error": e })),
        };
        let mut line = line.unwrap_or_else(|e| format!("{{\"error\":{{\"message\":\"{e}\"}}}}"));
        line.push('\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .unwrap_or_default())
}

async fn result(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<RunOutcome>, Failure> {
    Ok(Json(owner.result(parse_run(&id)?).await?))
}

async fn submit(
    State(owner): State<Owner>,
    Json(body): Json<SubmitRun>,
) -> Result<Json<crate::api::Submitted>, Failure> {
    Ok(Json(crate::api::Submitted {
        run: owner.submit(body).await?,
    }))
}

async fn decide(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<DecisionBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let continued = owner.decide(parse_run(&id)?, body).await?;
    Ok(Json(serde_json::json!({ "continued": continued })))
}

async fn continue_run(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<AgentBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let (started, adopted) = owner.continue_run(parse_run(&id)?, body).await?;
    Ok(Json(
        serde_json::json!({ "started": started, "adopted": adopted }),
    ))
}

async fn cancel(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<CancelBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    owner.cancel(parse_run(&id)?, body.reason).await?;
    Ok(Json(serde_json::json!({})))
}

async fn fork(
    State(owner): State<Owner>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<ForkBody>,
) -> Result<Json<crate::api::Submitted>, Failure> {
    Ok(Json(crate::api::Submitted {
        run: owner.fork(parse_run(&id)?, body).await?,
    }))
}

async fn blob(
    State(owner): State<Owner>,
    UrlPath(hash): UrlPath<String>,
) -> Result<String, Failure> {
    let hash: BlobHash = hash
        .parse()
        .map_err(|e: keel_storage::ParseBlobHashError| {
            Failure(ApiError {
                message: e.to_string(),
                code: None,
                kind: "bad_request".to_owned(),
            })
        })?;
    Ok(owner.blob(hash).await?)
}
