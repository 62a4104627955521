//! Shared helpers: fixtures, a delta recorder, providers pointed at a test server.

mod anthropic;
mod faults;
mod openai;
mod scripted;
pub mod server;
mod split;

use std::sync::Mutex;
use std::time::Duration;

use keel_providers::{Anthropic, Delta, OpenAi, RetryPolicy};

use server::Server;

pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Retries with millisecond backoff so fault tests stay fast.
pub fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn anthropic(server: &Server, max_retries: u32) -> Anthropic {
    Anthropic::builder()
        .api_key("test-anthropic-key")
        .base_url(server.url())
        .retry(fast_retry(max_retries))
        .idle_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn openai(server: &Server, max_retries: u32) -> OpenAi {
    OpenAi::builder()
        .api_key("test-openai-key")
        .base_url(format!("{}/v1", server.url()))
        .retry(fast_retry(max_retries))
        .idle_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Collects the deltas a call streams.
#[derive(Default)]
pub struct Deltas(Mutex<Vec<Delta>>);

impl Deltas {
    pub fn sink(&self) -> impl Fn(Delta) + Send + Sync + '_ {
        move |d| self.0.lock().unwrap().push(d)
    }

    pub fn all(&self) -> Vec<Delta> {
        self.0.lock().unwrap().clone()
    }

    /// The text streamed by the last attempt (after the last `Retry`).
    pub fn final_text(&self) -> String {
        let all = self.all();
        let start = all
            .iter()
            .rposition(|d| matches!(d, Delta::Retry { .. }))
            .map_or(0, |i| i + 1);
        all[start..]
            .iter()
            .filter_map(|d| match d {
                Delta::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn retries(&self) -> Vec<(u32, u64)> {
        self.all()
            .into_iter()
            .filter_map(|d| match d {
                Delta::Retry {
                    attempt, delay_ms, ..
                } => Some((attempt, delay_ms)),
                _ => None,
            })
            .collect()
    }
}
