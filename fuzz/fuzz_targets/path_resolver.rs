//! Fuzzes the file tools' path resolver against a fixture workspace; the body is
//! `keel_fuzz::path_resolver`.
#![no_main]

use std::sync::OnceLock;

use keel_fuzz::path_resolver::Fixture;

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    FIXTURE
        .get_or_init(|| {
            Fixture::new().unwrap_or_else(|e| panic!("cannot build the workspace: {e}"))
        })
        .run(data)
});
