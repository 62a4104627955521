//! The lease suite, for every backend of this crate that has leases.

mod memory {
    keel_storage::lease_tests!(keel_storage::conformance::MemoryHarness);
}

mod postgres {
    //! On the binary's throwaway Postgres server; each handle has a pool and a
    //! notification listener of its own, as another process would.
    keel_storage::lease_tests!(keel_storage::conformance::PgHarness::default());
}
