//! eBay: buyer/seller conversations and their messages through the Commerce Message API,
//! with an OAuth user token refreshed from the long-lived refresh token. See
//! `shared/providers/ebay.md`.
//!
//! Conversations are a parent stream of messages ([`inlet_core::Family`]): the listing
//! (`GET /conversation`, 50 per page) carries each thread's latest message and unread
//! count, so the engine fetches a thread (`GET /conversation/{id}`, paged) only when
//! those moved. Every listing call asks for `sort=-last_modified_date` (newest activity
//! first; eBay answers an unnarrowed listing of a very large account with 5xx otherwise).
//! Delta syncs read that listing unfiltered and stop at the first conversation that is
//! unchanged and older than the last sync ([`EbayDelta::NewestFirst`], the default), so a
//! reply the seller wrote on the website is seen as soon as a buyer's message; the
//! alternative [`EbayDelta::StartTime`] filters with `start_time`, which eBay appears to
//! apply to the buyer's activity only. Every `full_scan_every`-th sync lists all
//! conversations (ceil(T/50) calls) as the safety net and tombstones what is gone.
//! System mail (FROM_EBAY) is read a few pages per sync from a stored offset.
//!
//! getConversation has no time filter and no documented message order, so a changed
//! thread is re-read whole (one call per 50 messages). A refresh of one conversation also
//! looks it up in the listing narrowed to its other party, so the conversation row's
//! latest message and unread count follow the thread.

pub mod client;
pub mod model;
pub mod streams;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use client::{EbayClient, LISTING_SORT, connector_error};
pub use client::{EbayConfig, EbayCredentials, EbayDelta};
use inlet_core::{
    Connector, ConnectorError, EntityPage, Family, HttpStats, Page, ProgressivePages, Record,
    StreamSpec, Timestamp, Value,
};
use inlet_http::{HttpConfig, HttpError, Parsed, Response};
use model::{ConversationDetail, ConversationsPage, MessageDetail, MessagesPage};
use std::collections::HashMap;
use std::sync::Mutex;

/// The documented conversation types.
const DOCUMENTED: &[&str] = &["FROM_MEMBERS", "FROM_EBAY"];

/// eBay as the registry knows it. The Message API sends no rate headers and its call
/// limit is per app and day: it is met as a 429 with errorId 2001 (`quota_spent`), after
/// which the Developer Analytics API names the reset.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "ebay",
    title: "eBay",
    about: "Connect an eBay seller account (OAuth user token: app id, cert id, refresh token).",
    streams: &streams::STREAMS,
    interval_minutes: 15,
    quota: None,
    rate_headers: None,
    image_hosts: &[],
    params: &[
        Param::new("client-id", "The eBay app's client id (App ID).")
            .env("EBAY_CLIENT_ID")
            .required(),
        Param::new("client-secret", "The app's client secret (Cert ID).")
            .env("EBAY_CLIENT_SECRET")
            .secret()
            .required(),
        Param::new(
            "refresh-token",
            "The user's refresh token (authorization-code grant with the commerce.message scope).",
        )
        .env("EBAY_REFRESH_TOKEN")
        .secret()
        .required(),
        Param::new(
            "api-base",
            "Message API base URL (sandbox: https://api.sandbox.ebay.com/commerce/message/v1).",
        )
        .default_value(client::DEFAULT_API_BASE),
        Param::new("token-url", "Token endpoint URL.").default_value(client::DEFAULT_TOKEN_URL),
        Param::new(
            "listing",
            "Conversation listings merged by id (repeatable): FROM_MEMBERS (eBay's documented type for buyer/seller messages) and FROM_OWNERS (undocumented; when eBay refuses it the run says so and goes on). eBay's own mail (FROM_EBAY) is always read, as its own stream.",
        )
        .default_value("FROM_MEMBERS")
        .repeat()
        .values(&["FROM_MEMBERS", "FROM_OWNERS"]),
        Param::new(
            "full-scan-every",
            "Every Nth sync lists all conversations instead of filtering by start_time.",
        )
        .default_value("10"),
    ],
    default_config: provider::defaults::<EbayConfig>,
    kind: Kind::Sync {
        build: provider::build_typed::<EbayConnector>,
        verify: provider::verify_typed::<EbayConnector>,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: Some(provider::ApiSchemas {
        config: provider::schema::<EbayConfig>,
        credentials: provider::schema::<EbayCredentials>,
    }),
};

/// `inlet connect ebay`: the app's id and secret and the user's refresh token.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let defaults = EbayConfig::default();
    let config = EbayConfig {
        api_base: f.required("api-base")?.trim_end_matches('/').to_string(),
        token_url: f.required("token-url")?,
        listings: match f.all("listing") {
            l if l.is_empty() => defaults.listings.clone(),
            l => l,
        },
        full_scan_every: f
            .parse("full-scan-every")?
            .unwrap_or(defaults.full_scan_every),
        ..defaults
    };
    config.validate()?;
    let creds = EbayCredentials {
        client_id: f.required("client-id")?,
        client_secret: f.required("client-secret")?,
        refresh_token: f.required("refresh-token")?,
        ..Default::default()
    };
    provider::input(&config, &creds, None)
}

impl provider::Typed for EbayConnector {
    type Config = EbayConfig;
    type Credentials = EbayCredentials;
    const TITLE: &'static str = "eBay";
    fn from_parts(
        config: EbayConfig,
        creds: &EbayCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        EbayConnector::new(config, creds, http)
    }

    /// One listing call proves the credentials (a refresh token the exchange rotated replaces
    /// the given one).
    fn check<'a>(&'a self, _cfg: &'a mut EbayConfig) -> provider::CheckFuture<'a> {
        let conn = self;
        Box::pin(async move {
            conn.fetch_page(&streams::STREAMS[0], None).await?;
            Ok(None)
        })
    }
}

/// The eBay connector.
pub struct EbayConnector {
    config: EbayConfig,
    creds: Mutex<EbayCredentials>,
    client: EbayClient,
    /// The listing each conversation was first seen in: its thread is read with that
    /// conversation type.
    listed_as: Mutex<HashMap<String, String>>,
    /// What the rate-limit API said after the call limit was first met (asked once).
    quota: tokio::sync::OnceCell<Option<(u64, std::time::Duration)>>,
}

impl EbayConnector {
    /// A connector for one account.
    pub fn new(
        config: EbayConfig,
        creds: &EbayCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        let client = EbayClient::new(&config, creds, http)?;
        Ok(EbayConnector {
            config,
            creds: Mutex::new(creds.clone()),
            client,
            listed_as: Mutex::new(HashMap::new()),
            quota: tokio::sync::OnceCell::new(),
        })
    }

    async fn get<T>(
        &self,
        url: &str,
        query: &[(&str, String)],
        parse: impl Fn(&Response) -> Parsed<T> + Send + Sync,
    ) -> Result<T, HttpError> {
        let market = self.config.marketplace.as_str();
        let res = self
            .client
            .http
            .execute(
                |c| {
                    c.get(url)
                        .query(query)
                        .header("Accept", "application/json")
                        .header("X-EBAY-C-MARKETPLACE-ID", market)
                },
                parse,
            )
            .await;
        match res {
            Err(HttpError::RateLimited { retry_in, reason }) => Err(HttpError::RateLimited {
                retry_in: self.quota_reset().await.unwrap_or(retry_in),
                reason,
            }),
            other => other,
        }
    }

    /// After the call limit was met: when it resets, as eBay's rate-limit API (which
    /// costs no quota) tells, asked once per connector. The budget learns the remaining
    /// count and reset, so nothing more is sent before then. `None` when the API did not
    /// answer or names no Message API limit (the next UTC day is assumed).
    async fn quota_reset(&self) -> Option<std::time::Duration> {
        let known = self
            .quota
            .get_or_init(|| async {
                let url = client::rate_limit_url(&self.config.api_base)?;
                let q = [("api_context", "commerce"), ("api_name", "message")];
                let res = self
                    .client
                    .http
                    .unmetered()
                    .execute(
                        |c| c.get(&url).query(&q).header("Accept", "application/json"),
                        |r| client::parse_rate_limits(r, std::time::SystemTime::now()),
                    )
                    .await;
                match res {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::debug!(error = %e, "eBay's rate-limit API did not answer.");
                        None
                    }
                }
            })
            .await;
        let (remaining, reset_in) = (*known)?;
        self.client.http.report_budget(remaining, reset_in);
        Some(reset_in)
    }

    async fn listing(
        &self,
        ctype: &str,
        since: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let mut q = vec![
            ("conversation_type", ctype.to_string()),
            ("sort", LISTING_SORT.to_string()),
            ("limit", self.config.page_size.to_string()),
            ("offset", cursor.unwrap_or("0").to_string()),
        ];
        if let Some(t) = since {
            q.push(("start_time", t.to_string()));
        }
        self.list(ctype, &q).await
    }

    /// One `GET /conversation` page with query `q` (of conversation type `ctype`).
    async fn list(&self, ctype: &str, q: &[(&str, String)]) -> Result<Page, ConnectorError> {
        let url = format!("{}/conversation", self.config.api_base);
        let page = self
            .get(&url, q, parse_conversations)
            .await
            .map_err(|e| match e {
                // eBay documents only FROM_MEMBERS and FROM_EBAY; others are refused.
                HttpError::Status {
                    status: 400,
                    message,
                } if !DOCUMENTED.contains(&ctype) => ConnectorError::Unsupported(format!(
                    "eBay refused conversation_type {ctype}: HTTP 400: {message}"
                )),
                e => connector_error(e),
            })?;
        let mut seen = self.listed_as.lock().unwrap_or_else(|p| p.into_inner());
        for r in &page.records {
            seen.entry(r.id.clone())
                .or_insert_with(|| ctype.to_string());
        }
        Ok(page)
    }

    /// One page of a conversation's messages.
    async fn thread(
        &self,
        id: &str,
        ctype: &str,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let url = format!(
            "{}/conversation/{}",
            self.config.api_base,
            encode_segment(id)
        );
        let q = vec![
            ("conversation_type", ctype.to_string()),
            ("limit", self.config.page_size.to_string()),
            ("offset", cursor.unwrap_or("0").to_string()),
        ];
        let stored_type = if ctype == "FROM_EBAY" {
            "FROM_EBAY"
        } else {
            "FROM_MEMBERS"
        };
        self.get(&url, &q, |r| parse_messages(r, id, stored_type))
            .await
            .map_err(connector_error)
    }

    /// The listing row of conversation `id` whose thread `messages` was just read, found
    /// in the listing narrowed to one of the thread's two parties
    /// (`other_party_username`, newest activity first): the recipient of the newest
    /// message first (after "I just sent a message" that is the other party), then its
    /// sender. `None` when it is not found within a few pages, or when the row names a
    /// latest message the thread read does not hold (a newer message arrived meanwhile:
    /// the next sync sees the moved marker and reads both).
    async fn listed_conversation(
        &self,
        id: &str,
        ctype: &str,
        messages: &[Record],
    ) -> Result<Option<Record>, ConnectorError> {
        /// Listing pages read per party before giving up.
        const PAGES: usize = 4;
        let party = |m: &Record, name: &str| {
            let i = streams::MESSAGE_COLUMNS
                .iter()
                .position(|c| c.name == name)?;
            match m.values.get(i) {
                Some(Value::Text(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            }
        };
        let newest = messages.iter().max_by_key(|m| (m.sort_ts, m.id.clone()));
        let mut parties: Vec<String> = Vec::new();
        for name in ["recipient", "sender"] {
            if let Some(p) = newest.and_then(|m| party(m, name))
                && !parties.contains(&p)
            {
                parties.push(p);
            }
        }
        for who in parties {
            let mut offset: Option<String> = None;
            for _ in 0..PAGES {
                let q = vec![
                    ("conversation_type", ctype.to_string()),
                    ("other_party_username", who.clone()),
                    ("sort", LISTING_SORT.to_string()),
                    ("limit", self.config.page_size.to_string()),
                    ("offset", offset.clone().unwrap_or_else(|| "0".into())),
                ];
                let page = match self.list(ctype, &q).await {
                    Ok(p) => p,
                    Err(e @ ConnectorError::NeedsReauth(_)) => return Err(e),
                    // The messages are read; the row waits for the next sync.
                    Err(e) => {
                        tracing::warn!(conversation = id, error = %e, "Could not look the conversation up in the listing; its row waits for the next sync.");
                        return Ok(None);
                    }
                };
                if let Some(conv) = page.records.into_iter().find(|r| r.id == id) {
                    let latest = streams::CONVERSATION_COLUMNS
                        .iter()
                        .position(|c| c.name == "latest_message_id")
                        .and_then(|i| conv.values.get(i));
                    let held = match latest {
                        Some(Value::Text(m)) => messages.iter().any(|r| &r.id == m),
                        _ => true,
                    };
                    return Ok(held.then_some(conv));
                }
                match page.next {
                    Some(n) if Some(&n) != offset.as_ref() => offset = Some(n),
                    _ => break,
                }
            }
        }
        Ok(None)
    }

    fn type_of(&self, parent_stream: &str, id: &str) -> String {
        let seen = self.listed_as.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(id) {
            Some(t) => t.clone(),
            None if parent_stream == "system_conversations" => "FROM_EBAY".into(),
            None => "FROM_MEMBERS".into(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for EbayConnector {
    fn provider(&self) -> &'static str {
        "ebay"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        &streams::STREAMS
    }

    fn families(&self) -> Vec<Family> {
        let c = &self.config;
        let members = Family {
            listings: c.listings.clone(),
            newest_first: c.delta == EbayDelta::NewestFirst,
            full_scan_every: c.full_scan_every,
            concurrency: c.concurrency,
            sample_rate: c.sample_rate,
            stubs: Some(streams::STUBS),
            ..Family::new("conversations", "messages", streams::MARKER)
        };
        let system = Family {
            listings: vec!["FROM_EBAY".into()],
            progressive: Some(ProgressivePages {
                normal: c.system_pages,
                full: c.system_pages_full,
            }),
            concurrency: c.concurrency,
            sample_rate: c.sample_rate,
            ..Family::new("system_conversations", "messages", streams::MARKER)
        };
        vec![members, system]
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        match stream.name {
            "conversations" => self.listing("FROM_MEMBERS", None, cursor).await,
            "system_conversations" => self.listing("FROM_EBAY", None, cursor).await,
            other => Err(ConnectorError::Unsupported(format!(
                "eBay {other} are read per conversation"
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
        self.listing(listing, since, cursor).await
    }

    async fn fetch_children(
        &self,
        parent_stream: &StreamSpec,
        parent: &Record,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let ctype = self.type_of(parent_stream.name, &parent.id);
        self.thread(&parent.id, &ctype, cursor).await
    }

    /// `conversation`: every message of one thread. The id may be prefixed with its
    /// conversation type (`FROM_EBAY:c-123`); FROM_MEMBERS otherwise.
    async fn fetch_entity(
        &self,
        entity: &str,
        id: &str,
    ) -> Result<Vec<EntityPage>, ConnectorError> {
        if entity != "conversation" {
            return Err(ConnectorError::Unsupported(format!(
                "eBay can refresh a conversation, not a {entity}"
            )));
        }
        let (ctype, id) = match id.split_once(':') {
            Some((t, rest)) if t.starts_with("FROM_") => (t.to_string(), rest),
            _ => (self.type_of("conversations", id), id),
        };
        if id.is_empty() {
            return Err(ConnectorError::Config("empty conversation id".into()));
        }
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.thread(id, &ctype, cursor.as_deref()).await?;
            records.extend(page.records);
            match page.next {
                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => break,
            }
        }
        let mut out = Vec::with_capacity(2);
        if let Some(conv) = self.listed_conversation(id, &ctype, &records).await? {
            out.push(EntityPage {
                stream: if ctype == "FROM_EBAY" {
                    "system_conversations"
                } else {
                    "conversations"
                },
                records: vec![conv],
            });
        }
        out.push(EntityPage {
            stream: "messages",
            records,
        });
        Ok(out)
    }

    fn http_stats(&self) -> HttpStats {
        self.client.http.stats()
    }

    fn set_cancel(&self, flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>) {
        self.client.http.set_cancel(flag);
    }

    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        let snap = self.client.token.take_snapshot().await?;
        let mut creds = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        creds.access_token = Some(snap.access_token);
        creds.expires_at_ms = Some(snap.expires_at_ms);
        serde_json::to_value(&*creds).ok()
    }
}

/// A conversation id as one URL path segment.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json<'a, T: serde::Deserialize<'a>>(r: &'a Response) -> Parsed<T> {
    match serde_json::from_slice(&r.body) {
        Ok(v) => Parsed::Ok(v),
        Err(e) => Parsed::Retry(format!("invalid JSON from eBay: {e}")),
    }
}

/// The `offset` of a `next` link: the cursor of the next page.
fn next_offset(next: Option<&str>) -> Result<Option<String>, String> {
    let Some(next) = next.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(next).map_err(|e| format!("bad next link {next:?}: {e}"))?;
    url.query_pairs()
        .find(|(k, _)| k == "offset")
        .map(|(_, v)| Some(v.into_owned()))
        .ok_or_else(|| format!("next link {next:?} has no offset"))
}

fn time(s: Option<&str>, what: &str) -> Result<Value, String> {
    match s {
        None => Ok(Value::Null),
        Some(s) => Timestamp::parse_rfc3339(s)
            .map(Value::Time)
            .ok_or_else(|| format!("{what} has an invalid time {s:?}")),
    }
}

/// Parse a `GET /conversation` page.
pub fn parse_conversations(r: &Response) -> Parsed<Page> {
    let page: ConversationsPage = match json(r) {
        Parsed::Ok(p) => p,
        Parsed::Retry(m) => return Parsed::Retry(m),
        Parsed::Fail(e) => return Parsed::Fail(e),
        Parsed::Refresh(m) => return Parsed::Refresh(m),
    };
    let out = (|| {
        let mut records = Vec::with_capacity(page.conversations.len());
        for raw in &page.conversations {
            records.push(map_conversation(raw.get())?);
        }
        Ok::<_, String>(Page {
            records,
            next: next_offset(page.next.as_deref())?,
        })
    })();
    match out {
        Ok(p) => Parsed::Ok(p),
        Err(e) => Parsed::Fail(HttpError::Invalid(e)),
    }
}

fn map_conversation(raw: &str) -> Result<Record, String> {
    let c: ConversationDetail =
        serde_json::from_str(raw).map_err(|e| format!("unexpected eBay conversation: {e}"))?;
    let latest = c.latest_message.as_ref();
    let latest_at = time(
        latest.and_then(|m| m.created_date.as_deref()),
        &c.conversation_id,
    )?;
    let values = vec![
        Value::opt_text(c.conversation_type),
        Value::opt_text(c.conversation_status),
        Value::opt_text(c.conversation_title),
        time(c.created_date.as_deref(), &c.conversation_id)?,
        Value::opt_text(c.reference_id),
        Value::opt_text(c.reference_type),
        c.unread_count.map_or(Value::Null, Value::Int),
        Value::opt_text(latest.map(|m| m.message_id.clone())),
        latest_at.clone(),
        Value::opt_text(latest.and_then(|m| m.sender_username.clone())),
    ];
    let sort_ts = match latest_at {
        Value::Time(t) => Some(t),
        _ => None,
    };
    Ok(Record {
        id: c.conversation_id,
        values,
        raw: raw.to_string(),
        sort_ts,
    })
}

/// Parse a `GET /conversation/{id}` page into message rows of `conversation`.
pub fn parse_messages(r: &Response, conversation: &str, ctype: &str) -> Parsed<Page> {
    let page: MessagesPage = match json(r) {
        Parsed::Ok(p) => p,
        Parsed::Retry(m) => return Parsed::Retry(m),
        Parsed::Fail(e) => return Parsed::Fail(e),
        Parsed::Refresh(m) => return Parsed::Refresh(m),
    };
    let out = (|| {
        let mut records = Vec::with_capacity(page.messages.len());
        for raw in &page.messages {
            records.push(map_message(raw.get(), conversation, ctype)?);
        }
        Ok::<_, String>(Page {
            records,
            next: next_offset(page.next.as_deref())?,
        })
    })();
    match out {
        Ok(p) => Parsed::Ok(p),
        Err(e) => Parsed::Fail(HttpError::Invalid(e)),
    }
}

fn map_message(raw: &str, conversation: &str, ctype: &str) -> Result<Record, String> {
    let m: MessageDetail =
        serde_json::from_str(raw).map_err(|e| format!("unexpected eBay message: {e}"))?;
    let created = time(m.created_date.as_deref(), &m.message_id)?;
    let sort_ts = match created {
        Value::Time(t) => Some(t),
        _ => None,
    };
    let values = vec![
        Value::Text(conversation.to_string()),
        Value::Text(ctype.to_string()),
        Value::opt_text(m.sender_username),
        Value::opt_text(m.recipient_username),
        Value::opt_text(m.subject),
        Value::opt_text(m.message_body),
        created,
        m.read_status.map_or(Value::Null, Value::Bool),
        Value::Int(m.message_media.len() as i64),
    ];
    Ok(Record {
        id: m.message_id,
        values,
        raw: raw.to_string(),
        sort_ts,
    })
}

#[cfg(test)]
mod tests;
