//! Slack Web API simulator tests over real HTTP on 127.0.0.1, against the contract in
//! `shared/providers/slack.md`.

use inlet_core::{ManualClock, Timestamp};
use inlet_sim::slack::{Faults, SlackSim, SlackSimConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn call(
    sim: &SlackSim,
    tok: &str,
    method: &str,
    q: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let r = http()
        .get(format!("{}/{method}", sim.api_base()))
        .query(q)
        .bearer_auth(tok)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry, r.json().await.expect("json"))
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(1_750_000_000_000)))
}

/// Every page of history with `q`, following next_cursor.
async fn all_history(sim: &SlackSim, ch: &str, q: &[(&str, &str)]) -> (Vec<Value>, u32) {
    let mut out = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let mut qq: Vec<(&str, &str)> = vec![("channel", ch)];
        qq.extend_from_slice(q);
        if !cursor.is_empty() {
            qq.push(("cursor", &cursor));
        }
        let (s, _, v) = call(sim, &sim.bot_token(), "conversations.history", &qq).await;
        assert_eq!(s, 200);
        assert_eq!(v["ok"], true, "{v}");
        out.extend(v["messages"].as_array().expect("messages").iter().cloned());
        pages += 1;
        cursor = v["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if cursor.is_empty() {
            return (out, pages);
        }
    }
}

#[tokio::test]
async fn envelopes_auth_and_errors() {
    let sim = SlackSim::start(SlackSimConfig {
        clock: clock(),
        ..Default::default()
    })
    .await
    .expect("start");
    let (s, _, v) = call(&sim, &sim.bot_token(), "auth.test", &[]).await;
    assert_eq!(
        (s, v["ok"].clone(), v["bot_id"].clone()),
        (200, Value::Bool(true), Value::from("B0SIMBOT"))
    );
    let (_, _, v) = call(&sim, &sim.user_token(), "auth.test", &[]).await;
    assert!(v.get("bot_id").is_none(), "{v}");
    let (s, _, v) = call(&sim, "xoxb-wrong", "auth.test", &[]).await;
    assert_eq!((s, v["error"].as_str()), (200, Some("invalid_auth")));
    let (s, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", "C404")],
    )
    .await;
    assert_eq!(
        (s, v["ok"].as_bool(), v["error"].as_str()),
        (200, Some(false), Some("channel_not_found"))
    );
    let ch = sim.channel_ids()[0].clone();
    let (_, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch), ("cursor", "zz")],
    )
    .await;
    assert_eq!(v["error"], "invalid_cursor");
    let (_, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch), ("oldest", "1.2.3")],
    )
    .await;
    assert_eq!(v["error"], "invalid_ts_oldest");
    sim.revoke(&sim.bot_token());
    let (_, _, v) = call(&sim, &sim.bot_token(), "auth.test", &[]).await;
    assert_eq!(v["error"], "token_revoked");
    let r = http()
        .get(format!("{}/auth.test", sim.api_base()))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "not_authed");
}

#[tokio::test]
async fn history_pages_windows_threads_edits_and_deletes() {
    let clock = clock();
    let sim = SlackSim::start(SlackSimConfig {
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("start");
    let ch = sim.channel_ids()[0].clone();
    let truth = sim.truth_history(&ch);
    assert_eq!(truth.len(), 120);
    let (msgs, pages) = all_history(&sim, &ch, &[("limit", "7")]).await;
    assert_eq!(pages, 18);
    let got: Vec<&str> = msgs.iter().map(|m| m["ts"].as_str().expect("ts")).collect();
    let want: Vec<&str> = truth.iter().map(|m| m.ts.as_str()).collect();
    assert_eq!(got, want, "newest first, every message once");
    assert!(
        msgs.iter().all(|m| m.get("parent_user_id").is_none()),
        "no replies in history"
    );
    // oldest/latest are exclusive unless inclusive=true.
    let (a, b) = (want[10], want[5]);
    let (w, _) = all_history(&sim, &ch, &[("oldest", a), ("latest", b)]).await;
    assert_eq!(w.len(), 4);
    let (w, _) = all_history(
        &sim,
        &ch,
        &[("oldest", a), ("latest", b), ("inclusive", "true")],
    )
    .await;
    assert_eq!(w.len(), 6);
    // A thread: replies parent first, then oldest to newest.
    let parent = msgs
        .iter()
        .find(|m| m["reply_count"].as_u64() == Some(4))
        .expect("a thread");
    let pts = parent["ts"].as_str().expect("ts").to_string();
    let (_, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.replies",
        &[("channel", &ch), ("ts", &pts)],
    )
    .await;
    let r = v["messages"].as_array().expect("messages");
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["ts"], pts.as_str());
    assert!(r[1]["ts"].as_str() < r[2]["ts"].as_str());
    assert_eq!(r[4]["ts"], parent["latest_reply"]);
    // Changes: a reply moves the parent's marker, an edit keeps the ts, a delete removes.
    clock.advance_ms(60_000);
    let rts = sim.reply(&ch, &pts, "U0SIM0001", "late reply");
    let (_, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch), ("latest", &rts)],
    )
    .await;
    let p = v["messages"]
        .as_array()
        .expect("m")
        .iter()
        .find(|m| m["ts"] == pts.as_str())
        .cloned()
        .expect("parent");
    assert_eq!(
        (p["reply_count"].as_u64(), p["latest_reply"].as_str()),
        (Some(5), Some(rts.as_str()))
    );
    let new = sim.post(&ch, "U0SIM0002", "hello");
    assert!(sim.edit(&ch, want[3], "changed"));
    assert!(sim.delete(&ch, want[4]));
    let (w, _) = all_history(&sim, &ch, &[("oldest", want[0])]).await;
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["ts"], new.as_str());
    let (all, _) = all_history(&sim, &ch, &[]).await;
    assert_eq!(all.len(), 120);
    let e = all.iter().find(|m| m["ts"] == want[3]).expect("edited");
    assert_eq!(e["text"], "changed");
    assert!(e["edited"]["ts"].is_string());
    assert!(!all.iter().any(|m| m["ts"] == want[4]));
    // A deleted thread parent with live replies is a tombstone.
    assert!(sim.delete(&ch, &pts));
    let (all, _) = all_history(&sim, &ch, &[]).await;
    let t = all
        .iter()
        .find(|m| m["ts"] == pts.as_str())
        .expect("tombstone");
    assert_eq!(t["subtype"], "tombstone");
    assert_eq!(sim.truth_history(&ch).len(), 120);
}

#[tokio::test]
async fn tier_limits_retry_after_and_non_marketplace() {
    let clock = clock();
    let sim = SlackSim::start(SlackSimConfig {
        clock: clock.clone(),
        non_marketplace: true,
        ..Default::default()
    })
    .await
    .expect("start");
    let ch = sim.channel_ids()[0].clone();
    let (s, _, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch), ("limit", "200")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["messages"].as_array().expect("m").len(),
        15,
        "limit capped at 15"
    );
    let (s, retry, v) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch)],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (429, Some("ratelimited")));
    let secs: u64 = retry.expect("Retry-After").parse().expect("secs");
    assert!((1..=60).contains(&secs));
    assert_eq!(sim.rate_limit_violations(), 1);
    clock.advance_ms(secs as i64 * 1000);
    let (s, _, _) = call(
        &sim,
        &sim.bot_token(),
        "conversations.history",
        &[("channel", &ch)],
    )
    .await;
    assert_eq!(s, 200);
    // Tier 2: 20 per minute.
    for _ in 0..20 {
        let (s, _, _) = call(&sim, &sim.bot_token(), "users.list", &[]).await;
        assert_eq!(s, 200);
    }
    let (s, _, _) = call(&sim, &sim.bot_token(), "users.list", &[]).await;
    assert_eq!(s, 429);
    assert_eq!(sim.rate_limit_violations(), 2);
    // Injected 429s are not violations.
    sim.set_faults(Faults {
        http_429_burst: 1,
        retry_after_secs: Some(3),
        ..Faults::default()
    });
    let (s, retry, _) = call(&sim, &sim.bot_token(), "auth.test", &[]).await;
    assert_eq!((s, retry.as_deref()), (429, Some("3")));
    assert_eq!(sim.rate_limit_violations(), 2);
    assert!(sim.method_count("users.list") >= 21);
}

#[tokio::test]
async fn conversations_and_users_page() {
    let sim = SlackSim::start(SlackSimConfig {
        channels: 12,
        users: 30,
        clock: clock(),
        ..Default::default()
    })
    .await
    .expect("start");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut q = vec![
            ("types", "public_channel,private_channel,im"),
            ("limit", "5"),
        ];
        if !cursor.is_empty() {
            q.push(("cursor", &cursor));
        }
        let (_, _, v) = call(&sim, &sim.bot_token(), "conversations.list", &q).await;
        assert!(v.get("has_more").is_none());
        seen.extend(
            v["channels"]
                .as_array()
                .expect("c")
                .iter()
                .map(|c| c["id"].as_str().unwrap_or("").to_string()),
        );
        cursor = v["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(seen, sim.channel_ids());
    let (_, _, v) = call(&sim, &sim.bot_token(), "conversations.list", &[]).await;
    assert!(
        v["channels"]
            .as_array()
            .expect("c")
            .iter()
            .all(|c| c["is_channel"] == true),
        "public by default"
    );
    let (_, _, v) = call(&sim, &sim.bot_token(), "users.list", &[("limit", "100")]).await;
    assert_eq!(v["members"].as_array().expect("m").len(), 30);
    assert_eq!(v["response_metadata"]["next_cursor"], "");
}
