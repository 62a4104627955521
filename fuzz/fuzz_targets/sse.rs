//! Fuzzes the SSE parser; the body is `keel_fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keel_fuzz::sse::run(data));
