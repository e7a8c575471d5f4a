//! GitHub stars end to end against the simulator, on SQLite and PostgreSQL: the table
//! equals the simulator's truth after every step, an unchanged first page is a free 304,
//! unstars are tombstoned at the next reconcile, faults and limits are survived.

mod common;

use common::*;
use inlet_connectors::github::{GithubConfig, GithubConnector, GithubCredentials, streams};
use inlet_core::{Clock, Connection, NewConnection, RunMode, RunStatus, Store, SystemClock};
use inlet_engine::{NoProgress, SyncOptions};
use inlet_sim::github::{GithubSim, GithubSimConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

async fn setup_github(
    db: &TestDb,
    stars: u64,
) -> (GithubSim, Arc<dyn Store>, Connection, GithubConnector) {
    let sim = GithubSim::start(GithubSimConfig {
        stars,
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let config = GithubConfig {
        api_base: sim.api_base(),
        per_page: 50,
        login: None,
        http: Default::default(),
    };
    let new = NewConnection {
        name: "github-test".into(),
        workspace: "tests".into(),
        provider: "github".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: key().seal(b"{}", b"test").expect("seal"),
    };
    let conn = store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create");
    let creds = GithubCredentials {
        token: sim.token().to_string(),
    };
    let connector = GithubConnector::new(config, &creds, http_config()).expect("connector");
    (sim, store, conn, connector)
}

async fn sync(
    store: &Arc<dyn Store>,
    conn: &Connection,
    c: &GithubConnector,
    mode: RunMode,
) -> inlet_core::Run {
    engine(store.clone())
        .sync(conn, c, &SyncOptions::new(mode), &NoProgress)
        .await
        .expect("sync")
}

async fn assert_truth(store: &dyn Store, conn: i64, sim: &GithubSim) {
    let spec = &streams::STREAMS[0];
    let mut got = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, spec, after.as_deref(), 500, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in rows {
            let raw: serde_json::Value = serde_json::from_str(&r.raw).expect("json");
            got.insert(r.id, raw);
        }
    }
    let want: BTreeMap<String, serde_json::Value> = sim
        .truth()
        .into_iter()
        .map(|v| (v["repo"]["id"].to_string(), v))
        .collect();
    assert_eq!(got.len(), want.len(), "row count");
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "star {id} differs from the simulator");
    }
}

async fn stars_lifecycle(db: &TestDb) {
    let (sim, store, conn, c) = setup_github(db, 120).await;
    let first = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_eq!(first.stats.inserted, 120);
    assert_eq!(
        first.stats.requests, 3,
        "120 stars in pages of 50, by Link header"
    );
    assert_truth(&*store, conn.id, &sim).await;

    // Nothing changed: one conditional request answered 304, no budget spent.
    let used = sim.budget_used();
    sim.clear_log();
    let again = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(again.status, RunStatus::Success, "{:?}", again.error);
    let log = sim.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].status, log[0].conditional), (304, true));
    assert_eq!(sim.budget_used(), used, "a 304 costs no rate-limit budget");
    assert_eq!((again.stats.fetched, again.stats.inserted), (0, 0));

    // New star, an edit on page 1, an unstar deep in the list.
    let ids = sim.starred_ids();
    let new_id = sim.star_new();
    assert!(sim.edit_stargazers(ids[0], 99_999));
    assert!(sim.unstar(ids[100]));
    let delta = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(delta.stats.inserted, 1);
    assert!(
        delta.stats.updated >= 1,
        "the edited repository was rewritten"
    );
    assert_eq!(delta.stats.deleted, 0, "unstars wait for the reconcile");
    assert_eq!(delta.stats.requests, 1, "the delta stops on page 1");
    assert!(store.sync_state(conn.id, "starred").await.is_ok());

    let rec = sync(&store, &conn, &c, RunMode::Reconcile).await;
    assert_eq!(rec.status, RunStatus::Success, "{:?}", rec.error);
    assert_eq!(rec.stats.deleted, 1);
    assert_truth(&*store, conn.id, &sim).await;
    assert!(
        store
            .export_page(conn.id, &streams::STREAMS[0], None, 1000, true)
            .await
            .expect("export")
            .iter()
            .any(|r| r.id == ids[100].to_string() && r.deleted_at.is_some()),
        "the tombstone is kept"
    );

    // Re-starred: back at the top, revived by the delta.
    assert!(sim.restar(ids[100]));
    let back = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!((back.stats.inserted, back.stats.updated), (0, 1));
    assert_truth(&*store, conn.id, &sim).await;
    assert!(sim.starred_ids().contains(&new_id));

    // A secondary-limit 403 with Retry-After and a 502: waited out, retried, still equal.
    sim.star_new();
    sim.secondary_limit_next(1, 1);
    sim.bad_gateway_next(1);
    let faulty = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(faulty.status, RunStatus::Success, "{:?}", faulty.error);
    assert!(faulty.stats.retries >= 2);
    assert!(
        faulty.stats.rate_limit_wait_ms >= 1000,
        "Retry-After honoured"
    );
    assert_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(github_stars_lifecycle_equals_truth, stars_lifecycle);

/// Edits of repositories beyond the first page (description, rename, archive) are
/// invisible to a delta (page 1 is unchanged: a 304) and are picked up by the next
/// reconcile, whose full id pages are upserted too: afterwards the table equals the
/// simulator, not only its id set.
async fn reconcile_upserts_edits(db: &TestDb) {
    let (sim, store, conn, c) = setup_github(db, 120).await;
    let first = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    let ids = sim.starred_ids();
    assert!(sim.edit_description(ids[60], Some("Rewritten description")));
    assert!(sim.rename(ids[75], "renamed-project"));
    assert!(
        sim.archive(
            ids[110],
            !sim.truth()[110]["repo"]["archived"]
                .as_bool()
                .unwrap_or(false)
        )
    );
    let delta = sync(&store, &conn, &c, RunMode::Delta).await;
    assert_eq!(delta.status, RunStatus::Success, "{:?}", delta.error);
    assert_eq!(
        (delta.stats.requests, delta.stats.updated),
        (1, 0),
        "page 1 is unchanged: the delta ends on a 304"
    );
    let rec = sync(&store, &conn, &c, RunMode::Reconcile).await;
    assert_eq!(rec.status, RunStatus::Success, "{:?}", rec.error);
    assert_eq!(rec.stats.updated, 3, "the three edited repositories");
    assert_eq!(rec.stats.inserted, 0);
    assert_eq!(rec.stats.deleted, 0);
    assert_truth(&*store, conn.id, &sim).await;
    let rows = store
        .export_page(conn.id, &streams::STREAMS[0], None, 1000, false)
        .await
        .expect("export");
    let name = streams::STAR_COLUMNS
        .iter()
        .position(|col| col.name == "full_name")
        .expect("full_name column");
    let renamed = rows
        .iter()
        .find(|r| r.id == ids[75].to_string())
        .expect("renamed row");
    assert!(
        matches!(&renamed.values[name], inlet_core::Value::Text(t) if t.ends_with("/renamed-project")),
        "typed column follows the rename: {:?}",
        renamed.values[name]
    );
    // Nothing changed since: the next reconcile rewrites nothing.
    let again = sync(&store, &conn, &c, RunMode::Reconcile).await;
    assert_eq!((again.stats.inserted, again.stats.updated), (0, 0));
    sim.shutdown();
}
both_backends!(
    github_reconcile_upserts_edits_beyond_page_one,
    reconcile_upserts_edits
);

async fn bad_token(db: &TestDb) {
    // A rejected token is not retried: the connection needs re-authentication.
    let sim = GithubSim::start(GithubSimConfig {
        stars: 40,
        rate_limit: 2,
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let config = GithubConfig {
        api_base: sim.api_base(),
        per_page: 10,
        login: None,
        http: Default::default(),
    };
    let creds = GithubCredentials {
        token: "wrong".into(),
    };
    let new = NewConnection {
        name: "gh".into(),
        workspace: "tests".into(),
        provider: "github".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: vec![1],
    };
    let conn = store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create");
    let bad = GithubConnector::new(config, &creds, http_config()).expect("connector");
    let run = sync(&store, &conn, &bad, RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("rejected the token")),
        "{:?}",
        run.error
    );
    let conn = store
        .get_connection("gh")
        .await
        .expect("get")
        .expect("conn");
    assert_eq!(conn.status, inlet_core::ConnectionStatus::NeedsReauth);
    sim.shutdown();
}
both_backends!(github_bad_token_needs_reauth, bad_token);

/// The CLI: `inlet connect github` verifies the token, `inlet sync --reconcile` tombstones
/// an unstar, `inlet export` and `inlet status` show the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_connect_sync_reconcile() {
    let sim = GithubSim::start(GithubSimConfig {
        stars: 12,
        ..Default::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("inlet.db");
    let inlet = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_inlet"))
            .args(args)
            .env("INLET_DATABASE_URL", &db)
            .env("INLET_KEY_FILE", dir.path().join("key"))
            .env_remove("GITHUB_TOKEN")
            .current_dir(dir.path())
            .output()
            .expect("run inlet")
    };
    let base = sim.api_base();
    let out = inlet(&[
        "connect",
        "github",
        "--name",
        "gh",
        "--token",
        "bad",
        "--api-base",
        &base,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not verify the token"), "{err}");
    assert!(!db.exists(), "a failed verification writes nothing");
    let out = inlet(&[
        "connect",
        "github",
        "--name",
        "gh",
        "--token",
        sim.token(),
        "--api-base",
        &base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = inlet(&["sync", "gh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("12 new"));
    // A new process: the stored ETag makes the unchanged first page a free 304.
    let used = sim.budget_used();
    sim.clear_log();
    let out = inlet(&["sync", "gh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = sim.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].status, log[0].conditional), (304, true));
    assert_eq!(sim.budget_used(), used);
    // --full re-reads everything: never conditional.
    sim.clear_log();
    let out = inlet(&["sync", "gh", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.status == 200 && !r.conditional)
    );
    let ids = sim.starred_ids();
    assert!(sim.unstar(ids[3]));
    let out = inlet(&["sync", "gh", "--reconcile", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["mode"], "reconcile");
    assert_eq!(v[0]["stats"]["deleted"], 1);
    let out = inlet(&["export", "gh", "starred"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 11);
    let out = inlet(&["sync", "gh", "--full", "--reconcile"]);
    assert!(!out.status.success());
    let out = inlet(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("starred"));
    sim.shutdown();
}

/// A stored GitHub connection `name` for `api_base`, and a connector with `http`.
async fn gh_connection(
    store: &Arc<dyn Store>,
    sim: &GithubSim,
    name: &str,
    api_base: String,
    http: inlet_http::HttpConfig,
) -> (Connection, GithubConnector) {
    let config = GithubConfig {
        api_base,
        per_page: 50,
        login: None,
        http: Default::default(),
    };
    let new = NewConnection {
        name: name.into(),
        workspace: "tests".into(),
        provider: "github".into(),
        config: serde_json::to_value(&config).expect("json"),
        credentials: key().seal(b"{}", b"test").expect("seal"),
    };
    let conn = store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create");
    let creds = GithubCredentials {
        token: sim.token().to_string(),
    };
    let c = GithubConnector::new(config, &creds, http).expect("connector");
    (conn, c)
}

/// Issue 18 item 14: the primary budget is spent and resets in an hour. A sync that
/// knows it sends nothing; one that does not learns it from one answer; both end
/// `waiting` until the reset (not failed), keep the checkpoint, and a sync after the
/// reset resumes and completes.
async fn spent_budget_waits(db: &TestDb) {
    let clock = inlet_core::ManualClock::new(SystemClock.now());
    let sim = GithubSim::start(GithubSimConfig {
        stars: 120,
        rate_limit: 3,
        clock: Arc::new(clock.clone()),
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    let eng = || inlet_engine::Engine::new(store.clone(), Arc::new(clock.clone()));
    let opts = SyncOptions::new(RunMode::Delta);
    let (conn, c) = gh_connection(&store, &sim, "gh-a", sim.api_base(), http_config()).await;
    let first = eng()
        .sync(&conn, &c, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
    assert_eq!(
        first.stats.quota_remaining,
        Some(0),
        "three pages spent the budget"
    );
    // The simulator's window started with the first request, at this clock reading.
    let reset_ms = (clock.now().secs() + 3600) * 1000;

    // The budget is known to be spent until the reset: nothing is sent.
    sim.star_new();
    sim.clear_log();
    let run = eng()
        .sync(&conn, &c, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(run.status, RunStatus::Waiting, "{:?}", run.error);
    assert_eq!(sim.requests().len(), 0, "sent while the budget was spent");
    assert_eq!(sim.rate_limit_violations(), 0);
    let until = run.waiting_until.expect("waiting_until");
    assert!(
        (until.0 - reset_ms).abs() <= 2000,
        "waits until the reset: {until} vs {}",
        inlet_core::Timestamp(reset_ms)
    );
    assert!(
        run.error.as_deref().is_some_and(|e| e.contains("waiting")),
        "{:?}",
        run.error
    );
    let stored = store.list_runs(Some(conn.id), 1).await.expect("runs");
    assert_eq!(stored[0].status, RunStatus::Waiting);
    assert_eq!(
        stored[0].waiting_until,
        Some(until),
        "the runs row keeps the time"
    );
    let state = store.sync_state(conn.id, "starred").await.expect("state");
    assert!(state.checkpoint.is_some(), "the checkpoint is kept");
    let conn_now = store
        .get_connection("gh-a")
        .await
        .expect("get")
        .expect("conn");
    assert_eq!(
        conn_now.status,
        inlet_core::ConnectionStatus::Active,
        "not failing"
    );

    // Another process (its own, empty budget: another key) knows it from the run row.
    let fresh = GithubConnector::new(
        serde_json::from_value(
            serde_json::json!({"api_base": format!("{}/", sim.api_base()), "per_page": 50}),
        )
        .expect("config"),
        &GithubCredentials {
            token: sim.token().to_string(),
        },
        http_config(),
    )
    .expect("connector");
    let again = eng()
        .sync(&conn, &fresh, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(again.status, RunStatus::Waiting, "{:?}", again.error);
    assert_eq!(again.waiting_until, Some(until));
    assert_eq!(sim.requests().len(), 0, "nothing sent by the other process");

    // A connection that knows nothing sends one request, learns the reset from the 403
    // and waits too (it used to fail with "gave up after 1 attempts").
    let (other, oc) = gh_connection(
        &store,
        &sim,
        "gh-b",
        format!("{}//", sim.api_base()),
        http_config(),
    )
    .await;
    let learnt = eng()
        .sync(&other, &oc, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(learnt.status, RunStatus::Waiting, "{:?}", learnt.error);
    assert_eq!(sim.requests().len(), 1);
    assert_eq!(sim.rate_limit_violations(), 1);
    let until_b = learnt.waiting_until.expect("waiting_until");
    assert!((until_b.0 - reset_ms).abs() <= 2000, "{until_b}");

    // After the reset the sync resumes from the checkpoint and completes.
    clock.set(inlet_core::Timestamp(until.0 + 1000));
    let after = eng()
        .sync(&conn, &fresh, &opts, &NoProgress)
        .await
        .expect("sync");
    assert_eq!(after.status, RunStatus::Success, "{:?}", after.error);
    assert!(
        after.streams["starred"].resumed,
        "resumed the kept checkpoint"
    );
    assert_eq!(after.stats.inserted, 1, "the new star");
    assert_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
}
both_backends!(
    github_spent_budget_ends_waiting_and_resumes,
    spent_budget_waits
);

/// Issue 18 item 17: a secondary limit (403, and 429) without `Retry-After` while budget
/// is left waits at least the floor, doubling, then goes on; with GitHub's default
/// floor of a minute beyond the run's retry deadline, the run ends waiting a minute
/// (computed, not slept).
async fn secondary_limit_waits(db: &TestDb) {
    let store = db.store().await;
    let floor = std::time::Duration::from_millis(300);
    for (i, status) in [403u16, 429].into_iter().enumerate() {
        let sim = GithubSim::start(GithubSimConfig {
            stars: 20,
            ..Default::default()
        })
        .await
        .expect("sim");
        let http = inlet_http::HttpConfig {
            rate_limit_floor: Some(floor),
            ..http_config()
        };
        let (conn, c) =
            gh_connection(&store, &sim, &format!("gh-sec-{i}"), sim.api_base(), http).await;
        sim.secondary_limit_without_retry_after_next(2, status);
        let run = sync(&store, &conn, &c, RunMode::Delta).await;
        assert_eq!(run.status, RunStatus::Success, "{status}: {:?}", run.error);
        let log = sim.requests();
        assert_eq!(
            log.iter().map(|r| r.status).collect::<Vec<_>>(),
            [status, status, 200]
        );
        let gaps: Vec<i64> = log.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
        assert!(
            gaps[0] >= 300 && gaps[1] >= 600,
            "{status}: at least the floor, then double: {gaps:?}"
        );
        assert!(run.stats.rate_limit_wait_ms >= 900, "{:?}", run.stats);
        assert_eq!(run.stats.inserted, 20);
        sim.shutdown();
    }

    // GitHub's own floor: one minute, longer than this run may wait.
    for (i, status) in [403u16, 429].into_iter().enumerate() {
        let sim = GithubSim::start(GithubSimConfig {
            stars: 20,
            ..Default::default()
        })
        .await
        .expect("sim");
        let mut http = http_config();
        http.retry.deadline = std::time::Duration::from_secs(5);
        let (conn, c) =
            gh_connection(&store, &sim, &format!("gh-min-{i}"), sim.api_base(), http).await;
        sim.secondary_limit_without_retry_after_next(1, status);
        let t0 = SystemClock.now();
        let run = sync(&store, &conn, &c, RunMode::Delta).await;
        assert_eq!(run.status, RunStatus::Waiting, "{status}: {:?}", run.error);
        let wait = run.waiting_until.expect("until").0 - t0.0;
        assert!(
            (59_000..=62_000).contains(&wait),
            "{status}: waits a minute, got {wait} ms"
        );
        assert_eq!(sim.requests().len(), 1, "no retry inside the minute");
        sim.shutdown();
    }
}
both_backends!(
    github_secondary_limit_without_retry_after,
    secondary_limit_waits
);

/// Issue 18 item 14 through the CLI, one process per command: a sync that meets the
/// spent budget ends `waiting` (exit code 75) and prints when it frees up; the next
/// `inlet sync` (another process) sends nothing before then; `inlet runs` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_waits_for_a_spent_budget() {
    let sim = GithubSim::start(GithubSimConfig {
        stars: 12,
        rate_limit: 2,
        ..Default::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("inlet.db");
    let inlet = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_inlet"))
            .args(args)
            .env("INLET_DATABASE_URL", &db)
            .env("INLET_KEY_FILE", dir.path().join("key"))
            .env_remove("GITHUB_TOKEN")
            .current_dir(dir.path())
            .output()
            .expect("run inlet")
    };
    let base = sim.api_base();
    let out = inlet(&[
        "connect",
        "github",
        "--name",
        "gh",
        "--token",
        sim.token(),
        "--api-base",
        &base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = inlet(&["sync", "gh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sim.budget_used(), 2, "the hour's budget is spent");
    // A new star changes page 1: its conditional request no longer answers a free 304.
    sim.star_new();
    let out = inlet(&["sync", "gh"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(75), "{stdout}");
    assert!(stdout.contains("gh: waiting"), "{stdout}");
    assert!(stdout.contains("frees up at"), "{stdout}");
    assert_eq!(sim.rate_limit_violations(), 1, "one answer told the reset");
    let sent = sim.requests().len();
    let out = inlet(&["sync", "gh"]);
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(sim.requests().len(), sent, "nothing sent before the reset");
    assert_eq!(sim.rate_limit_violations(), 1);
    let out = inlet(&["runs", "gh", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["status"], "waiting");
    assert_eq!(v[1]["status"], "waiting");
    assert!(v[0]["waiting_until"].is_string(), "{v}");
    assert_eq!(v[0]["waiting_until"], v[1]["waiting_until"]);
    let out = inlet(&["runs", "gh"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("frees up at"));
    sim.shutdown();
}

/// Issue 18 item 14 under the scheduler: a scheduled sync that meets the spent budget
/// is reported as waiting until the reset, and the scheduler makes the connection due
/// just after it, not on the failure backoff.
async fn scheduled_waiting(db: &TestDb) {
    use inlet_engine::scheduler::{ScheduleConfig, Scheduler};
    use inlet_engine::worker::{Dispatcher, DispatcherConfig, Outcome};
    let sim = GithubSim::start(GithubSimConfig {
        stars: 10,
        rate_limit: 1,
        ..Default::default()
    })
    .await
    .expect("sim");
    let store = db.store().await;
    // Spend the hour's budget from elsewhere.
    let (spender, sc) = gh_connection(
        &store,
        &sim,
        "gh-spender",
        format!("{}/", sim.api_base()),
        http_config(),
    )
    .await;
    let run = sync(&store, &spender, &sc, RunMode::Delta).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let (conn, _) = gh_connection(&store, &sim, "gh-sched", sim.api_base(), http_config()).await;
    let base = sim.api_base();
    let token = sim.token().to_string();
    let factory: inlet_engine::worker::ConnectorFactory = Arc::new(move |_c: &Connection| {
        let config: GithubConfig =
            serde_json::from_value(serde_json::json!({"api_base": base, "per_page": 50}))
                .expect("config");
        let creds = GithubCredentials {
            token: token.clone(),
        };
        Ok(
            Box::new(GithubConnector::new(config, &creds, http_config())?)
                as Box<dyn inlet_core::Connector>,
        )
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new(
        Arc::new(engine(store.clone())),
        factory,
        DispatcherConfig::default(),
        Some(tx),
    );
    let mut scheduler = Scheduler::new(ScheduleConfig::with_intervals_min(
        inlet_connectors::provider::intervals_minutes(),
    ));
    let now = SystemClock.now();
    // Make the connection known to the scheduler, then start it on its slot as the loop
    // would (GitHub's interval is 15 minutes).
    let conns = std::slice::from_ref(&conn);
    let mut due = scheduler.due(conns, now);
    if due.is_empty() {
        due = scheduler.due(conns, inlet_core::Timestamp(now.0 + 16 * 60_000));
    }
    assert_eq!(due.len(), 1);
    dispatcher.schedule(conn.clone(), due[0].1);
    let finished = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("finished in time")
        .expect("finished");
    let Outcome::Waiting { until } = finished.outcome else {
        panic!("expected waiting, got {:?}", finished.outcome);
    };
    let last = store.list_runs(Some(conn.id), 1).await.expect("runs");
    assert_eq!(last[0].status, RunStatus::Waiting);
    assert_eq!(last[0].waiting_until, Some(until));
    assert!(
        until.0 > now.0 + 3_500_000,
        "the reset is about an hour away: {until}"
    );
    scheduler.finished(conn.id, "github", finished.outcome, finished.at);
    let entry = scheduler.entry(conn.id).expect("entry");
    assert_eq!(entry.next_due.0, until.0 + 1000, "due just after the reset");
    assert_eq!(entry.failures, 0);
    dispatcher.shutdown().await;
    sim.shutdown();
}
both_backends!(github_scheduled_sync_waits_for_the_reset, scheduled_waiting);
