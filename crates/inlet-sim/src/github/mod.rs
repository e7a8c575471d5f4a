//! A GitHub REST simulator for the authenticated user's stars (`GET /user/starred`), per
//! `shared/providers/github.md`:
//!
//! * bearer (or legacy `token`) auth; 401 `Bad credentials` otherwise; 403 without a
//!   `User-Agent`;
//! * `per_page` (1..=100, default 30), `page`, `sort=created|updated`, `direction`;
//!   `Link` header with `next`/`last`/`first`/`prev` (none for a single page);
//! * `Accept: application/vnd.github.star+json` → `{"starred_at", "repo"}` items, else bare
//!   repositories;
//! * weak `ETag` per page content (URL and media type); `If-None-Match` → `304` with empty
//!   body that costs no rate-limit budget;
//! * primary limit (default 5,000 per hour) with `X-RateLimit-*` headers on every answer;
//!   a request over the limit gets 403 and counts as a violation;
//! * faults: the next N requests get a secondary-limit 403 with `Retry-After`, or a 502;
//! * hooks to star, unstar and edit (star count, description, rename, archive); the
//!   truth; a request log.

use crate::server::{self, Handler, Reply, Request, Response, ServerHandle};
use inlet_core::{Clock, SystemClock};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The star media type.
pub const STAR_MEDIA_TYPE: &str = "application/vnd.github.star+json";

/// Settings of a simulated account.
#[derive(Clone)]
pub struct GithubSimConfig {
    /// Seed of the generated repositories.
    pub seed: u64,
    /// Starred repositories at start.
    pub stars: u64,
    /// The token that is accepted.
    pub token: String,
    /// Primary rate limit per hour.
    pub rate_limit: u64,
    /// Time source (rate-limit windows, new stars).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for GithubSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSimConfig")
            .field("seed", &self.seed)
            .field("stars", &self.stars)
            .finish_non_exhaustive()
    }
}

impl Default for GithubSimConfig {
    fn default() -> Self {
        GithubSimConfig {
            seed: 1,
            stars: 120,
            token: "ghp_simulatedtoken0000000000000000000000".into(),
            rate_limit: 5000,
            clock: Arc::new(SystemClock),
        }
    }
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Path without the query.
    pub path: String,
    /// Raw query.
    pub query: String,
    /// Status answered.
    pub status: u16,
    /// Whether it carried `If-None-Match`.
    pub conditional: bool,
    /// When it arrived (the simulator's clock, ms).
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
struct Repo {
    id: u64,
    owner: String,
    name: String,
    description: Option<String>,
    language: Option<&'static str>,
    stargazers: i64,
    forks: i64,
    private: bool,
    fork: bool,
    archived: bool,
    topics: Vec<String>,
    pushed_at: i64,
    created_at: i64,
}

#[derive(Debug, Clone)]
struct Star {
    repo: Repo,
    starred_at: i64,
}

#[derive(Debug, Default)]
struct Faults {
    secondary_next: u32,
    /// `Retry-After` of the secondary-limit answers (`None`: not sent).
    retry_after_secs: Option<u64>,
    /// Status of the secondary-limit answers (403 or 429).
    secondary_status: u16,
    http_502_next: u32,
}

#[derive(Debug)]
struct Model {
    /// Live stars, newest first.
    stars: Vec<Star>,
    /// Unstarred repositories (so a re-star brings back the same repository).
    unstarred: Vec<Repo>,
    next_id: u64,
    window_start: Option<i64>,
    used: u64,
    faults: Faults,
    log: Vec<LoggedRequest>,
}

struct State {
    cfg: GithubSimConfig,
    model: Mutex<Model>,
    violations: AtomicU64,
}

/// A running GitHub simulator.
#[derive(Clone)]
pub struct GithubSim {
    state: Arc<State>,
    server: Arc<ServerHandle>,
}

impl std::fmt::Debug for GithubSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSim")
            .field("addr", &self.server.addr())
            .finish()
    }
}

const LANGUAGES: &[&str] = &["Rust", "Go", "Python", "TypeScript", "C", "Zig"];

fn repo(seed: u64, i: u64, now: i64) -> Repo {
    let h = crate::util::mix(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Repo {
        id: 10_000_000 + i,
        owner: format!("owner{}", h % 53),
        name: format!("project-{i}"),
        description: (!h.is_multiple_of(7))
            .then(|| format!("Project {i}: tools for \"things\" ✨")),
        language: (!h.is_multiple_of(5)).then(|| LANGUAGES[(h % LANGUAGES.len() as u64) as usize]),
        stargazers: (h % 50_000) as i64,
        forks: (h % 900) as i64,
        private: h.is_multiple_of(41),
        fork: h.is_multiple_of(13),
        archived: h.is_multiple_of(29),
        topics: (0..(h % 3))
            .map(|t| format!("topic{}", (h >> (t * 8)) % 20))
            .collect(),
        pushed_at: now - (h % 90) as i64 * 86_400,
        created_at: now - 400 * 86_400 - (h % 1000) as i64 * 86_400,
    }
}

fn iso(secs: i64) -> String {
    inlet_core::Timestamp::from_secs(secs)
        .to_string()
        .replace(".000Z", "Z")
}

fn repo_json(r: &Repo, base: &str) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    json!({
        "id": r.id,
        "node_id": format!("R_kgDO{}", r.id),
        "name": r.name,
        "full_name": full,
        "private": r.private,
        "owner": {"login": r.owner, "id": 5000 + r.id % 53, "type": "User",
                  "avatar_url": format!("https://avatars.githubusercontent.com/u/{}", 5000 + r.id % 53)},
        "html_url": format!("https://github.com/{full}"),
        "description": r.description,
        "fork": r.fork,
        "url": format!("{base}/repos/{full}"),
        "created_at": iso(r.created_at),
        "updated_at": iso(r.pushed_at),
        "pushed_at": iso(r.pushed_at),
        "stargazers_count": r.stargazers,
        "watchers_count": r.stargazers,
        "language": r.language,
        "forks_count": r.forks,
        "archived": r.archived,
        "disabled": false,
        "open_issues_count": r.forks % 17,
        "topics": r.topics,
        "visibility": if r.private { "private" } else { "public" },
        "default_branch": "main",
    })
}

impl GithubSim {
    /// Start on `127.0.0.1` (random port).
    pub async fn start(cfg: GithubSimConfig) -> std::io::Result<GithubSim> {
        let now = cfg.clock.now().secs();
        let stars = (0..cfg.stars)
            .map(|i| Star {
                repo: repo(cfg.seed, i, now),
                starred_at: now - 86_400 - i as i64 * 3_600,
            })
            .collect();
        let state = Arc::new(State {
            model: Mutex::new(Model {
                stars,
                unstarred: Vec::new(),
                next_id: cfg.stars,
                window_start: None,
                used: 0,
                faults: Faults::default(),
                log: Vec::new(),
            }),
            cfg,
            violations: AtomicU64::new(0),
        });
        let server = server::serve(state.clone()).await?;
        Ok(GithubSim {
            state,
            server: Arc::new(server),
        })
    }

    /// Base URL (stands in for `https://api.github.com`).
    pub fn api_base(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The accepted token.
    pub fn token(&self) -> &str {
        &self.state.cfg.token
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.state.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Star a new repository now; returns its id.
    pub fn star_new(&self) -> u64 {
        let now = self.state.cfg.clock.now().secs();
        let mut m = self.model();
        let r = repo(self.state.cfg.seed, m.next_id, now);
        m.next_id += 1;
        let id = r.id;
        m.stars.insert(
            0,
            Star {
                repo: r,
                starred_at: now,
            },
        );
        id
    }

    /// Unstar a repository; false when it is not starred.
    pub fn unstar(&self, id: u64) -> bool {
        let mut m = self.model();
        let Some(i) = m.stars.iter().position(|s| s.repo.id == id) else {
            return false;
        };
        let s = m.stars.remove(i);
        m.unstarred.push(s.repo);
        true
    }

    /// Star an unstarred repository again (it moves to the top with a new `starred_at`).
    pub fn restar(&self, id: u64) -> bool {
        let now = self.state.cfg.clock.now().secs();
        let mut m = self.model();
        let Some(i) = m.unstarred.iter().position(|r| r.id == id) else {
            return false;
        };
        let r = m.unstarred.remove(i);
        m.stars.insert(
            0,
            Star {
                repo: r,
                starred_at: now,
            },
        );
        true
    }

    /// Change a starred repository's star count; false when it is not starred.
    pub fn edit_stargazers(&self, id: u64, count: i64) -> bool {
        let mut m = self.model();
        match m.stars.iter_mut().find(|s| s.repo.id == id) {
            Some(s) => {
                s.repo.stargazers = count;
                true
            }
            None => false,
        }
    }

    fn edit(&self, id: u64, f: impl FnOnce(&mut Repo)) -> bool {
        let mut m = self.model();
        match m.stars.iter_mut().find(|s| s.repo.id == id) {
            Some(s) => {
                f(&mut s.repo);
                true
            }
            None => false,
        }
    }

    /// Change a starred repository's description (`None`: no description); false when
    /// it is not starred. Its position in the star list does not move.
    pub fn edit_description(&self, id: u64, description: Option<&str>) -> bool {
        self.edit(id, |r| r.description = description.map(str::to_string))
    }

    /// Rename a starred repository (`name` and `full_name` change, the id stays); false
    /// when it is not starred.
    pub fn rename(&self, id: u64, name: &str) -> bool {
        self.edit(id, |r| r.name = name.to_string())
    }

    /// Archive (or unarchive) a starred repository; false when it is not starred.
    pub fn archive(&self, id: u64, archived: bool) -> bool {
        self.edit(id, |r| r.archived = archived)
    }

    /// The starred repositories as star+json items, newest star first.
    pub fn truth(&self) -> Vec<Value> {
        let base = self.api_base();
        self.model()
            .stars
            .iter()
            .map(|s| json!({"starred_at": iso(s.starred_at), "repo": repo_json(&s.repo, &base)}))
            .collect()
    }

    /// Ids of the starred repositories, newest star first.
    pub fn starred_ids(&self) -> Vec<u64> {
        self.model().stars.iter().map(|s| s.repo.id).collect()
    }

    /// The next `n` requests get a secondary-limit 403 with `Retry-After: secs`.
    pub fn secondary_limit_next(&self, n: u32, retry_after_secs: u64) {
        let mut m = self.model();
        m.faults.secondary_next = n;
        m.faults.retry_after_secs = Some(retry_after_secs);
        m.faults.secondary_status = 403;
    }

    /// The next `n` requests get a secondary-limit answer with `status` (403 or 429) and
    /// no `Retry-After`, while the primary budget has requests left (GitHub's docs: wait
    /// at least a minute, then back off exponentially).
    pub fn secondary_limit_without_retry_after_next(&self, n: u32, status: u16) {
        let mut m = self.model();
        m.faults.secondary_next = n;
        m.faults.retry_after_secs = None;
        m.faults.secondary_status = status;
    }

    /// The next `n` requests get a 502.
    pub fn bad_gateway_next(&self, n: u32) {
        self.model().faults.http_502_next = n;
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.model().log.clone()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.model().log.clear();
    }

    /// Primary rate-limit budget used in the current window.
    pub fn budget_used(&self) -> u64 {
        self.model().used
    }

    /// Requests made with the budget spent.
    pub fn rate_limit_violations(&self) -> u64 {
        self.state.violations.load(Ordering::Relaxed)
    }

    /// Stop the server.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn error(resp: &mut Response, status: u16, message: &str) {
    let body = json!({"message": message,
        "documentation_url": "https://docs.github.com/rest", "status": status.to_string()});
    resp.json(status, &body.to_string());
}

impl Handler for State {
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply {
        let now_ms = self.cfg.clock.now().0;
        let now = now_ms.div_euclid(1000);
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let conditional = req.header("if-none-match").is_some();
        self.answer(&mut m, req, resp, now);
        m.log.push(LoggedRequest {
            path: req.path.to_string(),
            query: req.query.to_string(),
            status: resp.status,
            conditional,
            at_ms: now_ms,
        });
        Reply::default()
    }
}

impl State {
    fn answer(&self, m: &mut Model, req: &Request<'_>, resp: &mut Response, now: i64) {
        let window = *m.window_start.get_or_insert(now);
        if now >= window + 3600 {
            m.window_start = Some(now);
            m.used = 0;
        }
        let reset = m.window_start.unwrap_or(now) + 3600;
        let token_ok = req.header("authorization").is_some_and(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
                .is_some_and(|t| t == self.cfg.token)
        });
        let limit = self.cfg.rate_limit;
        let headers = |resp: &mut Response, used: u64| {
            resp.headers.extend([
                ("x-ratelimit-limit", limit.to_string()),
                (
                    "x-ratelimit-remaining",
                    limit.saturating_sub(used).to_string(),
                ),
                ("x-ratelimit-used", used.to_string()),
                ("x-ratelimit-reset", reset.to_string()),
                ("x-ratelimit-resource", "core".to_string()),
            ]);
        };
        if req.header("user-agent").is_none() {
            return error(
                resp,
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            );
        }
        if !token_ok {
            return error(resp, 401, "Bad credentials");
        }
        if m.faults.http_502_next > 0 {
            m.faults.http_502_next -= 1;
            resp.html(502, "<html><body><h1>502 Bad Gateway</h1></body></html>");
            return;
        }
        if m.faults.secondary_next > 0 {
            m.faults.secondary_next -= 1;
            error(
                resp,
                m.faults.secondary_status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            if let Some(secs) = m.faults.retry_after_secs {
                resp.headers.push(("retry-after", secs.to_string()));
            }
            headers(resp, m.used);
            return;
        }
        if req.method != "GET" || req.path != "/user/starred" {
            headers(resp, m.used);
            return error(resp, 404, "Not Found");
        }
        // Build the page first: a 304 needs its ETag and costs nothing.
        let q = req.query;
        let per_page = query_param(q, "per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = query_param(q, "page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let star_type = req
            .header("accept")
            .is_some_and(|a| a.contains(STAR_MEDIA_TYPE));
        let mut order: Vec<&Star> = m.stars.iter().collect();
        if query_param(q, "sort") == Some("updated") {
            order.sort_by_key(|s| std::cmp::Reverse(s.repo.pushed_at));
        }
        if query_param(q, "direction") == Some("asc") {
            order.reverse();
        }
        let base = format!("http://{}", req.header("host").unwrap_or("api.github.com"));
        let items: Vec<Value> = order
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|s| {
                if star_type {
                    json!({"starred_at": iso(s.starred_at), "repo": repo_json(&s.repo, &base)})
                } else {
                    repo_json(&s.repo, &base)
                }
            })
            .collect();
        let body = Value::Array(items).to_string();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (q, star_type, &body).hash(&mut h);
        let etag = format!("W/\"{:016x}\"", h.finish());
        if req.header("if-none-match") == Some(etag.as_str()) {
            resp.status = 304;
            resp.body.clear();
            resp.headers.push(("etag", etag));
            headers(resp, m.used);
            return;
        }
        if m.used >= limit {
            self.violations.fetch_add(1, Ordering::Relaxed);
            headers(resp, m.used);
            return error(resp, 403, "API rate limit exceeded for user ID 9001.");
        }
        m.used += 1;
        let last = order.len().div_ceil(per_page).max(1);
        let url = |p: usize| {
            let mut kv: Vec<String> = q
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
                .map(str::to_string)
                .collect();
            kv.push(format!("page={p}"));
            format!("<{base}/user/starred?{}>", kv.join("&"))
        };
        let mut links = Vec::new();
        if page < last {
            links.push(format!("{}; rel=\"next\"", url(page + 1)));
            links.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            links.push(format!("{}; rel=\"first\"", url(1)));
            links.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        resp.json(200, &body);
        if !links.is_empty() {
            resp.headers.push(("link", links.join(", ")));
        }
        resp.headers.push(("etag", etag));
        if star_type {
            resp.headers.push((
                "x-github-media-type",
                "github.v3; param=star; format=json".into(),
            ));
        }
        headers(resp, m.used);
    }
}
