//! The fault matrix: each fault on its own against the simulator, on SQLite and
//! PostgreSQL. Every case is bounded (a few hundred items, second-scale waits) and ends
//! with the database equal to the simulator's truth, zero rate-limit violations counted
//! by the simulator, and run stats that show the retries and waits.

mod common;

use common::*;
use inlet_core::{ConnectionStatus, Connector, Run, RunMode, RunStatus, Store, StreamStats};
use inlet_engine::{NoProgress, Progress, SyncOptions};
use inlet_http::{HttpConfig, Quota};
use inlet_sim::reddit::{Faults, RateLimit, RedditSimConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn account(seed: u64) -> RedditSimConfig {
    RedditSimConfig {
        seed,
        messages: 600,
        comment_replies: 20,
        saved: 50,
        ..Default::default()
    }
}

async fn full_sync(
    store: &Arc<dyn Store>,
    name: &str,
    http: HttpConfig,
    progress: &dyn Progress,
) -> Run {
    let mut conn = store
        .get_connection(name)
        .await
        .expect("get")
        .expect("exists");
    // Small pages: more requests for the faults to hit.
    conn.config["page_size"] = serde_json::json!(25);
    let connector = connector_with(&conn, http);
    engine(store.clone())
        .with_batch_records(200)
        .sync(
            &conn,
            &connector,
            &SyncOptions::new(RunMode::Full),
            progress,
        )
        .await
        .expect("sync")
}

/// Sync everything under `faults`, then check equality, accounting and violations.
async fn survives(db: &TestDb, seed: u64, faults: Faults, http: HttpConfig) -> Run {
    let cfg = account(seed);
    let (sim, store, conn) = setup(db, &cfg).await;
    sim.set_faults(faults);
    let run = full_sync(&store, "reddit-test", http, &NoProgress).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(
        run.stats.retries > 0,
        "the faults were retried: {:?}",
        run.stats
    );
    assert_eq!(
        run.stats.requests,
        run.stats.pages + run.stats.retries + 1,
        "every request is a page, a retry or the token"
    );
    assert!(
        run.stats.quota_remaining.is_some_and(|q| q < 1000),
        "the provider's remaining quota is reported: {:?}",
        run.stats
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
    run
}

async fn http_5xx(db: &TestDb) {
    let f = Faults {
        http_5xx: 0.2,
        ..Default::default()
    };
    survives(db, 101, f, http_config()).await;
}
both_backends!(a_fifth_of_requests_answer_5xx, http_5xx);

async fn resets(db: &TestDb) {
    let f = Faults {
        reset: 0.05,
        ..Default::default()
    };
    survives(db, 103, f, http_config()).await;
}
both_backends!(connections_reset, resets);

async fn truncated(db: &TestDb) {
    let f = Faults {
        truncated: 0.1,
        ..Default::default()
    };
    survives(db, 105, f, http_config()).await;
}
both_backends!(bodies_truncated, truncated);

async fn latency_beyond_timeout(db: &TestDb) {
    let f = Faults {
        latency_ms: 1500,
        latency_prob: 0.15,
        ..Default::default()
    };
    let http = HttpConfig {
        request_timeout: Duration::from_millis(600),
        ..http_config()
    };
    survives(db, 107, f, http).await;
}
both_backends!(latency_spikes_beyond_the_timeout, latency_beyond_timeout);

async fn burst_429(db: &TestDb) {
    let f = Faults {
        http_429_burst: 3,
        retry_after_secs: Some(1),
        ..Default::default()
    };
    let run = survives(db, 109, f, http_config()).await;
    assert!(run.stats.retries >= 3, "{:?}", run.stats);
    assert!(
        run.stats.rate_limit_wait_ms >= 2900,
        "three Retry-After: 1 waits: {:?}",
        run.stats
    );
}
both_backends!(a_429_burst_with_retry_after, burst_429);

/// Calls `f` once, after the first committed chunk.
struct AfterFirstChunk<F: Fn() + Send + Sync>(F, AtomicBool);

impl<F: Fn() + Send + Sync> Progress for AfterFirstChunk<F> {
    fn page_committed(&self, _stream: &str, _s: &StreamStats) {
        if !self.1.swap(true, Ordering::SeqCst) {
            (self.0)();
        }
    }
}

async fn token_expires_mid_sync(db: &TestDb) {
    let cfg = account(111);
    let (sim, store, conn) = setup(db, &cfg).await;
    let s = sim.clone();
    let hook = AfterFirstChunk(move || s.expire_tokens(), AtomicBool::new(false));
    let run = full_sync(&store, "reddit-test", http_config(), &hook).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    let tokens = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("access_token"))
        .count();
    assert_eq!(
        tokens, 2,
        "one token at the start, one refresh after expiry"
    );
    assert!(
        run.stats.retries >= 1,
        "the 401 was retried: {:?}",
        run.stats
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(the_token_expires_mid_sync, token_expires_mid_sync);

async fn refresh_fails_mid_sync(db: &TestDb) {
    let cfg = account(113);
    let (sim, store, conn) = setup(db, &cfg).await;
    let s = sim.clone();
    let hook = AfterFirstChunk(
        move || {
            s.expire_tokens();
            s.revoke_refresh_token();
        },
        AtomicBool::new(false),
    );
    let run = full_sync(&store, "reddit-test", http_config(), &hook).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("re-authenticate")),
        "{:?}",
        run.error
    );
    let c = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    // What was committed before the failure is kept, item for item.
    let truths = [
        ("inbox", sim.truth_inbox()),
        ("sent", sim.truth_sent()),
        ("saved", sim.truth_saved()),
    ];
    let mut kept = 0;
    for (stream, truth) in truths {
        let rows = stored(&*store, conn.id, stream).await;
        let inserted = run.streams.get(stream).map_or(0, |s| s.stats.inserted);
        assert_eq!(rows.len() as u64, inserted, "{stream}");
        kept += rows.len();
        let truth: std::collections::BTreeMap<String, serde_json::Value> = truth
            .into_iter()
            .map(|d| (d["name"].as_str().expect("name").to_string(), d))
            .collect();
        for (id, raw) in &rows {
            assert_eq!(Some(raw), truth.get(id), "{stream} {id}");
        }
    }
    assert!(kept >= 200, "the first chunk was kept");
    // The failed stream keeps its checkpoint: a re-authenticated sync resumes there.
    let (failed, _) = run
        .streams
        .iter()
        .find(|(_, s)| s.error.is_some())
        .expect("a stream failed");
    let state = store.sync_state(conn.id, failed).await.expect("state");
    assert!(state.checkpoint.is_some(), "{failed} keeps its checkpoint");
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(the_refresh_fails_mid_sync, refresh_fails_mid_sync);

async fn small_window_with_headers(db: &TestDb) {
    // The provider's headers say how much is left: the client waits for the window
    // instead of running into 429s.
    let cfg = RedditSimConfig {
        rate_limit: Some(RateLimit {
            budget: 6,
            window_secs: 2,
        }),
        ..account(115)
    };
    let (sim, store, conn) = setup(db, &cfg).await;
    let run = full_sync(&store, "reddit-test", http_config(), &NoProgress).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(run.stats.rate_limit_wait_ms > 0, "{:?}", run.stats);
    assert_eq!(
        run.stats.retries, 0,
        "no request was refused: {:?}",
        run.stats
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(a_small_window_is_waited_for, small_window_with_headers);

/// A provider that reports no budget, limited to 6 requests a second; we assume 5.
fn headerless(seed: u64) -> (RedditSimConfig, HttpConfig) {
    let cfg = RedditSimConfig {
        rate_headers: false,
        rate_limit: Some(RateLimit {
            budget: 6,
            window_secs: 1,
        }),
        ..account(seed)
    };
    let http = HttpConfig {
        documented: Some(Quota {
            requests: 5,
            per: Duration::from_secs(1),
        }),
        ..http_config()
    };
    (cfg, http)
}

async fn documented_budget(db: &TestDb) {
    let (cfg, http) = headerless(117);
    let (sim, store, conn) = setup(db, &cfg).await;
    let run = full_sync(&store, "reddit-test", http, &NoProgress).await;
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert!(run.stats.requests > 10, "{:?}", run.stats);
    assert!(run.stats.rate_limit_wait_ms > 0, "{:?}", run.stats);
    assert_eq!(run.stats.quota_remaining, None, "the provider said nothing");
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(
    the_documented_budget_holds_without_headers,
    documented_budget
);

async fn two_syncs_share_one_budget(db: &TestDb) {
    // Two connections of the same app (same client id) synced at once: together they keep
    // to the one budget. Each alone would send 5 a second; unshared they would send 10
    // and the simulator would count violations.
    let (cfg, http) = headerless(119);
    let (sim, store, conn) = setup(db, &cfg).await;
    let other = create_named_connection(&*store, &sim, &cfg, "reddit-second").await;
    let (a, b) = tokio::join!(
        full_sync(&store, "reddit-test", http.clone(), &NoProgress),
        full_sync(&store, "reddit-second", http, &NoProgress)
    );
    for run in [&a, &b] {
        assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    }
    assert!(a.stats.rate_limit_wait_ms + b.stats.rate_limit_wait_ms > 0);
    assert_equals_truth(&*store, conn.id, &sim).await;
    assert_equals_truth(&*store, other.id, &sim).await;
    assert_eq!(sim.rate_limit_violations(), 0);
    sim.shutdown();
}
both_backends!(
    concurrent_syncs_of_one_app_share_its_budget,
    two_syncs_share_one_budget
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_flight_requests_are_bounded_per_connection() {
    let cfg = account(121);
    let db = TestDb::new(Backend::Sqlite).await;
    let (sim, store, _) = setup(&db, &cfg).await;
    sim.set_faults(Faults {
        latency_ms: 150,
        latency_prob: 1.0,
        ..Default::default()
    });
    let conn = store
        .get_connection("reddit-test")
        .await
        .expect("get")
        .expect("exists");
    let connector = Arc::new(connector_with(
        &conn,
        HttpConfig {
            max_in_flight: 3,
            ..http_config()
        },
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let c = connector.clone();
        tasks.spawn(async move {
            c.fetch_page(spec("inbox"), None)
                .await
                .map(|p| p.records.len())
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.expect("task").expect("page"), 100);
    }
    assert_eq!(
        sim.max_concurrent_requests(),
        3,
        "12 concurrent fetches, at most (and, with latency, exactly) 3 in flight"
    );
    sim.shutdown();
}

/// Ends every session of the test database but the caller's; returns how many.
async fn terminate_backends(db: &TestDb) -> usize {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .expect("terminate")
        .len()
}

async fn allow_connections(db: &TestDb, allow: bool) {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    let name = db.url.rsplit('/').next().expect("database name");
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}"
        ))
        .await
        .expect("alter database");
}

/// Once the simulator has answered `after` more requests, end the store's PostgreSQL
/// sessions (first refusing new ones when `refuse`). Bounded: gives up after 60 s.
fn kill_db_sessions_after(
    db: &TestDb,
    sim: &inlet_sim::reddit::RedditSim,
    after: u64,
    refuse: bool,
) -> tokio::task::JoinHandle<usize> {
    let (sim, url) = (sim.clone(), db.url.clone());
    let db = TestDb::existing(url);
    tokio::spawn(async move {
        let start = sim.request_count();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while sim.request_count() < start + after && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if refuse {
            allow_connections(&db, false).await;
        }
        let mut n = 0;
        while n == 0 && std::time::Instant::now() < deadline {
            n = terminate_backends(&db).await;
        }
        n
    })
}

/// PostgreSQL restarts under a running sync (every session of the database terminated
/// mid-run, `pg_terminate_backend`): the store reconnects with backoff inside the run,
/// and the run completes with the database equal to the provider. When the database
/// stays unreachable past the reconnect window, the sync fails saying "connection lost"
/// (not "cannot open database"), and the run its process could not close is closed by
/// the next sync as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_lost_mid_run() {
    let db = TestDb::new(Backend::Postgres).await;
    let cfg = RedditSimConfig {
        seed: 77,
        messages: 2000,
        comment_replies: 0,
        saved: 0,
        rate_limit: None,
        ..Default::default()
    };
    let sim = inlet_sim::reddit::RedditSim::start(cfg.clone())
        .await
        .expect("sim");
    sim.set_faults(Faults {
        latency_ms: 10,
        latency_prob: 1.0,
        ..Default::default()
    });
    let open = |secs: u64| {
        let url = db.url.clone();
        async move {
            let s = inlet_store::PgStore::connect(&url)
                .await
                .expect("open")
                .with_reconnect_for(Duration::from_secs(secs));
            Arc::new(inlet_store::SqlStore::from(s)) as Arc<dyn Store>
        }
    };
    let store = open(30).await;
    let conn = create_connection(&*store, &sim, &cfg).await;

    let killer = kill_db_sessions_after(&db, &sim, 6, false);
    let run = engine(store.clone())
        .with_batch_records(200)
        .sync(
            &conn,
            &connector(&conn),
            &SyncOptions::new(RunMode::Full),
            &NoProgress,
        )
        .await
        .expect("the run survives the lost connection");
    assert!(
        killer.await.expect("killer") >= 1,
        "a session was ended mid-run"
    );
    assert_eq!(run.status, RunStatus::Success, "{:?}", run.error);
    assert_equals_truth(&*store, conn.id, &sim).await;

    // Down for longer than the reconnect window (2 s here).
    let short = open(2).await;
    for i in 0..300 {
        sim.add_message(None, false, &format!("new {i}"));
    }
    let killer = kill_db_sessions_after(&db, &sim, 2, true);
    let err = engine(short)
        .with_batch_records(50)
        .sync(
            &conn,
            &connector(&conn),
            &SyncOptions::new(RunMode::Full),
            &NoProgress,
        )
        .await
        .expect_err("the database stayed away");
    assert!(killer.await.expect("killer") >= 1);
    let msg = err.to_string();
    assert!(
        msg.contains("connection lost") && !msg.contains("cannot open database"),
        "{msg}"
    );
    allow_connections(&db, true).await;
    let store = open(30).await;
    let next = engine(store.clone())
        .sync(
            &conn,
            &connector(&conn),
            &SyncOptions::new(RunMode::Delta),
            &NoProgress,
        )
        .await
        .expect("sync");
    assert_eq!(next.status, RunStatus::Success, "{:?}", next.error);
    let runs = store.list_runs(Some(conn.id), 10).await.expect("runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(
        runs[1].status,
        RunStatus::Interrupted,
        "the run whose process lost its database was closed by the next sync"
    );
    assert_equals_truth(&*store, conn.id, &sim).await;
    sim.shutdown();
    db.cleanup().await;
}

/// Many connections of one OAuth client (one shared rate budget) syncing at once, in the
/// same process, against a small fixed window: the budget holds exactly, the simulator
/// counts no request over the limit. Bounded: 12 connections, a few hundred requests.
async fn many_connections_one_budget(db: &TestDb) {
    let cfg = RedditSimConfig {
        messages: 300,
        comment_replies: 0,
        saved: 20,
        rate_limit: Some(RateLimit {
            budget: 30,
            window_secs: 2,
        }),
        ..account(131)
    };
    let (sim, store, _) = setup(db, &cfg).await;
    let mut names = Vec::new();
    for i in 0..12 {
        let name = format!("r{i}");
        create_named_connection(&*store, &sim, &cfg, &name).await;
        names.push(name);
    }
    let mut set = tokio::task::JoinSet::new();
    for n in names {
        let store = store.clone();
        set.spawn(async move { full_sync(&store, &n, http_config(), &NoProgress).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("join");
        assert_eq!(r.status, RunStatus::Success, "{:?}", r.error);
    }
    assert!(sim.request_count() >= 12 * 14, "{}", sim.request_count());
    assert_eq!(sim.rate_limit_violations(), 0, "no request over the window");
    sim.shutdown();
}
both_backends!(
    a_shared_budget_holds_under_concurrent_connections,
    many_connections_one_budget
);
