//! HTTP endpoints: the token endpoint, bearer tokens, the unit quota, Google's error
//! envelope and the Gmail methods (profile, labels, threads, history).

use super::data::{Event, Format, Model, message_json};
use super::{API_PREFIX, State, TOKEN_PATH};
use crate::reddit::LoggedRequest;
use crate::reddit::faults::Injected;
use crate::server::{Handler, Reply, Request, Response};
use crate::util::{base64_decode, lock, parse_form, read};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Google's error envelope.
pub(crate) fn google_error(status: u16, reason: &str, message: &str) -> String {
    let s = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}],
        "status": s}})
    .to_string()
}

/// Quota units of a method (gmail.md §6).
pub(crate) fn units_of(method: &str) -> u64 {
    match method {
        "profile" | "labels.list" | "labels.get" => 1,
        "history.list" => 2,
        "messages.list" | "messages.get" => 5,
        "threads.list" | "threads.get" => 10,
        _ => 1,
    }
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

fn all<'a>(p: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    p.iter()
        .filter(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `(method, thread id)` of a path under `/users/{me}/`.
fn method_of(rest: &str) -> Option<(&'static str, Option<&str>)> {
    let (_user, tail) = rest.split_once('/')?;
    match tail.split('/').collect::<Vec<_>>().as_slice() {
        ["profile"] => Some(("profile", None)),
        ["labels"] => Some(("labels.list", None)),
        ["threads"] => Some(("threads.list", None)),
        ["threads", id] => Some(("threads.get", Some(id))),
        ["history"] => Some(("history.list", None)),
        _ => None,
    }
}

/// Offsets as opaque page tokens.
fn page_token(offset: usize) -> String {
    format!("CiAK{offset:08x}")
}

fn parse_page_token(t: &str) -> Option<usize> {
    usize::from_str_radix(t.strip_prefix("CiAK")?, 16).ok()
}

fn max_results(p: &[(String, String)]) -> Result<usize, String> {
    match get(p, "maxResults") {
        None => Ok(100),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(format!("Invalid maxResults: {s}")),
        },
    }
}

impl Handler for State {
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply {
        let now_ms = self.cfg.clock.now().0;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let is_token = req.path == TOKEN_PATH;
        let method = if is_token {
            "token"
        } else {
            req.path
                .strip_prefix(API_PREFIX)
                .and_then(|r| method_of(r.trim_start_matches('/')))
                .map_or("unknown", |(m, _)| m)
        };
        *lock(&self.per_method)
            .entry(method.to_string())
            .or_insert(0) += 1;
        let decision = lock(&self.faults).decide(req.path, is_token);
        match decision.injected {
            Injected::Reset => {}
            Injected::Status5xx(code) => {
                resp.json(code, &google_error(code, "backendError", "Backend Error"));
            }
            Injected::Burst429 => {
                resp.json(
                    429,
                    &google_error(
                        429,
                        "rateLimitExceeded",
                        "Too many concurrent requests for user.",
                    ),
                );
                if let Some(secs) = lock(&self.faults).retry_after_secs() {
                    resp.headers.push(("Retry-After", secs.to_string()));
                }
            }
            Injected::Truncate | Injected::None if is_token => self.token(req, resp, now_ms),
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
        tracing::debug!("gmail sim: malformed request: {reason}");
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl State {
    /// `POST /token`, form-encoded (client id and secret in the form or as Basic).
    fn token(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        let body = std::str::from_utf8(req.body).ok().and_then(parse_form);
        let Some(p) = body.filter(|_| req.method == "POST") else {
            return resp.json(
                400,
                r#"{"error": "invalid_request", "error_description": "POST a form"}"#,
            );
        };
        let basic = req
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64_decode(b.trim()))
            .and_then(|b| String::from_utf8(b).ok());
        let (id, secret) = match (get(&p, "client_id"), get(&p, "client_secret"), &basic) {
            (Some(i), Some(s), _) => (i.to_string(), s.to_string()),
            (_, _, Some(b)) => match b.split_once(':') {
                Some((i, s)) => (i.to_string(), s.to_string()),
                None => (String::new(), String::new()),
            },
            _ => (String::new(), String::new()),
        };
        if id != self.cfg.client_id || secret != self.cfg.client_secret {
            return resp.json(401, r#"{"error": "invalid_client", "error_description": "The OAuth client was not found."}"#);
        }
        if get(&p, "grant_type") != Some("refresh_token") {
            return resp.json(400, r#"{"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}"#);
        }
        let rt = get(&p, "refresh_token").unwrap_or("");
        if rt != self.cfg.refresh_token || self.revoked.load(Ordering::Relaxed) {
            return resp.json(400, r#"{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}"#);
        }
        let n = self.counters.tokens.fetch_add(1, Ordering::Relaxed);
        let token = format!("ya29.a0Af-sim-{n:x}");
        let expires_in = self.cfg.token_expires_in;
        lock(&self.tokens).insert(token.clone(), now_ms + expires_in as i64 * 1000);
        resp.json(
            200,
            &json!({"access_token": token, "expires_in": expires_in,
                    "scope": "https://www.googleapis.com/auth/gmail.readonly",
                    "token_type": "Bearer"})
            .to_string(),
        );
    }

    /// Whether the request carries a live access token.
    fn authorised(&self, req: &Request<'_>, now_ms: i64) -> bool {
        let Some(t) = req
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        lock(&self.tokens)
            .get(t.trim())
            .is_some_and(|exp| *exp > now_ms)
    }

    /// Counts `units` against the per-user budgets (per second and per minute, as moving
    /// windows); `false` (and a violation) when they would be exceeded.
    fn spend(&self, units: u64) -> bool {
        let now = Instant::now();
        let mut w = lock(&self.units);
        while let Some(&(t, _)) = w.front()
            && now.duration_since(t) >= Duration::from_secs(60)
        {
            w.pop_front();
        }
        let second: u64 = w
            .iter()
            .filter(|(t, _)| now.duration_since(*t) < Duration::from_secs(1))
            .map(|(_, u)| u)
            .sum();
        let minute: u64 = w.iter().map(|(_, u)| u).sum();
        if second + units > self.cfg.units_per_second || minute + units > self.cfg.units_per_minute
        {
            self.counters.violations.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        w.push_back((now, units));
        self.counters.units.fetch_add(units, Ordering::Relaxed);
        true
    }

    fn route(&self, req: &Request<'_>, resp: &mut Response, now_ms: i64) {
        let Some((method, id)) = req
            .path
            .strip_prefix(API_PREFIX)
            .and_then(|r| method_of(r.trim_start_matches('/')))
        else {
            return resp.json(404, &google_error(404, "notFound", "Not Found"));
        };
        if !self.authorised(req, now_ms) {
            return resp.json(
                401,
                &google_error(
                    401,
                    "authError",
                    "Request had invalid authentication credentials.",
                ),
            );
        }
        if !self.spend(units_of(method)) {
            if self.cfg.limit_as_403 {
                return resp.json(
                    403,
                    &google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
                );
            }
            return resp.json(
                429,
                &google_error(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            );
        }
        let Some(p) = parse_form(req.query) else {
            return resp.json(400, &google_error(400, "badRequest", "Bad query"));
        };
        let model = read(&self.model);
        let out = match (method, id) {
            ("profile", _) => Ok(self.profile(&model)),
            ("labels.list", _) => Ok(labels(&model)),
            ("threads.list", _) => threads_list(&model, &p),
            ("threads.get", Some(id)) => thread_get(&model, id, &p),
            ("history.list", _) => history_list(&model, &p),
            _ => Err((404, google_error(404, "notFound", "Not Found"))),
        };
        match out {
            Ok(v) => resp.json(200, &v.to_string()),
            Err((status, body)) => resp.json(status, &body),
        }
    }

    fn profile(&self, m: &Model) -> Value {
        let (messages, threads) = m.totals();
        json!({"emailAddress": m.email, "messagesTotal": messages, "threadsTotal": threads,
               "historyId": m.history_id.to_string()})
    }
}

type Answer = Result<Value, (u16, String)>;

fn bad(msg: &str) -> (u16, String) {
    (400, google_error(400, "invalidArgument", msg))
}

fn not_found() -> (u16, String) {
    (
        404,
        google_error(404, "notFound", "Requested entity was not found."),
    )
}

fn labels(m: &Model) -> Value {
    let labels: Vec<Value> = m
        .labels
        .iter()
        .map(|l| {
            if l.system {
                json!({"id": l.id, "name": l.name, "type": "system",
                       "messageListVisibility": "show", "labelListVisibility": "labelShow"})
            } else {
                json!({"id": l.id, "name": l.name, "type": "user",
                       "messageListVisibility": "show", "labelListVisibility": "labelShow",
                       "color": {"textColor": "#000000", "backgroundColor": "#16a766"}})
            }
        })
        .collect();
    json!({ "labels": labels })
}

fn threads_list(m: &Model, p: &[(String, String)]) -> Answer {
    let max = max_results(p).map_err(|e| bad(&e))?;
    let label_ids: Vec<String> = all(p, "labelIds").into_iter().map(str::to_string).collect();
    let spam_trash = get(p, "includeSpamTrash") == Some("true");
    let offset = match get(p, "pageToken") {
        Some(t) => parse_page_token(t).ok_or_else(|| bad("Invalid pageToken"))?,
        None => 0,
    };
    let listed: Vec<String> = m
        .thread_ids()
        .into_iter()
        .filter(|t| m.thread_listed(t, &label_ids, spam_trash))
        .collect();
    let page: Vec<Value> = listed
        .iter()
        .skip(offset)
        .take(max)
        .map(|t| {
            json!({"id": t, "snippet": m.thread_snippet(t),
                   "historyId": m.thread_history_id(t).to_string()})
        })
        .collect();
    let mut v = json!({ "resultSizeEstimate": listed.len() });
    if !page.is_empty() {
        v["threads"] = Value::Array(page);
    }
    if offset + max < listed.len() {
        v["nextPageToken"] = json!(page_token(offset + max));
    }
    Ok(v)
}

fn thread_get(m: &Model, id: &str, p: &[(String, String)]) -> Answer {
    let format = match get(p, "format").unwrap_or("full") {
        "full" => Format::Full,
        "metadata" => Format::Metadata,
        "minimal" => Format::Minimal,
        other => return Err(bad(&format!("Invalid format: {other}"))),
    };
    let only: Vec<String> = all(p, "metadataHeaders")
        .into_iter()
        .map(str::to_string)
        .collect();
    let msgs = m.thread_msgs(id);
    if msgs.is_empty() {
        return Err(not_found());
    }
    let snippet = m.thread_snippet(id);
    let messages: Vec<Value> = msgs
        .iter()
        .map(|x| message_json(x, format, &only))
        .collect();
    Ok(json!({"id": id, "snippet": snippet,
              "historyId": m.thread_history_id(id).to_string(), "messages": messages}))
}

fn history_list(m: &Model, p: &[(String, String)]) -> Answer {
    let Some(start) = get(p, "startHistoryId") else {
        return Err(bad("startHistoryId is required"));
    };
    let start: u64 = start.parse().map_err(|_| bad("Invalid startHistoryId"))?;
    if start == 0 || start < m.oldest_valid || start > m.history_id {
        return Err(not_found());
    }
    let max = max_results(p).map_err(|e| bad(&e))?;
    let types: Vec<&str> = all(p, "historyTypes");
    let label = get(p, "labelId");
    let offset = match get(p, "pageToken") {
        Some(t) => parse_page_token(t).ok_or_else(|| bad("Invalid pageToken"))?,
        None => 0,
    };
    let matching: Vec<&super::data::Hist> = m
        .history
        .iter()
        .filter(|h| h.id > start)
        .filter(|h| {
            let kind = match h.event {
                Event::Added => "messageAdded",
                Event::Deleted => "messageDeleted",
                Event::LabelsAdded(_) => "labelAdded",
                Event::LabelsRemoved(_) => "labelRemoved",
            };
            types.is_empty() || types.contains(&kind)
        })
        .filter(|h| label.is_none_or(|l| h.labels.iter().any(|x| x == l)))
        .collect();
    let records: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(max)
        .map(|h| {
            let brief = json!({"id": h.msg, "threadId": h.thread});
            let full = json!({"id": h.msg, "threadId": h.thread, "labelIds": h.labels});
            let mut r = json!({"id": h.id.to_string(), "messages": [brief]});
            match &h.event {
                Event::Added => r["messagesAdded"] = json!([{ "message": full }]),
                Event::Deleted => r["messagesDeleted"] = json!([{ "message": brief }]),
                Event::LabelsAdded(l) => {
                    r["labelsAdded"] = json!([{ "message": full, "labelIds": l }]);
                }
                Event::LabelsRemoved(l) => {
                    r["labelsRemoved"] = json!([{ "message": full, "labelIds": l }]);
                }
            }
            r
        })
        .collect();
    let mut v = json!({ "historyId": m.history_id.to_string() });
    if !records.is_empty() {
        v["history"] = Value::Array(records);
    }
    if offset + max < matching.len() {
        v["nextPageToken"] = json!(page_token(offset + max));
    }
    Ok(v)
}
