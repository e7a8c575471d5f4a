//! Gmail API simulator tests over real HTTP on 127.0.0.1, against the contract in
//! `shared/providers/gmail.md`: the token endpoint, quirks, errors and the unit quota.

use inlet_core::{ManualClock, Timestamp};
use inlet_sim::gmail::{GmailSim, GmailSimConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn sim(cfg: GmailSimConfig) -> GmailSim {
    GmailSim::start(GmailSimConfig {
        clock: Arc::new(ManualClock::new(Timestamp(1_750_000_000_000))),
        ..cfg
    })
    .await
    .expect("sim")
}

/// A token from the form-encoded refresh grant.
async fn token(sim: &GmailSim) -> (u16, Value) {
    let (id, secret, rt) = sim.credentials();
    let r = http()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

async fn get(sim: &GmailSim, tok: &str, path: &str, q: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .get(format!("{}/users/me/{path}", sim.api_base()))
        .query(q)
        .bearer_auth(tok)
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn shapes_quirks_and_errors() {
    let sim = sim(GmailSimConfig {
        threads: 6,
        ..Default::default()
    })
    .await;
    let (status, t) = token(&sim).await;
    assert_eq!(status, 200, "{t}");
    assert!(
        t.get("refresh_token").is_none(),
        "Google keeps the refresh token"
    );
    let tok = t["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let (status, body) = get(&sim, "wrong", "profile", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    let (_, p) = get(&sim, &tok, "profile", &[]).await;
    let hid = p["historyId"]
        .as_str()
        .expect("string history id")
        .to_string();
    // An empty listing omits `threads`.
    let (_, l) = get(&sim, &tok, "threads", &[("labelIds", "DRAFT")]).await;
    assert!(l.get("threads").is_none(), "{l}");
    assert_eq!(l["resultSizeEstimate"], 0);
    let (_, l) = get(
        &sim,
        &tok,
        "threads",
        &[("labelIds", "INBOX"), ("maxResults", "2")],
    )
    .await;
    assert_eq!(l["threads"].as_array().map(Vec::len), Some(2));
    assert!(l["nextPageToken"].is_string());
    let id = l["threads"][0]["id"].as_str().expect("id").to_string();
    let (_, th) = get(&sim, &tok, &format!("threads/{id}"), &[]).await;
    let m = &th["messages"][0];
    assert!(m["internalDate"].is_string() && m["historyId"].is_string());
    assert!(m["payload"]["headers"].is_array());
    let (_, meta) = get(
        &sim,
        &tok,
        &format!("threads/{id}"),
        &[("format", "metadata"), ("metadataHeaders", "Subject")],
    )
    .await;
    let headers = meta["messages"][0]["payload"]["headers"]
        .as_array()
        .expect("headers");
    assert_eq!(headers.len(), 1);
    assert!(meta["messages"][0]["payload"].get("parts").is_none());
    // History: a change appears with `messages` always present; an old id is a 404.
    let reply = sim.reply(&id, &["SENT"], "Re: x");
    let (_, h) = get(&sim, &tok, "history", &[("startHistoryId", hid.as_str())]).await;
    let rec = &h["history"][0];
    assert_eq!(rec["messages"][0]["id"], reply.as_str());
    assert_eq!(rec["messagesAdded"][0]["message"]["threadId"], id.as_str());
    let num = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("decimal id")
    };
    assert!(
        num(&h["historyId"]) > num(&p["historyId"]),
        "history ids grow"
    );
    let (_, quiet) = get(
        &sim,
        &tok,
        "history",
        &[("startHistoryId", h["historyId"].as_str().expect("id"))],
    )
    .await;
    assert!(quiet.get("history").is_none(), "{quiet}");
    sim.expire_history();
    let (status, e) = get(&sim, &tok, "history", &[("startHistoryId", hid.as_str())]).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    let (status, _) = get(&sim, &tok, "history", &[("startHistoryId", "0")]).await;
    assert_eq!(status, 404);
    // A thread whose messages are all deleted 404s.
    assert!(sim.delete_thread(&id));
    let (status, _) = get(&sim, &tok, &format!("threads/{id}"), &[]).await;
    assert_eq!(status, 404);
    // A revoked refresh token: 400 invalid_grant.
    sim.revoke();
    let (status, e) = token(&sim).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn the_unit_quota_is_enforced_and_counted() {
    for as_403 in [false, true] {
        let sim = sim(GmailSimConfig {
            threads: 3,
            units_per_second: 25,
            units_per_minute: 1_000,
            limit_as_403: as_403,
            ..Default::default()
        })
        .await;
        let (_, t) = token(&sim).await;
        let tok = t["access_token"].as_str().expect("token").to_string();
        // threads.list costs 10: two fit in a second, the third is refused.
        let mut statuses = Vec::new();
        let mut last = Value::Null;
        for _ in 0..3 {
            let (s, b) = get(&sim, &tok, "threads", &[("labelIds", "INBOX")]).await;
            statuses.push(s);
            last = b;
        }
        let want = if as_403 { 403 } else { 429 };
        assert_eq!(statuses, [200, 200, want]);
        let reason = if as_403 {
            "userRateLimitExceeded"
        } else {
            "rateLimitExceeded"
        };
        assert_eq!(last["error"]["errors"][0]["reason"], reason);
        assert_eq!(sim.rate_limit_violations(), 1);
        assert_eq!(sim.units(), 20, "refused requests spend nothing");
        // history.list costs 2: still fits after the refusal.
        let (_, p) = get(&sim, &tok, "profile", &[]).await;
        assert_eq!(sim.units(), 21);
        let hid = p["historyId"].as_str().expect("id").to_string();
        let (s, _) = get(&sim, &tok, "history", &[("startHistoryId", hid.as_str())]).await;
        assert_eq!(s, 200);
        assert_eq!(sim.units(), 23);
    }
}
