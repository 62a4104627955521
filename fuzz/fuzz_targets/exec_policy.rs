//! Fuzzes the exec policy; the body is `keel_fuzz::exec_policy`.
#![no_main]

use std::sync::OnceLock;

use keel_fuzz::exec_policy::{Policies, quiet_parser_panics};

static POLICIES: OnceLock<Policies> = OnceLock::new();

fn init() -> Policies {
    // After libFuzzer's own hook is installed, so the parser's caught panics pass.
    quiet_parser_panics();
    Policies::new().unwrap_or_else(|e| panic!("the policies compile: {e}"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| POLICIES.get_or_init(init).run(data, false));
