//! inlet-http: the one HTTP client every inlet connector uses.
//!
//! A connector hands [`HttpClient::execute`] a closure that builds its request and a
//! closure that parses the answer; the client owns everything else, once for every
//! provider:
//!
//! * **Auth** — a [`TokenSource`] supplies bearer tokens; on a 401 the token is refreshed
//!   once (single-flight: concurrent requests share one refresh) and the request retried;
//!   a second 401 is [`HttpError::Unauthorized`], which the engine turns into
//!   `needs_reauth`.
//! * **Retries** — connection errors, timeouts, 5xx, 429, truncated bodies and unparsable
//!   JSON retry with exponential backoff and full jitter, a cap per wait and a total
//!   deadline. 400/403/404 never retry, except a 403 that is a rate limit. A rate-limit
//!   answer without `Retry-After` waits at least [`HttpConfig::rate_limit_floor`],
//!   doubling; a provider's "quota spent" answer ([`HttpConfig::quota_spent`]) and a
//!   limit that frees up later than the request may wait end it with
//!   [`HttpError::RateLimited`] without sending more.
//! * **Rate limits** — [`RateBudget`] reads the provider's remaining/reset headers and
//!   `Retry-After`, and pauses before the budget runs dry instead of after; while a
//!   provider reports nothing it keeps the documented [`Quota`] (at most N requests in
//!   any window). Budgets are shared per `provider:credential` key across every client in
//!   the process, and each client keeps at most [`HttpConfig::max_in_flight`] requests
//!   in flight.
//! * **Accounting** — requests, retries and time spent waiting, for the run report.
//!
//! Attachment downloads ([`Downloader`]) share the retry policy but stream the body
//! against a size cap, on allowed hosts only.
#![deny(missing_docs)]

mod auth;
mod budget;
mod client;
mod download;
mod retry;

pub use auth::{AuthError, Grant, OAuth2Token, RenewHook, StaticToken, TokenSnapshot, TokenSource};
pub use budget::{Quota, RateBudget, RateHeaders, ResetIn};
pub use client::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_RATE_WAIT, HttpClient, HttpConfig, HttpError, HttpSettings,
    MAX_SNIPPET_CHARS, Parsed, Response, snippet,
};
pub use download::{DEFAULT_MAX_BYTES, DownloadConfig, DownloadStats, Downloader};
pub use retry::{Backoff, RetryPolicy};
