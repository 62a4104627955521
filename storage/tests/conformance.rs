//! The conformance suite, run for every backend of this crate.

mod sled {
    keel_storage::conformance_tests!(keel_storage::conformance::SledHarness);
}

mod memory {
    keel_storage::conformance_tests!(keel_storage::conformance::MemoryHarness);
}

mod postgres {
    //! On a throwaway Postgres server started by the test binary, a database per test.
    keel_storage::conformance_tests!(keel_storage::conformance::PgHarness::default());
}

mod shared {
    //! Through the object-safe `SharedStore`, as the engine holds a store.
    use keel_storage::conformance::{Harness, SledHarness};
    use keel_storage::{Result, SharedStore, SledStore};

    struct SharedSled;

    impl Harness for SharedSled {
        type Store = SharedStore;
        type Guard = tempfile::TempDir;

        async fn open(&self) -> Result<(SharedStore, tempfile::TempDir)> {
            let (store, dir) = SledHarness.open().await?;
            Ok((SharedStore::new(store), dir))
        }

        async fn reopen(
            &self,
            store: SharedStore,
            guard: &tempfile::TempDir,
        ) -> Result<SharedStore> {
            drop(store);
            Ok(SharedStore::new(SledStore::open(
                guard.path().join("store"),
            )?))
        }
    }

    keel_storage::conformance_tests!(SharedSled);
}

mod sled_flusher_only {
    //! With `appender_flushes(false)` every record goes through the flusher thread
    //! (the path concurrent appenders and non-tokio callers take anyway).
    use keel_storage::conformance::Harness;
    use keel_storage::{Result, SledOptions, SledStore};

    struct FlusherOnly;

    fn open(dir: &std::path::Path) -> Result<SledStore> {
        SledOptions::new(dir.join("store"))
            .appender_flushes(false)
            .open()
    }

    impl Harness for FlusherOnly {
        type Store = SledStore;
        type Guard = tempfile::TempDir;

        async fn open(&self) -> Result<(SledStore, tempfile::TempDir)> {
            let dir = tempfile::tempdir().map_err(keel_storage::Error::from_io)?;
            Ok((open(dir.path())?, dir))
        }

        async fn reopen(&self, store: SledStore, guard: &tempfile::TempDir) -> Result<SledStore> {
            drop(store);
            open(guard.path())
        }
    }

    keel_storage::conformance_tests!(FlusherOnly);
}
