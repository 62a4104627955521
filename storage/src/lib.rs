//! Keel's event log.
//!
//! A **run** is an append-only sequence of encoded events numbered `0, 1, 2, …`
//! (its [`Seq`]s). This crate stores those sequences, one per [`RunId`], together with
//! a small [`RunSummary`] per run (for listing) and a content-addressed blob space for
//! large payloads. It never looks inside an event: encoding is the engine's business.
//!
//! The [`EventStore`] trait states the guarantees exactly (durability, atomic batches,
//! compare-and-set appends, gap-free watching); every backend passes one conformance
//! suite. Backends:
//! - [`SledStore`] (the default): a directory on disk, `./.keel` unless told otherwise.
//!   sled behind a write-ahead log with group commit; see its module docs for the
//!   design and the exact durability statement.
//! - [`MemoryStore`]: in memory, for tests and ephemeral runs.
//!
//! ```no_run
//! use bytes::Bytes;
//! use keel_storage::{Batch, EventStore, MemoryStore, RunId, Seq};
//!
//! # async fn demo() -> keel_storage::Result<()> {
//! let store = MemoryStore::new();
//! let run = RunId::new();
//! // Seq 0 creates the run; a wrong expected seq is a `Conflict`, not an error.
//! let next = store.append(run, Seq::ZERO, Batch::events([Bytes::from_static(b"e0")])).await?;
//! assert_eq!(next, Ok(Seq(1)));
//! let stale = store.append(run, Seq::ZERO, Batch::events([Bytes::from_static(b"x")])).await?;
//! assert!(stale.is_err());
//! assert_eq!(store.read(run, Seq::ZERO).await?.len(), 1);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod id;
mod memory;
mod sled;
mod store;
mod watch;

pub use self::sled::{DEFAULT_DIR, SledOptions, SledStore};
pub use error::{Error, Result};
pub use id::{BlobHash, ParseBlobHashError, ParseRunIdError, RunId, Seq, Timestamp};
pub use memory::MemoryStore;
pub use store::{
    AppendResult, Batch, Conflict, DynEventStore, EventStore, Record, RunInfo, RunStatus,
    RunSummary, SharedStore,
};
pub use watch::WatchHub;
