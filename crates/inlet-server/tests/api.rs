//! The HTTP API over real HTTP on 127.0.0.1, against the Reddit simulator, on SQLite
//! and PostgreSQL.

mod common;

use common::{Env, TestDb, env, logs, opts, start_server};
use inlet_server::openapi::ROUTES;
use inlet_sim::reddit::{Faults, RedditSimConfig};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn small() -> RedditSimConfig {
    RedditSimConfig {
        messages: 150,
        saved: 30,
        ..Default::default()
    }
}

both_backends!(every_endpoint_answers_and_needs_a_key);
async fn every_endpoint_answers_and_needs_a_key(db: &TestDb) {
    let e = env(db, small(), false).await;
    let anon = reqwest::Client::new();
    // Health checks are public.
    let r = anon.get(e.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = anon.get(e.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(
        (ready["database"].as_str(), ready["scheduler"].as_str()),
        (Some("ok"), Some("disabled"))
    );
    // The sync engine's health is public too (unhealthy here: no scheduler runs).
    let r = anon.get(e.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Everything else: 401 without a key and with a wrong one.
    for (method, path) in ROUTES {
        if matches!(*path, "/healthz" | "/readyz" | "/health") {
            continue;
        }
        let p = path.replace("{id}", "1").replace("{name}", "w");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = anon.request(m.clone(), e.url(&p)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {p}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = anon
            .request(m, e.url(&p))
            .bearer_auth("ik_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {p} with a wrong key");
    }

    // Create: malformed bodies get precise 400s and write nothing.
    let r = e
        .post("/v1/connections")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("invalid JSON body") && msg.contains("line 1 column"),
        "{msg}"
    );
    let mut bad = e.new_connection("x");
    bad["colour"] = json!("blue");
    let r = e.post("/v1/connections").json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown field `colour`"));
    let r = e
        .post("/v1/connections")
        .json(&json!({"name": "x", "provider": "reddit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("missing field `credentials`")
    );
    let mut other = e.new_connection("x");
    other["provider"] = json!("myspace");
    let r = e.post("/v1/connections").json(&other).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = e
        .post("/v1/connections")
        // The server answers before reading the whole body and closes: keep this
        // connection out of the client's pool so the next request gets a fresh one.
        .header("connection", "close")
        .json(&json!({"blob": "a".repeat(2 << 20)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "bodies over 1 MiB are refused");
    let r = e
        .post("/v1/connections")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(
        e.store.list_connections().await.unwrap().is_empty(),
        "nothing written"
    );

    // Create, duplicate, list, show: credentials never come back.
    let id = e.create("r1").await;
    let r = e
        .post("/v1/connections")
        .json(&e.new_connection("r1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let list = e
        .get("/v1/connections")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let show = e
        .get("/v1/connections/r1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [&list, &show] {
        assert!(
            !body.contains(&e.sim_cfg.refresh_token) && !body.contains("credentials"),
            "{body}"
        );
    }
    assert_eq!(serde_json::from_str::<Value>(&show).unwrap()["id"], id);
    assert_eq!(
        e.get("/v1/connections/nope").send().await.unwrap().status(),
        404
    );
    // At rest the credentials are sealed: no plaintext token in the column.
    let stored = e.store.get_connection("r1").await.unwrap().unwrap();
    let token = e.sim_cfg.refresh_token.as_bytes();
    assert!(!stored.credentials.windows(token.len()).any(|w| w == token));
    assert!(!stored.credentials.windows(9).any(|w| w == b"client_id"));

    // Sync: bad mode 400, then 202 with a run id; the run finishes in the background.
    let r = e
        .post("/v1/connections/r1/sync?mode=sideways")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = e
        .post("/v1/connections/r1/sync")
        .json(&json!({"mode": "full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["status"], "started");
    let run_id = t["run_id"].as_i64().unwrap();
    let run = e.wait_run(run_id).await;
    assert_eq!(
        (
            run["status"].as_str(),
            run["mode"].as_str(),
            run["trigger"].as_str()
        ),
        (Some("success"), Some("full"), Some("api"))
    );
    assert!(run["stats"]["fetched"].as_u64().unwrap() > 0);
    e.server.dispatcher.wait_idle().await;
    // A reconcile through the API lists every saved id and is recorded as such.
    let r = e
        .post("/v1/connections/r1/sync?mode=reconcile")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let t: Value = r.json().await.unwrap();
    let reconcile_id = t["run_id"].as_i64().unwrap();
    let reconcile = e.wait_run(reconcile_id).await;
    assert_eq!(
        (reconcile["status"].as_str(), reconcile["mode"].as_str()),
        (Some("success"), Some("reconcile"))
    );
    assert!(
        reconcile["streams"]["saved"]["complete_listing"] == true,
        "{reconcile}"
    );
    e.server.dispatcher.wait_idle().await;

    // Runs, status, compare.
    let runs: Value = e
        .get("/v1/runs?connection=r1&limit=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["runs"][1]["id"], run_id);
    assert_eq!(e.get("/v1/runs/abc").send().await.unwrap().status(), 400);
    assert_eq!(e.get("/v1/runs/987654").send().await.unwrap().status(), 404);
    let st: Value = e
        .get("/v1/connections/r1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        st["streams"]["inbox"]["records"].as_u64(),
        Some(e.sim.truth_inbox().len() as u64)
    );
    assert_eq!(st["syncing"], false);
    assert_eq!(st["last_run"]["id"], reconcile_id);
    let cmp: Value = e
        .get("/v1/connections/r1/compare")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cmp["streams"]["saved"]["store"].as_u64(),
        Some(e.sim.truth_saved().len() as u64)
    );
    assert!(
        cmp["streams"]["saved"]["source"].is_null()
            && cmp["streams"]["saved"]["reason"].is_string()
    );

    // Refresh: Reddit cannot refresh one entity -> 422 with the connector's message.
    let r = e
        .post("/v1/connections/r1/refresh")
        .json(&json!({"entity": "conversation", "id": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not supported"));
    let r = e
        .post("/v1/connections/r1/refresh")
        .json(&json!({"entity": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Metrics and the OpenAPI document.
    let m = e
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("inlet_runs_total{status=\"success\"} 2"), "{m}");
    assert!(m.contains("inlet_http_requests_total "));
    assert!(m.contains("inlet_connection_last_success_age_seconds{connection=\"r1\""));
    let doc: Value = e
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut in_doc = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            in_doc.insert((m.clone(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(in_doc, routed, "the document lists exactly the routes");

    // Pause: triggers refused; resume: allowed again.
    assert_eq!(
        e.post("/v1/connections/r1/pause")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = e.post("/v1/connections/r1/sync").send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("paused"));
    let resumed: Value = e
        .post("/v1/connections/r1/resume")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["status"], "active");

    // Delete keeping the data, then delete with it.
    let r = e
        .delete("/v1/connections/r1?keep_data=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kept = e.store.get_connection("r1").await.unwrap().unwrap();
    assert!(kept.credentials.is_empty());
    assert_eq!(kept.status.as_str(), "paused");
    assert_eq!(
        e.post("/v1/connections/r1/resume")
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    let st: Value = e
        .get("/v1/connections/r1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        st["streams"]["inbox"]["records"].as_u64().unwrap() > 0,
        "rows kept"
    );
    assert_eq!(
        e.delete("/v1/connections/r1")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        e.get("/v1/connections/r1").send().await.unwrap().status(),
        404
    );
    assert_eq!(
        e.delete("/v1/connections/r1")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let spec = &inlet_connectors::reddit::streams::STREAMS[0];
    assert_eq!(
        e.store.count_live(id, spec).await.unwrap(),
        0,
        "rows deleted"
    );

    // Nothing secret was logged.
    let l = logs();
    assert!(l.contains("Connection created."), "logs are captured");
    assert!(!l.contains(&e.sim_cfg.refresh_token), "a token was logged");
    assert!(!l.contains(&e.key), "an API key was logged");
    e.server.shutdown().await;
}

both_backends!(twenty_concurrent_triggers_coalesce_into_one_follow_up);
async fn twenty_concurrent_triggers_coalesce_into_one_follow_up(db: &TestDb) {
    let e = env(db, small(), false).await;
    e.create("r1").await;
    // Slow provider: the first sync runs for a while.
    e.sim.set_faults(Faults {
        latency_ms: 300,
        latency_prob: 1.0,
        ..Default::default()
    });
    let first: Value = e
        .post("/v1/connections/r1/sync")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "started");
    let run1 = first["run_id"].as_i64().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = e.post("/v1/connections/r1/sync");
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    for t in tasks {
        let (code, body) = t.await.unwrap();
        assert_eq!(code, 202, "{body}");
        assert_eq!(
            (body["status"].as_str(), body["run_id"].as_i64()),
            (Some("coalesced"), Some(run1))
        );
    }
    // if_idle refuses with the running run's id.
    let r = e
        .post("/v1/connections/r1/sync?if_idle=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["run_id"].as_i64(),
        Some(run1)
    );
    let st: Value = e
        .get("/v1/connections/r1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (st["syncing"].as_bool(), st["follow_up_queued"].as_bool()),
        (Some(true), Some(true))
    );
    e.server.dispatcher.wait_idle().await;
    let runs = e.store.list_runs(None, 100).await.unwrap();
    assert_eq!(runs.len(), 2, "one run plus exactly one follow-up");
    assert!(
        runs.iter().all(|r| r.status.as_str() == "success"),
        "{runs:?}"
    );
    assert!(runs[0].id > run1);
    // The lease is released after the runs.
    assert!(
        e.store
            .get_lease(runs[0].connection_id)
            .await
            .unwrap()
            .is_none()
    );
    e.server.shutdown().await;
}

both_backends!(graceful_shutdown_stops_at_a_boundary_and_the_next_server_resumes);
async fn graceful_shutdown_stops_at_a_boundary_and_the_next_server_resumes(db: &TestDb) {
    let cfg = RedditSimConfig {
        messages: 600,
        saved: 300,
        ..Default::default()
    };
    let e = env(db, cfg, false).await;
    let id = e.create("r1").await;
    e.sim.set_faults(Faults {
        latency_ms: 100,
        latency_prob: 1.0,
        ..Default::default()
    });
    let t: Value = e
        .post("/v1/connections/r1/sync?mode=full")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = t["run_id"].as_i64().unwrap();
    // Let it fetch a few pages, then stop the server.
    while e.sim.request_count() < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Env {
        server, store, sim, ..
    } = e;
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown is bounded");
    let run = store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.status.as_str(), "interrupted");
    assert!(run.error.unwrap_or_default().contains("interrupted"));
    assert!(
        store.get_lease(id).await.unwrap().is_none(),
        "lease released"
    );
    let resumable = store
        .sync_states(id)
        .await
        .unwrap()
        .values()
        .any(|s| s.checkpoint.is_some());
    assert!(resumable, "a checkpoint was committed");
    // A new server on the same database resumes and ends equal to the provider.
    sim.set_faults(Faults::default());
    let server = start_server(store.clone(), opts(false)).await;
    let conn = store.get_connection("r1").await.unwrap().unwrap();
    let t = server
        .dispatcher
        .trigger(
            &conn,
            inlet_core::RunMode::Full,
            inlet_core::Trigger::Api,
            false,
        )
        .await
        .unwrap();
    server.dispatcher.wait_idle().await;
    let inlet_engine::worker::Triggered::Started { run_id: again } = t else {
        panic!("{t:?}")
    };
    let run = store.get_run(again).await.unwrap().unwrap();
    assert_eq!(run.status.as_str(), "success", "{:?}", run.error);
    assert!(
        run.streams.values().any(|s| s.resumed),
        "resumed from the checkpoint"
    );
    let streams = &inlet_connectors::reddit::streams::STREAMS;
    assert_eq!(
        store.count_live(id, &streams[0]).await.unwrap(),
        sim.truth_inbox().len() as u64
    );
    assert_eq!(
        store.count_live(id, &streams[1]).await.unwrap(),
        sim.truth_sent().len() as u64
    );
    assert_eq!(
        store.count_live(id, &streams[2]).await.unwrap(),
        sim.truth_saved().len() as u64
    );
    server.shutdown().await;
}

both_backends!(scheduler_starts_due_connections_and_readyz_sees_it);
async fn scheduler_starts_due_connections_and_readyz_sees_it(db: &TestDb) {
    // Connections are made through a server without a scheduler first, so the paused
    // one is never seen active.
    let e = env(db, small(), false).await;
    let a = e.create("a").await;
    e.create("b").await;
    assert_eq!(
        e.post("/v1/connections/b/pause")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let Env {
        server,
        store,
        sim: _sim,
        key,
        http,
        ..
    } = e;
    server.shutdown().await;
    let mut o = opts(true);
    o.schedule.intervals_ms.insert("reddit".into(), 1000);
    let server = start_server(store.clone(), o).await;
    let base = format!("http://{}", server.addr);
    let mut runs = vec![];
    for _ in 0..200 {
        runs = store.list_runs(None, 50).await.unwrap();
        if runs
            .iter()
            .filter(|r| r.status.as_str() == "success")
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        runs.iter()
            .filter(|r| r.status.as_str() == "success")
            .count()
            >= 2,
        "{runs:?}"
    );
    assert!(
        runs.iter()
            .all(|r| r.connection_id == a && r.trigger.as_str() == "schedule"),
        "only the active connection is scheduled: {runs:?}"
    );
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["scheduler"].as_str()),
        (Some("ready"), Some("alive"))
    );
    let st: Value = http
        .get(format!("{base}/v1/connections/a/status"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(st["next_scheduled_at"].is_string(), "{st}");
    server.shutdown().await;
}

both_backends!(the_lease_keeps_other_processes_out_until_it_expires);
async fn the_lease_keeps_other_processes_out_until_it_expires(db: &TestDb) {
    use inlet_core::{Clock, RunMode, SystemClock, Timestamp, Trigger};
    use inlet_engine::worker::{TriggerError, Triggered};
    let e = env(db, small(), false).await;
    let id = e.create("r1").await;
    // Another live process holds the lease: the API answers 409, nothing runs.
    let now = SystemClock.now();
    assert!(
        e.store
            .try_acquire_lease(id, "other-host:1:abc", now, 60_000)
            .await
            .unwrap()
    );
    let r = e.post("/v1/connections/r1/sync").send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(e.store.list_runs(None, 10).await.unwrap().is_empty());
    let r = e
        .post("/v1/connections/r1/refresh")
        .json(&json!({"entity": "conversation", "id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "refresh waits for the lease too");
    // Its holder died: once expired, the lease is taken over.
    assert!(
        e.store
            .try_acquire_lease(id, "other-host:1:abc", Timestamp(now.0 - 120_000), 60_000)
            .await
            .unwrap()
    );
    let t: Value = e
        .post("/v1/connections/r1/sync")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["status"], "started", "{t}");
    e.server.dispatcher.wait_idle().await;
    // Two servers on one database: while one syncs, the other is refused.
    e.sim.set_faults(Faults {
        latency_ms: 150,
        latency_prob: 1.0,
        ..Default::default()
    });
    let second = start_server(e.store.clone(), opts(false)).await;
    let conn = e.store.get_connection("r1").await.unwrap().unwrap();
    let Triggered::Started { run_id } = e
        .server
        .dispatcher
        .trigger(&conn, RunMode::Delta, Trigger::Api, false)
        .await
        .unwrap()
    else {
        panic!("first server starts")
    };
    let refused = second
        .dispatcher
        .trigger(&conn, RunMode::Delta, Trigger::Api, false)
        .await;
    assert!(
        matches!(refused, Err(TriggerError::Busy { run_id: Some(r) }) if r == run_id),
        "{refused:?}"
    );
    e.server.dispatcher.wait_idle().await;
    second.shutdown().await;
    e.server.shutdown().await;
}

both_backends!(a_trigger_for_a_run_waiting_for_a_worker_returns_at_once);
async fn a_trigger_for_a_run_waiting_for_a_worker_returns_at_once(db: &TestDb) {
    use inlet_core::{Clock, SystemClock};
    let e = env(db, small(), false).await;
    e.create("a").await;
    e.create("b").await;
    let Env {
        server,
        store,
        sim,
        key,
        http,
        ..
    } = e;
    server.shutdown().await;
    let mut o = opts(false);
    o.dispatcher.max_scheduled = 1;
    let server = start_server(store.clone(), o).await;
    let base = format!("http://{}", server.addr);
    sim.set_faults(Faults {
        latency_ms: 200,
        latency_prob: 1.0,
        ..Default::default()
    });
    let a = store.get_connection("a").await.unwrap().unwrap();
    let b = store.get_connection("b").await.unwrap().unwrap();
    server.dispatcher.schedule(a, SystemClock.now());
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.dispatcher.schedule(b, SystemClock.now());
    let t0 = std::time::Instant::now();
    let r = http
        .post(format!("{base}/v1/connections/b/sync"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "answered at once"
    );
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["run_id"].is_null()),
        (Some("queued"), true),
        "{v}"
    );
    server.dispatcher.wait_idle().await;
    let runs = store.list_runs(None, 10).await.unwrap();
    assert_eq!(
        runs.len(),
        2,
        "one scheduled run each, no extra follow-up: {runs:?}"
    );
    assert!(
        runs.iter()
            .all(|r| r.status.as_str() == "success" && r.trigger.as_str() == "schedule")
    );
    server.shutdown().await;
}

both_backends!(auth_schemes_are_case_insensitive_and_every_error_is_json);
async fn auth_schemes_are_case_insensitive_and_every_error_is_json(db: &TestDb) {
    let e = env(db, small(), false).await;
    let anon = reqwest::Client::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = anon
            .get(e.url("/v1/connections"))
            .header("authorization", format!("{scheme} {}", e.key))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "scheme {scheme}");
    }
    for bad in [format!("Basic {}", e.key), e.key.clone(), "Bearer".into()] {
        let r = anon
            .get(e.url("/v1/connections"))
            .header("authorization", bad.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }
    e.create("r1").await;
    /// Status and the JSON error of an answer.
    async fn json_error(r: reqwest::Response) -> (u16, String) {
        let status = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        assert!(ct.starts_with("application/json"), "{status} {ct}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{text}"));
        assert!(!msg.is_empty());
        (status, msg.to_string())
    }
    let big = e
        .post("/v1/connections")
        .header("connection", "close")
        .json(&json!({"blob": "a".repeat(2 << 20)}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(big).await.0, 413);
    let (s, m) = json_error(e.get("/v1/runs?limit=abc").send().await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(m.contains("limit"), "{m}");
    let (s, _) = json_error(e.delete("/v1/connections/r1?bogus=1").send().await.unwrap()).await;
    assert_eq!(s, 400);
    let (s, _) = json_error(e.get("/v1/nothing-here").send().await.unwrap()).await;
    assert_eq!(s, 404);
    let r = e
        .http
        .put(e.url("/v1/connections"))
        .bearer_auth(&e.key)
        .send()
        .await
        .unwrap();
    let allow = r.headers().get("allow").cloned();
    let (s, m) = json_error(r).await;
    assert_eq!(s, 405);
    assert!(allow.is_some(), "Allow kept");
    assert!(m.contains("not allowed"), "{m}");
    let (s, _) = json_error(anon.get(e.url("/v1/runs")).send().await.unwrap()).await;
    assert_eq!(s, 401);
    let (s, _) = json_error(e.get("/v1/runs/abc").send().await.unwrap()).await;
    assert_eq!(s, 400);
    e.server.shutdown().await;
}

both_backends!(config_urls_need_an_allowed_host_and_errors_quote_a_short_snippet);
async fn config_urls_need_an_allowed_host_and_errors_quote_a_short_snippet(db: &TestDb) {
    let e = env(db, small(), false).await;
    // A second server on the same database whose operator allowed no host.
    let strict = start_server(
        e.store.clone(),
        inlet_server::ServeOptions {
            allowed_override_hosts: vec![],
            ..opts(false)
        },
    )
    .await;
    let strict_url = format!("http://{}/v1/connections", strict.addr);
    for (key, url) in [
        ("api_base", "http://127.0.0.1:9/api".to_string()),
        (
            "token_url",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
    ] {
        let mut body = e.new_connection("evil");
        body["config"] = json!({ key: url });
        let r = e
            .http
            .post(&strict_url)
            .bearer_auth(&e.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{key}");
        let v: Value = r.json().await.unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains(&format!("config.{key}")) && msg.contains("allow-override-host"),
            "{msg}"
        );
    }
    // The provider's own hosts need no leave.
    let mut own = e.new_connection("own");
    own["config"] = json!({"api_base": "https://oauth.reddit.com", "page_size": 50});
    let r = e
        .http
        .post(&strict_url)
        .bearer_auth(&e.key)
        .json(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert!(e.store.get_connection("evil").await.unwrap().is_none());
    strict.shutdown().await;

    // An allowed host that answers with a huge, hostile body: the run's error quotes at
    // most a short printable snippet of it.
    let hostile = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hostile_addr = hostile.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        let mut body = String::from("hostile\u{1b}[2J\nsecret-internal-page \u{202e}reversed ");
        body.push_str(&"x".repeat(1 << 20));
        (axum::http::StatusCode::FORBIDDEN, body)
    });
    let server = tokio::spawn(async move { axum::serve(hostile, app).await });
    let mut body = e.new_connection("hostile");
    body["config"]["api_base"] = json!(format!("http://{hostile_addr}"));
    body["config"]["token_url"] = json!(format!("http://{hostile_addr}/token"));
    let r = e.post("/v1/connections").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = e.post("/v1/connections/hostile/sync").send().await.unwrap();
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"].as_i64().unwrap();
    let run = e.wait_run(run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let err = run["error"].as_str().unwrap();
    assert!(err.contains("hostile"), "{err}");
    assert!(
        err.chars().count() <= 600,
        "{} characters",
        err.chars().count()
    );
    assert!(
        !err.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{err:?}"
    );
    server.abort();

    // A 200 whose JSON is one huge string: the parse error (serde quotes the value)
    // is cut short as well.
    let hostile = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hostile_addr = hostile.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            format!("\"hostile {}\"", "y".repeat(1 << 20)),
        )
    });
    let server = tokio::spawn(async move { axum::serve(hostile, app).await });
    let body = json!({
        "name": "hostile-json",
        "provider": "github",
        "config": {"api_base": format!("http://{hostile_addr}")},
        "credentials": {"token": "ghp_test"}
    });
    let r = e.post("/v1/connections").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    // A server that gives up on transient faults quickly (the bad answer is retried).
    let quick = start_server(
        e.store.clone(),
        inlet_server::ServeOptions {
            http: inlet_http::HttpConfig {
                retry: inlet_http::RetryPolicy {
                    max_attempts: 2,
                    base: Duration::from_millis(5),
                    cap: Duration::from_millis(10),
                    deadline: Duration::from_secs(5),
                },
                ..Default::default()
            },
            ..opts(false)
        },
    )
    .await;
    let r = e
        .http
        .post(format!(
            "http://{}/v1/connections/hostile-json/sync",
            quick.addr
        ))
        .bearer_auth(&e.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run_id = r.json::<Value>().await.unwrap()["run_id"].as_i64().unwrap();
    let run = e.wait_run(run_id).await;
    quick.shutdown().await;
    assert_ne!(run["status"], "success", "{run}");
    let err = run["error"].as_str().unwrap_or_default().to_string();
    let longest = run["streams"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|s| s["error"].as_str())
        .chain([err.as_str()])
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(0);
    assert!(err.contains("hostile"), "{run}");
    assert!(longest <= 1000, "an error of {longest} characters");
    server.abort();
    e.server.shutdown().await;
}

/// The value of an unlabelled metric in `/metrics`.
async fn metric(e: &Env, name: &str) -> f64 {
    let text = e
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {text}"))
        .trim()
        .parse()
        .unwrap()
}

both_backends!(metrics_count_records_as_pages_commit);
async fn metrics_count_records_as_pages_commit(db: &TestDb) {
    let cfg = RedditSimConfig {
        messages: 600,
        saved: 300,
        ..Default::default()
    };
    let e = env(db, cfg, false).await;
    e.create("r1").await;
    assert_eq!(metric(&e, "inlet_records_fetched_total").await, 0.0);
    e.sim.set_faults(Faults {
        latency_ms: 100,
        latency_prob: 1.0,
        ..Default::default()
    });
    let t: Value = e
        .post("/v1/connections/r1/sync?mode=full")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = t["run_id"].as_i64().unwrap();
    // While the run goes on, the committed pages already show (the inbox stream commits
    // long before the sent and saved streams are read).
    let mut seen_mid_run = None;
    for _ in 0..600 {
        let fetched = metric(&e, "inlet_records_fetched_total").await;
        let running = e.get(&format!("/v1/runs/{run_id}")).send().await.unwrap();
        let running = running.json::<Value>().await.unwrap()["run"]["status"] == "running";
        if !running {
            break;
        }
        if fetched > 0.0 {
            seen_mid_run = Some(fetched);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mid = seen_mid_run.expect("records counted before the run ended");
    assert!(metric(&e, "inlet_http_requests_total").await > 0.0);
    assert!(
        metric(&e, "inlet_syncs_active").await >= 1.0,
        "still running"
    );
    let run = e.wait_run(run_id).await;
    e.server.dispatcher.wait_idle().await;
    let total = run["stats"]["fetched"].as_f64().unwrap();
    assert!(mid < total, "{mid} of {total} mid-run");
    // At the end every record is counted exactly once.
    assert_eq!(metric(&e, "inlet_records_fetched_total").await, total);
    assert_eq!(
        metric(&e, "inlet_records_inserted_total").await,
        run["stats"]["inserted"].as_f64().unwrap()
    );
    assert_eq!(
        metric(&e, "inlet_http_requests_total").await,
        run["stats"]["requests"].as_f64().unwrap()
    );
    let text = e
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "inlet_runs_total",
        "inlet_records_fetched_total",
        "inlet_records_inserted_total",
        "inlet_records_updated_total",
        "inlet_records_deleted_total",
        "inlet_http_requests_total",
        "inlet_http_retries_total",
        "inlet_rate_limit_wait_seconds_total",
        "inlet_syncs_active",
        "inlet_connection_last_success_age_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
    }
    assert!(
        text.contains("inlet_runs_total{status=\"success\"} 1"),
        "{text}"
    );
    e.server.shutdown().await;
}
