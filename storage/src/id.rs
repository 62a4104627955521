//! Identifiers of the log: runs, positions in a run, blobs, and wall-clock stamps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Identifies a run. A UUIDv7, so ids sort by creation time.
///
/// Displayed as 32 lowercase hex digits; `FromStr` also accepts the hyphenated form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunId(uuid::Uuid);

impl RunId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id as 16 bytes (the storage key prefix of the run).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from the 16 bytes of [`RunId::as_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0.simple())
    }
}

/// The text was not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run id (expected 32 hex digits, as printed by `keel runs`)")]
pub struct ParseRunIdError(pub String);

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::try_parse(s.trim())
            .map(Self)
            .map_err(|_| ParseRunIdError(s.to_owned()))
    }
}

/// The position of an event in its run's log: `0, 1, 2, …` with no gaps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

impl Seq {
    /// The first event of every run.
    pub const ZERO: Seq = Seq(0);

    /// The following position.
    #[must_use]
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// This position moved forward by `n`.
    #[must_use]
    pub fn plus(self, n: u64) -> Seq {
        Seq(self.0 + n)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Seq {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(Seq)
    }
}

/// The BLAKE3 hash of a blob's bytes: its address in the blob space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The address of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", hex::encode(&self.0[..8]))
    }
}

/// The text was not a blob hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a blob hash (expected 64 hex digits)")]
pub struct ParseBlobHashError(pub String);

impl FromStr for BlobHash {
    type Err = ParseBlobHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| ParseBlobHashError(s.to_owned()))?;
        Ok(Self(out))
    }
}

/// Milliseconds since the Unix epoch. Recorded in events; never read during replay.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_round_trips_through_text() {
        let id = RunId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<RunId>().unwrap(), id);
        let hyphenated = uuid::Uuid::from_bytes(*id.as_bytes())
            .hyphenated()
            .to_string();
        assert_eq!(hyphenated.parse::<RunId>().unwrap(), id);
        assert!("not-an-id".parse::<RunId>().is_err());
    }

    #[test]
    fn run_ids_sort_by_creation() {
        let a = RunId::new();
        let b = RunId::new();
        assert!(a < b);
    }

    #[test]
    fn blob_hash_round_trips() {
        let h = BlobHash::of(b"hello");
        assert_eq!(h.to_string().parse::<BlobHash>().unwrap(), h);
        assert!("zz".parse::<BlobHash>().is_err());
    }
}
