//! The spec file: a TOML description of an API's streams, parsed and checked before
//! anything is written. Errors name the bad key (`streams[1].paginator.cursor`).

use super::pointer::Pointer;
use inlet_core::ColType;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why a spec is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid REST spec: {0}")]
pub struct SpecError(pub String);

fn bad(key: impl std::fmt::Display, msg: impl std::fmt::Display) -> SpecError {
    SpecError(format!("{key}: {msg}"))
}

/// A whole spec file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSpec {
    /// Short name of the API (`acme`): the default table prefix is `rest_<name>_`.
    pub name: String,
    /// Base URL every stream's `path` is relative to (the `--base-url` flag overrides it).
    pub base_url: String,
    /// `User-Agent` to send (default: inlet's own).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Headers sent with every request (no secrets: those go in the credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The API's rate-limit headers and documented quota.
    #[serde(default)]
    pub rate_limit: RateLimitSpec,
    /// The streams, each its own table.
    pub streams: Vec<StreamDef>,
}

/// How requests authenticate; the secret itself is in the connection's credentials.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The token in a header of its own (`X-Api-Key: <token>`), with an optional prefix.
    Header {
        /// Header name.
        name: String,
        /// Written before the token (`Token `).
        #[serde(default)]
        prefix: String,
    },
    /// OAuth 2: a bearer token from a token endpoint (client id and secret sent with
    /// HTTP Basic), refreshed on expiry and on a 401.
    Oauth2 {
        /// `client_credentials` or `refresh_token`.
        grant: OAuthGrant,
        /// Token endpoint: absolute, or a path relative to `base_url`.
        token_url: String,
        /// `scope` to request, space-separated.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// The OAuth 2 grant.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// `grant_type=client_credentials`: the app's own token.
    ClientCredentials,
    /// `grant_type=refresh_token`: a user's token.
    RefreshToken,
}

/// Rate-limit handling beyond the shared defaults (429/`Retry-After` always honoured).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Which remaining/reset headers the API sends: `reddit` (reset in seconds) or
    /// `github` (reset as epoch seconds).
    #[serde(default)]
    pub headers: Option<HeaderStyle>,
    /// Documented budget: at most `requests` per `per_secs`.
    #[serde(default)]
    pub requests: Option<u32>,
    /// The window of `requests`, in seconds.
    #[serde(default)]
    pub per_secs: Option<u64>,
    /// Requests in flight at most.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

/// Rate-limit header styles.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    /// `x-ratelimit-remaining` / `x-ratelimit-reset` (seconds until reset).
    Reddit,
    /// `x-ratelimit-remaining` / `x-ratelimit-reset` (epoch seconds).
    Github,
}

/// A query parameter value: TOML strings, integers and booleans.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDef {
    /// Stream name (`inbox`).
    pub name: String,
    /// Record table; default `rest_<spec name>_<stream name>`. Must start with `rest_`.
    #[serde(default)]
    pub table: Option<String>,
    /// One line for the docs.
    #[serde(default)]
    pub doc: Option<String>,
    /// Path after `base_url` (`/message/inbox`); a child stream writes `{parent_id}`.
    pub path: String,
    /// Query parameters of every request.
    #[serde(default)]
    pub query: BTreeMap<String, Scalar>,
    /// Where the records are in the answer: a JSON pointer (`/data/children`) or a dotted
    /// path (`data.children`); empty when the body is the array.
    pub records: String,
    /// Inside each element, the object that is the record (`data` for Reddit's
    /// `{kind, data}` wrappers); the whole element by default.
    #[serde(default)]
    pub item: Option<String>,
    /// The record's id, inside the record (`name`, `/id`).
    pub id: String,
    /// Typed columns.
    #[serde(default)]
    pub columns: Vec<ColumnDef>,
    /// How pages follow each other (default: one page).
    #[serde(default)]
    pub paginator: PaginatorSpec,
    /// The record's time a newest-first listing is ordered by (epoch seconds or RFC 3339).
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// Where a delta stops: `never` (read everything), `created_before` (needs
    /// `cursor_field`) or `known_id`.
    #[serde(default)]
    pub stop: StopSpec,
    /// Overlap of `created_before`, seconds.
    #[serde(default = "default_lookback")]
    pub lookback_secs: i64,
    /// The listing is complete and cheap to read whole: `inlet sync --reconcile` reads it
    /// to find deleted records.
    #[serde(default)]
    pub reconcile: bool,
    /// The API lists at most this many items.
    #[serde(default)]
    pub listing_cap: Option<u64>,
    /// This stream is read once per record of another stream.
    #[serde(default)]
    pub parent: Option<ParentDef>,
    /// The first page of a delta is a conditional request: sent with `If-None-Match` and
    /// the `ETag` of its last answer (kept between runs), so a `304 Not Modified` ends the
    /// delta with nothing new. Full, resumed and reconcile passes are never conditional.
    #[serde(default)]
    pub conditional: bool,
}

fn default_lookback() -> i64 {
    3600
}

/// Stop rules.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopSpec {
    /// Every sync reads the whole listing.
    #[default]
    Never,
    /// Stop after the page holding a record older than the last sync (minus the lookback).
    CreatedBefore,
    /// Stop after the page holding a record already stored.
    KnownId,
}

/// The parent of a child stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentDef {
    /// The parent stream's name.
    pub stream: String,
    /// The parent record's value put into `{parent_id}` (default: its id).
    #[serde(default)]
    pub key: Option<String>,
}

/// A typed column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Where the value is inside the record.
    pub pointer: String,
    /// `text` (default), `int`, `float`, `bool` or `time`.
    #[serde(default, rename = "type")]
    pub ty: ColumnType,
    /// What it holds.
    #[serde(default)]
    pub doc: Option<String>,
    /// The value is an array of strings (or numbers) joined into one text with this
    /// separator (`","`: `["a","b"]` is `a,b`); an empty array is NULL. Text columns only.
    #[serde(default)]
    pub join: Option<String>,
}

/// Column types.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// TEXT (objects and arrays as JSON text).
    #[default]
    Text,
    /// BIGINT.
    Int,
    /// DOUBLE PRECISION.
    Float,
    /// BOOLEAN.
    Bool,
    /// TIMESTAMPTZ (from epoch seconds or RFC 3339).
    Time,
}

impl ColumnType {
    /// The spec type of a provider's column type.
    pub fn of(ty: ColType) -> ColumnType {
        match ty {
            ColType::Text => ColumnType::Text,
            ColType::Int => ColumnType::Int,
            ColType::Float => ColumnType::Float,
            ColType::Bool => ColumnType::Bool,
            ColType::Time => ColumnType::Time,
        }
    }

    /// The SQL type.
    pub fn col_type(self) -> ColType {
        match self {
            ColumnType::Text => ColType::Text,
            ColumnType::Int => ColType::Int,
            ColumnType::Float => ColType::Float,
            ColumnType::Bool => ColType::Bool,
            ColumnType::Time => ColType::Time,
        }
    }
}

/// Paginators.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginatorSpec {
    /// One page.
    #[default]
    None,
    /// The next page's cursor is in the body (`data.after`) and goes back as a query
    /// parameter (`after`).
    Cursor {
        /// Where the cursor is in the body.
        cursor: String,
        /// Query parameter that carries it.
        param: String,
    },
    /// The next page's full URL is in the body (`next`, `links.next`).
    NextUrl {
        /// Where the URL is in the body.
        next: String,
    },
    /// The next page's URL is the `Link` header's `rel="next"`.
    LinkHeader,
    /// `offset`/`limit` parameters; the listing ends on a short page (or at `total`).
    Offset {
        /// Offset parameter.
        #[serde(default = "default_offset_param")]
        param: String,
        /// Page size parameter.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Page size.
        limit: u64,
        /// Where the total count is in the body, when the API says.
        #[serde(default)]
        total: Option<String>,
    },
    /// `page=1,2,3…`; the listing ends on an empty page, a page shorter than `size`, or
    /// at `total_pages`.
    PageNumber {
        /// Page parameter.
        #[serde(default = "default_page_param")]
        param: String,
        /// The first page's number.
        #[serde(default = "default_page_start")]
        start: u64,
        /// Page size parameter, when sent.
        #[serde(default)]
        size_param: Option<String>,
        /// Page size: a shorter page is the last.
        #[serde(default)]
        size: Option<u64>,
        /// Where the number of pages is in the body, when the API says.
        #[serde(default)]
        total_pages: Option<String>,
    },
}

fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_page_start() -> u64 {
    1
}

/// Columns every record table has; a spec's columns may not reuse them.
pub const FIXED_COLUMNS: &[&str] = &[
    "connection_id",
    "id",
    "raw",
    "content_hash",
    "first_seen_at",
    "updated_at",
    "deleted_at",
];

/// A SQL identifier inlet accepts for a table or column: lowercase ASCII letters,
/// digits and `_`, starting with a letter, at most 63 bytes (PostgreSQL's limit).
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Parse and check a spec file's text. Nothing is read from the network here.
pub fn parse(text: &str) -> Result<RestSpec, SpecError> {
    let spec: RestSpec = toml::from_str(text).map_err(|e| SpecError(toml_message(text, &e)))?;
    spec.validate()?;
    Ok(spec)
}

/// A TOML error in one line: the message (which names the key) and its line.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

fn check_pointer(key: &str, p: &str) -> Result<(), SpecError> {
    Pointer::parse(p).map(|_| ()).map_err(|e| bad(key, e))
}

fn check_url(key: &str, url: &str) -> Result<(), SpecError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(bad(key, format!("must be an http(s) URL, got {url:?}")))
    }
}

impl RestSpec {
    /// Check everything serde cannot: names, pointers, references between streams.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.check(true)
    }

    /// Check a spec a built-in provider builds in Rust: as [`RestSpec::validate`], except
    /// that its tables are the provider's own (`github_stars`), not `rest_` tables.
    pub fn validate_builtin(&self) -> Result<(), SpecError> {
        self.check(false)
    }

    /// The checks; `user` demands `rest_` tables.
    fn check(&self, user: bool) -> Result<(), SpecError> {
        if !is_identifier(&self.name) {
            return Err(bad(
                "name",
                format!(
                    "{:?} must be lowercase letters, digits and _, starting with a letter",
                    self.name
                ),
            ));
        }
        check_url("base_url", &self.base_url)?;
        for (k, v) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(bad(format!("headers.{k}"), "not a valid header name"));
            }
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                return Err(bad(format!("headers.{k}"), "not a valid header value"));
            }
        }
        match &self.auth {
            AuthSpec::Header { name, .. }
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() =>
            {
                return Err(bad("auth.name", format!("{name:?} is not a header name")));
            }
            AuthSpec::Oauth2 { token_url, .. } if !token_url.starts_with('/') => {
                check_url("auth.token_url", token_url)?;
            }
            _ => {}
        }
        let rl = &self.rate_limit;
        if rl.requests.is_some() != rl.per_secs.is_some() {
            return Err(bad(
                "rate_limit",
                "give both requests and per_secs, or neither",
            ));
        }
        if rl.requests == Some(0) || rl.per_secs == Some(0) {
            return Err(bad("rate_limit", "requests and per_secs must be above 0"));
        }
        if rl.max_in_flight == Some(0) {
            return Err(bad("rate_limit.max_in_flight", "must be above 0"));
        }
        if self.streams.is_empty() {
            return Err(bad("streams", "at least one [[streams]] is needed"));
        }
        let mut names: Vec<&str> = Vec::new();
        let mut tables: Vec<String> = Vec::new();
        for (i, s) in self.streams.iter().enumerate() {
            let k = |f: &str| format!("streams[{i}].{f}");
            if !is_identifier(&s.name) {
                return Err(bad(
                    k("name"),
                    format!(
                        "{:?} must be lowercase letters, digits and _, starting with a letter",
                        s.name
                    ),
                ));
            }
            if names.contains(&s.name.as_str()) {
                return Err(bad(
                    k("name"),
                    format!("stream {:?} is defined twice", s.name),
                ));
            }
            names.push(&s.name);
            let table = self.table_of(s);
            if !is_identifier(&table) || (user && !table.starts_with("rest_")) {
                return Err(bad(
                    k("table"),
                    format!(
                        "{table:?} must start with rest_ (inlet's own tables are kept apart) and be lowercase letters, digits and _, at most 63"
                    ),
                ));
            }
            if tables.contains(&table) {
                return Err(bad(
                    k("table"),
                    format!("table {table:?} is used by two streams"),
                ));
            }
            tables.push(table);
            if !s.path.starts_with('/') {
                return Err(bad(
                    k("path"),
                    format!("must start with /, got {:?}", s.path),
                ));
            }
            check_pointer(&k("records"), &s.records)?;
            if let Some(p) = &s.item {
                check_pointer(&k("item"), p)?;
            }
            check_pointer(&k("id"), &s.id)?;
            if Pointer::parse(&s.id).is_ok_and(|p| p.is_root()) {
                return Err(bad(k("id"), "must point inside the record"));
            }
            if let Some(p) = &s.cursor_field {
                check_pointer(&k("cursor_field"), p)?;
            }
            if s.stop == StopSpec::CreatedBefore && s.cursor_field.is_none() {
                return Err(bad(
                    k("stop"),
                    "created_before needs cursor_field (the time the listing is ordered by)",
                ));
            }
            if s.lookback_secs < 0 {
                return Err(bad(k("lookback_secs"), "must not be negative"));
            }
            let mut cols: Vec<&str> = Vec::new();
            for (j, c) in s.columns.iter().enumerate() {
                let ck = |f: &str| format!("streams[{i}].columns[{j}].{f}");
                if !is_identifier(&c.name) {
                    return Err(bad(
                        ck("name"),
                        format!(
                            "{:?} must be lowercase letters, digits and _, starting with a letter",
                            c.name
                        ),
                    ));
                }
                if FIXED_COLUMNS.contains(&c.name.as_str()) {
                    return Err(bad(
                        ck("name"),
                        format!(
                            "{:?} is one of the columns every table has ({})",
                            c.name,
                            FIXED_COLUMNS.join(", ")
                        ),
                    ));
                }
                if cols.contains(&c.name.as_str()) {
                    return Err(bad(
                        ck("name"),
                        format!("column {:?} is defined twice", c.name),
                    ));
                }
                cols.push(&c.name);
                check_pointer(&ck("pointer"), &c.pointer)?;
                if c.join.is_some() && c.ty != ColumnType::Text {
                    return Err(bad(ck("join"), "only text columns join arrays"));
                }
            }
            match &s.paginator {
                PaginatorSpec::Cursor { cursor, param } => {
                    check_pointer(&k("paginator.cursor"), cursor)?;
                    if param.is_empty() {
                        return Err(bad(k("paginator.param"), "must not be empty"));
                    }
                }
                PaginatorSpec::NextUrl { next } => check_pointer(&k("paginator.next"), next)?,
                PaginatorSpec::Offset { limit, total, .. } => {
                    if *limit == 0 {
                        return Err(bad(k("paginator.limit"), "must be above 0"));
                    }
                    if let Some(t) = total {
                        check_pointer(&k("paginator.total"), t)?;
                    }
                }
                PaginatorSpec::PageNumber {
                    size,
                    size_param,
                    total_pages,
                    ..
                } => {
                    if *size == Some(0) {
                        return Err(bad(k("paginator.size"), "must be above 0"));
                    }
                    if size_param.is_some() && size.is_none() {
                        return Err(bad(k("paginator.size"), "size_param needs size"));
                    }
                    if let Some(t) = total_pages {
                        check_pointer(&k("paginator.total_pages"), t)?;
                    }
                }
                PaginatorSpec::None | PaginatorSpec::LinkHeader => {}
            }
            let templated = s.path.contains("{parent_id}");
            match &s.parent {
                Some(p) => {
                    let Some(parent) = self.streams.iter().find(|o| o.name == p.stream) else {
                        return Err(bad(
                            k("parent.stream"),
                            format!("no stream {:?} in this spec", p.stream),
                        ));
                    };
                    if parent.parent.is_some() || parent.name == s.name {
                        return Err(bad(
                            k("parent.stream"),
                            format!(
                                "{:?} is itself a child stream: one level of parents only",
                                p.stream
                            ),
                        ));
                    }
                    if let Some(key) = &p.key {
                        check_pointer(&k("parent.key"), key)?;
                    }
                    if !templated {
                        return Err(bad(
                            k("path"),
                            "a child stream's path must contain {parent_id}",
                        ));
                    }
                }
                None if templated => {
                    return Err(bad(k("path"), "{parent_id} needs a [streams.parent]"));
                }
                None => {}
            }
            if s.conditional && s.parent.is_some() {
                return Err(bad(
                    k("conditional"),
                    "a child stream is read per parent and cannot be conditional",
                ));
            }
        }
        Ok(())
    }

    /// The record table of a stream.
    pub fn table_of(&self, s: &StreamDef) -> String {
        s.table
            .clone()
            .unwrap_or_else(|| format!("rest_{}_{}", self.name, s.name))
    }
}
