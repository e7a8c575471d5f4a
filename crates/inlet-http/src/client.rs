//! The request loop: budget wait, auth, send, classify, retry.

use crate::{Backoff, Quota, RateBudget, RateHeaders, RetryPolicy, TokenSource};
use inlet_core::HttpStats;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER, USER_AGENT};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The provider's documented budget, kept while it does not report one in headers.
    pub documented: Option<Quota>,
    /// Share one budget with every client naming the same key (`provider:credential` or
    /// `provider:app`), so two syncs of one account never add up to more than allowed.
    /// `None`: this client's own budget.
    pub budget_key: Option<String>,
    /// Requests this client (one connection) has in flight at most.
    pub max_in_flight: usize,
    /// The shortest wait after a rate-limit answer that names no wait (a 429, or a 403
    /// the provider marks as a rate limit, without `Retry-After` and with budget left),
    /// doubling with each such answer to the same request (GitHub documents "at least one
    /// minute, then back off exponentially"). `None`: the ordinary backoff.
    pub rate_limit_floor: Option<Duration>,
    /// Recognises an answer saying the provider's call quota is spent (eBay's 429 with
    /// errorId 2001) and returns how long until it resets: nothing more is sent on this
    /// budget until then and the request ends at once with [`HttpError::RateLimited`].
    pub quota_spent: Option<fn(&Response) -> Option<Duration>>,
    /// The longest a request waits for a spent rate budget to reset (Reddit's windows
    /// are 10 minutes); a longer reset (GitHub's hour, eBay's day) ends the request at
    /// once with [`HttpError::RateLimited`] and nothing is sent.
    pub max_rate_wait: Duration,
}

/// The longest wait for a rate budget in place, by default.
pub const DEFAULT_MAX_RATE_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            user_agent: concat!("inlet/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            seed: 0x1b873593,
            rate_headers: None,
            documented: None,
            budget_key: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            rate_limit_floor: None,
            quota_spent: None,
            max_rate_wait: DEFAULT_MAX_RATE_WAIT,
        }
    }
}

/// Requests one connection has in flight at most, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10;

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
    #[error("{}", exhausted_message(*attempts, last))]
    Exhausted {
        /// Attempts made; 0 when `last` already says how it ended (a token refresh that
        /// gave up), so the count is said once.
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
    /// The provider's rate limit or call quota is spent and frees up later than this
    /// request may wait (its retry deadline); nothing is sent on the budget until then.
    #[error("{reason}; the provider's limit frees up in {}s", retry_in.as_secs())]
    RateLimited {
        /// How long until the provider accepts requests again.
        retry_in: Duration,
        /// What said so.
        reason: String,
    },
    /// The sync was cancelled ([`HttpClient::set_cancel`]) while this request waited or
    /// was in flight.
    #[error("cancelled")]
    Cancelled,
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
    /// The answer says the token expired (an API that answers 200 with an error body,
    /// Slack's `token_expired`): refresh it and retry once, as after a 401.
    Refresh(String),
}

impl<T> Parsed<T> {
    /// Transform the value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        match self {
            Parsed::Ok(v) => Parsed::Ok(f(v)),
            Parsed::Retry(m) => Parsed::Retry(m),
            Parsed::Fail(e) => Parsed::Fail(e),
            Parsed::Refresh(m) => Parsed::Refresh(m),
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    wait_ms: AtomicU64,
    quota_remaining: AtomicU64,
    /// End of the rate-limit wait under way, in ms after `Shared::epoch` (0: none).
    waiting_until: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    config: HttpConfig,
    backoff: Backoff,
    budget: Arc<RateBudget>,
    permits: tokio::sync::Semaphore,
    stats: Stats,
    epoch: Instant,
    /// Set: stop waiting and sending (see [`HttpClient::set_cancel`]).
    cancel: std::sync::Mutex<Option<Arc<AtomicBool>>>,
}

/// The shared HTTP client. Clones share the connection pool, budget and accounting.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
    auth: Option<Arc<dyn TokenSource>>,
    /// Requests wait for and count against the rate budget (false: a call the provider
    /// does not count, like eBay's rate-limit API).
    metered: bool,
    /// A request in flight is abandoned when the sync is cancelled (false for token
    /// exchanges: their answer may carry a rotated refresh token).
    abandon_on_cancel: bool,
    /// Requests take one of the shared in-flight permits (false for token exchanges: the
    /// requests waiting for their token may hold every permit).
    takes_permit: bool,
    /// Units of the documented quota each request costs (1 unless the provider bills
    /// methods by weight, see [`HttpClient::with_cost`]).
    cost: u32,
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
    /// `limited`: a rate-limit answer (its wait is the provider's, not a fault's backoff).
    Retry {
        why: String,
        wait: Option<Duration>,
        limited: bool,
    },
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
                budget: match &config.budget_key {
                    Some(k) => RateBudget::shared(k, config.rate_headers, config.documented),
                    None => Arc::new(RateBudget::with_quota(
                        config.rate_headers,
                        config.documented,
                    )),
                },
                permits: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
                stats,
                epoch: Instant::now(),
                cancel: std::sync::Mutex::new(None),
                config,
            }),
            auth: None,
            metered: true,
            abandon_on_cancel: true,
            takes_permit: true,
            cost: 1,
        })
    }

    /// The same client (pool, budget, accounting) sending bearer tokens from `auth`.
    pub fn with_auth(&self, auth: Arc<dyn TokenSource>) -> Self {
        HttpClient {
            shared: self.shared.clone(),
            auth: Some(auth),
            metered: self.metered,
            abandon_on_cancel: self.abandon_on_cancel,
            takes_permit: self.takes_permit,
            cost: self.cost,
        }
    }

    /// The same client (pool, budget, accounting) whose requests each cost `units` of the
    /// documented quota, for a provider that bills its methods by weight (Gmail: 10 units
    /// for `threads.get`, 2 for `history.list`); the budget's `Quota::requests` is then
    /// a number of units.
    pub fn with_cost(&self, units: u32) -> Self {
        HttpClient {
            cost: units.max(1),
            ..self.clone()
        }
    }

    /// The same client for calls the provider does not count against its quota (eBay's
    /// rate-limit API): they neither wait for nor spend the rate budget, so they go
    /// even while it is spent.
    pub fn unmetered(&self) -> Self {
        HttpClient {
            metered: false,
            ..self.clone()
        }
    }

    /// The same client for token exchanges: a request already sent is always awaited, even
    /// when the sync is cancelled (its waits still end at once) — an abandoned answer
    /// could hold a rotated refresh token, and the old one is then dead —, and it takes
    /// no in-flight permit: the API requests that wait for the token hold them, and with
    /// `max_in_flight` of them waiting the exchange could never start.
    pub fn awaiting_answers(&self) -> Self {
        HttpClient {
            abandon_on_cancel: false,
            takes_permit: false,
            ..self.clone()
        }
    }

    /// Set (or with `None` clear) the cancel flag of this client and every clone of it.
    /// While the flag is set, [`HttpClient::execute`] ends its waits (in-flight permit,
    /// rate budget, retry backoff) and abandons a request in flight with
    /// [`HttpError::Cancelled`]; the flag is polled every 50 ms.
    pub fn set_cancel(&self, flag: Option<Arc<AtomicBool>>) {
        *self.shared.cancel.lock().unwrap_or_else(|p| p.into_inner()) = flag;
    }

    fn cancel_flag(&self) -> Option<Arc<AtomicBool>> {
        self.shared
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_cancelled(&self) -> bool {
        self.cancel_flag().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Run `f` unless the cancel flag is set first; `Err(Cancelled)` then (and `f` is
    /// dropped).
    async fn unless_cancelled<T>(
        &self,
        f: impl std::future::Future<Output = T>,
    ) -> Result<T, HttpError> {
        let Some(flag) = self.cancel_flag() else {
            return Ok(f.await);
        };
        if flag.load(Ordering::SeqCst) {
            return Err(HttpError::Cancelled);
        }
        tokio::select! {
            v = f => Ok(v),
            () = until_set(&flag) => Err(HttpError::Cancelled),
        }
    }

    /// Accounting so far.
    pub fn stats(&self) -> HttpStats {
        let s = &self.shared.stats;
        let q = s.quota_remaining.load(Ordering::Relaxed);
        let now = self.shared.epoch.elapsed().as_millis() as u64;
        HttpStats {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            rate_limit_wait_ms: s.wait_ms.load(Ordering::Relaxed),
            quota_remaining: (q != NO_QUOTA).then_some(q),
            waiting_ms: s.waiting_until.load(Ordering::Relaxed).saturating_sub(now),
        }
    }

    /// The provider said, outside its response headers (eBay's rate-limit API), that
    /// `remaining` requests are left on this client's budget for `reset_in`.
    pub fn report_budget(&self, remaining: u64, reset_in: Duration) {
        self.shared
            .budget
            .set_reported(Instant::now(), remaining, reset_in);
        self.shared
            .stats
            .quota_remaining
            .store(remaining, Ordering::Relaxed);
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
        // Rate-limit answers without a wait, for the doubling floor.
        let mut floored: u32 = 0;
        // Attempts that failed on a fault (not a wait the provider asked for).
        let mut faults: u32 = 0;
        let mut refreshed = false;
        // Held for the whole exchange, retries and waits included.
        let _permit = if self.takes_permit {
            Some(
                self.unless_cancelled(sh.permits.acquire())
                    .await?
                    .map_err(|_| HttpError::Build("client closed".into()))?,
            )
        } else {
            None
        };
        loop {
            let token = match &self.auth {
                Some(a) => Some(a.token().await.map_err(|e| self.auth_failed(e))?),
                None => None,
            };
            if self.metered {
                self.wait_for_budget().await?;
            }
            let mut rb = build(&sh.client).header(USER_AGENT, &sh.config.user_agent);
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            sh.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = if self.abandon_on_cancel {
                match self.unless_cancelled(self.send(rb)).await {
                    Ok(r) => r,
                    Err(e) => {
                        // Abandoned in flight: no answer will be counted for it.
                        sh.budget.abandon();
                        return Err(e);
                    }
                }
            } else {
                self.send(rb).await
            };
            let outcome = match sent {
                Ok(resp) => self.classify(resp, &parse)?,
                Err(why) => {
                    if self.metered {
                        sh.budget.abandon();
                    }
                    Outcome::Retry {
                        why,
                        wait: None,
                        limited: false,
                    }
                }
            };
            match outcome {
                Outcome::Done(v) => return Ok(v),
                Outcome::Refresh(why) => {
                    let (Some(auth), Some(stale), false) = (&self.auth, &token, refreshed) else {
                        return Err(HttpError::Unauthorized(why));
                    };
                    refreshed = true;
                    auth.refresh(stale).await.map_err(|e| self.auth_failed(e))?;
                    sh.stats.retries.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retry {
                    why,
                    mut wait,
                    limited,
                } => {
                    attempt += 1;
                    if let (None, true, Some(floor)) = (wait, limited, sh.config.rate_limit_floor) {
                        // No wait named and budget left (GitHub's secondary limit): at
                        // least the floor, doubling, and every request on this budget
                        // pauses with this one.
                        let d = floor.saturating_mul(1u32 << floored.min(10));
                        floored += 1;
                        sh.budget.block_for(Instant::now(), d);
                        wait = Some(d);
                    }
                    // A wait the provider asked for (`Retry-After`, a rate-limit reset) is
                    // honoured as asked and is not a fault: it uses up only the deadline,
                    // not the attempts. Our own backoff is capped.
                    if wait.is_none() {
                        faults += 1;
                    }
                    let delay = wait.unwrap_or_else(|| sh.backoff.delay(faults.max(1) - 1));
                    let deadline = sh.config.retry.deadline;
                    if limited
                        && let Some(w) = wait
                        && (w > sh.config.max_rate_wait || started.elapsed() + w > deadline)
                    {
                        // Waiting longer than a request may: stop now and say when the
                        // provider takes requests again (the budget holds everything
                        // else back until then).
                        return Err(HttpError::RateLimited {
                            retry_in: w,
                            reason: why,
                        });
                    }
                    if faults >= sh.config.retry.max_attempts {
                        return Err(HttpError::Exhausted {
                            attempts: attempt,
                            last: why,
                        });
                    }
                    if started.elapsed() + delay > deadline {
                        let last = match wait {
                            Some(w) => format!(
                                "{why}; the provider asked to wait {} s more, past this request's {} s deadline",
                                w.as_secs_f64().ceil(),
                                deadline.as_secs()
                            ),
                            None => format!("{why} (deadline of {} s reached)", deadline.as_secs()),
                        };
                        return Err(HttpError::Exhausted {
                            attempts: attempt,
                            last,
                        });
                    }
                    tracing::debug!(attempt, ?delay, error = %why, "Retrying request.");
                    sh.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if wait.is_some() {
                        sh.stats
                            .wait_ms
                            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
                    }
                    self.unless_cancelled(tokio::time::sleep(delay)).await?;
                }
            }
        }
    }

    /// A token could not be had: cancelled when the sync was, else the auth error.
    fn auth_failed(&self, e: crate::AuthError) -> HttpError {
        if self.is_cancelled() {
            return HttpError::Cancelled;
        }
        auth_error(e)
    }

    /// Wait until the budget lets one more request go, and count it; `Err(Cancelled)`
    /// when the sync is cancelled first. A budget known to be spent for longer than
    /// [`HttpConfig::max_rate_wait`] sends nothing: [`HttpError::RateLimited`].
    async fn wait_for_budget(&self) -> Result<(), HttpError> {
        let sh = &*self.shared;
        loop {
            if self.is_cancelled() {
                sh.stats.waiting_until.store(0, Ordering::Relaxed);
                return Err(HttpError::Cancelled);
            }
            let wait = sh.budget.acquire_units(Instant::now(), self.cost);
            if wait.is_zero() {
                sh.stats.waiting_until.store(0, Ordering::Relaxed);
                return Ok(());
            }
            if wait > sh.config.max_rate_wait {
                sh.stats.waiting_until.store(0, Ordering::Relaxed);
                return Err(HttpError::RateLimited {
                    retry_in: wait,
                    reason: "the provider's rate limit is spent".into(),
                });
            }
            if wait >= Duration::from_secs(1) {
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "Waiting for the provider's rate limit window."
                );
            }
            let until = (sh.epoch.elapsed() + wait).as_millis() as u64;
            sh.stats.waiting_until.store(until, Ordering::Relaxed);
            let t0 = Instant::now();
            let slept = self.unless_cancelled(tokio::time::sleep(wait)).await;
            sh.stats
                .wait_ms
                .fetch_add(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
            if slept.is_err() {
                sh.stats.waiting_until.store(0, Ordering::Relaxed);
            }
            slept?;
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
        let reported = if self.metered {
            sh.budget.observe(now, &resp.headers, retry_after)
        } else {
            None
        };
        if let Some(rem) = reported {
            sh.stats.quota_remaining.store(rem, Ordering::Relaxed);
        }
        let status = resp.status;
        if let Some(d) = sh
            .config
            .quota_spent
            .filter(|_| self.metered)
            .and_then(|f| f(&resp))
        {
            // Every request on this budget stops here, also those queued behind this one.
            sh.budget.block_for(now, d);
            return Err(HttpError::RateLimited {
                retry_in: d,
                reason: format!(
                    "HTTP {} call limit reached: {}",
                    status.as_u16(),
                    excerpt(&resp.body)
                ),
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Outcome::Refresh(format!(
                "HTTP 401: {}",
                excerpt(&resp.body)
            )));
        }
        // GitHub signals its primary and secondary limits with 403 (or 429) plus either
        // `Retry-After`, a spent `X-RateLimit-Remaining` or a message naming the rate
        // limit ("You have exceeded a secondary rate limit"): a wait, not a failure.
        let limited_403 = status == StatusCode::FORBIDDEN
            && (retry_after.is_some() || reported == Some(0) || mentions_rate_limit(&resp.body));
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
                limited: true,
            });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Ok(Outcome::Retry {
                why: format!("HTTP {}", status.as_u16()),
                wait: None,
                limited: false,
            });
        }
        if status.is_client_error() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                message: excerpt(&resp.body),
            });
        }
        // A connector's parse message may quote the answer (serde quotes a bad string
        // value whole): keep it short and printable too.
        Ok(match parse(&resp) {
            Parsed::Ok(v) => Outcome::Done(v),
            Parsed::Retry(why) => Outcome::Retry {
                why: clip(&why, 2 * MAX_SNIPPET_CHARS),
                wait: None,
                limited: false,
            },
            Parsed::Fail(HttpError::Invalid(m)) => {
                return Err(HttpError::Invalid(clip(&m, 2 * MAX_SNIPPET_CHARS)));
            }
            Parsed::Fail(e) => return Err(e),
            Parsed::Refresh(why) => Outcome::Refresh(clip(&why, 2 * MAX_SNIPPET_CHARS)),
        })
    }
}

/// Resolves once `flag` is set (polled every 50 ms: the flag is a plain atomic set from
/// a signal handler or another task).
async fn until_set(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn exhausted_message(attempts: u32, last: &str) -> String {
    if attempts == 0 {
        last.to_string()
    } else {
        format!("gave up after {attempts} attempts: {last}")
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

/// Longest piece of a provider's answer quoted in an error, in characters.
pub const MAX_SNIPPET_CHARS: usize = 200;

/// Whether an error body names a rate limit (GitHub's secondary-limit 403 says "You have
/// exceeded a secondary rate limit").
fn mentions_rate_limit(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    // Prose ("rate limit exceeded") or a reason code (Google's `rateLimitExceeded`,
    // `userRateLimitExceeded`).
    head.contains("rate limit") || head.contains("ratelimitexceeded")
}

fn excerpt(body: &[u8]) -> String {
    // A few bytes more than the snippet keeps, so a cut multi-byte character at the end
    // does not matter; the rest of the body is never looked at.
    let head = &body[..body.len().min(MAX_SNIPPET_CHARS * 4 + 4)];
    let s = snippet(&String::from_utf8_lossy(head));
    if body.len() > head.len() && !s.ends_with('…') {
        format!("{s}…")
    } else {
        s
    }
}

/// A short, printable quote of text from a provider (a response body, an error field):
/// control and bidirectional-formatting characters removed, whitespace runs made one
/// space, at most [`MAX_SNIPPET_CHARS`] characters (`…` marks a cut). Errors built
/// from answers use it, so they never carry a whole body or forge log lines.
pub fn snippet(text: &str) -> String {
    clip(text, MAX_SNIPPET_CHARS)
}

/// [`snippet`] with another length limit.
fn clip(text: &str, max_chars: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    let words = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = words.chars().take(max_chars).collect();
    if out.len() < words.len() {
        out.push('…');
    }
    out
}

/// Zero-width and bidirectional-override characters, which hide or reorder text.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Per-connection HTTP settings a connection's config may carry (key `http`), applied over
/// the defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Requests in flight at most (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Seconds allowed for a whole request, body included (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_secs: Option<u64>,
    /// Seconds allowed to connect (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_secs: Option<u64>,
}

impl HttpSettings {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        *self == HttpSettings::default()
    }

    /// Reject values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == Some(0) {
            return Err("http.max_in_flight must be at least 1".into());
        }
        if self.request_timeout_secs == Some(0) || self.connect_timeout_secs == Some(0) {
            return Err("http timeouts must be at least 1 second".into());
        }
        Ok(())
    }

    /// Apply the settings that are set.
    pub fn apply(&self, c: &mut HttpConfig) {
        if let Some(n) = self.max_in_flight {
            c.max_in_flight = n.max(1);
        }
        if let Some(s) = self.request_timeout_secs {
            c.request_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(s) = self.connect_timeout_secs {
            c.connect_timeout = Duration::from_secs(s.max(1));
        }
    }
}

#[cfg(test)]
mod snippet_tests {
    use super::*;

    #[test]
    fn a_huge_or_hostile_body_is_quoted_short_and_printable() {
        let mut body = b"internal\r\nadmin \x1b[31mpage\t\xe2\x80\xaeevil ".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1 << 20));
        let s = excerpt(&body);
        assert!(s.chars().count() <= MAX_SNIPPET_CHARS + 1, "{}", s.len());
        assert!(s.starts_with("internal admin [31mpage evil x"), "{s}");
        assert!(s.ends_with('…'));
        assert!(!s.chars().any(|c| c.is_control() || c == '\u{202E}'));
        assert_eq!(snippet("  short  answer "), "short answer");
        assert_eq!(excerpt("é".repeat(300).as_bytes()).chars().count(), 201);
        let serde_msg = format!("invalid type: string \"{}\"", "y".repeat(100_000));
        assert_eq!(clip(&serde_msg, 400).chars().count(), 401);
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn a_failed_token_refresh_says_its_attempts_once() {
        let inner = HttpError::Exhausted {
            attempts: 5,
            last: "HTTP 429 rate limited".into(),
        };
        assert_eq!(
            inner.to_string(),
            "gave up after 5 attempts: HTTP 429 rate limited"
        );
        let e = auth_error(crate::AuthError::Transient(inner.to_string()));
        assert_eq!(
            e.to_string(),
            "token refresh failed: gave up after 5 attempts: HTTP 429 rate limited"
        );
    }
}
