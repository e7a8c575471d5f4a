//! Reddit configuration, credentials and the authenticated client.

use inlet_core::ConnectorError;
use inlet_http::{Grant, HttpClient, HttpConfig, HttpError, HttpSettings, OAuth2Token};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The real API host.
pub const DEFAULT_API_BASE: &str = "https://oauth.reddit.com";
/// The real token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://www.reddit.com/api/v1/access_token";

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.into()
}
fn default_page_size() -> u32 {
    100
}

/// Settings of a Reddit connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditConfig {
    /// API base URL; override for proxies and simulators.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Token endpoint URL; override for proxies and simulators.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// User-Agent to send; Reddit requires a unique, descriptive one.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The account's username (learned from `/api/v1/me` when absent).
    #[serde(default)]
    pub username: Option<String>,
    /// Items per page, 1..=100 (Reddit's maximum is 100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// HTTP settings (in-flight limit, timeouts).
    #[serde(default, skip_serializing_if = "HttpSettings::is_empty")]
    pub http: HttpSettings,
}

impl Default for RedditConfig {
    fn default() -> Self {
        RedditConfig {
            api_base: default_api_base(),
            token_url: default_token_url(),
            user_agent: None,
            username: None,
            page_size: default_page_size(),
            http: HttpSettings::default(),
        }
    }
}

impl RedditConfig {
    /// Check the values a user typed.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        for (what, url) in [("api_base", &self.api_base), ("token_url", &self.token_url)] {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
            if !ok {
                return Err(ConnectorError::Config(format!(
                    "{what} {url:?} is not an http(s) URL"
                )));
            }
        }
        self.http.validate().map_err(ConnectorError::Config)?;
        if !(1..=100).contains(&self.page_size) {
            return Err(ConnectorError::Config(format!(
                "page_size {} is outside 1..=100",
                self.page_size
            )));
        }
        Ok(())
    }

    /// The User-Agent sent.
    pub fn user_agent(&self) -> String {
        self.user_agent.clone().unwrap_or_else(|| {
            let by = self
                .username
                .as_deref()
                .map(|u| format!(" by /u/{u}"))
                .unwrap_or_default();
            format!(
                "server:inlet:{} (sync engine{by})",
                env!("CARGO_PKG_VERSION")
            )
        })
    }
}

/// Secrets of a Reddit connection (sealed at rest).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditCredentials {
    /// The app's client id.
    pub client_id: String,
    /// The app's secret (empty for installed apps).
    #[serde(default)]
    pub client_secret: String,
    /// A permanent refresh token (web and installed apps).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Account name (script apps, password grant).
    #[serde(default)]
    pub username: Option<String>,
    /// Account password (script apps, password grant).
    #[serde(default)]
    pub password: Option<String>,
    /// Cached access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Cached access token's expiry, ms since the epoch.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

impl std::fmt::Debug for RedditCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedditCredentials")
            .field("client_id", &self.client_id)
            .field(
                "grant",
                &if self.refresh_token.is_some() {
                    "refresh_token"
                } else {
                    "password"
                },
            )
            .finish_non_exhaustive()
    }
}

impl RedditCredentials {
    fn grant(&self) -> Result<Grant, ConnectorError> {
        match (&self.refresh_token, &self.username, &self.password) {
            (Some(rt), _, _) if !rt.is_empty() => Ok(Grant::RefreshToken(rt.clone())),
            (_, Some(u), Some(p)) => Ok(Grant::Password { username: u.clone(), password: p.clone() }),
            _ => Err(ConnectorError::Config(
                "Reddit credentials need a refresh token, or a username and password for a script app".into(),
            )),
        }
    }
}

/// An authenticated Reddit API client.
pub struct RedditClient {
    /// Authenticated requests.
    pub http: HttpClient,
    /// The token source (to persist refreshed tokens).
    pub token: Arc<OAuth2Token>,
}

impl RedditClient {
    /// Build the client; `http` tunes timeouts and retries (its user agent and rate
    /// headers are set here).
    pub fn new(
        config: &RedditConfig,
        creds: &RedditCredentials,
        mut http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        if creds.client_id.is_empty() {
            return Err(ConnectorError::Config(
                "Reddit credentials need a client id".into(),
            ));
        }
        http.user_agent = config.user_agent();
        http.rate_headers = Some(super::RATE_HEADERS);
        http.documented.get_or_insert(super::QUOTA);
        // Reddit counts requests per OAuth client: every connection using the same app
        // shares one budget.
        http.budget_key = Some(format!("reddit:{}:{}", config.api_base, creds.client_id));
        config.http.apply(&mut http);
        let base = HttpClient::new(http).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let cached = creds.access_token.clone().zip(creds.expires_at_ms);
        let token = Arc::new(OAuth2Token::new(
            base.clone(),
            config.token_url.clone(),
            creds.client_id.clone(),
            creds.client_secret.clone(),
            creds.grant()?,
            cached,
        ));
        Ok(RedditClient {
            http: base.with_auth(token.clone()),
            token,
        })
    }
}

/// Map a failed request onto the engine's error kinds.
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => {
            ConnectorError::NeedsReauth(format!("Reddit rejected the credentials ({m})"))
        }
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
