//! The control API's wire types: what processes on one store say to its owner over
//! the store's Unix socket (HTTP/1.1, JSON; event streams as JSON lines).
//!
//! | method | path | body | answer |
//! | --- | --- | --- | --- |
//! | GET | `/v1/health` | | [`Health`] |
//! | GET | `/v1/runs` | | `[RunRow]` |
//! | GET | `/v1/runs/{id}/log` | | `[LogEntry]` |
//! | GET | `/v1/runs/{id}/events?from=N` | | JSON lines of `RunEvent`, then `{"error":…}` on failure |
//! | GET | `/v1/runs/{id}/result` | | `RunOutcome` |
//! | GET | `/v1/blobs/{hash}` | | the blob's text |
//! | POST | `/v1/runs` | [`SubmitRun`] | [`Submitted`] |
//! | POST | `/v1/runs/{id}/decisions` | [`DecisionBody`] | `{"continued": bool}` |
//! | POST | `/v1/runs/{id}/continue` | [`AgentBody`] | `{"started": bool, "adopted": bool}` |
//! | POST | `/v1/runs/{id}/cancel` | [`CancelBody`] | `{}` |
//! | POST | `/v1/runs/{id}/fork` | [`ForkBody`] | [`Submitted`] |
//!
//! Errors are [`ApiError`] with a 4xx/5xx status.
//!
//! A run records its agent's definition when it starts; the owner continues,
//! answers and forks it with the agent rebuilt from that record. Clients send an
//! agent spec only to start a run, to adopt a new definition explicitly (`adopt`),
//! or for runs recorded before runs carried their definition (`agent`). Provider
//! variables (`env`: API keys, base URLs) are kept in the owner's memory only.

use std::collections::BTreeMap;

use keel_engine::{Decision, Event, Stamped, StepKey};
use keel_storage::{RunId, RunInfo, RunSummary, Seq, Timestamp};
use serde::{Deserialize, Serialize};

use crate::args::ProviderArgs;
use crate::config::AgentSpec;

/// Who owns the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// The owner's process id.
    pub pid: u32,
    /// Its Keel version.
    pub version: String,
}

/// A run as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The run.
    pub id: RunId,
    /// Its log's length.
    pub events: u64,
    /// Its summary.
    pub summary: Option<RunSummary>,
}

impl From<RunInfo> for RunRow {
    fn from(info: RunInfo) -> Self {
        Self {
            id: info.run,
            events: info.next_seq.0,
            summary: info.summary,
        }
    }
}

/// One event of a log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its position.
    pub seq: Seq,
    /// When it was recorded.
    pub at: Timestamp,
    /// The event.
    pub event: Event,
}

impl LogEntry {
    /// Splits into the engine's pair.
    pub fn into_pair(self) -> (Seq, Stamped) {
        (
            self.seq,
            Stamped {
                at: self.at,
                event: self.event,
            },
        )
    }
}

/// Start a run of an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitRun {
    /// The agent, as the submitting process declares it.
    pub agent: AgentSpec,
    /// The prompt.
    pub input: String,
    /// The submitter's provider variables (API keys, base URLs). Kept in the owner's
    /// memory only, never written to the log.
    pub env: BTreeMap<String, String>,
}

/// The run that was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    /// Its id.
    pub run: RunId,
}

/// Answer a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionBody {
    /// The step.
    pub step: StepKey,
    /// The answer.
    pub decision: Decision,
    /// Continue the run in the owner after recording the answer, when its agent can
    /// be had there; otherwise the answer is recorded alone.
    pub continue_run: bool,
    /// For a run recorded without its definition: the agent, as the client's
    /// configuration declares it.
    pub agent: Option<AgentSpec>,
    /// The client's provider variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Continue a run, optionally adopting another definition first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentBody {
    /// For a run recorded without its definition: the agent, as the client's
    /// configuration declares it.
    #[serde(default)]
    pub agent: Option<AgentSpec>,
    /// A definition the person adopts for this run from now on: recorded as an
    /// `agent_changed` event before the run continues.
    #[serde(default)]
    pub adopt: Option<AgentSpec>,
    /// Who adopts it.
    #[serde(default)]
    pub by: String,
    /// Its provider variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Cancel a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelBody {
    /// Why.
    pub reason: String,
}

/// Fork a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForkBody {
    /// The prefix length.
    pub at: Seq,
    /// For a run recorded without its definition: the agent to continue the fork
    /// with, as the client's configuration declares it.
    #[serde(default)]
    pub agent: Option<AgentSpec>,
    /// Changes to the definition in force at the fork point (recorded in the fork).
    #[serde(default)]
    pub overrides: ProviderArgs,
    /// Start executing the fork at once (else `continue` starts it).
    #[serde(default)]
    pub start: bool,
    /// Its provider variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A failure, as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What went wrong, for a person.
    pub message: String,
    /// The engine's stable code, where the error has one.
    pub code: Option<String>,
    /// `not_found`, `conflict`, `bad_request` or `internal`.
    pub kind: String,
}
