//! Keel's LLM providers.
//!
//! [`LlmProvider`] is one call to a model: a provider-neutral [`Request`] in, a
//! complete [`Response`] out, with text [`Delta`]s streamed to the caller meanwhile.
//! Providers speak their wire formats exactly and retry transient faults themselves.
//!
//! - [`Anthropic`]: the Messages API, streamed; tool use, extended thinking (blocks
//!   sent back with their signatures), prompt-cache breakpoints, cache token usage.
//! - [`OpenAi`]: Chat Completions, streamed, and every server speaking it (Ollama,
//!   vLLM, llama.cpp, LM Studio, OpenRouter) through its base URL.
//! - [`Scripted`]: plays recorded responses from JSON, for offline runs and tests.
//! - [`pricing`]: a per-model price table and cost estimates.
//! - [`sse`]: the incremental server-sent-events parser both APIs use.
//!
//! # Faults and streaming
//! The HTTP providers retry 408/409/429/5xx/529, connection failures, timeouts (connect,
//! and an idle timeout between chunks), transient `error` events inside a stream and
//! streams cut before their end, with exponential backoff and full jitter
//! ([`RetryPolicy`]), honouring `retry-after-ms` / `retry-after`. Other client errors
//! (400, 401, 403, 404, 413, OpenAI's `insufficient_quota`) fail at once with the
//! provider's message. A retry resends the whole request: before it the caller gets
//! [`Delta::Retry`], meaning "discard the deltas of this call so far". A response is
//! returned only once the provider marked its end (`message_stop`, `[DONE]`).
//!
//! # Keys
//! Keys come from `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` (base URLs from
//! `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL`) or the builders. An [`ApiKey`] prints as
//! `ApiKey(<redacted>)`, request headers holding it are marked sensitive, and no key
//! is part of a [`Request`] or [`Response`], so none reaches logs or the event log.
//!
//! ```no_run
//! use keel_providers::{Anthropic, LlmProvider, Delta, Message, Request};
//!
//! # async fn demo() -> keel_providers::Result<()> {
//! let provider = Anthropic::from_env()?;
//! let request = Request::new("claude-sonnet-4-5", vec![Message::user("Hello")]);
//! let response = provider
//!     .complete(&request, &|delta| match delta {
//!         Delta::Text(text) => eprint!("{text}"),
//!         Delta::Retry { reason, .. } => eprintln!("\n[retrying: {reason}]"),
//!         _ => {}
//!     })
//!     .await?;
//! println!("{}", response.text());
//! let cost = keel_providers::pricing::estimate(&response.model, &response.usage);
//! println!("{:.4} USD", cost.map_or(0.0, |c| c.total()));
//! # Ok(())
//! # }
//! ```

pub mod anthropic;
mod error;
mod http;
mod json;
pub mod openai;
pub mod pricing;
mod provider;
pub mod retry;
pub mod scripted;
pub mod sse;
mod types;

pub use anthropic::Anthropic;
pub use error::{Error, Result};
pub use http::{ApiKey, Flow, HttpSettings};
pub use json::Json;
pub use openai::OpenAi;
pub use provider::{DeltaSink, DynLlmProvider, LlmProvider, SharedProvider};
pub use retry::RetryPolicy;
pub use scripted::Scripted;
pub use types::{
    ContentBlock, Delta, Message, Request, Response, Role, StopReason, ThinkingConfig,
    ToolDefinition, Usage,
};
