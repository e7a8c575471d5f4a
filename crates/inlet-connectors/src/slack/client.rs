//! Slack configuration, credentials, the per-tier HTTP clients and the `ok` envelope.

use inlet_core::ConnectorError;
use inlet_http::{Grant, HttpClient, HttpConfig, HttpError, OAuth2Token, Parsed, Quota, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The real Web API.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_first_sync_hours() -> u32 {
    24
}
fn default_lookback_hours() -> u32 {
    24
}
fn default_page_size() -> u32 {
    200
}
fn default_concurrency() -> usize {
    4
}
fn default_tier2() -> u32 {
    20
}
fn default_tier3() -> u32 {
    50
}

/// The page size (`limit`) of history and replies for a non-Marketplace app.
pub const NON_MARKETPLACE_PAGE: u32 = 15;

/// Settings of a Slack connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Web API base URL; override for simulators.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Ids of the conversations whose messages are synced (`C…`, `G…`, `D…`); the
    /// `slack_channels` table lists what the token can see.
    #[serde(default)]
    pub channels: Vec<String>,
    /// The first sync reads this many hours of history (0: everything); `inlet sync
    /// --full` always reads everything. Later syncs go on from the stored cursor, so an
    /// outage of any length is caught up.
    #[serde(default = "default_first_sync_hours")]
    pub first_sync_hours: u32,
    /// Every delta re-reads this many hours before the stored cursor, where edits and
    /// new thread replies show (an `oldest`-based poll cannot see them otherwise).
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
    /// `limit` of history, replies and list calls, 1..=999.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The app is commercially distributed but not Marketplace-approved: history and
    /// replies are limited to 1 request per minute and 15 per page (Slack, 2025).
    #[serde(default)]
    pub non_marketplace: bool,
    /// Threads read at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per minute of Tier 2 methods (`conversations.list`, `users.list`).
    #[serde(default = "default_tier2")]
    pub tier2_per_minute: u32,
    /// Requests per minute of Tier 3 methods (`conversations.history`, `.replies`).
    #[serde(default = "default_tier3")]
    pub tier3_per_minute: u32,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            api_base: default_api_base(),
            channels: Vec::new(),
            first_sync_hours: default_first_sync_hours(),
            lookback_hours: default_lookback_hours(),
            page_size: default_page_size(),
            non_marketplace: false,
            concurrency: default_concurrency(),
            tier2_per_minute: default_tier2(),
            tier3_per_minute: default_tier3(),
        }
    }
}

impl SlackConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(m));
        if !(1..=999).contains(&self.page_size) {
            return bad(format!(
                "page_size {} is not within 1..=999",
                self.page_size
            ));
        }
        if self.concurrency == 0 || self.tier2_per_minute == 0 || self.tier3_per_minute == 0 {
            return bad("concurrency and the tier limits must be at least 1".into());
        }
        if let Some(c) = self
            .channels
            .iter()
            .find(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return bad(format!(
                "{c:?} is not a Slack conversation id (C…, G… or D…)"
            ));
        }
        Ok(())
    }

    /// `limit` of history and replies.
    pub fn history_limit(&self) -> u32 {
        if self.non_marketplace {
            self.page_size.min(NON_MARKETPLACE_PAGE)
        } else {
            self.page_size
        }
    }
}

/// Slack credentials: a bot (`xoxb-`) or user (`xoxp-`) token; with token rotation
/// (`xoxe.xoxb-`/`xoxe.xoxp-`) also the refresh token and the app's client id and secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackCredentials {
    /// The OAuth token.
    pub token: String,
    /// The refresh token (`xoxe-`) of an app with token rotation: every refresh replaces
    /// both tokens and kills this one, so the new pair is stored at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The app's client id (token rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The app's client secret (token rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When the rotating token expires, ms since the epoch (unknown: Slack says
    /// `token_expired` and it is refreshed then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

impl SlackCredentials {
    /// A plain (non-rotating) token.
    pub fn token(token: impl Into<String>) -> Self {
        SlackCredentials {
            token: token.into(),
            ..SlackCredentials::default()
        }
    }

    /// Checks that rotation comes with its client id and secret.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.token.trim().is_empty() {
            return Err(ConnectorError::Config("the Slack token is empty".into()));
        }
        if self.refresh_token.is_some()
            && (self.client_id.as_deref().unwrap_or("").is_empty()
                || self.client_secret.as_deref().unwrap_or("").is_empty())
        {
            return Err(ConnectorError::Config(
                "a refresh token (token rotation) needs the app's --client-id and --client-secret"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for SlackCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackCredentials").finish_non_exhaustive()
    }
}

/// The method tiers Slack limits per workspace and minute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tier {
    /// `conversations.list`, `users.list`.
    Two,
    /// `conversations.history`, `conversations.replies`.
    Three,
    /// `auth.test` (special, ~600 per minute).
    Special,
}

/// One HTTP client per tier, each holding to its documented per-minute budget, shared
/// with every client of the same token (so two syncs of one workspace never add up to
/// more).
pub(crate) struct SlackClient {
    pub tier2: HttpClient,
    pub tier3: HttpClient,
    pub special: HttpClient,
    pub api_base: String,
    /// A plain token (sent as is), or none when `rotation` supplies it.
    token: Option<String>,
    /// Token rotation: `oauth.v2.access` with the refresh token, single-flight.
    pub rotation: Option<Arc<OAuth2Token>>,
}

impl SlackClient {
    pub(crate) fn new(
        config: &SlackConfig,
        creds: &SlackCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        creds.validate()?;
        let key = blake3::hash(creds.token.as_bytes()).to_hex();
        let api_base = config.api_base.trim_end_matches('/').to_string();
        let rotation = match &creds.refresh_token {
            None => None,
            Some(rt) => {
                let plain = HttpClient::new(http.clone())
                    .map_err(|e| ConnectorError::Config(e.to_string()))?;
                Some(Arc::new(
                    OAuth2Token::new(
                        plain,
                        format!("{api_base}/oauth.v2.access"),
                        creds.client_id.clone().unwrap_or_default(),
                        creds.client_secret.clone().unwrap_or_default(),
                        Grant::RefreshToken(rt.clone()),
                        // An unknown expiry: used until Slack says `token_expired`.
                        Some((creds.token.clone(), creds.expires_at_ms.unwrap_or(i64::MAX))),
                    )
                    .with_secret_in_body(),
                ))
            }
        };
        let make = |tier: &str, per_min: u32| {
            let c = HttpConfig {
                documented: Some(Quota {
                    requests: per_min,
                    per: Duration::from_secs(60),
                }),
                budget_key: Some(format!("slack:{}:{tier}", &key[..16])),
                ..http.clone()
            };
            let client = HttpClient::new(c).map_err(|e| ConnectorError::Config(e.to_string()))?;
            Ok::<_, ConnectorError>(match &rotation {
                Some(r) => client.with_auth(r.clone()),
                None => client,
            })
        };
        let tier3 = if config.non_marketplace {
            1
        } else {
            config.tier3_per_minute
        };
        Ok(SlackClient {
            tier2: make("tier2", config.tier2_per_minute)?,
            tier3: make(
                if config.non_marketplace {
                    "tier3-nm"
                } else {
                    "tier3"
                },
                tier3,
            )?,
            special: make("special", 600)?,
            api_base,
            token: rotation.is_none().then(|| creds.token.clone()),
            rotation,
        })
    }

    fn client(&self, tier: Tier) -> &HttpClient {
        match tier {
            Tier::Two => &self.tier2,
            Tier::Three => &self.tier3,
            Tier::Special => &self.special,
        }
    }

    /// Calls `method` with `query` on its tier's client; `parse` gets the body of an
    /// `ok: true` answer.
    pub(crate) async fn call<T>(
        &self,
        tier: Tier,
        method: &str,
        query: &[(&str, String)],
        parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync,
    ) -> Result<T, SlackError> {
        let url = format!("{}/{method}", self.api_base);
        let res = self
            .client(tier)
            .execute(
                |c| {
                    let rb = c.get(&url).query(query);
                    match &self.token {
                        Some(t) => rb.bearer_auth(t),
                        None => rb,
                    }
                },
                |r| envelope(r, &parse),
            )
            .await;
        res.map_err(SlackError::from_http)
    }

    /// Request accounting of the three clients together.
    pub(crate) fn stats(&self) -> inlet_core::HttpStats {
        let mut out = inlet_core::HttpStats::default();
        for s in [self.tier2.stats(), self.tier3.stats(), self.special.stats()] {
            out.requests += s.requests;
            out.retries += s.retries;
            out.rate_limit_wait_ms += s.rate_limit_wait_ms;
            out.waiting_ms = out.waiting_ms.max(s.waiting_ms);
        }
        out
    }

    /// Hands the cancel flag to every client.
    pub(crate) fn set_cancel(&self, flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>) {
        self.tier2.set_cancel(flag.clone());
        self.tier3.set_cancel(flag.clone());
        self.special.set_cancel(flag);
    }
}

/// Errors of `ok: false` that mean the token is no good: re-authorise.
const REAUTH: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "token_revoked",
    "account_inactive",
    "no_permission",
    "missing_scope",
    "org_login_required",
    "ekm_access_denied",
];

/// Errors of `ok: false` worth retrying (Slack may send them as 200 or 5xx).
const TRANSIENT: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// The prefix of an [`HttpError::Status`] message carrying Slack's error code.
const CODE_PREFIX: &str = "slack error ";

/// Reads the `ok` envelope of a 200: `ok: true` goes to `parse`; `ok: false` is
/// classified (re-authorise, retry, or a refusal carrying the error code).
fn envelope<T>(r: &Response, parse: &impl Fn(&[u8]) -> Result<T, String>) -> Parsed<T> {
    #[derive(Deserialize)]
    struct Envelope {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        needed: Option<String>,
    }
    let env: Envelope = match serde_json::from_slice(&r.body) {
        Ok(e) => e,
        Err(e) => return Parsed::Retry(format!("invalid JSON from Slack: {e}")),
    };
    if env.ok {
        return match parse(&r.body) {
            Ok(v) => Parsed::Ok(v),
            Err(e) => Parsed::Fail(HttpError::Invalid(e)),
        };
    }
    let code = env.error.unwrap_or_else(|| "unknown_error".into());
    if code == "token_expired" {
        // A rotating token past its 12 hours: refreshed and retried once (a plain token
        // cannot be: re-authorise).
        return Parsed::Refresh(code);
    }
    if TRANSIENT.contains(&code.as_str()) {
        return Parsed::Retry(format!("Slack answered {code}"));
    }
    if REAUTH.contains(&code.as_str()) {
        let needed = env
            .needed
            .map(|n| format!(" (needs {n})"))
            .unwrap_or_default();
        return Parsed::Fail(HttpError::Unauthorized(format!("{code}{needed}")));
    }
    Parsed::Fail(HttpError::Status {
        status: 200,
        message: format!("{CODE_PREFIX}{code}"),
    })
}

/// A failed call: Slack's error code when it named one.
#[derive(Debug)]
pub(crate) struct SlackError {
    /// `channel_not_found`, `thread_not_found`, ... (`None`: not an `ok: false`).
    pub code: Option<String>,
    /// The engine's kind of failure.
    pub error: ConnectorError,
}

impl SlackError {
    fn from_http(e: HttpError) -> SlackError {
        let code = match &e {
            HttpError::Status {
                status: 200,
                message,
            } => message.strip_prefix(CODE_PREFIX).map(str::to_string),
            _ => None,
        };
        SlackError {
            code,
            error: connector_error(e),
        }
    }
}

impl From<SlackError> for ConnectorError {
    fn from(e: SlackError) -> Self {
        e.error
    }
}

/// The engine's kind of a failed request.
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => {
            ConnectorError::NeedsReauth(format!("Slack rejected the token ({m}): reconnect"))
        }
        HttpError::Status {
            status: 200,
            message,
        } => ConnectorError::Provider(message),
        HttpError::Status { status, message } => {
            ConnectorError::Provider(format!("HTTP {status}: {message}"))
        }
        HttpError::Exhausted { .. } | HttpError::Cancelled => {
            ConnectorError::Transient(e.to_string())
        }
        HttpError::Invalid(m) => ConnectorError::Parse(m),
        HttpError::RateLimited { retry_in, reason } => ConnectorError::RateLimited {
            message: reason,
            retry_in,
        },
        other => ConnectorError::Config(other.to_string()),
    }
}
