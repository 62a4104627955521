//! Anthropic's Messages API (`POST {base}/v1/messages`), always streamed.
//!
//! Configuration follows the official SDKs: `ANTHROPIC_API_KEY` and
//! `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com`, without `/v1`), each
//! overridable on the [`Builder`]. Requests carry `x-api-key`,
//! `anthropic-version: 2023-06-01` and `content-type: application/json`.
//!
//! ```no_run
//! use keel_providers::{Anthropic, LlmProvider, Message, Request};
//!
//! # async fn demo() -> keel_providers::Result<()> {
//! let claude = Anthropic::from_env()?;
//! let request = Request::new("claude-sonnet-4-5", vec![Message::user("Hello")]);
//! let response = claude.complete(&request, &|_| {}).await?;
//! println!("{} ({} output tokens)", response.text(), response.usage.output_tokens);
//! # Ok(())
//! # }
//! ```

mod request;
mod stream;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};

pub use stream::Accumulator;

use crate::error::{Error, Result};
use crate::http::{self, ApiKey, Connection, Endpoint, Wire};
use crate::provider::{DeltaSink, LlmProvider};
use crate::types::{Request, Response};

/// The variable holding the API key.
pub const API_KEY_VAR: &str = "ANTHROPIC_API_KEY";
/// The variable overriding the base URL.
pub const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";
/// The base URL of Anthropic's API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version this client speaks.
pub const API_VERSION: &str = "2023-06-01";

const PROVIDER: &str = "anthropic";

/// The Anthropic Messages API provider. Cheap to clone (the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct Anthropic {
    endpoint: Endpoint,
    prompt_caching: bool,
}

/// Configures an [`Anthropic`] provider. Fields not set come from the environment.
#[derive(Clone, Debug)]
pub struct Builder {
    conn: Connection,
    prompt_caching: bool,
}

impl Anthropic {
    /// A builder with defaults: key and base URL from the environment, prompt caching on.
    pub fn builder() -> Builder {
        Builder {
            conn: Connection::default(),
            prompt_caching: true,
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
    pub fn request_body(&self, request: &Request) -> serde_json::Value {
        request::body(request, self.prompt_caching)
    }
}

impl Builder {
    /// The API key, instead of `ANTHROPIC_API_KEY`.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.conn.api_key = Some(key.into());
        self
    }

    /// The base URL (scheme, host, optional path prefix; `/v1/messages` is appended),
    /// instead of `ANTHROPIC_BASE_URL`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.conn.base_url = Some(url.into());
        self
    }

    /// Whether to mark cache breakpoints (`cache_control`) in requests. On by default.
    pub fn prompt_caching(mut self, on: bool) -> Self {
        self.prompt_caching = on;
        self
    }

    http::connection_setters!();

    /// Builds the provider, reading unset fields from the process environment.
    pub fn build(self) -> Result<Anthropic> {
        self.build_with_env(|name| std::env::var(name).ok())
    }

    /// Builds the provider, reading unset fields through `env` (a variable's value by
    /// name) instead of the process environment.
    pub fn build_with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Anthropic> {
        let present = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let key = match self.conn.api_key.take() {
            Some(key) => key,
            None => ApiKey::new(present(API_KEY_VAR).ok_or(Error::MissingApiKey {
                provider: PROVIDER,
                var: API_KEY_VAR,
            })?),
        };
        let base = self.conn.base(&env, BASE_URL_VAR, DEFAULT_BASE_URL);
        let url = http::join_url(&base, "v1/messages")?;
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", http::secret_header(key.expose(), PROVIDER)?);
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        Ok(Anthropic {
            endpoint: self.conn.endpoint(PROVIDER, url, headers)?,
            prompt_caching: self.prompt_caching,
        })
    }
}

struct MessagesWire;

impl Wire for MessagesWire {
    type Decoder = Accumulator;

    fn decoder(&self) -> Accumulator {
        Accumulator::new()
    }

    fn parse_json(&self, body: &[u8]) -> Result<Response> {
        if let Ok(error) = serde_json::from_slice::<stream::ErrorBody>(body) {
            return Err(Error::Api {
                provider: PROVIDER,
                status: 200,
                retryable: stream::error_type_is_retryable(&error.error.kind),
                kind: error.error.kind,
                message: error.error.message,
            });
        }
        stream::parse_message(body)
    }

    fn status_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        status_error(status, headers, body)
    }
}

/// The error for a non-2xx answer: `{"type":"error","error":{"type","message"}}`.
fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let (kind, mut message) = match serde_json::from_slice::<stream::ErrorBody>(body) {
        Ok(parsed) => (parsed.error.kind, parsed.error.message),
        Err(_) => (
            format!("http_{status}"),
            http::snippet(String::from_utf8_lossy(body).trim()).to_owned(),
        ),
    };
    if message.is_empty() {
        message = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned();
    }
    if let Some(id) = headers.get("request-id").and_then(|v| v.to_str().ok()) {
        message.push_str(&format!(" (request-id {id})"));
    }
    Error::Api {
        provider: PROVIDER,
        status,
        kind,
        message,
        retryable: http::status_is_retryable(status, headers),
    }
}

impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn complete(&self, request: &Request, on_delta: DeltaSink<'_>) -> Result<Response> {
        let body = serde_json::to_vec(&request::body(request, self.prompt_caching))
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        self.endpoint
            .call(&MessagesWire, Bytes::from(body), on_delta)
            .await
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
