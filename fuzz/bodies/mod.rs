//! The bodies of Keel's fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) and the workspace's `fuzz_corpus` test, which runs every
//! committed corpus file through the same functions on the stable toolchain.
//!
//! Each body takes the fuzzer's bytes and panics (an assertion) only when a property
//! the code under test promises is broken; the code under test itself must never
//! panic on any input.

pub mod decode;
pub mod exec_policy;
pub mod keel_toml;
pub mod path_resolver;
pub mod sse;

/// The targets and their bodies, by the names of their corpus folders.
pub const TARGETS: [&str; 5] = ["decode", "sse", "path_resolver", "exec_policy", "keel_toml"];
