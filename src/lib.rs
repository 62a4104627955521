//! Keel: a durable runtime for AI agents.
//!
//! This facade re-exports the public API of Keel's crates:
//! - [`storage`]: the event log ([`storage::EventStore`], the sled and memory backends);
//! - [`engine`]: events, run state, the replay executor and the runtime ([`engine::Keel`]);
//! - [`tools`]: the `Tool` trait, approval forms and the sandbox tools;
//! - [`providers`]: the `LlmProvider` trait, Anthropic, OpenAI-compatible and scripted providers.
//!
//! The project's README follows; its example is compiled as a doc test.
#![doc = include_str!("../README.md")]

pub use keel_engine as engine;
pub use keel_providers as providers;
pub use keel_storage as storage;
pub use keel_tools as tools;
/// See [`keel_tools::harden_process`]: call it first thing in `main`.
pub use keel_tools::{Hardening, harden_process};
