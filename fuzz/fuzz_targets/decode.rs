//! Fuzzes the event-log codec; the body is `keel_fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_fuzz::decode::run(data));
