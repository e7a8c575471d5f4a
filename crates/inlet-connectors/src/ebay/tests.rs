//! The connector's parsing checked against the documented shapes of
//! `shared/providers/ebay.md` (no recorded eBay fixtures exist).

use super::*;

fn response(body: &str) -> Response {
    Response {
        status: reqwest::StatusCode::OK,
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
    }
}

/// The composed example of ebay.md §3, verbatim.
const LISTING: &str = r#"{
  "href": "https://api.ebay.com/commerce/message/v1/conversation?conversation_type=FROM_MEMBERS&limit=2&offset=0",
  "limit": 2,
  "offset": 0,
  "next": "https://api.ebay.com/commerce/message/v1/conversation?conversation_type=FROM_MEMBERS&limit=2&offset=2",
  "total": 37,
  "conversations": [
    {"conversationId": "c-8812345001", "conversationType": "FROM_MEMBERS",
     "conversationStatus": "ACTIVE", "conversationTitle": "Nikon 50mm f/1.8 lens",
     "createdDate": "2024-06-18T09:12:00.000Z", "referenceType": "LISTING", "referenceId": "225812345678",
     "unreadCount": 1,
     "latestMessage": {"messageId": "m-99001", "subject": "Question about your item",
                       "messageBody": "Is the lens still available?", "senderUsername": "buyer_sim1",
                       "recipientUsername": "seller_sim", "createdDate": "2024-06-19T08:00:00.000Z",
                       "readStatus": false, "messageMedia": []}},
    {"conversationId": "c-8812340777", "conversationType": "FROM_MEMBERS",
     "conversationStatus": "ACTIVE", "conversationTitle": "Order 12-34567-89012",
     "createdDate": "2024-06-10T14:00:00.000Z", "unreadCount": 0,
     "latestMessage": {"messageId": "m-98777", "subject": "Re: shipping",
                       "messageBody": "Shipped today, tracking attached.", "senderUsername": "seller_sim",
                       "recipientUsername": "buyer_sim2", "createdDate": "2024-06-11T10:30:00.000Z",
                       "readStatus": true, "messageMedia": []}}
  ]
}"#;

fn ok<T>(p: Parsed<T>) -> T {
    match p {
        Parsed::Ok(v) => v,
        Parsed::Retry(m) => panic!("retry: {m}"),
        Parsed::Fail(e) => panic!("fail: {e}"),
        Parsed::Refresh(m) => panic!("refresh: {m}"),
    }
}

#[test]
fn listing_maps_conversations_and_next_offset() {
    let page = ok(parse_conversations(&response(LISTING)));
    assert_eq!(page.next.as_deref(), Some("2"));
    assert_eq!(page.records.len(), 2);
    let spec = &streams::STREAMS[0];
    let r = &page.records[0];
    assert_eq!(r.id, "c-8812345001");
    let col = |name: &str| r.values[spec.column_index(name).expect("column")].clone();
    assert_eq!(col("conversation_type"), Value::Text("FROM_MEMBERS".into()));
    assert_eq!(col("unread_count"), Value::Int(1));
    assert_eq!(col("latest_message_id"), Value::Text("m-99001".into()));
    assert_eq!(col("latest_sender"), Value::Text("buyer_sim1".into()));
    assert_eq!(col("reference_id"), Value::Text("225812345678".into()));
    let at = Timestamp::parse_rfc3339("2024-06-19T08:00:00.000Z").expect("time");
    assert_eq!(col("latest_message_at"), Value::Time(at));
    assert_eq!(r.sort_ts, Some(at));
    assert_eq!(r.values.len(), spec.columns.len());
    // Raw is the provider's object as received.
    assert!(r.raw.starts_with("{\"conversationId\": \"c-8812345001\""));
    // The second has no reference.
    let spec_ref = spec.column_index("reference_id").expect("column");
    assert_eq!(page.records[1].values[spec_ref], Value::Null);
}

#[test]
fn last_page_and_bad_pages() {
    let page = ok(parse_conversations(&response(
        r#"{"conversations": [], "total": 0}"#,
    )));
    assert!(page.records.is_empty() && page.next.is_none());
    // A truncated body is transient; a conversation without an id is not.
    assert!(matches!(
        parse_conversations(&response(&LISTING[..200])),
        Parsed::Retry(_)
    ));
    assert!(matches!(
        parse_conversations(&response(r#"{"conversations": [{"unreadCount": 1}]}"#)),
        Parsed::Fail(_)
    ));
    assert!(matches!(
        parse_conversations(&response(
            r#"{"conversations": [], "next": "https://x/conversation?limit=2"}"#
        )),
        Parsed::Fail(_)
    ));
}

#[test]
fn thread_maps_messages() {
    let body = r#"{"conversationStatus": "ACTIVE", "conversationType": "FROM_MEMBERS", "total": 2,
      "limit": 50, "offset": 0, "messages": [
      {"messageId": "m-1", "subject": "Q", "messageBody": "Hi", "senderUsername": "b",
       "recipientUsername": "s", "createdDate": "2024-06-19T08:00:00Z", "readStatus": true,
       "messageMedia": [{"mediaName": "a.jpg", "mediaType": "IMAGE", "mediaUrl": "https://i/a.jpg"}]},
      {"messageId": "m-2", "messageBody": "Yes", "senderUsername": "s", "recipientUsername": "b",
       "createdDate": "2024-06-19T09:00:00.000Z", "readStatus": false, "messageMedia": []}]}"#;
    let page = ok(parse_messages(&response(body), "c-1", "FROM_MEMBERS"));
    assert!(page.next.is_none());
    let spec = &streams::STREAMS[2];
    let col = |r: &Record, name: &str| r.values[spec.column_index(name).expect("column")].clone();
    let m = &page.records[0];
    assert_eq!(m.id, "m-1");
    assert_eq!(col(m, "conversation_id"), Value::Text("c-1".into()));
    assert_eq!(col(m, "media_count"), Value::Int(1));
    assert_eq!(col(m, "read_status"), Value::Bool(true));
    assert_eq!(col(&page.records[1], "subject"), Value::Null);
    assert_eq!(m.values.len(), spec.columns.len());
}

#[test]
fn config_is_validated() {
    assert!(EbayConfig::default().validate().is_ok());
    for bad in [
        EbayConfig {
            page_size: 51,
            ..Default::default()
        },
        EbayConfig {
            listings: vec![],
            ..Default::default()
        },
        EbayConfig {
            listings: vec!["from members".into()],
            ..Default::default()
        },
        EbayConfig {
            sample_rate: 1.5,
            ..Default::default()
        },
        EbayConfig {
            full_scan_every: 0,
            ..Default::default()
        },
        EbayConfig {
            api_base: "ftp://x".into(),
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let creds = EbayCredentials {
        client_id: "a".into(),
        ..Default::default()
    };
    assert!(EbayConnector::new(EbayConfig::default(), &creds, HttpConfig::default()).is_err());
    assert!(
        !format!("{creds:?}").contains("refresh"),
        "credentials never print secrets"
    );
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(encode_segment("c-88/12 3"), "c-88%2F12%203");
}

/// ebay.md §7: a 429 with errorId 2001 is the call limit (until the next UTC day); other
/// answers are not.
#[test]
fn call_limit_answer_is_recognised() {
    let limit = r#"{"errors": [{"errorId": 2001, "domain": "ACCESS", "category": "REQUEST", "message": "Too many requests", "longMessage": "Too many requests"}]}"#;
    let mut r = response(limit);
    assert_eq!(client::quota_spent(&r), None, "a 200 is no limit");
    r.status = reqwest::StatusCode::TOO_MANY_REQUESTS;
    let wait = client::quota_spent(&r).expect("the call limit");
    assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(86_400));
    let mut other = response(r#"{"errors": [{"errorId": 10001}]}"#);
    other.status = reqwest::StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(client::quota_spent(&other), None);
    let mut html = response("<html>busy</html>");
    html.status = reqwest::StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(client::quota_spent(&html), None);
    // 2024-06-19T23:00:00Z: one hour to the next UTC day.
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_718_838_000);
    assert_eq!(
        client::until_next_utc_day(t),
        std::time::Duration::from_secs(3600)
    );
}

/// The Developer Analytics API's getUserRateLimits answer (the developer.ebay.com
/// example's shape): the Message API's rate with the fewest calls left, and its reset.
#[test]
fn rate_limit_api_answer() {
    assert_eq!(
        client::rate_limit_url("https://api.ebay.com/commerce/message/v1").as_deref(),
        Some("https://api.ebay.com/developer/analytics/v1_beta/user_rate_limit/")
    );
    assert_eq!(client::rate_limit_url("https://example.com/other"), None);
    let body = r#"{"rateLimits": [
      {"apiContext": "buy", "apiName": "Browse", "apiVersion": "v1",
       "resources": [{"name": "buy.browse", "rates": [{"limit": 5000, "remaining": 0, "reset": "2024-06-20T00:00:00.000Z", "timeWindow": 86400}]}]},
      {"apiContext": "commerce", "apiName": "Message", "apiVersion": "v1",
       "resources": [{"name": "commerce.message", "rates": [
         {"count": 4990, "limit": 5000, "remaining": 10, "reset": "2024-06-20T00:00:00.000Z", "timeWindow": 86400},
         {"count": 300, "limit": 300, "remaining": 0, "reset": "2024-06-19T23:30:00.000Z", "timeWindow": 3600}]}]}
    ]}"#;
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_718_838_000);
    match client::parse_rate_limits(&response(body), now) {
        Parsed::Ok(found) => assert_eq!(
            found,
            Some((0, std::time::Duration::from_secs(1800))),
            "the hourly rate is spent, not Browse's"
        ),
        other => panic!("{other:?}"),
    }
    match client::parse_rate_limits(&response(r#"{"rateLimits": []}"#), now) {
        Parsed::Ok(found) => assert_eq!(found, None),
        other => panic!("{other:?}"),
    }
}
