//! The conformance suite every [`EventStore`] backend (and every wrapper around one)
//! must pass. Enabled by the `conformance` feature, for other crates' tests.
//!
//! A [`Harness`] opens a fresh store with a guard that cleans it up, and can *reopen*
//! it: drop it and open the same data again (the same directory for sled; the same
//! shared memory for the in-memory store). Each check is a public async function;
//! [`conformance_tests!`](crate::conformance_tests) turns all of them into `#[tokio::test]`s:
//!
//! ```ignore
//! keel_storage::conformance_tests!(keel_storage::conformance::SledHarness);
//! ```
//!
//! With the `postgres` feature, [`TestPostgres`] starts a throwaway Postgres server
//! (one per test binary, a database per store) and [`PgHarness`] runs the suite on it.
//!
//! The checks panic on failure, like the assertions of a test.

// Test code shipped for other crates' tests: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::id::{RunId, Seq};
use crate::memory::MemoryStore;
use crate::sled::SledStore;
use crate::store::EventStore;

mod cases;
pub mod leases;
#[cfg(feature = "postgres")]
pub mod postgres;
mod watch;
pub use cases::*;
pub use leases::LeaseHarness;
#[cfg(feature = "postgres")]
pub use postgres::{PgHarness, TestPostgres, create_schema_at};
pub use watch::*;

/// How a suite gets stores to test.
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: EventStore + Clone;
    /// Keeps the store's resources (a temporary directory) until dropped.
    type Guard: Send + Sync;

    /// A fresh, empty store.
    fn open(&self) -> impl Future<Output = Result<(Self::Store, Self::Guard)>> + Send;

    /// Drops `store` and opens the same data again. The caller has dropped every
    /// other clone of it and every watch stream on it.
    fn reopen(
        &self,
        store: Self::Store,
        guard: &Self::Guard,
    ) -> impl Future<Output = Result<Self::Store>> + Send;
}

/// Stores in a temporary directory on disk; reopening opens the directory again.
#[derive(Debug, Clone, Copy, Default)]
pub struct SledHarness;

impl Harness for SledHarness {
    type Store = SledStore;
    type Guard = tempfile::TempDir;

    async fn open(&self) -> Result<(SledStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().map_err(crate::Error::from_io)?;
        Ok((SledStore::open(dir.path().join("store"))?, dir))
    }

    async fn reopen(&self, store: SledStore, guard: &tempfile::TempDir) -> Result<SledStore> {
        drop(store);
        SledStore::open(guard.path().join("store"))
    }
}

/// In-memory stores; reopening hands back a handle on the same shared data.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryHarness;

impl Harness for MemoryHarness {
    type Store = MemoryStore;
    type Guard = MemoryStore;

    async fn open(&self) -> Result<(MemoryStore, MemoryStore)> {
        let store = MemoryStore::new();
        Ok((store.clone(), store))
    }

    async fn reopen(&self, store: MemoryStore, guard: &MemoryStore) -> Result<MemoryStore> {
        drop(store);
        Ok(guard.clone())
    }
}

impl LeaseHarness for MemoryHarness {
    type Store = MemoryStore;
    type Guard = MemoryStore;

    async fn open(&self, lease_time: Duration) -> Result<(MemoryStore, MemoryStore)> {
        let store = MemoryStore::new().with_lease_time(lease_time);
        Ok((store.clone(), store))
    }

    async fn another(&self, guard: &MemoryStore, lease_time: Duration) -> Result<MemoryStore> {
        Ok(guard.with_lease_time(lease_time))
    }
}

/// Generates one `#[tokio::test]` per check of the suite for a harness expression.
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            append_and_read,
            wrong_expected_seq_never_writes,
            racers_on_one_seq_exactly_one_wins,
            blobs_are_content_addressed,
            summaries_and_list_runs,
            delete_run_removes_the_log_and_keeps_blobs,
            watch_yields_existing_then_live,
            watch_started_mid_stream_has_no_gap_or_duplicate,
            batches_are_atomic,
            reopen_keeps_every_acknowledged_event,
            empty_batches,
            large_records,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case(&$harness).await;
            }
        )*
    };
}

/// Deterministic event bytes: distinct per run, seq and size.
pub fn event_bytes(run: RunId, seq: Seq, len: usize) -> Bytes {
    let mut state = u64::from_le_bytes(run.as_bytes()[8..].try_into().unwrap_or([0; 8]))
        ^ seq.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift: cheap, and every byte depends on run and seq.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}
