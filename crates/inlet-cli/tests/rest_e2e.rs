//! Declarative REST streams end to end: `inlet connect rest --spec` with the documented
//! Reddit-inbox spec (docs/examples/reddit-inbox.toml) against the built-in Reddit
//! simulator, then `inlet sync` — the table equals the simulator's truth on SQLite and
//! PostgreSQL, a second sync picks up new messages without duplicates, a reconcile sees
//! deletions, faults (429 with Retry-After, 5xx) are ridden out, and a bad spec is one
//! clear error with nothing written.

mod common;

use common::*;
use inlet_core::{Store, StreamSpec};
use inlet_sim::reddit::{Faults, RedditSim, RedditSimConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SPEC: &str = include_str!("../../../docs/examples/reddit-inbox.toml");

fn inlet(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inlet"));
    c.current_dir(dir)
        .env_remove("INLET_DATABASE_URL")
        .env_remove("INLET_SECRET_KEY")
        .env_remove("INLET_CONFIG")
        .env_remove("INLET_KEY_FILE")
        .env_remove("INLET_REST_TOKEN")
        .env_remove("INLET_REST_CLIENT_ID")
        .env_remove("INLET_REST_CLIENT_SECRET")
        .env_remove("INLET_REST_REFRESH_TOKEN")
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env("INLET_ATTACHMENTS_ENABLED", "false")
        .stdin(Stdio::null());
    c
}

async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run inlet"))
        .await
        .expect("join")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: &Output) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    out
}

fn sim_config(seed: u64) -> RedditSimConfig {
    RedditSimConfig {
        seed,
        messages: 420,
        comment_replies: 15,
        saved: 3,
        ..Default::default()
    }
}

/// `inlet connect rest` for `sim`, the secrets given through the environment.
async fn connect(dir: &Path, db: &str, sim: &RedditSim, cfg: &RedditSimConfig) -> Output {
    let spec = dir.join("reddit-inbox.toml");
    std::fs::write(&spec, SPEC).expect("write spec");
    let mut c = inlet(dir);
    c.args([
        "--database-url",
        db,
        "--json",
        "connect",
        "rest",
        "--name",
        "r",
    ])
    .arg("--spec")
    .arg(&spec)
    .args([
        "--base-url",
        &sim.api_base(),
        "--token-url",
        &sim.token_url(),
    ])
    .args(["--client-id", &cfg.client_id])
    .env("INLET_REST_CLIENT_SECRET", &cfg.client_secret)
    .env("INLET_REST_REFRESH_TOKEN", &cfg.refresh_token);
    run(c).await
}

async fn sync(dir: &Path, db: &str, extra: &[&str]) -> Value {
    let mut c = inlet(dir);
    c.args(["--database-url", db, "--json", "sync"]).args(extra);
    let out = ok(&run(c).await);
    let runs: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "success", "{runs}");
    runs[0].clone()
}

fn inbox_spec() -> &'static StreamSpec {
    &inlet_connectors::rest::streams_of_spec(SPEC).expect("the documented spec parses")[0]
}

/// Every live row of the spec's inbox table, id -> raw JSON (duplicates fail).
async fn stored(store: &dyn Store, conn: i64) -> BTreeMap<String, Value> {
    let spec = inbox_spec();
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, spec, after.as_deref(), 500, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in rows {
            let raw: Value = serde_json::from_str(&r.raw).expect("raw is JSON");
            assert!(out.insert(r.id, raw).is_none(), "duplicate id in export");
        }
    }
    out
}

/// The table holds exactly the simulator's inbox, item for item.
async fn assert_inbox_equals_truth(db: &TestDb, sim: &RedditSim) {
    let store = db.store().await;
    let conn = store
        .get_connection("r")
        .await
        .expect("get")
        .expect("connection r");
    assert_eq!(conn.provider, "rest");
    let want: BTreeMap<String, Value> = sim
        .truth_inbox()
        .into_iter()
        .map(|d| (d["name"].as_str().expect("name").to_string(), d))
        .collect();
    let got = stored(&*store, conn.id).await;
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?} (want {}, got {})",
        want.len(),
        got.len()
    );
    for (id, w) in &want {
        assert_eq!(&got[id], w, "{id} differs from the simulator");
    }
    assert_eq!(
        store
            .count_live(conn.id, inbox_spec())
            .await
            .expect("count"),
        want.len() as u64
    );
}

async fn inbox_flow(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = sim_config(31);
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = &db.url;

    let o = connect(d, url, &sim, &cfg).await;
    let out = ok(&o);
    let (_, err) = text(&o);
    for secret in [&cfg.client_secret, &cfg.refresh_token] {
        assert!(
            !out.contains(secret.as_str()) && !err.contains(secret.as_str()),
            "a secret was printed"
        );
    }
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["provider"], "rest");

    // Full sync: every received message and comment reply, in pages of 100.
    sim.clear_log();
    let first = sync(d, url, &[]).await;
    let total = sim.truth_inbox().len() as u64;
    assert!(total > 200, "{total} items: at least three pages");
    assert_eq!(first["stats"]["inserted"].as_u64(), Some(total), "{first}");
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/message/inbox")
        .collect();
    assert_eq!(pages.len() as u64, total.div_ceil(100), "{pages:?}");
    assert!(pages[1].query.contains("after=t"), "{:?}", pages[1]);
    assert_inbox_equals_truth(db, &sim).await;

    // New messages (a new conversation, a reply to an old one, a comment-free message to
    // self): a delta reads the first page only and adds them, nothing twice.
    let old = sim.truth_inbox()[100]["name"]
        .as_str()
        .expect("name")
        .to_string();
    sim.add_message(None, false, "hello from the REST test");
    sim.add_message(Some(&old), false, "a late reply");
    sim.add_message_to_self("a note to self");
    sim.clear_log();
    let second = sync(d, url, &[]).await;
    assert_eq!(second["stats"]["inserted"].as_u64(), Some(3), "{second}");
    assert_eq!(second["stats"]["pages"].as_u64(), Some(1), "{second}");
    assert_inbox_equals_truth(db, &sim).await;

    // A deleted message is seen by a reconcile, which reads every page.
    let gone = sim.truth_inbox()[7]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(sim.delete_message(&gone));
    let third = sync(d, url, &["--reconcile"]).await;
    assert_eq!(third["stats"]["deleted"].as_u64(), Some(1), "{third}");
    assert_inbox_equals_truth(db, &sim).await;

    // status and export read the spec's streams.
    let mut c = inlet(d);
    c.args(["--database-url", url, "--json", "status"]);
    let st: Value = serde_json::from_str(ok(&run(c).await).trim()).expect("json");
    assert_eq!(
        st[0]["streams"]["inbox"]["records"].as_u64(),
        Some(sim.truth_inbox().len() as u64)
    );
    let mut c = inlet(d);
    c.args([
        "--database-url",
        url,
        "export",
        "r",
        "inbox",
        "--format",
        "jsonl",
    ]);
    let lines = ok(&run(c).await);
    assert_eq!(lines.lines().count(), sim.truth_inbox().len());
    let row: Value = serde_json::from_str(lines.lines().next().expect("a row")).expect("json");
    assert!(
        row["author"].is_string() && row["created_at"].is_string(),
        "{row}"
    );
}
both_backends!(rest_spec_syncs_the_reddit_inbox, inbox_flow);

async fn faults_flow(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cfg = sim_config(37);
    let sim = RedditSim::start(cfg.clone()).await.expect("sim");
    let url = &db.url;
    ok(&connect(d, url, &sim, &cfg).await);

    // A burst of 429s asking for a one-second wait: honoured, then the sync completes.
    sim.set_faults(Faults {
        http_429_burst: 3,
        retry_after_secs: Some(1),
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    let run1 = sync(d, url, &[]).await;
    assert!(run1["stats"]["retries"].as_u64() >= Some(3), "{run1}");
    assert!(
        run1["stats"]["rate_limit_wait_ms"].as_u64() >= Some(2900),
        "three Retry-After: 1 waits: {run1}"
    );
    let limited = sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 3);
    assert_inbox_equals_truth(db, &sim).await;

    // 5xx on half of the next requests, and new messages meanwhile: a full pass still
    // ends equal to the truth.
    sim.add_message(None, false, "during an outage");
    sim.set_faults(Faults {
        http_5xx: 0.5,
        only_next: Some(8),
        path_contains: Some("/message/inbox".into()),
        ..Default::default()
    });
    sim.clear_log();
    let run2 = sync(d, url, &["--full"]).await;
    let failed = sim.requests().iter().filter(|r| r.status >= 500).count();
    assert!(failed > 0, "no 5xx was injected");
    assert!(
        run2["stats"]["retries"].as_u64() >= Some(failed as u64),
        "{run2}"
    );
    assert_inbox_equals_truth(db, &sim).await;
}
both_backends!(rest_spec_rides_out_429_and_5xx, faults_flow);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_is_one_error_naming_the_key_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = [
        (
            SPEC.replace("records = \"data.children\"", ""),
            "missing field `records`",
        ),
        (
            SPEC.replace("type = \"cursor\"", "type = \"cursor\"\nmax = 3"),
            "unknown field `max`",
        ),
        (
            SPEC.replace("name = \"unread\"", "name = \"deleted_at\""),
            "streams[0].columns[5].name",
        ),
        (
            SPEC.replace("stop = \"created_before\"", "stop = \"sometimes\""),
            "unknown variant `sometimes`",
        ),
    ];
    for (spec, needle) in cases {
        std::fs::write(d.join("bad.toml"), spec).expect("write");
        let mut c = inlet(d);
        c.args([
            "--database-url",
            "inlet.db",
            "connect",
            "rest",
            "--name",
            "x",
        ])
        .args([
            "--spec",
            "bad.toml",
            "--client-id",
            "id",
            "--refresh-token",
            "rt",
        ]);
        let o = run(c).await;
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{needle}: expected failure");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line expected: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{needle:?} not in {err}"
        );
        assert!(lines[0].contains("bad.toml"), "the file is named: {err}");
        assert!(!d.join("inlet.db").exists(), "nothing written for {needle}");
    }
    // A spec needing OAuth credentials the command did not get.
    std::fs::write(d.join("ok.toml"), SPEC).expect("write");
    let mut c = inlet(d);
    c.args([
        "--database-url",
        "inlet.db",
        "connect",
        "rest",
        "--name",
        "x",
    ])
    .args(["--spec", "ok.toml", "--base-url", "http://127.0.0.1:9"]);
    let o = run(c).await;
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("--client-id"), "{err}");
    assert!(!d.join("inlet.db").exists());
}
