//! Talking to the store's owner over its control socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use keel_engine::RunEvent;
use keel_storage::{BlobHash, RunId, Seq};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AgentBody, ApiError, CancelBody, DecisionBody, ForkBody, Health, LogEntry, RunRow, SubmitRun,
    Submitted,
};

/// A client of the owner's control API.
#[derive(Debug, Clone)]
pub struct Remote {
    socket: PathBuf,
    /// Who owns the store.
    pub health: Health,
}

/// A failure talking to the owner.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The owner answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The owner could not be reached or went away.
    #[error("lost the connection to the store's owner: {0}")]
    Gone(String),
}

fn gone(e: impl std::fmt::Display) -> ClientError {
    ClientError::Gone(e.to_string())
}

impl Remote {
    /// Connects to the owner listening on `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        let mut remote = Self {
            socket: socket.to_path_buf(),
            health: Health {
                pid: 0,
                version: String::new(),
            },
        };
        remote.health = remote.get("/v1/health").await?;
        Ok(remote)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(gone)?;
        // Requests carry provider keys: the process answering must be the store's
        // owner, not a listener a command put in its place.
        keel_tools::sandbox::peer::check_unix_peer(&stream).map_err(|e| {
            gone(format!(
                "the process serving {} is not a store owner this process trusts: {e}",
                self.socket.display()
            ))
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(gone)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "keel")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(gone)?;
        sender.send_request(request).await.map_err(gone)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(gone)?
            .to_bytes();
        if status != StatusCode::OK {
            let err: ApiError = serde_json::from_slice(&bytes).unwrap_or_else(|_| ApiError {
                message: String::from_utf8_lossy(&bytes).into_owned(),
                code: None,
                kind: "internal".to_owned(),
            });
            return Err(ClientError::Api(err));
        }
        serde_json::from_slice(&bytes).map_err(|e| gone(format!("unexpected answer: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(gone)?;
        self.call(Method::POST, path, Some(body)).await
    }

    /// Every run.
    pub async fn list(&self) -> Result<Vec<RunRow>, ClientError> {
        self.get("/v1/runs").await
    }

    /// A run's log.
    pub async fn log(&self, run: RunId) -> Result<Vec<LogEntry>, ClientError> {
        self.get(&format!("/v1/runs/{run}/log")).await
    }

    /// A blob's text.
    pub async fn blob(&self, hash: BlobHash) -> Result<String, ClientError> {
        let response = self
            .send(Method::GET, &format!("/v1/blobs/{hash}"), None)
            .await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(gone)?
            .to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Starts a run in the owner.
    pub async fn submit(&self, body: &SubmitRun) -> Result<RunId, ClientError> {
        let submitted: Submitted = self.post("/v1/runs", body).await?;
        Ok(submitted.run)
    }

    /// Answers a step; returns whether the owner continues the run.
    pub async fn decide(&self, run: RunId, body: &DecisionBody) -> Result<bool, ClientError> {
        let answer: serde_json::Value = self
            .post(&format!("/v1/runs/{run}/decisions"), body)
            .await?;
        Ok(answer["continued"].as_bool().unwrap_or(false))
    }

    /// Continues an interrupted run in the owner; returns (started, adopted).
    pub async fn continue_run(
        &self,
        run: RunId,
        body: &AgentBody,
    ) -> Result<(bool, bool), ClientError> {
        let answer: serde_json::Value =
            self.post(&format!("/v1/runs/{run}/continue"), body).await?;
        Ok((
            answer["started"].as_bool().unwrap_or(false),
            answer["adopted"].as_bool().unwrap_or(false),
        ))
    }

    /// Cancels a run.
    pub async fn cancel(&self, run: RunId, reason: &str) -> Result<(), ClientError> {
        let body = CancelBody {
            reason: reason.to_owned(),
        };
        let _: serde_json::Value = self.post(&format!("/v1/runs/{run}/cancel"), &body).await?;
        Ok(())
    }

    /// Forks a run in the owner.
    pub async fn fork(&self, run: RunId, body: &ForkBody) -> Result<RunId, ClientError> {
        let submitted: Submitted = self.post(&format!("/v1/runs/{run}/fork"), body).await?;
        Ok(submitted.run)
    }

    /// A run's events from `from` on, live. Ends with `Gone` if the owner goes away
    /// before the run ends.
    pub fn events(
        &self,
        run: RunId,
        from: Seq,
    ) -> BoxStream<'static, Result<RunEvent, ClientError>> {
        let this = self.clone();
        Box::pin(async_stream::try_stream! {
            let response = this.send(Method::GET, &format!("/v1/runs/{run}/events?from={}", from.0), None).await?;
            if response.status() != StatusCode::OK {
                let bytes = response.into_body().collect().await.map_err(gone)?.to_bytes();
                let err: ApiError = serde_json::from_slice(&bytes).map_err(gone)?;
                Err(ClientError::Api(err))?;
                return;
            }
            let mut body = response.into_body().into_data_stream();
            let mut buffer: Vec<u8> = Vec::new();
            let mut ended = false;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(gone)?;
                buffer.extend_from_slice(&chunk);
                while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=newline).collect();
                    let value: serde_json::Value = serde_json::from_slice(&line).map_err(gone)?;
                    if let Some(err) = value.get("error") {
                        let err: ApiError = serde_json::from_value(err.clone()).map_err(gone)?;
                        Err(ClientError::Api(err))?;
                    }
                    let event: RunEvent = serde_json::from_value(value).map_err(gone)?;
                    ended = event.is_terminal();
                    yield event;
                }
            }
            if !ended {
                Err(ClientError::Gone("the owner closed the event stream before the run ended".to_owned()))?;
            }
        })
    }
}
