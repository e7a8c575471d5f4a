use super::model::{self, base64url_decode, bodies_of};
use super::*;
use inlet_core::Value;

fn b64url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn base64url_round_trips_with_and_without_padding() {
    for s in ["", "a", "ab", "abc", "héllo wörld ✓", "??>>~~"] {
        let enc = b64url(s);
        assert_eq!(
            base64url_decode(&enc).as_deref(),
            Some(s.as_bytes()),
            "{enc}"
        );
        let padded = format!("{enc}{}", "=".repeat((4 - enc.len() % 4) % 4));
        assert_eq!(base64url_decode(&padded).as_deref(), Some(s.as_bytes()));
    }
    // `-` and `_` are url-safe 62 and 63; `+`/`/` are accepted too.
    assert_eq!(base64url_decode("-_-_"), Some(vec![0xfb, 0xff, 0xbf]));
    assert_eq!(base64url_decode("+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
    assert_eq!(base64url_decode("a*b"), None);
}

fn nested_message() -> String {
    serde_json::json!({
        "id": "18f2a5d001c2e3f4",
        "threadId": "18f2a4c3d9e0b7aa",
        "labelIds": ["INBOX", "UNREAD"],
        "snippet": "Yes, 6pm works.",
        "historyId": "9876543",
        "internalDate": "1718803600000",
        "sizeEstimate": 4410,
        "payload": {
            "partId": "", "mimeType": "multipart/mixed", "filename": "",
            "headers": [
                {"name": "from", "value": "Me <me@example.com>"},
                {"name": "To", "value": "Alice <alice@example.com>"},
                {"name": "Cc", "value": "bob@example.com"},
                {"name": "Subject", "value": "Re: Friday"},
                {"name": "Date", "value": "Wed, 19 Jun 2024 14:26:40 +0000"},
                {"name": "Message-ID", "value": "<abc@example.com>"},
                {"name": "Subject", "value": "second subject is ignored"}
            ],
            "body": {"size": 0},
            "parts": [
                {"partId": "0", "mimeType": "multipart/alternative", "filename": "",
                 "headers": [], "body": {"size": 0},
                 "parts": [
                    {"partId": "0.0", "mimeType": "text/plain", "filename": "",
                     "body": {"size": 15, "data": b64url("Yes, 6pm works.")}},
                    {"partId": "0.1", "mimeType": "text/html; charset=UTF-8", "filename": "",
                     "body": {"size": 22, "data": b64url("<p>Yes, 6pm works.</p>")}}
                 ]},
                {"partId": "1", "mimeType": "application/pdf", "filename": "plan.pdf",
                 "body": {"attachmentId": "ANGjdJ8", "size": 12345}},
                {"partId": "2", "mimeType": "text/plain", "filename": "notes.txt",
                 "body": {"attachmentId": "ANGjdJ9", "size": 10}}
            ]
        }
    })
    .to_string()
}

#[test]
fn message_maps_headers_bodies_and_attachments() {
    let raw = nested_message();
    let r = model::map_message(&raw, "fallback").expect("maps");
    let col = |n: &str| {
        let i = streams::MESSAGE_COLUMNS
            .iter()
            .position(|c| c.name == n)
            .expect("column");
        r.values[i].clone()
    };
    assert_eq!(r.id, "18f2a5d001c2e3f4");
    assert_eq!(r.raw, raw, "raw is kept as received");
    assert_eq!(col("thread_id"), Value::Text("18f2a4c3d9e0b7aa".into()));
    assert_eq!(col("label_ids"), Value::Text("INBOX,UNREAD".into()));
    assert_eq!(
        col("internal_date"),
        Value::Time(Timestamp(1_718_803_600_000))
    );
    assert_eq!(
        col("from_header"),
        Value::Text("Me <me@example.com>".into())
    );
    assert_eq!(
        col("to_header"),
        Value::Text("Alice <alice@example.com>".into())
    );
    assert_eq!(col("cc_header"), Value::Text("bob@example.com".into()));
    assert_eq!(col("subject"), Value::Text("Re: Friday".into()));
    assert_eq!(
        col("message_id_header"),
        Value::Text("<abc@example.com>".into())
    );
    assert_eq!(col("text_plain"), Value::Text("Yes, 6pm works.".into()));
    assert_eq!(
        col("text_html"),
        Value::Text("<p>Yes, 6pm works.</p>".into())
    );
    assert_eq!(col("attachment_count"), Value::Int(2));
    let Value::Text(att) = col("attachments") else {
        panic!("attachments is text");
    };
    let att: serde_json::Value = serde_json::from_str(&att).expect("json");
    assert_eq!(att[0]["filename"], "plan.pdf");
    assert_eq!(att[0]["attachment_id"], "ANGjdJ8");
    assert_eq!(att[0]["size"], 12345);
    assert_eq!(
        att[1]["mime_type"], "text/plain",
        "a named text part is an attachment"
    );
    assert_eq!(r.sort_ts, Some(Timestamp(1_718_803_600_000)));
}

#[test]
fn minimal_message_parses_leniently() {
    let raw = r#"{"id":"m1","internalDate":"x","payload":{"mimeType":"text/plain","body":{"data":"aGk"}}}"#;
    let r = model::map_message(raw, "t1").expect("maps");
    assert_eq!(
        r.values[0],
        Value::Text("t1".into()),
        "thread from the caller"
    );
    assert_eq!(r.values[4], Value::Null, "unreadable internalDate");
    assert_eq!(r.values[12], Value::Text("hi".into()));
    assert_eq!(r.values[13], Value::Null);
    assert!(
        model::map_message(r#"{"threadId":"t"}"#, "t").is_err(),
        "no id"
    );
    let b = bodies_of(&serde_json::json!({"mimeType": "text/html", "body": {"data": "!!"}}));
    assert!(b.html.is_empty(), "undecodable data is skipped");
}

#[test]
fn empty_thread_list_omits_the_key() {
    let l: model::ThreadList =
        serde_json::from_str(r#"{"resultSizeEstimate": 0}"#).expect("parses");
    assert!(l.threads.is_empty());
    assert!(l.next_page_token.is_none());
    let l: model::ThreadList = serde_json::from_str(
        r#"{"threads":[{"id":"t1","snippet":"a","historyId":"5"}],"nextPageToken":"p2","resultSizeEstimate":9}"#,
    )
    .expect("parses");
    let r = model::map_thread_head(l.threads[0].get()).expect("maps");
    assert_eq!(
        r.values,
        vec![Value::Text("5".into()), Value::Text("a".into())]
    );
}

#[test]
fn thread_rows_are_the_same_from_list_and_get() {
    let listed =
        model::map_thread_head(r#"{"snippet":"s","historyId":"7","id":"t"}"#).expect("maps");
    let got = model::thread_record("t", Some("7"), Some("s"));
    assert_eq!(listed.raw, got.raw);
    assert_eq!(listed.values, got.values);
}

#[test]
fn history_names_threads_of_every_change() {
    let page: model::HistoryPage = serde_json::from_str(
        r#"{"history":[
            {"id":"10","messages":[{"id":"m1","threadId":"t1"}],
             "messagesAdded":[{"message":{"id":"m1","threadId":"t1","labelIds":["INBOX"]}}]},
            {"id":"12","messages":[{"id":"m2","threadId":"t2"}],
             "labelsRemoved":[{"message":{"id":"m2","threadId":"t2","labelIds":[]},"labelIds":["INBOX"]}]},
            {"id":"15","messages":[],
             "messagesDeleted":[{"message":{"id":"m3","threadId":"t3"}}]}
         ],"historyId":"20"}"#,
    )
    .expect("parses");
    let ids: Vec<&str> = page.history.iter().flat_map(|r| r.threads()).collect();
    assert_eq!(ids, ["t1", "t1", "t2", "t2", "t3"]);
    assert_eq!(page.history_id.as_deref(), Some("20"));
    assert!(page.next_page_token.is_none());
}

#[test]
fn cursors_round_trip() {
    for c in [
        Cursor::Full {
            all: true,
            hid: "100".into(),
            label: 1,
            count: 3,
            token: "tok|with|bars".into(),
        },
        Cursor::History {
            start: "100".into(),
            end: "250".into(),
            skip: 50,
        },
        Cursor::Full {
            all: false,
            hid: "7".into(),
            label: 0,
            count: 0,
            token: String::new(),
        },
    ] {
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }
    assert_eq!(Cursor::decode("X|1"), None);
}

#[test]
fn google_errors_are_classified() {
    use inlet_http::HttpError;
    let e = connector_error(HttpError::Unauthorized("invalid_grant".into()));
    assert!(matches!(e, ConnectorError::NeedsReauth(_)), "{e}");
    let e = connector_error(HttpError::Status {
        status: 403,
        message: r#"{"error":{"errors":[{"reason":"insufficientPermissions"}]}}"#.into(),
    });
    assert!(matches!(e, ConnectorError::NeedsReauth(_)), "{e}");
    let e = connector_error(HttpError::Status {
        status: 403,
        message: r#"{"error":{"errors":[{"reason":"dailyLimitExceeded"}]}}"#.into(),
    });
    assert!(matches!(e, ConnectorError::RateLimited { .. }), "{e}");
    let e = connector_error(HttpError::Status {
        status: 400,
        message: "badRequest".into(),
    });
    assert!(matches!(e, ConnectorError::Provider(_)), "{e}");
}

#[test]
fn config_is_checked() {
    let ok = GmailConfig::default();
    assert!(ok.validate().is_ok());
    let bad = GmailConfig {
        labels: vec!["IN BOX".into()],
        ..GmailConfig::default()
    };
    assert!(bad.validate().is_err());
    let none = GmailConfig {
        labels: vec![],
        ..GmailConfig::default()
    };
    assert!(none.validate().is_err());
}

#[tokio::test]
async fn verify_names_the_account_and_refuses_unknown_labels() {
    use inlet_sim::gmail::{GmailSim, GmailSimConfig};
    let sim = GmailSim::start(GmailSimConfig {
        threads: 3,
        refresh_token: "1//verify-test".into(),
        ..Default::default()
    })
    .await
    .expect("sim");
    let (client_id, client_secret, refresh_token) = sim.credentials();
    let creds = GmailCredentials {
        client_id,
        client_secret,
        refresh_token,
        access_token: None,
        expires_at_ms: None,
    };
    let config = |labels: &[&str]| GmailConfig {
        api_base: sim.api_base(),
        token_url: sim.token_url(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..GmailConfig::default()
    };
    let verify = |c: GmailConfig| {
        provider::verify_typed::<GmailConnector>(
            serde_json::to_value(c).expect("json"),
            serde_json::to_value(&creds).expect("json"),
            HttpConfig::default(),
        )
    };
    let v = verify(config(&["INBOX", "Label_1"]))
        .await
        .expect("verified");
    assert_eq!(v.account.as_deref(), Some("me@example.com"));
    let stored: GmailCredentials = serde_json::from_value(v.credentials).expect("creds");
    assert!(stored.access_token.is_some(), "the token is kept");
    assert_eq!(stored.refresh_token, creds.refresh_token, "Google keeps it");
    let e = verify(config(&["Label_404"]))
        .await
        .expect_err("unknown label");
    assert!(e.to_string().contains("Label_404"), "{e}");
    sim.revoke();
    let e = verify(config(&["INBOX"])).await.expect_err("revoked");
    assert!(matches!(e, ConnectorError::NeedsReauth(_)), "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}
