//! The dashboard's HTTP API against a real server on loopback, over a real store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
mod support;
