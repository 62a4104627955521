//! The engine's errors, and the stable codes some of them carry.
//!
//! | code | meaning |
//! | --- | --- |
//! | `KEEL-E100` | non-determinism: replaying the log under the current agent definition and engine would not produce the recorded history |
//! | `KEEL-E101` | another writer appended to the run first (one writer per run) |
//! | `KEEL-E102` | a stored event could not be decoded |
//! | `KEEL-E200` | the LLM provider failed after its own retries |
//! | `KEEL-E201` | the run's agent is not registered in this runtime |
//! | `KEEL-E202` | the run's agent cannot be rebuilt from the definition it recorded |

use std::fmt;

use keel_storage::{Conflict, RunId, RunStatus, Seq};

use crate::codec::{DecodeError, EncodeError};
use crate::ids::StepKey;

/// Replaying a run would not produce its recorded history: the agent definition (or
/// the engine) changed under a recorded run, or the log is not a history this engine
/// could have written. Code `KEEL-E100`. Not retryable: restore the definition the
/// run was recorded with, or fork the run from before the divergence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonDeterminism {
    /// The run.
    pub run: RunId,
    /// The seq of the recorded event that does not match.
    pub seq: Seq,
    /// What differs (e.g. `agent.system_prompt`).
    pub what: String,
    /// What the log holds.
    pub recorded: String,
    /// What the current definition produces.
    pub current: String,
}

impl NonDeterminism {
    /// The stable code.
    pub const CODE: &'static str = "KEEL-E100";

    /// A divergence at `seq` in `what`.
    pub fn new(
        run: RunId,
        seq: Seq,
        what: impl Into<String>,
        recorded: impl Into<String>,
        current: impl Into<String>,
    ) -> Self {
        Self {
            run,
            seq,
            what: what.into(),
            recorded: recorded.into(),
            current: current.into(),
        }
    }
}

impl fmt::Display for NonDeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] non-determinism in run {} at seq {}: {} differs\n  recorded: {}\n  current:  {}",
            Self::CODE,
            self.run,
            self.seq,
            self.what,
            self.recorded,
            self.current
        )
    }
}

impl std::error::Error for NonDeterminism {}

/// An engine failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed. Retryable when the store error is.
    #[error(transparent)]
    Store(#[from] keel_storage::Error),

    /// A stored event could not be decoded (`KEEL-E102`). Not retryable.
    #[error("[KEEL-E102] {0}")]
    Decode(#[from] DecodeError),

    /// An event could not be encoded. Not retryable.
    #[error(transparent)]
    Encode(#[from] EncodeError),

    /// See [`NonDeterminism`] (`KEEL-E100`). Not retryable.
    #[error(transparent)]
    NonDeterminism(Box<NonDeterminism>),

    /// Another writer appended to the run first (`KEEL-E101`). Retryable after
    /// re-reading the run, if it still needs what you meant to do.
    #[error("[KEEL-E101] {0}; another writer is driving this run")]
    Conflict(Conflict),

    /// No run has this id. Not retryable.
    #[error("no run {0} in this store (list runs with `keel runs`)")]
    UnknownRun(RunId),

    /// The run's agent is not registered in this runtime (`KEEL-E201`). Register it
    /// (`Keel::register`) and try again.
    #[error(
        "[KEEL-E201] run {run} belongs to agent `{agent}`, which is not registered in this runtime"
    )]
    UnknownAgent {
        /// The run.
        run: RunId,
        /// The agent's id.
        agent: String,
    },

    /// The run's agent cannot be rebuilt from the definition it recorded
    /// (`KEEL-E202`): the rebuilder said why (a missing API key, a workspace that is
    /// gone). Retryable once that is fixed; nothing was written.
    #[error(
        "[KEEL-E202] cannot rebuild agent `{agent}` of run {run} from its recorded definition: {reason}"
    )]
    Rebuild {
        /// The run.
        run: RunId,
        /// The agent's id.
        agent: String,
        /// Why.
        reason: String,
    },

    /// The run is not waiting at this step. Not retryable.
    #[error("run {run} is not waiting at step `{step}`{}", waiting_list(.waiting))]
    UnknownStep {
        /// The run.
        run: RunId,
        /// The step named.
        step: StepKey,
        /// The steps it is waiting at.
        waiting: Vec<StepKey>,
    },

    /// The step was already answered; an answer is applied once. Not retryable.
    #[error("step `{step}` of run {run} was already answered")]
    AlreadyAnswered {
        /// The run.
        run: RunId,
        /// The step.
        step: StepKey,
    },

    /// The decision names a different request than the one waiting (the digest of
    /// what the person was shown does not match). Not retryable.
    #[error(
        "the decision for step `{step}` of run {run} was made for a different request (shown {shown}, waiting {waiting}); look at the request again"
    )]
    DigestMismatch {
        /// The run.
        run: RunId,
        /// The step.
        step: StepKey,
        /// The digest the decision names.
        shown: String,
        /// The digest of the waiting request.
        waiting: String,
    },

    /// The answer does not fit the question's fields. Not retryable as is.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),

    /// The run is being executed in this process right now. Retryable once it
    /// suspends or ends.
    #[error("run {0} is being executed right now")]
    Busy(RunId),

    /// The run already ended. Not retryable; fork it to continue from an earlier point.
    #[error("run {run} already ended ({status}); fork it to continue from an earlier point")]
    Ended {
        /// The run.
        run: RunId,
        /// How it ended.
        status: RunStatus,
    },

    /// The run stopped executing because of an error (usually the store's); it is
    /// left resumable. Retryable: `Keel::continue_run` once the cause is fixed.
    #[error("run {run} stopped: {reason}; it can be resumed once the cause is fixed")]
    Halted {
        /// The run.
        run: RunId,
        /// What stopped it.
        reason: String,
    },

    /// The fork point is outside the run's log. Not retryable.
    #[error("cannot fork run {run} at seq {at}: its log has {len} events (fork at 1..={len})")]
    BadForkPoint {
        /// The run.
        run: RunId,
        /// The seq asked for.
        at: Seq,
        /// The log's length.
        len: u64,
    },
}

fn waiting_list(waiting: &[StepKey]) -> String {
    if waiting.is_empty() {
        " (it is not waiting for anyone)".to_owned()
    } else {
        let steps: Vec<&str> = waiting.iter().map(StepKey::as_str).collect();
        format!(" (it is waiting at: {})", steps.join(", "))
    }
}

impl From<Box<NonDeterminism>> for Error {
    fn from(e: Box<NonDeterminism>) -> Self {
        Error::NonDeterminism(e)
    }
}

impl Error {
    /// The stable code of the error, where it has one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::NonDeterminism(_) => Some(NonDeterminism::CODE),
            Error::Conflict(_) => Some("KEEL-E101"),
            Error::Decode(_) => Some("KEEL-E102"),
            Error::UnknownAgent { .. } => Some("KEEL-E201"),
            Error::Rebuild { .. } => Some("KEEL-E202"),
            _ => None,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
