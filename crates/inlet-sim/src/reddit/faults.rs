//! Fault injection: seeded, so the same seed and request sequence give the same faults.

use crate::util::Rng;
use std::time::Duration;

/// Faults to inject into responses. Probabilities are in `[0, 1]`.
///
/// By default faults apply to API requests only (not the token endpoint); set
/// [`Faults::path_contains`] to `"access_token"` to fault the token endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Probability of a 500/502/503 with an HTML CDN-style body.
    pub http_5xx: f64,
    /// Probability of reading the request and then closing the socket with a TCP RST.
    pub reset: f64,
    /// Probability of sending the head (with the full `Content-Length`) and half of the body.
    pub truncated: f64,
    /// Extra latency added to a response when the latency fault fires.
    pub latency_ms: u64,
    /// Probability of adding [`Faults::latency_ms`] of latency.
    pub latency_prob: f64,
    /// The next N matching requests answer 429 with `X-Ratelimit-Reset` (not counted as
    /// client violations).
    pub http_429_burst: u32,
    /// Seconds of `Retry-After` sent with the burst's 429s (none when `None`).
    pub retry_after_secs: Option<u64>,
    /// Only requests whose path contains this string are faulted.
    pub path_contains: Option<String>,
    /// Fault decisions are made for the next N matching requests only, then faults stop.
    pub only_next: Option<u32>,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Serve normally.
    None,
    /// Close with an RST, no answer.
    Reset,
    /// Answer this 5xx status with an HTML body.
    Status5xx(u16),
    /// Answer 429 (a server-side burst).
    Burst429,
    /// Serve normally but cut the body in half.
    Truncate,
}

impl Injected {
    /// How the response the handler filled is delivered under this fault.
    pub(crate) fn delivery(self) -> crate::server::Delivery {
        use crate::server::Delivery;
        match self {
            Injected::Reset => Delivery::Reset,
            Injected::Truncate => Delivery::Truncate,
            Injected::None | Injected::Status5xx(_) | Injected::Burst429 => Delivery::Normal,
        }
    }
}

/// A decision for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub injected: Injected,
    pub delay: Option<Duration>,
}

/// Active faults and the RNG that decides them.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    seed: u64,
    generation: u64,
    rng: Rng,
    burst_left: u32,
    only_left: Option<u32>,
}

/// The CDN page Reddit's edge serves when the origin is unreachable.
pub(crate) const CDN_HTML: &str = "<!doctype html>\n<html>\n  <head>\n    <title>Reddit - Dive into anything</title>\n  </head>\n  <body>\n    <h1>Our CDN was unable to reach our servers</h1>\n    <p>Please check <a href=\"https://www.redditstatus.com\">www.redditstatus.com</a> if you consistently get this error.</p>\n  </body>\n</html>\n";

impl FaultState {
    /// No faults; decisions derive from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        FaultState {
            faults: Faults::default(),
            seed,
            generation: 0,
            rng: Rng::derive(seed, 0xfa17, 0),
            burst_left: 0,
            only_left: None,
        }
    }

    /// Replaces the active faults; the RNG restarts from a seed-derived state, so the same
    /// sequence of `set` calls and requests always yields the same decisions.
    pub(crate) fn set(&mut self, faults: Faults) {
        self.generation += 1;
        self.rng = Rng::derive(self.seed, 0xfa17, self.generation);
        self.burst_left = faults.http_429_burst;
        self.only_left = faults.only_next;
        self.faults = faults;
    }

    /// `Retry-After` seconds for burst 429s.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.faults.retry_after_secs
    }

    fn matches(&self, path: &str, is_token: bool) -> bool {
        match &self.faults.path_contains {
            Some(p) => path.contains(p.as_str()),
            None => !is_token,
        }
    }

    /// Decides the fate of one request.
    pub(crate) fn decide(&mut self, path: &str, is_token: bool) -> Decision {
        let none = Decision {
            injected: Injected::None,
            delay: None,
        };
        if !self.matches(path, is_token) || self.only_left == Some(0) {
            return none;
        }
        if let Some(n) = self.only_left.as_mut() {
            *n -= 1;
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return Decision {
                injected: Injected::Burst429,
                delay: None,
            };
        }
        let f = &self.faults;
        let [u_reset, u_5xx, u_trunc, u_lat, u_code] = std::array::from_fn(|_| self.rng.unit());
        let injected = if u_reset < f.reset {
            Injected::Reset
        } else if u_5xx < f.http_5xx {
            Injected::Status5xx([500, 502, 503][(u_code * 3.0) as usize % 3])
        } else if u_trunc < f.truncated {
            Injected::Truncate
        } else {
            Injected::None
        };
        let delay = (f.latency_ms > 0 && u_lat < f.latency_prob)
            .then(|| Duration::from_millis(f.latency_ms));
        Decision { injected, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<Injected> {
        let mut s = FaultState::new(seed);
        s.set(Faults {
            http_5xx: 0.3,
            reset: 0.2,
            truncated: 0.2,
            ..Faults::default()
        });
        (0..200)
            .map(|_| s.decide("/message/inbox", false).injected)
            .collect()
    }

    #[test]
    fn deterministic_and_scoped() {
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        let mut s = FaultState::new(1);
        s.set(Faults {
            reset: 1.0,
            path_contains: Some("/sent".into()),
            only_next: Some(2),
            ..Faults::default()
        });
        assert_eq!(s.decide("/message/inbox", false).injected, Injected::None);
        assert_eq!(s.decide("/message/sent", false).injected, Injected::Reset);
        assert_eq!(
            s.decide("/api/v1/access_token", true).injected,
            Injected::None
        );
        assert_eq!(s.decide("/message/sent", false).injected, Injected::Reset);
        assert_eq!(s.decide("/message/sent", false).injected, Injected::None);
    }
}
