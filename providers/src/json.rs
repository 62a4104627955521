//! [`Json`]: an arbitrary JSON value that survives non-self-describing codecs.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An arbitrary JSON value (tool arguments, unknown content blocks).
///
/// In human-readable formats (JSON) it serializes as the value itself. In binary
/// formats such as postcard, which cannot carry a self-describing value, it
/// serializes as its JSON text, so records stay decodable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Json(pub serde_json::Value);

impl Json {
    /// The JSON `null`.
    pub fn null() -> Self {
        Self(serde_json::Value::Null)
    }

    /// The value as compact JSON text.
    pub fn to_text(&self) -> String {
        self.0.to_string()
    }
}

impl From<serde_json::Value> for Json {
    fn from(v: serde_json::Value) -> Self {
        Self(v)
    }
}

impl std::ops::Deref for Json {
    type Target = serde_json::Value;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.0.serialize(serializer)
        } else {
            serializer.serialize_str(&self.0.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            serde_json::Value::deserialize(deserializer).map(Json)
        } else {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            serde_json::from_str(&text)
                .map(Json)
                .map_err(|e| de::Error::custom(format!("invalid JSON text: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_json_and_postcard() {
        let value = Json(serde_json::json!({"a": [1, 2.5, "x", null, {"b": true}]}));
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text, r#"{"a":[1,2.5,"x",null,{"b":true}]}"#);
        assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), value);
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert_eq!(postcard::from_bytes::<Json>(&bytes).unwrap(), value);
    }

    #[test]
    fn floats_survive_the_binary_codec_exactly() {
        // Found by the `decode` fuzz target: without serde_json's exact float parsing,
        // `75e+300` parsed to 7.5000000000000015e301, which printed and parsed again as
        // 7.500000000000001e301, so an event read back from the log was not the event
        // written (and a replay's conversation differed from the live run's).
        for text in [
            "75e+300",
            "0.1",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "123456789.123456789e-5",
        ] {
            let value: Json = serde_json::from_str(text).unwrap();
            let bytes = postcard::to_allocvec(&value).unwrap();
            let back: Json = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, value, "{text}");
            assert_eq!(back.to_string(), value.to_string(), "{text}");
        }
    }

    #[test]
    fn bad_json_text_in_binary_is_an_error() {
        let bytes = postcard::to_allocvec("{not json").unwrap();
        assert!(postcard::from_bytes::<Json>(&bytes).is_err());
    }
}
