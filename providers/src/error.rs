//! The provider error type.

/// Why a call to a model failed (after the provider's own retries).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No API key was configured. Not retryable: set the variable.
    #[error("no API key for {provider}: set the {var} environment variable")]
    MissingApiKey {
        /// The provider.
        provider: &'static str,
        /// The variable to set.
        var: &'static str,
    },

    /// The provider answered with an error. Retryable when `retryable` is true and
    /// the retry budget was not yet spent.
    #[error("{provider} returned HTTP {status} ({kind}): {message}")]
    Api {
        /// The provider.
        provider: &'static str,
        /// The HTTP status (200 for an `error` event inside a stream).
        status: u16,
        /// The provider's error type, e.g. `rate_limit_error`.
        kind: String,
        /// The provider's message.
        message: String,
        /// Whether the provider documents this error as transient.
        retryable: bool,
    },

    /// The connection failed, was reset, or the stream was cut before it ended.
    /// Retryable.
    #[error("transport error talking to {provider}: {detail}")]
    Transport {
        /// The provider.
        provider: &'static str,
        /// What happened.
        detail: String,
    },

    /// The provider did not answer in time. Retryable.
    #[error("{provider} did not answer within {seconds:.1}s")]
    Timeout {
        /// The provider.
        provider: &'static str,
        /// The limit that was hit.
        seconds: f64,
    },

    /// The provider sent something that is not its documented format. Not retryable.
    #[error("{provider} sent a malformed response: {detail}")]
    Protocol {
        /// The provider.
        provider: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// Every retry failed; the last failure is attached. Not retryable.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },

    /// The scripted provider has no response for this call, or the request does not
    /// fit what the script expects. Not retryable.
    #[error("script: {0}")]
    Script(String),

    /// Configuration is invalid (bad base URL, bad script file). Not retryable.
    #[error("provider configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying the same request again can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { retryable, .. } => *retryable,
            Error::Transport { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
