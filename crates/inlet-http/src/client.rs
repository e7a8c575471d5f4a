//! The request loop: budget wait, auth, send, classify, retry.

use crate::{Backoff, RateBudget, RateHeaders, RetryPolicy, TokenSource};
use inlet_core::HttpStats;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER, USER_AGENT};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Settings of an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Sent on every request (Reddit throttles generic agents hard).
    pub user_agent: String,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request, body included.
    pub request_timeout: Duration,
    /// Retry spacing and bounds.
    pub retry: RetryPolicy,
    /// Seed for backoff jitter.
    pub seed: u64,
    /// The provider's rate-limit headers, if it sends them.
    pub rate_headers: Option<RateHeaders>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            user_agent: concat!("inlet/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            seed: 0x1b873593,
            rate_headers: None,
        }
    }
}

/// A request failed for good.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// 401 even after a token refresh, or the token could not be refreshed.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A status that retrying cannot fix (400, 403, 404, ...).
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// A short excerpt of the body.
        message: String,
    },
    /// Retries or the deadline ran out on transient faults.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last fault.
        last: String,
    },
    /// The answer was understood and is wrong (not retryable).
    #[error("{0}")]
    Invalid(String),
    /// The client could not be built.
    #[error("cannot build HTTP client: {0}")]
    Build(String),
}

/// A complete response: status, headers, the whole body.
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// What a parse closure decided about a successful response.
#[derive(Debug)]
pub enum Parsed<T> {
    /// The value.
    Ok(T),
    /// A transient fault (a truncated or invalid body): retry.
    Retry(String),
    /// A permanent failure.
    Fail(HttpError),
}

impl<T> Parsed<T> {
    /// Transform the value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        match self {
            Parsed::Ok(v) => Parsed::Ok(f(v)),
            Parsed::Retry(m) => Parsed::Retry(m),
            Parsed::Fail(e) => Parsed::Fail(e),
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    wait_ms: AtomicU64,
    quota_remaining: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    config: HttpConfig,
    backoff: Backoff,
    budget: RateBudget,
    stats: Stats,
}

/// The shared HTTP client. Clones share the connection pool, budget and accounting.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
    auth: Option<Arc<dyn TokenSource>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

const NO_QUOTA: u64 = u64::MAX;

enum Outcome<T> {
    Done(T),
    Retry { why: String, wait: Option<Duration> },
    Refresh(String),
}

impl HttpClient {
    /// A client without auth.
    pub fn new(config: HttpConfig) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let stats = Stats::default();
        stats.quota_remaining.store(NO_QUOTA, Ordering::Relaxed);
        Ok(HttpClient {
            shared: Arc::new(Shared {
                client,
                backoff: Backoff::new(config.retry, config.seed),
                budget: RateBudget::new(config.rate_headers),
                stats,
                config,
            }),
            auth: None,
        })
    }

    /// The same client (pool, budget, accounting) sending bearer tokens from `auth`.
    pub fn with_auth(&self, auth: Arc<dyn TokenSource>) -> Self {
        HttpClient {
            shared: self.shared.clone(),
            auth: Some(auth),
        }
    }

    /// Accounting so far.
    pub fn stats(&self) -> HttpStats {
        let s = &self.shared.stats;
        let q = s.quota_remaining.load(Ordering::Relaxed);
        HttpStats {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            rate_limit_wait_ms: s.wait_ms.load(Ordering::Relaxed),
            quota_remaining: (q != NO_QUOTA).then_some(q),
        }
    }

    /// Send the request `build` makes, retrying transient faults, and hand the response to
    /// `parse`. `build` is called once per attempt.
    pub async fn execute<T>(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Response) -> Parsed<T>,
    ) -> Result<T, HttpError> {
        let sh = &*self.shared;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            self.wait_for_budget().await;
            let token = match &self.auth {
                Some(a) => Some(a.token().await.map_err(auth_error)?),
                None => None,
            };
            let mut rb = build(&sh.client).header(USER_AGENT, &sh.config.user_agent);
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            sh.stats.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.send(rb).await {
                Ok(resp) => self.classify(resp, &parse)?,
                Err(why) => Outcome::Retry { why, wait: None },
            };
            match outcome {
                Outcome::Done(v) => return Ok(v),
                Outcome::Refresh(why) => {
                    let (Some(auth), Some(stale), false) = (&self.auth, &token, refreshed) else {
                        return Err(HttpError::Unauthorized(why));
                    };
                    refreshed = true;
                    auth.refresh(stale).await.map_err(auth_error)?;
                    sh.stats.retries.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retry { why, wait } => {
                    attempt += 1;
                    // A wait the provider asked for is honoured as asked; our own is capped.
                    let delay = wait.unwrap_or_else(|| sh.backoff.delay(attempt - 1));
                    if attempt >= sh.config.retry.max_attempts
                        || started.elapsed() + delay > sh.config.retry.deadline
                    {
                        return Err(HttpError::Exhausted {
                            attempts: attempt,
                            last: why,
                        });
                    }
                    tracing::debug!(attempt, ?delay, error = %why, "Retrying request.");
                    sh.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if wait.is_some() {
                        sh.stats
                            .wait_ms
                            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn wait_for_budget(&self) {
        let wait = self.shared.budget.wait_before(Instant::now());
        if !wait.is_zero() {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "Waiting for the provider's rate limit window."
            );
            self.shared
                .stats
                .wait_ms
                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Response, String> {
        let resp = rb.send().await.map_err(describe)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading body: {}", describe(e)))?;
        Ok(Response {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    fn classify<T>(
        &self,
        resp: Response,
        parse: &impl Fn(&Response) -> Parsed<T>,
    ) -> Result<Outcome<T>, HttpError> {
        let sh = &*self.shared;
        let now = Instant::now();
        let retry_after = retry_after(&resp.headers);
        if let Some(rem) = sh.budget.observe(now, &resp.headers, retry_after) {
            sh.stats.quota_remaining.store(rem, Ordering::Relaxed);
        }
        let status = resp.status;
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Outcome::Refresh(format!(
                "HTTP 401: {}",
                excerpt(&resp.body)
            )));
        }
        // GitHub signals its primary and secondary limits with 403 (or 429) plus either
        // `Retry-After` or a spent `X-RateLimit-Remaining`: a wait, not a failure.
        let limited_403 = status == StatusCode::FORBIDDEN
            && (retry_after.is_some() || sh.budget.reset_if_exhausted(now).is_some());
        if status == StatusCode::TOO_MANY_REQUESTS || limited_403 {
            let wait = retry_after
                .or_else(|| sh.budget.reset_if_exhausted(now))
                .map(|d| d.max(Duration::from_millis(100)));
            if let Some(w) = wait {
                sh.budget.block_for(now, w);
            }
            return Ok(Outcome::Retry {
                why: format!("HTTP {} rate limited", status.as_u16()),
                wait,
            });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Ok(Outcome::Retry {
                why: format!("HTTP {}", status.as_u16()),
                wait: None,
            });
        }
        if status.is_client_error() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                message: excerpt(&resp.body),
            });
        }
        Ok(match parse(&resp) {
            Parsed::Ok(v) => Outcome::Done(v),
            Parsed::Retry(why) => Outcome::Retry { why, wait: None },
            Parsed::Fail(e) => return Err(e),
        })
    }
}

fn auth_error(e: crate::AuthError) -> HttpError {
    match e {
        crate::AuthError::Rejected(m) => HttpError::Unauthorized(m),
        crate::AuthError::Transient(m) => HttpError::Exhausted {
            attempts: 0,
            last: format!("token refresh failed: {m}"),
        },
    }
}

fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    // Strip the URL: query strings may carry identifiers we do not want in logs.
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and ignored).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: f64 = h.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
