//! What people answer, and what callers learn about how a run stands.

use std::sync::Arc;

use keel_tools::{AllowRule, ApprovalForm};
use serde::{Deserialize, Serialize};

use crate::ids::{CallId, StepKey};

/// A person's answer to a step: approve or deny a call, or answer a question.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    /// Approve (or answer) rather than deny (or decline).
    pub approved: bool,
    /// A note fed back to the model.
    pub note: Option<String>,
    /// Approve this and every later call the tool's rule covers, for this run.
    pub always: bool,
    /// With `always`: the rule to remember, one of those the tool offers for this
    /// call (`Tool::always_rules`); `None` remembers the first (narrowest) one. A
    /// rule the tool does not offer is refused.
    pub rule: Option<AllowRule>,
    /// For a question: the answers, a JSON object of field names to values.
    pub answer: Option<serde_json::Value>,
    /// The digest of the form the person was shown; the decision is refused if the
    /// waiting request has another.
    pub shown_digest: Option<String>,
    /// Who decided (recorded in the log).
    pub by: Option<String>,
}

impl Decision {
    /// Approve.
    pub fn approve() -> Self {
        Self {
            approved: true,
            ..Self::default()
        }
    }

    /// Deny.
    pub fn deny() -> Self {
        Self::default()
    }

    /// Answer a question with these field values.
    pub fn answer(values: serde_json::Value) -> Self {
        Self {
            approved: true,
            answer: Some(values),
            ..Self::default()
        }
    }

    /// Adds a note for the model.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Approve calls like this one for the rest of the run: the narrowest rule the
    /// tool offers (for `exec`, exactly this command in this directory).
    #[must_use]
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// Approve, remembering `rule` (one the tool offers for this call, chosen by the
    /// person after seeing its words) for the rest of the run.
    #[must_use]
    pub fn always_as(mut self, rule: AllowRule) -> Self {
        self.always = true;
        self.rule = Some(rule);
        self
    }

    /// Binds the decision to the form shown (its `digest`).
    #[must_use]
    pub fn shown(mut self, digest: impl Into<String>) -> Self {
        self.shown_digest = Some(digest.into());
        self
    }

    /// Records who decided.
    #[must_use]
    pub fn by(mut self, who: impl Into<String>) -> Self {
        self.by = Some(who.into());
        self
    }
}

/// A step waiting for a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingStep {
    /// The step's key (name it in the answer).
    pub step: StepKey,
    /// The call waiting.
    pub call: CallId,
    /// The tool.
    pub tool: String,
    /// What to show the person.
    pub form: Arc<ApprovalForm>,
}

/// How a run stands once nobody is executing it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// It finished with an output.
    Completed {
        /// The final text.
        output: String,
        /// The stop condition that ended it, if one did.
        stopped_by: Option<String>,
    },
    /// It failed.
    Failed {
        /// What went wrong.
        error: String,
        /// A stable code, where there is one.
        code: Option<String>,
    },
    /// It was cancelled.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// It waits for people at these steps.
    Suspended {
        /// The steps.
        waiting: Vec<PendingStep>,
    },
    /// It has not ended and waits for nobody, but nothing executes it: it was
    /// interrupted (a crash, a shutdown). `Keel::continue_run` or `recover` resumes it.
    Interrupted,
}
