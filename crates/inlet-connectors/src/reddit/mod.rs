//! Reddit: private messages (inbox, sent; conversations derived from them) and saved
//! posts and comments, through Reddit's OAuth API. See `shared/providers/reddit.md`.
//!
//! Listings are newest first and paged with `after`; there is no "since" filter, so the
//! engine reads from the top until it meets what it already has (see [`streams`]).

pub mod client;
pub mod links;
pub mod model;
pub mod streams;

use client::{RedditClient, connector_error};
pub use client::{RedditConfig, RedditCredentials};
use inlet_core::{
    Connector, ConnectorError, HttpStats, Page, Record, StreamSpec, Timestamp, Value,
};
use inlet_http::{HttpConfig, Parsed, Response};
use model::{Child, Listing, Me, Message, Saved};
use tokio::sync::OnceCell;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use inlet_http::{Quota, RateHeaders, ResetIn};

/// Reddit's `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` (seconds from now).
pub const RATE_HEADERS: RateHeaders = RateHeaders {
    remaining: "x-ratelimit-remaining",
    reset: "x-ratelimit-reset",
    reset_in: ResetIn::Seconds,
};

/// Reddit: 100 queries per minute per OAuth client; we assume 60 to leave room for the
/// same app's other clients.
pub const QUOTA: Quota = Quota {
    requests: 60,
    per: std::time::Duration::from_secs(60),
};

/// Where Reddit's attachment links point: its image hosts, Reddit Chat (Matrix) media
/// and Imgur.
pub const IMAGE_HOSTS: &[&str] = &[
    "i.redd.it",
    "preview.redd.it",
    "matrix.redditspace.com",
    "i.imgur.com",
    "imgur.com",
];

/// Reddit as the registry knows it.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "reddit",
    title: "Reddit",
    about: "Connect a Reddit account (OAuth2: refresh token, or username + password for script apps).",
    streams: &streams::STREAMS,
    interval_minutes: 10,
    quota: Some(QUOTA),
    rate_headers: Some(RATE_HEADERS),
    image_hosts: IMAGE_HOSTS,
    params: &[
        Param::new("client-id", "The Reddit app's client id.")
            .env("REDDIT_CLIENT_ID")
            .required(),
        Param::new(
            "client-secret",
            "The app's secret (empty for installed apps).",
        )
        .env("REDDIT_CLIENT_SECRET")
        .secret()
        .default_value(""),
        Param::new(
            "refresh-token",
            "A permanent refresh token (web and installed apps).",
        )
        .env("REDDIT_REFRESH_TOKEN")
        .secret(),
        Param::new("username", "Account name (script apps, with --password).")
            .env("REDDIT_USERNAME"),
        Param::new("password", "Account password (script apps).")
            .env("REDDIT_PASSWORD")
            .secret(),
        Param::new("api-base", "API base URL (for proxies and simulators).")
            .default_value(client::DEFAULT_API_BASE),
        Param::new(
            "token-url",
            "Token endpoint URL (for proxies and simulators).",
        )
        .default_value(client::DEFAULT_TOKEN_URL),
        Param::new(
            "user-agent",
            "User-Agent to send (Reddit requires a descriptive one; a default naming inlet is used).",
        ),
        Param::new("page-size", "Items per page (1..=100).").default_value("100"),
        Param::new(
            "max-in-flight",
            "Requests in flight at most for this connection (default 10).",
        ),
        Param::new(
            "request-timeout",
            "Seconds allowed for one whole request (default 60).",
        ),
    ],
    default_config: provider::defaults::<RedditConfig>,
    kind: Kind::Sync {
        build: provider::build_typed::<RedditConnector>,
        verify: provider::verify_typed::<RedditConnector>,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: Some(provider::ApiSchemas {
        config: provider::schema::<RedditConfig>,
        credentials: provider::schema::<RedditCredentials>,
    }),
};

/// `inlet connect reddit`: a refresh token, or a script app's username and password.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let username = f.get("username").map(str::to_string);
    let password = f.get("password").map(str::to_string);
    let refresh_token = f.get("refresh-token").map(str::to_string);
    if refresh_token.is_none() && (username.is_none() || password.is_none()) {
        return Err(ConnectorError::Config(
            "give --refresh-token, or --username and --password for a script app".into(),
        ));
    }
    let config = RedditConfig {
        api_base: f.required("api-base")?.trim_end_matches('/').to_string(),
        token_url: f.required("token-url")?,
        user_agent: f.get("user-agent").map(str::to_string),
        // Replaced by the name Reddit gives when the credentials are verified.
        username: username.clone(),
        page_size: f.parse("page-size")?.unwrap_or(100),
        http: inlet_http::HttpSettings {
            max_in_flight: f.parse("max-in-flight")?,
            request_timeout_secs: f.parse("request-timeout")?,
            connect_timeout_secs: None,
        },
    };
    config.validate()?;
    let creds = RedditCredentials {
        client_id: f.required("client-id")?,
        client_secret: f.get("client-secret").unwrap_or_default().to_string(),
        refresh_token,
        username: username.clone(),
        password,
        ..Default::default()
    };
    provider::input(&config, &creds, username)
}

impl provider::Typed for RedditConnector {
    type Config = RedditConfig;
    type Credentials = RedditCredentials;
    const TITLE: &'static str = "Reddit";
    fn from_parts(
        config: RedditConfig,
        creds: &RedditCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        RedditConnector::new(config, creds, http)
    }

    /// One `/api/v1/me` request proves the credentials and names the account, which the
    /// config keeps (a refresh token the exchange rotated replaces the given one).
    fn check<'a>(&'a self, cfg: &'a mut RedditConfig) -> provider::CheckFuture<'a> {
        let conn = self;
        Box::pin(async move {
            let name = conn.username().await?.to_string();
            cfg.username = Some(name.clone());
            Ok(Some(name))
        })
    }
}

/// The Reddit connector.
pub struct RedditConnector {
    config: RedditConfig,
    creds: std::sync::Mutex<RedditCredentials>,
    client: RedditClient,
    username: OnceCell<String>,
}

impl RedditConnector {
    /// A connector for one account.
    pub fn new(
        config: RedditConfig,
        creds: &RedditCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        let client = RedditClient::new(&config, creds, http)?;
        let username = OnceCell::new_with(config.username.clone());
        Ok(RedditConnector {
            config,
            creds: std::sync::Mutex::new(creds.clone()),
            client,
            username,
        })
    }

    /// The account's username (one `/api/v1/me` request the first time it is needed,
    /// unless the configuration names it).
    pub async fn username(&self) -> Result<&str, ConnectorError> {
        self.username
            .get_or_try_init(|| async {
                let url = format!("{}/api/v1/me?raw_json=1", self.config.api_base);
                self.client
                    .http
                    .execute(|c| c.get(&url), |r| json::<Me>(r).map(|m| m.name))
                    .await
                    .map_err(connector_error)
            })
            .await
            .map(String::as_str)
    }

    async fn listing(
        &self,
        path: &str,
        stream: &'static StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let url = format!("{}{path}", self.config.api_base);
        let limit = self.config.page_size.to_string();
        self.client
            .http
            .execute(
                |c| {
                    let mut q: Vec<(&str, &str)> = vec![("limit", &limit), ("raw_json", "1")];
                    if let Some(after) = cursor {
                        q.push(("after", after));
                    }
                    c.get(&url).query(&q)
                },
                |r| parse_listing(r, stream),
            )
            .await
            .map_err(connector_error)
    }
}

#[async_trait::async_trait]
impl Connector for RedditConnector {
    fn provider(&self) -> &'static str {
        "reddit"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        &streams::STREAMS
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let spec = streams::STREAMS
            .iter()
            .find(|s| s.name == stream.name)
            .ok_or_else(|| {
                ConnectorError::Config(format!("Reddit has no stream {:?}", stream.name))
            })?;
        match spec.name {
            "inbox" => self.listing("/message/inbox", spec, cursor).await,
            "sent" => self.listing("/message/sent", spec, cursor).await,
            _ => {
                let path = format!("/user/{}/saved", self.username().await?);
                self.listing(&path, spec, cursor).await
            }
        }
    }

    fn http_stats(&self) -> HttpStats {
        self.client.http.stats()
    }

    fn set_cancel(&self, flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>) {
        self.client.http.set_cancel(flag);
    }

    /// Image links in the record's markdown `body` (messages, comments, self text).
    fn attachment_links(&self, stream: &StreamSpec, record: &Record) -> Vec<String> {
        stream
            .column_index("body")
            .and_then(|i| record.values.get(i))
            .and_then(Value::as_text)
            .map(links::image_links)
            .unwrap_or_default()
    }

    /// Saved items: an unsave is only visible in a complete re-listing (Reddit has no
    /// cheaper id listing, so the ids come from the ordinary pages).
    fn reconciles(&self, stream: &StreamSpec) -> bool {
        stream.name == "saved"
    }

    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        let snap = self.client.token.take_snapshot().await?;
        let mut creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        creds.access_token = Some(snap.access_token);
        creds.expires_at_ms = Some(snap.expires_at_ms);
        if snap.refresh_token.is_some() {
            creds.refresh_token = snap.refresh_token;
        }
        serde_json::to_value(&*creds).ok()
    }
}

fn json<'a, T: serde::Deserialize<'a>>(r: &'a Response) -> Parsed<T> {
    match serde_json::from_slice(&r.body) {
        Ok(v) => Parsed::Ok(v),
        // A cut-off or garbled body (CDN error pages arrive as 200 too) is transient.
        Err(e) => Parsed::Retry(format!("invalid JSON from Reddit: {e}")),
    }
}

/// Parse one Listing page into records of `stream`.
pub fn parse_listing(r: &Response, stream: &StreamSpec) -> Parsed<Page> {
    let listing: Listing = match json(r) {
        Parsed::Ok(l) => l,
        Parsed::Retry(m) => return Parsed::Retry(m),
        Parsed::Fail(e) => return Parsed::Fail(e),
        Parsed::Refresh(m) => return Parsed::Refresh(m),
    };
    if listing.kind != "Listing" {
        return Parsed::Retry(format!("expected a Listing, got kind {:?}", listing.kind));
    }
    let mut records = Vec::with_capacity(listing.data.children.len());
    for child in &listing.data.children {
        match map_child(child, stream) {
            Ok(rec) => records.push(rec),
            Err(e) => return Parsed::Fail(inlet_http::HttpError::Invalid(e)),
        }
    }
    Parsed::Ok(Page {
        records,
        next: listing.data.after.filter(|a| !a.is_empty()),
    })
}

fn map_child(child: &Child, stream: &StreamSpec) -> Result<Record, String> {
    let raw = child.data.get();
    let bad =
        |e: serde_json::Error| format!("unexpected {} item in {}: {e}", child.kind, stream.name);
    let created = |secs: f64, name: &str| {
        Timestamp::from_secs_f64(secs)
            .ok_or_else(|| format!("{name} has an invalid created_utc {secs}"))
    };
    if stream.name == "saved" {
        let s: Saved = serde_json::from_str(raw).map_err(bad)?;
        let at = created(s.created_utc, &s.name)?;
        let values = vec![
            Value::Text(child.kind.clone()),
            Value::opt_text(s.subreddit),
            Value::opt_text(s.author),
            Value::opt_text(s.title.or(s.link_title)),
            Value::opt_text(s.selftext.or(s.body)),
            Value::opt_text(s.url.or(s.link_url)),
            Value::opt_text(s.permalink),
            Value::Time(at),
            s.score.map_or(Value::Null, Value::Int),
            s.num_comments.map_or(Value::Null, Value::Int),
            s.over_18.map_or(Value::Null, Value::Bool),
        ];
        return Ok(Record {
            id: s.name,
            values,
            raw: raw.to_string(),
            sort_ts: Some(at),
        });
    }
    let m: Message = serde_json::from_str(raw).map_err(bad)?;
    let at = created(m.created_utc, &m.name)?;
    let conversation = (child.kind == "t4").then(|| {
        m.first_message_name
            .clone()
            .unwrap_or_else(|| m.name.clone())
    });
    // A message sent to oneself is listed in the inbox and in sent with the same data:
    // both listings map it to the same row, so neither rewrites what the other stored.
    let to_self = child.kind == "t4"
        && matches!((&m.author, &m.dest), (Some(a), Some(d)) if a.eq_ignore_ascii_case(d));
    let folder = match stream.scope {
        Some(s) if to_self => s.shared.unwrap_or(s.value),
        Some(s) => s.value,
        None => "inbox",
    };
    let values = vec![
        Value::Text(child.kind.clone()),
        Value::Text(folder.into()),
        Value::opt_text(conversation),
        Value::opt_text(m.parent_id),
        Value::opt_text(m.author),
        Value::opt_text(m.dest),
        Value::opt_text(m.subject),
        Value::opt_text(m.body),
        Value::Time(at),
        Value::Bool(m.new),
        Value::opt_text(m.kind),
        Value::opt_text(m.subreddit),
        Value::opt_text(m.distinguished),
        Value::opt_text(m.link_title),
        Value::opt_text(m.context.filter(|c| !c.is_empty())),
    ];
    Ok(Record {
        id: m.name,
        values,
        raw: raw.to_string(),
        sort_ts: Some(at),
    })
}

#[cfg(test)]
mod tests;
