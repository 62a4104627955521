//! Identifiers within a run: turns, tool calls, and the keys of steps that wait for a person.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The index of an LLM call within a run: `0, 1, 2, …`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Turn(pub u32);

impl fmt::Display for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Turn {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(Turn)
    }
}

/// A tool call: the turn whose response asked for it, and its place in that
/// response. Displayed `turn.index`, e.g. `3.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// The turn whose response made the call.
    pub turn: Turn,
    /// Its position among that response's tool calls.
    pub index: u32,
}

impl CallId {
    /// The call at `index` of `turn`.
    pub fn new(turn: Turn, index: u32) -> Self {
        Self { turn, index }
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.turn.0, self.index)
    }
}

/// The text was not a call id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a call id (expected `turn.index`, e.g. `3.0`)")]
pub struct ParseCallIdError(pub String);

impl FromStr for CallId {
    type Err = ParseCallIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCallIdError(s.to_owned());
        let (turn, index) = s.trim().split_once('.').ok_or_else(err)?;
        Ok(CallId {
            turn: turn.parse().map_err(|_| err())?,
            index: index.parse().map_err(|_| err())?,
        })
    }
}

/// Names one wait for a person: an approval or a question. Answers name the step
/// they answer, so an answer can never be applied to a different step.
///
/// The first wait of call `3.0` is step `3.0`; if a crash interrupted the approved
/// call and its policy asks again, the new wait is `3.0~2`, and an answer to `3.0`
/// no longer applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepKey(pub String);

impl StepKey {
    /// The key of the `attempt`-th wait (from 1) for `call`.
    pub fn for_call(call: CallId, attempt: u32) -> Self {
        if attempt <= 1 {
            StepKey(call.to_string())
        } else {
            StepKey(format!("{call}~{attempt}"))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StepKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StepKey(s.trim().to_owned()))
    }
}

impl From<&str> for StepKey {
    fn from(s: &str) -> Self {
        StepKey(s.to_owned())
    }
}

/// A BLAKE3 digest (of a request, in the log). Shown as 64 hex digits; stored as 32
/// bytes in the binary log and as hex text in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// The text was not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest (expected 64 hex digits)")]
pub struct ParseDigestError(pub String);

impl FromStr for Digest {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDigestError(s.to_owned());
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Digest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip() {
        let id = CallId::new(Turn(3), 1);
        assert_eq!(id.to_string(), "3.1");
        assert_eq!("3.1".parse::<CallId>().unwrap(), id);
        assert!("3".parse::<CallId>().is_err());
        assert!("a.b".parse::<CallId>().is_err());
    }

    #[test]
    fn digests_round_trip_as_hex_and_bytes() {
        let d = Digest(*blake3::hash(b"x").as_bytes());
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let bytes = postcard::to_allocvec(&d).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(postcard::from_bytes::<Digest>(&bytes).unwrap(), d);
        assert!("zz".parse::<Digest>().is_err());
    }

    #[test]
    fn step_keys_name_the_attempt() {
        let id = CallId::new(Turn(2), 0);
        assert_eq!(StepKey::for_call(id, 1).as_str(), "2.0");
        assert_eq!(StepKey::for_call(id, 2).as_str(), "2.0~2");
    }
}
