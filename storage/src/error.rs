//! The storage error type.

use std::path::PathBuf;

use crate::id::{RunId, Seq};

/// A failure of the store itself. Expected outcomes (a wrong expected seq) are not
/// errors: see [`crate::Conflict`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the store. Not retryable until that process exits; talk
    /// to it through its control socket instead.
    #[error(
        "the store at {} is in use by another process{}; only one process may open a store, the others reach it through its owner",
        path.display(),
        owner.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// What the owner wrote about itself (pid and command), where it could be read.
        owner: Option<String>,
    },

    /// The disk is full. Retryable once space is freed; nothing was acknowledged.
    #[error("the disk holding the store is full: {0}")]
    DiskFull(#[source] std::io::Error),

    /// An I/O failure of the backend. Usually not retryable without operator action.
    #[error("store I/O error: {0}")]
    Io(#[source] std::io::Error),

    /// The backend reported a failure that is not plain I/O. Not retryable.
    #[error("store backend error: {0}")]
    Backend(String),

    /// A stored record could not be read back. Not retryable: the bytes on disk are wrong.
    #[error("corrupt record in run {run} at seq {seq}: {detail}")]
    Corrupt {
        /// The run the record belongs to.
        run: RunId,
        /// Its position.
        seq: Seq,
        /// What was wrong.
        detail: String,
    },

    /// A stored run summary or blob could not be read back. Not retryable.
    #[error("corrupt {what}: {detail}")]
    CorruptMeta {
        /// Which kind of record.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// An earlier flush failed, so the store no longer knows what is durable. Reopen it.
    #[error("the store stopped accepting writes after a failed flush ({0}); reopen it to recover")]
    Poisoned(String),

    /// The store was closed.
    #[error("the store is closed")]
    Closed,

    /// The database server could not be reached, or the connection to it was lost.
    /// Retryable: nothing is lost, and the same call can succeed once the server
    /// answers again. An `append` that fails this way may or may not have been
    /// committed (the answer was lost with the connection): read the log to find out.
    #[error(
        "cannot reach the database {target}: {detail}; check that the server is running and that the URL's host, port (or socket directory) and database are right, then try again"
    )]
    Unavailable {
        /// The store, as a URL without its password.
        target: String,
        /// What failed.
        detail: String,
    },

    /// The database server refused this client: wrong credentials, a missing
    /// database, or missing privileges. Not retryable until the configuration is fixed.
    #[error(
        "the database {target} refused Keel: {detail}; check the URL's user, password and database name, and the user's privileges"
    )]
    Denied {
        /// The store, as a URL without its password.
        target: String,
        /// What the server said.
        detail: String,
    },

    /// The text naming a store is not a path or a URL this build can open. Not retryable.
    #[error("`{url}` does not name a store: {reason}")]
    BadUrl {
        /// What was given, without its password.
        url: String,
        /// What is wrong with it, and what would be right.
        reason: String,
    },

    /// The database's schema cannot be used by this build: it was migrated by a newer
    /// Keel, or a recorded migration differs from this build's. Not retryable.
    #[error("the store's schema cannot be used: {0}")]
    Schema(String),

    /// This process's claim on the run was superseded (the run changed hands): the
    /// write was refused and nothing was written. Not retryable: stop driving the run.
    #[error(transparent)]
    Fenced(#[from] crate::leases::Fenced),
}

impl Error {
    /// Classifies an I/O error, singling out a full disk.
    pub fn from_io(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(28) {
            Error::DiskFull(err)
        } else {
            Error::Io(err)
        }
    }

    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::DiskFull(_) | Error::Unavailable { .. })
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
