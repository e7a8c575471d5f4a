//! A local simulator of eBay's Commerce Message API (`commerce/message/v1`) and its OAuth
//! token endpoint, following `shared/providers/ebay.md`: `GET /conversation` (FROM_MEMBERS
//! and FROM_EBAY, `limit` ≤ 50, `offset`, `start_time`/`end_time`, absolute `next` links),
//! `GET /conversation/{id}` (paged messages, `conversation_type` must match), eBay REST
//! error bodies, user tokens refreshed with `grant_type=refresh_token` (no new refresh
//! token), a call quota answered with 429 and errorId 2001, no rate headers (counted as
//! violations), the Developer Analytics API's `user_rate_limit` for it (no quota), and
//! faults.
//!
//! The `start_time` quirk is on by default: a time filter only matches threads where the
//! other party (the buyer) wrote in the window — the account's own replies do not count.
//!
//! The listing also takes `sort=-last_modified_date` (newest activity first; undocumented
//! but passed by integrations; `last_modified_date` for oldest first), and the documented
//! narrowing filters `other_party_username` and `reference_id` + `reference_type`; other
//! parameters (such as `filter=`) are silently ignored. The large-account quirk of §6:
//! when a conversation type holds more than [`EbaySimConfig::unnarrowed_5xx_above`]
//! conversations, a listing narrowed by none of `sort`, `other_party_username`,
//! `reference_id`, `start_time`/`end_time` answers 500 ("exceeded retries limit").
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inlet_sim::ebay::{EbaySim, EbaySimConfig};
//! let sim = EbaySim::start(EbaySimConfig { conversations: 100, ..Default::default() }).await?;
//! let (api, token) = (sim.api_base(), sim.token_url());
//! # let _ = (api, token);
//! # Ok(()) }
//! ```

mod api;
mod data;

pub use crate::reddit::{Faults, LoggedRequest};

use crate::reddit::faults::FaultState;
use crate::server::{self, ServerHandle};
use crate::util::{lock, read, write};
use data::Model;
use inlet_core::{Clock, SystemClock};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

const TOKEN_PATH: &str = "/identity/v1/oauth2/token";
const API_PREFIX: &str = "/commerce/message/v1";
/// The Developer Analytics API's getUserRateLimits (costs no quota).
const ANALYTICS_PATH: &str = "/developer/analytics/v1_beta/user_rate_limit/";

/// A call quota: `calls` per fixed window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimit {
    /// Calls allowed per window.
    pub calls: u64,
    /// Window length in seconds (eBay quotas are daily).
    pub window_secs: u64,
}

/// Configuration of an [`EbaySim`].
#[derive(Debug, Clone)]
pub struct EbaySimConfig {
    /// Seed of all generated data and fault decisions.
    pub seed: u64,
    /// FROM_MEMBERS conversations.
    pub conversations: u64,
    /// How many of them hold 51..=120 messages (more than one page).
    pub long_threads: u64,
    /// FROM_EBAY (system) conversations.
    pub system_conversations: u64,
    /// The account's (seller's) username.
    pub username: String,
    /// OAuth client id (HTTP Basic user on the token endpoint).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// The refresh token the token endpoint accepts.
    pub refresh_token: String,
    /// `expires_in` of access tokens (eBay: 7200).
    pub token_expires_in: u64,
    /// The call quota; `None` = unlimited.
    pub call_limit: Option<CallLimit>,
    /// Accounts with more conversations of a type than this answer an unnarrowed listing
    /// of that type with 500 (eBay.md §6: seen at ~10^5); `None` = never.
    pub unnarrowed_5xx_above: Option<u64>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

impl Default for EbaySimConfig {
    fn default() -> Self {
        EbaySimConfig {
            seed: 1,
            conversations: 200,
            long_threads: 3,
            system_conversations: 30,
            username: "seller_sim".into(),
            client_id: "sim-ebay-app-PRD".into(),
            client_secret: "PRD-sim-secret".into(),
            refresh_token: "v^1.1#i^1#f^0#r^1#sim-refresh".into(),
            token_expires_in: 7200,
            call_limit: Some(CallLimit {
                calls: 5000,
                window_secs: 86_400,
            }),
            unnarrowed_5xx_above: Some(100_000),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    violations: AtomicU64,
    rate_limit_calls: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct State {
    cfg: EbaySimConfig,
    model: RwLock<Model>,
    auth: Mutex<api::AuthState>,
    window: Mutex<(i64, u64)>,
    faults: Mutex<FaultState>,
    failing: Mutex<HashSet<String>>,
    start_time_quirk: AtomicBool,
    owner_listing: AtomicBool,
    rate_limit_api: AtomicBool,
    log: Mutex<Vec<LoggedRequest>>,
    counters: Counters,
}

/// A running eBay simulator; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct EbaySim {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<State>,
    server: ServerHandle,
}

/// One message as the truth accessors return it: its conversation and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthMessage {
    /// Conversation id.
    pub conversation_id: String,
    /// `FROM_MEMBERS` or `FROM_EBAY`.
    pub conversation_type: String,
    /// MessageDetail JSON as served.
    pub json: serde_json::Value,
}

impl EbaySim {
    /// Starts the simulator on `127.0.0.1` (random port).
    pub async fn start(cfg: EbaySimConfig) -> std::io::Result<EbaySim> {
        let model = Model::generate(
            cfg.seed,
            &cfg.username,
            cfg.conversations,
            cfg.long_threads,
            cfg.system_conversations,
            cfg.clock.now().0,
        );
        let state = Arc::new(State {
            auth: Mutex::new(api::AuthState::new(cfg.seed)),
            window: Mutex::new((0, 0)),
            faults: Mutex::new(FaultState::new(cfg.seed)),
            failing: Mutex::new(HashSet::new()),
            start_time_quirk: AtomicBool::new(true),
            owner_listing: AtomicBool::new(false),
            rate_limit_api: AtomicBool::new(true),
            log: Mutex::new(Vec::new()),
            counters: Counters::default(),
            model: RwLock::new(model),
            cfg,
        });
        let server = server::serve(state.clone()).await?;
        Ok(EbaySim {
            inner: Arc::new(Inner { state, server }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// Stands in for `https://api.ebay.com/commerce/message/v1`.
    pub fn api_base(&self) -> String {
        format!("http://{}{API_PREFIX}", self.inner.server.addr())
    }

    /// Stands in for `https://api.ebay.com/identity/v1/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.inner.server.addr())
    }

    // ---- hooks ----------------------------------------------------------------------------

    fn with_conv<T>(&self, id: &str, f: impl FnOnce(&mut Model, usize) -> T) -> T {
        let mut m = write(&self.state().model);
        let i = m
            .find(id)
            .unwrap_or_else(|| panic!("no eBay conversation {id:?}"));
        f(&mut m, i)
    }

    fn now_ms(&self) -> i64 {
        self.state().cfg.clock.now().0
    }

    /// The buyer writes in a conversation (unread by the seller); returns the message id.
    ///
    /// # Panics
    /// If the conversation does not exist.
    pub fn buyer_message(&self, conversation: &str, body: &str) -> String {
        let at = self.now_ms();
        self.with_conv(conversation, |m, i| {
            let mut c = m.convs[i].clone();
            let id = m.push_msg(&mut c, true, at, body.to_string(), false, 0);
            m.convs[i] = c;
            id
        })
    }

    /// The seller (the account) replies; returns the message id. Under the `start_time`
    /// quirk this does not make the thread match a time filter.
    ///
    /// # Panics
    /// If the conversation does not exist.
    pub fn seller_reply(&self, conversation: &str, body: &str) -> String {
        let at = self.now_ms();
        self.with_conv(conversation, |m, i| {
            let mut c = m.convs[i].clone();
            let id = m.push_msg(&mut c, false, at, body.to_string(), false, 0);
            m.convs[i] = c;
            id
        })
    }

    /// A buyer starts a new conversation; returns its id.
    pub fn new_conversation(&self, buyer: &str, title: &str, body: &str) -> String {
        let at = self.now_ms();
        write(&self.state().model).new_conversation(buyer, title, body, at)
    }

    /// eBay sends a new notice (a FROM_EBAY conversation); returns its id.
    pub fn system_notice(&self, title: &str, body: &str) -> String {
        let at = self.now_ms();
        write(&self.state().model).new_system_conversation(title, body, at)
    }

    /// Changes a message's body without touching anything the listing shows (latest
    /// message, unread count): a change the conversation's marker cannot reveal.
    pub fn edit_silently(&self, conversation: &str, message: &str, body: &str) -> bool {
        self.with_conv(conversation, |m, i| {
            let latest = m.convs[i].latest().map(|l| l.id.clone());
            match m.convs[i].messages.iter_mut().find(|x| x.id == message) {
                Some(x) if Some(&x.id) != latest.as_ref() => {
                    x.body = body.to_string();
                    true
                }
                _ => false,
            }
        })
    }

    /// Makes `GET /conversation/{id}` answer 404 for this conversation (`false`: heal it).
    pub fn fail_conversation(&self, conversation: &str, fail: bool) {
        let mut f = lock(&self.state().failing);
        if fail {
            f.insert(conversation.to_string());
        } else {
            f.remove(conversation);
        }
    }

    /// Switches the `start_time` quirk (on by default).
    pub fn set_start_time_quirk(&self, on: bool) {
        self.state().start_time_quirk.store(on, Ordering::Relaxed);
    }

    /// Accepts the undocumented `conversation_type=FROM_OWNERS` (the sent side: member
    /// conversations the account wrote in, filtered by the account's own activity). Off
    /// by default: like eBay's documentation, the simulator answers it with 400.
    pub fn set_owner_listing(&self, on: bool) {
        self.state().owner_listing.store(on, Ordering::Relaxed);
    }

    // ---- truth ----------------------------------------------------------------------------

    /// Ids of conversations of a type (`FROM_MEMBERS`, `FROM_EBAY`), newest activity first.
    pub fn conversation_ids(&self, conversation_type: &str) -> Vec<String> {
        read(&self.state().model)
            .listing(conversation_type)
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    /// Every conversation of a type as `GET /conversation` serves it, newest first.
    pub fn truth_conversations(&self, conversation_type: &str) -> Vec<serde_json::Value> {
        let m = read(&self.state().model);
        m.listing(conversation_type)
            .iter()
            .map(|c| m.conv_json(c))
            .collect()
    }

    /// Every message of every active conversation.
    pub fn truth_messages(&self) -> Vec<TruthMessage> {
        let m = read(&self.state().model);
        let mut out = Vec::new();
        for t in ["FROM_MEMBERS", "FROM_EBAY"] {
            for c in m.listing(t) {
                for msg in Model::thread(c) {
                    out.push(TruthMessage {
                        conversation_id: c.id.clone(),
                        conversation_type: c.ctype.to_string(),
                        json: Model::msg_json(msg),
                    });
                }
            }
        }
        out
    }

    /// Message count of a conversation.
    pub fn message_count(&self, conversation: &str) -> usize {
        self.with_conv(conversation, |m, i| m.convs[i].messages.len())
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

    /// Clears the request log and counter.
    pub fn clear_log(&self) {
        lock(&self.state().log).clear();
        self.state().counters.requests.store(0, Ordering::Relaxed);
    }

    /// Calls answered 429 because the quota was exceeded.
    pub fn call_limit_violations(&self) -> u64 {
        self.state().counters.violations.load(Ordering::Relaxed)
    }

    /// Calls to the Developer Analytics rate-limit API (they cost no quota).
    pub fn rate_limit_api_calls(&self) -> u64 {
        self.state()
            .counters
            .rate_limit_calls
            .load(Ordering::Relaxed)
    }

    /// Switches the Developer Analytics rate-limit API (on by default; off: 404).
    pub fn set_rate_limit_api(&self, on: bool) {
        self.state().rate_limit_api.store(on, Ordering::Relaxed);
    }

    /// A new quota window: the calls counted so far are forgotten (eBay's next day).
    pub fn reset_call_window(&self) {
        *lock(&self.state().window) = (0, 0);
    }

    /// `https://api.ebay.com` as this simulator serves it (the Developer Analytics API
    /// lives under it).
    pub fn api_root(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state().faults).set(faults);
    }

    /// Expires every issued access token (the next call answers 401).
    pub fn expire_tokens(&self) {
        lock(&self.state().auth).expire_all();
    }

    /// Revokes the refresh token.
    pub fn revoke_refresh_token(&self) {
        lock(&self.state().auth).revoked = true;
    }
}
