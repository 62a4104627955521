//! What the dashboard needs from whoever owns the store: the [`Source`] trait, and the
//! JSON shapes of the HTTP API built on it.

use std::future::Future;

use futures::stream::BoxStream;
use keel_engine::{Event, Stamped, StepKey};
use keel_storage::{BlobHash, RunId, RunInfo, RunStatus, Seq, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The most rows or events one page holds.
pub const MAX_PAGE: usize = 1000;

/// The store as the dashboard sees it. The CLI implements it over the store's owner
/// in this process ([`crate::Local`]) or over another owner's socket.
pub trait Source: Send + Sync + 'static {
    /// Runs matching `query`, newest first, one page.
    fn runs(&self, query: RunQuery) -> impl Future<Output = Result<RunPage>> + Send;

    /// Every run's id, log length and summary (the store's index), in any order.
    fn index(&self) -> impl Future<Output = Result<Vec<RunInfo>>> + Send;

    /// One run as listed.
    fn row(&self, run: RunId) -> impl Future<Output = Result<RunRow>> + Send;

    /// A run's summary and a page of its events, counted from the end.
    fn run(&self, run: RunId, page: EventsQuery) -> impl Future<Output = Result<RunView>> + Send;

    /// The run's recorded events from `from` on, then new ones and live text as they
    /// happen, until the run ends (then [`Update::End`]).
    fn watch(&self, run: RunId, from: Seq) -> BoxStream<'static, Result<Update>>;

    /// Starts a run of the agent this source knows by `agent`.
    fn start(&self, agent: &str, input: String) -> impl Future<Output = Result<RunId>> + Send;

    /// Answers a waiting step; the answer names the digest of the form it answers.
    fn decide(&self, run: RunId, answer: Answer) -> impl Future<Output = Result<Decided>> + Send;

    /// Cancels a run.
    fn cancel(&self, run: RunId, reason: String) -> impl Future<Output = Result<()>> + Send;

    /// The text of a blob (a large tool output).
    fn blob(&self, hash: BlobHash) -> impl Future<Output = Result<String>> + Send;

    /// The agents runs can be started with, by name.
    fn agents(&self) -> Vec<String>;
}

/// Filters and paging of the runs list.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Comma-separated statuses (`running,suspended,completed,failed,cancelled`).
    pub status: Option<String>,
    /// The agent's id, exactly.
    pub agent: Option<String>,
    /// Text the run's id, agent or input preview contains (any case).
    pub text: Option<String>,
    /// Started at or after (ms since the epoch).
    pub since: Option<u64>,
    /// Started before (ms since the epoch).
    pub until: Option<u64>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page (default 50, at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

/// One page of runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunPage {
    /// The rows, newest first.
    pub runs: Vec<RunRow>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next: Option<String>,
    /// How many runs match the filters in all.
    pub total: usize,
}

/// A run as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// The run (32 hex digits, as the CLI shows it).
    #[serde(with = "hex_id")]
    pub id: RunId,
    /// The agent's id.
    pub agent: String,
    /// `running`, `suspended`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// When it started (ms since the epoch).
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// LLM responses so far.
    pub turns: u32,
    /// Input tokens (cache reads and writes included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// The log's length.
    pub events: u64,
    /// A one-line preview of the input.
    pub title: String,
    /// For a fork: the parent run and the prefix length it took.
    pub parent: Option<Link>,
    /// The model, once known (from the run's first event).
    pub model: Option<String>,
    /// The estimated cost in US dollars, where the model's price is known.
    pub cost_usd: Option<f64>,
}

impl RunRow {
    /// A row from the store's summary; `None` for a run without one (being created).
    pub fn from_info(info: &RunInfo) -> Option<Self> {
        let s = info.summary.as_ref()?;
        Some(Self {
            id: info.run,
            agent: s.agent.clone(),
            status: s.status.as_str().to_owned(),
            created_at: s.created_at.0,
            updated_at: s.updated_at.0,
            turns: s.turns,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            events: info.next_seq.0,
            title: s.title.clone(),
            parent: s.parent.map(|(run, at)| Link { run, at: at.0 }),
            model: None,
            cost_usd: None,
        })
    }
}

/// A link between runs: a fork's parent, or a child forked at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The other run.
    #[serde(with = "hex_id")]
    pub run: RunId,
    /// The length of the prefix the fork took.
    pub at: u64,
}

/// Which events of a run to show.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events before this seq (default: the end of the log).
    pub before: Option<u64>,
    /// How many (default 500, at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

impl EventsQuery {
    /// The seq range `[from, to)` this page covers in a log of `len` events.
    pub fn range(&self, len: u64) -> (u64, u64) {
        let to = self.before.map_or(len, |b| b.min(len));
        let limit = self.limit.unwrap_or(500).clamp(1, MAX_PAGE) as u64;
        (to.saturating_sub(limit), to)
    }
}

/// A run's page: its summary, what it waits for, its links, and some of its events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunView {
    /// The summary.
    pub run: RunRow,
    /// The steps it waits at (for a suspended run).
    pub waiting: Vec<Waiting>,
    /// Runs forked from this one.
    pub children: Vec<Link>,
    /// The events `[from, to)`, in order.
    pub events: Vec<Entry>,
    /// The first seq of `events`: earlier ones exist when it is above 0.
    pub from: u64,
    /// The seq after the last of `events`.
    pub to: u64,
}

impl RunView {
    /// The step an answer is for: the one it names, else the only one waiting.
    pub fn step_for(&self, named: Option<&str>) -> Result<StepKey> {
        if let Some(step) = named {
            return Ok(StepKey::from(step));
        }
        let run = self.run.id;
        match self.waiting.as_slice() {
            [one] => Ok(one.step.clone()),
            [] => Err(crate::Error::Conflict {
                message: format!("run {run} is not waiting for anyone ({})", self.run.status),
                code: None,
            }),
            many => Err(crate::Error::BadRequest(format!(
                "run {run} waits at several steps ({}); name one as `step`",
                many.iter()
                    .map(|w| w.step.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A step waiting for a person, with exactly what the person approves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Waiting {
    /// The step's key.
    pub step: StepKey,
    /// The call (`turn.index`).
    pub call: String,
    /// The seq of its `ApprovalRequested`.
    pub seq: u64,
    /// The form: command and directory, or the file and its diff, the policy's
    /// reason, and the digest an answer must name.
    pub form: keel_tools::ApprovalForm,
}

/// One recorded event, decoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Its position in the log.
    pub seq: u64,
    /// When it was recorded (ms since the epoch).
    pub at: u64,
    /// `run_started`, `llm_requested`, `llm_responded`, `approval_requested`, …
    pub kind: String,
    /// The event as stored (large tool outputs as a blob reference).
    pub event: Event,
}

impl Entry {
    /// The entry of a stored event.
    pub fn new(seq: Seq, stamped: Stamped) -> Self {
        Self {
            seq: seq.0,
            at: stamped.at.0,
            kind: stamped.event.kind().to_owned(),
            event: stamped.event,
        }
    }

    /// The event's time.
    pub fn time(&self) -> Timestamp {
        Timestamp(self.at)
    }
}

/// What a live stream carries.
#[derive(Clone, Debug)]
pub enum Update {
    /// A recorded event (SSE `event: entry`, with `id: <seq>`).
    Entry(Box<Entry>),
    /// Live text of a turn, not stored (SSE `event: delta`, no id).
    Delta(Delta),
    /// The run's summary changed (SSE `event: run`, no id).
    Run(Box<RunRow>),
    /// The run ended: nothing more will come (SSE `event: end`).
    End,
}

/// Live text of a turn.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delta {
    /// The turn.
    pub turn: u32,
    /// `text`, `thinking`, or `retry` (the provider sends the call again: drop the
    /// turn's live text so far).
    pub kind: String,
    /// The text (for a retry, why).
    pub text: String,
}

/// An answer to a waiting step, as the API takes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The step (default: the only one the run waits at).
    pub step: Option<String>,
    /// `approve` or `deny`.
    pub decision: Verdict,
    /// A note fed back to the model.
    pub note: Option<String>,
    /// Approve this kind of call for the rest of the run (the rule is recorded).
    #[serde(default)]
    pub always: bool,
    /// The digest of the form the person was shown: the answer is refused if the
    /// step waits with another.
    pub digest: String,
    /// Who answered (set by the server).
    #[serde(skip_deserializing)]
    pub by: String,
}

impl Answer {
    /// The engine's decision: bound to the digest shown, recording who answered.
    pub fn decision(&self) -> keel_engine::Decision {
        let mut decision = match self.decision {
            Verdict::Approve => keel_engine::Decision::approve(),
            Verdict::Deny => keel_engine::Decision::deny(),
        }
        .shown(self.digest.clone())
        .by(self.by.clone());
        if self.always {
            decision = decision.always();
        }
        if let Some(note) = self.note.clone().filter(|n| !n.trim().is_empty()) {
            decision = decision.with_note(note);
        }
        decision
    }
}

/// Approve or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Run the call.
    Approve,
    /// Do not run it; the model is told (with the note).
    Deny,
}

/// What became of an answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Decided {
    /// The step answered.
    pub step: StepKey,
    /// Whether the run continues now (else `keel resume` continues it).
    pub continued: bool,
}

/// Parses `status=a,b` into statuses.
pub fn parse_statuses(text: &str) -> Result<Vec<RunStatus>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "running" => Ok(RunStatus::Running),
            "suspended" | "waiting" => Ok(RunStatus::Suspended),
            "completed" => Ok(RunStatus::Completed),
            "failed" => Ok(RunStatus::Failed),
            "cancelled" => Ok(RunStatus::Cancelled),
            other => Err(crate::Error::BadRequest(format!(
                "unknown status `{other}` (running, suspended, completed, failed, cancelled)"
            ))),
        })
        .collect()
}

/// Run ids on the wire as the CLI prints them (32 hex digits); any form `RunId`
/// parses is accepted.
mod hex_id {
    use keel_storage::RunId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &RunId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
