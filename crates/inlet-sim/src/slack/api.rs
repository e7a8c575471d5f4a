//! HTTP endpoints: authentication, tier limits, the `ok` envelope and the five methods.

use super::data::{Model, Ts, parse_ts, ts_str};
use super::{API_PREFIX, State};
use crate::reddit::LoggedRequest;
use crate::reddit::faults::Injected;
use crate::server::{Delivery, Handler, Reply, Request, Response};
use crate::util::{lock, parse_form, read};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// An `ok: false` answer: HTTP 200 unless `status` says otherwise.
fn fail(resp: &mut Response, error: &str) {
    resp.json(200, &json!({"ok": false, "error": error}).to_string());
}

/// Opaque cursors: `next_ts:<ts>` behind a fixed prefix, like Slack's base64 ones.
fn cursor(at: &str) -> String {
    let mut out = String::from("bmV4dF90czo");
    for b in at.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn uncursor(c: &str) -> Option<String> {
    let hex = c.strip_prefix("bmV4dF90czo")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The tier limit of a method per minute; `None`: not limited here.
fn tier(state: &State, method: &str) -> Option<u64> {
    let c = &state.cfg;
    match method {
        "conversations.history" | "conversations.replies" if c.non_marketplace => Some(1),
        "conversations.history" | "conversations.replies" => Some(c.tier3_per_min),
        "conversations.list" | "users.list" => Some(c.tier2_per_min),
        "auth.test" => Some(600),
        _ => None,
    }
}

/// The parameters of a request: its query, or its form body.
fn params(req: &Request<'_>) -> Option<Vec<(String, String)>> {
    let mut p = parse_form(req.query)?;
    if req.method == "POST" {
        let body = std::str::from_utf8(req.body).ok()?;
        p.extend(parse_form(body)?);
    }
    Some(p)
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

impl Handler for State {
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply {
        let now_ms = self.cfg.clock.now().0;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let method = req
            .path
            .strip_prefix(API_PREFIX)
            .unwrap_or("")
            .trim_start_matches('/');
        *lock(&self.per_method)
            .entry(method.to_string())
            .or_insert(0) += 1;
        let decision = lock(&self.faults).decide(req.path, false);
        match decision.injected {
            Injected::Reset => {}
            Injected::Status5xx(code) => {
                resp.html(
                    code,
                    "<html><body><h1>Slack is having trouble</h1></body></html>",
                );
            }
            Injected::Burst429 => {
                let secs = lock(&self.faults).retry_after_secs().unwrap_or(1);
                fail(resp, "ratelimited");
                resp.status = 429;
                resp.headers.push(("Retry-After", secs.to_string()));
            }
            Injected::Truncate | Injected::None => {}
        }
        let mut delivery = decision.injected.delivery();
        let mut delay = decision.delay;
        if matches!(decision.injected, Injected::Truncate | Injected::None)
            && let Some(r) = self.route(req, method, resp, now_ms)
        {
            if r.delivery != Delivery::Normal {
                delivery = r.delivery;
            }
            delay = r.delay.or(delay);
        }
        let status = resp.logged_status(delivery);
        lock(&self.log).push(LoggedRequest {
            method: req.method.to_string(),
            path: req.path.to_string(),
            query: req.query.to_string(),
            status,
            at_ms: now_ms,
        });
        Reply { delivery, delay }
    }

    fn malformed(&self, reason: &str) {
        tracing::debug!("slack sim: malformed request: {reason}");
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl State {
    /// Answers a call; `Some` changes how the answer is delivered (a lost token answer,
    /// a held call).
    fn route(
        &self,
        req: &Request<'_>,
        method: &str,
        resp: &mut Response,
        now_ms: i64,
    ) -> Option<Reply> {
        if let Some(path) = req.path.strip_prefix("/media/files.slack.com/files-pri/") {
            self.file(req, path, resp, now_ms);
            return None;
        }
        let Some(p) = params(req) else {
            fail(resp, "invalid_arguments");
            return None;
        };
        if method == "oauth.v2.access" {
            return self.exchange(&p, resp, now_ms);
        }
        let mut hold = None;
        self.call(req, method, &p, resp, now_ms, &mut hold);
        hold.map(|d| Reply {
            delivery: Delivery::Normal,
            delay: Some(d),
        })
    }

    /// A file's bytes (`url_private`, `url_private_download`) to a request carrying a
    /// valid token; anyone else gets Slack's sign-in page, HTTP 200.
    fn file(&self, req: &Request<'_>, path: &str, resp: &mut Response, now_ms: i64) {
        let token = req
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        let valid = !self.files_sign_in.load(Ordering::Relaxed)
            && !lock(&self.revoked).contains(token)
            && (token == self.cfg.bot_token
                || token == self.cfg.user_token
                || (self.cfg.rotation && {
                    let o = lock(&self.oauth);
                    token == o.access && now_ms < o.expires_at_ms
                }));
        if !valid {
            resp.html(
                200,
                "<!DOCTYPE html><html><head><title>Slack</title></head><body>\
                 <form id=\"signin_form\" action=\"/signin\" method=\"post\">\
                 <h1>Sign in to Sim Team</h1><input type=\"email\" name=\"email\">\
                 <button type=\"submit\">Sign in with email</button></form></body></html>",
            );
            return;
        }
        // `<team>-<file id>/[download/]<name>`
        let id = path
            .split('/')
            .next()
            .and_then(|s| s.split_once('-'))
            .map(|(_, id)| id)
            .unwrap_or("");
        let model = read(&self.model);
        let found = model
            .channels
            .iter()
            .flat_map(|c| c.messages.iter())
            .flat_map(|m| std::iter::once(m).chain(m.replies.iter()))
            .filter(|m| !m.deleted)
            .find_map(|m| {
                let kind = m.file?;
                let f = super::data::file_of(m.ts, kind);
                (f.0 == id).then_some(f)
            });
        match found {
            Some((_, _, mime, bytes)) => {
                resp.status = 200;
                resp.content_type = mime;
                resp.body.clear();
                resp.body.extend_from_slice(&bytes);
            }
            None => resp.html(404, "<html><body>File not found</body></html>"),
        }
    }

    /// `oauth.v2.access` with `grant_type=refresh_token`: both tokens replaced, the old
    /// refresh token dead.
    fn exchange(&self, p: &[(String, String)], resp: &mut Response, now_ms: i64) -> Option<Reply> {
        let mut o = lock(&self.oauth);
        o.exchanges += 1;
        if get(p, "client_id") != Some(self.cfg.client_id.as_str()) {
            fail(resp, "invalid_client_id");
            return None;
        }
        if get(p, "client_secret") != Some(self.cfg.client_secret.as_str()) {
            fail(resp, "bad_client_secret");
            return None;
        }
        if get(p, "grant_type") != Some("refresh_token") {
            fail(resp, "invalid_grant_type");
            return None;
        }
        if !self.cfg.rotation || get(p, "refresh_token") != Some(o.refresh.as_str()) {
            fail(resp, "invalid_refresh_token");
            return None;
        }
        o.rotate(now_ms);
        resp.json(
            200,
            &json!({"ok": true, "app_id": "A0SIMAPP", "scope": "channels:history,channels:read,groups:history,im:history,users:read",
                "token_type": "bot", "access_token": o.access, "refresh_token": o.refresh,
                "expires_in": super::ROTATED_TOKEN_SECS, "bot_user_id": "U0SIMBOT",
                "team": {"id": self.cfg.team, "name": "Sim Team"}, "enterprise": null,
                "is_enterprise_install": false})
            .to_string(),
        );
        if std::mem::take(&mut o.lose_next_answer) {
            return Some(Reply {
                delivery: Delivery::Reset,
                delay: None,
            });
        }
        None
    }

    fn call(
        &self,
        req: &Request<'_>,
        method: &str,
        p: &[(String, String)],
        resp: &mut Response,
        now_ms: i64,
        hold: &mut Option<std::time::Duration>,
    ) {
        let p = p.to_vec();
        let token = req
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string)
            .or_else(|| {
                (req.method == "POST")
                    .then(|| get(&p, "token").map(str::to_string))
                    .flatten()
            });
        let Some(token) = token else {
            return fail(resp, "not_authed");
        };
        if lock(&self.revoked).contains(&token) {
            return fail(resp, "token_revoked");
        }
        let bot = if self.cfg.rotation {
            let mut o = lock(&self.oauth);
            if o.old_access.contains(&token) || (token == o.access && now_ms >= o.expires_at_ms) {
                return fail(resp, "token_expired");
            }
            if token == o.access
                && o.generation > 1
                && o.held == 0
                && let Some(d) = o.hold_new_token
            {
                o.held += 1;
                *hold = Some(d);
            }
            token == o.access
        } else {
            token == self.cfg.bot_token
        };
        if !bot && token != self.cfg.user_token {
            return fail(resp, "invalid_auth");
        }
        if let Some(limit) = tier(self, method) {
            let minute = now_ms.div_euclid(60_000);
            let mut w = lock(&self.windows);
            let e = w.entry(method.to_string()).or_insert((minute, 0));
            if e.0 != minute {
                *e = (minute, 0);
            }
            if e.1 >= limit {
                self.counters.violations.fetch_add(1, Ordering::Relaxed);
                let wait = (60_000 - now_ms.rem_euclid(60_000) + 999) / 1000;
                fail(resp, "ratelimited");
                resp.status = 429;
                resp.headers.push(("Retry-After", wait.max(1).to_string()));
                return;
            }
            e.1 += 1;
        }
        if matches!(method, "conversations.history" | "conversations.replies")
            && get(&p, "channel").is_some_and(|c| lock(&self.no_access).contains(c))
        {
            return fail(resp, "not_in_channel");
        }
        let model = read(&self.model);
        let out = match method {
            "auth.test" => Ok(self.auth_test(bot)),
            "conversations.list" => self.list(&model, &p),
            "conversations.history" => self.history(&model, &p),
            "conversations.replies" => self.replies(&model, &p),
            "users.list" => self.users(&model, &p),
            _ => Err("unknown_method"),
        };
        match out {
            Ok(v) => resp.json(200, &v.to_string()),
            Err(e) => fail(resp, e),
        }
    }

    fn auth_test(&self, bot: bool) -> Value {
        let team = &self.cfg.team;
        let mut v = json!({"ok": true, "url": "https://sim.slack.com/", "team": "Sim Team",
            "user": if bot { "inletbot" } else { "user0" }, "team_id": team,
            "user_id": if bot { "U0SIMBOT" } else { "U0SIM0000" }});
        if bot {
            v["bot_id"] = json!("B0SIMBOT");
        }
        v
    }

    /// `limit` within `1..max` (non-Marketplace: at most 15).
    fn limit(
        &self,
        p: &[(String, String)],
        default: usize,
        max: usize,
    ) -> Result<usize, &'static str> {
        let (default, max) = if self.cfg.non_marketplace {
            (default.min(15), max.min(15))
        } else {
            (default, max)
        };
        match get(p, "limit") {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(0) => Ok(default),
                Ok(n) => Ok(n.min(max)),
                Err(_) => Err("invalid_limit"),
            },
        }
    }

    fn list(&self, m: &Model, p: &[(String, String)]) -> Result<Value, &'static str> {
        let types: Vec<&str> = get(p, "types")
            .unwrap_or("public_channel")
            .split(',')
            .collect();
        let exclude_archived = get(p, "exclude_archived") == Some("true");
        let limit = self.limit(p, 100, 999)?;
        let start = match get(p, "cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => uncursor(c)
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or("invalid_cursor")?,
        };
        let all: Vec<Value> = m
            .channels
            .iter()
            .filter(|c| types.contains(&c.kind.type_name()) && !(exclude_archived && c.archived))
            .map(|c| c.json())
            .collect();
        let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
        let next = if start + limit < all.len() {
            cursor(&(start + limit).to_string())
        } else {
            String::new()
        };
        Ok(json!({"ok": true, "channels": page, "response_metadata": {"next_cursor": next}}))
    }

    fn users(&self, m: &Model, p: &[(String, String)]) -> Result<Value, &'static str> {
        let limit = self.limit(p, 100, 999)?;
        let start = match get(p, "cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => uncursor(c)
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or("invalid_cursor")?,
        };
        let team = &self.cfg.team;
        let page: Vec<Value> = m
            .users
            .iter()
            .skip(start)
            .take(limit)
            .map(|u| u.json(team))
            .collect();
        let next = if start + limit < m.users.len() {
            cursor(&(start + limit).to_string())
        } else {
            String::new()
        };
        Ok(
            json!({"ok": true, "members": page, "cache_ts": 0, "response_metadata": {"next_cursor": next}}),
        )
    }

    /// `oldest`, `latest` and `inclusive` as a predicate on ts.
    fn window(p: &[(String, String)]) -> Result<impl Fn(Ts) -> bool, &'static str> {
        let oldest = match get(p, "oldest").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_ts(s).ok_or("invalid_ts_oldest")?),
        };
        let latest = match get(p, "latest").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_ts(s).ok_or("invalid_ts_latest")?),
        };
        let inclusive = matches!(get(p, "inclusive"), Some("true" | "1"));
        Ok(move |t: Ts| {
            let lo = oldest.is_none_or(|o| if inclusive { t >= o } else { t > o });
            let hi = latest.is_none_or(|l| if inclusive { t <= l } else { t < l });
            lo && hi
        })
    }

    fn history(&self, m: &Model, p: &[(String, String)]) -> Result<Value, &'static str> {
        let ch = get(p, "channel")
            .and_then(|c| m.channel(c))
            .ok_or("channel_not_found")?;
        let limit = self.limit(p, 100, 999)?;
        let inside = Self::window(p)?;
        // The cursor names the ts the next page starts at (inclusive, going down).
        let from = match get(p, "cursor").filter(|c| !c.is_empty()) {
            None => Ts::MAX,
            Some(c) => uncursor(c)
                .and_then(|s| parse_ts(&s))
                .ok_or("invalid_cursor")?,
        };
        let team = &self.cfg.team;
        let mut it = ch
            .messages
            .iter()
            .rev()
            .filter(|x| x.ts <= from && x.listed() && inside(x.ts));
        let page: Vec<Value> = it
            .by_ref()
            .take(limit)
            .map(|x| x.json(team, None))
            .collect();
        let next = it.next().map(|x| cursor(&ts_str(x.ts))).unwrap_or_default();
        Ok(
            json!({"ok": true, "messages": page, "has_more": !next.is_empty(), "pin_count": 0,
            "channel_actions_ts": null, "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next}}),
        )
    }

    fn replies(&self, m: &Model, p: &[(String, String)]) -> Result<Value, &'static str> {
        let ch = get(p, "channel")
            .and_then(|c| m.channel(c))
            .ok_or("channel_not_found")?;
        let ts = get(p, "ts").and_then(parse_ts).ok_or("thread_not_found")?;
        let parent = ch
            .find(ts)
            .map(|i| &ch.messages[i])
            .filter(|x| x.listed())
            .ok_or("thread_not_found")?;
        let limit = self.limit(p, 100, 999)?;
        let inside = Self::window(p)?;
        let from = match get(p, "cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(
                uncursor(c)
                    .and_then(|s| parse_ts(&s))
                    .ok_or("invalid_cursor")?,
            ),
        };
        let team = &self.cfg.team;
        let mut page = Vec::new();
        let mut budget = limit;
        if from.is_none() {
            page.push(parent.json(team, None));
            budget = budget.saturating_sub(1).max(1);
        }
        let mut it = parent
            .live_replies()
            .filter(|r| from.is_none_or(|f| r.ts >= f) && inside(r.ts));
        page.extend(
            it.by_ref()
                .take(budget)
                .map(|r| r.json(team, Some(&parent.user))),
        );
        let next = it.next().map(|r| cursor(&ts_str(r.ts))).unwrap_or_default();
        Ok(
            json!({"ok": true, "messages": page, "has_more": !next.is_empty(),
            "response_metadata": {"next_cursor": next}}),
        )
    }
}
