//! Slack: the messages of the channels a user picked, their thread replies, the
//! workspace's users and conversations, through the Web API with a bot (`xoxb-`) or user
//! (`xoxp-`) token. See `shared/providers/slack.md`.
//!
//! Messages are a parent stream of replies ([`inlet_core::Family`]): one listing per
//! chosen channel, `conversations.history` from the stored cursor (`oldest`, exclusive)
//! paged with `response_metadata.next_cursor`. A delta re-reads `lookback_hours` before
//! the cursor, so edits (same `ts`, new `edited`) and new replies (the parent's
//! `reply_count`/`latest_reply` move) inside that window are seen; a thread is read with
//! `conversations.replies` only when its marker moved, and a message without replies
//! costs no call. The first sync reads `first_sync_hours` (default 24); `inlet sync
//! --full` reads everything and tombstones what Slack no longer lists.
//!
//! Every method runs on its tier's client, which holds to the tier's documented budget
//! per minute (Tier 2: lists; Tier 3: history and replies; 1 per minute and 15 per page
//! for a non-Marketplace app) shared by every client of the token; a 429 waits
//! `Retry-After`. HTTP 200 with `ok: false` is an error: `invalid_auth`,
//! `token_revoked`, ... end the run with `needs_reauth`; `ratelimited` and Slack's
//! transient errors are retried; others (`channel_not_found`) fail that channel's listing
//! while the other channels go on.

pub mod client;
pub mod streams;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use client::{SlackClient, Tier};
pub use client::{SlackConfig, SlackCredentials};
use inlet_core::CredentialSink;
use inlet_core::FetchAs;
use inlet_core::{
    Connector, ConnectorError, Family, HttpStats, Page, Record, StreamSpec, Timestamp, Value,
};
use inlet_http::TokenSource;
use inlet_http::{HttpConfig, RenewHook, TokenSnapshot};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Slack as the registry knows it. Budgets are per method tier and kept by the
/// connector's own clients (see [`client`]); Slack sends no budget headers.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "slack",
    title: "Slack",
    about: "Connect a Slack workspace (bot xoxb- or user xoxp- token) and pick its channels.",
    streams: &streams::STREAMS,
    interval_minutes: 15,
    quota: None,
    rate_headers: None,
    image_hosts: &[FILES_HOST],
    params: &[
        Param::new("token", "A bot (xoxb-) or user (xoxp-) token with the *:history and *:read scopes.")
            .env("SLACK_TOKEN")
            .secret()
            .required(),
        Param::new(
            "refresh-token",
            "Token rotation: the refresh token (xoxe-) from oauth.v2.access; every refresh replaces both tokens.",
        )
        .env("SLACK_REFRESH_TOKEN")
        .secret(),
        Param::new("client-id", "Token rotation: the app's client id.").env("SLACK_CLIENT_ID"),
        Param::new("client-secret", "Token rotation: the app's client secret.")
            .env("SLACK_CLIENT_SECRET")
            .secret(),
        Param::new(
            "channel",
            "A conversation id to sync (repeatable: C…, G…, D…). Without one, connecting lists the conversations the token can see.",
        )
        .repeat(),
        Param::new("api-base", "Web API base URL.").default_value(client::DEFAULT_API_BASE),
        Param::new(
            "first-sync-hours",
            "Hours of history the first sync reads (0: everything; `inlet sync --full` reads everything).",
        )
        .default_value("24"),
        Param::new(
            "lookback-hours",
            "Hours before the stored cursor every sync re-reads, to see edits, deletions and new thread replies.",
        )
        .default_value("24"),
        Param::new("page-size", "Messages per request (1..=999; 15 for a non-Marketplace app).")
            .default_value("200"),
        Param::new(
            "non-marketplace",
            "The app is distributed outside the Slack Marketplace: history and replies at 1 request per minute, 15 per page.",
        )
        .default_value("false")
        .values(&["true", "false"]),
    ],
    default_config: provider::defaults::<SlackConfig>,
    kind: Kind::Sync {
        build: provider::build_typed::<SlackConnector>,
        verify: provider::verify_typed::<SlackConnector>,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: Some(provider::ApiSchemas {
        config: provider::schema::<SlackConfig>,
        credentials: provider::schema::<SlackCredentials>,
    }),
};

/// `inlet connect slack`: the token and the channels.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let d = SlackConfig::default();
    let config = SlackConfig {
        api_base: f.required("api-base")?.trim_end_matches('/').to_string(),
        channels: f.all("channel"),
        first_sync_hours: f.parse("first-sync-hours")?.unwrap_or(d.first_sync_hours),
        lookback_hours: f.parse("lookback-hours")?.unwrap_or(d.lookback_hours),
        page_size: f.parse("page-size")?.unwrap_or(d.page_size),
        non_marketplace: f.parse("non-marketplace")?.unwrap_or(false),
        ..d
    };
    config.validate()?;
    let creds = SlackCredentials {
        token: f.required("token")?,
        refresh_token: f.get("refresh-token").map(str::to_string),
        client_id: f.get("client-id").map(str::to_string),
        client_secret: f.get("client-secret").map(str::to_string),
        expires_at_ms: None,
    };
    creds.validate()?;
    provider::input(&config, &creds, None)
}

impl provider::Typed for SlackConnector {
    type Config = SlackConfig;
    type Credentials = SlackCredentials;
    const TITLE: &'static str = "Slack";
    fn from_parts(
        config: SlackConfig,
        creds: &SlackCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        SlackConnector::new(config, creds, http)
    }

    /// `auth.test` proves the token and names the account (`team/user`). Without a channel
    /// the conversations the token can see are listed, to pick from with `--channel`; a
    /// chosen channel the token cannot see is refused. A rotating token refreshed while
    /// verifying hands back the new pair (the old refresh token is dead).
    fn check<'a>(&'a self, cfg: &'a mut SlackConfig) -> provider::CheckFuture<'a> {
        let conn = self;
        Box::pin(async move {
            let account = conn.auth_test().await?;
            let visible = conn.all_channels().await?;
            if cfg.channels.is_empty() {
                let list: Vec<String> = visible
                    .iter()
                    .map(|(id, name)| format!("{id} {name}"))
                    .collect();
                return Err(ConnectorError::Config(format!(
                    "pick the channels to sync with --channel ID (repeatable); the token sees: {}",
                    list.join(", ")
                )));
            }
            if let Some(c) = cfg
                .channels
                .iter()
                .find(|c| !visible.iter().any(|(id, _)| id == *c))
            {
                return Err(ConnectorError::Config(format!(
                    "the token cannot see conversation {c}; conversations.list names {} others",
                    visible.len()
                )));
            }
            Ok(Some(account))
        })
    }
}

/// The Slack connector.
pub struct SlackConnector {
    config: SlackConfig,
    client: SlackClient,
    /// The credentials as they are now (a rotation replaces the tokens).
    creds: Arc<Mutex<SlackCredentials>>,
}

/// A page of any list method: its items as received and the next cursor.
#[derive(Debug, Deserialize)]
struct ListPage {
    #[serde(default, alias = "channels", alias = "members")]
    messages: Vec<Box<RawValue>>,
    #[serde(default)]
    response_metadata: Option<Meta>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(default)]
    next_cursor: Option<String>,
}

impl ListPage {
    fn next(&self) -> Option<String> {
        self.response_metadata
            .as_ref()
            .and_then(|m| m.next_cursor.clone())
            .filter(|c| !c.is_empty())
    }
}

fn list_page(body: &[u8]) -> Result<ListPage, String> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected Slack page: {e}"))
}

impl SlackConnector {
    /// A connector for one workspace.
    pub fn new(
        config: SlackConfig,
        creds: &SlackCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        config.validate()?;
        let client = SlackClient::new(&config, creds, http)?;
        Ok(SlackConnector {
            config,
            client,
            creds: Arc::new(Mutex::new(creds.clone())),
        })
    }

    /// `auth.test`: `team/user` of the token.
    pub async fn auth_test(&self) -> Result<String, ConnectorError> {
        #[derive(Deserialize)]
        struct Auth {
            #[serde(default)]
            team: String,
            #[serde(default)]
            user: String,
        }
        let a: Auth = self
            .client
            .call(Tier::Special, "auth.test", &[], |b| {
                serde_json::from_slice(b).map_err(|e| format!("unexpected auth.test: {e}"))
            })
            .await?;
        Ok(format!("{}/{}", a.team, a.user))
    }

    /// Every conversation the token sees, as `(id, #name)`.
    pub async fn all_channels(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        let spec = &streams::STREAMS[0];
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.fetch_page(spec, cursor.as_deref()).await?;
            for r in page.records {
                let name = r.values.first().and_then(Value::as_text).unwrap_or("");
                out.push((r.id.clone(), format!("#{name}")));
            }
            match page.next {
                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => return Ok(out),
            }
        }
    }

    async fn list(
        &self,
        method: &str,
        extra: &[(&str, String)],
        cursor: Option<&str>,
        map: fn(&str) -> Result<Record, String>,
    ) -> Result<Page, ConnectorError> {
        let mut q: Vec<(&str, String)> = extra.to_vec();
        q.push(("limit", self.config.page_size.to_string()));
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        let page = self.client.call(Tier::Two, method, &q, list_page).await?;
        let records = page
            .messages
            .iter()
            .map(|r| map(r.get()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectorError::Parse)?;
        Ok(Page {
            records,
            next: page.next(),
        })
    }

    /// One history page of `channel`. The cursor carries the listing's `oldest` with
    /// Slack's cursor (`<oldest>|<next_cursor>`), so a resumed pass stays in its window.
    async fn history(
        &self,
        channel: &str,
        since: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let (oldest, slack_cursor) = match cursor.and_then(|c| c.split_once('|')) {
            Some((o, c)) => ((!o.is_empty()).then(|| o.to_string()), Some(c.to_string())),
            // The engine's `since`: the channel's own cursor minus the lookback
            // ([`Family::lookback_secs`]), or its first-sync window
            // ([`Family::first_window_secs`]); none on a full run.
            None => (since.map(|t| ts_of_ms(t.0.max(0))), None),
        };
        let mut q = vec![
            ("channel", channel.to_string()),
            ("limit", self.config.history_limit().to_string()),
        ];
        if let Some(o) = &oldest {
            // Inclusive: the engine tombstones what is missing from `posted_at >= since`.
            q.push(("oldest", o.clone()));
            q.push(("inclusive", "true".into()));
        }
        if let Some(c) = &slack_cursor {
            q.push(("cursor", c.clone()));
        }
        let page = self
            .client
            .call(Tier::Three, "conversations.history", &q, list_page)
            .await?;
        let records = page
            .messages
            .iter()
            .map(|r| map_message(r.get(), channel))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectorError::Parse)?;
        let next = page
            .next()
            .map(|n| format!("{}|{n}", oldest.unwrap_or_default()));
        Ok(Page { records, next })
    }
}

/// The rotated tokens into the credentials.
fn apply_snapshot(creds: &mut SlackCredentials, snap: TokenSnapshot) {
    creds.token = snap.access_token;
    creds.expires_at_ms = Some(snap.expires_at_ms);
    if snap.refresh_token.is_some() {
        creds.refresh_token = snap.refresh_token;
    }
}

/// A `ts` string for a time in milliseconds.
fn ts_of_ms(ms: i64) -> String {
    format!("{}.{:03}000", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A `ts` string as a time (milliseconds; the decimal is read as digits, never as a
/// float).
fn time_of_ts(ts: &str) -> Option<Timestamp> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: i64 = secs.parse().ok()?;
    let ms: i64 = format!("{:0<3}", frac.get(..3.min(frac.len()))?)
        .parse()
        .ok()?;
    Some(Timestamp(secs * 1000 + ms))
}

fn time_value(ts: Option<&str>) -> Value {
    ts.and_then(time_of_ts).map_or(Value::Null, Value::Time)
}

/// The fields of a message inlet maps to columns.
#[derive(Debug, Deserialize)]
struct Msg {
    ts: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    reply_count: Option<i64>,
    #[serde(default)]
    latest_reply: Option<String>,
    #[serde(default)]
    edited: Option<Edited>,
    #[serde(default)]
    files: Vec<SlackFile>,
}

/// The fields of a file object inlet keeps in the `files` column.
#[derive(Debug, Deserialize, serde::Serialize)]
struct SlackFile {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    mimetype: Option<String>,
    #[serde(default)]
    filetype: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default, skip_serializing)]
    url_private: Option<String>,
    #[serde(default)]
    url_private_download: Option<String>,
    #[serde(default)]
    permalink: Option<String>,
}

impl SlackFile {
    /// The URL the file's bytes come from (with the token).
    fn download_url(&self) -> Option<&str> {
        self.url_private_download
            .as_deref()
            .or(self.url_private.as_deref())
    }
}

/// The `files` column: the file objects' metadata as a JSON array, or NULL.
fn files_value(files: &[SlackFile]) -> Value {
    if files.is_empty() {
        return Value::Null;
    }
    serde_json::to_string(files).map_or(Value::Null, Value::Text)
}

/// The host Slack serves `url_private*` from.
pub const FILES_HOST: &str = "files.slack.com";

#[derive(Debug, Deserialize)]
struct Edited {
    #[serde(default)]
    ts: Option<String>,
}

fn parse_msg(raw: &str) -> Result<Msg, String> {
    serde_json::from_str(raw).map_err(|e| format!("unexpected Slack message: {e}"))
}

/// A history message as a `slack_messages` row.
fn map_message(raw: &str, channel: &str) -> Result<Record, String> {
    let m = parse_msg(raw)?;
    let posted = time_of_ts(&m.ts).ok_or_else(|| format!("message ts {:?} is not a ts", m.ts))?;
    let values = vec![
        Value::Text(channel.to_string()),
        Value::Text(m.ts.clone()),
        Value::opt_text(m.user.or(m.bot_id)),
        Value::opt_text(m.text),
        Value::opt_text(m.subtype),
        Value::opt_text(m.thread_ts),
        m.reply_count.map_or(Value::Null, Value::Int),
        Value::opt_text(m.latest_reply),
        time_value(m.edited.as_ref().and_then(|e| e.ts.as_deref())),
        Value::Time(posted),
        files_value(&m.files),
    ];
    Ok(Record {
        id: format!("{channel}:{}", m.ts),
        values,
        raw: raw.to_string(),
        sort_ts: Some(posted),
    })
}

/// A thread reply as a `slack_replies` row.
fn map_reply(raw: &str, channel: &str, parent: &str) -> Result<Record, String> {
    let m = parse_msg(raw)?;
    let posted = time_of_ts(&m.ts).ok_or_else(|| format!("reply ts {:?} is not a ts", m.ts))?;
    let values = vec![
        Value::Text(channel.to_string()),
        Value::Text(m.ts.clone()),
        Value::Text(m.thread_ts.unwrap_or_else(|| parent.to_string())),
        Value::Text(format!("{channel}:{parent}")),
        Value::opt_text(m.user.or(m.bot_id)),
        Value::opt_text(m.text),
        Value::opt_text(m.subtype),
        time_value(m.edited.as_ref().and_then(|e| e.ts.as_deref())),
        Value::Time(posted),
        files_value(&m.files),
    ];
    Ok(Record {
        id: format!("{channel}:{}", m.ts),
        values,
        raw: raw.to_string(),
        sort_ts: Some(posted),
    })
}

fn map_channel(raw: &str) -> Result<Record, String> {
    #[derive(Deserialize)]
    struct Text {
        #[serde(default)]
        value: Option<String>,
    }
    #[derive(Deserialize)]
    struct C {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        is_im: bool,
        #[serde(default)]
        is_mpim: bool,
        #[serde(default)]
        is_private: bool,
        #[serde(default)]
        is_archived: bool,
        #[serde(default)]
        is_member: Option<bool>,
        #[serde(default)]
        created: Option<i64>,
        #[serde(default)]
        topic: Option<Text>,
        #[serde(default)]
        purpose: Option<Text>,
        #[serde(default)]
        num_members: Option<i64>,
        #[serde(default)]
        user: Option<String>,
    }
    let c: C =
        serde_json::from_str(raw).map_err(|e| format!("unexpected Slack conversation: {e}"))?;
    let kind = if c.is_im {
        "im"
    } else if c.is_mpim {
        "mpim"
    } else if c.is_private {
        "private_channel"
    } else {
        "public_channel"
    };
    let values = vec![
        Value::opt_text(c.name),
        Value::Text(kind.into()),
        Value::Bool(c.is_private || c.is_im),
        Value::Bool(c.is_archived),
        c.is_member.map_or(Value::Null, Value::Bool),
        c.created
            .map_or(Value::Null, |s| Value::Time(Timestamp::from_secs(s))),
        Value::opt_text(c.topic.and_then(|t| t.value)),
        Value::opt_text(c.purpose.and_then(|t| t.value)),
        c.num_members.map_or(Value::Null, Value::Int),
        Value::opt_text(c.user),
    ];
    Ok(Record::new(c.id, values, raw.to_string()))
}

fn map_user(raw: &str) -> Result<Record, String> {
    #[derive(Deserialize)]
    struct Profile {
        #[serde(default)]
        display_name: Option<String>,
    }
    #[derive(Deserialize)]
    struct U {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        real_name: Option<String>,
        #[serde(default)]
        is_bot: bool,
        #[serde(default)]
        deleted: bool,
        #[serde(default)]
        tz: Option<String>,
        #[serde(default)]
        profile: Option<Profile>,
    }
    let u: U = serde_json::from_str(raw).map_err(|e| format!("unexpected Slack user: {e}"))?;
    let values = vec![
        Value::opt_text(u.name),
        Value::opt_text(u.real_name),
        Value::opt_text(u.profile.and_then(|p| p.display_name)),
        Value::Bool(u.is_bot),
        Value::Bool(u.deleted),
        Value::opt_text(u.tz),
    ];
    Ok(Record::new(u.id, values, raw.to_string()))
}

fn column<'a>(spec: &StreamSpec, rec: &'a Record, name: &str) -> Option<&'a Value> {
    spec.column_index(name).and_then(|i| rec.values.get(i))
}

#[async_trait::async_trait]
impl Connector for SlackConnector {
    fn provider(&self) -> &'static str {
        "slack"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        &streams::STREAMS
    }

    fn families(&self) -> Vec<Family> {
        let c = &self.config;
        vec![Family {
            listings: c.channels.clone(),
            // Deltas pass `since` (the history's `oldest`); only full runs and the first
            // run read the listings whole (and tombstone what is gone).
            newest_first: false,
            full_scan_every: u32::MAX,
            concurrency: if c.non_marketplace { 1 } else { c.concurrency },
            // reply_count/latest_reply are exact: no sampled re-reads of unchanged threads.
            sample_rate: 0.0,
            recheck_one: false,
            lookback_secs: Some(i64::from(c.lookback_hours) * 3600),
            // A delta re-reads the lookback whole: what it no longer lists was deleted.
            window_column: Some("posted_at"),
            // A thread read whole replaces its stored replies: a deleted reply is gone.
            child_parent_column: Some("parent_id"),
            // Each channel keeps its own cursor: a channel that fails (from its first
            // sync on) does not hold the others back, and a channel added later gets its
            // own first sync.
            listing_cursors: true,
            first_window_secs: (c.first_sync_hours > 0)
                .then(|| i64::from(c.first_sync_hours) * 3600),
            ..Family::new("messages", "replies", streams::MARKER)
        }]
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        match stream.name {
            "channels" => {
                let types = [(
                    "types",
                    "public_channel,private_channel,mpim,im".to_string(),
                )];
                self.list("conversations.list", &types, cursor, map_channel)
                    .await
            }
            "users" => self.list("users.list", &[], cursor, map_user).await,
            other => Err(ConnectorError::Unsupported(format!(
                "Slack {other} are read per channel or thread"
            ))),
        }
    }

    async fn fetch_listing(
        &self,
        stream: &StreamSpec,
        listing: &str,
        since: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        if listing.is_empty() {
            return self.fetch_page(stream, cursor).await;
        }
        self.history(listing, since, cursor).await
    }

    /// The replies of a thread parent (its first answer's parent row is left out); a
    /// message without replies costs no request, a thread gone meanwhile has none.
    async fn fetch_children(
        &self,
        parent_stream: &StreamSpec,
        parent: &Record,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let replies = match column(parent_stream, parent, "reply_count") {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        let (Some(Value::Text(channel)), Some(Value::Text(ts))) = (
            column(parent_stream, parent, "channel_id"),
            column(parent_stream, parent, "ts"),
        ) else {
            return Err(ConnectorError::Parse(format!(
                "Slack message {} has no channel or ts",
                parent.id
            )));
        };
        if replies <= 0 {
            return Ok(Page::default());
        }
        let mut q = vec![
            ("channel", channel.clone()),
            ("ts", ts.clone()),
            ("limit", self.config.history_limit().to_string()),
        ];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        let page = match self
            .client
            .call(Tier::Three, "conversations.replies", &q, list_page)
            .await
        {
            Ok(p) => p,
            Err(e) if e.code.as_deref() == Some("thread_not_found") => return Ok(Page::default()),
            Err(e) => return Err(e.into()),
        };
        let mut records = Vec::with_capacity(page.messages.len());
        for raw in &page.messages {
            let r = map_reply(raw.get(), channel, ts).map_err(ConnectorError::Parse)?;
            if r.id != parent.id {
                records.push(r);
            }
        }
        Ok(Page {
            records,
            next: page.next(),
        })
    }

    fn http_stats(&self) -> HttpStats {
        self.client.stats()
    }

    fn set_cancel(&self, flag: Option<Arc<AtomicBool>>) {
        self.client.set_cancel(flag);
    }

    /// The download URLs of a message's or reply's files (`url_private_download`).
    fn attachment_links(&self, stream: &StreamSpec, record: &Record) -> Vec<String> {
        if !matches!(stream.name, "messages" | "replies") {
            return Vec::new();
        }
        match parse_msg(&record.raw) {
            Ok(m) => m
                .files
                .iter()
                .filter_map(|f| f.download_url().map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Slack's files are fetched with the token (an anonymous request gets the sign-in
    /// page, which is recognised and never stored), whatever their type.
    async fn attachment_access(&self, url: &str) -> Option<FetchAs> {
        let host = url.split_once("://")?.1.split(['/', '?', '#']).next()?;
        if !host.eq_ignore_ascii_case(FILES_HOST) {
            return None;
        }
        let bearer = match &self.client.rotation {
            Some(r) => r.token().await.ok(),
            None => Some(
                self.creds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .token
                    .clone(),
            ),
        };
        Some(FetchAs {
            bearer,
            any_content_type: true,
            html_is_login_page: true,
        })
    }

    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        let snap = self.client.rotation.as_ref()?.take_snapshot().await?;
        let mut creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        apply_snapshot(&mut creds, snap);
        serde_json::to_value(&*creds).ok()
    }

    /// A rotation hands the complete new credentials to `sink` before the new token is
    /// used: the old refresh token is already dead.
    fn set_credential_sink(&self, sink: Option<CredentialSink>) {
        let Some(rotation) = &self.client.rotation else {
            return;
        };
        let hook: Option<RenewHook> = sink.map(|sink| {
            let creds = self.creds.clone();
            Arc::new(move |snap: TokenSnapshot| {
                let json = {
                    let mut c = creds.lock().unwrap_or_else(|p| p.into_inner());
                    apply_snapshot(&mut c, snap);
                    serde_json::to_value(&*c).ok()
                };
                let sink = sink.clone();
                Box::pin(async move {
                    if let Some(j) = json {
                        sink(j).await;
                    }
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            }) as RenewHook
        });
        rotation.set_on_renew(hook);
    }
}

#[cfg(test)]
mod tests;
