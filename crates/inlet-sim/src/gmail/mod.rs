//! A local simulator of the Gmail API, following `shared/providers/gmail.md`: the OAuth
//! token endpoint (refresh-token grant, form-encoded; `invalid_grant` once revoked),
//! `users.getProfile`, `labels.list`, `threads.list`, `threads.get` (`format` full,
//! metadata, minimal) and `users.history.list`, under `/gmail/v1/users/{me}/`.
//!
//! Its quirks: string `historyId`s and `internalDate`s; base64url bodies, padded for some
//! messages and not for others; multipart nesting (`multipart/mixed` holding a
//! `multipart/alternative` of text/plain and text/html, then attachment parts with an
//! `attachmentId`); the `threads` key omitted from an empty `threads.list`; history ids
//! that grow with gaps; history records with `messages` always present; a thread whose
//! messages are all deleted 404s; Trash and Spam hidden from listings unless
//! `includeSpamTrash=true`; a `startHistoryId` older than the retained history (see
//! [`GmailSim::expire_history`]) answers 404 `notFound`. Errors use Google's envelope.
//!
//! Quota: every method costs its units (`threads.get` 10, `history.list` 2, ...), counted
//! per user in moving windows of one second (250) and one minute (15,000); a request that
//! would exceed them is refused with 429 `rateLimitExceeded` (or 403
//! `userRateLimitExceeded`) and counted as a violation. Faults (5xx, resets, truncated
//! bodies, 429 bursts, latency) come from [`Faults`], seeded.

mod api;
mod data;

pub use crate::reddit::{Faults, LoggedRequest};

use crate::reddit::faults::FaultState;
use crate::server::{self, ServerHandle};
use crate::util::{lock, read, write};
use data::{Format, Model, Shape};
use inlet_core::{Clock, SystemClock};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The API's path prefix.
const API_PREFIX: &str = "/gmail/v1/users";
/// The token endpoint's path.
const TOKEN_PATH: &str = "/token";

/// Configuration of a [`GmailSim`].
#[derive(Debug, Clone)]
pub struct GmailSimConfig {
    /// Seed of the generated mailbox.
    pub seed: u64,
    /// Threads generated.
    pub threads: u64,
    /// Messages per thread at most (at least one).
    pub max_messages: u64,
    /// The generated messages lie in this many seconds before the start.
    pub span_secs: i64,
    /// The OAuth client accepted.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The refresh token accepted.
    pub refresh_token: String,
    /// `expires_in` of issued access tokens.
    pub token_expires_in: u64,
    /// Quota units per user in any second.
    pub units_per_second: u64,
    /// Quota units per user in any minute.
    pub units_per_minute: u64,
    /// Refuse over-quota requests with 403 `userRateLimitExceeded` instead of 429.
    pub limit_as_403: bool,
    /// Time source (message dates).
    pub clock: Arc<dyn Clock>,
}

impl Default for GmailSimConfig {
    fn default() -> Self {
        GmailSimConfig {
            seed: 1,
            threads: 30,
            max_messages: 4,
            span_secs: 30 * 86_400,
            client_id: "sim-client.apps.googleusercontent.com".into(),
            client_secret: "sim-secret".into(),
            refresh_token: "1//sim-refresh-token".into(),
            token_expires_in: 3599,
            units_per_second: 250,
            units_per_minute: 15_000,
            limit_as_403: false,
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    violations: AtomicU64,
    units: AtomicU64,
    tokens: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct State {
    cfg: GmailSimConfig,
    model: RwLock<Model>,
    revoked: AtomicBool,
    /// Issued access tokens → expiry (ms).
    tokens: Mutex<HashMap<String, i64>>,
    /// Units spent: (when, units), the last minute.
    units: Mutex<VecDeque<(Instant, u64)>>,
    per_method: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<FaultState>,
    log: Mutex<Vec<LoggedRequest>>,
    counters: Counters,
}

/// A running Gmail simulator; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct GmailSim {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<State>,
    server: ServerHandle,
}

/// A thread as the truth accessors return it.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthThread {
    /// Thread id.
    pub id: String,
    /// Its history id.
    pub history_id: String,
    /// Its live messages as `threads.get` serves them, oldest first.
    pub messages: Vec<serde_json::Value>,
}

impl GmailSim {
    /// Starts the simulator on `127.0.0.1` (random port).
    pub async fn start(cfg: GmailSimConfig) -> std::io::Result<GmailSim> {
        let model = Model::generate(
            Shape {
                seed: cfg.seed,
                threads: cfg.threads,
                max_messages: cfg.max_messages,
                span_secs: cfg.span_secs,
            },
            cfg.clock.now().0,
        );
        let state = Arc::new(State {
            model: RwLock::new(model),
            revoked: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            units: Mutex::new(VecDeque::new()),
            per_method: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(FaultState::new(cfg.seed)),
            log: Mutex::new(Vec::new()),
            counters: Counters::default(),
            cfg,
        });
        let server = server::serve(state.clone()).await?;
        Ok(GmailSim {
            inner: Arc::new(Inner { state, server }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// Stands in for `https://gmail.googleapis.com/gmail/v1`.
    pub fn api_base(&self) -> String {
        format!("http://{}/gmail/v1", self.inner.server.addr())
    }

    /// Stands in for `https://oauth2.googleapis.com/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.inner.server.addr())
    }

    /// The accepted OAuth client id, secret and refresh token.
    pub fn credentials(&self) -> (String, String, String) {
        let c = &self.state().cfg;
        (
            c.client_id.clone(),
            c.client_secret.clone(),
            c.refresh_token.clone(),
        )
    }

    fn now_ms(&self) -> i64 {
        self.state().cfg.clock.now().0
    }

    // ---- hooks ----------------------------------------------------------------------------

    /// Starts a new thread now with one message carrying `labels`; returns the thread id
    /// (the id of its first message).
    pub fn new_thread(&self, labels: &[&str], subject: &str) -> String {
        let now = self.now_ms();
        let labels = labels.iter().map(|l| l.to_string()).collect();
        write(&self.state().model).add(None, labels, subject, now)
    }

    /// Adds a message now to `thread` (a reply); returns its id.
    pub fn reply(&self, thread: &str, labels: &[&str], subject: &str) -> String {
        let now = self.now_ms();
        let labels = labels.iter().map(|l| l.to_string()).collect();
        write(&self.state().model).add(Some(thread), labels, subject, now)
    }

    /// Adds and removes labels of a message (one history record each); `false` when
    /// there is no such live message.
    pub fn relabel(&self, msg: &str, add: &[&str], remove: &[&str]) -> bool {
        write(&self.state().model).relabel(msg, add, remove)
    }

    /// Deletes a message for good (a `messagesDeleted` record); `false` when there is none.
    pub fn delete_message(&self, msg: &str) -> bool {
        write(&self.state().model).delete(msg)
    }

    /// Deletes every message of a thread; the thread then 404s.
    pub fn delete_thread(&self, thread: &str) -> bool {
        let mut m = write(&self.state().model);
        let ids: Vec<String> = m.thread_msgs(thread).iter().map(|x| x.id.clone()).collect();
        for id in &ids {
            m.delete(id);
        }
        !ids.is_empty()
    }

    /// Forgets all history so far: a `startHistoryId` before now answers 404.
    pub fn expire_history(&self) {
        let mut m = write(&self.state().model);
        m.oldest_valid = m.history_id;
    }

    /// Revokes the refresh token: the token endpoint answers 400 `invalid_grant`, and
    /// access tokens issued before stop working.
    pub fn revoke(&self) {
        self.state().revoked.store(true, Ordering::Relaxed);
        lock(&self.state().tokens).clear();
    }

    /// Ends every issued access token (the next call gets 401 and must refresh).
    pub fn expire_tokens(&self) {
        lock(&self.state().tokens).clear();
    }

    /// The mailbox's current history id.
    pub fn history_id(&self) -> String {
        read(&self.state().model).history_id.to_string()
    }

    // ---- truth ----------------------------------------------------------------------------

    /// Thread ids in `threads.list` order (newest activity first) for one label.
    pub fn listed(&self, label: &str) -> Vec<String> {
        let m = read(&self.state().model);
        let hidden = label == "TRASH" || label == "SPAM";
        m.thread_ids()
            .into_iter()
            .filter(|t| m.thread_listed(t, &[label.to_string()], hidden))
            .collect()
    }

    /// A thread as `threads.get` serves it; `None` when it is gone.
    pub fn thread(&self, id: &str) -> Option<TruthThread> {
        let m = read(&self.state().model);
        let msgs = m.thread_msgs(id);
        if msgs.is_empty() {
            return None;
        }
        Some(TruthThread {
            id: id.to_string(),
            history_id: m.thread_history_id(id).to_string(),
            messages: msgs
                .iter()
                .map(|x| data::message_json(x, Format::Full, &[]))
                .collect(),
        })
    }

    /// Ids of the live messages of a thread, oldest first.
    pub fn message_ids(&self, thread: &str) -> Vec<String> {
        read(&self.state().model)
            .thread_msgs(thread)
            .iter()
            .map(|m| m.id.clone())
            .collect()
    }

    /// Whether a thread is in the scope of `labels`: one of its live messages carries
    /// one of them (outside Trash and Spam unless that label is asked for).
    pub fn in_scope(&self, thread: &str, labels: &[&str]) -> bool {
        let m = read(&self.state().model);
        labels.iter().any(|l| {
            let hidden = *l == "TRASH" || *l == "SPAM";
            m.thread_listed(thread, &[l.to_string()], hidden)
        })
    }

    // ---- log, counters, faults -------------------------------------------------------------

    /// All requests so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state().log).clone()
    }

    /// Requests received.
    pub fn request_count(&self) -> u64 {
        self.state().counters.requests.load(Ordering::Relaxed)
    }

    /// Requests answered per method (`threads.get` → n, `token` for the token endpoint).
    pub fn method_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.state().per_method).clone()
    }

    /// Requests of one method so far.
    pub fn method_count(&self, method: &str) -> u64 {
        lock(&self.state().per_method)
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Quota units spent by accepted requests.
    pub fn units(&self) -> u64 {
        self.state().counters.units.load(Ordering::Relaxed)
    }

    /// Clears the request log and the counters (violations stay).
    pub fn clear_log(&self) {
        lock(&self.state().log).clear();
        lock(&self.state().per_method).clear();
        self.state().counters.requests.store(0, Ordering::Relaxed);
        self.state().counters.units.store(0, Ordering::Relaxed);
    }

    /// Requests refused because they would have exceeded the unit quota (not injected
    /// 429s).
    pub fn rate_limit_violations(&self) -> u64 {
        self.state().counters.violations.load(Ordering::Relaxed)
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state().faults).set(faults);
    }
}
