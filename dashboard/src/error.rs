//! The dashboard's errors, and how the API reports them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failure, as the API reports it: an HTTP status and `{"error": {kind, message, code}}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such run, step or blob (404). Not retryable.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or names something this server does not offer (400).
    /// Not retryable as is.
    #[error("{0}")]
    BadRequest(String),
    /// The run is not in a state that allows this: the step was already answered,
    /// the form changed, the run ended (409). Not retryable as is; read the run again.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The engine's stable code, where it has one.
        code: Option<String>,
    },
    /// No valid token (401). Retryable with the token `keel ui` printed.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but refused: a foreign `Host` or `Origin`, a missing CSRF header,
    /// a peer that is a command Keel runs (403). Not retryable.
    #[error("{0}")]
    Forbidden(String),
    /// The store or its owner failed (500; 503 when the owner went away). Retryable.
    #[error("{message}")]
    Internal {
        /// What failed.
        message: String,
        /// Whether the store's owner could not be reached.
        unavailable: bool,
    },
}

/// The dashboard's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A store or owner failure.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal {
            message: e.to_string(),
            unavailable: false,
        }
    }

    /// A run submission naming an agent this server was not configured with.
    pub fn unknown_agent(agent: &str, known: &[String]) -> Self {
        Error::BadRequest(format!(
            "no agent `{agent}` here (known: {}); runs start only with agents this server was configured with",
            known.join(", ")
        ))
    }

    /// The engine's error, classified.
    pub fn from_engine(e: keel_engine::Error) -> Self {
        use keel_engine::Error as E;
        let code = e.code().map(str::to_owned);
        match &e {
            E::UnknownRun(_) | E::UnknownStep { .. } => Error::NotFound(e.to_string()),
            E::InvalidAnswer(_) | E::BadForkPoint { .. } => Error::BadRequest(e.to_string()),
            E::Busy(_)
            | E::Conflict(_)
            | E::AlreadyAnswered { .. }
            | E::Ended { .. }
            | E::DigestMismatch { .. }
            | E::NonDeterminism(_)
            | E::UnknownAgent { .. } => Error::Conflict {
                message: e.to_string(),
                code,
            },
            _ => Error::internal(e),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Internal {
                unavailable: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::BadRequest(_) => "bad_request",
            Error::Conflict { .. } => "conflict",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Internal { .. } => "internal",
        }
    }
}

impl From<keel_storage::Error> for Error {
    fn from(e: keel_storage::Error) -> Self {
        Error::internal(e)
    }
}

impl From<keel_engine::Error> for Error {
    fn from(e: keel_engine::Error) -> Self {
        Error::from_engine(e)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    kind: &'a str,
    message: String,
    code: Option<&'a str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = match &self {
            Error::Conflict { code, .. } => code.as_deref(),
            _ => None,
        };
        let body = Body {
            kind: self.kind(),
            message: self.to_string(),
            code,
        };
        let mut response =
            (self.status(), Json(serde_json::json!({ "error": body }))).into_response();
        if matches!(self, Error::Unauthorized(_)) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"keel\""),
            );
        }
        response
    }
}
