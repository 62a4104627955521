//! Integration tests of the providers against loopback HTTP servers, compiled into
//! one binary.

// Test helpers outside #[test] functions panic on failure too; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
