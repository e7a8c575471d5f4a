//! A local simulator of the Slack Web API, following `shared/providers/slack.md`:
//! `auth.test`, `conversations.list`, `conversations.history`, `conversations.replies` and
//! `users.list`, GET with a query string or POST with a form body, `Authorization: Bearer`
//! with a bot (`xoxb-`) or user (`xoxp-`) token.
//!
//! Its quirks: HTTP 200 with `{"ok": false, "error": ...}` for logical errors
//! (`not_authed`, `invalid_auth`, `token_revoked`, `channel_not_found`,
//! `thread_not_found`, `invalid_cursor`, `invalid_ts_oldest`, ...); opaque cursors in
//! `response_metadata.next_cursor` (`""` on the last page); history newest first and
//! without thread replies, `oldest`/`latest` exclusive unless `inclusive=true`; replies
//! parent first then oldest to newest; edits keep the `ts` and add `edited`; deleted
//! messages vanish (a deleted thread parent with live replies stays as a `tombstone`).
//! Per-method tier limits per workspace and minute (Tier 2: `conversations.list`,
//! `users.list`; Tier 3: history and replies; `auth.test` special), answered with HTTP
//! 429, `Retry-After` and `ratelimited`, each counted as a violation; the 2025
//! non-Marketplace mode (history and replies 1 per minute, `limit` at most 15).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use inlet_sim::slack::{SlackSim, SlackSimConfig};
//! let sim = SlackSim::start(SlackSimConfig::default()).await?;
//! let base = sim.api_base(); // stands in for https://slack.com/api
//! # let _ = base;
//! # Ok(()) }
//! ```

mod api;
mod data;

pub use crate::reddit::{Faults, LoggedRequest};

use crate::reddit::faults::FaultState;
use crate::server::{self, ServerHandle};
use crate::util::{lock, read, write};
use data::{Model, Msg, Shape, parse_ts, ts_str};
use inlet_core::{Clock, SystemClock};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The path prefix of every method (`/api/conversations.history`).
const API_PREFIX: &str = "/api";

/// Configuration of a [`SlackSim`].
#[derive(Debug, Clone)]
pub struct SlackSimConfig {
    /// Seed of all generated data and fault decisions.
    pub seed: u64,
    /// Conversations (every 5th a private channel after three public ones, then an IM).
    pub channels: u64,
    /// Top-level messages per conversation.
    pub messages_per_channel: u64,
    /// Thread parents per conversation.
    pub threads_per_channel: u64,
    /// Replies per thread.
    pub replies_per_thread: u64,
    /// Users.
    pub users: u64,
    /// The generated messages lie in this many seconds before the start.
    pub span_secs: i64,
    /// The bot token (`xoxb-...`) accepted.
    pub bot_token: String,
    /// The user token (`xoxp-...`) accepted.
    pub user_token: String,
    /// Team id and name.
    pub team: String,
    /// Requests per minute of Tier 2 methods (`conversations.list`, `users.list`).
    pub tier2_per_min: u64,
    /// Requests per minute of Tier 3 methods (`conversations.history`, `.replies`).
    pub tier3_per_min: u64,
    /// The 2025 non-Marketplace restriction: history and replies 1 per minute, `limit`
    /// at most 15 (and 15 by default).
    pub non_marketplace: bool,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Token rotation (Slack's opt-in): the bot token is a rotating `xoxe.xoxb-` token that
    /// expires after 12 hours (`token_expired`), and `oauth.v2.access` with
    /// `grant_type=refresh_token` replaces both tokens, the old refresh token dying.
    pub rotation: bool,
    /// The app's client id and secret (`oauth.v2.access`).
    pub client_id: String,
    /// See `client_id`.
    pub client_secret: String,
}

impl Default for SlackSimConfig {
    fn default() -> Self {
        SlackSimConfig {
            seed: 1,
            channels: 5,
            messages_per_channel: 120,
            threads_per_channel: 6,
            replies_per_thread: 4,
            users: 8,
            span_secs: 7 * 86_400,
            bot_token: "xoxb-0000-sim-bot".into(),
            user_token: "xoxp-0000-sim-user".into(),
            team: "T0SIM".into(),
            tier2_per_min: 20,
            tier3_per_min: 50,
            non_marketplace: false,
            clock: Arc::new(SystemClock),
            rotation: false,
            client_id: "1111.2222".into(),
            client_secret: "sim-client-secret".into(),
        }
    }
}

/// Token rotation: the current pair, its expiry and the test knobs.
#[derive(Debug)]
pub(crate) struct OAuthState {
    /// The configured bot token: rotating tokens are named after it.
    base: String,
    pub(crate) generation: u64,
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) expires_at_ms: i64,
    /// Access tokens of earlier generations (they answer `token_expired`).
    pub(crate) old_access: HashSet<String>,
    /// Token exchanges answered (successful or not).
    pub(crate) exchanges: u64,
    /// Rotate on the next exchange but reset the connection instead of answering.
    pub(crate) lose_next_answer: bool,
    /// Hold the first call made with a freshly rotated token this long.
    pub(crate) hold_new_token: Option<std::time::Duration>,
    /// Calls held so far.
    pub(crate) held: u64,
}

/// Access tokens live 12 hours.
pub(crate) const ROTATED_TOKEN_SECS: i64 = 43_200;

impl OAuthState {
    fn new(base: &str, now_ms: i64) -> Self {
        let mut s = OAuthState {
            base: base.trim_start_matches("xoxb-").to_string(),
            generation: 0,
            access: String::new(),
            refresh: String::new(),
            expires_at_ms: 0,
            old_access: HashSet::new(),
            exchanges: 0,
            lose_next_answer: false,
            hold_new_token: None,
            held: 0,
        };
        s.rotate(now_ms);
        s
    }

    /// A new pair; the old refresh token dies, the old access token expires.
    pub(crate) fn rotate(&mut self, now_ms: i64) {
        if !self.access.is_empty() {
            self.old_access.insert(self.access.clone());
        }
        self.generation += 1;
        let (g, base) = (self.generation, &self.base);
        self.access = format!("xoxe.xoxb-1-{base}-gen{g}");
        self.refresh = format!("xoxe-1-{base}-refresh{g}");
        self.expires_at_ms = now_ms + ROTATED_TOKEN_SECS * 1000;
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    violations: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct State {
    cfg: SlackSimConfig,
    model: RwLock<Model>,
    /// Tokens revoked (`token_revoked`).
    revoked: Mutex<HashSet<String>>,
    /// Conversations the app was removed from (`not_in_channel`).
    no_access: Mutex<HashSet<String>>,
    /// The rotating token pair (with [`SlackSimConfig::rotation`]).
    pub(crate) oauth: Mutex<OAuthState>,
    /// Every file download gets the sign-in page.
    pub(crate) files_sign_in: std::sync::atomic::AtomicBool,
    /// Calls per method in the current minute: method → (minute, count).
    windows: Mutex<BTreeMap<String, (i64, u64)>>,
    /// Requests answered per method.
    per_method: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<FaultState>,
    log: Mutex<Vec<LoggedRequest>>,
    counters: Counters,
}

/// A running Slack simulator; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SlackSim {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Arc<State>,
    server: ServerHandle,
}

/// One message as the truth accessors return it.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthMessage {
    /// The conversation.
    pub channel: String,
    /// Its `ts`.
    pub ts: String,
    /// The JSON history (or replies, for a reply) serves.
    pub json: serde_json::Value,
}

impl SlackSim {
    /// Starts the simulator on `127.0.0.1` (random port).
    pub async fn start(cfg: SlackSimConfig) -> std::io::Result<SlackSim> {
        let model = Model::generate(
            Shape {
                seed: cfg.seed,
                channels: cfg.channels,
                messages_per_channel: cfg.messages_per_channel,
                threads_per_channel: cfg.threads_per_channel,
                replies_per_thread: cfg.replies_per_thread,
                users: cfg.users,
                span_secs: cfg.span_secs,
            },
            cfg.clock.now().0,
        );
        let state = Arc::new(State {
            model: RwLock::new(model),
            revoked: Mutex::new(HashSet::new()),
            no_access: Mutex::new(HashSet::new()),
            oauth: Mutex::new(OAuthState::new(&cfg.bot_token, cfg.clock.now().0)),
            files_sign_in: std::sync::atomic::AtomicBool::new(false),
            windows: Mutex::new(BTreeMap::new()),
            per_method: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(FaultState::new(cfg.seed)),
            log: Mutex::new(Vec::new()),
            counters: Counters::default(),
            cfg,
        });
        let server = server::serve(state.clone()).await?;
        Ok(SlackSim {
            inner: Arc::new(Inner { state, server }),
        })
    }

    fn state(&self) -> &State {
        &self.inner.state
    }

    /// Stands in for `https://slack.com/api`.
    pub fn api_base(&self) -> String {
        format!("http://{}{API_PREFIX}", self.inner.server.addr())
    }

    /// The accepted bot token.
    pub fn bot_token(&self) -> String {
        self.state().cfg.bot_token.clone()
    }

    /// The accepted user token.
    pub fn user_token(&self) -> String {
        self.state().cfg.user_token.clone()
    }

    fn now_ms(&self) -> i64 {
        self.state().cfg.clock.now().0
    }

    // ---- hooks ----------------------------------------------------------------------------

    /// Ids of every conversation, in listing order.
    pub fn channel_ids(&self) -> Vec<String> {
        read(&self.state().model)
            .channels
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    /// Ids of the users.
    pub fn user_ids(&self) -> Vec<String> {
        read(&self.state().model)
            .users
            .iter()
            .map(|u| u.id.clone())
            .collect()
    }

    /// Posts a top-level message now; returns its ts.
    ///
    /// # Panics
    /// If the channel does not exist.
    pub fn post(&self, channel: &str, user: &str, text: &str) -> String {
        let now = self.now_ms();
        let mut m = write(&self.state().model);
        let ts = m.next_ts(now);
        let ch = m
            .channel_mut(channel)
            .unwrap_or_else(|| panic!("no channel {channel}"));
        ch.messages.push(Msg {
            ts,
            user: user.to_string(),
            text: text.to_string(),
            edited: None,
            deleted: false,
            replies: Vec::new(),
            thread_ts: None,
            file: None,
        });
        ts_str(ts)
    }

    /// Posts a message with a file (a PNG for `kind` 0, a PDF for 1); returns its ts.
    ///
    /// # Panics
    /// If the channel does not exist.
    pub fn post_file(&self, channel: &str, user: &str, text: &str, kind: u64) -> String {
        let ts = self.post(channel, user, text);
        let mut m = write(&self.state().model);
        if let Some(msg) = m.channel_mut(channel).and_then(|c| c.messages.last_mut()) {
            msg.file = Some(kind);
        }
        ts
    }

    /// Every live file of `channels`' messages and replies: `(url_private_download,
    /// mimetype, bytes)`.
    pub fn truth_files(&self, channels: &[String]) -> Vec<(String, String, Vec<u8>)> {
        let m = read(&self.state().model);
        let team = &self.state().cfg.team;
        let mut out = Vec::new();
        for ch in m.channels.iter().filter(|c| channels.contains(&c.id)) {
            for msg in ch
                .messages
                .iter()
                .flat_map(|x| std::iter::once(x).chain(x.replies.iter()))
            {
                if let (Some(kind), false) = (msg.file, msg.deleted) {
                    let (id, name, mime, bytes) = data::file_of(msg.ts, kind);
                    out.push((
                        format!("https://files.slack.com/files-pri/{team}-{id}/download/{name}"),
                        mime.to_string(),
                        bytes,
                    ));
                }
            }
        }
        out
    }

    /// `true`: the files host answers everyone with the sign-in page (a token without
    /// `files:read`, a session-only URL), while the Web API still works.
    pub fn files_sign_in(&self, on: bool) {
        self.state().files_sign_in.store(on, Ordering::Relaxed);
    }

    /// The base to rewrite `https://files.slack.com/...` onto (attachments'
    /// `rewrite_base`).
    pub fn media_base(&self) -> String {
        format!("http://{}/media", self.inner.server.addr())
    }

    /// Replies in the thread of `parent` now (a message becomes a thread parent with its
    /// first reply); returns the reply's ts.
    ///
    /// # Panics
    /// If the channel or the parent does not exist.
    pub fn reply(&self, channel: &str, parent: &str, user: &str, text: &str) -> String {
        let now = self.now_ms();
        let mut m = write(&self.state().model);
        let ts = m.next_ts(now);
        let p = parse_ts(parent).unwrap_or_else(|| panic!("bad ts {parent}"));
        let ch = m
            .channel_mut(channel)
            .unwrap_or_else(|| panic!("no channel {channel}"));
        let i = ch.find(p).unwrap_or_else(|| panic!("no message {parent}"));
        ch.messages[i].replies.push(Msg {
            ts,
            user: user.to_string(),
            text: text.to_string(),
            edited: None,
            deleted: false,
            replies: Vec::new(),
            thread_ts: Some(p),
            file: None,
        });
        ts_str(ts)
    }

    fn with_msg<T>(&self, channel: &str, ts: &str, f: impl FnOnce(&mut Msg) -> T) -> Option<T> {
        let t = parse_ts(ts)?;
        let mut m = write(&self.state().model);
        let ch = m.channel_mut(channel)?;
        if let Some(i) = ch.find(t) {
            return Some(f(&mut ch.messages[i]));
        }
        for p in &mut ch.messages {
            if let Some(r) = p.replies.iter_mut().find(|r| r.ts == t) {
                return Some(f(r));
            }
        }
        None
    }

    /// Edits a message or reply now (it keeps its ts and gets `edited`); `false` when
    /// there is no such message.
    pub fn edit(&self, channel: &str, ts: &str, text: &str) -> bool {
        let now = self.now_ms() * 1000;
        self.with_msg(channel, ts, |m| {
            m.text = text.to_string();
            m.edited = Some((m.user.clone(), now));
        })
        .is_some()
    }

    /// Deletes a message or reply; `false` when there is no such message.
    pub fn delete(&self, channel: &str, ts: &str) -> bool {
        self.with_msg(channel, ts, |m| m.deleted = true).is_some()
    }

    /// Renames a user (its `real_name`).
    pub fn rename_user(&self, user: &str, real_name: &str) -> bool {
        let mut m = write(&self.state().model);
        match m.users.iter_mut().find(|u| u.id == user) {
            Some(u) => {
                u.real_name = real_name.to_string();
                true
            }
            None => false,
        }
    }

    /// Revokes a token: every later call with it answers `token_revoked`.
    pub fn revoke(&self, token: &str) {
        lock(&self.state().revoked).insert(token.to_string());
    }

    /// Removes the app from a conversation (`access: false`: its history and replies
    /// answer `not_in_channel`) or adds it back.
    pub fn set_access(&self, channel: &str, access: bool) {
        let mut n = lock(&self.state().no_access);
        if access {
            n.remove(channel);
        } else {
            n.insert(channel.to_string());
        }
    }

    /// The current rotating pair `(access, refresh)` (with [`SlackSimConfig::rotation`]).
    pub fn rotating_tokens(&self) -> (String, String) {
        let o = lock(&self.state().oauth);
        (o.access.clone(), o.refresh.clone())
    }

    /// Makes the current rotating access token expire now.
    pub fn expire_access_token(&self) {
        lock(&self.state().oauth).expires_at_ms = self.state().cfg.clock.now().0;
    }

    /// `oauth.v2.access` exchanges answered so far.
    pub fn token_exchanges(&self) -> u64 {
        lock(&self.state().oauth).exchanges
    }

    /// The next exchange rotates the pair but its answer is lost (the connection is reset),
    /// as when the process dies between the exchange and storing its answer.
    pub fn lose_next_token_answer(&self) {
        lock(&self.state().oauth).lose_next_answer = true;
    }

    /// Holds the first call made with a newly rotated token for `hold` (to stop the client
    /// right after the exchange); `held_calls` tells when one is being held.
    pub fn hold_new_token(&self, hold: Option<std::time::Duration>) {
        lock(&self.state().oauth).hold_new_token = hold;
    }

    /// Calls held by [`SlackSim::hold_new_token`] so far.
    pub fn held_calls(&self) -> u64 {
        lock(&self.state().oauth).held
    }

    // ---- truth ----------------------------------------------------------------------------

    /// Every top-level message history lists (tombstones included) of `channel`, newest
    /// first.
    pub fn truth_history(&self, channel: &str) -> Vec<TruthMessage> {
        let m = read(&self.state().model);
        let team = &self.state().cfg.team;
        let Some(ch) = m.channel(channel) else {
            return Vec::new();
        };
        ch.messages
            .iter()
            .rev()
            .filter(|x| x.listed())
            .map(|x| TruthMessage {
                channel: ch.id.clone(),
                ts: ts_str(x.ts),
                json: x.json(team, None),
            })
            .collect()
    }

    /// Every live thread reply of `channel`, by thread then oldest first.
    pub fn truth_replies(&self, channel: &str) -> Vec<TruthMessage> {
        let m = read(&self.state().model);
        let team = &self.state().cfg.team;
        let Some(ch) = m.channel(channel) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in ch.messages.iter().filter(|x| x.listed()) {
            for r in p.live_replies() {
                out.push(TruthMessage {
                    channel: ch.id.clone(),
                    ts: ts_str(r.ts),
                    json: r.json(team, Some(&p.user)),
                });
            }
        }
        out
    }

    /// Every user as `users.list` serves it.
    pub fn truth_users(&self) -> Vec<serde_json::Value> {
        let m = read(&self.state().model);
        let team = &self.state().cfg.team;
        m.users.iter().map(|u| u.json(team)).collect()
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

    /// Requests answered per method (`conversations.history` → n), faults included.
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

    /// Clears the request log and the counters (violations stay).
    pub fn clear_log(&self) {
        lock(&self.state().log).clear();
        lock(&self.state().per_method).clear();
        self.state().counters.requests.store(0, Ordering::Relaxed);
    }

    /// Calls refused because they broke a tier limit (not injected 429s).
    pub fn rate_limit_violations(&self) -> u64 {
        self.state().counters.violations.load(Ordering::Relaxed)
    }

    /// Replaces the active faults (an injected 429 answers `ratelimited` with the
    /// burst's `Retry-After`, 1 s when it names none; it is not a violation).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state().faults).set(faults);
    }
}
