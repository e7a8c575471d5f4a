//! eBay Message API simulator tests over real HTTP on 127.0.0.1, against the contract in
//! `shared/providers/ebay.md`.

use inlet_sim::ebay::{CallLimit, EbaySim, EbaySimConfig, Faults};
use serde_json::Value;
use std::time::Duration;

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test exceeded its time bound");
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn small() -> EbaySimConfig {
    EbaySimConfig {
        conversations: 120,
        long_threads: 2,
        system_conversations: 7,
        ..Default::default()
    }
}

async fn token(sim: &EbaySim, cfg: &EbaySimConfig, refresh: &str) -> (u16, Value) {
    let r = http()
        .post(sim.token_url())
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            (
                "scope",
                "https://api.ebay.com/oauth/api_scope/commerce.message",
            ),
        ])
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn access(sim: &EbaySim, cfg: &EbaySimConfig) -> String {
    let (status, v) = token(sim, cfg, &cfg.refresh_token).await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().expect("token").to_string()
}

async fn get(sim: &EbaySim, tok: &str, path_query: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{path_query}", sim.api_base()))
        .bearer_auth(tok)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn tokens_and_errors_follow_the_contract() {
    bounded(async {
        let cfg = small();
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let (status, v) = token(&sim, &cfg, "wrong").await;
        assert_eq!(status, 400);
        assert_eq!(v["error"], "invalid_grant");
        let (status, v) = token(&sim, &cfg, &cfg.refresh_token).await;
        assert_eq!(status, 200);
        assert_eq!(v["expires_in"], 7200);
        assert_eq!(v["token_type"], "User Access Token");
        assert!(
            v.get("refresh_token").is_none(),
            "eBay does not rotate refresh tokens"
        );
        let tok = v["access_token"].as_str().expect("token").to_string();

        let (status, v) = get(&sim, "nope", "/conversation?conversation_type=FROM_MEMBERS").await;
        assert_eq!(status, 401);
        assert_eq!(v["errors"][0]["errorId"], 1001);
        for q in [
            "/conversation",
            "/conversation?conversation_type=FROM_OWNERS",
            "/conversation?conversation_type=FROM_MEMBERS&limit=51",
        ] {
            let (status, v) = get(&sim, &tok, q).await;
            assert_eq!(status, 400, "{q}");
            assert!(v["errors"][0]["parameters"].is_array(), "{v}");
        }
        let (status, _) = get(
            &sim,
            &tok,
            "/conversation/c-nope?conversation_type=FROM_MEMBERS",
        )
        .await;
        assert_eq!(status, 404);
        sim.expire_tokens();
        let (status, _) = get(&sim, &tok, "/conversation?conversation_type=FROM_MEMBERS").await;
        assert_eq!(status, 401);
    })
    .await;
}

#[tokio::test]
async fn listings_page_and_threads_page() {
    bounded(async {
        let cfg = small();
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        let (status, v) = get(&sim, &tok, "/conversation?conversation_type=FROM_MEMBERS").await;
        assert_eq!(status, 200);
        assert_eq!(v["limit"], 25, "default limit");
        assert_eq!(v["total"], 120);
        let next = v["next"].as_str().expect("next").to_string();
        assert!(
            next.starts_with("http://") && next.contains("offset=25"),
            "{next}"
        );
        let first = &v["conversations"][0];
        for k in [
            "conversationId",
            "conversationType",
            "conversationStatus",
            "unreadCount",
            "latestMessage",
        ] {
            assert!(first.get(k).is_some(), "ConversationDetail.{k}");
        }
        // Newest activity first.
        let at = |c: &Value| {
            c["latestMessage"]["createdDate"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let convs = v["conversations"].as_array().expect("array");
        assert!(convs.windows(2).all(|w| at(&w[0]) >= at(&w[1])));
        let (_, last) = get(
            &sim,
            &tok,
            "/conversation?conversation_type=FROM_MEMBERS&limit=50&offset=100",
        )
        .await;
        assert_eq!(last["conversations"].as_array().map(Vec::len), Some(20));
        assert!(last.get("next").is_none());

        // A long thread pages by 50, oldest first.
        let long = sim
            .conversation_ids("FROM_MEMBERS")
            .into_iter()
            .find(|id| sim.message_count(id) > 50)
            .expect("a long thread");
        let n = sim.message_count(&long);
        let (status, t) = get(
            &sim,
            &tok,
            &format!("/conversation/{long}?conversation_type=FROM_MEMBERS&limit=50"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(t["total"], n);
        assert_eq!(t["messages"].as_array().map(Vec::len), Some(50));
        assert!(t["next"].as_str().is_some_and(|n| n.contains("offset=50")));
        // conversation_type must match.
        let (status, _) = get(
            &sim,
            &tok,
            &format!("/conversation/{long}?conversation_type=FROM_EBAY"),
        )
        .await;
        assert_eq!(status, 404);
        let (status, s) = get(
            &sim,
            &tok,
            "/conversation?conversation_type=FROM_EBAY&limit=50",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(s["total"], 7);
    })
    .await;
}

#[tokio::test]
async fn start_time_sees_only_buyer_activity() {
    bounded(async {
        let cfg = small();
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        let ids = sim.conversation_ids("FROM_MEMBERS");
        let since =
            inlet_core::Timestamp(inlet_core::Clock::now(&inlet_core::SystemClock).0 - 1000);
        sim.buyer_message(&ids[50], "Still there?");
        sim.seller_reply(&ids[60], "Shipped.");
        let q = format!("/conversation?conversation_type=FROM_MEMBERS&start_time={since}");
        let (_, v) = get(&sim, &tok, &q).await;
        let got: Vec<&str> = v["conversations"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|c| c["conversationId"].as_str())
            .collect();
        assert_eq!(
            got,
            vec![ids[50].as_str()],
            "the seller's reply does not match"
        );
        sim.set_start_time_quirk(false);
        let (_, v) = get(&sim, &tok, &q).await;
        assert_eq!(v["total"], 2);
        // The sent side, once enabled, filters by the account's own activity.
        sim.set_owner_listing(true);
        let (_, v) = get(
            &sim,
            &tok,
            &format!("/conversation?conversation_type=FROM_OWNERS&start_time={since}"),
        )
        .await;
        assert_eq!(v["conversations"][0]["conversationId"], ids[60].as_str());
        assert_eq!(v["total"], 1);
    })
    .await;
}

/// ebay.md §6: `sort=-last_modified_date` lists newest activity first (a seller's own
/// reply counts), `other_party_username` / `reference_id`+`reference_type` narrow the
/// listing, `filter=` is ignored, and a very large account answers an unnarrowed listing
/// with 500 unless it is narrowed (by `sort` among others).
#[tokio::test]
async fn sort_narrowing_and_the_large_account_quirk() {
    bounded(async {
        let cfg = EbaySimConfig {
            unnarrowed_5xx_above: Some(100),
            ..small()
        };
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        let ids = sim.conversation_ids("FROM_MEMBERS");
        sim.seller_reply(&ids[80], "Shipped.");
        let ids_of = |v: &Value| -> Vec<String> {
            v["conversations"]
                .as_array()
                .expect("array")
                .iter()
                .filter_map(|c| c["conversationId"].as_str().map(str::to_string))
                .collect()
        };
        for q in [
            "/conversation?conversation_type=FROM_MEMBERS",
            "/conversation?conversation_type=FROM_MEMBERS&filter=foo",
        ] {
            let (status, v) = get(&sim, &tok, q).await;
            assert_eq!(status, 500, "{q}: {v}");
            assert!(v["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("exceeded retries limit")));
        }
        // FROM_EBAY holds 7 conversations: below the threshold, no failure.
        let (status, _) = get(&sim, &tok, "/conversation?conversation_type=FROM_EBAY").await;
        assert_eq!(status, 200);
        let (status, v) = get(
            &sim,
            &tok,
            "/conversation?conversation_type=FROM_MEMBERS&sort=-last_modified_date&limit=3",
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(ids_of(&v)[0], ids[80], "the seller's reply is the newest activity");
        assert!(v["next"].as_str().is_some_and(|n| n.contains("sort=-last_modified_date")));
        let (status, v) = get(
            &sim,
            &tok,
            "/conversation?conversation_type=FROM_MEMBERS&sort=last_modified_date&limit=50&offset=100",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(ids_of(&v).last(), Some(&ids[80]), "oldest first");
        let (status, _) = get(
            &sim,
            &tok,
            "/conversation?conversation_type=FROM_MEMBERS&sort=title",
        )
        .await;
        assert_eq!(status, 400);
        let first = &sim.truth_conversations("FROM_MEMBERS")[0];
        let other = first["latestMessage"]["recipientUsername"]
            .as_str()
            .expect("buyer");
        let (status, v) = get(
            &sim,
            &tok,
            &format!("/conversation?conversation_type=FROM_MEMBERS&other_party_username={other}&limit=50"),
        )
        .await;
        assert_eq!(status, 200, "narrowed by the other party");
        assert!(ids_of(&v).contains(&ids[80]));
        assert!(v["conversations"].as_array().expect("array").iter().all(|c| {
            [&c["latestMessage"]["senderUsername"], &c["latestMessage"]["recipientUsername"]]
                .iter()
                .any(|u| u.as_str() == Some(other))
        }));
        let reference = first["referenceId"].as_str().expect("reference");
        let (status, v) = get(
            &sim,
            &tok,
            &format!("/conversation?conversation_type=FROM_MEMBERS&reference_id={reference}&reference_type=LISTING"),
        )
        .await;
        assert_eq!(status, 200, "narrowed by the item");
        assert!(ids_of(&v).contains(&ids[80]));
    })
    .await;
}

#[tokio::test]
async fn call_limit_faults_and_log() {
    bounded(async {
        let cfg = EbaySimConfig {
            call_limit: Some(CallLimit {
                calls: 3,
                window_secs: 86_400,
            }),
            ..small()
        };
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        let q = "/conversation?conversation_type=FROM_MEMBERS";
        for _ in 0..3 {
            assert_eq!(get(&sim, &tok, q).await.0, 200);
        }
        let (status, v) = get(&sim, &tok, q).await;
        assert_eq!(status, 429);
        assert_eq!(v["errors"][0]["errorId"], 2001);
        assert_eq!(sim.call_limit_violations(), 1);

        let sim = EbaySim::start(small()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        sim.set_faults(Faults {
            http_5xx: 1.0,
            only_next: Some(1),
            ..Faults::default()
        });
        let (status, v) = get(&sim, &tok, q).await;
        assert!(status >= 500);
        assert!(v["errors"].is_array(), "eBay error body on 5xx");
        let id = sim.conversation_ids("FROM_MEMBERS").remove(3);
        sim.fail_conversation(&id, true);
        let (status, _) = get(
            &sim,
            &tok,
            &format!("/conversation/{id}?conversation_type=FROM_MEMBERS"),
        )
        .await;
        assert_eq!(status, 404);
        let log = sim.requests();
        assert_eq!(log.len(), 3, "token + listing + thread");
        assert_eq!(log[2].status, 404);
        assert!(log[2].path.ends_with(&id));
    })
    .await;
}

/// ebay.md §7: over the limit eBay answers 429 with errorId 2001 and neither rate headers
/// nor `Retry-After`; the Developer Analytics API's user_rate_limit tells the remaining
/// calls and the reset and costs no quota.
#[tokio::test]
async fn call_limit_answer_and_rate_limit_api() {
    bounded(async {
        let cfg = EbaySimConfig {
            call_limit: Some(CallLimit {
                calls: 2,
                window_secs: 86_400,
            }),
            ..small()
        };
        let sim = EbaySim::start(cfg.clone()).await.expect("sim");
        let tok = access(&sim, &cfg).await;
        let limits = || async {
            let r = http()
                .get(format!(
                    "{}/developer/analytics/v1_beta/user_rate_limit/?api_context=commerce&api_name=message",
                    sim.api_root()
                ))
                .bearer_auth(&tok)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.expect("json");
            v["rateLimits"][0]["resources"][0]["rates"][0].clone()
        };
        let rate = limits().await;
        assert_eq!((rate["limit"].as_u64(), rate["remaining"].as_u64()), (Some(2), Some(2)));
        assert_eq!(rate["timeWindow"], 86_400);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let midnight = (now_ms / 86_400_000 + 1) * 86_400_000;
        let reset = inlet_core::Timestamp::parse_rfc3339(rate["reset"].as_str().expect("reset"))
            .expect("RFC 3339");
        assert_eq!(reset.0, midnight, "a daily window resets at midnight UTC");
        let q = "/conversation?conversation_type=FROM_MEMBERS";
        for _ in 0..2 {
            assert_eq!(get(&sim, &tok, q).await.0, 200);
        }
        assert_eq!(limits().await["remaining"], 0, "asking costs no quota");
        let r = http()
            .get(format!("{}{q}", sim.api_base()))
            .bearer_auth(&tok)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 429);
        for h in ["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset"] {
            assert!(r.headers().get(h).is_none(), "{h} is not sent");
        }
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["errors"][0]["errorId"], 2001);
        assert_eq!(sim.call_limit_violations(), 1);
        assert_eq!(sim.rate_limit_api_calls(), 2);
        sim.set_rate_limit_api(false);
        sim.reset_call_window();
        assert_eq!(get(&sim, &tok, q).await.0, 200, "a new window");
    })
    .await;
}
