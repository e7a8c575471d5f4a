//! GitHub: the authenticated user's starred repositories (`GET /user/starred`), with a
//! personal access token or OAuth token. See `shared/providers/github.md`.
//!
//! The stream runs on the generic REST fetcher ([`crate::rest::RestConnector`]): its
//! spec is [`streams::spec`], GitHub's quirks are [`GithubHooks`], and GitHub's rate
//! limits are on the client this module builds.
//!
//! * `Accept: application/vnd.github.star+json` gives each star its `starred_at`.
//! * Pages follow the `Link` header's `rel="next"` URL (the cursor is that URL), which
//!   must stay under the API base.
//! * The first page of a delta is requested with `If-None-Match` and the ETag of its last
//!   answer (kept by the engine between runs as the stream's validator): a
//!   `304 Not Modified` means no new star and no change on page 1, costs no rate-limit
//!   budget, and ends the delta at once. Full and resumed passes are never conditional
//!   (the spec's `conditional` stream key).
//! * `X-RateLimit-*` headers and secondary-limit 403s with `Retry-After` are honoured by
//!   the shared HTTP client ([`RATE_HEADERS`]); a secondary limit (403 or 429)
//!   without `Retry-After` waits at least a minute, doubling ([`SECONDARY_LIMIT_FLOOR`]);
//!   a primary budget spent until a reset beyond the run's patience ends the run
//!   `waiting` without sending.
//! * Unstars are invisible to a delta: the stream takes part in reconcile, whose id
//!   listing reads every page unconditionally.

pub mod streams;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use crate::rest::{self, RestConnector, RestHooks};
use inlet_core::{Connector, ConnectorError, HttpStats, IdPage, Page, Record, StreamSpec};
use inlet_http::{
    HttpClient, HttpConfig, HttpError, HttpSettings, Quota, RateHeaders, ResetIn, StaticToken,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
        build: provider::build_typed::<GithubConnector>,
        verify: provider::verify_typed::<GithubConnector>,
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
    provider::input(&config, &creds, None)
}

impl provider::Typed for GithubConnector {
    type Config = GithubConfig;
    type Credentials = GithubCredentials;
    const TITLE: &'static str = "GitHub";
    fn from_parts(
        config: GithubConfig,
        creds: &GithubCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        GithubConnector::new(config, creds, http)
    }

    /// One request (the first page of stars) proves the token.
    fn check<'a>(&'a self, _cfg: &'a mut GithubConfig) -> provider::CheckFuture<'a> {
        let conn = self;
        Box::pin(async move {
            conn.fetch_page(&streams::STREAMS[0], None).await?;
            Ok(None)
        })
    }
}

/// The public API.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";
/// The shortest wait after a rate-limit answer naming no wait (GitHub's documented
/// "at least one minute").
pub const SECONDARY_LIMIT_FLOOR: std::time::Duration = std::time::Duration::from_secs(60);
/// The media type that carries `starred_at`.
pub const STAR_MEDIA_TYPE: &str = "application/vnd.github.star+json";
/// The REST API version requested (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";

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

/// The GitHub connector: the generic REST fetcher reading [`streams::spec`], with
/// GitHub's quirks as [`GithubHooks`] and GitHub's rate limits on its client.
pub struct GithubConnector(RestConnector);

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
        let api_base = config.api_base.trim_end_matches('/').to_string();
        let spec = streams::spec(&api_base, config.per_page);
        let rest = RestConnector::builtin(PROVIDER.name, &spec, &streams::STREAMS, http)?
            .with_hooks(Arc::new(GithubHooks { api_base }));
        Ok(GithubConnector(rest))
    }
}

/// GitHub's quirks on the generic fetcher.
struct GithubHooks {
    /// The API base, trimmed: next-page links must stay under it.
    api_base: String,
}

impl RestHooks for GithubHooks {
    /// Without the star media type the items are bare repositories, with no `starred_at`
    /// to order or stop by: say so rather than store them.
    fn record(&self, _stream: &str, record: &mut Record) -> Result<(), String> {
        if record.sort_ts.is_none() {
            return Err(format!(
                "starred repository {} has no starred_at (is the star media type honoured?)",
                record.id
            ));
        }
        Ok(())
    }

    fn link(&self, _stream: &str, url: &str) -> Result<(), String> {
        if url.starts_with(&self.api_base) {
            Ok(())
        } else {
            Err(format!(
                "GitHub sent a next-page link outside the API: {url}"
            ))
        }
    }

    fn error(&self, _stream: &str, e: HttpError) -> ConnectorError {
        match e {
            HttpError::Unauthorized(m) => {
                ConnectorError::NeedsReauth(format!("GitHub rejected the token ({m})"))
            }
            other => rest::connector_error(other),
        }
    }
}

/// Everything is the fetcher's.
#[async_trait::async_trait]
impl Connector for GithubConnector {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }

    fn streams(&self) -> &'static [StreamSpec] {
        self.0.streams()
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        self.0.fetch_page(stream, cursor).await
    }

    fn http_stats(&self) -> HttpStats {
        self.0.http_stats()
    }

    fn set_cancel(&self, flag: Option<Arc<AtomicBool>>) {
        self.0.set_cancel(flag);
    }

    fn reconciles(&self, stream: &StreamSpec) -> bool {
        self.0.reconciles(stream)
    }

    fn validator(&self, stream: &StreamSpec) -> Option<String> {
        self.0.validator(stream)
    }

    fn set_validator(&self, stream: &StreamSpec, validator: Option<&str>) {
        self.0.set_validator(stream, validator);
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
        self.0.fetch_id_page(stream, cursor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlet_core::{Timestamp, Value};

    /// The contract's composed example (`shared/providers/github.md` §3), two stars.
    const PAGE: &str = r#"[
  {"starred_at": "2024-06-19T12:00:05Z",
   "repo": {"id": 512345678, "node_id": "R_kgDOHm1xTg", "name": "sync-sim", "full_name": "octo-sim/sync-sim",
            "private": false, "owner": {"login": "octo-sim", "id": 9001, "type": "User"},
            "html_url": "https://github.com/octo-sim/sync-sim", "description": "A simulator",
            "fork": false, "created_at": "2022-07-10T08:00:00Z", "updated_at": "2024-06-18T09:30:00Z",
            "pushed_at": "2024-06-18T09:29:00Z", "stargazers_count": 42, "language": "Rust",
            "archived": false, "topics": ["sync", "rust"], "visibility": "public", "default_branch": "main"}},
  {"starred_at": "2024-05-02T08:15:00Z",
   "repo": {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "Hello-World",
            "full_name": "octocat/Hello-World", "private": false,
            "owner": {"login": "octocat", "id": 1, "type": "User"},
            "html_url": "https://github.com/octocat/Hello-World", "description": null, "fork": false,
            "created_at": "2011-01-26T19:01:12Z", "updated_at": "2024-05-01T00:00:00Z",
            "pushed_at": "2024-04-30T00:00:00Z", "stargazers_count": 2500, "language": null,
            "archived": false, "topics": [], "visibility": "public", "default_branch": "master"}}
]"#;

    /// Serve `body` at `/user/starred` to requests with the star media type and a
    /// bearer token; a base URL.
    async fn serve(body: &'static str) -> String {
        use axum::http::{HeaderMap, StatusCode};
        let app = axum::Router::new().route(
            "/user/starred",
            axum::routing::get(move |h: HeaderMap| async move {
                let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                let ok = header("accept").as_deref() == Some(STAR_MEDIA_TYPE)
                    && header("x-github-api-version").as_deref() == Some(API_VERSION)
                    && header("authorization").as_deref() == Some("Bearer t0k");
                if ok {
                    (StatusCode::OK, body)
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        r#"{"message": "Bad credentials"}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn connector(base: String, token: &str) -> GithubConnector {
        let config = GithubConfig {
            api_base: base,
            per_page: 2,
            login: None,
            http: HttpSettings::default(),
        };
        let creds = GithubCredentials {
            token: token.into(),
        };
        GithubConnector::new(config, &creds, HttpConfig::default()).expect("connector")
    }

    #[tokio::test]
    async fn maps_the_contract_example_onto_github_stars() {
        let c = connector(serve(PAGE).await, "t0k");
        assert_eq!(c.provider(), "github");
        let page = c
            .fetch_page(&streams::STREAMS[0], None)
            .await
            .expect("page");
        assert_eq!(page.next, None, "no Link header: one page");
        let [a, b] = &page.records[..] else {
            panic!("two records: {page:?}")
        };
        let at = Timestamp::parse_rfc3339("2024-06-19T12:00:05Z").expect("time");
        assert_eq!(a.id, "512345678");
        assert_eq!(a.sort_ts, Some(at));
        assert_eq!(
            a.values,
            vec![
                Value::Text("octo-sim/sync-sim".into()),
                Value::Text("octo-sim".into()),
                Value::Text("sync-sim".into()),
                Value::Text("A simulator".into()),
                Value::Text("https://github.com/octo-sim/sync-sim".into()),
                Value::Text("Rust".into()),
                Value::Text("sync,rust".into()),
                Value::Int(42),
                Value::Null,
                Value::Bool(false),
                Value::Bool(false),
                Value::Bool(false),
                Value::Time(at),
                Value::Time(Timestamp::parse_rfc3339("2024-06-18T09:29:00Z").expect("time")),
            ]
        );
        assert_eq!(b.id, "1296269");
        let col = |n: &str| {
            streams::STAR_COLUMNS
                .iter()
                .position(|c| c.name == n)
                .expect("column")
        };
        assert_eq!(b.values[col("topics")], Value::Null, "no topics is NULL");
        assert_eq!(b.values[col("description")], Value::Null);
        // The record is the starred item exactly as served.
        assert!(
            a.raw
                .starts_with(r#"{"starred_at": "2024-06-19T12:00:05Z","#)
        );
    }

    #[tokio::test]
    async fn a_rejected_token_needs_reauth() {
        let c = connector(serve(PAGE).await, "wrong");
        let err = c
            .fetch_page(&streams::STREAMS[0], None)
            .await
            .expect_err("401");
        assert!(
            matches!(&err, ConnectorError::NeedsReauth(m) if m.contains("GitHub rejected the token")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn items_without_starred_at_fail_the_page() {
        // The default media type: bare items with no star time.
        let c = connector(
            serve(r#"[{"repo": {"id": 1, "full_name": "a/b"}}]"#).await,
            "t0k",
        );
        let err = c
            .fetch_page(&streams::STREAMS[0], None)
            .await
            .expect_err("no starred_at");
        assert!(err.to_string().contains("star media type"), "{err}");
    }

    #[test]
    fn links_stay_under_the_api_base() {
        let h = GithubHooks {
            api_base: "https://ghe.example.com/api/v3".into(),
        };
        assert!(
            h.link(
                "starred",
                "https://ghe.example.com/api/v3/user/starred?page=2"
            )
            .is_ok()
        );
        let err = h
            .link("starred", "https://ghe.example.com/elsewhere?page=2")
            .expect_err("outside");
        assert!(err.contains("outside the API"), "{err}");
    }
}
