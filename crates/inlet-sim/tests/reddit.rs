//! Reddit simulator tests over real HTTP on 127.0.0.1, including conformance with the recorded
//! fixtures in `shared/providers/fixtures/reddit/`.

use inlet_core::{ManualClock, Timestamp};
use inlet_sim::reddit::{Faults, RateLimit, RedditSim, RedditSimConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/providers/fixtures/reddit/"
);
const UA: &str = "test:inlet-sim:0.1 (by /u/inlet)";

/// Runs a test body with a hard time bound.
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test exceeded its time bound");
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(UA)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn small() -> RedditSimConfig {
    RedditSimConfig {
        messages: 60,
        comment_replies: 6,
        saved: 10,
        ..RedditSimConfig::default()
    }
}

async fn start(cfg: RedditSimConfig) -> RedditSim {
    RedditSim::start(cfg).await.unwrap()
}

async fn token_request(
    sim: &RedditSim,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let r = http()
        .post(sim.token_url())
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(r.headers().get("x-ratelimit-used").is_none());
    (status, r.json().await.unwrap())
}

async fn token(sim: &RedditSim) -> String {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "sim_refresh_token"),
    ];
    let (status, v) = token_request(sim, "sim_client_id", "sim_client_secret", &form).await;
    assert_eq!(status, 200);
    v["access_token"].as_str().unwrap().to_string()
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn get(sim: &RedditSim, tok: &str, path_query: &str) -> Resp {
    let r = http()
        .get(format!("{}{path_query}", sim.api_base()))
        .header("Authorization", format!("bearer {tok}"))
        .send()
        .await
        .unwrap();
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

/// Follows `after` from the top; returns the fullnames seen.
async fn pull_all(sim: &RedditSim, tok: &str, path: &str, limit: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = String::new();
    loop {
        let r = get(
            sim,
            tok,
            &format!("{path}?limit={limit}&raw_json=1&after={after}"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        for c in v["data"]["children"].as_array().unwrap() {
            names.push(c["data"]["name"].as_str().unwrap().to_string());
        }
        match v["data"]["after"].as_str() {
            Some(a) => after = a.to_string(),
            None => return names,
        }
    }
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

// ---- fixture conformance --------------------------------------------------------------------

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

type Shapes = BTreeMap<(String, String), BTreeMap<String, BTreeSet<&'static str>>>;

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}{name}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

/// The response bodies of a cassette or derived fixture, with their request URIs.
fn bodies(name: &str) -> Vec<(String, Value)> {
    let f = fixture(name);
    match f.get("interactions") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| {
                let body = serde_json::from_str(i["response"]["body"]["string"].as_str()?).ok()?;
                Some((i["request"]["uri"].as_str()?.to_string(), body))
            })
            .collect(),
        None => vec![(
            f["request"]["uri"].as_str().unwrap().to_string(),
            f["body"].clone(),
        )],
    }
}

/// Recorded key → JSON types, per (listing, kind).
fn recorded_shapes() -> Shapes {
    let mut shapes = Shapes::new();
    for file in [
        "message_inbox.page1.trimmed.json",
        "message_sent.cassette.json",
        "user_saved.cassette.json",
    ] {
        for (uri, body) in bodies(file) {
            let Some(children) = body["data"]["children"].as_array() else {
                continue;
            };
            let src = if uri.contains("/saved") {
                "saved"
            } else {
                "message"
            };
            for c in children {
                let kind = c["kind"].as_str().unwrap().to_string();
                let entry = shapes.entry((src.to_string(), kind)).or_default();
                for (k, v) in c["data"].as_object().unwrap() {
                    entry.entry(k.clone()).or_default().insert(type_name(v));
                }
            }
        }
    }
    shapes
}

/// Keys whose recorded type does not cover a legitimate live value.
/// `selftext_html` is null for link posts on Reddit; the fixture only recorded self posts.
const NULLABLE_EXTRA: &[&str] = &["selftext_html"];

fn assert_conforms(item: &Value, shape: &BTreeMap<String, BTreeSet<&'static str>>, what: &str) {
    let obj = item.as_object().unwrap();
    for (key, types) in shape {
        let v = obj
            .get(key)
            .unwrap_or_else(|| panic!("{what}: missing key {key}"));
        let t = type_name(v);
        let ok = types.contains(t) || (t == "null" && NULLABLE_EXTRA.contains(&key.as_str()));
        assert!(ok, "{what}: key {key} has type {t}, recorded {types:?}");
    }
}

#[tokio::test]
async fn fixture_conformance_of_items_and_envelope() {
    bounded(async {
        let shapes = recorded_shapes();
        for key in [
            ("message", "t1"),
            ("message", "t4"),
            ("saved", "t1"),
            ("saved", "t3"),
        ] {
            assert!(
                shapes.contains_key(&(key.0.into(), key.1.into())),
                "fixture lacks {key:?}"
            );
        }
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let mut seen = BTreeSet::new();
        for (path, src) in [
            ("/message/inbox", "message"),
            ("/message/sent", "message"),
            ("/user/sim_user/saved", "saved"),
        ] {
            let r = get(&sim, &tok, &format!("{path}?limit=100&raw_json=1")).await;
            let v = r.json();
            // Envelope: every recorded key with the recorded type.
            let recorded = &bodies("message_inbox.page1.trimmed.json")[0].1;
            assert_eq!(v["kind"], "Listing");
            for (k, rv) in recorded["data"].as_object().unwrap() {
                let sv = v["data"]
                    .get(k)
                    .unwrap_or_else(|| panic!("envelope lacks {k}"));
                assert!(
                    type_name(sv) == type_name(rv) || rv.is_null() || sv.is_null(),
                    "envelope {k}"
                );
            }
            assert_eq!(v["data"]["modhash"], Value::Null);
            assert_eq!(v["data"]["geo_filter"], "");
            for c in v["data"]["children"].as_array().unwrap() {
                let kind = c["kind"].as_str().unwrap();
                let shape = &shapes[&(src.to_string(), kind.to_string())];
                assert_conforms(&c["data"], shape, &format!("{path} {kind}"));
                seen.insert((src, kind.to_string()));
            }
        }
        assert_eq!(seen.len(), 4, "sim served every recorded kind: {seen:?}");
    })
    .await;
}

#[tokio::test]
async fn error_bodies_and_headers_match_fixtures() {
    bounded(async {
        let recorded = |file: &str, n: usize| -> (String, Value) {
            let f = fixture(file);
            let resp = f["interactions"][n]["response"].clone();
            (
                resp["body"]["string"].as_str().unwrap().to_string(),
                resp["headers"].clone(),
            )
        };
        let sim = start(small()).await;
        let r = get(&sim, "not-a-token", "/api/v1/me?raw_json=1").await;
        let (body401, headers401) = recorded("invalid_token_401.cassette.json", 0);
        assert_eq!((r.status, r.text.as_str()), (401, body401.as_str()));
        assert_eq!(
            r.header("www-authenticate"),
            headers401["www-authenticate"][0].as_str().unwrap()
        );
        let tok = token(&sim).await;
        let r = get(&sim, &tok, "/user/spez/saved?limit=100&raw_json=1").await;
        let (body403, _) = recorded("saved_other_user_403.cassette.json", 1);
        assert_eq!((r.status, r.text.as_str()), (403, body403.as_str()));
        let r = get(&sim, &tok, "/message/nope").await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (404, r#"{"message": "Not Found", "error": 404}"#)
        );
        let me = get(&sim, &tok, "/api/v1/me?raw_json=1").await;
        assert_eq!(me.json()["name"], "sim_user");
    })
    .await;
}

#[tokio::test]
async fn rate_limit_headers_have_recorded_formats() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let fixture = fixture("message_inbox.page1.trimmed.json");
        let rec = &fixture["response_headers"];
        let r = get(&sim, &tok, "/message/inbox?raw_json=1").await;
        assert!(
            rec["x-ratelimit-remaining"][0]
                .as_str()
                .unwrap()
                .ends_with(".0")
        );
        assert_eq!(r.header("x-ratelimit-used"), "1");
        assert_eq!(r.header("x-ratelimit-remaining"), "999.0");
        let reset: i64 = r.header("x-ratelimit-reset").parse().unwrap();
        assert!((0..=600).contains(&reset));
        assert!(
            rec["x-ratelimit-used"][0]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        assert!(
            rec["x-ratelimit-reset"][0]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        assert_eq!(
            r.header("content-type"),
            rec["content-type"][0].as_str().unwrap()
        );
    })
    .await;
}

// ---- auth -----------------------------------------------------------------------------------

#[tokio::test]
async fn token_grant_flows() {
    bounded(async {
        let clock = ManualClock::new(Timestamp::from_secs(1_750_000_000));
        let sim = start(RedditSimConfig {
            password_user: Some(("bot".into(), "hunter2".into())),
            token_expires_in: 3600,
            clock: Arc::new(clock.clone()),
            ..small()
        })
        .await;
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim_refresh_token"),
        ];
        let (s, v) = token_request(&sim, "sim_client_id", "sim_client_secret", &refresh).await;
        assert_eq!(s, 200);
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["expires_in"], 3600);
        assert_eq!(v["refresh_token"], "sim_refresh_token");
        assert!(v["scope"].as_str().unwrap().contains("privatemessages"));
        let first = v["access_token"].as_str().unwrap().to_string();
        assert_ne!(token(&sim).await, first, "tokens are random per issue");

        let password = [
            ("grant_type", "password"),
            ("username", "bot"),
            ("password", "hunter2"),
        ];
        let (s, v) = token_request(&sim, "sim_client_id", "sim_client_secret", &password).await;
        assert_eq!(
            (s, v["expires_in"].as_u64(), v["scope"].as_str()),
            (200, Some(3600), Some("*"))
        );
        let wrong_pw = [
            ("grant_type", "password"),
            ("username", "bot"),
            ("password", "x"),
        ];
        let (s, v) = token_request(&sim, "sim_client_id", "sim_client_secret", &wrong_pw).await;
        assert_eq!((s, v), (200, json!({"error": "invalid_grant"})));

        let bad_rt = [("grant_type", "refresh_token"), ("refresh_token", "nope")];
        let (s, v) = token_request(&sim, "sim_client_id", "sim_client_secret", &bad_rt).await;
        assert_eq!((s, v), (200, json!({"error": "invalid_grant"})));
        let (s, v) = token_request(&sim, "sim_client_id", "wrong", &refresh).await;
        assert_eq!(
            (s, v),
            (401, json!({"message": "Unauthorized", "error": 401}))
        );

        // Expiry by the injected clock, then by the hook; revocation.
        assert_eq!(get(&sim, &first, "/api/v1/me").await.status, 200);
        clock.advance_ms(3_600_001);
        assert_eq!(get(&sim, &first, "/api/v1/me").await.status, 401);
        let fresh = token(&sim).await;
        let r = http()
            .get(format!("{}/api/v1/me", sim.api_base()))
            .header("Authorization", format!("BEARER {fresh}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "scheme is case-insensitive");
        sim.expire_tokens();
        assert_eq!(get(&sim, &fresh, "/api/v1/me").await.status, 401);
        sim.revoke_refresh_token();
        let (s, v) = token_request(&sim, "sim_client_id", "sim_client_secret", &refresh).await;
        assert_eq!((s, v), (200, json!({"error": "invalid_grant"})));
    })
    .await;
}

#[tokio::test]
async fn missing_user_agent_is_rejected_separately() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let bare = reqwest::Client::new();
        let r = bare
            .get(format!("{}/message/inbox", sim.api_base()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(sim.user_agent_rejections(), 1);
        assert_eq!(sim.rate_limit_violations(), 0);
    })
    .await;
}

// ---- listings -------------------------------------------------------------------------------

#[tokio::test]
async fn paging_returns_every_item_once_in_order() {
    bounded(async {
        let sim = start(RedditSimConfig {
            messages: 500,
            comment_replies: 20,
            saved: 130,
            ..RedditSimConfig::default()
        })
        .await;
        let tok = token(&sim).await;
        for (path, truth) in [
            ("/message/inbox", sim.truth_inbox()),
            ("/message/sent/", sim.truth_sent()),
            ("/user/sim_user/saved", sim.truth_saved()),
        ] {
            let got = pull_all(&sim, &tok, path, 37).await;
            assert_eq!(got, names(&truth), "{path}");
            let unique: BTreeSet<_> = got.iter().collect();
            assert_eq!(unique.len(), got.len());
        }
        let inbox = sim.truth_inbox();
        let kinds: BTreeSet<_> = inbox
            .iter()
            .map(|d| d["name"].as_str().unwrap()[..2].to_string())
            .collect();
        assert_eq!(kinds.len(), 2, "inbox mixes t4 and t1");
        let times: Vec<f64> = inbox
            .iter()
            .map(|d| d["created_utc"].as_f64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
        assert!(inbox.iter().all(|d| d["dest"] == "sim_user"));
        assert!(
            sim.truth_sent()
                .iter()
                .all(|d| d["author"] == "sim_user" && d["new"] == false)
        );
    })
    .await;
}

#[tokio::test]
async fn limit_is_clamped_and_defaults_to_25() {
    bounded(async {
        let sim = start(RedditSimConfig {
            messages: 400,
            ..small()
        })
        .await;
        let tok = token(&sim).await;
        let dist = |r: Resp| r.json()["data"]["dist"].as_u64().unwrap();
        assert_eq!(
            dist(get(&sim, &tok, "/message/inbox?limit=128&raw_json=1").await),
            100
        );
        assert_eq!(dist(get(&sim, &tok, "/message/inbox?raw_json=1").await), 25);
        assert_eq!(dist(get(&sim, &tok, "/message/inbox?limit=0").await), 1);
        assert_eq!(dist(get(&sim, &tok, "/message/inbox?limit=abc").await), 25);
    })
    .await;
}

#[tokio::test]
async fn before_and_after_slices() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let all = names(&sim.truth_inbox());
        let v = get(
            &sim,
            &tok,
            &format!("/message/inbox?limit=5&raw_json=1&after={}", all[9]),
        )
        .await
        .json();
        let page: Vec<_> = v["data"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["data"]["name"].clone())
            .collect();
        assert_eq!(page, all[10..15]);
        assert_eq!(v["data"]["after"], all[14].as_str());
        assert_eq!(v["data"]["before"], Value::Null);
        let v = get(
            &sim,
            &tok,
            &format!(
                "/message/inbox?limit=5&raw_json=1&after={}&count=10",
                all[9]
            ),
        )
        .await
        .json();
        assert_eq!(v["data"]["before"], all[10].as_str());
        // before: the slice immediately newer than the anchor.
        let v = get(
            &sim,
            &tok,
            &format!(
                "/message/inbox?limit=4&raw_json=1&before={}&count=50",
                all[9]
            ),
        )
        .await
        .json();
        let page: Vec<_> = v["data"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["data"]["name"].clone())
            .collect();
        assert_eq!(page, all[5..9]);
        assert_eq!(v["data"]["before"], all[5].as_str());
        assert_eq!(v["data"]["after"], all[8].as_str());
        let v = get(
            &sim,
            &tok,
            &format!("/message/inbox?limit=100&before={}", all[3]),
        )
        .await
        .json();
        assert_eq!(v["data"]["dist"], 3);
        assert_eq!(v["data"]["before"], Value::Null);
        let v = get(&sim, &tok, "/message/inbox?after=t4_zzzzzzz")
            .await
            .json();
        assert_eq!(v["data"]["dist"], 0, "unknown anchor gives an empty page");
    })
    .await;
}

#[tokio::test]
async fn listing_cap_limits_reachable_items() {
    bounded(async {
        let sim = start(RedditSimConfig {
            messages: 300,
            listing_cap: Some(50),
            ..small()
        })
        .await;
        let tok = token(&sim).await;
        let got = pull_all(&sim, &tok, "/message/inbox", 20).await;
        let all = names(&sim.truth_inbox());
        assert!(all.len() > 100);
        assert_eq!(got, all[..50]);
        let r = get(
            &sim,
            &tok,
            &format!("/message/inbox?raw_json=1&after={}", all[60]),
        )
        .await;
        assert_eq!(r.json()["data"]["children"], json!([]));
        assert_eq!(r.json()["data"]["after"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn raw_json_controls_html_escaping() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let url = "https://preview.redd.it/abc.png?width=640&format=png&auto=webp&s=00ff";
        let name = sim.add_message(None, false, &format!("look <b> [pic]({url})"));
        let raw = get(&sim, &tok, "/message/inbox?limit=1&raw_json=1").await;
        let legacy = get(&sim, &tok, "/message/inbox?limit=1").await;
        let rd = &raw.json()["data"]["children"][0]["data"];
        let ld = &legacy.json()["data"]["children"][0]["data"];
        assert_eq!(rd["name"], name.as_str());
        assert!(rd["body"].as_str().unwrap().contains(url));
        assert!(
            rd["body_html"]
                .as_str()
                .unwrap()
                .starts_with("<!-- SC_OFF --><div class=\"md\"><p>look &lt;b&gt;")
        );
        assert!(
            rd["body_html"]
                .as_str()
                .unwrap()
                .contains("width=640&amp;format=png")
        );
        assert!(
            raw.text.contains("\\u003Cdiv class"),
            "Reddit writes HTML with \\u003C escapes"
        );
        assert!(
            ld["body"]
                .as_str()
                .unwrap()
                .contains("width=640&amp;format=png")
        );
        assert!(ld["body"].as_str().unwrap().contains("look &lt;b&gt;"));
        assert!(
            ld["body_html"]
                .as_str()
                .unwrap()
                .starts_with("&lt;!-- SC_OFF --&gt;")
        );
    })
    .await;
}

// ---- hooks ----------------------------------------------------------------------------------

#[tokio::test]
async fn message_hooks_show_in_listings_and_truth() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let root = names(&sim.truth_sent())[5].clone();
        let reply = sim.add_message(Some(&root), false, "new reply café 🎉");
        let mine = sim.add_message(None, true, "fresh conversation");
        let inbox = get(&sim, &tok, "/message/inbox?limit=1&raw_json=1")
            .await
            .json();
        let top = &inbox["data"]["children"][0]["data"];
        assert_eq!(top["name"], reply.as_str());
        assert_eq!(top["body"], "new reply café 🎉");
        assert_eq!(top["new"], true);
        let root_item = sim
            .truth_sent()
            .into_iter()
            .find(|d| d["name"] == root.as_str())
            .unwrap();
        let root_name = root_item["first_message_name"]
            .as_str()
            .unwrap_or(&root)
            .to_string();
        assert_eq!(top["first_message_name"], root_name.as_str());
        assert!(top["subject"].as_str().unwrap().starts_with("re: Subject "));
        let sent_top = &sim.truth_sent()[0];
        assert_eq!(sent_top["name"], mine.as_str());
        assert_eq!(sent_top["first_message"], Value::Null);
        assert_eq!(sent_top["parent_id"], Value::Null);

        assert!(sim.edit_message(&reply, Some("edited body"), Some(false)));
        let d = &sim.truth_inbox()[0];
        assert_eq!(
            (d["body"].as_str(), d["new"].as_bool()),
            (Some("edited body"), Some(false))
        );
        let victim = names(&sim.truth_inbox())[3].clone();
        assert!(sim.delete_message(&victim));
        assert!(!sim.delete_message(&victim));
        assert!(!sim.edit_message(&victim, Some("x"), None));
        assert!(!names(&sim.truth_inbox()).contains(&victim));
        let listed = pull_all(&sim, &tok, "/message/inbox", 100).await;
        assert!(!listed.contains(&victim));
        assert_eq!(listed, names(&sim.truth_inbox()));
    })
    .await;
}

#[tokio::test]
async fn saved_hooks_reorder_and_remove() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        let before = names(&sim.truth_saved());
        assert_eq!(before.len(), 10);
        let new = sim.save_new();
        let old = before[7].clone();
        assert!(sim.save(&old));
        assert!(sim.unsave(&before[0]));
        assert!(!sim.unsave(&before[0]));
        assert!(sim.edit_saved(&before[1], 4242));
        let listed = pull_all(&sim, &tok, "/user/sim_user/saved", 3).await;
        assert_eq!(listed[..2], [old.clone(), new.clone()]);
        assert!(!listed.contains(&before[0]));
        assert_eq!(listed, names(&sim.truth_saved()));
        let item = sim
            .truth_saved()
            .into_iter()
            .find(|d| d["name"] == before[1].as_str())
            .unwrap();
        assert_eq!(item["score"], 4242);
        assert_eq!(item["saved"], true);
        assert!(sim.save(&before[0]), "re-saving an unsaved item works");
        assert_eq!(names(&sim.truth_saved())[0], before[0]);
    })
    .await;
}

// ---- rate limiting ------------------------------------------------------------------------

#[tokio::test]
async fn over_budget_gets_429_until_the_window_resets() {
    bounded(async {
        let clock = ManualClock::new(Timestamp::from_secs(1_750_000_000 - 1_750_000_000 % 60));
        let sim = start(RedditSimConfig {
            rate_limit: Some(RateLimit {
                budget: 5,
                window_secs: 60,
            }),
            clock: Arc::new(clock.clone()),
            ..small()
        })
        .await;
        let tok = token(&sim).await;
        for n in 1..=5 {
            let r = get(&sim, &tok, "/api/v1/me").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-ratelimit-remaining"), format!("{}.0", 5 - n));
        }
        clock.advance_ms(20_000);
        let r = get(&sim, &tok, "/api/v1/me").await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-ratelimit-reset"), "40");
        assert_eq!(r.header("x-ratelimit-remaining"), "0.0");
        assert_eq!(sim.rate_limit_violations(), 1);
        clock.advance_ms(40_000);
        let r = get(&sim, &tok, "/api/v1/me").await;
        assert_eq!((r.status, r.header("x-ratelimit-used")), (200, "1"));
        assert_eq!(sim.rate_limit_violations(), 1);
    })
    .await;
}

// ---- faults ---------------------------------------------------------------------------------

#[tokio::test]
async fn reset_fault_is_a_connection_error() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        sim.set_faults(Faults {
            reset: 1.0,
            only_next: Some(1),
            ..Faults::default()
        });
        let err = http()
            .get(format!("{}/message/inbox", sim.api_base()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
        assert_eq!(get(&sim, &tok, "/message/inbox").await.status, 200);
        let log = sim.requests();
        let statuses: Vec<u16> = log
            .iter()
            .filter(|r| r.path == "/message/inbox")
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses.first(), Some(&0), "reset logged with status 0");
    })
    .await;
}

#[tokio::test]
async fn truncated_fault_cuts_the_body() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        sim.set_faults(Faults {
            truncated: 1.0,
            ..Faults::default()
        });
        let r = http()
            .get(format!("{}/message/inbox?limit=50", sim.api_base()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let declared = r.content_length().unwrap();
        assert!(declared > 1000);
        assert!(
            r.bytes().await.is_err(),
            "body shorter than Content-Length is an error"
        );
    })
    .await;
}

#[tokio::test]
async fn http_5xx_latency_and_429_burst_faults() {
    bounded(async {
        let sim = start(small()).await;
        let tok = token(&sim).await;
        sim.set_faults(Faults {
            http_5xx: 1.0,
            path_contains: Some("/sent".into()),
            ..Faults::default()
        });
        let r = get(&sim, &tok, "/message/sent").await;
        assert!([500, 502, 503].contains(&r.status));
        assert!(r.text.contains("Our CDN was unable to reach our servers"));
        assert!(r.header("content-type").starts_with("text/html"));
        assert_eq!(
            get(&sim, &tok, "/message/inbox").await.status,
            200,
            "path filter"
        );

        sim.set_faults(Faults {
            latency_ms: 300,
            latency_prob: 1.0,
            ..Faults::default()
        });
        let t = Instant::now();
        assert_eq!(get(&sim, &tok, "/api/v1/me").await.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(300));

        sim.set_faults(Faults {
            http_429_burst: 2,
            ..Faults::default()
        });
        for _ in 0..2 {
            let r = get(&sim, &tok, "/message/inbox").await;
            assert_eq!(r.status, 429);
            assert!(r.header("x-ratelimit-reset").parse::<u64>().is_ok());
        }
        assert_eq!(get(&sim, &tok, "/message/inbox").await.status, 200);
        assert_eq!(
            sim.rate_limit_violations(),
            0,
            "server bursts are not client violations"
        );
    })
    .await;
}

#[tokio::test]
async fn faults_are_deterministic_per_seed() {
    bounded(async {
        async fn statuses(seed: u64) -> Vec<u16> {
            let sim = start(RedditSimConfig { seed, ..small() }).await;
            let tok = token(&sim).await;
            sim.set_faults(Faults {
                http_5xx: 0.5,
                ..Faults::default()
            });
            let mut out = Vec::new();
            for _ in 0..30 {
                out.push(get(&sim, &tok, "/api/v1/me").await.status);
            }
            out
        }
        let a = statuses(9).await;
        assert_eq!(a, statuses(9).await);
        assert!(a.contains(&200) && a.iter().any(|s| *s >= 500));
    })
    .await;
}

// ---- determinism, log, robustness -----------------------------------------------------------

#[tokio::test]
async fn same_seed_same_data() {
    bounded(async {
        let base = Some(1_700_000_000);
        let a = start(RedditSimConfig {
            seed: 3,
            base_time_secs: base,
            ..small()
        })
        .await;
        let b = start(RedditSimConfig {
            seed: 3,
            base_time_secs: base,
            ..small()
        })
        .await;
        let c = start(RedditSimConfig {
            seed: 4,
            base_time_secs: base,
            ..small()
        })
        .await;
        assert_eq!(a.truth_inbox(), b.truth_inbox());
        assert_eq!(a.truth_saved(), b.truth_saved());
        assert_ne!(a.truth_inbox(), c.truth_inbox());
        let d = &a.truth_sent()[0];
        assert_eq!(d["created_utc"].as_f64().unwrap().fract(), 0.0);
        let (ta, tb) = (token(&a).await, token(&b).await);
        let pa = get(&a, &ta, "/message/inbox?limit=100&raw_json=1")
            .await
            .text;
        assert_eq!(
            pa,
            get(&b, &tb, "/message/inbox?limit=100&raw_json=1")
                .await
                .text
        );
    })
    .await;
}

#[tokio::test]
async fn request_log_and_malformed_requests() {
    bounded(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sim = start(small()).await;
        let tok = token(&sim).await;
        get(&sim, &tok, "/message/inbox?limit=2").await;
        let log = sim.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(
            (log[0].method.as_str(), log[0].path.as_str()),
            ("POST", "/api/v1/access_token")
        );
        assert_eq!((log[1].query.as_str(), log[1].status), ("limit=2", 200));
        assert_eq!(sim.request_count(), 2);
        sim.clear_log();
        assert_eq!((sim.requests().len(), sim.request_count()), (0, 0));

        let addr = sim.api_base().trim_start_matches("http://").to_string();
        for raw in [
            "NONSENSE\r\n\r\n",
            "GET /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        ] {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"));
        }
        let r = get(&sim, &tok, "/message/inbox?after=%zz").await;
        assert_eq!(r.status, 400);
        sim.shutdown();
    })
    .await;
}
