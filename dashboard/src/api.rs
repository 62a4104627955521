//! The JSON API's handlers.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use crate::App;
use crate::error::{Error, Result};
use crate::source::{Answer, Decided, EventsQuery, RunPage, RunQuery, RunView, Source};

/// `POST /api/runs`: an agent known by name and the input. Nothing else is
/// accepted: never an agent definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The agent's name.
    pub agent: String,
    /// The prompt.
    pub input: String,
}

/// `POST /api/runs/{id}/cancel`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    /// Why (recorded).
    pub reason: Option<String>,
}

pub(crate) fn parse_run(id: &str) -> Result<keel_storage::RunId> {
    id.parse()
        .map_err(|e| Error::BadRequest(format!("`{id}` is not a run id: {e}")))
}

fn json<T>(body: Result<Json<T>, JsonRejection>) -> Result<T> {
    body.map(|Json(b)| b)
        .map_err(|e| Error::BadRequest(format!("the request body: {}", e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T> {
    q.map(|Query(q)| q)
        .map_err(|e| Error::BadRequest(format!("the query: {}", e.body_text())))
}

pub(crate) async fn list<S: Source>(
    State(app): State<App<S>>,
    q: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<RunPage>> {
    Ok(Json(app.source.runs(query(q)?).await?))
}

pub(crate) async fn show<S: Source>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<RunView>> {
    Ok(Json(app.source.run(parse_run(&id)?, query(q)?).await?))
}

pub(crate) async fn start<S: Source>(
    State(app): State<App<S>>,
    body: Result<Json<StartRun>, JsonRejection>,
) -> Result<Json<serde_json::Value>> {
    let body = json(body)?;
    if body.input.trim().is_empty() {
        return Err(Error::BadRequest(
            "`input` is empty: give the agent a prompt".to_owned(),
        ));
    }
    let run = app.source.start(&body.agent, body.input).await?;
    Ok(Json(serde_json::json!({ "run": run.to_string() })))
}

pub(crate) async fn decide<S: Source>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    body: Result<Json<Answer>, JsonRejection>,
) -> Result<Json<Decided>> {
    let run = parse_run(&id)?;
    let mut answer = json(body)?;
    if answer.digest.trim().is_empty() {
        return Err(Error::BadRequest(
            "`digest` is empty: name the digest of the form you answer (GET /api/runs/{id} → waiting[].form.digest)".to_owned(),
        ));
    }
    answer.by = app.who.to_string();
    Ok(Json(app.source.decide(run, answer).await?))
}

pub(crate) async fn cancel<S: Source>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    body: Option<Json<CancelRun>>,
) -> Result<Json<serde_json::Value>> {
    let run = parse_run(&id)?;
    let reason = body
        .and_then(|Json(b)| b.reason)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("cancelled from the dashboard by {}", app.who));
    app.source.cancel(run, reason).await?;
    Ok(Json(serde_json::json!({})))
}

pub(crate) async fn blob<S: Source>(
    State(app): State<App<S>>,
    Path(hash): Path<String>,
) -> Result<String> {
    let hash = hash
        .parse()
        .map_err(|e| Error::BadRequest(format!("`{hash}` is not a blob hash: {e}")))?;
    app.source.blob(hash).await
}

pub(crate) async fn agents<S: Source>(State(app): State<App<S>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "agents": app.source.agents() }))
}
