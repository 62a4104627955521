//! The conformance suite, run for every backend of this crate.

mod sled {
    keel_storage::conformance_tests!(keel_storage::conformance::SledHarness);
}

mod memory {
    keel_storage::conformance_tests!(keel_storage::conformance::MemoryHarness);
}

mod shared {
    //! Through the object-safe `SharedStore`, as the engine holds a store.
    use keel_storage::conformance::{Harness, SledHarness};
    use keel_storage::{Result, SharedStore, SledStore};

    struct SharedSled;

    impl Harness for SharedSled {
        type Store = SharedStore;
        type Guard = tempfile::TempDir;

        fn open(&self) -> Result<(SharedStore, tempfile::TempDir)> {
            let (store, dir) = SledHarness.open()?;
            Ok((SharedStore::new(store), dir))
        }

        fn reopen(&self, store: SharedStore, guard: &tempfile::TempDir) -> Result<SharedStore> {
            drop(store);
            Ok(SharedStore::new(SledStore::open(
                guard.path().join("store"),
            )?))
        }
    }

    keel_storage::conformance_tests!(SharedSled);
}
