//! When and how long to wait before sending a failed request again.
//!
//! Backoff is exponential with *full jitter* (a uniformly random delay between zero and
//! the exponential cap), which spreads out many clients hit by the same outage better
//! than a fixed or "equal" jitter. A server's `retry-after-ms` / `retry-after` header
//! (seconds or an HTTP date) replaces the computed delay, as the official SDKs do.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// How many times, and how patiently, a provider retries transient faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// The cap of the first retry's delay; it doubles with each further retry.
    pub initial_backoff: Duration,
    /// The largest cap the doubling reaches.
    pub max_backoff: Duration,
    /// The longest `retry-after` honoured. A server asking for a longer wait ends the
    /// call with its error instead: a long rate-limit window is the caller's decision.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, delays capped at 0.5 s, 1 s, 2 s, 4 s; `retry-after` up to 60 s.
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The cap of the delay before retry number `retry` (1-based), before jitter.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// A full-jitter delay before retry number `retry` (1-based): uniform in
    /// `[0, backoff_cap(retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_cap(retry).mul_f64(fastrand::f64())
    }
}

/// The delay a response asks for: `retry-after-ms` (milliseconds, as Anthropic and
/// OpenAI send), else `retry-after` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let policy = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            max_retry_after: Duration::from_secs(1),
        };
        let caps: Vec<u128> = (1..=5).map(|r| policy.backoff_cap(r).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 700, 700]);
        assert_eq!(policy.backoff_cap(u32::MAX).as_millis(), 700);
        for retry in 1..=5 {
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= policy.backoff_cap(retry));
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(spread.len() > 1, "full jitter must vary the delay");
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert("retry-after", HeaderValue::from_static("0.25"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        headers.insert("retry-after", HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after-ms", HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(120)));
    }
}
