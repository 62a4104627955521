//! Server-Sent Events: a run's events live (`id: <seq>`, so a reconnecting
//! `EventSource` resumes with `Last-Event-ID` exactly where it left off; live text
//! as `delta` events without ids), and the runs list's changes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use keel_storage::{RunId, Seq};
use serde::Deserialize;

use crate::App;
use crate::api::parse_run;
use crate::error::{Error, Result};
use crate::source::{Source, Update};

/// How often the runs list's feed compares the store's index with what it sent.
pub const LIST_INTERVAL: Duration = Duration::from_secs(1);

/// `?from=N`: the first seq wanted (a `Last-Event-ID` header overrides it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct From {
    from: Option<u64>,
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| Error::BadRequest(format!("`Last-Event-ID: {text}` is not an event seq")))
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
}

fn to_sse(update: Update) -> Event {
    match update {
        Update::Entry(entry) => json_event("entry", &entry).id(entry.seq.to_string()),
        Update::Delta(delta) => json_event("delta", &delta),
        Update::Run(row) => json_event("run", &row),
        Update::End => Event::default().event("end").data("{}"),
    }
}

/// `GET /api/runs/{id}/events`.
pub(crate) async fn run_events<S: Source>(
    State(app): State<App<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<From>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = parse_run(&id)?;
    let from = q
        .map_err(|e| Error::BadRequest(format!("the query: {}", e.body_text())))?
        .from;
    let from = match last_event_id(&headers)? {
        Some(last) => last + 1,
        None => from.unwrap_or(0),
    };
    // An unknown run is a 404 here, not an error event.
    app.source.row(run).await?;
    let mut updates = app.source.watch(run, Seq(from));
    let shutdown = app.shutdown.clone();
    let events = async_stream::stream! {
        loop {
            let next = tokio::select! {
                next = updates.next() => next,
                () = shutdown.cancelled() => break,
            };
            match next {
                Some(Ok(update)) => {
                    let end = matches!(update, Update::End);
                    yield Ok(to_sse(update));
                    if end {
                        break;
                    }
                }
                Some(Err(e)) => {
                    yield Ok(json_event("error", &serde_json::json!({ "message": e.to_string() })));
                    break;
                }
                None => break,
            }
        }
    };
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /api/live`: a `run` event with the row of every run that appears or
/// changes. The store has no change feed across runs, so this compares its index
/// (ids, lengths, statuses: no log is read) every [`LIST_INTERVAL`] while a page
/// listens.
pub(crate) async fn list_events<S: Source>(
    State(app): State<App<S>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let mut known = snapshot(&app.source.index().await?);
    let shutdown = app.shutdown.clone();
    let events = async_stream::stream! {
        loop {
            tokio::select! {
                () = tokio::time::sleep(LIST_INTERVAL) => {}
                () = shutdown.cancelled() => break,
            }
            let now = match app.source.index().await {
                Ok(infos) => snapshot(&infos),
                Err(e) => {
                    yield Ok(json_event("error", &serde_json::json!({ "message": e.to_string() })));
                    continue;
                }
            };
            for (run, state) in &now {
                if known.get(run) != Some(state)
                    && let Ok(row) = app.source.row(*run).await
                {
                    yield Ok(json_event("run", &row));
                }
            }
            known = now;
        }
    };
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn snapshot(infos: &[keel_storage::RunInfo]) -> HashMap<RunId, (u64, Option<&'static str>)> {
    infos
        .iter()
        .map(|i| {
            (
                i.run,
                (i.next_seq.0, i.summary.as_ref().map(|s| s.status.as_str())),
            )
        })
        .collect()
}
