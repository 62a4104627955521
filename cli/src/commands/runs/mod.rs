//! Commands on all runs.

pub mod list;
