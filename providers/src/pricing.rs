//! What a call cost: a per-model price table and an estimate in US dollars.
//!
//! Prices are per million tokens, for input, output, cache writes and cache reads,
//! as the providers publish them (list prices, standard tier; batch discounts, long-
//! context surcharges and regional endpoints are not modelled). Cache writes are
//! priced as Anthropic's 5-minute cache (1.25 × input); OpenAI caches for free, so
//! its cache-write price equals input. A model is found by its exact name, else by
//! the longest table name it starts with followed by `-` (so dated snapshots such as
//! `claude-sonnet-4-5-20250929` or `gpt-4o-2024-08-06` find their family); a leading
//! `provider/` (OpenRouter) is ignored and `.` equals `-` (`claude-sonnet-4.5`).
//!
//! The table is data: extend or override it with [`PriceTable::insert`] or from JSON
//! with [`PriceTable::extend_from_json`], e.g. for a fine-tuned or local model.
//!
//! ```
//! use keel_providers::pricing::PriceTable;
//! use keel_providers::Usage;
//!
//! let table = PriceTable::default();
//! let usage = Usage { input_tokens: 1_000_000, output_tokens: 100_000, ..Usage::default() };
//! let cost = table.estimate("claude-sonnet-4-5-20250929", &usage).unwrap();
//! assert!((cost.total() - 4.5).abs() < 1e-9); // $3 in + $1.50 out
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Usage;

/// Prices of one model, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: f64,
    /// Output (including reasoning tokens).
    pub output: f64,
    /// Input written to the prompt cache.
    pub cache_write: f64,
    /// Input read from the prompt cache.
    pub cache_read: f64,
}

impl ModelPrice {
    /// Anthropic's scheme: cache writes at 1.25 × input, reads at 0.1 × input.
    pub fn anthropic(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cache_write: input * 1.25,
            cache_read: input * 0.1,
        }
    }

    /// OpenAI's scheme: caching costs nothing extra, cached input is `cache_read`.
    pub fn openai(input: f64, output: f64, cache_read: f64) -> Self {
        Self {
            input,
            output,
            cache_write: input,
            cache_read,
        }
    }
}

/// An estimated cost, in US dollars, by kind of token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Cache writes.
    pub cache_write: f64,
    /// Cache reads.
    pub cache_read: f64,
}

impl Cost {
    /// The sum.
    pub fn total(&self) -> f64 {
        self.input + self.output + self.cache_write + self.cache_read
    }

    /// Adds another cost.
    pub fn add(&mut self, other: &Cost) {
        self.input += other.input;
        self.output += other.output;
        self.cache_write += other.cache_write;
        self.cache_read += other.cache_read;
    }
}

/// Prices by model name. [`PriceTable::default`] holds current Anthropic and OpenAI
/// list prices; [`PriceTable::empty`] holds none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

/// List prices, USD per million tokens, as published by the providers (late 2025).
const BUILT_IN: &[(&str, f64, f64, Option<f64>)] = &[
    // Anthropic: (input, output); cache prices follow the 1.25× / 0.1× scheme.
    ("claude-opus-4-5", 5.0, 25.0, None),
    ("claude-opus-4-1", 15.0, 75.0, None),
    ("claude-opus-4", 15.0, 75.0, None),
    ("claude-sonnet-4-5", 3.0, 15.0, None),
    ("claude-sonnet-4", 3.0, 15.0, None),
    ("claude-3-7-sonnet", 3.0, 15.0, None),
    ("claude-3-5-sonnet", 3.0, 15.0, None),
    ("claude-haiku-4-5", 1.0, 5.0, None),
    ("claude-3-5-haiku", 0.8, 4.0, None),
    ("claude-3-opus", 15.0, 75.0, None),
    ("claude-3-haiku", 0.25, 1.25, None),
    // OpenAI: (input, output, cached input).
    ("gpt-5.1", 1.25, 10.0, Some(0.125)),
    ("gpt-5", 1.25, 10.0, Some(0.125)),
    ("gpt-5-mini", 0.25, 2.0, Some(0.025)),
    ("gpt-5-nano", 0.05, 0.4, Some(0.005)),
    ("gpt-4.1", 2.0, 8.0, Some(0.5)),
    ("gpt-4.1-mini", 0.4, 1.6, Some(0.1)),
    ("gpt-4.1-nano", 0.1, 0.4, Some(0.025)),
    ("gpt-4o", 2.5, 10.0, Some(1.25)),
    ("gpt-4o-mini", 0.15, 0.6, Some(0.075)),
    ("gpt-5-pro", 15.0, 120.0, Some(15.0)),
    ("o1", 15.0, 60.0, Some(7.5)),
    ("o1-mini", 1.1, 4.4, Some(0.55)),
    ("o1-pro", 150.0, 600.0, Some(150.0)),
    ("o3", 2.0, 8.0, Some(0.5)),
    ("o3-mini", 1.1, 4.4, Some(0.55)),
    ("o4-mini", 1.1, 4.4, Some(0.275)),
];

impl Default for PriceTable {
    fn default() -> Self {
        let mut table = Self::empty();
        for &(name, input, output, cached) in BUILT_IN {
            let price = match cached {
                None => ModelPrice::anthropic(input, output),
                Some(cached) => ModelPrice::openai(input, output, cached),
            };
            table.insert(name, price);
        }
        table
    }
}

fn normalize(name: &str) -> String {
    let name = name.rsplit('/').next().unwrap_or(name);
    name.trim().to_ascii_lowercase().replace('.', "-")
}

impl PriceTable {
    /// A table with no prices.
    pub fn empty() -> Self {
        Self {
            models: BTreeMap::new(),
        }
    }

    /// Adds or replaces a model's prices.
    pub fn insert(&mut self, model: &str, price: ModelPrice) {
        self.models.insert(normalize(model), price);
    }

    /// Adds or replaces prices from JSON: `{"model": {"input": 1.0, "output": 2.0,
    /// "cache_write": 1.25, "cache_read": 0.1}, ...}`.
    pub fn extend_from_json(&mut self, text: &str) -> Result<()> {
        let prices: BTreeMap<String, ModelPrice> = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("invalid price table: {e}")))?;
        for (model, price) in prices {
            let fields = [
                price.input,
                price.output,
                price.cache_write,
                price.cache_read,
            ];
            if fields.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(Error::Config(format!(
                    "invalid price table: the prices of {model:?} must be non-negative numbers"
                )));
            }
            self.insert(&model, price);
        }
        Ok(())
    }

    /// The prices of `model`: an exact match, else the longest name it extends.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        let model = normalize(model);
        if let Some(price) = self.models.get(&model) {
            return Some(price);
        }
        self.models
            .iter()
            .filter(|(name, _)| {
                model.len() > name.len()
                    && model.starts_with(name.as_str())
                    && model.as_bytes()[name.len()] == b'-'
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| price)
    }

    /// The estimated cost of `usage` on `model`; `None` for a model not in the table.
    pub fn estimate(&self, model: &str, usage: &Usage) -> Option<Cost> {
        let price = self.get(model)?;
        let dollars = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1e6;
        Some(Cost {
            input: dollars(usage.input_tokens, price.input),
            output: dollars(usage.output_tokens, price.output),
            cache_write: dollars(usage.cache_creation_input_tokens, price.cache_write),
            cache_read: dollars(usage.cache_read_input_tokens, price.cache_read),
        })
    }
}

/// The estimated cost of `usage` on `model` with the built-in prices.
pub fn estimate(model: &str, usage: &Usage) -> Option<Cost> {
    PriceTable::default().estimate(model, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, write: u64, read: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn estimates_every_kind_of_token() {
        let cost = estimate(
            "claude-sonnet-4-5",
            &usage(1_000_000, 1_000_000, 1_000_000, 1_000_000),
        )
        .unwrap();
        assert!(close(cost.input, 3.0) && close(cost.output, 15.0));
        assert!(close(cost.cache_write, 3.75) && close(cost.cache_read, 0.30));
        assert!(close(cost.total(), 22.05));
        let cost = estimate("gpt-4o", &usage(1_000_000, 0, 0, 1_000_000)).unwrap();
        assert!(close(cost.total(), 2.5 + 1.25));
        let mut sum = Cost::default();
        sum.add(&cost);
        sum.add(&cost);
        assert!(close(sum.total(), 7.5));
    }

    #[test]
    fn snapshots_and_aliases_find_their_family() {
        let table = PriceTable::default();
        let price = |m: &str| table.get(m).map(|p| (p.input, p.output));
        assert_eq!(price("claude-sonnet-4-5-20250929"), Some((3.0, 15.0)));
        assert_eq!(price("claude-opus-4-1-20250805"), Some((15.0, 75.0)));
        assert_eq!(price("claude-opus-4-5"), Some((5.0, 25.0)));
        assert_eq!(price("claude-3-5-sonnet-20240620"), Some((3.0, 15.0)));
        assert_eq!(price("anthropic/claude-sonnet-4.5"), Some((3.0, 15.0)));
        assert_eq!(price("gpt-4o-mini-2024-07-18"), Some((0.15, 0.6)));
        assert_eq!(price("gpt-4o-2024-08-06"), Some((2.5, 10.0)));
        assert_eq!(price("openai/gpt-4.1-mini"), Some((0.4, 1.6)));
        assert_eq!(price("GPT-5"), Some((1.25, 10.0)));
        assert_eq!(price("gpt-5-mini-2025-08-07"), Some((0.25, 2.0)));
        assert_eq!(price("o3-mini"), Some((1.1, 4.4)));
        assert_eq!(
            price("gpt-4"),
            None,
            "no prefix match without a '-' boundary"
        );
        assert_eq!(price("o3x"), None);
        assert_eq!(price("qwen3:8b"), None);
    }

    #[test]
    fn the_table_is_user_extendable() {
        let mut table = PriceTable::default();
        table
            .extend_from_json(
                r#"{"qwen3:8b": {"input": 0, "output": 0, "cache_write": 0, "cache_read": 0},
                    "gpt-4o": {"input": 2.0, "output": 8.0, "cache_write": 2.0, "cache_read": 1.0}}"#,
            )
            .unwrap();
        assert_eq!(
            table
                .estimate("qwen3:8b", &usage(10, 10, 0, 0))
                .unwrap()
                .total(),
            0.0
        );
        assert!(close(
            table
                .estimate("gpt-4o", &usage(1_000_000, 0, 0, 0))
                .unwrap()
                .total(),
            2.0
        ));
        table.insert("my-model", ModelPrice::anthropic(2.0, 4.0));
        assert!(close(table.get("my-model-v2").unwrap().cache_write, 2.5));
        assert!(
            table
                .extend_from_json(
                    r#"{"x": {"input": -1, "output": 0, "cache_write": 0, "cache_read": 0}}"#
                )
                .is_err()
        );
        assert!(table.extend_from_json(r#"{"x": {"input": 1}}"#).is_err());
        assert!(
            PriceTable::empty()
                .estimate("gpt-4o", &Usage::default())
                .is_none()
        );
    }
}
