//! HTTP endpoints: the token endpoint, authentication, rate limiting, routing and listings.

use super::data::{Listing, Model};
use super::faults::{CDN_HTML, Injected};
use super::listing::{PageParams, page, write_listing};
use super::render::{Scratch, me_json};
use super::{LoggedRequest, State};
use crate::server::{Handler, Reply, Request, Response};
use crate::util::{Rng, base64_decode, lock, parse_form, read};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

const UNAUTHORIZED: &str = r#"{"message": "Unauthorized", "error": 401}"#;
const NOT_FOUND: &str = r#"{"message": "Not Found", "error": 404}"#;
const BAD_REQUEST: &str = r#"{"message": "Bad Request", "error": 400}"#;
const TOO_MANY: &str = r#"{"message": "Too Many Requests", "error": 429}"#;
const TOKEN_PATH: &str = "/api/v1/access_token";
const SCOPE: &str = "identity history privatemessages read save";
/// What Reddit's edge answers a request without a usable User-Agent.
const UA_BLOCK_HTML: &str = "<!doctype html><html><head><title>Too Many Requests</title></head><body><h1>whoa there, pardner!</h1><p>Your request has been blocked due to a missing or generic User-Agent. Please use a unique and descriptive one.</p></body></html>\n";
/// Budget reported in headers when rate limiting is disabled.
const UNLIMITED_BUDGET: u64 = 1_000_000_000;

/// An issued access token.
#[derive(Debug, Clone)]
struct Token {
    client_id: String,
    expires_ms: i64,
}

/// Issued tokens and refresh-token state.
#[derive(Debug)]
pub(crate) struct AuthState {
    tokens: HashMap<String, Token>,
    rng: Rng,
    /// The refresh token was revoked.
    pub revoked: bool,
}

impl AuthState {
    /// No tokens issued yet.
    pub(crate) fn new(seed: u64) -> Self {
        AuthState {
            tokens: HashMap::new(),
            rng: Rng::derive(seed, 0x70c3, 0),
            revoked: false,
        }
    }

    /// Expires every issued access token.
    pub(crate) fn expire_all(&mut self) {
        for t in self.tokens.values_mut() {
            t.expires_ms = i64::MIN;
        }
    }

    fn issue(&mut self, client_id: &str, expires_ms: i64) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut t = String::with_capacity(40);
        t.push_str("eyJ");
        for _ in 0..37 {
            t.push(ALPHA[self.rng.below(ALPHA.len() as u64) as usize] as char);
        }
        let token = Token {
            client_id: client_id.to_string(),
            expires_ms,
        };
        self.tokens.insert(t.clone(), token);
        t
    }
}

/// Fixed rate-limit windows per client id: (window index, requests used).
#[derive(Debug, Default)]
pub(crate) struct Windows(HashMap<String, (i64, u64)>);

/// Rate-limit accounting for one request.
struct RateCheck {
    used: u64,
    remaining: u64,
    reset_secs: i64,
    over: bool,
}

impl Handler for State {
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply {
        let now_ms = self.cfg.clock.now().0;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let is_token = req.path == TOKEN_PATH;
        let decision = lock(&self.faults).decide(req.path, is_token);
        match decision.injected {
            Injected::Reset => {}
            Injected::Status5xx(code) => {
                resp.html(code, CDN_HTML);
            }
            Injected::Burst429 => {
                resp.json(429, TOO_MANY);
                let check = self.peek_window(now_ms);
                if self.cfg.rate_headers {
                    rate_headers(resp, &check);
                }
                if let Some(secs) = lock(&self.faults).retry_after_secs() {
                    resp.headers.push(("retry-after", secs.to_string()));
                }
            }
            Injected::Truncate | Injected::None => self.route(req, resp, now_ms),
        }
        let delivery = decision.injected.delivery();
        let status = resp.logged_status(delivery);
        self.log(req, status, now_ms);
        Reply {
            delivery,
            delay: decision.delay,
        }
    }

    fn malformed(&self, reason: &str) {
        tracing::debug!("reddit sim: malformed request: {reason}");
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl State {
    fn log(&self, req: &Request<'_>, status: u16, at_ms: i64) {
        lock(&self.log).push(LoggedRequest {
            method: req.method.to_string(),
            path: req.path.to_string(),
            query: req.query.to_string(),
            status,
            at_ms,
        });
    }

    fn route(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        if req.path == TOKEN_PATH {
            return self.token_endpoint(req, resp, now_ms);
        }
        if req
            .header("user-agent")
            .is_none_or(|ua| ua.trim().is_empty())
        {
            self.counters.ua_rejections.fetch_add(1, Ordering::Relaxed);
            return resp.html(429, UA_BLOCK_HTML);
        }
        let Some(client_id) = self.authenticate(req, now_ms) else {
            resp.json(401, UNAUTHORIZED);
            let challenge = r#"Bearer realm="reddit", error="invalid_token""#;
            resp.headers
                .push(("www-authenticate", challenge.to_string()));
            return;
        };
        let check = self.count_request(&client_id, now_ms);
        if check.over {
            self.counters.violations.fetch_add(1, Ordering::Relaxed);
            resp.json(429, TOO_MANY);
        } else if req.method != "GET" {
            resp.json(405, r#"{"message": "Method Not Allowed", "error": 405}"#);
        } else {
            self.dispatch(req, resp);
        }
        if self.cfg.rate_headers {
            rate_headers(resp, &check);
        }
    }

    fn authenticate(&self, req: &Request<'_>, now_ms: i64) -> Option<String> {
        let (scheme, token) = req.header("authorization")?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let auth = lock(&self.auth);
        let t = auth.tokens.get(token.trim())?;
        (t.expires_ms > now_ms).then(|| t.client_id.clone())
    }

    fn limits(&self) -> (u64, i64) {
        match self.cfg.rate_limit {
            Some(r) => (r.budget, r.window_secs.max(1) as i64),
            None => (UNLIMITED_BUDGET, 600),
        }
    }

    /// Counts one request against `client_id`'s window.
    fn count_request(&self, client_id: &str, now_ms: i64) -> RateCheck {
        let (budget, window) = self.limits();
        let now = now_ms.div_euclid(1000);
        let index = now.div_euclid(window);
        let mut windows = lock(&self.windows);
        let entry = windows.0.entry(client_id.to_string()).or_insert((index, 0));
        if entry.0 != index {
            *entry = (index, 0);
        }
        entry.1 += 1;
        RateCheck {
            used: entry.1,
            remaining: budget.saturating_sub(entry.1),
            reset_secs: (index + 1) * window - now,
            over: self.cfg.rate_limit.is_some() && entry.1 > budget,
        }
    }

    /// The configured client's window without counting (for server-side 429 bursts).
    fn peek_window(&self, now_ms: i64) -> RateCheck {
        let (budget, window) = self.limits();
        let now = now_ms.div_euclid(1000);
        let index = now.div_euclid(window);
        let used = lock(&self.windows)
            .0
            .get(&self.cfg.client_id)
            .filter(|(i, _)| *i == index)
            .map_or(0, |(_, u)| *u);
        RateCheck {
            used,
            remaining: budget.saturating_sub(used),
            reset_secs: (index + 1) * window - now,
            over: false,
        }
    }

    fn dispatch(&self, req: &Request<'_>, resp: &mut Response) {
        let path = req.path.strip_suffix('/').unwrap_or(req.path);
        let Some(pairs) = parse_form(req.query) else {
            return resp.json(400, BAD_REQUEST);
        };
        let params = PageParams::from_pairs(&pairs);
        match path {
            "/api/v1/me" => {
                let m = read(&self.model);
                let body = me_json(&m, 0);
                resp.json(200, &body);
            }
            "/message/inbox" => self.listing(Listing::Inbox, &params, resp),
            "/message/sent" => self.listing(Listing::Sent, &params, resp),
            _ => match saved_user(path) {
                Some(user) if user.eq_ignore_ascii_case(&self.cfg.username) => {
                    self.listing(Listing::Saved, &params, resp)
                }
                Some(_) => resp.json(403, r#"{"error": 403}"#),
                None => resp.json(404, NOT_FOUND),
            },
        }
    }

    fn listing(&self, listing: Listing, params: &PageParams, resp: &mut Response) {
        let m: &Model = &read(&self.model);
        let p = page(m, listing, params, self.cfg.listing_cap);
        resp.status = 200;
        resp.body.reserve(p.items.len() * 1600 + 256);
        write_listing(
            m,
            &p,
            !params.raw_json,
            &mut resp.body,
            &mut Scratch::default(),
        );
    }

    fn token_endpoint(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        if req.method != "POST" {
            return resp.json(405, r#"{"message": "Method Not Allowed", "error": 405}"#);
        }
        if !self.client_ok(req) {
            return resp.json(401, UNAUTHORIZED);
        }
        let form = std::str::from_utf8(req.body).ok().and_then(parse_form);
        let Some(form) = form else {
            return resp.json(400, BAD_REQUEST);
        };
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let body = match get("grant_type") {
            Some("refresh_token") => self.refresh_grant(get("refresh_token"), now_ms),
            Some("password") => self.password_grant(get("username"), get("password"), now_ms),
            _ => r#"{"error": "unsupported_grant_type"}"#.to_string(),
        };
        resp.json(200, &body);
    }

    fn client_ok(&self, req: &Request<'_>) -> bool {
        let creds = req
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b64)| base64_decode(b64.trim()))
            .and_then(|raw| String::from_utf8(raw).ok());
        let Some(creds) = creds else { return false };
        let (id, secret) = creds.split_once(':').unwrap_or((&creds, ""));
        id == self.cfg.client_id && secret == self.cfg.client_secret
    }

    fn refresh_grant(&self, token: Option<&str>, now_ms: i64) -> String {
        let mut auth = lock(&self.auth);
        if auth.revoked || token != Some(self.cfg.refresh_token.as_str()) {
            return r#"{"error": "invalid_grant"}"#.to_string();
        }
        let expires_in = self.cfg.token_expires_in;
        let at = auth.issue(&self.cfg.client_id, expiry(now_ms, expires_in));
        let rt = crate::json::quote(&self.cfg.refresh_token);
        format!(
            r#"{{"access_token": "{at}", "token_type": "bearer", "expires_in": {expires_in}, "refresh_token": {rt}, "scope": "{SCOPE}"}}"#
        )
    }

    fn password_grant(&self, user: Option<&str>, pass: Option<&str>, now_ms: i64) -> String {
        let ok = match &self.cfg.password_user {
            Some((u, p)) => user == Some(u.as_str()) && pass == Some(p.as_str()),
            None => false,
        };
        if !ok {
            return r#"{"error": "invalid_grant"}"#.to_string();
        }
        let expires_in = self.cfg.token_expires_in;
        let at = lock(&self.auth).issue(&self.cfg.client_id, expiry(now_ms, expires_in));
        format!(
            r#"{{"access_token": "{at}", "token_type": "bearer", "expires_in": {expires_in}, "scope": "*"}}"#
        )
    }
}

fn expiry(now_ms: i64, expires_in: u64) -> i64 {
    now_ms.saturating_add((expires_in as i64).saturating_mul(1000))
}

/// `/user/{name}/saved` → `name`.
fn saved_user(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/user/")?;
    let (user, tail) = rest.split_once('/')?;
    (tail == "saved" && !user.is_empty()).then_some(user)
}

fn rate_headers(resp: &mut Response, c: &RateCheck) {
    resp.headers.push(("x-ratelimit-used", c.used.to_string()));
    resp.headers
        .push(("x-ratelimit-remaining", format!("{}.0", c.remaining)));
    resp.headers
        .push(("x-ratelimit-reset", c.reset_secs.to_string()));
}
