//! eBay configuration, credentials and the authenticated client.

use inlet_core::{ConnectorError, Timestamp};
use inlet_http::{Grant, HttpClient, HttpConfig, HttpError, OAuth2Token, Parsed, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The real Message API.
pub const DEFAULT_API_BASE: &str = "https://api.ebay.com/commerce/message/v1";
/// The OAuth scope the Message API needs (sent with every token refresh).
pub const MESSAGE_SCOPE: &str = "https://api.ebay.com/oauth/api_scope/commerce.message";
/// The real token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.ebay.com/identity/v1/oauth2/token";

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.into()
}
fn default_page_size() -> u32 {
    50
}
fn default_listings() -> Vec<String> {
    vec!["FROM_MEMBERS".into()]
}
fn default_full_scan_every() -> u32 {
    10
}
fn default_concurrency() -> usize {
    10
}
fn default_sample_rate() -> f64 {
    0.01
}
fn default_system_pages() -> u32 {
    1
}
fn default_system_pages_full() -> u32 {
    5
}
fn default_marketplace() -> String {
    "EBAY_US".into()
}

/// How a delta sync finds the member conversations that changed
/// (`shared/providers/ebay.md` §6).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EbayDelta {
    /// Read the unfiltered listing newest activity first (`sort=-last_modified_date`) and
    /// stop at the first conversation that is unchanged and older than the last sync:
    /// buyer messages and the seller's own website replies alike, in the same sync.
    #[default]
    NewestFirst,
    /// Filter the listing with `start_time`, which eBay appears to apply to the buyer's
    /// activity only: a reply the seller wrote on the website waits for the next full scan.
    StartTime,
}

/// The sort every conversation listing asks for: newest activity first. Integrations pass
/// it (it is not in the docs we saw), and on very large accounts eBay answers the
/// unnarrowed listing with 5xx unless it is given (`shared/providers/ebay.md` §6).
pub const LISTING_SORT: &str = "-last_modified_date";

/// Settings of an eBay connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbayConfig {
    /// Message API base URL; override for sandboxes (`https://api.sandbox.ebay.com/commerce/message/v1`) and simulators.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Token endpoint URL.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// Conversations / messages per request, 1..=50 (eBay's maximum is 50).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Member-conversation listings merged by id: `FROM_MEMBERS`, plus `FROM_OWNERS`
    /// (the sent side; undocumented, reported and skipped when eBay refuses it).
    #[serde(default = "default_listings")]
    pub listings: Vec<String>,
    /// How deltas find changed member conversations (default: newest activity first).
    #[serde(default)]
    pub delta: EbayDelta,
    /// Every Nth sync lists all conversations (the safety net: it also tombstones
    /// conversations no longer listed); 1 = every sync.
    #[serde(default = "default_full_scan_every")]
    pub full_scan_every: u32,
    /// Conversations fetched at once, 1..=50.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Share of unchanged conversations re-fetched per sync to check the marker, 0..=1.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
    /// FROM_EBAY listing pages read per sync.
    #[serde(default = "default_system_pages")]
    pub system_pages: u32,
    /// FROM_EBAY listing pages read per full sync.
    #[serde(default = "default_system_pages_full")]
    pub system_pages_full: u32,
    /// `X-EBAY-C-MARKETPLACE-ID` sent with every call.
    #[serde(default = "default_marketplace")]
    pub marketplace: String,
}

impl Default for EbayConfig {
    fn default() -> Self {
        EbayConfig {
            api_base: default_api_base(),
            token_url: default_token_url(),
            page_size: default_page_size(),
            listings: default_listings(),
            delta: EbayDelta::default(),
            full_scan_every: default_full_scan_every(),
            concurrency: default_concurrency(),
            sample_rate: default_sample_rate(),
            system_pages: default_system_pages(),
            system_pages_full: default_system_pages_full(),
            marketplace: default_marketplace(),
        }
    }
}

impl EbayConfig {
    /// Check the values a user typed.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(m));
        for (what, url) in [("api_base", &self.api_base), ("token_url", &self.token_url)] {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
            if !ok {
                return bad(format!("{what} {url:?} is not an http(s) URL"));
            }
        }
        if !(1..=50).contains(&self.page_size) {
            return bad(format!("page_size {} is outside 1..=50", self.page_size));
        }
        if self.listings.is_empty() {
            return bad("listings must name at least one conversation type".into());
        }
        if let Some(l) = self
            .listings
            .iter()
            .find(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        {
            return bad(format!(
                "listing {l:?} is not a conversation type like FROM_MEMBERS"
            ));
        }
        if !(1..=50).contains(&self.concurrency) {
            return bad(format!(
                "concurrency {} is outside 1..=50",
                self.concurrency
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return bad(format!("sample_rate {} is outside 0..=1", self.sample_rate));
        }
        if self.full_scan_every == 0 || self.system_pages == 0 || self.system_pages_full == 0 {
            return bad(
                "full_scan_every, system_pages and system_pages_full must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// Secrets of an eBay connection (sealed at rest).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbayCredentials {
    /// The app's client id (App ID).
    pub client_id: String,
    /// The app's client secret (Cert ID).
    pub client_secret: String,
    /// The user's refresh token (lives ~18 months; eBay does not rotate it).
    pub refresh_token: String,
    /// Cached access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Cached access token's expiry, ms since the epoch.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

impl std::fmt::Debug for EbayCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbayCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An authenticated eBay API client.
pub struct EbayClient {
    /// Authenticated requests.
    pub http: HttpClient,
    /// The token source (to persist refreshed tokens).
    pub token: Arc<OAuth2Token>,
}

impl EbayClient {
    /// Build the client.
    pub fn new(
        config: &EbayConfig,
        creds: &EbayCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        if creds.client_id.is_empty()
            || creds.client_secret.is_empty()
            || creds.refresh_token.is_empty()
        {
            return Err(ConnectorError::Config(
                "eBay credentials need a client id, a client secret and a refresh token".into(),
            ));
        }
        let http = HttpConfig {
            // eBay's call limit answers 429 with errorId 2001 and no rate headers: stop at
            // once instead of retrying into the limit.
            quota_spent: http.quota_spent.or(Some(quota_spent)),
            ..http
        };
        let base = HttpClient::new(http).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let cached = creds.access_token.clone().zip(creds.expires_at_ms);
        let token = Arc::new(
            OAuth2Token::new(
                // The token endpoint is not part of the Message API's call limit: a spent
                // limit must not hold a token refresh back.
                base.unmetered(),
                config.token_url.clone(),
                creds.client_id.clone(),
                creds.client_secret.clone(),
                Grant::RefreshToken(creds.refresh_token.clone()),
                cached,
            )
            // eBay's refresh request names the scopes wanted (the same or a subset of those
            // granted); the Message API needs only this one.
            .with_scope(MESSAGE_SCOPE),
        );
        Ok(EbayClient {
            http: base.with_auth(token.clone()),
            token,
        })
    }
}

/// eBay's "call limit reached" answer: HTTP 429 with errorId 2001 ("Too many requests").
/// eBay sends neither rate headers nor `Retry-After`; its daily quotas reset at the start
/// of the next UTC day, so that is how long to wait (the rate-limit API may say more
/// exactly: [`rate_limit_url`]).
pub fn quota_spent(r: &Response) -> Option<Duration> {
    if r.status.as_u16() != 429 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let limit = v
        .get("errors")?
        .as_array()?
        .iter()
        .any(|e| e.get("errorId").and_then(serde_json::Value::as_i64) == Some(2001));
    limit.then(|| until_next_utc_day(SystemTime::now()))
}

/// From `now` to the next midnight UTC.
pub fn until_next_utc_day(now: SystemTime) -> Duration {
    const DAY: u64 = 86_400_000;
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(DAY - ms % DAY)
}

/// The Developer Analytics API's `user_rate_limit` resource next to a Message API base
/// (`https://api.ebay.com/commerce/message/v1` →
/// `https://api.ebay.com/developer/analytics/v1_beta/user_rate_limit/`); `None` for a
/// base of another shape.
pub fn rate_limit_url(api_base: &str) -> Option<String> {
    let root = api_base
        .trim_end_matches('/')
        .strip_suffix("/commerce/message/v1")?;
    Some(format!(
        "{root}/developer/analytics/v1_beta/user_rate_limit/"
    ))
}

/// The Message API's call limit in a `getUserRateLimits` answer (`rateLimits[]` of
/// apiContext `commerce`, apiName `message`, their `resources[].rates[]`): the rate with
/// the fewest calls left, as (remaining, time until its reset). `Ok(None)` when the
/// answer names no such rate.
pub fn parse_rate_limits(r: &Response, now: SystemTime) -> Parsed<Option<(u64, Duration)>> {
    let v: serde_json::Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => return Parsed::Fail(HttpError::Invalid(format!("eBay rate limits: {e}"))),
    };
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let is = |x: &serde_json::Value, key: &str, want: &str| {
        x.get(key)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case(want))
    };
    let mut best: Option<(u64, Duration)> = None;
    let apis = v.get("rateLimits").and_then(serde_json::Value::as_array);
    for api in apis.into_iter().flatten() {
        if !(is(api, "apiContext", "commerce") && is(api, "apiName", "message")) {
            continue;
        }
        let resources = api.get("resources").and_then(serde_json::Value::as_array);
        for res in resources.into_iter().flatten() {
            let rates = res.get("rates").and_then(serde_json::Value::as_array);
            for rate in rates.into_iter().flatten() {
                let Some(remaining) = rate.get("remaining").and_then(serde_json::Value::as_u64)
                else {
                    continue;
                };
                let reset_in = rate
                    .get("reset")
                    .and_then(serde_json::Value::as_str)
                    .and_then(Timestamp::parse_rfc3339)
                    .map_or_else(
                        || until_next_utc_day(now),
                        |t| Duration::from_millis(t.0.saturating_sub(now_ms).max(0) as u64),
                    );
                if best.is_none_or(|(r, _)| remaining < r) {
                    best = Some((remaining, reset_in));
                }
            }
        }
    }
    Parsed::Ok(best)
}

/// Map a failed request onto the engine's error kinds.
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => {
            ConnectorError::NeedsReauth(format!("eBay rejected the credentials ({m})"))
        }
        HttpError::Status {
            status: 403,
            message,
        } => ConnectorError::NeedsReauth(format!(
            "eBay denied access ({message}); the token may lack the commerce.message scope: re-consent"
        )),
        HttpError::Status { status, message } => {
            ConnectorError::Provider(format!("HTTP {status}: {message}"))
        }
        HttpError::Exhausted { .. } => ConnectorError::Transient(e.to_string()),
        HttpError::Invalid(m) => ConnectorError::Parse(m),
        HttpError::RateLimited { retry_in, reason } => ConnectorError::RateLimited {
            message: reason,
            retry_in,
        },
        other => ConnectorError::Config(other.to_string()),
    }
}
