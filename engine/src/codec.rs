//! The on-disk form of an event: a format-version byte, then the postcard encoding
//! of a [`Stamped`] event.
//!
//! postcard is compact and has a frozen wire specification; it is not
//! self-describing, so arbitrary JSON travels as text (see `keel_providers::Json`).
//! Decoding never panics: truncated, corrupt or newer-version records are a
//! [`DecodeError`] naming the run and seq.

use bytes::Bytes;
use keel_storage::{RunId, Seq};

use crate::event::Stamped;

/// The format version this build writes. Records with a higher version were written
/// by a newer Keel and are refused, not misread.
pub const FORMAT_VERSION: u8 = 1;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The record has no bytes at all.
    #[error("the record is empty")]
    Empty,
    /// The record was written by a newer version of Keel.
    #[error(
        "the record has format version {found}, newer than this build's {FORMAT_VERSION}; upgrade Keel to read it"
    )]
    NewerVersion {
        /// The version byte found.
        found: u8,
    },
    /// The record has a version this build never wrote (0).
    #[error("the record has unknown format version {found}")]
    UnknownVersion {
        /// The version byte found.
        found: u8,
    },
    /// The record ends early.
    #[error("the record is truncated")]
    Truncated,
    /// The bytes are not a valid event.
    #[error("the record is corrupt: {0}")]
    Corrupt(String),
}

/// A record that could not be decoded. Not retryable: the stored bytes are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event {seq} of run {run}: {kind}")]
pub struct DecodeError {
    /// The run.
    pub run: RunId,
    /// The record's position.
    pub seq: Seq,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// An event could not be encoded. Not retryable; a bug in a type's serde impl.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode a `{kind}` event: {detail}")]
pub struct EncodeError {
    /// The event's kind.
    pub kind: &'static str,
    /// postcard's message.
    pub detail: String,
}

/// Encodes an event for the store.
pub fn encode(event: &Stamped) -> Result<Bytes, EncodeError> {
    postcard::to_extend(event, vec![FORMAT_VERSION])
        .map(Bytes::from)
        .map_err(|e| EncodeError {
            kind: event.event.kind(),
            detail: e.to_string(),
        })
}

/// Decodes a stored record of `run` at `seq`.
pub fn decode(run: RunId, seq: Seq, bytes: &[u8]) -> Result<Stamped, DecodeError> {
    let err = |kind| DecodeError { run, seq, kind };
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| err(DecodeErrorKind::Empty))?;
    match version {
        FORMAT_VERSION => {}
        0 => return Err(err(DecodeErrorKind::UnknownVersion { found: version })),
        found => return Err(err(DecodeErrorKind::NewerVersion { found })),
    }
    match postcard::take_from_bytes::<Stamped>(body) {
        Ok((event, [])) => Ok(event),
        Ok((_, rest)) => Err(err(DecodeErrorKind::Corrupt(format!(
            "{} unexpected bytes after the event",
            rest.len()
        )))),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(err(DecodeErrorKind::Truncated)),
        Err(e) => Err(err(DecodeErrorKind::Corrupt(e.to_string()))),
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
