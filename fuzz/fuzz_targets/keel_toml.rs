//! Fuzzes the `keel.toml` parser; the body is `keel_fuzz::keel_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_fuzz::keel_toml::run(data));
