//! keel-tools integration tests, one binary (`cargo test -p keel-tools --test all`).
//!
//! `sec_NN_*` tests are SECURITY.md's checklist, item NN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
