//! Fuzzes the exec policy; the body is `keel_fuzz::exec_policy`.
#![no_main]

use std::sync::OnceLock;

use keel_fuzz::exec_policy::Policies;

static POLICIES: OnceLock<Policies> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    POLICIES
        .get_or_init(|| Policies::new().unwrap_or_else(|e| panic!("the policies compile: {e}")))
        .run(data, false)
});
