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
//!   sled behind a write-ahead log with group commit (design and measurements in
//!   `storage/src/sled/mod.rs`).
//! - [`MemoryStore`]: in memory, for tests and ephemeral runs.
//! - [`PgStore`] (feature `postgres`, on by default): a Postgres database that many
//!   processes on many machines open at once. It also implements [`Leases`]: workers
//!   claim runs under time-limited leases, and every append made under a lease is
//!   fenced by the run's epoch (design and guarantees in the `postgres` module and
//!   [`leases`]).
//!
//! [`StoreUrl`] turns what a person types into a store: a path is a sled store, a
//! `postgres://` or `postgresql://` URL (libpq's forms, `?host=/socket/dir` included)
//! a Postgres one; [`AnyStore`] holds either.
//!
//! # Durability of the sled store (exactly)
//!
//! - `append`, `put_blob` and `delete_run` return `Ok` only after the write-ahead-log
//!   record carrying them was written and `fdatasync`ed, in a segment whose directory
//!   entry was `fsync`ed before its first record (segments are written full of zeros
//!   and `fsync`ed ahead of time, so that `fdatasync` has only data to flush). From
//!   then on it survives a process kill and a power cut (on a drive that honours
//!   cache flushes).
//! - A batch is one checksummed record: after a crash it is there whole or not at all.
//!   Records are recovered in log order, which is the order appends were checked and
//!   acknowledged, so a recovered run is `0..n` with no gap and no torn event. A torn
//!   tail (or the unwritten zeros after the last record) is cut off at open; damage
//!   before the tail stops the open with [`Error::CorruptMeta`] instead of dropping
//!   later records.
//! - Concurrent appends share one `fdatasync` (group commit).
//! - Reads, `run_info`, `list_runs` and watches show only durable records, and every
//!   record acknowledged before the call.
//! - A log segment is deleted only after sled's copy of its records was flushed and
//!   every file of sled's tree `fsync`ed.
//! - After a failed write or sync the store refuses writes ([`Error::Poisoned`]):
//!   the outcome of the appends in flight is unknown; reopening recovers what is on
//!   disk.
//! - One process per store directory: a second one gets [`Error::Locked`] at once,
//!   naming the owner's pid and command line.
//!
//! # Durability of the Postgres store (exactly)
//!
//! - `append`, `put_blob` and `delete_run` return `Ok` only after their transaction
//!   committed with `synchronous_commit` at least `local` (a session whose server
//!   default is `off` is switched to `on`): the commit is in the server's flushed WAL.
//!   That survives a crash of the server or its machine on a server with `fsync` on
//!   (the default; Keel warns at open when it is off).
//! - An append is one statement: a compare-and-set on the run's length (and, under a
//!   lease, its fencing epoch) with the inserts of its events and blobs. A batch is
//!   one transaction, all or nothing. Appends to a run commit in seq order, so reads
//!   always see a gap-free prefix.
//! - A lost connection is [`Error::Unavailable`], retryable; the outcome of an append
//!   that failed that way is unknown until the log is read again.
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
pub mod leases;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sled;
mod store;
mod url;
mod watch;

pub use self::sled::{DEFAULT_DIR, SledOptions, SledStore};
pub use error::{Error, Result};
pub use id::{BlobHash, ParseBlobHashError, ParseRunIdError, RunId, Seq, Timestamp};
pub use leases::{
    Epoch, Fenced, FencedAppendResult, FencedStore, Lease, Leases, Refusal, WorkHint, WorkerId,
};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore};
pub use store::{
    AppendResult, Batch, Conflict, DynEventStore, EventStore, Record, RunInfo, RunStatus,
    RunSummary, SharedStore,
};
pub use url::{AnyStore, StoreUrl};
pub use watch::WatchHub;
