//! The connector's parsing checked against real recorded Reddit responses
//! (`shared/providers/fixtures/reddit`, PRAW cassettes).

use super::*;
use inlet_core::Value;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/providers/fixtures/reddit/"
);

fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{FIXTURES}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn response(body: &serde_json::Value) -> Response {
    Response {
        status: reqwest::StatusCode::OK,
        headers: Default::default(),
        body: body.to_string().into_bytes(),
    }
}

/// The body of the first recorded interaction whose URI contains `path`.
fn cassette_body(name: &str, path: &str) -> serde_json::Value {
    let c = fixture(name);
    let i = c["interactions"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|i| {
                i["request"]["uri"]
                    .as_str()
                    .is_some_and(|u| u.contains(path))
            })
        })
        .expect("interaction present");
    serde_json::from_str(
        i["response"]["body"]["string"]
            .as_str()
            .expect("body string"),
    )
    .expect("body JSON")
}

fn page(body: &serde_json::Value, stream: &str) -> Page {
    let spec = streams::STREAMS
        .iter()
        .find(|s| s.name == stream)
        .expect("stream");
    match parse_listing(&response(body), spec) {
        Parsed::Ok(p) => p,
        Parsed::Retry(m) => panic!("retry: {m}"),
        Parsed::Fail(e) => panic!("fail: {e}"),
        Parsed::Refresh(m) => panic!("refresh: {m}"),
    }
}

fn col<'a>(spec_cols: &[inlet_core::Column], r: &'a Record, name: &str) -> &'a Value {
    &r.values[spec_cols
        .iter()
        .position(|c| c.name == name)
        .expect("column")]
}

#[test]
fn parses_recorded_inbox_pages_with_t1_and_t4() {
    let f = fixture("message_inbox.page1.trimmed.json");
    let p = page(&f["body"], "inbox");
    let children = f["body"]["data"]["children"].as_array().expect("children");
    assert_eq!(p.records.len(), children.len());
    assert_eq!(p.next.as_deref(), f["body"]["data"]["after"].as_str());
    let cols = streams::MESSAGE_COLUMNS;
    for (r, c) in p.records.iter().zip(children) {
        assert_eq!(r.values.len(), cols.len());
        assert_eq!(r.id, c["data"]["name"].as_str().expect("name"));
        assert_eq!(
            col(cols, r, "kind"),
            &Value::Text(c["kind"].as_str().expect("kind").into())
        );
        assert_eq!(col(cols, r, "folder"), &Value::Text("inbox".into()));
        let created = c["data"]["created_utc"].as_f64().expect("created");
        assert_eq!(r.sort_ts, Timestamp::from_secs_f64(created));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r.raw).expect("raw"),
            c["data"],
            "raw kept exactly"
        );
        match c["kind"].as_str() {
            Some("t4") => {
                let conv = c["data"]["first_message_name"].as_str().unwrap_or(&r.id);
                assert_eq!(col(cols, r, "conversation_id"), &Value::Text(conv.into()));
            }
            _ => {
                assert_eq!(col(cols, r, "conversation_id"), &Value::Null);
                assert!(matches!(col(cols, r, "context"), Value::Text(_)));
            }
        }
    }
    assert!(
        p.records
            .iter()
            .any(|r| col(cols, r, "kind") == &Value::Text("t1".into()))
    );
    let p2 = page(
        &fixture("message_inbox.page2_limit128.trimmed.json")["body"],
        "inbox",
    );
    assert!(!p2.records.is_empty());
}

#[test]
fn parses_recorded_threaded_messages_and_sent() {
    for name in [
        "message_messages.page1.trimmed.json",
        "message_messages.page2.trimmed.json",
    ] {
        let f = fixture(name);
        let p = page(&f["body"], "inbox");
        assert_eq!(
            p.records.len(),
            f["body"]["data"]["children"].as_array().map_or(0, Vec::len)
        );
    }
    let body = cassette_body("message_sent.cassette.json", "/message/sent");
    let p = page(&body, "sent");
    assert!(!p.records.is_empty());
    assert!(
        p.records
            .iter()
            .all(|r| col(streams::MESSAGE_COLUMNS, r, "folder") == &Value::Text("sent".into()))
    );
}

#[test]
fn parses_recorded_saved_posts_and_comments() {
    let body = cassette_body("user_saved.cassette.json", "/saved");
    let p = page(&body, "saved");
    let cols = streams::SAVED_COLUMNS;
    assert!(
        p.records
            .iter()
            .any(|r| col(cols, r, "kind") == &Value::Text("t3".into()))
    );
    assert!(
        p.records
            .iter()
            .any(|r| col(cols, r, "kind") == &Value::Text("t1".into()))
    );
    for r in &p.records {
        assert_eq!(r.values.len(), cols.len());
        assert!(
            matches!(col(cols, r, "title"), Value::Text(_)),
            "{} has a title",
            r.id
        );
    }
}

#[test]
fn truncated_or_garbage_bodies_are_retryable_not_crashes() {
    let f = fixture("message_inbox.page1.trimmed.json");
    let text = f["body"].to_string();
    let spec = &streams::STREAMS[0];
    for body in [
        &text.as_bytes()[..text.len() / 2],
        b"<html>Our CDN was unable to reach our servers</html>",
        b"",
    ] {
        let r = Response {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.to_vec(),
        };
        assert!(matches!(parse_listing(&r, spec), Parsed::Retry(_)));
    }
}

#[test]
fn config_rejects_bad_urls_and_page_sizes() {
    let bad = RedditConfig {
        api_base: "ftp://x".into(),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let bad = RedditConfig {
        token_url: "not a url".into(),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    let bad = RedditConfig {
        page_size: 0,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    assert!(RedditConfig::default().validate().is_ok());
}
