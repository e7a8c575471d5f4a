//! Gmail: the threads of the labels a user picked and every message in them, through the
//! Gmail API with an OAuth refresh token. See `shared/providers/gmail.md`.
//!
//! Threads are a parent stream of messages ([`inlet_core::Family`], marker: the thread's
//! `historyId`). The first sync takes the mailbox's history id (`users.getProfile`)
//! BEFORE it lists anything, then lists each chosen label's threads (`threads.list`,
//! newest first: the newest `first_sync_threads` per label, default 5; all with
//! `inlet sync --full` or 0) and reads each thread whole (`threads.get`). That history
//! id is kept as the stream's validator; every later sync reads `users.history.list`
//! from it (all pages first, then the touched threads in chunks, so a resumed pass sees
//! the same list), reads the threads it names with `threads.get` and stores the history
//! id of its answer. A thread that 404s, or whose messages no longer carry a chosen
//! label (outside Trash and Spam), is reported gone ([`Connector::take_gone`]) and
//! tombstoned with its messages; a deleted message of a live thread is tombstoned when
//! its thread, read whole, no longer has it. A 404 on the history id (expired) falls back
//! to the first sync's listing from a new history id: threads whose history id moved are
//! read again, nothing is tombstoned by it.
//!
//! Budget: quota units per user (`threads.get` 10, `history.list` 2, `getProfile` and
//! `labels.list` 1), at most `units_per_second` (200, under Google's 250) in any second,
//! shared by every
//! client of the refresh token; 429 and 403 `rateLimitExceeded` wait and retry. A
//! no-change sync is one `history.list`: 2 units. A refused refresh token (400
//! `invalid_grant`) ends the run with `needs_reauth`.

pub mod client;
pub(crate) mod model;
pub mod streams;

use crate::provider::{self, Flags, Input, Kind, Param, ProviderDef};
use client::{GmailClient, connector_error, is_not_found, units};
pub use client::{GmailConfig, GmailCredentials};
use futures_util::stream::{self, StreamExt};
use inlet_core::{
    Connector, ConnectorError, Family, HttpStats, IdPage, Page, Record, StreamSpec, Timestamp,
};
use inlet_http::HttpConfig;
use model::{HistoryPage, LabelList, ThreadFull, ThreadList, hid};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub use model::base64url_decode;

/// Gmail as the registry knows it. The unit budget is kept by the connector's clients.
pub static PROVIDER: ProviderDef = ProviderDef {
    name: "gmail",
    title: "Gmail",
    about: "Connect a Gmail mailbox (OAuth client and refresh token) and pick its labels.",
    streams: &streams::STREAMS,
    interval_minutes: 15,
    quota: None,
    rate_headers: None,
    image_hosts: &[],
    params: &[
        Param::new("client-id", "The OAuth client id.")
            .env("GMAIL_CLIENT_ID")
            .required(),
        Param::new("client-secret", "The OAuth client secret.")
            .env("GMAIL_CLIENT_SECRET")
            .secret()
            .required(),
        Param::new(
            "refresh-token",
            "The user's refresh token (gmail.readonly scope, access_type=offline).",
        )
        .env("GMAIL_REFRESH_TOKEN")
        .secret()
        .required(),
        Param::new(
            "label",
            "A label id whose threads are synced (repeatable: INBOX, SENT, Label_12). Default INBOX.",
        )
        .repeat(),
        Param::new(
            "first-sync-threads",
            "Newest threads per label the first sync reads (0: all; `inlet sync --full` reads all).",
        )
        .default_value("5"),
        Param::new("api-base", "API base URL (up to /gmail/v1).")
            .default_value(client::DEFAULT_API_BASE),
        Param::new("token-url", "OAuth token endpoint.").default_value(client::DEFAULT_TOKEN_URL),
    ],
    default_config: provider::defaults::<GmailConfig>,
    kind: Kind::Sync {
        build: provider::build_typed::<GmailConnector>,
        verify: provider::verify_typed::<GmailConnector>,
        from_flags,
    },
    #[cfg(feature = "openapi")]
    api: Some(provider::ApiSchemas {
        config: provider::schema::<GmailConfig>,
        credentials: provider::schema::<GmailCredentials>,
    }),
};

/// `inlet connect gmail`: the OAuth client, the refresh token and the labels.
fn from_flags(f: &Flags) -> Result<Input, ConnectorError> {
    let d = GmailConfig::default();
    let labels = f.all("label");
    let config = GmailConfig {
        api_base: f.required("api-base")?.trim_end_matches('/').to_string(),
        token_url: f.required("token-url")?,
        labels: if labels.is_empty() {
            d.labels.clone()
        } else {
            labels
        },
        first_sync_threads: f
            .parse("first-sync-threads")?
            .unwrap_or(d.first_sync_threads),
        ..d
    };
    config.validate()?;
    let creds = GmailCredentials {
        client_id: f.required("client-id")?,
        client_secret: f.required("client-secret")?,
        refresh_token: f.required("refresh-token")?,
        access_token: None,
        expires_at_ms: None,
    };
    provider::input(&config, &creds, None)
}

impl provider::Typed for GmailConnector {
    type Config = GmailConfig;
    type Credentials = GmailCredentials;
    const TITLE: &'static str = "Gmail";
    fn from_parts(
        config: GmailConfig,
        creds: &GmailCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        GmailConnector::new(config, creds.clone(), http)
    }

    /// `getProfile` proves the credentials and names the account; every chosen label must
    /// exist (`labels.list`).
    fn check<'a>(&'a self, cfg: &'a mut GmailConfig) -> provider::CheckFuture<'a> {
        Box::pin(async move {
            let (email, _) = self.profile().await?;
            let labels = self.labels().await?;
            let ids: HashSet<&str> = labels.records.iter().map(|r| r.id.as_str()).collect();
            if let Some(l) = cfg.labels.iter().find(|l| !ids.contains(l.as_str())) {
                let mut known: Vec<&str> = ids.into_iter().collect();
                known.sort_unstable();
                return Err(ConnectorError::Config(format!(
                    "the mailbox has no label {l:?}; its labels: {}",
                    known.join(", ")
                )));
            }
            Ok(Some(email))
        })
    }
}

/// The `first_window_secs` the family declares: only whether a first sync's listing gets
/// a `since` matters (the first-sync window is `first_sync_threads` per label).
const FIRST_WINDOW_MARK_SECS: i64 = 86_400;

/// Threads read per page of a history pass.
const HISTORY_CHUNK: usize = 50;
/// `maxResults` of full listings and history pages.
const MAX_RESULTS: u32 = 500;

/// Where the threads listing is (the family pass keeps it as the listing cursor).
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// Listing label `label` from `hid` (taken before the first page): `count` threads
    /// of it read so far, Gmail's page token; `all`: every thread, not the first-sync
    /// window (a resync after the history id expired).
    Full {
        all: bool,
        hid: String,
        label: usize,
        count: u32,
        token: String,
    },
    /// The threads history from `start` up to `end` names, after the first `skip`.
    History {
        start: String,
        end: String,
        skip: usize,
    },
}

impl Cursor {
    fn encode(&self) -> String {
        match self {
            Cursor::Full {
                all,
                hid,
                label,
                count,
                token,
            } => {
                let tag = if *all { "R" } else { "F" };
                format!("{tag}|{hid}|{label}|{count}|{token}")
            }
            Cursor::History { start, end, skip } => format!("H|{start}|{end}|{skip}"),
        }
    }

    fn decode(s: &str) -> Option<Cursor> {
        let parts: Vec<&str> = s.splitn(5, '|').collect();
        match parts.as_slice() {
            [tag @ ("F" | "R"), hid, label, count, token] => Some(Cursor::Full {
                all: *tag == "R",
                hid: hid.to_string(),
                label: label.parse().ok()?,
                count: count.parse().ok()?,
                token: token.to_string(),
            }),
            ["H", start, end, skip] => Some(Cursor::History {
                start: start.to_string(),
                end: end.to_string(),
                skip: skip.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// What one pass learnt, reset by [`Connector::set_validator`].
#[derive(Debug, Default)]
struct PassState {
    /// The history id the pass started from (the stored validator).
    start: Option<String>,
    /// The history id to store when the pass completes.
    end: Option<String>,
    /// A thread could not be read: keep the old history id so it is read again.
    child_failed: bool,
    /// The threads were listed whole in this run (labels are read too).
    listed: bool,
    /// The touched threads of the history range `(start, end)`.
    touched: Option<(String, String, Vec<String>)>,
    /// Messages of threads the history pass read, for `fetch_children`.
    cache: HashMap<String, Vec<Record>>,
    /// Threads reported gone by the last listing page.
    gone: Vec<String>,
}

/// The Gmail connector.
pub struct GmailConnector {
    config: GmailConfig,
    creds: Mutex<GmailCredentials>,
    client: GmailClient,
    pass: Mutex<PassState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(body)
        .map_err(|e| ConnectorError::Parse(format!("unexpected Gmail {what}: {e}")))
}

/// What `threads.get` found.
enum Fetched {
    /// In scope: the thread row and its messages.
    Thread(Record, Vec<Record>),
    /// Deleted, or no message carries a chosen label any more.
    Gone,
}

impl GmailConnector {
    /// A connector for one mailbox.
    pub fn new(
        config: GmailConfig,
        creds: GmailCredentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError> {
        let client = GmailClient::new(&config, &creds, http)?;
        Ok(GmailConnector {
            config,
            creds: Mutex::new(creds),
            client,
            pass: Mutex::new(PassState::default()),
        })
    }

    async fn get(
        &self,
        units: u32,
        path: &str,
        q: &[(&str, String)],
    ) -> Result<Vec<u8>, inlet_http::HttpError> {
        self.client.get(units, path, q).await
    }

    /// `users.getProfile`: the address and the mailbox's current history id.
    pub async fn profile(&self) -> Result<(String, String), ConnectorError> {
        #[derive(Deserialize)]
        struct P {
            #[serde(default, rename = "emailAddress")]
            email: String,
            #[serde(default, rename = "historyId")]
            history_id: Option<String>,
        }
        let body = self
            .get(units::PROFILE, "profile", &[])
            .await
            .map_err(connector_error)?;
        let p: P = parse(&body, "profile")?;
        let h = p
            .history_id
            .filter(|h| hid(h).is_some())
            .ok_or_else(|| ConnectorError::Parse("Gmail profile without a historyId".into()))?;
        Ok((p.email, h))
    }

    /// `labels.list` as a page of `gmail_labels` rows.
    pub async fn labels(&self) -> Result<Page, ConnectorError> {
        let body = self
            .get(units::LABELS_LIST, "labels", &[])
            .await
            .map_err(connector_error)?;
        let l: LabelList = parse(&body, "labels")?;
        let records = l
            .labels
            .iter()
            .map(|r| model::map_label(r.get()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectorError::Parse)?;
        Ok(Page {
            records,
            next: None,
        })
    }

    /// Whether a message with these labels puts its thread in scope.
    fn in_scope(&self, labels: &[String]) -> bool {
        let hidden = labels.iter().any(|l| l == "TRASH" || l == "SPAM");
        self.config
            .labels
            .iter()
            .any(|want| labels.contains(want) && (!hidden || want == "TRASH" || want == "SPAM"))
    }

    /// `threads.get` of one thread: its row and messages, or gone.
    async fn fetch_thread(&self, id: &str) -> Result<Fetched, ConnectorError> {
        let q = [("format", "full".to_string())];
        let body = match self
            .get(units::THREADS_GET, &format!("threads/{id}"), &q)
            .await
        {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(Fetched::Gone),
            Err(e) => return Err(connector_error(e)),
        };
        let t: ThreadFull = parse(&body, "thread")?;
        let mut scope = false;
        let mut msgs = Vec::with_capacity(t.messages.len());
        for m in &t.messages {
            scope |= self.in_scope(&model::message_labels(m.get()));
            msgs.push(model::map_message(m.get(), &t.id).map_err(ConnectorError::Parse)?);
        }
        if !scope || msgs.is_empty() {
            return Ok(Fetched::Gone);
        }
        let row = model::thread_record(&t.id, t.history_id.as_deref(), t.snippet.as_deref());
        Ok(Fetched::Thread(row, msgs))
    }

    /// The first page of a full listing (`all`: without the first-sync window): the
    /// history id first.
    async fn start_full(&self, all: bool) -> Result<Page, ConnectorError> {
        let (_, h) = self.profile().await?;
        self.full_page(Cursor::Full {
            all,
            hid: h,
            label: 0,
            count: 0,
            token: String::new(),
        })
        .await
    }

    /// One `threads.list` page of a full listing.
    async fn full_page(&self, cur: Cursor) -> Result<Page, ConnectorError> {
        let Cursor::Full {
            all,
            hid: h,
            label,
            count,
            token,
        } = cur
        else {
            return Err(ConnectorError::Parse("not a full listing cursor".into()));
        };
        let Some(label_id) = self.config.labels.get(label) else {
            return Ok(self.full_done(h));
        };
        let window = if all {
            0
        } else {
            self.config.first_sync_threads
        };
        let want = if window == 0 {
            MAX_RESULTS
        } else {
            (window - count.min(window)).min(MAX_RESULTS)
        };
        let mut q = vec![
            ("labelIds", label_id.clone()),
            ("maxResults", want.max(1).to_string()),
        ];
        if label_id == "TRASH" || label_id == "SPAM" {
            q.push(("includeSpamTrash", "true".into()));
        }
        if !token.is_empty() {
            q.push(("pageToken", token));
        }
        let body = self
            .get(units::THREADS_LIST, "threads", &q)
            .await
            .map_err(connector_error)?;
        let list: ThreadList = parse(&body, "thread list")?;
        let mut records = Vec::with_capacity(list.threads.len());
        for t in list.threads.iter().take(want as usize) {
            records.push(model::map_thread_head(t.get()).map_err(ConnectorError::Parse)?);
        }
        let count = count + records.len() as u32;
        let more = list.next_page_token.filter(|t| !t.is_empty());
        let next = match more {
            Some(t) if window == 0 || count < window => Cursor::Full {
                all,
                hid: h,
                label,
                count,
                token: t,
            },
            _ if label + 1 < self.config.labels.len() => Cursor::Full {
                all,
                hid: h,
                label: label + 1,
                count: 0,
                token: String::new(),
            },
            _ => {
                let mut done = self.full_done(h);
                done.records = records;
                return Ok(done);
            }
        };
        Ok(Page {
            records,
            next: Some(next.encode()),
        })
    }

    /// The end of a full listing: its history id is what the next sync starts from.
    fn full_done(&self, h: String) -> Page {
        let mut p = lock(&self.pass);
        p.end = Some(h);
        p.listed = true;
        Page::default()
    }

    /// Every thread the history from `start` (up to `end`, when known) names, in order
    /// of first mention, and the history id to store. `None`: the history id expired.
    async fn touched(
        &self,
        start: &str,
        end: Option<&str>,
    ) -> Result<Option<(String, Vec<String>)>, ConnectorError> {
        if let (Some(e), Some((s0, e0, list))) = (end, &lock(&self.pass).touched)
            && s0 == start
            && e0 == e
        {
            return Ok(Some((e.to_string(), list.clone())));
        }
        let limit = end.and_then(hid);
        let mut seen = HashSet::new();
        let mut list = Vec::new();
        let mut token: Option<String> = None;
        let mut last = None;
        for _ in 0..100_000 {
            let mut q = vec![
                ("startHistoryId", start.to_string()),
                ("maxResults", MAX_RESULTS.to_string()),
            ];
            for t in [
                "messageAdded",
                "messageDeleted",
                "labelAdded",
                "labelRemoved",
            ] {
                q.push(("historyTypes", t.to_string()));
            }
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let body = match self.get(units::HISTORY_LIST, "history", &q).await {
                Ok(b) => b,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(connector_error(e)),
            };
            let page: HistoryPage = parse(&body, "history")?;
            for r in &page.history {
                if let (Some(l), Some(id)) = (limit, r.id.as_deref().and_then(hid))
                    && id > l
                {
                    continue;
                }
                for t in r.threads() {
                    if seen.insert(t.to_string()) {
                        list.push(t.to_string());
                    }
                }
            }
            last = page.history_id.or(last);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        let end = match end {
            Some(e) => e.to_string(),
            None => last.filter(|h| hid(h).is_some()).ok_or_else(|| {
                ConnectorError::Parse("Gmail history answer without a historyId".into())
            })?,
        };
        lock(&self.pass).touched = Some((start.to_string(), end.clone(), list.clone()));
        Ok(Some((end, list)))
    }

    /// One page of a history pass: the next chunk of touched threads, read whole.
    async fn history_page(
        &self,
        start: String,
        end: Option<String>,
        skip: usize,
    ) -> Result<Page, ConnectorError> {
        let Some((end, list)) = self.touched(&start, end.as_deref()).await? else {
            tracing::info!(
                start_history_id = %start,
                "Gmail history id expired (404): listing every thread of the chosen labels again."
            );
            return self.start_full(true).await;
        };
        let chunk: Vec<String> = list
            .iter()
            .skip(skip)
            .take(HISTORY_CHUNK)
            .cloned()
            .collect();
        let results: Vec<(String, Result<Fetched, ConnectorError>)> = stream::iter(chunk)
            .map(|id| async move {
                let r = self.fetch_thread(&id).await;
                (id, r)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut records = Vec::new();
        let mut p = lock(&self.pass);
        for (id, r) in results {
            match r? {
                Fetched::Thread(row, msgs) => {
                    p.cache.insert(id, msgs);
                    records.push(row);
                }
                Fetched::Gone => p.gone.push(id),
            }
        }
        let next_skip = skip + HISTORY_CHUNK;
        let next = if next_skip < list.len() {
            Some(
                Cursor::History {
                    start,
                    end,
                    skip: next_skip,
                }
                .encode(),
            )
        } else {
            p.end = Some(end);
            None
        };
        Ok(Page { records, next })
    }
}

#[async_trait::async_trait]
impl Connector for GmailConnector {
    fn provider(&self) -> &'static str {
        "gmail"
    }

    fn streams(&self) -> &'static [StreamSpec] {
        &streams::STREAMS
    }

    fn families(&self) -> Vec<Family> {
        vec![Family {
            listings: vec![String::new()],
            newest_first: false,
            full_scan_every: u32::MAX,
            concurrency: self.config.concurrency,
            // The history id is exact: no sampled re-reads.
            sample_rate: 0.0,
            recheck_one: false,
            // A thread read whole replaces its stored messages: a deleted one is gone.
            child_parent_column: Some("thread_id"),
            // A first sync gets `since` (the window here is a thread count, so any
            // value); `--full` gets none and reads every thread.
            listing_cursors: true,
            first_window_secs: Some(FIRST_WINDOW_MARK_SECS),
            ..Family::new("threads", "messages", streams::MARKER)
        }]
    }

    async fn fetch_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let _ = cursor;
        match stream.name {
            // Labels change rarely: read with full listings and reconcile runs only, so a
            // no-change delta costs one history.list.
            "labels" => {
                if lock(&self.pass).listed {
                    self.labels().await
                } else {
                    Ok(Page::default())
                }
            }
            other => Err(ConnectorError::Unsupported(format!(
                "Gmail {other} are read through the threads listing"
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
        let _ = listing;
        if stream.name != "threads" {
            return self.fetch_page(stream, cursor).await;
        }
        {
            let mut p = lock(&self.pass);
            p.cache.clear();
            p.gone.clear();
        }
        match cursor.map(Cursor::decode) {
            Some(Some(c @ Cursor::Full { .. })) => self.full_page(c).await,
            Some(Some(Cursor::History { start, end, skip })) => {
                self.history_page(start, Some(end), skip).await
            }
            Some(None) => Err(ConnectorError::Parse(format!(
                "unreadable Gmail listing cursor {cursor:?}"
            ))),
            None => {
                let start = lock(&self.pass).start.clone();
                match start {
                    Some(s) => self.history_page(s, None, 0).await,
                    // The engine passes the first-sync window as `since` (any time: the
                    // window here is a thread count); `inlet sync --full` passes none.
                    None => self.start_full(since.is_none()).await,
                }
            }
        }
    }

    fn take_gone(&self, stream: &StreamSpec) -> Vec<String> {
        if stream.name != "threads" {
            return Vec::new();
        }
        std::mem::take(&mut lock(&self.pass).gone)
    }

    async fn fetch_children(
        &self,
        parent_stream: &StreamSpec,
        parent: &Record,
        cursor: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let _ = (parent_stream, cursor);
        if let Some(msgs) = lock(&self.pass).cache.remove(&parent.id) {
            return Ok(Page {
                records: msgs,
                next: None,
            });
        }
        match self.fetch_thread(&parent.id).await {
            Ok(Fetched::Thread(_, msgs)) => Ok(Page {
                records: msgs,
                next: None,
            }),
            // Gone since it was listed: no messages (the next history pass reports it).
            Ok(Fetched::Gone) => Ok(Page::default()),
            Err(e) => {
                if matches!(e, ConnectorError::Provider(_)) {
                    lock(&self.pass).child_failed = true;
                }
                Err(e)
            }
        }
    }

    fn reconciles(&self, stream: &StreamSpec) -> bool {
        stream.name == "labels"
    }

    async fn fetch_id_page(
        &self,
        stream: &StreamSpec,
        cursor: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let _ = cursor;
        if stream.name == "labels" {
            return Ok(IdPage::full(self.labels().await?));
        }
        Ok(IdPage::full(self.fetch_page(stream, cursor).await?))
    }

    fn validator(&self, stream: &StreamSpec) -> Option<String> {
        if stream.name != "threads" {
            return None;
        }
        let p = lock(&self.pass);
        if p.child_failed {
            return p.start.clone();
        }
        p.end.clone().or_else(|| p.start.clone())
    }

    fn set_validator(&self, stream: &StreamSpec, validator: Option<&str>) {
        if stream.name != "threads" {
            return;
        }
        *lock(&self.pass) = PassState {
            start: validator.filter(|v| hid(v).is_some()).map(str::to_string),
            ..PassState::default()
        };
    }

    fn http_stats(&self) -> HttpStats {
        self.client.stats()
    }

    fn set_cancel(&self, flag: Option<Arc<AtomicBool>>) {
        self.client.set_cancel(flag);
    }

    async fn take_updated_credentials(&self) -> Option<serde_json::Value> {
        let snap = self.client.token.take_snapshot().await?;
        let mut creds = lock(&self.creds);
        creds.access_token = Some(snap.access_token);
        creds.expires_at_ms = Some(snap.expires_at_ms);
        // Google keeps the refresh token on refresh; a new one, if sent, replaces it.
        if let Some(rt) = snap.refresh_token {
            creds.refresh_token = rt;
        }
        serde_json::to_value(&*creds).ok()
    }
}

#[cfg(test)]
mod tests;
