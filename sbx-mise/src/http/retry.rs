//! When to try a request again, and how long to wait before doing so.

use std::time::Duration;

/// Retry schedule: `retries` more attempts after the first, waiting `base`, `2·base`, `4·base`, …
/// (at most [`MAX_DELAY`]) in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubled for each following one.
    pub base: Duration,
}

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(8);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { retries: 3, base: Duration::from_millis(250) }
    }
}

impl RetryPolicy {
    /// Total attempts, the first included.
    pub fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// How long to wait after failed attempt number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(MAX_DELAY)
    }
}

/// Whether an HTTP status is worth retrying: server errors and rate limiting.
pub fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// Whether a transport error is worth retrying: timeouts, refused/reset connections, cut bodies.
pub fn retryable_error(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()
}

/// A readable description of a transport error, with its causes.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy { retries: 3, base: Duration::from_millis(100) };
        assert_eq!(p.attempts(), 4);
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(40), MAX_DELAY);
    }

    #[test]
    fn statuses() {
        assert!(retryable_status(500));
        assert!(retryable_status(503));
        assert!(retryable_status(429));
        assert!(!retryable_status(404));
        assert!(!retryable_status(403));
    }
}
