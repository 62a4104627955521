//! The crate's error type: what can go wrong while building the sandbox tools.
//!
//! Failures of a tool call are not errors of this type: they are
//! [`ToolOutput::error`](crate::ToolOutput::error) results the model reads and acts on.

use std::path::PathBuf;

/// Why the sandbox tools could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent (a cwd outside the path restriction, a bad
    /// pattern, ...). Not retryable: fix the configuration.
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// The workspace directory could not be opened. Retryable once it exists and is
    /// readable.
    #[error("cannot open the workspace `{path}`: {source}")]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// This system lacks something the sandbox needs and will not run without
    /// (e.g. `openat2`, Linux 5.6+). Not retryable on this system.
    #[error("unsupported on this system: {0}")]
    Unsupported(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
