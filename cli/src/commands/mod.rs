//! One module per command, as `commands/<noun>/<verb>.rs`.

pub mod demo;
pub mod run;
pub mod runs;
pub mod serve;
pub mod ui;

use std::path::PathBuf;

use anyhow::Result;

use crate::config::Agents;

/// What every command knows.
#[derive(Debug)]
pub struct Ctx {
    /// The store directory.
    pub store: PathBuf,
    /// The configuration file given, if any.
    pub config: Option<PathBuf>,
}

impl Ctx {
    /// The agents of the configuration.
    pub fn agents(&self) -> Result<Agents> {
        Agents::load(self.config.as_deref()).map_err(crate::usage)
    }
}

/// Who answers approvals at this terminal, as recorded in the log.
pub fn who() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".to_owned())
}
