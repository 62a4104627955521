//! OpenAI Chat Completions (`POST {base}/chat/completions`), always streamed, and
//! every server that speaks it: Ollama, vLLM, llama.cpp's server, LM Studio,
//! OpenRouter.
//!
//! The base URL composes as in the official SDK: it *includes* the version prefix, so
//! `OPENAI_BASE_URL` is `https://api.openai.com/v1` (the default),
//! `http://localhost:11434/v1` for Ollama, `http://localhost:8000/v1` for vLLM,
//! `http://localhost:8080/v1` for llama.cpp, `http://localhost:1234/v1` for LM Studio,
//! `https://openrouter.ai/api/v1` for OpenRouter; `/chat/completions` is appended.
//! The key comes from `OPENAI_API_KEY` and goes in `Authorization: Bearer`; local
//! servers that need none can be built with [`Builder::without_api_key`].
//! `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID`, when set, add the `OpenAI-Organization`
//! and `OpenAI-Project` headers, as in the SDK.
//!
//! ```no_run
//! use keel_providers::{LlmProvider, Message, OpenAi, Request};
//!
//! # async fn demo() -> keel_providers::Result<()> {
//! let ollama = OpenAi::builder()
//!     .base_url("http://localhost:11434/v1")
//!     .without_api_key()
//!     .build()?;
//! let request = Request::new("qwen3:8b", vec![Message::user("Hello")]);
//! println!("{}", ollama.complete(&request, &|_| {}).await?.text());
//! # Ok(())
//! # }
//! ```

mod request;
mod stream;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::Value;

pub use stream::Accumulator;

use crate::error::{Error, Result};
use crate::http::{self, ApiKey, Connection, Endpoint, Wire};
use crate::provider::{DeltaSink, LlmProvider};
use crate::types::{Request, Response};

/// The variable holding the API key.
pub const API_KEY_VAR: &str = "OPENAI_API_KEY";
/// The variable overriding the base URL.
pub const BASE_URL_VAR: &str = "OPENAI_BASE_URL";
/// The variable naming the organization (optional).
pub const ORG_ID_VAR: &str = "OPENAI_ORG_ID";
/// The variable naming the project (optional).
pub const PROJECT_ID_VAR: &str = "OPENAI_PROJECT_ID";
/// The base URL of OpenAI's API, version prefix included.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

const PROVIDER: &str = "openai";

/// Which request field carries [`Request::max_tokens`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens`: what compatible servers (Ollama, vLLM, llama.cpp, LM Studio) read.
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI requires for its reasoning models and
    /// accepts for all.
    MaxCompletionTokens,
}

/// The Chat Completions provider. Cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct OpenAi {
    endpoint: Endpoint,
    max_tokens: MaxTokensField,
    include_usage: bool,
}

/// Configures an [`OpenAi`] provider. Fields not set come from the environment.
#[derive(Clone, Debug)]
pub struct Builder {
    conn: Connection,
    no_api_key: bool,
    max_tokens: Option<MaxTokensField>,
    include_usage: bool,
}

impl OpenAi {
    /// A builder with defaults: key and base URL from the environment.
    pub fn builder() -> Builder {
        Builder {
            conn: Connection::default(),
            no_api_key: false,
            max_tokens: None,
            include_usage: true,
        }
    }

    /// A provider configured from the environment alone.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        self.endpoint.url.as_str()
    }

    /// The JSON body this provider would send for `request` (for inspection and tests).
    pub fn request_body(&self, request: &Request) -> Value {
        request::body(request, self.max_tokens, self.include_usage)
    }
}

impl Builder {
    /// The API key, instead of `OPENAI_API_KEY`.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.conn.api_key = Some(key.into());
        self
    }

    /// Sends no `Authorization` header, for local servers that need no key; no key is
    /// read from the environment either.
    pub fn without_api_key(mut self) -> Self {
        self.no_api_key = true;
        self
    }

    /// The base URL including its version prefix (`/chat/completions` is appended),
    /// instead of `OPENAI_BASE_URL`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.conn.base_url = Some(url.into());
        self
    }

    /// Which field carries the token limit. By default `max_completion_tokens` for
    /// `api.openai.com` and `max_tokens` for every other server.
    pub fn max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens = Some(field);
        self
    }

    /// Whether to ask for usage in the stream (`stream_options.include_usage`). On by
    /// default; turn it off for a server that rejects the option.
    pub fn include_usage(mut self, on: bool) -> Self {
        self.include_usage = on;
        self
    }

    http::connection_setters!();

    /// Builds the provider, reading unset fields from the process environment.
    pub fn build(self) -> Result<OpenAi> {
        self.build_with_env(|name| std::env::var(name).ok())
    }

    /// Builds the provider, reading unset fields through `env` (a variable's value by
    /// name) instead of the process environment.
    pub fn build_with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<OpenAi> {
        let present = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let key = match (self.conn.api_key.take(), self.no_api_key) {
            (Some(key), _) => Some(key),
            (None, true) => None,
            (None, false) => Some(ApiKey::new(present(API_KEY_VAR).ok_or(
                Error::MissingApiKey {
                    provider: PROVIDER,
                    var: API_KEY_VAR,
                },
            )?)),
        };
        let base = self.conn.base(&env, BASE_URL_VAR, DEFAULT_BASE_URL);
        let url = http::join_url(&base, "chat/completions")?;
        let official = url.host_str() == Some("api.openai.com");
        let mut headers = HeaderMap::new();
        if let Some(key) = &key {
            let bearer = format!("Bearer {}", key.expose());
            headers.insert(AUTHORIZATION, http::secret_header(&bearer, PROVIDER)?);
        }
        if let Some(org) = present(ORG_ID_VAR) {
            self.conn.headers.push("openai-organization".into(), org);
        }
        if let Some(project) = present(PROJECT_ID_VAR) {
            self.conn.headers.push("openai-project".into(), project);
        }
        Ok(OpenAi {
            endpoint: self.conn.endpoint(PROVIDER, url, headers)?,
            max_tokens: self.max_tokens.unwrap_or(if official {
                MaxTokensField::MaxCompletionTokens
            } else {
                MaxTokensField::MaxTokens
            }),
            include_usage: self.include_usage,
        })
    }
}

struct ChatWire;

impl Wire for ChatWire {
    type Decoder = Accumulator;

    fn decoder(&self) -> Accumulator {
        Accumulator::new()
    }

    fn parse_json(&self, body: &[u8]) -> Result<Response> {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
            && let Some(error) = map.get("error")
        {
            return Err(stream::api_error(200, error, false));
        }
        stream::parse_completion(body)
    }

    fn status_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        status_error(status, headers, body)
    }
}

/// The error for a non-2xx answer. OpenAI sends `{"error": {"message", "type",
/// "code"}}`; compatible servers also send `{"error": "text"}` (Ollama) or a top-level
/// `message` (vLLM). `insufficient_quota` comes with a 429 but is never retried.
fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let retryable = http::status_is_retryable(status, headers);
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = match &parsed {
        Some(Value::Object(map)) if map.contains_key("error") => map["error"].clone(),
        Some(Value::Object(map)) if map.contains_key("message") => Value::Object(map.clone()),
        Some(Value::Object(map)) if map.contains_key("detail") => map["detail"].clone(),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = http::snippet(text.trim());
            if text.is_empty() {
                Value::String(
                    reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("no message")
                        .to_owned(),
                )
            } else {
                Value::String(text.to_owned())
            }
        }
    };
    let mut error = stream::api_error(status, &error, retryable);
    if let (Error::Api { message, .. }, Some(id)) = (
        &mut error,
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
    ) {
        message.push_str(&format!(" (x-request-id {id})"));
    }
    error
}

impl LlmProvider for OpenAi {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn complete(&self, request: &Request, on_delta: DeltaSink<'_>) -> Result<Response> {
        let body = serde_json::to_vec(&self.request_body(request))
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.endpoint
            .call(&ChatWire, Bytes::from(body), on_delta)
            .await
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
