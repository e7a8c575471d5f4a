//! Workspaces over the HTTP API and in the scheduler, on SQLite and PostgreSQL: their
//! lifecycle, a paused workspace's connections left alone while others run, the tick
//! summary counting a workspace with a failed run as failed, and `/health` over an
//! injected clock.

mod common;

use common::{TestDb, capture_logs, env, logs, opts, secrets};
use inlet_core::{Clock, ManualClock, Store, SystemClock, Timestamp};
use inlet_server::{ServeOptions, Server, keys};
use inlet_sim::reddit::{RedditSim, RedditSimConfig};
use inlet_sim::slack::{SlackSim, SlackSimConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn small() -> RedditSimConfig {
    RedditSimConfig {
        messages: 40,
        saved: 10,
        comment_replies: 0,
        ..Default::default()
    }
}

/// Records a first sync of `small()` fetches.
const FETCHED: u64 = 50;

both_backends!(workspace_api_lifecycle);
async fn workspace_api_lifecycle(db: &TestDb) {
    let e = env(db, small(), false).await;
    let r = e
        .post("/v1/workspaces")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let w: Value = r.json().await.unwrap();
    assert_eq!(
        (w["name"].as_str(), w["status"].as_str()),
        (Some("acme"), Some("active"))
    );
    assert!(w["created_at"].is_string() && w["id"].is_i64(), "{w}");

    // Bad input: nothing written.
    for (body, code) in [
        (json!({"name": "acme"}), 409),
        (json!({"name": ""}), 400),
        (json!({"name": " padded"}), 400),
        (json!({"name": "a\nb"}), 400),
        (json!({"nam": "x"}), 400),
    ] {
        let r = e.post("/v1/workspaces").json(&body).send().await.unwrap();
        assert_eq!(r.status(), code, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
    }
    let mut bad = e.new_connection("c-bad");
    bad["workspace"] = json!("x\u{202e}y");
    let r = e.post("/v1/connections").json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(e.store.get_connection("c-bad").await.unwrap().is_none());
    let list: Value = e
        .get("/v1/workspaces")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["acme"]);

    // A connection into acme; one into a workspace that does not exist yet makes it.
    let mut body = e.new_connection("c1");
    body["workspace"] = json!("acme");
    let r = e.post("/v1/connections").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let mut body = e.new_connection("c2");
    body["workspace"] = json!("fresh");
    assert_eq!(
        e.post("/v1/connections")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let fresh: Value = e
        .get("/v1/workspaces/fresh")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["workspace"]["status"], "active");
    assert_eq!(fresh["connections"][0]["connection"]["name"], "c2");

    // show: connections with their last run.
    let t: Value = e
        .post("/v1/connections/c1/sync")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = e.wait_run(t["run_id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "success");
    let show: Value = e
        .get("/v1/workspaces/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conns = show["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{show}");
    assert_eq!(conns[0]["connection"]["name"], "c1");
    assert_eq!(conns[0]["last_run"]["id"], run["id"]);
    assert_eq!(conns[0]["last_run"]["stats"]["fetched"], FETCHED);

    // pause / resume.
    let p: Value = e
        .post("/v1/workspaces/acme/pause")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["status"], "paused");
    let got: Value = e
        .get("/v1/workspaces/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["workspace"]["status"], "paused");
    let p: Value = e
        .post("/v1/workspaces/acme/resume")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["status"], "active");
    for path in ["/v1/workspaces/nope", "/v1/workspaces/nope/pause"] {
        let r = if path.ends_with("pause") {
            e.post(path).send().await.unwrap()
        } else {
            e.get(path).send().await.unwrap()
        };
        assert_eq!(r.status(), 404, "{path}");
    }
    assert!(e.store.get_workspace("nope").await.unwrap().is_none());
    // Behind the API key.
    let r = reqwest::get(e.url("/v1/workspaces")).await.unwrap();
    assert_eq!(r.status(), 401);
    e.server.shutdown().await;
}

/// A server whose scheduler and engine read `clock`, with an API key.
struct Clocked {
    server: Server,
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Clocked {
    async fn start(store: Arc<dyn Store>, clock: &ManualClock, o: ServeOptions) -> Clocked {
        capture_logs();
        let server = Server::start(store.clone(), secrets(), Arc::new(clock.clone()), o)
            .await
            .expect("server starts");
        let k = keys::generate().expect("key");
        store
            .create_api_key("tests", &k.prefix, &k.hash, SystemClock.now())
            .await
            .expect("api key");
        Clocked {
            base: format!("http://{}", server.addr),
            server,
            key: k.key,
            http: reqwest::Client::new(),
        }
    }
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// A connection to `sim` in `workspace`; with `bad_secret` the simulator answers its
/// token request with 401.
fn conn_body(
    sim: &RedditSim,
    cfg: &RedditSimConfig,
    name: &str,
    workspace: &str,
    bad_secret: bool,
) -> Value {
    json!({
        "name": name,
        "workspace": workspace,
        "provider": "reddit",
        "config": {
            "api_base": sim.api_base(),
            "token_url": sim.token_url(),
            "user_agent": "inlet-tests/0.1 (by /u/sim_user)",
            "username": cfg.username,
            "page_size": 100
        },
        "credentials": {
            "client_id": cfg.client_id,
            "client_secret": if bad_secret { "wrong".to_string() } else { cfg.client_secret.clone() },
            "refresh_token": cfg.refresh_token
        }
    })
}

/// Wait until `done` holds for the runs in the store (30 s at most).
async fn wait_runs(
    store: &Arc<dyn Store>,
    done: impl Fn(&[inlet_core::Run]) -> bool,
) -> Vec<inlet_core::Run> {
    let mut runs = vec![];
    for _ in 0..600 {
        runs = store.list_runs(None, 100).await.unwrap();
        if done(&runs) && runs.iter().all(|r| r.status.as_str() != "running") {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("runs did not get there: {runs:?}");
}

/// Reddit's interval is 10 minutes: a step of 11 makes every scheduled connection due
/// in one tick.
const STEP_MS: i64 = 11 * 60_000;

both_backends!(paused_workspace_is_not_scheduled_while_others_are);
async fn paused_workspace_is_not_scheduled_while_others_are(db: &TestDb) {
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let store = db.store().await;
    let clock = ManualClock::new(SystemClock.now());
    let s = Clocked::start(store.clone(), &clock, opts(true)).await;
    assert_eq!(s.post("/v1/workspaces", json!({"name": "on"})).await, 201);
    assert_eq!(s.post("/v1/workspaces", json!({"name": "off"})).await, 201);
    assert_eq!(s.post("/v1/workspaces/off/pause", json!({})).await, 200);
    assert_eq!(
        s.post("/v1/connections", conn_body(&sim, &cfg, "a", "on", false))
            .await,
        201
    );
    assert_eq!(
        s.post("/v1/connections", conn_body(&sim, &cfg, "b", "off", false))
            .await,
        201
    );
    let a = store.get_connection("a").await.unwrap().unwrap().id;
    let b = store.get_connection("b").await.unwrap().unwrap().id;
    // Let the scheduler see both, then make everything due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance_ms(STEP_MS);
    let runs = wait_runs(&store, |r| r.iter().any(|r| r.connection_id == a)).await;
    // A few more ticks: b, in the paused workspace, is still not started.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs2 = store.list_runs(None, 100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs2.iter().all(|r| r.connection_id != b), "{runs2:?}");
    assert_eq!(runs2[0].trigger.as_str(), "schedule");
    let st = s.get("/v1/connections/b/status").await;
    assert!(st["next_scheduled_at"].is_null(), "{st}");

    // Resumed, its connection is scheduled on the next interval.
    assert_eq!(s.post("/v1/workspaces/off/resume", json!({})).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance_ms(STEP_MS);
    let runs = wait_runs(&store, |r| r.iter().any(|r| r.connection_id == b)).await;
    let of_b: Vec<_> = runs.iter().filter(|r| r.connection_id == b).collect();
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0].status.as_str(), "success");
    s.server.shutdown().await;
}

both_backends!(tick_summary_counts_a_workspace_with_a_failed_run_as_failed);
async fn tick_summary_counts_a_workspace_with_a_failed_run_as_failed(db: &TestDb) {
    let cfg = small();
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let store = db.store().await;
    let clock = ManualClock::new(SystemClock.now());
    let s = Clocked::start(store.clone(), &clock, opts(true)).await;
    // good: two connections that sync; bad: one that syncs and one the simulator
    // answers with 401.
    for (name, ws, bad) in [
        ("g1", "good", false),
        ("g2", "good", false),
        ("b1", "bad", true),
        ("b2", "bad", false),
    ] {
        assert_eq!(
            s.post("/v1/connections", conn_body(&sim, &cfg, name, ws, bad))
                .await,
            201
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s.get("/v1/scheduler/ticks").await;
    assert_eq!(before["scheduler"], "running");
    assert_eq!(
        before["providers"]["reddit"]["last"]["status"], "skipped",
        "{before}"
    );
    assert!(
        before["providers"]["reddit"]["last_success"].is_null(),
        "{before}"
    );

    clock.advance_ms(STEP_MS);
    wait_runs(&store, |r| r.len() == 4).await;
    let mut ticks = Value::Null;
    for _ in 0..100 {
        ticks = s.get("/v1/scheduler/ticks").await;
        if !ticks["providers"]["reddit"]["last_success"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reddit = &ticks["providers"]["reddit"];
    assert_eq!(
        reddit["last_success"],
        json!({"status": "success", "total_messages": 3 * FETCHED,
               "successful_workspaces": 1, "failed_workspaces": 1}),
        "{ticks}"
    );
    assert_eq!(reddit["ticks_success"], 1, "{ticks}");
    let b1 = store.get_connection("b1").await.unwrap().unwrap();
    assert_eq!(b1.status.as_str(), "needs_reauth");

    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "inlet_scheduler_last_tick_failed_workspaces{provider=\"reddit\"} 1",
        "inlet_scheduler_last_tick_successful_workspaces{provider=\"reddit\"} 1",
        "inlet_scheduler_last_tick_messages{provider=\"reddit\"} 150",
        "inlet_scheduler_ticks_total{provider=\"reddit\",status=\"success\"} 1",
        "inlet_scheduler_tick_workspaces_total{provider=\"reddit\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert!(
        logs().lines().any(|l| l.contains("Scheduler tick summary.")
            && l.contains("\"failed_workspaces\":1")
            && l.contains("\"total_messages\":150")),
        "the summary is logged"
    );
    s.server.shutdown().await;
}

both_backends!(a_revoked_slack_workspace_fails_alone);
/// Two tenants on Slack, one whose token was revoked (`token_revoked`, HTTP 200 with
/// `ok: false`): its connection goes `needs_reauth`, the other workspace syncs, and the
/// tick's Slack summary counts one failed and one successful workspace.
async fn a_revoked_slack_workspace_fails_alone(db: &TestDb) {
    let store = db.store().await;
    let clock = ManualClock::new(SystemClock.now());
    let s = Clocked::start(store.clone(), &clock, opts(true)).await;
    let mut sims = Vec::new();
    for (i, (name, ws)) in [("slack-acme", "acme"), ("slack-globex", "globex")]
        .into_iter()
        .enumerate()
    {
        let sim = SlackSim::start(SlackSimConfig {
            seed: 40 + i as u64,
            channels: 2,
            messages_per_channel: 12,
            threads_per_channel: 2,
            replies_per_thread: 2,
            span_secs: 6 * 3600,
            bot_token: format!("xoxb-{name}-{}", std::process::id()),
            ..Default::default()
        })
        .await
        .expect("sim");
        let body = json!({
            "name": name,
            "workspace": ws,
            "provider": "slack",
            "config": {"api_base": sim.api_base(), "channels": sim.channel_ids()},
            "credentials": {"token": sim.bot_token()},
        });
        assert_eq!(s.post("/v1/connections", body).await, 201);
        sims.push(sim);
    }
    sims[1].revoke(&sims[1].bot_token());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // More than Slack's 15-minute interval: both slots are due in the same tick.
    clock.advance_ms(16 * 60_000);
    let runs = wait_runs(&store, |r| {
        r.len() == 2 && r.iter().all(|r| r.finished_at.is_some())
    })
    .await;
    let mut ticks = Value::Null;
    for _ in 0..100 {
        ticks = s.get("/v1/scheduler/ticks").await;
        if !ticks["providers"]["slack"]["last_success"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good = store.get_connection("slack-acme").await.unwrap().unwrap();
    let bad = store.get_connection("slack-globex").await.unwrap().unwrap();
    let good_run = runs
        .iter()
        .find(|r| r.connection_id == good.id)
        .expect("run");
    assert_eq!(good_run.status.as_str(), "success", "{good_run:?}");
    assert!(good_run.stats.fetched > 0);
    assert_eq!(
        ticks["providers"]["slack"]["last_success"],
        json!({"status": "success", "total_messages": good_run.stats.fetched,
               "successful_workspaces": 1, "failed_workspaces": 1}),
        "{ticks}"
    );
    assert_eq!(bad.status.as_str(), "needs_reauth");
    assert_eq!(good.status.as_str(), "active");
    let bad_run = runs
        .iter()
        .find(|r| r.connection_id == bad.id)
        .expect("run");
    assert!(
        bad_run
            .error
            .as_deref()
            .unwrap_or("")
            .contains("token_revoked"),
        "{bad_run:?}"
    );
    s.server.shutdown().await;
}

both_backends!(health_follows_the_scheduler_heartbeat_on_the_injected_clock);
async fn health_follows_the_scheduler_heartbeat_on_the_injected_clock(db: &TestDb) {
    let store = db.store().await;
    let t0 = Timestamp::parse_rfc3339("2026-01-02T03:04:05.000Z").unwrap();
    let clock = ManualClock::new(t0);
    // One tick every 10 minutes: after the first, the heartbeat only ages.
    let mut o = opts(true);
    o.tick = Duration::from_secs(600);
    let s = Clocked::start(store.clone(), &clock, o).await;
    let health = || async {
        let r = reqwest::get(format!("{}/health", s.base)).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let mut got = health().await;
    for _ in 0..100 {
        if got.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = health().await;
    }
    assert_eq!(
        got,
        (
            200,
            json!({"status": "healthy", "timestamp": "2026-01-02T03:04:05.000Z", "service": "sync_engine"})
        )
    );
    // Fresh within three ticks (30 minutes).
    clock.advance_ms(30 * 60_000);
    assert_eq!(health().await.0, 200);
    clock.advance_ms(1);
    let (code, body) = health().await;
    assert_eq!(code, 503);
    assert_eq!(
        body,
        json!({"status": "unhealthy", "timestamp": "2026-01-02T03:34:05.001Z", "service": "sync_engine"})
    );
    s.server.shutdown().await;

    // Without a scheduler there is no heartbeat: unhealthy.
    let s = Clocked::start(store, &clock, opts(false)).await;
    let r = reqwest::get(format!("{}/health", s.base)).await.unwrap();
    assert_eq!(r.status(), 503);
    s.server.shutdown().await;
}
