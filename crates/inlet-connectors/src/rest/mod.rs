//! Declarative REST streams: an API described as data (a TOML spec file, see
//! `docs/rest.md`) and read by one generic fetcher.
//!
//! * [`spec`] parses and checks the file; every error names the bad key and nothing is
//!   written for a bad spec.
//! * [`RestConnector`] implements [`Connector`] for any spec: it builds each request
//!   (path, query, headers, auth), finds the records with JSON pointers, maps them onto
//!   typed columns and finds the next page with the stream's paginator (cursor in body,
//!   next URL in body, `Link` header, offset/limit, page number). Paging checkpoints,
//!   stop rules, hashing, deletes (full passes and reconcile), retries and rate limits
//!   are the shared engine's and [`HttpClient`]'s, as for every provider.
//! * A child stream (`[streams.parent]`) is read once per record of its parent stream,
//!   as one flat listing whose cursor remembers the parent page and the parent under way.
//! * A `conditional` stream sends a delta's first page with the `ETag` of its last answer
//!   (the stream's validator, kept by the engine between runs); a `304` ends the delta.
//! * [`RestHooks`] lets a built-in provider fix an API's quirks (a header, a record, the
//!   next cursor, a next-page link, an error's wording) without a fetcher of its own;
//!   [`RestConnector::builtin`] runs a provider's Rust-built spec on the provider's own
//!   client and tables (GitHub's stars run this way).
//! * The streams of a spec are [`StreamSpec`]s like any provider's; their strings are
//!   interned once per distinct spec text ([`streams_of_spec`]), so memory stays bounded
//!   however often a connection is built.

mod map;
pub mod pointer;
pub mod spec;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use inlet_core::{
    ColType, Column, Connection, Connector, ConnectorError, HttpStats, IdPage, Page, Record,
    StopRule, StreamSpec, provider_config,
};
use inlet_http::{
    Grant, HttpClient, HttpConfig, HttpError, OAuth2Token, Parsed, Quota, RateHeaders, ResetIn,
    Response, StaticToken, TokenSource,
};
use map::{ColumnMap, RecordMap};
use pointer::Pointer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use spec::{AuthSpec, HeaderStyle, OAuthGrant, PaginatorSpec, RestSpec, StopSpec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use spec::{SpecError, parse};

/// The provider name of spec-described connections.
pub const NAME: &str = "rest";

/// The provider: its streams come from each connection's spec
/// ([`streams_of_connection`]), so the definition lists none. Not offered through the
/// HTTP API: a spec names its own hosts, which the API's host checks cannot vet, and its
/// tables are created by `inlet connect rest`.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: NAME,
    title: "REST API",
    about: "Connect any paginated JSON API described by a spec file (see docs/rest.md).",
    streams: &[],
    interval_minutes: 15,
    quota: None,
    rate_headers: None,
    image_hosts: &[],
    params: &[
        Param::new(
            "spec",
            "The spec file (TOML) describing the API's streams (docs/rest.md).",
        )
        .required(),
        Param::new(
            "base-url",
            "Replaces the spec's base_url (staging, proxies, simulators).",
        ),
        Param::new("token-url", "Replaces the spec's auth.token_url."),
        Param::new("token", "The token of bearer and header auth.")
            .env("INLET_REST_TOKEN")
            .secret(),
        Param::new("client-id", "OAuth 2 client id.").env("INLET_REST_CLIENT_ID"),
        Param::new("client-secret", "OAuth 2 client secret.")
            .env("INLET_REST_CLIENT_SECRET")
            .secret(),
        Param::new(
            "refresh-token",
            "OAuth 2 refresh token (grant = \"refresh_token\").",
        )
        .env("INLET_REST_REFRESH_TOKEN")
        .secret(),
    ],
    default_config: no_config,
    kind: Kind::Sync {
        build: provider::build_typed::<RestConnector>,
        verify: provider::verify_typed::<RestConnector>,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: None,
};

fn no_config() -> serde_json::Value {
    serde_json::json!({})
}

/// `inlet connect rest` flags: the spec file is read and checked here, before anything
/// is verified or written; an error names the file and the bad key.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let path = f.required("spec")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConnectorError::Config(format!("cannot read the spec file {path}: {e}")))?;
    let config = RestConfig {
        spec: text,
        spec_file: Some(path.clone()),
        base_url: f
            .get("base-url")
            .map(|u| u.trim_end_matches('/').to_string()),
        token_url: f.get("token-url").map(str::to_string),
    };
    config
        .parsed()
        .map_err(|e| ConnectorError::Config(format!("{path}: {e}")))?;
    let creds = RestCredentials {
        token: f.get("token").map(str::to_string),
        client_id: f.get("client-id").map(str::to_string),
        client_secret: f.get("client-secret").map(str::to_string),
        refresh_token: f.get("refresh-token").map(str::to_string),
        ..Default::default()
    };
    provider::input(&config, &creds, None)
}

impl provider::Typed for RestConnector {
    type Config = RestConfig;
    type Credentials = RestCredentials;
    const TITLE: &'static str = "REST";
    fn from_parts(
        config: RestConfig,
        creds: &RestCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        RestConnector::new(&config, creds, http)
    }

    /// One request (the first page of the first stream that is not a child) proves the
    /// spec and the credentials.
    fn check<'a>(&'a self, _cfg: &'a mut RestConfig) -> provider::CheckFuture<'a> {
        let conn = self;
        Box::pin(async move {
            let i = conn
                .compiled
                .iter()
                .position(|c| c.parent.is_none())
                .ok_or_else(|| ConnectorError::Config("the spec has no top-level stream".into()))?;
            conn.fetch_page(&conn.streams[i], None).await?;
            Ok(None)
        })
    }
}

/// Settings of a `rest` connection (stored in `connections.config`; no secrets).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// The spec file's text (TOML), as it was when connected.
    pub spec: String,
    /// Where the spec was read from (for people; not read again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_file: Option<String>,
    /// Replaces the spec's `base_url` (proxies, staging, simulators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Replaces the spec's `auth.token_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
}

impl RestConfig {
    /// The parsed, checked spec.
    pub fn parsed(&self) -> Result<RestSpec, SpecError> {
        let spec = spec::parse(&self.spec)?;
        for (key, url) in [("base_url", &self.base_url), ("token_url", &self.token_url)] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(SpecError(format!(
                    "{key}: must be an http(s) URL, got {u:?}"
                )));
            }
        }
        Ok(spec)
    }
}

/// Secrets of a `rest` connection (sealed at rest); which are needed depends on the
/// spec's `auth`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestCredentials {
    /// `bearer` and `header` auth: the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `oauth2`: the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `oauth2`: the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `oauth2` with `grant = "refresh_token"`: the refresh token (kept current when the
    /// API rotates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `oauth2`: the last access token, so a sync needs no token request while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Expiry of `access_token`, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

impl std::fmt::Debug for RestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "-" };
        f.debug_struct("RestCredentials")
            .field("token", &set(&self.token))
            .field("client_id", &self.client_id)
            .field("client_secret", &set(&self.client_secret))
            .field("refresh_token", &set(&self.refresh_token))
            .finish_non_exhaustive()
    }
}

/// Fixes for an API's quirks, called by the generic fetcher. Every method has a default
/// that changes nothing.
pub trait RestHooks: Send + Sync {
    /// Adjust a request before it is sent (an extra header, a signature).
    fn request(&self, stream: &str, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let _ = stream;
        rb
    }
    /// Adjust a mapped record (derive a column the pointers cannot reach); an error fails
    /// the page.
    fn record(&self, stream: &str, record: &mut Record) -> Result<(), String> {
        let _ = (stream, record);
        Ok(())
    }
    /// Decide the next page's cursor, given the paginator's (`None`: the listing ended).
    fn next(&self, stream: &str, response: &Response, next: Option<String>) -> Option<String> {
        let _ = (stream, response);
        next
    }
    /// Check a next-page URL (made absolute, already known to be on the API's origin)
    /// before it is followed; an error fails the page (GitHub: links stay under the API
    /// base, path included).
    fn link(&self, stream: &str, url: &str) -> Result<(), String> {
        let _ = (stream, url);
        Ok(())
    }
    /// A failed request as the connector error the engine sees (a provider names itself
    /// and its credential); the default is the fetcher's own wording.
    fn error(&self, stream: &str, e: HttpError) -> ConnectorError {
        let _ = stream;
        connector_error(e)
    }
}

/// The hooks of a plain spec: none.
struct NoHooks;
impl RestHooks for NoHooks {}

/// A paginator with its pointers parsed.
#[derive(Debug, Clone)]
enum Pager {
    None,
    Cursor {
        cursor: Pointer,
        param: String,
    },
    NextUrl(Pointer),
    LinkHeader,
    Offset {
        param: String,
        limit_param: String,
        limit: u64,
        total: Option<Pointer>,
    },
    PageNumber {
        param: String,
        start: u64,
        size: Option<(Option<String>, u64)>,
        total_pages: Option<Pointer>,
    },
}

/// One stream, ready to fetch.
struct Compiled {
    name: String,
    path: String,
    query: Vec<(String, String)>,
    map: RecordMap,
    pager: Pager,
    reconcile: bool,
    /// The first page of a delta is sent with the stored `ETag`.
    conditional: bool,
    /// Index of the parent stream and the parent's key pointer (`None`: its id).
    parent: Option<(usize, Option<Pointer>)>,
}

fn ptr(s: &str) -> Result<Pointer, ConnectorError> {
    Pointer::parse(s).map_err(|e| ConnectorError::Config(format!("invalid REST spec: {e}")))
}

fn compile(spec: &RestSpec) -> Result<Vec<Compiled>, ConnectorError> {
    let mut out = Vec::with_capacity(spec.streams.len());
    for s in &spec.streams {
        let pager = match &s.paginator {
            PaginatorSpec::None => Pager::None,
            PaginatorSpec::Cursor { cursor, param } => Pager::Cursor {
                cursor: ptr(cursor)?,
                param: param.clone(),
            },
            PaginatorSpec::NextUrl { next } => Pager::NextUrl(ptr(next)?),
            PaginatorSpec::LinkHeader => Pager::LinkHeader,
            PaginatorSpec::Offset {
                param,
                limit_param,
                limit,
                total,
            } => Pager::Offset {
                param: param.clone(),
                limit_param: limit_param.clone(),
                limit: *limit,
                total: total.as_deref().map(ptr).transpose()?,
            },
            PaginatorSpec::PageNumber {
                param,
                start,
                size_param,
                size,
                total_pages,
            } => Pager::PageNumber {
                param: param.clone(),
                start: *start,
                size: size.map(|n| (size_param.clone(), n)),
                total_pages: total_pages.as_deref().map(ptr).transpose()?,
            },
        };
        let parent = match &s.parent {
            Some(p) => {
                let i = spec
                    .streams
                    .iter()
                    .position(|o| o.name == p.stream)
                    .ok_or_else(|| {
                        ConnectorError::Config(format!("no parent stream {:?}", p.stream))
                    })?;
                Some((i, p.key.as_deref().map(ptr).transpose()?))
            }
            None => None,
        };
        out.push(Compiled {
            name: s.name.clone(),
            path: s.path.clone(),
            query: s
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            map: RecordMap {
                records: ptr(&s.records)?,
                item: s.item.as_deref().map(ptr).transpose()?,
                id: ptr(&s.id)?,
                columns: s
                    .columns
                    .iter()
                    .map(|c| {
                        Ok(ColumnMap {
                            name: c.name.clone(),
                            pointer: ptr(&c.pointer)?,
                            ty: c.ty,
                            join: c.join.clone(),
                        })
                    })
                    .collect::<Result<_, ConnectorError>>()?,
                cursor_field: s.cursor_field.as_deref().map(ptr).transpose()?,
            },
            pager,
            reconcile: s.reconcile,
            conditional: s.conditional,
            parent,
        });
    }
    Ok(out)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The [`StreamSpec`]s of a spec, built once per distinct spec text and kept for the
/// process's life (the engine and the store take `'static` specs): building the same
/// connection again costs nothing more.
pub fn streams_of_spec(text: &str) -> Result<&'static [StreamSpec], SpecError> {
    static INTERNED: OnceLock<Mutex<HashMap<[u8; 32], &'static [StreamSpec]>>> = OnceLock::new();
    let key = *blake3::hash(text.as_bytes()).as_bytes();
    let map = INTERNED.get_or_init(Default::default);
    if let Some(s) = map.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(s);
    }
    let spec = spec::parse(text)?;
    let specs: Vec<StreamSpec> = spec
        .streams
        .iter()
        .map(|s| {
            let columns: Vec<Column> = s
                .columns
                .iter()
                .map(|c| Column {
                    name: leak(c.name.clone()),
                    ty: c.ty.col_type(),
                    doc: leak(c.doc.clone().unwrap_or_else(|| c.pointer.clone())),
                })
                .collect();
            StreamSpec {
                name: leak(s.name.clone()),
                table: leak(spec.table_of(s)),
                doc: leak(s.doc.clone().unwrap_or_else(|| {
                    format!("Records of `{}` (REST spec {:?}).", s.path, spec.name)
                })),
                columns: Box::leak(columns.into_boxed_slice()),
                scope: None,
                stop: match s.stop {
                    StopSpec::Never => StopRule::Never,
                    StopSpec::KnownId => StopRule::KnownId,
                    StopSpec::CreatedBefore => StopRule::CreatedBefore {
                        lookback_secs: s.lookback_secs,
                    },
                },
                listing_cap: s.listing_cap,
                derived: None,
            }
        })
        .collect();
    let mut guard = map.lock().unwrap_or_else(|p| p.into_inner());
    // Another thread may have interned it meanwhile: keep one copy.
    let interned = *guard
        .entry(key)
        .or_insert_with(|| Box::leak(specs.into_boxed_slice()));
    Ok(interned)
}

/// The streams of a stored `rest` connection (empty when its config is unreadable).
pub fn streams_of_connection(conn: &Connection) -> &'static [StreamSpec] {
    let config = provider_config(&conn.config);
    serde_json::from_value::<RestConfig>(config)
        .ok()
        .and_then(|c| streams_of_spec(&c.spec).ok())
        .unwrap_or(&[])
}

/// The SQL type names a stream's typed columns map to, for table generators.
pub fn col_type_name(ty: ColType, postgres: bool) -> &'static str {
    match (ty, postgres) {
        (ColType::Text, _) => "TEXT",
        (ColType::Int, true) => "BIGINT",
        (ColType::Int, false) => "INTEGER",
        (ColType::Float, true) => "DOUBLE PRECISION",
        (ColType::Float, false) => "REAL",
        (ColType::Bool, true) => "BOOLEAN",
        (ColType::Bool, false) => "INTEGER",
        (ColType::Time, true) => "TIMESTAMPTZ",
        (ColType::Time, false) => "TEXT",
    }
}

/// A token from an OAuth 2 client-credentials grant (the app's own token), fetched
/// single-flight and again on expiry or a 401.
struct ClientCredentials {
    http: HttpClient,
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    current: tokio::sync::Mutex<Option<(String, i64)>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ClientCredentials {
    async fn fetch(&self) -> Result<(String, i64), inlet_http::AuthError> {
        use inlet_http::AuthError;
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if let Some(s) = &self.scope {
            form.push(("scope", s.clone()));
        }
        let res = self
            .http
            .execute(
                |c| {
                    c.post(&self.token_url)
                        .basic_auth(&self.client_id, Some(&self.client_secret))
                        .form(&form)
                },
                |r| {
                    let v: serde_json::Value = match serde_json::from_slice(&r.body) {
                        Ok(v) => v,
                        Err(e) => {
                            return Parsed::Retry(format!("token endpoint sent invalid JSON: {e}"));
                        }
                    };
                    match v.get("access_token").and_then(|a| a.as_str()) {
                        Some(a) => Parsed::Ok((
                            a.to_string(),
                            v.get("expires_in")
                                .and_then(serde_json::Value::as_u64)
                                .unwrap_or(3600)
                                .clamp(60, 31_536_000),
                        )),
                        None => Parsed::Fail(HttpError::Unauthorized(format!(
                            "token endpoint refused the client credentials: {}",
                            inlet_http::snippet(
                                &v.get("error").map_or_else(String::new, |e| e.to_string())
                            )
                        ))),
                    }
                },
            )
            .await;
        match res {
            Ok((access, expires_in)) => Ok((access, now_ms() + expires_in as i64 * 1000)),
            Err(HttpError::Status {
                status: 400 | 401 | 403,
                message,
            }) => Err(AuthError::Rejected(format!(
                "token endpoint refused the client credentials: {message}"
            ))),
            Err(HttpError::Unauthorized(m)) => Err(AuthError::Rejected(m)),
            Err(e) => Err(AuthError::Transient(e.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientCredentials {
    async fn token(&self) -> Result<String, inlet_http::AuthError> {
        let mut cur = self.current.lock().await;
        if let Some((a, exp)) = &*cur
            && exp - 60_000 > now_ms()
        {
            return Ok(a.clone());
        }
        let fresh = self.fetch().await?;
        let access = fresh.0.clone();
        *cur = Some(fresh);
        Ok(access)
    }

    async fn refresh(&self, stale: &str) -> Result<String, inlet_http::AuthError> {
        let mut cur = self.current.lock().await;
        if let Some((a, _)) = &*cur
            && a != stale
        {
            return Ok(a.clone());
        }
        let fresh = self.fetch().await?;
        let access = fresh.0.clone();
        *cur = Some(fresh);
        Ok(access)
    }
}

/// The cursor of a child stream: the parent listing's next page, the parents of the
/// current parent page still to read, and the cursor within the first of them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChildCursor {
    /// The parent listing's next page (`None`: the parent page read was the last).
    #[serde(default)]
    parent_next: Option<String>,
    /// Parent keys still to read, the one under way first.
    #[serde(default)]
    pending: Vec<String>,
    /// The cursor within the first pending parent's children.
    #[serde(default)]
    child: Option<String>,
}

/// The connector for one spec.
pub struct RestConnector {
    /// `rest`, or the built-in provider running on the fetcher.
    provider: &'static str,
    streams: &'static [StreamSpec],
    compiled: Vec<Compiled>,
    base: String,
    headers: Vec<(String, String)>,
    /// `header` auth: the header and its value.
    key_header: Option<(String, String)>,
    http: HttpClient,
    refresh: Option<Arc<OAuth2Token>>,
    creds: Mutex<RestCredentials>,
    hooks: Arc<dyn RestHooks>,
    /// Per stream: the `ETag` of its first page's last full answer (conditional streams).
    validators: Vec<Mutex<Option<String>>>,
}

/// How a page request treats its stream's cache validator (`conditional` streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Etag {
    /// A delta's page: the first is sent with the stored `ETag`, whose answer replaces it.
    Send,
    /// Never conditional, but the first page's `ETag` is kept (reconcile listings).
    Keep,
    /// Neither (a parent listing read for a child stream).
    Ignore,
}

impl RestConnector {
    /// A connector for a connection's settings and secrets.
    pub fn new(
        config: &RestConfig,
        creds: &RestCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        let spec = config
            .parsed()
            .map_err(|e| ConnectorError::Config(e.to_string()))?;
        let streams =
            streams_of_spec(&config.spec).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let compiled = compile(&spec)?;
        let base = config
            .base_url
            .clone()
            .unwrap_or_else(|| spec.base_url.clone())
            .trim_end_matches('/')
            .to_string();
        let mut http = HttpConfig {
            rate_headers: match spec.rate_limit.headers {
                Some(HeaderStyle::Reddit) => Some(RateHeaders {
                    remaining: "x-ratelimit-remaining",
                    reset: "x-ratelimit-reset",
                    reset_in: ResetIn::Seconds,
                }),
                Some(HeaderStyle::Github) => Some(RateHeaders {
                    remaining: "x-ratelimit-remaining",
                    reset: "x-ratelimit-reset",
                    reset_in: ResetIn::EpochSeconds,
                }),
                None => http.rate_headers,
            },
            documented: match (spec.rate_limit.requests, spec.rate_limit.per_secs) {
                (Some(requests), Some(per)) => Some(Quota {
                    requests,
                    per: std::time::Duration::from_secs(per),
                }),
                _ => http.documented,
            },
            ..http
        };
        if let Some(ua) = &spec.user_agent {
            http.user_agent = ua.clone();
        }
        if let Some(n) = spec.rate_limit.max_in_flight {
            http.max_in_flight = n;
        }
        let need = |v: &Option<String>, what: &str| -> Result<String, ConnectorError> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(ConnectorError::Config(format!(
                    "the spec's auth needs {what}, and the connection has none"
                ))),
            }
        };
        // One budget per API and credential (a hash, never the secret itself).
        let who = creds
            .client_id
            .clone()
            .or_else(|| creds.token.clone())
            .unwrap_or_default();
        http.budget_key = Some(format!(
            "rest:{base}:{}",
            &blake3::hash(who.as_bytes()).to_hex()[..16]
        ));
        let plain = HttpClient::new(http).map_err(|e| ConnectorError::Config(e.to_string()))?;
        let token_url = |u: &str| -> String {
            match &config.token_url {
                Some(t) => t.clone(),
                None if u.starts_with('/') => format!("{base}{u}"),
                None => u.to_string(),
            }
        };
        let (http, refresh, key_header) = match &spec.auth {
            AuthSpec::None => (plain, None, None),
            AuthSpec::Bearer => {
                let t = need(&creds.token, "a token (--token)")?;
                (plain.with_auth(Arc::new(StaticToken(t))), None, None)
            }
            AuthSpec::Header { name, prefix } => {
                let t = need(&creds.token, "a token (--token)")?;
                (plain, None, Some((name.clone(), format!("{prefix}{t}"))))
            }
            AuthSpec::Oauth2 {
                grant,
                token_url: url,
                scope,
            } => {
                let client_id = need(&creds.client_id, "a client id (--client-id)")?;
                let client_secret = creds.client_secret.clone().unwrap_or_default();
                match grant {
                    OAuthGrant::RefreshToken => {
                        let rt = need(&creds.refresh_token, "a refresh token (--refresh-token)")?;
                        let mut tok = OAuth2Token::new(
                            plain.clone(),
                            token_url(url),
                            client_id,
                            client_secret,
                            Grant::RefreshToken(rt),
                            creds.access_token.clone().zip(creds.expires_at_ms),
                        );
                        if let Some(s) = scope {
                            tok = tok.with_scope(s.clone());
                        }
                        let tok = Arc::new(tok);
                        (plain.with_auth(tok.clone()), Some(tok), None)
                    }
                    OAuthGrant::ClientCredentials => {
                        let source = ClientCredentials {
                            http: plain.awaiting_answers(),
                            token_url: token_url(url),
                            client_id,
                            client_secret,
                            scope: scope.clone(),
                            current: tokio::sync::Mutex::new(None),
                        };
                        (plain.with_auth(Arc::new(source)), None, None)
                    }
                }
            }
        };
        Ok(RestConnector {
            provider: NAME,
            streams,
            validators: compiled.iter().map(|_| Mutex::new(None)).collect(),
            compiled,
            base,
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            key_header,
            http,
            refresh,
            creds: Mutex::new(creds.clone()),
            hooks: Arc::new(NoHooks),
        })
    }

    /// A built-in provider's streams on the fetcher. `spec` is built by the provider in
    /// Rust and checked as a spec file is, except that its tables are the provider's own
    /// ([`RestSpec::validate_builtin`]); `streams` are the provider's [`StreamSpec`]s,
    /// which must match the spec's streams (names, tables, columns and their types, in
    /// order) so the tables cannot drift from what the fetcher writes; `http` is the
    /// provider's client, carrying its auth and rate limits (the spec's `auth`,
    /// `rate_limit` and `user_agent` must be left unset). The spec's `base_url` is the
    /// API base (the provider's configured one).
    pub fn builtin(
        provider: &'static str,
        spec: &RestSpec,
        streams: &'static [StreamSpec],
        http: HttpClient,
    ) -> Result<Self, ConnectorError> {
        let invalid = |m: String| ConnectorError::Config(format!("{provider}: {m}"));
        spec.validate_builtin()
            .map_err(|e| invalid(e.to_string()))?;
        if spec.auth != AuthSpec::None
            || spec.rate_limit != spec::RateLimitSpec::default()
            || spec.user_agent.is_some()
        {
            return Err(invalid(
                "a built-in spec leaves auth, rate_limit and user_agent to the provider's client"
                    .into(),
            ));
        }
        if streams.len() != spec.streams.len() {
            return Err(invalid(format!(
                "{} stream specs for {} spec streams",
                streams.len(),
                spec.streams.len()
            )));
        }
        for (s, want) in spec.streams.iter().zip(streams) {
            let same_columns = s.columns.len() == want.columns.len()
                && s.columns
                    .iter()
                    .zip(want.columns)
                    .all(|(c, w)| c.name == w.name && c.ty.col_type() == w.ty);
            if s.name != want.name || spec.table_of(s) != want.table || !same_columns {
                return Err(invalid(format!(
                    "spec stream {:?} does not match stream {:?} (table {}): names, tables and columns must agree",
                    s.name, want.name, want.table
                )));
            }
        }
        let compiled = compile(spec)?;
        Ok(RestConnector {
            provider,
            streams,
            validators: compiled.iter().map(|_| Mutex::new(None)).collect(),
            compiled,
            base: spec.base_url.trim_end_matches('/').to_string(),
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            key_header: None,
            http,
            refresh: None,
            creds: Mutex::new(RestCredentials::default()),
            hooks: Arc::new(NoHooks),
        })
    }

    /// The same connector with `hooks` for the API's quirks.
    pub fn with_hooks(mut self, hooks: Arc<dyn RestHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The connector for a stored connection, given its opened credentials.
    pub fn for_connection(
        conn: &Connection,
        credentials: serde_json::Value,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        let config: RestConfig =
            serde_json::from_value(provider_config(&conn.config)).map_err(|e| {
                ConnectorError::Config(format!(
                    "connection {:?} has an invalid REST config: {e}",
                    conn.name
                ))
            })?;
        // Never echo a credential: only the kind of error.
        let creds: RestCredentials = serde_json::from_value(credentials).map_err(|_| {
            ConnectorError::Config(format!(
                "connection {:?} has invalid REST credentials",
                conn.name
            ))
        })?;
        RestConnector::new(&config, &creds, http)
    }

    fn index(&self, stream: &StreamSpec) -> Result<usize, ConnectorError> {
        self.compiled
            .iter()
            .position(|c| c.name == stream.name)
            .ok_or_else(|| {
                ConnectorError::Config(format!("the spec has no stream {:?}", stream.name))
            })
    }

    /// An absolute URL for a next-page link; links leaving the API's origin are refused
    /// (they would carry the credentials elsewhere).
    fn follow(&self, link: &str) -> Result<String, ConnectorError> {
        let origin = origin_of(&self.base);
        let url = if link.starts_with("https://") || link.starts_with("http://") {
            link.to_string()
        } else if link.starts_with('/') {
            format!("{origin}{link}")
        } else {
            return Err(ConnectorError::Parse(format!(
                "the API sent a next-page link that is not a URL: {link:?}"
            )));
        };
        if url != origin
            && !url.starts_with(&format!("{origin}/"))
            && !url.starts_with(&format!("{origin}?"))
        {
            return Err(ConnectorError::Parse(format!(
                "the API sent a next-page link outside {origin}: {url}"
            )));
        }
        Ok(url)
    }

    /// One page of stream `i` from `cursor` (`None`: the first), for `parent` (a child
    /// stream's parent key); `etag` says whether a conditional stream's first page is
    /// sent with its stored `ETag` and keeps the answer's.
    async fn page(
        &self,
        i: usize,
        cursor: Option<&str>,
        parent: Option<&str>,
        etag: Etag,
    ) -> Result<Page, ConnectorError> {
        let c = &self.compiled[i];
        let name = c.name.as_str();
        // Only the first page of a conditional stream has a validator.
        let validated = c.conditional && cursor.is_none() && etag != Etag::Ignore;
        let if_none_match = if validated && etag == Etag::Send {
            self.validators[i]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            None
        };
        let path = match parent {
            Some(p) => c.path.replace("{parent_id}", &encode_segment(p)),
            None => c.path.clone(),
        };
        let mut url = format!("{}{path}", self.base);
        let mut query = c.query.clone();
        // Where this page starts, for offset and page-number paging.
        let mut position: u64 = 0;
        match (&c.pager, cursor) {
            (Pager::None, _) => {}
            (Pager::Cursor { param, .. }, Some(cur)) => query.push((param.clone(), cur.into())),
            (Pager::Cursor { .. }, None) => {}
            (Pager::NextUrl(_) | Pager::LinkHeader, Some(link)) => {
                url = self.follow(link)?;
                self.hooks.link(name, &url).map_err(ConnectorError::Parse)?;
                query.clear();
            }
            (Pager::NextUrl(_) | Pager::LinkHeader, None) => {}
            (
                Pager::Offset {
                    param,
                    limit_param,
                    limit,
                    ..
                },
                cur,
            ) => {
                position = parse_position(cur, 0)?;
                query.push((param.clone(), position.to_string()));
                query.push((limit_param.clone(), limit.to_string()));
            }
            (
                Pager::PageNumber {
                    param, start, size, ..
                },
                cur,
            ) => {
                position = parse_position(cur, *start)?;
                query.push((param.clone(), position.to_string()));
                if let Some((Some(sp), n)) = size {
                    query.push((sp.clone(), n.to_string()));
                }
            }
        }
        let (mut page, next, new_etag) = self
            .http
            .execute(
                |client| {
                    let mut rb = client.get(&url);
                    if !self
                        .headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
                    {
                        rb = rb.header("accept", "application/json");
                    }
                    if !query.is_empty() {
                        rb = rb.query(&query);
                    }
                    for (k, v) in &self.headers {
                        rb = rb.header(k, v);
                    }
                    if let Some((k, v)) = &self.key_header {
                        rb = rb.header(k, v);
                    }
                    if let Some(e) = &if_none_match {
                        rb = rb.header("if-none-match", e);
                    }
                    self.hooks.request(name, rb)
                },
                |r| self.parse(c, r, position),
            )
            .await
            .map_err(|e| self.hooks.error(name, e))?;
        if validated && let Some(e) = new_etag {
            *self.validators[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        if next.is_some() && next.as_deref() == cursor {
            return Err(ConnectorError::Parse(format!(
                "stream {name}: the API sent the page's own cursor as the next one ({cursor:?}); stopping instead of looping"
            )));
        }
        page.next = next;
        Ok(page)
    }

    /// Parse one answer: the records, the next page's cursor and the answer's `ETag`. A
    /// `304 Not Modified` (the answer to a conditional request) is an empty, final page.
    fn parse(
        &self,
        c: &Compiled,
        r: &Response,
        position: u64,
    ) -> Parsed<(Page, Option<String>, Option<String>)> {
        if r.status.as_u16() == 304 {
            return Parsed::Ok((Page::default(), None, None));
        }
        let body: &RawValue = match serde_json::from_slice(&r.body) {
            Ok(b) => b,
            Err(e) => return Parsed::Retry(format!("invalid JSON from the API: {e}")),
        };
        let fail = |m: String| Parsed::Fail(HttpError::Invalid(m));
        let elements = match map::raw_records(body, &c.map.records) {
            Ok(e) => e,
            Err(map::NoRecords::Missing(m)) => return fail(format!("stream {}: {m}", c.name)),
            Err(map::NoRecords::NotArray(m)) => {
                return Parsed::Retry(format!("stream {}: {m}", c.name));
            }
        };
        let n = elements.len() as u64;
        let mut records = Vec::with_capacity(elements.len());
        for e in elements {
            match c.map.record(e) {
                Ok(mut rec) => {
                    if let Err(m) = self.hooks.record(&c.name, &mut rec) {
                        return fail(format!("stream {}: {m}", c.name));
                    }
                    records.push(rec);
                }
                Err(m) => return fail(format!("stream {}: {m}", c.name)),
            }
        }
        let at = |p: &Pointer| -> Option<serde_json::Value> {
            let raw = p.get_raw(body).ok()??;
            serde_json::from_str(raw.get()).ok()
        };
        let text = |v: Option<serde_json::Value>| -> Option<String> {
            match v? {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let next = match &c.pager {
            Pager::None => None,
            Pager::Cursor { cursor, .. } => text(at(cursor)),
            Pager::NextUrl(p) => text(at(p)),
            Pager::LinkHeader => r
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link),
            Pager::Offset { limit, total, .. } => {
                let end = position + n;
                let total = total.as_ref().and_then(|p| at(p)?.as_u64());
                let more = n > 0 && n >= *limit && total.is_none_or(|t| end < t);
                more.then(|| end.to_string())
            }
            Pager::PageNumber {
                size, total_pages, ..
            } => {
                let pages = total_pages.as_ref().and_then(|p| at(p)?.as_u64());
                let full = size.as_ref().is_none_or(|(_, s)| n >= *s);
                let more = n > 0 && full && pages.is_none_or(|t| position < t);
                more.then(|| (position + 1).to_string())
            }
        };
        let next = self.hooks.next(&c.name, r, next);
        let etag = r
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Parsed::Ok((
            Page {
                records,
                next: None,
            },
            next,
            etag,
        ))
    }

    /// One page of child stream `i` (parent `p`, key pointer `key`) from `cursor`.
    async fn child_page(
        &self,
        i: usize,
        p: usize,
        key: Option<&Pointer>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let mut st: ChildCursor = match cursor {
            Some(c) => serde_json::from_str(c).map_err(|e| {
                ConnectorError::Config(format!(
                    "stored cursor of child stream {:?} is unreadable: {e}",
                    self.compiled[i].name
                ))
            })?,
            None => ChildCursor::default(),
        };
        if st.pending.is_empty() {
            if cursor.is_some() && st.parent_next.is_none() {
                return Ok(Page::default());
            }
            let parents = self
                .page(p, st.parent_next.as_deref(), None, Etag::Ignore)
                .await?;
            st.parent_next = parents.next;
            st.pending = parents
                .records
                .iter()
                .map(|r| parent_key(r, key))
                .collect::<Result<_, _>>()?;
            st.child = None;
            if st.pending.is_empty() {
                let next = st.parent_next.is_some().then(|| encode(&st)).transpose()?;
                return Ok(Page {
                    records: Vec::new(),
                    next,
                });
            }
        }
        let mut page = self
            .page(i, st.child.as_deref(), Some(&st.pending[0]), Etag::Ignore)
            .await?;
        st.child = page.next.take();
        if st.child.is_none() {
            st.pending.remove(0);
        }
        page.next = (!st.pending.is_empty() || st.parent_next.is_some())
            .then(|| encode(&st))
            .transpose()?;
        Ok(page)
    }
}

fn encode(st: &ChildCursor) -> Result<String, ConnectorError> {
    serde_json::to_string(st).map_err(|e| ConnectorError::Config(e.to_string()))
}

/// A parent record's key for its children's path.
fn parent_key(r: &Record, key: Option<&Pointer>) -> Result<String, ConnectorError> {
    let Some(p) = key else {
        return Ok(r.id.clone());
    };
    let v: serde_json::Value =
        serde_json::from_str(&r.raw).map_err(|e| ConnectorError::Parse(e.to_string()))?;
    match p.get(&v) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ConnectorError::Parse(format!(
            "parent record {:?} has no key at {:?}",
            r.id,
            p.to_string()
        ))),
    }
}

/// An offset or page number from a stored cursor.
fn parse_position(cursor: Option<&str>, first: u64) -> Result<u64, ConnectorError> {
    match cursor {
        None => Ok(first),
        Some(c) => c.parse().map_err(|_| {
            ConnectorError::Config(format!("stored cursor {c:?} is not a page position"))
        }),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(j) => &url[..after + j],
        None => url,
    }
}

/// Percent-encode a path segment (a parent key).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// A failed request as a connector error, in the fetcher's own words ([`RestHooks::error`]
/// may word it for a provider).
pub fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Unauthorized(m) => {
            ConnectorError::NeedsReauth(format!("the API rejected the credentials ({m})"))
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
impl Connector for RestConnector {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn streams(&self) -> &'static [StreamSpec] {
        self.streams
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let i = self.index(stream)?;
        match &self.compiled[i].parent {
            Some((p, key)) => self.child_page(i, *p, key.as_ref(), cursor).await,
            None => self.page(i, cursor, None, Etag::Send).await,
        }
    }

    /// The ordinary pages, never conditional (a `304` would hide the first page's ids);
    /// they are full pages, so their records go along for the reconcile to upsert.
    async fn fetch_id_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let i = self.index(stream)?;
        let page = match &self.compiled[i].parent {
            Some((p, key)) => self.child_page(i, *p, key.as_ref(), cursor).await?,
            None => self.page(i, cursor, None, Etag::Keep).await?,
        };
        Ok(IdPage::full(page))
    }

    fn validator(&self, stream: &StreamSpec) -> Option<String> {
        let i = self.index(stream).ok()?;
        self.validators[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_validator(&self, stream: &StreamSpec, validator: Option<&str>) {
        if let Ok(i) = self.index(stream)
            && self.compiled[i].conditional
        {
            *self.validators[i].lock().unwrap_or_else(|p| p.into_inner()) =
                validator.map(str::to_string);
        }
    }

    fn http_stats(&self) -> HttpStats {
        self.http.stats()
    }

    fn set_cancel(&self, flag: Option<Arc<std::sync::atomic::AtomicBool>>) {
        self.http.set_cancel(flag);
    }

    fn reconciles(&self, stream: &StreamSpec) -> bool {
        self.index(stream).is_ok_and(|i| self.compiled[i].reconcile)
    }

    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        let snap = self.refresh.as_ref()?.take_snapshot().await?;
        let mut creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        creds.access_token = Some(snap.access_token);
        creds.expires_at_ms = Some(snap.expires_at_ms);
        if let Some(rt) = snap.refresh_token {
            creds.refresh_token = Some(rt);
        }
        serde_json::to_value(&*creds).ok()
    }
}

#[cfg(test)]
mod tests;
