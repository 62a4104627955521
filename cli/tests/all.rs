//! Black-box tests of the `keel` binary, compiled into one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
mod support;
