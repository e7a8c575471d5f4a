//! A provider's rate budget as the provider reports it. Before each request the client
//! asks the budget how long to wait; after each response it feeds the headers back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a provider's reset header tells when the window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetIn {
    /// Seconds from now (Reddit).
    Seconds,
    /// A Unix time in seconds (GitHub).
    EpochSeconds,
}

/// Names of the headers a provider reports its budget in.
#[derive(Debug, Clone, Copy)]
pub struct RateHeaders {
    /// Requests left in the window (Reddit sends a float like `"995.0"`).
    pub remaining: &'static str,
    /// When the window resets.
    pub reset: &'static str,
    /// How to read `reset`.
    pub reset_in: ResetIn,
}

impl RateHeaders {
    /// Reddit's `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` (seconds from now).
    pub const REDDIT: RateHeaders = RateHeaders {
        remaining: "x-ratelimit-remaining",
        reset: "x-ratelimit-reset",
        reset_in: ResetIn::Seconds,
    };
    /// GitHub's `X-RateLimit-Remaining` / `X-RateLimit-Reset` (Unix seconds).
    pub const GITHUB: RateHeaders = RateHeaders {
        remaining: "x-ratelimit-remaining",
        reset: "x-ratelimit-reset",
        reset_in: ResetIn::EpochSeconds,
    };
}

/// Seconds from now until `reset`, read as `how` says.
fn reset_delay(reset: f64, how: ResetIn) -> f64 {
    match how {
        ResetIn::Seconds => reset,
        ResetIn::EpochSeconds => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            (reset - now).max(0.0)
        }
    }
}

#[derive(Debug, Default)]
struct State {
    remaining: Option<f64>,
    reset_at: Option<Instant>,
    blocked_until: Option<Instant>,
}

/// One budget, shared by everything that spends the same credential's quota.
#[derive(Debug)]
pub struct RateBudget {
    headers: Option<RateHeaders>,
    /// Keep this many requests in reserve (other clients of the same app).
    reserve: f64,
    state: Mutex<State>,
}

impl RateBudget {
    /// A budget read from `headers` when the provider sends them.
    pub fn new(headers: Option<RateHeaders>) -> Self {
        RateBudget {
            headers,
            reserve: 1.0,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long to wait before sending the next request.
    pub fn wait_before(&self, now: Instant) -> Duration {
        let st = self.lock();
        let mut until = st.blocked_until;
        if let (Some(rem), Some(reset_at)) = (st.remaining, st.reset_at)
            && rem < self.reserve
        {
            until = until.max(Some(reset_at));
        }
        until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }

    /// Learn from a response's headers; `retry_after` is a parsed `Retry-After`.
    pub fn observe(
        &self,
        now: Instant,
        headers: &reqwest::header::HeaderMap,
        retry_after: Option<Duration>,
    ) -> Option<u64> {
        let mut st = self.lock();
        let mut remaining_out = None;
        if let Some(h) = self.headers {
            let num = |name: &str| -> Option<f64> {
                headers
                    .get(name)?
                    .to_str()
                    .ok()?
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
            };
            if let (Some(rem), Some(reset)) = (num(h.remaining), num(h.reset)) {
                st.remaining = Some(rem);
                let delay = reset_delay(reset, h.reset_in).min(86_400.0);
                st.reset_at = Some(now + Duration::from_secs_f64(delay));
                remaining_out = Some(rem as u64);
            }
        }
        if let Some(ra) = retry_after {
            st.blocked_until = Some(now + ra);
        }
        remaining_out
    }

    /// A 429 without usable headers: block for `d`.
    pub fn block_for(&self, now: Instant, d: Duration) {
        let mut st = self.lock();
        st.blocked_until = st.blocked_until.max(Some(now + d));
    }

    /// Time until the provider's window resets, when its headers say the budget is
    /// spent. A 429 while budget remains (a burst limit, an overloaded edge) is not worth
    /// waiting a whole window for: `None` tells the caller to back off instead.
    pub fn reset_if_exhausted(&self, now: Instant) -> Option<Duration> {
        let st = self.lock();
        match (st.remaining, st.reset_at) {
            (Some(rem), Some(reset_at)) if rem < self.reserve => {
                Some(reset_at.saturating_duration_since(now))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn waits_for_reset_when_remaining_runs_out() {
        let b = RateBudget::new(Some(RateHeaders::REDDIT));
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("5.0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("30"));
        assert_eq!(b.observe(now, &h, None), Some(5));
        assert_eq!(b.wait_before(now), Duration::ZERO);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0.0"));
        b.observe(now, &h, None);
        let w = b.wait_before(now);
        assert!(
            w > Duration::from_secs(29) && w <= Duration::from_secs(30),
            "{w:?}"
        );
    }

    #[test]
    fn a_429_with_budget_left_is_not_a_window_wait() {
        let b = RateBudget::new(Some(RateHeaders::REDDIT));
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("400.0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("550"));
        b.observe(now, &h, None);
        assert_eq!(b.reset_if_exhausted(now), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0.0"));
        b.observe(now, &h, None);
        assert!(
            b.reset_if_exhausted(now)
                .is_some_and(|d| d > Duration::from_secs(549))
        );
    }

    #[test]
    fn github_reset_is_a_unix_time() {
        let b = RateBudget::new(Some(RateHeaders::GITHUB));
        let now = Instant::now();
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let reset = HeaderValue::from_str(&(epoch + 120).to_string()).expect("header");
        h.insert("x-ratelimit-reset", reset);
        assert_eq!(b.observe(now, &h, None), Some(0));
        let w = b.wait_before(now);
        assert!(
            w > Duration::from_secs(110) && w <= Duration::from_secs(121),
            "{w:?}"
        );
    }

    #[test]
    fn retry_after_blocks_and_garbage_is_ignored() {
        let b = RateBudget::new(Some(RateHeaders::REDDIT));
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("NaN"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("-4"));
        assert_eq!(b.observe(now, &h, Some(Duration::from_secs(3))), None);
        assert_eq!(b.wait_before(now), Duration::from_secs(3));
    }
}
