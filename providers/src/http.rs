//! The HTTP machinery both API providers share: the client, the redacted [`ApiKey`],
//! timeouts, and the retry loop around one streamed call.
//!
//! One call is: POST the JSON body, wait for the response head within the idle
//! timeout, then read the SSE body chunk by chunk — each chunk within the idle timeout
//! — feeding a provider-specific [`Decoder`] until it reports the end of the message.
//! Any failure of an attempt (status, transport, timeout, an `error` event, a stream
//! that ends early) is classified; transient ones are retried as a whole with backoff,
//! after telling the caller with [`Delta::Retry`] that what it streamed so far is void.

use std::fmt;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::provider::DeltaSink;
use crate::retry::{RetryPolicy, retry_after};
use crate::sse;
use crate::types::{Delta, Response};

/// How much of an error body is read; the message is at its start.
const ERROR_BODY_LIMIT: usize = 256 * 1024;
/// How large a non-streamed JSON answer may be.
const JSON_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// An API key. Its `Debug` form is redacted, and it has no `Display`, so it cannot end
/// up in logs or in the event log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}

/// Extra request headers set on a builder. They may hold secrets (a proxy's token), so
/// `Debug` shows their names only and their values are sent marked sensitive.
#[derive(Clone, Default)]
pub(crate) struct ExtraHeaders(Vec<(String, String)>);

impl ExtraHeaders {
    pub(crate) fn push(&mut self, name: String, value: String) {
        self.0.push((name, value));
    }

    /// Appends the headers to `headers`, refusing invalid names or values.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) -> Result<()> {
        for (name, value) in &self.0 {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| Error::Config(format!("invalid header name {name:?}")))?;
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|_| Error::Config(format!("invalid value for header {name}")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(())
    }
}

impl fmt::Debug for ExtraHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Timeouts and retries of an HTTP provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// The longest wait to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The longest silence tolerated: waiting for the response head, and between two
    /// chunks of a streamed body. Reasoning models can be silent for minutes before
    /// their first token, so the default is generous.
    pub idle_timeout: Duration,
    /// Which faults are retried, how often and how patiently.
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    /// Connect within 15 s, tolerate 5 minutes of silence, [`RetryPolicy::default`].
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
        }
    }
}

/// What a decoder wants after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// The message is complete; stop reading.
    Done,
}

/// Turns one attempt's SSE events into a response.
pub(crate) trait Decoder {
    /// Handles one event; an error ends the attempt.
    fn event(&mut self, event: sse::EventRef<'_>, on_delta: DeltaSink<'_>) -> Result<Flow>;
    /// The body ended (or the decoder said [`Flow::Done`]): the response, or a
    /// retryable transport error when the stream was cut before the message ended.
    fn finish(self) -> Result<Response>;
}

/// The provider-specific half of a call.
pub(crate) trait Wire: Sync {
    /// The decoder of one streamed attempt.
    type Decoder: Decoder;
    /// A fresh decoder.
    fn decoder(&self) -> Self::Decoder;
    /// Parses a non-streamed JSON answer (servers that ignore `stream: true`).
    fn parse_json(&self, body: &[u8]) -> Result<Response>;
    /// The error for a non-2xx answer; `retryable` follows the provider's documentation.
    fn status_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error;
}

/// Where and how a provider sends its requests.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub provider: &'static str,
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub settings: HttpSettings,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers carry the key: list their names only.
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A failed attempt and the delay the server asked for.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Builds the shared HTTP client: rustls with the `ring` provider, no OpenSSL.
/// What every HTTP provider's builder holds besides its own options: the key, the
/// base URL, timeouts and retries, extra headers and a client of the user's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Connection {
    pub api_key: Option<ApiKey>,
    pub base_url: Option<String>,
    pub settings: HttpSettings,
    pub headers: ExtraHeaders,
    pub client: Option<reqwest::Client>,
}

impl Connection {
    /// The base URL set in code, else `var` from `env` (if not blank), else `default`.
    pub(crate) fn base(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        var: &str,
        default: &str,
    ) -> String {
        self.base_url
            .take()
            .or_else(|| env(var).filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| default.to_owned())
    }

    /// The endpoint at `url`, sending `headers` and the extra ones, on the user's
    /// client or a new one.
    pub(crate) fn endpoint(
        self,
        provider: &'static str,
        url: reqwest::Url,
        mut headers: HeaderMap,
    ) -> Result<Endpoint> {
        self.headers.apply(&mut headers)?;
        let client = match self.client {
            Some(client) => client,
            None => build_client(self.settings.connect_timeout)?,
        };
        Ok(Endpoint {
            provider,
            client,
            url,
            headers,
            settings: self.settings,
        })
    }
}

/// The builder methods every HTTP provider shares, on a builder with a
/// `conn: Connection` field.
macro_rules! connection_setters {
    () => {
        /// The retry policy.
        pub fn retry(mut self, policy: $crate::RetryPolicy) -> Self {
            self.conn.settings.retry = policy;
            self
        }

        /// The connect timeout (ignored with [`Builder::http_client`]).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.conn.settings.connect_timeout = timeout;
            self
        }

        /// The longest silence tolerated before the response head and between chunks.
        pub fn idle_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.conn.settings.idle_timeout = timeout;
            self
        }

        /// All timeouts and retries at once.
        pub fn settings(mut self, settings: $crate::HttpSettings) -> Self {
            self.conn.settings = settings;
            self
        }

        /// An extra header on every request (e.g. `anthropic-beta`, or OpenRouter's
        /// `HTTP-Referer` and `X-Title`).
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.conn.headers.push(name.into(), value.into());
            self
        }

        /// A preconfigured HTTP client (proxies, custom roots). It must have a rustls
        /// crypto provider available.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.conn.client = Some(client);
            self
        }
    };
}
pub(crate) use connection_setters;

pub(crate) fn build_client(connect_timeout: Duration) -> Result<reqwest::Client> {
    // reqwest is built without a default crypto provider (to keep aws-lc's C build out);
    // installing ring is idempotent, and a provider the host installed first wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {}", chain(&e))))
}

/// Parses a base URL and appends `path` to it (keeping any path the base has).
pub(crate) fn join_url(base: &str, path: &str) -> Result<reqwest::Url> {
    let joined = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let url = reqwest::Url::parse(&joined)
        .map_err(|e| Error::Config(format!("invalid base URL {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "invalid base URL {base:?}: the scheme must be http or https"
        )));
    }
    Ok(url)
}

/// A header value holding a secret: marked sensitive so HTTP debug output hides it.
pub(crate) fn secret_header(value: &str, provider: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::Config(format!(
            "the {provider} API key contains characters not allowed in an HTTP header"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The error message of a reqwest error with its causes, which carry the useful part.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The start of a text, for error messages.
pub(crate) fn snippet(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether an HTTP status is worth retrying, as the official SDKs decide it, unless the
/// server says otherwise with `x-should-retry`.
pub(crate) fn status_is_retryable(status: u16, headers: &HeaderMap) -> bool {
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => true,
        Some("false") => false,
        _ => matches!(status, 408 | 409 | 429) || status >= 500,
    }
}

impl Endpoint {
    /// Sends `body`, retrying transient faults, and returns the complete response.
    pub(crate) async fn call<W: Wire>(
        &self,
        wire: &W,
        body: Bytes,
        on_delta: DeltaSink<'_>,
    ) -> Result<Response> {
        let policy = &self.settings.retry;
        let mut attempt: u32 = 1;
        loop {
            let failure = match self.attempt(wire, body.clone(), on_delta).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if !failure.error.is_retryable() {
                return Err(failure.error);
            }
            if attempt > policy.max_retries {
                return Err(if attempt == 1 {
                    failure.error
                } else {
                    Error::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(failure.error),
                    }
                });
            }
            let delay = match failure.retry_after {
                Some(asked) if asked > policy.max_retry_after => {
                    tracing::warn!(
                        provider = self.provider,
                        retry_after_s = asked.as_secs_f64(),
                        "the server asks for a longer wait than the retry policy allows"
                    );
                    return Err(failure.error);
                }
                Some(asked) => asked,
                None => policy.backoff(attempt),
            };
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(
                provider = self.provider,
                attempt,
                delay_ms,
                error = %failure.error,
                "retrying a failed model call"
            );
            attempt += 1;
            on_delta(Delta::Retry {
                attempt,
                delay_ms,
                reason: failure.error.to_string(),
            });
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<W: Wire>(
        &self,
        wire: &W,
        body: Bytes,
        on_delta: DeltaSink<'_>,
    ) -> Result<Response, Failure> {
        let idle = self.settings.idle_timeout;
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let mut response = match tokio::time::timeout(idle, request.send()).await {
            Err(_) => return Err(self.timeout(idle).into()),
            Ok(Err(e)) => return Err(self.reqwest_error(&e).into()),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let body = self
                .read_body(&mut response, ERROR_BODY_LIMIT, true)
                .await
                .unwrap_or_default();
            return Err(Failure {
                error: wire.status_error(status, &headers, &body),
                retry_after: retry_after(&headers, SystemTime::now()),
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if content_type.starts_with("text/html") {
            // A proxy's or portal's page, not the API: retrying would not help.
            let body = self
                .read_body(&mut response, ERROR_BODY_LIMIT, true)
                .await
                .unwrap_or_default();
            return Err(self
                .protocol(format!(
                    "expected an event stream but got an HTML page (is the base URL right?): {}",
                    snippet(String::from_utf8_lossy(&body).trim())
                ))
                .into());
        }
        if content_type.starts_with("application/json") {
            let body = self
                .read_body(&mut response, JSON_BODY_LIMIT, false)
                .await?;
            return Ok(wire.parse_json(&body)?);
        }
        let mut parser = sse::Parser::new();
        let mut decoder = wire.decoder();
        loop {
            let chunk = match tokio::time::timeout(idle, response.chunk()).await {
                Err(_) => return Err(self.timeout(idle).into()),
                Ok(Err(e)) => return Err(self.reqwest_error(&e).into()),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            let mut outcome = Ok(Flow::Continue);
            // A break is recorded in `outcome`; the rest of the chunk is not needed.
            let _stopped = parser
                .feed_with(&chunk, |event| {
                    outcome = decoder.event(event, on_delta);
                    match outcome {
                        Ok(Flow::Continue) => ControlFlow::Continue(()),
                        _ => ControlFlow::Break(()),
                    }
                })
                .map_err(|e| self.protocol(e.to_string()))?;
            if outcome? == Flow::Done {
                return Ok(decoder.finish()?);
            }
        }
        Ok(decoder.finish()?)
    }

    /// Reads a whole body up to `limit` bytes; a longer body is truncated when
    /// `truncate` (error bodies, where the message comes first) and refused otherwise.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
        truncate: bool,
    ) -> Result<Vec<u8>> {
        let idle = self.settings.idle_timeout;
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(idle, response.chunk()).await {
                Err(_) => return Err(self.timeout(idle)),
                Ok(Err(e)) => return Err(self.reqwest_error(&e)),
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        if truncate {
                            body.extend_from_slice(&chunk[..limit - body.len()]);
                            return Ok(body);
                        }
                        return Err(self.protocol(format!("a response body over {limit} bytes")));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }

    fn timeout(&self, limit: Duration) -> Error {
        Error::Timeout {
            provider: self.provider,
            seconds: limit.as_secs_f64(),
        }
    }

    fn protocol(&self, detail: String) -> Error {
        Error::Protocol {
            provider: self.provider,
            detail,
        }
    }

    fn reqwest_error(&self, error: &reqwest::Error) -> Error {
        if error.is_timeout() {
            return self.timeout(self.settings.connect_timeout);
        }
        let what = if error.is_connect() {
            "cannot connect"
        } else if error.is_body() || error.is_decode() {
            "the response body broke off"
        } else {
            "the request failed"
        };
        Error::Transport {
            provider: self.provider,
            detail: format!("{what}: {}", chain(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let key = ApiKey::new("sk-ant-secret-123");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-api-key",
            secret_header(key.expose(), "anthropic").unwrap(),
        );
        let endpoint = Endpoint {
            provider: "anthropic",
            client: reqwest::Client::new(),
            url: join_url("http://127.0.0.1:1", "/v1/messages").unwrap(),
            headers,
            settings: HttpSettings::default(),
        };
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("x-api-key"), "{shown}");
    }

    #[test]
    fn urls_join_with_or_without_slashes() {
        for base in ["http://h:1/v1", "http://h:1/v1/"] {
            assert_eq!(
                join_url(base, "/chat/completions").unwrap().as_str(),
                "http://h:1/v1/chat/completions"
            );
        }
        assert_eq!(
            join_url("https://api.anthropic.com", "v1/messages")
                .unwrap()
                .as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert!(matches!(join_url("not a url", "x"), Err(Error::Config(_))));
        assert!(matches!(join_url("ftp://h/", "x"), Err(Error::Config(_))));
    }

    #[test]
    fn statuses_retry_as_the_sdks_decide_unless_the_server_says_otherwise() {
        let none = HeaderMap::new();
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(status_is_retryable(status, &none), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!status_is_retryable(status, &none), "{status}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        assert!(!status_is_retryable(503, &headers));
        headers.insert("x-should-retry", HeaderValue::from_static("true"));
        assert!(status_is_retryable(400, &headers));
    }
}
