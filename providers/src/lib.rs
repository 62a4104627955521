//! Keel's LLM providers.
//!
//! [`LlmProvider`] is one call to a model: a provider-neutral [`Request`] in, a
//! complete [`Response`] out, with text [`Delta`]s streamed to the caller meanwhile.
//! Providers speak their wire formats exactly and retry transient faults themselves.
//!
//! ```no_run
//! use keel_providers::{LlmProvider, Message, Request};
//!
//! # async fn demo(provider: impl LlmProvider) -> keel_providers::Result<()> {
//! let request = Request::new("claude-sonnet-4-5", vec![Message::user("Hello")]);
//! let response = provider
//!     .complete(&request, &|delta| eprint!("{delta:?}"))
//!     .await?;
//! println!("{}", response.text());
//! # Ok(())
//! # }
//! ```

pub mod anthropic;
mod error;
mod http;
mod json;
pub mod openai;
mod provider;
pub mod retry;
pub mod sse;
mod types;

pub use anthropic::Anthropic;
pub use error::{Error, Result};
pub use http::{ApiKey, Flow, HttpSettings};
pub use json::Json;
pub use openai::OpenAi;
pub use provider::{DeltaSink, DynLlmProvider, LlmProvider, SharedProvider};
pub use retry::RetryPolicy;
pub use types::{
    ContentBlock, Delta, Message, Request, Response, Role, StopReason, ThinkingConfig,
    ToolDefinition, Usage,
};
