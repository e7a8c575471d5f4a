//! GitHub: the authenticated user's starred repositories (`GET /user/starred`), with a
//! personal access token or OAuth token. See `shared/providers/github.md`.
//!
//! * `Accept: application/vnd.github.star+json` gives each star its `starred_at`.
//! * Pages follow the `Link` header's `rel="next"` URL (the cursor is that URL).
//! * The first page of a delta is requested with `If-None-Match` and the ETag of its last
//!   answer (kept by the engine between runs as the stream's validator): a
//!   `304 Not Modified` means no new star and no change on page 1, costs no rate-limit
//!   budget, and ends the delta at once. Full and resumed passes are never conditional.
//! * `X-RateLimit-*` headers and secondary-limit 403s with `Retry-After` are honoured by
//!   the shared HTTP client ([`RATE_HEADERS`]); a secondary limit (403 or 429)
//!   without `Retry-After` waits at least a minute, doubling ([`SECONDARY_LIMIT_FLOOR`]);
//!   a primary budget spent until a reset beyond the run's patience ends the run
//!   `waiting` without sending.
//! * Unstars are invisible to a delta: the stream takes part in reconcile, whose id
//!   listing reads every page unconditionally.

pub mod streams;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef, Verified, VerifyFuture};
use inlet_core::{
    Connector, ConnectorError, HttpStats, IdPage, Page, Record, StreamSpec, Timestamp, Value,
};
use inlet_http::ResetIn;
use inlet_http::{
    HttpClient, HttpConfig, HttpError, HttpSettings, Parsed, Quota, RateHeaders, Response,
    StaticToken,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// GitHub's `X-RateLimit-Remaining` / `X-RateLimit-Reset` (a Unix time in seconds).
pub const RATE_HEADERS: RateHeaders = RateHeaders {
    remaining: "x-ratelimit-remaining",
    reset: "x-ratelimit-reset",
    reset_in: ResetIn::EpochSeconds,
};

/// GitHub REST: 5,000 requests per hour per user token.
pub const QUOTA: Quota = Quota {
    requests: 5000,
    per: std::time::Duration::from_secs(3600),
};

/// GitHub as the registry knows it.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "github",
    title: "GitHub",
    about: "Connect a GitHub account's stars (personal access token or OAuth token).",
    streams: &streams::STREAMS,
    interval_minutes: 15,
    quota: Some(QUOTA),
    rate_headers: Some(RATE_HEADERS),
    image_hosts: &[],
    params: &[
        Param::new(
            "token",
            "A personal access token (classic `ghp_` or fine-grained `github_pat_`) or an OAuth token (`gho_`); private starred repositories need the `repo` scope / \"Starring: read\".",
        )
        .env("GITHUB_TOKEN")
        .secret()
        .required(),
        Param::new(
            "api-base",
            "API base URL (for GitHub Enterprise, proxies and simulators).",
        )
        .default_value(DEFAULT_API_BASE),
        Param::new("per-page", "Items per page (1..=100).").default_value("100"),
    ],
    default_config: provider::defaults::<GithubConfig>,
    kind: Kind::Sync {
        build,
        verify,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: Some(provider::ApiSchemas {
        config: provider::schema::<GithubConfig>,
        credentials: provider::schema::<GithubCredentials>,
    }),
};

/// `inlet connect github`: a token.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let config = GithubConfig {
        api_base: f.required("api-base")?.trim_end_matches('/').to_string(),
        per_page: f.parse("per-page")?.unwrap_or(100),
        login: None,
        http: Default::default(),
    };
    config.validate()?;
    let creds = GithubCredentials {
        token: f.required("token")?,
    };
    Ok(Input {
        config: provider::to_value(&config)?,
        credentials: provider::to_value(&creds)?,
        account: None,
    })
}

fn build(
    name: &str,
    config: serde_json::Value,
    credentials: serde_json::Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let config: GithubConfig = provider::parse(name, config, "GitHub config")?;
    let creds: GithubCredentials = provider::parse(name, credentials, "GitHub credentials")?;
    Ok(Box::new(GithubConnector::new(config, &creds, http)?))
}

/// One request (the first page of stars) proves the token.
fn verify(
    config: serde_json::Value,
    credentials: serde_json::Value,
    http: HttpConfig,
) -> VerifyFuture {
    Box::pin(async move {
        let cfg: GithubConfig = provider::parse("", config, "GitHub config")?;
        let creds: GithubCredentials = provider::parse("", credentials, "GitHub credentials")?;
        let conn = GithubConnector::new(cfg.clone(), &creds, http)?;
        conn.fetch_page(&streams::STREAMS[0], None).await?;
        Ok(Verified {
            config: provider::to_value(&cfg)?,
            credentials: provider::to_value(&creds)?,
            account: None,
        })
    })
}

/// The public API.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";
/// The shortest wait after a rate-limit answer naming no wait (GitHub's documented
/// "at least one minute").
pub const SECONDARY_LIMIT_FLOOR: std::time::Duration = std::time::Duration::from_secs(60);
/// The media type that carries `starred_at`.
pub const STAR_MEDIA_TYPE: &str = "application/vnd.github.star+json";

/// Settings of a GitHub connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// API base URL.
    #[serde(default = "default_base")]
    pub api_base: String,
    /// Items per page (1..=100).
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// The account's login, when known.
    #[serde(default)]
    pub login: Option<String>,
    /// HTTP settings (in-flight limit, timeouts).
    #[serde(default, skip_serializing_if = "HttpSettings::is_empty")]
    pub http: HttpSettings,
}

fn default_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_per_page() -> u32 {
    100
}

impl GithubConfig {
    /// Check the settings; errors name the bad one.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.http.validate().map_err(ConnectorError::Config)?;
        if !(1..=100).contains(&self.per_page) {
            return Err(ConnectorError::Config(format!(
                "per_page must be 1..=100, got {}",
                self.per_page
            )));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err(ConnectorError::Config(format!(
                "api_base must be an http(s) URL, got {:?}",
                self.api_base
            )));
        }
        Ok(())
    }
}

/// Secrets of a GitHub connection (sealed at rest).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubCredentials {
    /// A personal access token (`ghp_`, `github_pat_`) or OAuth token (`gho_`).
    pub token: String,
}

impl std::fmt::Debug for GithubCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GithubCredentials { token: <redacted> }")
    }
}

/// The GitHub connector.
pub struct GithubConnector {
    config: GithubConfig,
    http: HttpClient,
    /// ETag of the first page's last 200 answer.
    first_etag: Mutex<Option<String>>,
}

impl GithubConnector {
    /// A connector for one token.
    pub fn new(
        config: GithubConfig,
        creds: &GithubCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        if creds.token.trim().is_empty() {
            return Err(ConnectorError::Config("the GitHub token is empty".into()));
        }
        let mut http = HttpConfig {
            rate_headers: Some(RATE_HEADERS),
            // GitHub: a secondary limit without `Retry-After` waits at least a minute,
            // then backs off exponentially.
            rate_limit_floor: http.rate_limit_floor.or(Some(SECONDARY_LIMIT_FLOOR)),
            documented: http.documented.or(Some(QUOTA)),
            // GitHub counts per token: every connection with this token shares one budget
            // (keyed by a hash, so the token itself is not kept in the key).
            budget_key: Some(format!(
                "github:{}:{}",
                config.api_base,
                &blake3::hash(creds.token.trim().as_bytes()).to_hex()[..16]
            )),
            ..http
        };
        config.http.apply(&mut http);
        let http = HttpClient::new(http)
            .map_err(|e| ConnectorError::Config(e.to_string()))?
            .with_auth(Arc::new(StaticToken(creds.token.trim().to_string())));
        Ok(GithubConnector {
            config,
            http,
            first_etag: Mutex::new(None),
        })
    }

    fn first_url(&self) -> String {
        format!(
            "{}/user/starred?per_page={}&sort=created&direction=desc",
            self.config.api_base.trim_end_matches('/'),
            self.config.per_page
        )
    }

    /// One page from `cursor` (a `Link` URL) or the first page; `conditional` sends the
    /// first page's ETag.
    async fn page(&self, cursor: Option<&str>, conditional: bool) -> Result<Page, ConnectorError> {
        let first = cursor.is_none();
        let url = cursor.map_or_else(|| self.first_url(), str::to_string);
        if !url.starts_with(self.config.api_base.trim_end_matches('/')) {
            return Err(ConnectorError::Parse(format!(
                "GitHub sent a next-page link outside the API: {url}"
            )));
        }
        let etag = if first && conditional {
            self.first_etag
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            None
        };
        let (page, new_etag) = self
            .http
            .execute(
                |c| {
                    let mut rb = c
                        .get(&url)
                        .header("accept", STAR_MEDIA_TYPE)
                        .header("x-github-api-version", "2022-11-28");
                    if let Some(e) = &etag {
                        rb = rb.header("if-none-match", e);
                    }
                    rb
                },
                parse_page,
            )
            .await
            .map_err(connector_error)?;
        if first && let Some(e) = new_etag {
            *self.first_etag.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        Ok(page)
    }
}

/// Parse one answer: a 304 is an empty, final page.
fn parse_page(r: &Response) -> Parsed<(Page, Option<String>)> {
    if r.status.as_u16() == 304 {
        return Parsed::Ok((Page::default(), None));
    }
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => return Parsed::Retry(format!("invalid JSON from GitHub: {e}")),
    };
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        match map_star(item.get()) {
            Ok(rec) => records.push(rec),
            Err(e) => return Parsed::Fail(HttpError::Invalid(e)),
        }
    }
    let etag = r
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let next = r
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .and_then(next_link);
    Parsed::Ok((Page { records, next }, etag))
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[derive(Deserialize)]
struct StarItem {
    starred_at: String,
    repo: Repo,
}

#[derive(Deserialize)]
struct Repo {
    id: i64,
    name: Option<String>,
    full_name: Option<String>,
    owner: Option<Owner>,
    description: Option<String>,
    html_url: Option<String>,
    language: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    stargazers_count: Option<i64>,
    forks_count: Option<i64>,
    private: Option<bool>,
    fork: Option<bool>,
    archived: Option<bool>,
    pushed_at: Option<String>,
}

#[derive(Deserialize)]
struct Owner {
    login: Option<String>,
}

fn map_star(raw: &str) -> Result<Record, String> {
    let s: StarItem = serde_json::from_str(raw)
        .map_err(|e| format!("unexpected starred item (is the star media type honoured?): {e}"))?;
    let at = Timestamp::parse_rfc3339(&s.starred_at).ok_or_else(|| {
        format!(
            "repository {} has an invalid starred_at {:?}",
            s.repo.id, s.starred_at
        )
    })?;
    let r = s.repo;
    let pushed = r.pushed_at.as_deref().and_then(Timestamp::parse_rfc3339);
    let values = vec![
        Value::opt_text(r.full_name),
        Value::opt_text(r.owner.and_then(|o| o.login)),
        Value::opt_text(r.name),
        Value::opt_text(r.description),
        Value::opt_text(r.html_url),
        Value::opt_text(r.language),
        if r.topics.is_empty() {
            Value::Null
        } else {
            Value::Text(r.topics.join(","))
        },
        r.stargazers_count.map_or(Value::Null, Value::Int),
        r.forks_count.map_or(Value::Null, Value::Int),
        r.private.map_or(Value::Null, Value::Bool),
        r.fork.map_or(Value::Null, Value::Bool),
        r.archived.map_or(Value::Null, Value::Bool),
        Value::Time(at),
        pushed.map_or(Value::Null, Value::Time),
    ];
    Ok(Record {
        id: r.id.to_string(),
        values,
        raw: raw.to_string(),
        sort_ts: Some(at),
    })
}

/// A failed request as a connector error.
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => {
            ConnectorError::NeedsReauth(format!("GitHub rejected the token ({m})"))
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

#[async_trait::async_trait]
impl Connector for GithubConnector {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        &streams::STREAMS
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        if stream.name != "starred" {
            return Err(ConnectorError::Config(format!(
                "GitHub has no stream {:?}",
                stream.name
            )));
        }
        self.page(cursor, true).await
    }

    fn http_stats(&self) -> HttpStats {
        self.http.stats()
    }

    fn set_cancel(&self, flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>) {
        self.http.set_cancel(flag);
    }

    fn reconciles(&self, stream: &StreamSpec) -> bool {
        stream.name == "starred"
    }

    fn validator(&self, stream: &StreamSpec) -> Option<String> {
        (stream.name == "starred")
            .then(|| {
                self.first_etag
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            })
            .flatten()
    }

    fn set_validator(&self, stream: &StreamSpec, validator: Option<&str>) {
        if stream.name == "starred" {
            *self.first_etag.lock().unwrap_or_else(|p| p.into_inner()) =
                validator.map(str::to_string);
        }
    }

    /// Every page, unconditionally (a 304 would hide page 1's ids). The pages are full
    /// pages, so their records go along: the reconcile upserts them, which picks up edits
    /// (description, rename, archive) of repositories beyond the first page that a delta,
    /// stopping at its cursor, never reads.
    async fn fetch_id_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        if stream.name != "starred" {
            return Err(ConnectorError::Config(format!(
                "GitHub has no stream {:?}",
                stream.name
            )));
        }
        let page = self.page(cursor, false).await?;
        Ok(IdPage::full(page))
    }
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_header() {
        let h = r#"<https://api.github.com/user/starred?per_page=2&page=2>; rel="next", <https://api.github.com/user/starred?per_page=2&page=37>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/user/starred?per_page=2&page=2")
        );
        let last = r#"<https://api.github.com/user/starred?page=1>; rel="first", <https://api.github.com/user/starred?page=36>; rel="prev""#;
        assert_eq!(next_link(last), None);
    }
}
