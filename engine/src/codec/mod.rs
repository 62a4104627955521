//! The on-disk form of an event: a format byte, then the event.
//!
//! - Format 2 (written by this build): the protobuf encoding of the engine's own
//!   record types ([`records`]), converted to and from [`Stamped`] in `convert.rs`
//!   and `parts.rs`. Fields are tagged: a field added later decodes as its default
//!   from older records, and fields a newer build added are skipped. An event kind
//!   this build does not know is refused by its tag (`KEEL-E102`, "written by a newer
//!   Keel"), never misread.
//! - Format 1 (round 1): postcard of the round-1 serde types, read forever through
//!   the frozen copy in `v1.rs`.
//!
//! The evolution policy is in ARCHITECTURE.md ("How the log evolves"). Decoding never
//! panics: truncated, corrupt or newer records are a [`DecodeError`] naming the run
//! and seq.

mod convert;
mod digest;
mod parts;
pub mod records;
mod v1;

use bytes::Bytes;
use keel_storage::{RunId, Seq};
use prost::Message;

use crate::event::{DigestScheme, Stamped, Text};

/// The format this build writes. Records with a higher byte were written by a newer
/// Keel and are refused, not misread.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest format this build reads.
pub const OLDEST_FORMAT: u8 = 1;

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
    /// The record holds an event kind (or a part of one) this build does not know:
    /// it was written by a newer Keel.
    #[error("the record holds {what}, written by a newer Keel; upgrade Keel to read it")]
    NewerKind {
        /// What was not known, e.g. `an event kind with tag 12`.
        what: String,
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

/// Encodes an event for the store, in format 2.
pub fn encode(event: &Stamped) -> Result<Bytes, EncodeError> {
    let record = convert::to_record(event);
    let mut out = Vec::with_capacity(1 + record.encoded_len());
    out.push(FORMAT_VERSION);
    record.encode(&mut out).map_err(|e| EncodeError {
        kind: event.event.kind(),
        detail: e.to_string(),
    })?;
    Ok(Bytes::from(out))
}

/// Decodes a stored record of `run` at `seq`, of any format this build reads.
pub fn decode(run: RunId, seq: Seq, bytes: &[u8]) -> Result<Stamped, DecodeError> {
    let err = |kind| DecodeError { run, seq, kind };
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| err(DecodeErrorKind::Empty))?;
    match version {
        FORMAT_VERSION => decode_v2(body).map_err(err),
        1 => v1::decode(body).map_err(|e| {
            err(match e {
                v1::V1Error::Truncated => DecodeErrorKind::Truncated,
                v1::V1Error::Corrupt(detail) => DecodeErrorKind::Corrupt(detail),
            })
        }),
        0 => Err(err(DecodeErrorKind::UnknownVersion { found: version })),
        found => Err(err(DecodeErrorKind::NewerVersion { found })),
    }
}

fn decode_v2(body: &[u8]) -> Result<Stamped, DecodeErrorKind> {
    let record = records::StampedRecord::decode(body).map_err(|e| {
        let text = e.to_string();
        if text.contains("buffer underflow") || text.contains("unexpected end") {
            DecodeErrorKind::Truncated
        } else {
            DecodeErrorKind::Corrupt(text)
        }
    })?;
    if record.event.is_none() {
        // A well-formed envelope without a known kind: name the tag a newer Keel used.
        return Err(match unknown_event_tag(body) {
            Some(tag) => DecodeErrorKind::NewerKind {
                what: format!("an event kind with tag {tag}"),
            },
            None => DecodeErrorKind::Corrupt("the record holds no event".to_owned()),
        });
    }
    convert::from_record(record).map_err(|e| match e {
        convert::Invalid::Corrupt(detail) => DecodeErrorKind::Corrupt(detail),
        convert::Invalid::Newer(what) => DecodeErrorKind::NewerKind { what },
    })
}

/// The first top-level field tag past the event kinds this build knows.
fn unknown_event_tag(mut body: &[u8]) -> Option<u32> {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    while !body.is_empty() {
        let (tag, wire_type) = decode_key(&mut body).ok()?;
        if tag > records::LAST_EVENT_TAG {
            return Some(tag);
        }
        skip_field(wire_type, tag, &mut body, DecodeContext::default()).ok()?;
    }
    None
}

/// Feeds the bytes a run's conversation digest covers for a response's content.
pub(crate) fn digest_content(
    scheme: DigestScheme,
    content: &[keel_providers::ContentBlock],
    hasher: &mut blake3::Hasher,
) {
    match scheme {
        DigestScheme::Postcard1 => v1::content_digest_bytes(content, hasher),
        DigestScheme::Records => digest::content(content, hasher),
    }
}

/// Feeds the bytes a run's conversation digest covers for a tool's output.
pub(crate) fn digest_text(scheme: DigestScheme, text: &Text, hasher: &mut blake3::Hasher) {
    match scheme {
        DigestScheme::Postcard1 => v1::text_digest_bytes(text, hasher),
        DigestScheme::Records => digest::text(text, hasher),
    }
}

#[cfg(test)]
mod tests;
