//! A local simulator of Reddit's OAuth API: private messages (`/message/inbox`,
//! `/message/sent`), saved items (`/user/{name}/saved`), `/api/v1/me` and the token endpoint,
//! following `shared/providers/reddit.md` and the recorded fixtures.
//!
//! Data is procedural: message `i` is computed from `(seed, i)` on demand, so a simulator with a
//! million messages costs O(1) memory; only changes made through the hooks are stored.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inlet_sim::reddit::{RedditSim, RedditSimConfig};
//! let sim = RedditSim::start(RedditSimConfig { messages: 50, ..Default::default() }).await?;
//! let base = sim.api_base(); // stands in for https://oauth.reddit.com
//! let token_url = sim.token_url(); // stands in for https://www.reddit.com/api/v1/access_token
//! # let _ = (base, token_url);
//! # Ok(()) }
//! ```

mod api;
mod data;
pub(crate) mod faults;
mod listing;
mod render;
mod text;

pub use faults::Faults;

use crate::server::{self, ServerHandle};
use crate::util::{lock, read, write};
use data::{Added, Item, Listing, Model, Shape};
use inlet_core::{Clock, SystemClock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A fixed-window request budget per OAuth client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub budget: u64,
    /// Window length in seconds (windows are aligned to multiples of this on the clock).
    pub window_secs: u64,
}

/// Configuration of a [`RedditSim`].
#[derive(Debug, Clone)]
pub struct RedditSimConfig {
    /// Seed of all generated data, tokens and fault decisions.
    pub seed: u64,
    /// Number of base private messages (inbox and sent together).
    pub messages: u64,
    /// Number of comment replies / mentions (t1) in the inbox.
    pub comment_replies: u64,
    /// Number of initially saved items (alternating t3 post, t1 comment).
    pub saved: u64,
    /// The authenticated user's name.
    pub username: String,
    /// OAuth client id (HTTP Basic user on the token endpoint).
    pub client_id: String,
    /// OAuth client secret (HTTP Basic password; empty for installed apps).
    pub client_secret: String,
    /// The refresh token the `refresh_token` grant accepts.
    pub refresh_token: String,
    /// `(username, password)` accepted by the `password` grant (script apps); `None` disables it.
    pub password_user: Option<(String, String)>,
    /// `expires_in` of issued access tokens, in seconds.
    pub token_expires_in: u64,
    /// Request budget; `None` disables enforcement (headers still report usage).
    pub rate_limit: Option<RateLimit>,
    /// Send `X-Ratelimit-*` headers (Reddit always does; off to test documented budgets).
    pub rate_headers: bool,
    /// Only the newest `cap` items of a listing are reachable; `None` = unlimited.
    pub listing_cap: Option<u64>,
    /// Time source for token expiry, rate-limit windows and added items.
    pub clock: Arc<dyn Clock>,
    /// `created_utc` of message 0 in seconds; by default
    /// `now - (messages + comment_replies + 10) * 60 - 86400`, so everything is in the past.
    pub base_time_secs: Option<i64>,
}

impl Default for RedditSimConfig {
    fn default() -> Self {
        RedditSimConfig {
            seed: 1,
            messages: 200,
            comment_replies: 20,
            saved: 40,
            username: "sim_user".into(),
            client_id: "sim_client_id".into(),
            client_secret: "sim_client_secret".into(),
            refresh_token: "sim_refresh_token".into(),
            password_user: None,
            token_expires_in: 86400,
            rate_limit: Some(RateLimit {
                budget: 1000,
                window_secs: 600,
            }),
            rate_headers: true,
            listing_cap: Some(1000),
            clock: Arc::new(SystemClock),
            base_time_secs: None,
        }
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Status answered; `0` when the connection was reset without an answer.
    pub status: u16,
    /// Clock time of the request, in milliseconds.
    pub at_ms: i64,
}

/// Counters kept by the simulator.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    violations: AtomicU64,
    ua_rejections: AtomicU64,
}

/// Shared state behind the HTTP handler and the [`RedditSim`] handle.
#[derive(Debug)]
pub(crate) struct State {
    cfg: RedditSimConfig,
    model: RwLock<Model>,
    auth: Mutex<api::AuthState>,
    windows: Mutex<api::Windows>,
    faults: Mutex<faults::FaultState>,
    log: Mutex<Vec<LoggedRequest>>,
    counters: Counters,
}

/// A running Reddit simulator. Cheap to clone; the server stops when the last clone is
/// dropped or on [`RedditSim::shutdown`].
#[derive(Debug, Clone)]
pub struct RedditSim {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<State>,
    server: ServerHandle,
}

impl RedditSim {
    /// Starts the simulator on `127.0.0.1` (random port) on the current tokio runtime.
    pub async fn start(cfg: RedditSimConfig) -> std::io::Result<RedditSim> {
        let now_secs = cfg.clock.now().0.div_euclid(1000);
        // (messages + comment_replies + 10) minutes before a day ago; stretched only when the
        // comment replies (one per 20 minutes) would otherwise reach into the future.
        let spread = ((cfg.messages + cfg.comment_replies + 10) as i64 * 60)
            .max(cfg.comment_replies as i64 * 1200 + 600);
        let base_time = cfg.base_time_secs.unwrap_or(now_secs - spread - 86400);
        let model = Model::new(Shape {
            seed: cfg.seed,
            username: cfg.username.clone(),
            messages: cfg.messages,
            replies: cfg.comment_replies,
            saved: cfg.saved,
            base_time,
        });
        let state = Arc::new(State {
            auth: Mutex::new(api::AuthState::new(cfg.seed)),
            windows: Mutex::new(api::Windows::default()),
            faults: Mutex::new(faults::FaultState::new(cfg.seed)),
            log: Mutex::new(Vec::new()),
            counters: Counters::default(),
            model: RwLock::new(model),
            cfg,
        });
        let server = server::serve(state.clone()).await?;
        Ok(RedditSim {
            inner: Arc::new(Inner { state, server }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// Base URL of the API, e.g. `http://127.0.0.1:PORT` (stands in for `https://oauth.reddit.com`).
    pub fn api_base(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// The token endpoint URL (stands in for `https://www.reddit.com/api/v1/access_token`).
    pub fn token_url(&self) -> String {
        format!("{}/api/v1/access_token", self.api_base())
    }

    /// `created_utc` (seconds) of base message 0.
    pub fn base_time_secs(&self) -> i64 {
        read(&self.state().model).base_time
    }

    // ---- hooks ----------------------------------------------------------------------------

    /// Adds a private message created now. `conversation` is the fullname of any message of an
    /// existing conversation (the reply attaches to its root); `None` starts a new conversation.
    /// `from_me` puts it in the sent listing, otherwise in the inbox (unread). Returns its fullname.
    ///
    /// # Panics
    /// If `conversation` does not name an existing private message.
    pub fn add_message(&self, conversation: Option<&str>, from_me: bool, body: &str) -> String {
        let created = self.state().cfg.clock.now().0.div_euclid(1000);
        let mut m = write(&self.state().model);
        let (root, partner_name, subject) = match conversation {
            Some(name) => match m.parse_message(name) {
                Some(Item::Msg(i)) => {
                    let root = m.root_of(i);
                    let (p, s) = conversation_facts(&m, root);
                    (root, p, s)
                }
                _ => panic!("add_message: no private message named {name:?}"),
            },
            None => (u64::MAX, String::new(), String::new()),
        };
        let new_conv = root == u64::MAX;
        let idx = m.add_message(Added {
            root,
            from_me,
            to_me: false,
            created,
            body: body.to_string(),
            partner: partner_name,
            subject,
            new: !from_me,
        });
        if new_conv {
            let (p, s) = (render::partner(idx), render::root_subject(m.seed, idx));
            m.set_added_conversation(idx, p, s);
        }
        m.fullname(Item::Msg(idx))
    }

    /// Adds a private message the user sent to themselves, created now, starting a new
    /// conversation. Like on Reddit it is listed twice, with the same fullname and the same
    /// data: in the sent listing (the user wrote it) and in the inbox (the user received
    /// it, unread). Returns its fullname.
    pub fn add_message_to_self(&self, body: &str) -> String {
        let created = self.state().cfg.clock.now().0.div_euclid(1000);
        let mut m = write(&self.state().model);
        let idx = m.add_message(Added {
            root: u64::MAX,
            from_me: true,
            to_me: true,
            created,
            body: body.to_string(),
            partner: String::new(),
            subject: String::new(),
            new: true,
        });
        let (me, subject) = (m.username.clone(), render::root_subject(m.seed, idx));
        m.set_added_conversation(idx, me, subject);
        m.fullname(Item::Msg(idx))
    }

    /// Edits a private message or inbox comment reply: new body and/or unread flag (`new`; always
    /// false for sent messages). Returns false if it does not exist or was deleted.
    pub fn edit_message(&self, fullname: &str, body: Option<&str>, unread: Option<bool>) -> bool {
        let mut m = write(&self.state().model);
        match m.parse_message(fullname) {
            Some(item) => m.edit_item(item, body, unread),
            None => false,
        }
    }

    /// Deletes a message (or comment reply) from the user's listings. False if unknown or
    /// already deleted.
    pub fn delete_message(&self, fullname: &str) -> bool {
        let mut m = write(&self.state().model);
        match m.parse_message(fullname) {
            Some(item) => m.delete_item(item),
            None => false,
        }
    }

    /// Saves a new item (alternating t3/t1 like the base items) at the top; returns its fullname.
    pub fn save_new(&self) -> String {
        let mut m = write(&self.state().model);
        let k = m.save_new();
        m.fullname(Item::Saved(k))
    }

    /// Saves (or re-saves, moving it to the top) a known saved-item fullname.
    pub fn save(&self, fullname: &str) -> bool {
        self.with_saved(fullname, |m, k| m.save(k))
    }

    /// Unsaves an item; false if it was not saved.
    pub fn unsave(&self, fullname: &str) -> bool {
        self.with_saved(fullname, |m, k| m.unsave(k))
    }

    /// Changes the score (`score` and `ups`) of a saved item.
    pub fn edit_saved(&self, fullname: &str, score: i64) -> bool {
        self.with_saved(fullname, |m, k| m.set_score(k, score))
    }

    fn with_saved(&self, fullname: &str, f: impl FnOnce(&mut Model, u64) -> bool) -> bool {
        let mut m = write(&self.state().model);
        match m.parse_saved(fullname) {
            Some(Item::Saved(k)) => f(&mut m, k),
            _ => false,
        }
    }

    // ---- truth ----------------------------------------------------------------------------

    /// Every inbox item's `data` object, newest first, as served with `raw_json=1` (no cap).
    pub fn truth_inbox(&self) -> Vec<serde_json::Value> {
        self.truth(Listing::Inbox)
    }

    /// Every sent message's `data` object, newest first (no cap).
    pub fn truth_sent(&self) -> Vec<serde_json::Value> {
        self.truth(Listing::Sent)
    }

    /// Every saved item's `data` object, most recently saved first (no cap).
    pub fn truth_saved(&self) -> Vec<serde_json::Value> {
        self.truth(Listing::Saved)
    }

    fn truth(&self, l: Listing) -> Vec<serde_json::Value> {
        let m = read(&self.state().model);
        let mut scratch = render::Scratch::default();
        let mut out = Vec::new();
        listing::all(&m, l)
            .into_iter()
            .filter_map(|item| {
                out.clear();
                let mut w = crate::json::JsonWriter::new(&mut out, false);
                render::write_child(&m, item, &mut w, &mut scratch);
                let mut v: serde_json::Value = serde_json::from_slice(&out).ok()?;
                Some(v["data"].take())
            })
            .collect()
    }

    // ---- log, counters, faults -------------------------------------------------------------

    /// All requests so far (including faulted ones), oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state().log).clone()
    }

    /// Number of requests received (including faulted ones).
    pub fn request_count(&self) -> u64 {
        self.state().counters.requests.load(Ordering::Relaxed)
    }

    /// Clears the request log and the request counter.
    pub fn clear_log(&self) {
        lock(&self.state().log).clear();
        self.state().counters.requests.store(0, Ordering::Relaxed);
    }

    /// Requests answered 429 because the client exceeded its rate-limit budget.
    pub fn rate_limit_violations(&self) -> u64 {
        self.state().counters.violations.load(Ordering::Relaxed)
    }

    /// Requests answered 429 because the `User-Agent` was missing or empty.
    pub fn user_agent_rejections(&self) -> u64 {
        self.state().counters.ua_rejections.load(Ordering::Relaxed)
    }

    /// Replaces the active faults (and restarts their seeded RNG).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state().faults).set(faults);
    }

    /// Makes every issued access token expired (next API call answers 401).
    pub fn expire_tokens(&self) {
        lock(&self.state().auth).expire_all();
    }

    /// Revokes the refresh token: refresh grants answer `{"error": "invalid_grant"}`. Access
    /// tokens already issued stay valid until they expire.
    pub fn revoke_refresh_token(&self) {
        lock(&self.state().auth).revoked = true;
    }

    /// The most API requests the simulator was answering at once.
    pub fn max_concurrent_requests(&self) -> u64 {
        self.inner.server.concurrency().max()
    }

    /// Stops the server (open connections are closed).
    pub fn shutdown(&self) {
        self.inner.server.shutdown();
    }
}

/// (partner, subject) of the conversation rooted at `root`.
fn conversation_facts(m: &Model, root: u64) -> (String, String) {
    match m.added(root) {
        Some(a) => (a.partner.clone(), a.subject.clone()),
        None => (render::partner(root), render::root_subject(m.seed, root)),
    }
}
