//! A handle on one run.

use futures::stream::BoxStream;
use keel_storage::RunId;

use super::Keel;
use crate::decision::{Decision, RunOutcome};
use crate::error::Result;
use crate::ids::StepKey;
use crate::stream::RunEvent;

/// A handle on one run.
#[derive(Clone, Debug)]
pub struct RunHandle {
    pub(super) keel: Keel,
    pub(super) run: RunId,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.run
    }

    /// See [`Keel::events`].
    pub fn events(&self) -> BoxStream<'static, Result<RunEvent>> {
        self.keel.events(self.run)
    }

    /// See [`Keel::result`].
    pub async fn result(&self) -> Result<RunOutcome> {
        self.keel.result(self.run).await
    }

    /// See [`Keel::resume`].
    pub async fn resume(&self, step: &StepKey, decision: Decision) -> Result<()> {
        self.keel.resume(self.run, step, decision).await
    }

    /// See [`Keel::cancel`].
    pub async fn cancel(&self, reason: impl Into<String>) -> Result<()> {
        self.keel.cancel(self.run, reason).await
    }
}
