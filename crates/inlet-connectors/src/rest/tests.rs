//! The generic fetcher against a small local API (axum on 127.0.0.1): every paginator
//! kind, auth styles, a child stream, hooks, and bad specs.

use super::*;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value as J, json};
use std::collections::HashMap;

type Q = Query<HashMap<String, String>>;

const N: u64 = 5;

fn item(i: u64) -> J {
    json!({"id": i, "title": format!("item {i}"), "votes": i * 10, "open": i.is_multiple_of(2),
           "at": 1_718_800_000 - i as i64 * 60, "tags": ["a", "b"]})
}

fn num(q: &HashMap<String, String>, k: &str, default: u64) -> u64 {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn cursor(Query(q): Q) -> Json<J> {
    let from = q
        .get("after")
        .map_or(0, |a| a.trim_start_matches("c").parse().unwrap_or(0));
    let to = (from + 2).min(N);
    let children: Vec<J> = (from..to)
        .map(|i| json!({"kind": "t", "data": item(i)}))
        .collect();
    let after = (to < N).then(|| format!("c{to}"));
    Json(json!({"data": {"children": children, "after": after}}))
}

async fn next_url(Query(q): Q) -> Json<J> {
    let page = num(&q, "p", 0);
    let from = page * 2;
    let to = (from + 2).min(N);
    let results: Vec<J> = (from..to).map(item).collect();
    // Relative links, the way many APIs write them.
    let next = (to < N).then(|| format!("/next?p={}", page + 1));
    Json(json!({"results": results, "links": {"next": next}}))
}

async fn link(headers: HeaderMap, Query(q): Q) -> impl IntoResponse {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let page = num(&q, "page", 1);
    let from = (page - 1) * 2;
    let to = (from + 2).min(N);
    let body: Vec<J> = (from..to).map(item).collect();
    let mut h = HeaderMap::new();
    let mut links = vec![format!("<http://{host}/link?page=1>; rel=\"first\"")];
    if to < N {
        links.push(format!(
            "<http://{host}/link?page={}>; rel=\"next\"",
            page + 1
        ));
    }
    h.insert("link", links.join(", ").parse().expect("header"));
    (h, Json(J::Array(body)))
}

async fn offset(Query(q): Q) -> Json<J> {
    let (off, lim) = (num(&q, "start", 0), num(&q, "count", 100));
    let items: Vec<J> = (off..(off + lim).min(N)).map(item).collect();
    Json(json!({"items": items, "meta": {"total": N}}))
}

async fn pages(Query(q): Q) -> Json<J> {
    let (page, size) = (num(&q, "pg", 1), num(&q, "per_page", 2));
    let from = (page - 1) * size;
    let items: Vec<J> = (from..(from + size).min(N)).map(item).collect();
    Json(json!({"rows": items, "pages": N.div_ceil(size)}))
}

async fn keyed(headers: HeaderMap) -> impl IntoResponse {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("Key s3cret") {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no key"})));
    }
    (StatusCode::OK, Json(json!([item(0)])))
}

async fn token(headers: HeaderMap, body: String) -> Json<J> {
    // Basic base64("app:shh") and the client-credentials grant.
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
    if basic != Some("Basic YXBwOnNoaA==") || !body.contains("grant_type=client_credentials") {
        return Json(json!({"error": "invalid_client"}));
    }
    Json(json!({"access_token": "tok-1", "expires_in": 3600}))
}

async fn bearer(headers: HeaderMap) -> impl IntoResponse {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok-1") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        );
    }
    (StatusCode::OK, Json(json!({"items": [item(1), item(2)]})))
}

async fn posts() -> Json<J> {
    Json(json!([{"id": 1, "slug": "p-1"}, {"id": 2, "slug": "p-2"}, {"id": 3, "slug": "p 3"}]))
}

async fn comments(Path(slug): Path<String>, Query(q): Q) -> Json<J> {
    // Post p-1 has three comments over two pages, p-2 none, "p 3" one.
    let all: Vec<J> = match slug.as_str() {
        "p-1" => (0..3).map(|i| json!({"id": format!("1-{i}")})).collect(),
        "p 3" => vec![json!({"id": "3-0"})],
        _ => Vec::new(),
    };
    let page = num(&q, "page", 1) as usize;
    let chunk: Vec<J> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
    Json(J::Array(chunk))
}

/// Two pages by `Link` header; the first answers `304` to its own `ETag`.
async fn etagged(headers: HeaderMap, Query(q): Q) -> impl IntoResponse {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let page = num(&q, "page", 1);
    let etag = format!("W/\"p{page}\"");
    let mut h = HeaderMap::new();
    h.insert("etag", etag.parse().expect("header"));
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, h, String::new());
    }
    if page == 1 {
        h.insert(
            "link",
            format!("<http://{host}/etagged?page=2>; rel=\"next\"")
                .parse()
                .expect("header"),
        );
    }
    let body = J::Array(vec![item(page * 2), item(page * 2 + 1)]);
    (StatusCode::OK, h, body.to_string())
}

async fn looping() -> Json<J> {
    Json(json!({"items": [item(0)], "next": "same"}))
}

/// Start the API; its base URL.
async fn api() -> String {
    let app = Router::new()
        .route("/cursor", get(cursor))
        .route("/next", get(next_url))
        .route("/link", get(link))
        .route("/offset", get(offset))
        .route("/pages", get(pages))
        .route("/keyed", get(keyed))
        .route("/oauth/token", post(token))
        .route("/bearer", get(bearer))
        .route("/posts", get(posts))
        .route("/posts/{slug}/comments", get(comments))
        .route("/loop", get(looping))
        .route("/etagged", get(etagged))
        .route("/stringy", get(|| async { Json(json!("a proxy's page")) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn quick_http() -> HttpConfig {
    HttpConfig {
        retry: inlet_http::RetryPolicy {
            max_attempts: 3,
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(5),
            deadline: std::time::Duration::from_secs(10),
        },
        ..HttpConfig::default()
    }
}

fn connector(base: &str, spec: &str, creds: RestCredentials) -> RestConnector {
    let config = RestConfig {
        spec: spec.to_string(),
        spec_file: None,
        base_url: Some(base.to_string()),
        token_url: None,
    };
    RestConnector::new(&config, &creds, quick_http()).expect("connector")
}

/// Every page of `stream`: the records' ids, and the number of pages.
async fn read_all(c: &RestConnector, stream: &str) -> (Vec<Record>, usize) {
    let spec = c
        .streams()
        .iter()
        .find(|s| s.name == stream)
        .expect("stream");
    let (mut out, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = c.fetch_page(spec, cursor.as_deref()).await.expect("page");
        pages += 1;
        out.extend(page.records);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return (out, pages),
        }
        assert!(pages < 50, "runaway paging");
    }
}

fn ids(r: &[Record]) -> Vec<&str> {
    r.iter().map(|r| r.id.as_str()).collect()
}

const ALL: [&str; 5] = ["0", "1", "2", "3", "4"];

#[tokio::test]
async fn cursor_in_body_with_wrapped_records_and_columns() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/cursor"
query = { limit = 2, raw_json = true }
records = "data.children"
item = "data"
id = "id"
cursor_field = "at"
stop = "created_before"
[streams.paginator]
type = "cursor"
cursor = "/data/after"
param = "after"
[[streams.columns]]
name = "title"
pointer = "title"
[[streams.columns]]
name = "votes"
pointer = "/votes"
type = "int"
[[streams.columns]]
name = "open"
pointer = "open"
type = "bool"
[[streams.columns]]
name = "at"
pointer = "at"
type = "time"
[[streams.columns]]
name = "tags"
pointer = "tags"
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let s = &c.streams()[0];
    assert_eq!(s.table, "rest_t_things");
    assert!(matches!(
        s.stop,
        StopRule::CreatedBefore {
            lookback_secs: 3600
        }
    ));
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 3);
    let r = &recs[1];
    assert_eq!(
        r.values,
        vec![
            inlet_core::Value::Text("item 1".into()),
            inlet_core::Value::Int(10),
            inlet_core::Value::Bool(false),
            inlet_core::Value::Time(inlet_core::Timestamp::from_secs(1_718_800_000 - 60)),
            inlet_core::Value::Text(r#"["a","b"]"#.into()),
        ]
    );
    assert_eq!(
        r.sort_ts,
        Some(inlet_core::Timestamp::from_secs(1_718_800_000 - 60))
    );
    // The record is the `data` object, exactly as served.
    let raw: J = serde_json::from_str(&r.raw).expect("raw");
    assert_eq!(raw, item(1));
    // Interned: a second connector of the same spec shares the specs.
    let again = connector(&base, spec, RestCredentials::default());
    assert!(std::ptr::eq(again.streams(), c.streams()));
}

#[tokio::test]
async fn next_url_in_body_relative_links() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/next"
records = "results"
id = "id"
paginator = { type = "next_url", next = "links.next" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn link_header() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/link"
records = ""
id = "id"
paginator = { type = "link_header" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 3);
    assert_eq!(
        next_link(r#"<https://x/a?page=2>; rel="next", <https://x/a?page=9>; rel="last""#)
            .as_deref(),
        Some("https://x/a?page=2")
    );
}

#[tokio::test]
async fn offset_limit_with_total() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/offset"
records = "items"
id = "id"
paginator = { type = "offset", param = "start", limit_param = "count", limit = 2, total = "meta.total" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 3);
    // Without a total, a full last page costs one more (empty) request.
    let no_total = spec
        .replace(", total = \"meta.total\"", "")
        .replace("limit = 2", "limit = 5");
    let c = connector(&base, &no_total, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn page_numbers_with_size_and_total_pages() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/pages"
records = "rows"
id = "id"
paginator = { type = "page_number", param = "pg", size_param = "per_page", size = 2 }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 3, "the short third page ends the listing");
    // total_pages ends it too, even when the last page is full.
    let by_total = spec.replace("size = 2 }", "size = 1, total_pages = \"pages\" }");
    let c = connector(&base, &by_total, RestCredentials::default());
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ALL);
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn header_auth_and_client_credentials() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
auth = { type = "header", name = "X-Api-Key", prefix = "Key " }
[[streams]]
name = "things"
path = "/keyed"
records = ""
id = "id"
"#;
    let creds = RestCredentials {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let c = connector(&base, spec, creds);
    assert_eq!(ids(&read_all(&c, "things").await.0), ["0"]);
    // A wrong key is an authentication failure, not a retry loop.
    let wrong = RestCredentials {
        token: Some("nope".into()),
        ..Default::default()
    };
    let c = connector(&base, spec, wrong);
    let err = c
        .fetch_page(&c.streams()[0], None)
        .await
        .expect_err("wrong key");
    assert!(matches!(err, ConnectorError::NeedsReauth(_)), "{err:?}");

    let oauth = r#"
name = "t"
base_url = "http://unused.example"
[auth]
type = "oauth2"
grant = "client_credentials"
token_url = "/oauth/token"
[[streams]]
name = "things"
path = "/bearer"
records = "items"
id = "id"
"#;
    let creds = RestCredentials {
        client_id: Some("app".into()),
        client_secret: Some("shh".into()),
        ..Default::default()
    };
    let c = connector(&base, oauth, creds);
    assert_eq!(ids(&read_all(&c, "things").await.0), ["1", "2"]);
    let missing = RestConnector::new(
        &RestConfig {
            spec: oauth.into(),
            spec_file: None,
            base_url: Some(base.clone()),
            token_url: None,
        },
        &RestCredentials::default(),
        quick_http(),
    );
    let msg = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("--client-id"), "{msg}");
}

#[tokio::test]
async fn child_stream_reads_every_parent_with_paging() {
    let base = api().await;
    let spec = r#"
name = "blog"
base_url = "http://unused.example"
[[streams]]
name = "posts"
path = "/posts"
records = ""
id = "id"
[[streams]]
name = "comments"
path = "/posts/{parent_id}/comments"
records = ""
id = "id"
paginator = { type = "page_number", size = 2 }
parent = { stream = "posts", key = "slug" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let (recs, _) = read_all(&c, "comments").await;
    assert_eq!(ids(&recs), ["1-0", "1-1", "1-2", "3-0"]);
    let (posts, _) = read_all(&c, "posts").await;
    assert_eq!(ids(&posts), ["1", "2", "3"]);
}

struct Upper;
impl RestHooks for Upper {
    fn record(&self, _stream: &str, r: &mut Record) -> Result<(), String> {
        r.id = format!("x{}", r.id);
        Ok(())
    }
    fn next(&self, _stream: &str, _r: &Response, next: Option<String>) -> Option<String> {
        // Stop after the first page whatever the API says.
        next.filter(|n| n != "c2")
    }
}

#[tokio::test]
async fn hooks_adjust_records_and_paging() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/cursor"
records = "data.children"
item = "data"
id = "id"
paginator = { type = "cursor", cursor = "data.after", param = "after" }
"#;
    let c = connector(&base, spec, RestCredentials::default()).with_hooks(Arc::new(Upper));
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!(ids(&recs), ["x0", "x1"]);
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn a_cursor_that_repeats_is_an_error_not_a_loop() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/loop"
records = "items"
id = "id"
paginator = { type = "cursor", cursor = "next", param = "c" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let s = &c.streams()[0];
    let first = c.fetch_page(s, None).await.expect("first");
    assert_eq!(first.next.as_deref(), Some("same"));
    let err = c.fetch_page(s, Some("same")).await.expect_err("loop");
    assert!(err.to_string().contains("own cursor"), "{err}");
}

#[tokio::test]
async fn records_missing_or_ids_missing_name_the_pointer() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/offset"
records = "nope"
id = "id"
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let err = c
        .fetch_page(&c.streams()[0], None)
        .await
        .expect_err("no records");
    assert!(err.to_string().contains("/nope"), "{err}");
    let c = connector(
        &base,
        &spec
            .replace("\"nope\"", "\"items\"")
            .replace("id = \"id\"", "id = \"uid\""),
        RestCredentials::default(),
    );
    let err = c
        .fetch_page(&c.streams()[0], None)
        .await
        .expect_err("no id");
    assert!(err.to_string().contains("/uid"), "{err}");
}

#[test]
fn bad_specs_name_the_key() {
    let good = r#"
name = "t"
base_url = "https://api.example.com"
[[streams]]
name = "things"
path = "/things"
records = "items"
id = "id"
"#;
    assert!(parse(good).is_ok());
    let cases: &[(&str, &str)] = &[
        ("name = \"t\"", "name = \"T!\""),
        ("path = \"/things\"", "path = \"things\""),
        ("id = \"id\"", "id = \"id\"\ntable = \"github_stars\""),
        ("id = \"id\"", "id = \"id\"\ncolour = \"blue\""),
        ("id = \"id\"", "id = \"id\"\nstop = \"created_before\""),
        (
            "id = \"id\"",
            "id = \"id\"\npaginator = { type = \"cursor\", param = \"a\" }",
        ),
        (
            "id = \"id\"",
            "id = \"id\"\npaginator = { type = \"sideways\" }",
        ),
        (
            "id = \"id\"",
            "id = \"id\"\n[[streams.columns]]\nname = \"raw\"\npointer = \"x\"",
        ),
        (
            "id = \"id\"",
            "id = \"id\"\nparent = { stream = \"ghost\" }",
        ),
        ("records = \"items\"", "records = \"a..b\""),
        (
            "base_url = \"https://api.example.com\"",
            "base_url = \"ftp://x\"",
        ),
        ("records = \"items\"\n", ""),
    ];
    let want = [
        "name",
        "streams[0].path",
        "streams[0].table",
        "colour",
        "streams[0].stop",
        "cursor",
        "sideways",
        "streams[0].columns[0].name",
        "streams[0].parent.stream",
        "streams[0].records",
        "base_url",
        "records",
    ];
    for ((from, to), key) in cases.iter().zip(want) {
        let text = good.replacen(from, to, 1);
        let err = parse(&text).expect_err(&text).to_string();
        assert!(err.contains(key), "{key:?} not named in {err:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
    // Two streams may not share a table or a name.
    let twice = format!(
        "{good}\n[[streams]]\nname = \"things\"\npath = \"/x\"\nrecords = \"\"\nid = \"id\"\n"
    );
    assert!(
        parse(&twice)
            .expect_err("dup")
            .to_string()
            .contains("streams[1].name")
    );
}

#[test]
fn streams_are_interned_once_per_spec_text() {
    let text = "name = \"intern\"\nbase_url = \"https://a.example\"\n[[streams]]\nname = \"s\"\npath = \"/s\"\nrecords = \"\"\nid = \"id\"\n";
    let a = streams_of_spec(text).expect("spec");
    let b = streams_of_spec(text).expect("spec");
    assert!(std::ptr::eq(a, b));
    assert_eq!(a[0].table, "rest_intern_s");
    assert!(matches!(a[0].stop, StopRule::Never));
}

#[test]
fn every_spec_in_the_docs_parses() {
    let doc = include_str!("../../../../docs/rest.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2, "two worked examples");
    for b in blocks {
        let spec = parse(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert!(!spec.streams.is_empty());
    }
    let file = include_str!("../../../../docs/examples/reddit-inbox.toml");
    assert_eq!(parse(file).expect("example file").streams[0].name, "inbox");
}

/// `conditional = true`: a delta's first page is sent with the stored ETag and a `304` is
/// an empty, final page; the id listing (reconcile) and later pages never send it; the
/// first page's ETag is kept as the stream's validator.
#[tokio::test]
async fn conditional_first_page_and_304() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/etagged"
records = ""
id = "id"
conditional = true
reconcile = true
paginator = { type = "link_header" }
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let s = &c.streams()[0];
    assert_eq!(c.validator(s), None);
    let (recs, pages) = read_all(&c, "things").await;
    assert_eq!((ids(&recs), pages), (vec!["2", "3", "4", "5"], 2));
    assert_eq!(
        c.validator(s).as_deref(),
        Some("W/\"p1\""),
        "the first page's ETag, not the second's"
    );
    // The engine hands the stored validator back to a delta from the top: 304.
    let page = c.fetch_page(s, None).await.expect("304");
    assert!(page.records.is_empty() && page.next.is_none(), "{page:?}");
    assert_eq!(c.validator(s).as_deref(), Some("W/\"p1\""), "kept on a 304");
    // A reconcile's id pages are never conditional.
    let ids_page = c.fetch_id_page(s, None).await.expect("ids");
    assert_eq!(ids_page.ids, ["2", "3"]);
    assert!(ids_page.next.is_some());
    // A full or resumed pass clears it: the first page is read again.
    c.set_validator(s, None);
    assert_eq!(c.fetch_page(s, None).await.expect("page").records.len(), 2);
    // A stream that is not conditional never sends one, whatever it is handed.
    let plain = connector(
        &base,
        &spec.replace("conditional = true\n", ""),
        RestCredentials::default(),
    );
    let ps = &plain.streams()[0];
    plain.set_validator(ps, Some("W/\"p1\""));
    assert_eq!(plain.validator(ps), None);
    assert_eq!(
        plain
            .fetch_page(ps, None)
            .await
            .expect("page")
            .records
            .len(),
        2
    );
}

/// `join`: an array column as one text; an empty array is NULL.
#[tokio::test]
async fn join_columns() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/link"
records = ""
id = "id"
[[streams.columns]]
name = "tags"
pointer = "tags"
join = ","
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let page = c.fetch_page(&c.streams()[0], None).await.expect("page");
    assert_eq!(
        page.records[0].values,
        [inlet_core::Value::Text("a,b".into())]
    );
    let bad = spec.replace("join = \",\"", "join = \",\"\ntype = \"int\"");
    assert!(
        parse(&bad)
            .expect_err("join on int")
            .to_string()
            .contains("streams[0].columns[0].join")
    );
}

/// A child stream cannot be conditional.
#[test]
fn conditional_child_is_refused() {
    let spec = r#"
name = "t"
base_url = "https://api.example.com"
[[streams]]
name = "posts"
path = "/posts"
records = ""
id = "id"
[[streams]]
name = "comments"
path = "/posts/{parent_id}/comments"
records = ""
id = "id"
parent = { stream = "posts" }
conditional = true
"#;
    let err = parse(spec).expect_err("child").to_string();
    assert!(err.contains("streams[1].conditional"), "{err}");
}

/// A built-in provider's spec: its own table names are allowed, and its streams must
/// match the provider's stream specs.
#[test]
fn builtin_specs_match_their_streams() {
    static COLS: [Column; 1] = [Column::new("title", ColType::Text, "title")];
    static STREAMS: [StreamSpec; 1] = [StreamSpec {
        name: "things",
        table: "acme_things",
        doc: "things",
        columns: &COLS,
        scope: None,
        stop: StopRule::Never,
        listing_cap: None,
        derived: None,
    }];
    let text = r#"
name = "acme"
base_url = "https://api.example.com/"
[[streams]]
name = "things"
table = "acme_things"
path = "/things"
records = ""
id = "id"
[[streams.columns]]
name = "title"
pointer = "title"
"#;
    let spec: RestSpec = toml::from_str(text).expect("toml");
    assert!(spec.validate().is_err(), "a spec file needs rest_ tables");
    let http = || HttpClient::new(quick_http()).expect("client");
    let c = RestConnector::builtin("acme", &spec, &STREAMS, http()).expect("builtin");
    assert_eq!(c.provider(), "acme");
    assert!(std::ptr::eq(c.streams(), &STREAMS[..]));
    let mut other = spec.clone();
    other.streams[0].columns[0].ty = spec::ColumnType::Int;
    let err = RestConnector::builtin("acme", &other, &STREAMS, http())
        .err()
        .expect("type mismatch");
    assert!(err.to_string().contains("must agree"), "{err}");
    let mut authed = spec.clone();
    authed.auth = AuthSpec::Bearer;
    assert!(RestConnector::builtin("acme", &authed, &STREAMS, http()).is_err());
}

/// GitHub's `Link` headers: the first page names `next` and `last`, the last page only
/// `first` and `prev`.
#[test]
fn github_link_headers() {
    let h = r#"<https://api.github.com/user/starred?per_page=2&page=2>; rel="next", <https://api.github.com/user/starred?per_page=2&page=37>; rel="last""#;
    assert_eq!(
        next_link(h).as_deref(),
        Some("https://api.github.com/user/starred?per_page=2&page=2")
    );
    let last = r#"<https://api.github.com/user/starred?page=1>; rel="first", <https://api.github.com/user/starred?page=36>; rel="prev""#;
    assert_eq!(next_link(last), None);
}

/// A `200` whose records are not an array (a proxy's or CDN's answer) is retried like a
/// body that is not JSON, and the error quotes what was found; a missing key is not.
#[tokio::test]
async fn records_that_are_not_an_array_are_retried() {
    let base = api().await;
    let spec = r#"
name = "t"
base_url = "http://unused.example"
[[streams]]
name = "things"
path = "/stringy"
records = ""
id = "id"
"#;
    let c = connector(&base, spec, RestCredentials::default());
    let err = c
        .fetch_page(&c.streams()[0], None)
        .await
        .expect_err("not an array");
    assert!(matches!(err, ConnectorError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("a proxy's page"), "{err}");
    assert_eq!(c.http_stats().requests, 3, "retried up to max_attempts");
}
