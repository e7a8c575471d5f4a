//! HTTP endpoints: the token endpoint, authentication, call limits and the Message API.

use super::data::Model;
use super::{ANALYTICS_PATH, API_PREFIX, State, TOKEN_PATH};
use crate::reddit::LoggedRequest;
use crate::reddit::faults::Injected;
use crate::server::{Handler, Reply, Request, Response};
use crate::util::{Rng, base64_decode, lock, parse_form, read};
use inlet_core::Timestamp;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
/// The scope eBay grants for the Message API; refreshes must ask for it.
const MESSAGE_SCOPE: &str = "https://api.ebay.com/oauth/api_scope/commerce.message";

/// Issued access tokens (token → expiry ms) and the token RNG.
#[derive(Debug)]
pub(crate) struct AuthState {
    tokens: HashMap<String, i64>,
    rng: Rng,
    pub revoked: bool,
}

impl AuthState {
    pub(crate) fn new(seed: u64) -> Self {
        AuthState {
            tokens: HashMap::new(),
            rng: Rng::derive(seed, 0xeb70, 0),
            revoked: false,
        }
    }

    pub(crate) fn expire_all(&mut self) {
        for t in self.tokens.values_mut() {
            *t = i64::MIN;
        }
    }

    fn issue(&mut self, expires_ms: i64) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut t = String::from("v^1.1#i^1#r^0#");
        for _ in 0..40 {
            t.push(ALPHA[self.rng.below(ALPHA.len() as u64) as usize] as char);
        }
        self.tokens.insert(t.clone(), expires_ms);
        t
    }
}

/// An eBay REST error body.
fn error(id: i64, domain: &str, category: &str, message: &str) -> String {
    json!({"errors": [{"errorId": id, "domain": domain, "category": category,
                        "message": message, "longMessage": message}]})
    .to_string()
}

fn bad_request(resp: &mut Response, message: &str, param: &str) {
    let body = json!({"errors": [{"errorId": 355001, "domain": "API_MESSAGE", "category": "REQUEST",
        "message": message, "parameters": [{"name": param, "value": ""}]}]});
    resp.json(400, &body.to_string());
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
                resp.json(
                    code,
                    &error(
                        10001,
                        "API_MESSAGE",
                        "APPLICATION",
                        "There was a problem with an eBay internal system or process.",
                    ),
                );
            }
            Injected::Burst429 => {
                resp.json(429, &error(2001, "ACCESS", "REQUEST", "Too many requests"));
            }
            Injected::Truncate | Injected::None => self.route(req, resp, now_ms),
        }
        let delivery = decision.injected.delivery();
        let status = resp.logged_status(delivery);
        lock(&self.log).push(LoggedRequest {
            method: req.method.to_string(),
            path: req.path.to_string(),
            query: req.query.to_string(),
            status,
            at_ms: now_ms,
        });
        Reply {
            delivery,
            delay: decision.delay,
        }
    }

    fn malformed(&self, reason: &str) {
        tracing::debug!("ebay sim: malformed request: {reason}");
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl State {
    fn route(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        if req.path == TOKEN_PATH {
            return self.token_endpoint(req, resp, now_ms);
        }
        if !self.authenticated(req, now_ms) {
            return resp.json(
                401,
                &error(1001, "OAuth", "REQUEST", "Invalid access token"),
            );
        }
        if req.path.trim_end_matches('/') == ANALYTICS_PATH.trim_end_matches('/') {
            // getUserRateLimits: costs no quota.
            return self.user_rate_limit(resp, now_ms);
        }
        if self.over_limit(now_ms) {
            // eBay's call limit (ebay.md §7): 429, errorId 2001, no rate headers and no
            // Retry-After.
            self.counters.violations.fetch_add(1, Ordering::Relaxed);
            return resp.json(429, &error(2001, "ACCESS", "REQUEST", "Too many requests"));
        }
        if req.method != "GET" {
            return resp.json(
                405,
                &error(1003, "API_MESSAGE", "REQUEST", "Method not allowed"),
            );
        }
        let Some(rest) = req.path.strip_prefix(API_PREFIX) else {
            return resp.json(
                404,
                &error(1002, "API_MESSAGE", "REQUEST", "Resource not found"),
            );
        };
        let query = parse_form(req.query).unwrap_or_default();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let host = req.header("host").unwrap_or("127.0.0.1");
        let base = format!("http://{host}{API_PREFIX}");
        match rest {
            "/conversation" => self.get_conversations(resp, &get, &base),
            _ => match rest.strip_prefix("/conversation/") {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    self.get_conversation(resp, id, &get, &base)
                }
                _ => resp.json(
                    404,
                    &error(1002, "API_MESSAGE", "REQUEST", "Resource not found"),
                ),
            },
        }
    }

    fn authenticated(&self, req: &Request<'_>, now_ms: i64) -> bool {
        let Some((scheme, token)) = req
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && lock(&self.auth)
                .tokens
                .get(token.trim())
                .is_some_and(|exp| *exp > now_ms)
    }

    /// The Developer Analytics API's getUserRateLimits for the Message API (ebay.md §7):
    /// `rateLimits[].resources[].rates[] = {count, limit, remaining, reset, timeWindow}`.
    fn user_rate_limit(&self, resp: &mut Response, now_ms: i64) {
        self.counters
            .rate_limit_calls
            .fetch_add(1, Ordering::Relaxed);
        let Some(limit) = self
            .cfg
            .call_limit
            .filter(|_| self.rate_limit_api.load(Ordering::Relaxed))
        else {
            return resp.json(
                404,
                &error(1002, "API_ANALYTICS", "REQUEST", "Resource not found"),
            );
        };
        let window_ms = limit.window_secs.max(1) as i64 * 1000;
        let index = now_ms.div_euclid(window_ms);
        let used = {
            let w = lock(&self.window);
            if w.0 == index { w.1 } else { 0 }
        };
        let reset = Timestamp((index + 1) * window_ms);
        let body = json!({"rateLimits": [{
            "apiContext": "commerce", "apiName": "message", "apiVersion": "v1",
            "resources": [{"name": "commerce.message", "rates": [{
                "count": used.min(limit.calls),
                "limit": limit.calls,
                "remaining": limit.calls.saturating_sub(used),
                "reset": reset.to_string(),
                "timeWindow": limit.window_secs,
            }]}],
        }]});
        resp.json(200, &body.to_string());
    }

    /// Counts one call against the fixed window; true when the quota is exceeded.
    fn over_limit(&self, now_ms: i64) -> bool {
        let Some(limit) = self.cfg.call_limit else {
            return false;
        };
        let index = now_ms.div_euclid(limit.window_secs.max(1) as i64 * 1000);
        let mut w = lock(&self.window);
        if w.0 != index {
            *w = (index, 0);
        }
        w.1 += 1;
        w.1 > limit.calls
    }

    fn conversation_type<'q>(
        owners: bool,
        resp: &mut Response,
        get: &dyn Fn(&str) -> Option<&'q str>,
    ) -> Option<&'static str> {
        match get("conversation_type") {
            Some("FROM_MEMBERS") => Some("FROM_MEMBERS"),
            Some("FROM_EBAY") => Some("FROM_EBAY"),
            Some("FROM_OWNERS") if owners => Some("FROM_OWNERS"),
            Some(_) => {
                bad_request(
                    resp,
                    "The value of conversation_type is invalid.",
                    "conversation_type",
                );
                None
            }
            None => {
                bad_request(
                    resp,
                    "The conversation_type field is required.",
                    "conversation_type",
                );
                None
            }
        }
    }

    /// `(limit, offset)`, or a 400 written to `resp`.
    fn paging<'q>(
        resp: &mut Response,
        get: &dyn Fn(&str) -> Option<&'q str>,
    ) -> Option<(usize, usize)> {
        let limit = match get("limit").map(str::parse::<usize>) {
            None => 25,
            Some(Ok(n)) if (1..=50).contains(&n) => n,
            Some(_) => {
                bad_request(resp, "The limit value must be between 1 and 50.", "limit");
                return None;
            }
        };
        let offset = match get("offset").map(str::parse::<usize>) {
            None => 0,
            Some(Ok(n)) => n,
            Some(_) => {
                bad_request(resp, "The offset value is invalid.", "offset");
                return None;
            }
        };
        Some((limit, offset))
    }

    fn get_conversations<'q>(
        &self,
        resp: &mut Response,
        get: &dyn Fn(&str) -> Option<&'q str>,
        base: &str,
    ) {
        let owners = self.owner_listing.load(Ordering::Relaxed);
        let Some(ctype) = Self::conversation_type(owners, resp, get) else {
            return;
        };
        let Some((limit, offset)) = Self::paging(resp, get) else {
            return;
        };
        let mut times = [None, None];
        for (i, k) in ["start_time", "end_time"].into_iter().enumerate() {
            if let Some(v) = get(k) {
                match Timestamp::parse_rfc3339(v) {
                    Some(t) => times[i] = Some(t.0),
                    None => return bad_request(resp, "The time value is invalid.", k),
                }
            }
        }
        // `sort` (undocumented; integrations pass `-last_modified_date`): by latest
        // activity, newest first with `-`. Without it the order is the same (eBay's default
        // order is unknown). Other query parameters, `filter=` among them, are ignored.
        let ascending = match get("sort") {
            None | Some("-last_modified_date") => false,
            Some("last_modified_date") => true,
            Some(_) => return bad_request(resp, "The sort value is invalid.", "sort"),
        };
        let other = get("other_party_username");
        let (ref_id, ref_type) = (get("reference_id"), get("reference_type"));
        if ref_id.is_some() != ref_type.is_some() {
            let missing = if ref_id.is_some() {
                "reference_type"
            } else {
                "reference_id"
            };
            return bad_request(
                resp,
                "reference_id and reference_type go together.",
                missing,
            );
        }
        let quirk = self.start_time_quirk.load(Ordering::Relaxed);
        let model = read(&self.model);
        let mut listed = model.listing(ctype);
        // A very large account's unnarrowed listing fails inside eBay (ebay.md §6).
        let narrowed = get("sort").is_some()
            || other.is_some()
            || ref_id.is_some()
            || get("start_time").is_some()
            || get("end_time").is_some();
        if !narrowed
            && self
                .cfg
                .unnarrowed_5xx_above
                .is_some_and(|n| listed.len() as u64 > n)
        {
            return resp.json(
                500,
                &error(
                    10000,
                    "API_MESSAGE",
                    "APPLICATION",
                    "getAllMyConversations failed: exceeded retries limit",
                ),
            );
        }
        if ascending {
            listed.reverse();
        }
        let all: Vec<_> = listed
            .into_iter()
            .filter(|c| other.is_none_or(|o| c.other == o))
            .filter(|c| {
                ref_id.is_none_or(|r| {
                    ref_type == Some("LISTING") && c.reference_id.as_deref() == Some(r)
                })
            })
            .filter(|c| {
                // Under the quirk only the other party's activity makes a thread match;
                // the owner (sent-side) listing sees the account's own activity.
                let t = if ctype == "FROM_OWNERS" {
                    c.own_activity_ms(&model.me)
                } else if quirk {
                    c.other_activity_ms
                } else {
                    c.latest_ms()
                };
                times[0].is_none_or(|s| t >= s) && times[1].is_none_or(|e| t <= e)
            })
            .collect();
        let total = all.len();
        let page: Vec<_> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| model.conv_json(c))
            .collect();
        let mut extra = String::new();
        for k in [
            "sort",
            "other_party_username",
            "reference_id",
            "reference_type",
            "start_time",
            "end_time",
        ] {
            if let Some(v) = get(k) {
                extra.push_str(&format!("&{k}={v}"));
            }
        }
        let href = |o: usize| {
            format!("{base}/conversation?conversation_type={ctype}{extra}&limit={limit}&offset={o}")
        };
        let mut v = json!({"href": href(offset), "limit": limit, "offset": offset, "total": total, "conversations": page});
        if offset + limit < total {
            v["next"] = json!(href(offset + limit));
        }
        if offset > 0 {
            v["prev"] = json!(href(offset.saturating_sub(limit)));
        }
        resp.json(200, &v.to_string());
    }

    fn get_conversation<'q>(
        &self,
        resp: &mut Response,
        id: &str,
        get: &dyn Fn(&str) -> Option<&'q str>,
        base: &str,
    ) {
        let owners = self.owner_listing.load(Ordering::Relaxed);
        let Some(ctype) = Self::conversation_type(owners, resp, get) else {
            return;
        };
        let Some((limit, offset)) = Self::paging(resp, get) else {
            return;
        };
        if lock(&self.failing).contains(id) {
            return resp.json(
                404,
                &error(
                    355002,
                    "API_MESSAGE",
                    "REQUEST",
                    "The conversation was not found.",
                ),
            );
        }
        let model = read(&self.model);
        let Some(c) = model
            .find(id)
            .map(|i| &model.convs[i])
            .filter(|c| c.ctype == ctype || (ctype == "FROM_OWNERS" && c.ctype == "FROM_MEMBERS"))
        else {
            return resp.json(
                404,
                &error(
                    355002,
                    "API_MESSAGE",
                    "REQUEST",
                    "The conversation was not found.",
                ),
            );
        };
        let thread = Model::thread(c);
        let total = thread.len();
        let msgs: Vec<_> = thread
            .iter()
            .skip(offset)
            .take(limit)
            .map(|m| Model::msg_json(m))
            .collect();
        let href = |o: usize| {
            format!("{base}/conversation/{id}?conversation_type={ctype}&limit={limit}&offset={o}")
        };
        let mut v = json!({"conversationStatus": c.status, "conversationTitle": c.title,
            "conversationType": c.ctype, "href": href(offset), "limit": limit, "offset": offset,
            "total": total, "messages": msgs});
        if offset + limit < total {
            v["next"] = json!(href(offset + limit));
        }
        resp.json(200, &v.to_string());
    }

    fn token_endpoint(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        let invalid_client =
            r#"{"error": "invalid_client", "error_description": "client authentication failed"}"#;
        if req.method != "POST" {
            return resp.json(405, &error(1003, "OAuth", "REQUEST", "Method not allowed"));
        }
        let client = req
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b)| base64_decode(b.trim()))
            .and_then(|b| String::from_utf8(b).ok());
        let expected = format!("{}:{}", self.cfg.client_id, self.cfg.client_secret);
        if client.as_deref() != Some(expected.as_str()) {
            return resp.json(401, invalid_client);
        }
        let form = std::str::from_utf8(req.body)
            .ok()
            .and_then(parse_form)
            .unwrap_or_default();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("grant_type") != Some("refresh_token") {
            return resp.json(400, r#"{"error": "unsupported_grant_type", "error_description": "grant type not supported"}"#);
        }
        // The refresh names the scopes it wants: the granted one (or a subset of it).
        if get("scope") != Some(MESSAGE_SCOPE) {
            return resp.json(400, r#"{"error": "invalid_scope", "error_description": "The requested scope is invalid, unknown, malformed, or exceeds the scope granted to the client"}"#);
        }
        let mut auth = lock(&self.auth);
        if auth.revoked || get("refresh_token") != Some(self.cfg.refresh_token.as_str()) {
            return resp.json(400, r#"{"error": "invalid_grant", "error_description": "the provided authorization refresh token is invalid or was issued to another client"}"#);
        }
        let expires_in = self.cfg.token_expires_in;
        let token = auth.issue(now_ms + expires_in as i64 * 1000);
        let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "User Access Token"});
        resp.json(200, &body.to_string());
    }
}
