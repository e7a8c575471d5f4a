//! Gmail configuration, credentials, the authenticated clients (one per quota cost, all
//! spending one budget of quota units per user) and Google's error envelope.

use inlet_core::ConnectorError;
use inlet_http::{Grant, HttpClient, HttpConfig, HttpError, OAuth2Token, Quota};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The real API (`/users/me/...` follows).
pub const DEFAULT_API_BASE: &str = "https://gmail.googleapis.com/gmail/v1";
/// The real token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.into()
}
fn default_labels() -> Vec<String> {
    vec!["INBOX".into()]
}
fn default_first_sync_threads() -> u32 {
    5
}
fn default_units_per_second() -> u32 {
    200
}
fn default_concurrency() -> usize {
    5
}

/// Settings of a Gmail connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailConfig {
    /// API base URL (up to `/gmail/v1`); override for simulators.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// OAuth token endpoint; override for simulators.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// Label ids whose threads are synced (`INBOX`, `SENT`, `Label_12`).
    #[serde(default = "default_labels")]
    pub labels: Vec<String>,
    /// The first sync reads the newest this many threads of each label (0: all of them);
    /// `inlet sync --full` reads all. Later syncs follow the history from the id taken
    /// before the first, so an outage of any length is caught up.
    #[serde(default = "default_first_sync_threads")]
    pub first_sync_threads: u32,
    /// Quota units spent at most in any second (Google allows 250 per user as a moving
    /// average, 15,000 a minute; the default 200 leaves room for timing jitter between
    /// this client's clock and Google's).
    #[serde(default = "default_units_per_second")]
    pub units_per_second: u32,
    /// Threads read at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for GmailConfig {
    fn default() -> Self {
        GmailConfig {
            api_base: default_api_base(),
            token_url: default_token_url(),
            labels: default_labels(),
            first_sync_threads: default_first_sync_threads(),
            units_per_second: default_units_per_second(),
            concurrency: default_concurrency(),
        }
    }
}

impl GmailConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(m));
        if self.labels.is_empty() {
            return bad("pick at least one label with --label (INBOX, Label_12, ...)".into());
        }
        if let Some(l) = self.labels.iter().find(|l| {
            l.is_empty()
                || !l
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return bad(format!("{l:?} is not a Gmail label id (INBOX, Label_12)"));
        }
        if self.units_per_second < 10 {
            return bad("units_per_second must be at least 10 (threads.get costs 10)".into());
        }
        if !(1..=50).contains(&self.concurrency) {
            return bad(format!(
                "concurrency {} is outside 1..=50",
                self.concurrency
            ));
        }
        Ok(())
    }
}

/// Secrets of a Gmail connection (sealed at rest).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailCredentials {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The user's refresh token (Google keeps it on refresh).
    pub refresh_token: String,
    /// Cached access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Cached access token's expiry, ms since the epoch.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

impl std::fmt::Debug for GmailCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Quota units of the methods used (gmail.md §6).
pub(crate) mod units {
    pub const PROFILE: u32 = 1;
    pub const LABELS_LIST: u32 = 1;
    pub const HISTORY_LIST: u32 = 2;
    pub const THREADS_LIST: u32 = 10;
    pub const THREADS_GET: u32 = 10;
}

/// The authenticated clients: one per quota cost, sharing the user's unit budget.
pub(crate) struct GmailClient {
    /// 1-unit methods (`getProfile`, `labels.list`).
    one: HttpClient,
    /// `history.list` (2 units).
    two: HttpClient,
    /// `threads.list`, `threads.get` (10 units).
    ten: HttpClient,
    pub token: Arc<OAuth2Token>,
    pub api_base: String,
}

impl GmailClient {
    pub(crate) fn new(
        config: &GmailConfig,
        creds: &GmailCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        if creds.client_id.is_empty()
            || creds.client_secret.is_empty()
            || creds.refresh_token.is_empty()
        {
            return Err(ConnectorError::Config(
                "Gmail credentials need a client id, a client secret and a refresh token".into(),
            ));
        }
        let key = blake3::hash(creds.refresh_token.as_bytes()).to_hex();
        let http = HttpConfig {
            documented: Some(Quota {
                requests: config.units_per_second,
                per: Duration::from_secs(1),
            }),
            budget_key: Some(format!("gmail:{}", &key[..16])),
            ..http
        };
        let base = HttpClient::new(http).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let cached = creds.access_token.clone().zip(creds.expires_at_ms);
        let token = Arc::new(
            OAuth2Token::new(
                // Token requests cost no Gmail quota.
                base.unmetered(),
                config.token_url.clone(),
                creds.client_id.clone(),
                creds.client_secret.clone(),
                Grant::RefreshToken(creds.refresh_token.clone()),
                cached,
            )
            .with_secret_in_body(),
        );
        let authed = base.with_auth(token.clone());
        Ok(GmailClient {
            one: authed.with_cost(units::PROFILE),
            two: authed.with_cost(units::HISTORY_LIST),
            ten: authed.with_cost(units::THREADS_GET),
            token,
            api_base: config.api_base.trim_end_matches('/').to_string(),
        })
    }

    /// The client whose requests cost `units`.
    pub(crate) fn costing(&self, units: u32) -> &HttpClient {
        match units {
            0 | 1 => &self.one,
            2 => &self.two,
            _ => &self.ten,
        }
    }

    /// GET `/users/me/<path>` with `query`; the body as bytes.
    pub(crate) async fn get(
        &self,
        units: u32,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, HttpError> {
        let url = format!("{}/users/me/{path}", self.api_base);
        self.costing(units)
            .execute(
                |c| c.get(&url).query(query),
                |r| inlet_http::Parsed::Ok(r.body.clone()),
            )
            .await
    }

    pub(crate) fn stats(&self) -> inlet_core::HttpStats {
        // Clones share the accounting: one client's stats are everyone's.
        self.costing(units::PROFILE).stats()
    }

    pub(crate) fn set_cancel(&self, flag: Option<Arc<std::sync::atomic::AtomicBool>>) {
        self.costing(units::PROFILE).set_cancel(flag);
    }
}

/// Whether a failed request was a 404 (unknown id, stale `startHistoryId`).
pub(crate) fn is_not_found(e: &HttpError) -> bool {
    matches!(e, HttpError::Status { status: 404, .. })
}

/// The engine's kind of a failed request.
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => ConnectorError::NeedsReauth(format!(
            "Google refused the credentials ({m}); the refresh token was revoked or expired"
        )),
        HttpError::Status {
            status: 403,
            message,
        } if message.contains("dailyLimitExceeded") => ConnectorError::RateLimited {
            message: format!("Gmail's daily limit is spent: {message}"),
            retry_in: Duration::from_secs(3600),
        },
        HttpError::Status {
            status: 403,
            message,
        } if message.contains("insufficientPermissions") || message.contains("authError") => {
            ConnectorError::NeedsReauth(format!(
                "Google denied access ({message}); the grant lacks the gmail.readonly scope"
            ))
        }
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
